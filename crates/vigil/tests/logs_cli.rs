//! Black-box tests of `vigil logs ...` against a real `vigil serve` on
//! port 0 with its own data directory: events sent, groups listed, the
//! access log kept in /vigil/access across a restart, retention, deletion,
//! and filter patterns tried on a file.

mod common;

use std::ffi::OsStr;
use std::time::{Duration, Instant};

use common::{Serve, cli, http, ok, run, score_body};

fn groups(server: &Serve) -> Vec<serde_json::Value> {
    let out = ok(server, &["logs", "groups", "--output", "json"]);
    let value: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    value["groups"].as_array().cloned().unwrap_or_default()
}

fn events_of(server: &Serve, name: &str) -> u64 {
    groups(server)
        .iter()
        .find(|g| g["name"] == name)
        .and_then(|g| g["events"].as_u64())
        .unwrap_or(0)
}

#[test]
fn events_groups_retention_and_the_access_log_round_trip() {
    let data = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let args = [OsStr::new("--data-dir"), data.path().as_os_str()];
    let server = Serve::start(&args);

    let lines = tempfile::NamedTempFile::new().unwrap_or_else(|e| panic!("{e}"));
    let text: String = (0..2500)
        .map(|i| format!("line {i} status=200\n"))
        .collect();
    std::fs::write(lines.path(), text + "\n").unwrap_or_else(|e| panic!("{e}"));
    let path = lines.path().to_str().unwrap_or_default();
    let (success, _, stderr) = run(
        &server,
        &["logs", "put", "/app/api", "host-1", "--file", path],
    );
    assert!(success, "{stderr}");
    assert!(
        stderr.contains("2500 events stored in /app/api / host-1"),
        "{stderr}"
    );
    assert_eq!(events_of(&server, "/app/api"), 2500);

    // Scoring requests: their access-log lines reach /vigil/access.
    for i in 0..20 {
        let (status, body) = http(
            &server.addr,
            "POST",
            "/v1/models/fraud/score",
            Some(&score_body(&format!("r{i}"), 10.0)),
        );
        assert_eq!(status, 200, "{body}");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while events_of(&server, "/vigil/access") < 20 {
        assert!(
            Instant::now() < deadline,
            "access lines never reached /vigil/access: {:?}",
            groups(&server)
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // ... each logged row is an event of /vigil/inference, and the
    // server's diagnostics (the start-up lines among them) of /vigil/system.
    while events_of(&server, "/vigil/inference") < 20 || events_of(&server, "/vigil/system") < 1 {
        assert!(
            Instant::now() < deadline,
            "rows or diagnostics never reached their groups: {:?}",
            groups(&server)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let out = ok(
        &server,
        &[
            "logs",
            "query",
            "-g",
            "/vigil/inference",
            "--since",
            "1h",
            "--output",
            "json",
            "filter model = \"fraud\" and ispresent(score) and latency_us > 0 | stats count(*) as n",
        ],
    );
    let rows: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(rows["rows"][0]["n"], 20, "{out}");
    let out = ok(
        &server,
        &[
            "logs",
            "query",
            "-g",
            "/vigil/system",
            "--since",
            "1h",
            "--output",
            "json",
            "filter @message like \"log store open\" | stats count(*) as n",
        ],
    );
    let rows: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(
        rows["rows"][0]["n"], 1,
        "the start-up line is in /vigil/system: {out}"
    );

    let out = ok(&server, &["logs", "retention", "/app/api", "--days", "30"]);
    assert!(out.contains("kept 30 days"), "{out}");
    let (success, _, stderr) = run(&server, &["logs", "retention", "/app/api", "--days", "2"]);
    assert!(!success);
    assert!(stderr.contains("1, 3, 5, 7"), "{stderr}");
    let table = ok(&server, &["logs", "groups"]);
    assert!(
        table.contains("GROUP") && table.contains("30 days") && table.contains("/vigil/access"),
        "{table}"
    );

    // Acknowledged events survive a restart.
    let before = events_of(&server, "/vigil/access");
    server.kill_9();
    let server = Serve::start(&args);
    assert_eq!(events_of(&server, "/app/api"), 2500);
    assert!(events_of(&server, "/vigil/access") >= before);

    let out = ok(&server, &["logs", "delete", "/app/api"]);
    assert!(out.contains("deleted"), "{out}");
    assert!(groups(&server).iter().all(|g| g["name"] != "/app/api"));
    let (success, _, stderr) = run(&server, &["logs", "delete", "/app/api"]);
    assert!(!success);
    assert!(
        stderr.contains("404") || stderr.contains("does not exist"),
        "{stderr}"
    );
}

#[test]
fn test_pattern_runs_locally_on_a_file() {
    let sample = tempfile::NamedTempFile::new().unwrap_or_else(|e| panic!("{e}"));
    std::fs::write(
        sample.path(),
        "127.0.0.1 frank GET /a 200 512\n10.0.0.2 - POST /b 503 17\n10.0.0.3 - GET /c 500 9\n",
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let path = sample.path().to_str().unwrap_or_default();
    let (success, stdout, stderr) = cli(&[
        "logs",
        "test-pattern",
        "[ip, user, ..., status = 5*, bytes]",
        "--file",
        path,
    ]);
    assert!(success, "{stderr}");
    assert!(stdout.contains("2 of 3 events matched"), "{stdout}");
    assert!(stdout.contains("$status=503"), "{stdout}");
    let (success, stdout, _) = cli(&[
        "logs",
        "test-pattern",
        "[ip, user, ..., status = 5*, bytes]",
        "--file",
        path,
        "--output",
        "json",
    ]);
    assert!(success);
    let value: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(value["matches"][1]["line"], 3);
    assert_eq!(value["matches"][1]["extracted"]["$bytes"], "9");
    let (success, _, stderr) = cli(&["logs", "test-pattern", "{ $.a = }", "--file", path]);
    assert!(!success);
    assert!(stderr.contains("column 9"), "{stderr}");
}

#[test]
fn a_query_counts_what_was_sent() {
    let data = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let server = Serve::start(&[OsStr::new("--data-dir"), data.path().as_os_str()]);
    let lines = tempfile::NamedTempFile::new().unwrap_or_else(|e| panic!("{e}"));
    let text: String = (0..300)
        .map(|i| {
            format!(
                "{{\"status\": {}, \"route\": \"/r{}\"}}\n",
                if i % 3 == 0 { 500 } else { 200 },
                i % 2
            )
        })
        .collect();
    std::fs::write(lines.path(), text).unwrap_or_else(|e| panic!("{e}"));
    let path = lines.path().to_str().unwrap_or_default();
    ok(&server, &["logs", "put", "/app/api", "h", "--file", path]);
    let out = ok(
        &server,
        &[
            "logs",
            "query",
            "-g",
            "/app/api",
            "--since",
            "1h",
            "--output",
            "json",
            "filter status >= 500 | stats count(*) as errors by route | sort route asc",
        ],
    );
    let value: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(value["matched"], 100, "{out}");
    assert_eq!(value["rows"][0]["route"], "/r0");
    assert_eq!(value["rows"][0]["errors"], 50);
    assert_eq!(value["rows"][1]["errors"], 50);
    let table = ok(
        &server,
        &["logs", "query", "-g", "/app/api", "stats count(*)"],
    );
    assert!(
        table.contains("count(*)") && table.contains("300"),
        "{table}"
    );
    let (success, _, stderr) = run(
        &server,
        &["logs", "query", "-g", "/app/api", "filter status >"],
    );
    assert!(!success);
    assert!(stderr.contains("column"), "{stderr}");
}
