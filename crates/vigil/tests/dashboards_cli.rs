//! Black-box tests of `vigil dashboards ...` against a real `vigil serve`
//! on port 0 with its own data directory.

mod common;

use std::ffi::OsStr;

use common::{Serve, ok, run};

fn serve(data: &std::path::Path) -> Serve {
    Serve::start(&[OsStr::new("--data-dir"), data.as_os_str()])
}

#[test]
fn list_get_put_delete_round_trip_and_survive_a_restart() {
    let data = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let server = serve(data.path());
    let table = ok(&server, &["dashboards", "list"]);
    let rows: Vec<&str> = table.lines().skip(1).collect();
    assert_eq!(rows.len(), 2, "{table}");
    assert!(
        rows[0].starts_with("Inference-Monitoring-Dashboard ") && rows[0].contains(" builtin "),
        "{table}"
    );
    assert!(rows[1].starts_with("Vigil-Overview "), "{table}");

    // `get` prints the body `put --file` takes: copy the seed dashboard.
    let body = ok(
        &server,
        &["dashboards", "get", "Inference-Monitoring-Dashboard"],
    );
    let seed: serde_json::Value =
        serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {body}"));
    assert_eq!(seed["widgets"][1]["properties"]["title"], "SuccessCount");
    let file = data.path().join("copy.json");
    std::fs::write(&file, &body).unwrap_or_else(|e| panic!("{e}"));
    let file = file.to_string_lossy().into_owned();
    ok(&server, &["dashboards", "put", "My-Copy", "--file", &file]);
    let copy: serde_json::Value = serde_json::from_str(&ok(
        &server,
        &["dashboards", "get", "My-Copy", "--output", "json"],
    ))
    .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(copy["source"], "api");
    assert_eq!(copy["body"], seed);

    // A bad body: the server's message names the widget and field.
    let bad = data.path().join("bad.json");
    std::fs::write(
        &bad,
        r#"{"widgets": [{"type": "metric", "x": 0, "y": 0, "width": 30, "height": 6, "properties": {"metrics": [["A", "B"]]}}]}"#,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let (success, _, stderr) = run(
        &server,
        &["dashboards", "put", "Bad", "--file", &bad.to_string_lossy()],
    );
    assert!(!success);
    assert!(
        stderr.contains("400")
            && stderr.contains("widgets[0].width: expected a whole number from 1 to 24, got 30"),
        "{stderr}"
    );
    let (success, _, stderr) = run(&server, &["dashboards", "delete", "Vigil-Overview"]);
    assert!(!success && stderr.contains("409"), "{stderr}");

    // The API's dashboards are in the data directory: a restart keeps them.
    server.kill_9();
    let server = serve(data.path());
    let table = ok(&server, &["dashboards", "list"]);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("My-Copy ") && l.contains(" api ")),
        "{table}"
    );
    ok(&server, &["dashboards", "delete", "My-Copy"]);
    let table = ok(&server, &["dashboards", "list"]);
    assert!(!table.contains("My-Copy"), "{table}");
}

#[test]
fn export_writes_a_grafana_dashboard_and_warns_per_widget_it_cannot_express() {
    let data = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let server = serve(data.path());
    let file = data.path().join("seed-grafana.json");
    let (success, stdout, stderr) = run(
        &server,
        &[
            "dashboards",
            "export",
            "Inference-Monitoring-Dashboard",
            "--format",
            "grafana",
            "--output",
            &file.to_string_lossy(),
        ],
    );
    assert!(success, "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    let warnings: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("warning: "))
        .collect();
    assert_eq!(warnings.len(), 1, "{stderr}");
    assert!(
        warnings[0].starts_with("warning: widgets[3] (alarm \"Runbook alarms\") is a text panel: "),
        "{stderr}"
    );
    assert!(
        stderr.contains("exported 3 of 4 widget(s) as Prometheus panels to "),
        "{stderr}"
    );
    let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{e}"));
    let dashboard: serde_json::Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(dashboard["title"], "Inference-Monitoring-Dashboard");
    assert_eq!(dashboard["schemaVersion"], 39);
    let panels = dashboard["panels"].as_array().expect("panels");
    let kinds: Vec<&str> = panels.iter().filter_map(|p| p["type"].as_str()).collect();
    assert_eq!(kinds, ["timeseries", "stat", "stat", "text"]);
    assert_eq!(
        panels[1]["targets"][0]["expr"],
        "sum(increase(inference_pipeline_success_total[$__range]))"
    );

    // Without --output the model goes to stdout; an unknown name is the server's 404.
    let stdout = ok(
        &server,
        &[
            "dashboards",
            "export",
            "Vigil-Overview",
            "--format",
            "grafana",
        ],
    );
    let overview: serde_json::Value =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert_eq!(overview["uid"], "vigil-Vigil-Overview");
    let (success, _, stderr) = run(
        &server,
        &["dashboards", "export", "Nope", "--format", "grafana"],
    );
    assert!(!success && stderr.contains("404"), "{stderr}");
}

/// `dir/vigil.toml`: the demo model and one `[[dashboards]]` entry.
fn config_with_dashboard(dir: &std::path::Path, name: &str) -> std::path::PathBuf {
    let model = common::workspace().join("crates/vigil-server/assets/demo-fraud.json");
    let path = dir.join("vigil.toml");
    std::fs::write(
        &path,
        format!(
            "[[models]]\nname = \"fraud\"\npath = \"{}\"\n\n[[dashboards]]\nname = \"{name}\"\n\n\
             [[dashboards.widgets]]\ntype = \"text\"\nproperties = {{ markdown = \"from the file\" }}\n",
            model.display()
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    path
}

#[test]
fn sighup_reads_the_config_files_dashboards_again() {
    let data = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let config = config_with_dashboard(data.path(), "Before");
    let server = Serve::start(&[
        OsStr::new("--config"),
        config.as_os_str(),
        OsStr::new("--data-dir"),
        data.path().as_os_str(),
    ]);
    let table = ok(&server, &["dashboards", "list"]);
    assert!(
        table
            .lines()
            .any(|l| l.starts_with("Before ") && l.contains(" config ")),
        "{table}"
    );
    config_with_dashboard(data.path(), "After");
    let status = std::process::Command::new("kill")
        .args(["-HUP", &server.child.id().to_string()])
        .status()
        .unwrap_or_else(|e| panic!("kill: {e}"));
    assert!(status.success());
    // The reload runs on the server's own time: poll for it.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    loop {
        let table = ok(&server, &["dashboards", "list"]);
        let names: Vec<&str> = table
            .lines()
            .skip(1)
            .filter_map(|l| l.split_whitespace().next())
            .collect();
        if names.contains(&"After") {
            assert!(!names.contains(&"Before"), "{table}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no reload within 10 s:\n{table}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
}
