//! Black-box tests of `vigil alarms ...` against a real `vigil serve` on
//! port 0 with its own data directory.

mod common;

use std::ffi::OsStr;
use std::path::Path;

use common::{Serve, ok, run};

fn serve() -> (Serve, tempfile::TempDir) {
    let data = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let server = Serve::start(&[OsStr::new("--data-dir"), data.path().as_os_str()]);
    (server, data)
}

fn json(text: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not json ({e}): {text}"))
}

fn write(dir: &Path, file: &str, body: &str) -> String {
    let path = dir.join(file);
    std::fs::write(&path, body).unwrap_or_else(|e| panic!("{e}"));
    path.to_string_lossy().into_owned()
}

const ORDERS_ALARM: &str = r#"{"namespace": "Shop", "metric_name": "Orders",
    "dimensions": {"region": "eu"}, "statistic": "Sum", "period": 60,
    "evaluation_periods": 3, "datapoints_to_alarm": 2, "threshold": 100,
    "comparison_operator": "GreaterThanThreshold", "description": "too many orders"}"#;

#[test]
fn put_list_get_set_state_history_delete_round_trip() {
    let (server, data) = serve();
    let file = write(data.path(), "alarm.json", ORDERS_ALARM);
    ok(&server, &["alarms", "put", "cli-orders", "--file", &file]);

    let got = json(&ok(&server, &["alarms", "get", "cli-orders"]));
    assert_eq!(got["name"], "cli-orders");
    assert_eq!(got["alarm_type"], "metric");
    assert_eq!(got["threshold"].as_f64(), Some(100.0));
    assert_eq!(got["description"], "too many orders");
    assert_eq!(
        got["state_value"], "INSUFFICIENT_DATA",
        "a new alarm: {got}"
    );

    let table = ok(&server, &["alarms", "list"]);
    let row = table
        .lines()
        .find(|l| l.starts_with("cli-orders "))
        .unwrap_or_else(|| panic!("no row for the alarm in\n{table}"));
    assert!(
        row.contains(" metric ") && row.contains("INSUFFICIENT_DATA"),
        "{row}"
    );
    assert!(
        row.contains("Shop/Orders{region=eu} Sum > 100 (2 of 3 × 60s)"),
        "{row}"
    );
    assert!(
        table.lines().next().is_some_and(|h| h.starts_with("name")),
        "{table}"
    );

    // A name in the file must match the command line's.
    let clash = write(
        data.path(),
        "clash.json",
        r#"{"name": "other", "alarm_rule": "TRUE"}"#,
    );
    let (success, _, stderr) = run(&server, &["alarms", "put", "cli-orders", "--file", &clash]);
    assert!(!success && stderr.contains("`name`"), "{stderr}");
    // The server's validation reaches the user, naming the field.
    let bad = write(
        data.path(),
        "bad.json",
        r#"{"namespace": "Shop", "metric_name": "Orders",
        "statistic": "Sum", "period": 7, "evaluation_periods": 1, "threshold": 1,
        "comparison_operator": "GreaterThanThreshold"}"#,
    );
    let (success, _, stderr) = run(&server, &["alarms", "put", "cli-bad", "--file", &bad]);
    assert!(!success, "a period of 7 s must be refused");
    assert!(
        stderr.contains("400") && stderr.contains("period"),
        "{stderr}"
    );

    ok(
        &server,
        &[
            "alarms",
            "set-state",
            "cli-orders",
            "--state",
            "ALARM",
            "--reason",
            "testing the pager",
            "--data",
            r#"{"ticket": 42}"#,
        ],
    );
    let history = json(&ok(
        &server,
        &["alarms", "history", "cli-orders", "--output", "json"],
    ));
    let items = history["items"].as_array().cloned().unwrap_or_default();
    let forced = items
        .iter()
        .find(|i| i["item_type"] == "StateUpdate")
        .unwrap_or_else(|| panic!("no StateUpdate in {history}"));
    assert!(
        forced["summary"]
            .as_str()
            .is_some_and(|s| s.contains("ALARM")),
        "{forced}"
    );
    assert!(
        items
            .iter()
            .any(|i| i["item_type"] == "ConfigurationUpdate"),
        "{history}"
    );
    let table = ok(&server, &["alarms", "history", "cli-orders"]);
    let header: Vec<&str> = table
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .collect();
    assert_eq!(header, ["timestamp", "type", "summary"]);
    assert!(table.lines().any(|l| l.contains("StateUpdate")), "{table}");
    assert!(
        table
            .lines()
            .skip(1)
            .all(|l| l.contains('T') && l.contains('Z')),
        "{table}"
    );

    // --state filters on the server's side.
    let forced_list = json(&ok(
        &server,
        &["alarms", "list", "--state", "ALARM", "--output", "json"],
    ));
    let states: Vec<&str> = forced_list["alarms"]
        .as_array()
        .map(|a| a.iter().filter_map(|x| x["state_value"].as_str()).collect())
        .unwrap_or_default();
    assert!(states.iter().all(|s| *s == "ALARM"), "{forced_list}");

    // A composite over it blocks its deletion until the composite is gone.
    let rule = write(
        data.path(),
        "rule.json",
        r#"{"alarm_rule": "ALARM(\"cli-orders\") AND TRUE"}"#,
    );
    ok(
        &server,
        &["alarms", "put", "cli-composite", "--file", &rule],
    );
    let listed = ok(&server, &["alarms", "list"]);
    assert!(
        listed.lines().any(|l| l.starts_with("cli-composite ")
            && l.contains("composite")
            && l.contains("ALARM(\"cli-orders\") AND TRUE")),
        "{listed}"
    );
    let (success, _, stderr) = run(&server, &["alarms", "delete", "cli-orders"]);
    assert!(!success && stderr.contains("409"), "{stderr}");
    ok(&server, &["alarms", "delete", "cli-composite"]);
    ok(&server, &["alarms", "delete", "cli-orders"]);
    let (success, _, stderr) = run(&server, &["alarms", "get", "cli-orders"]);
    assert!(!success && stderr.contains("404"), "{stderr}");
}

#[test]
fn export_writes_prometheus_rules_and_lists_what_it_skips() {
    let (server, data) = serve();
    let latency = write(
        data.path(),
        "latency.json",
        r#"{"namespace": "Vigil/Function",
        "metric_name": "Duration", "extended_statistic": "p99", "period": 60,
        "evaluation_periods": 3, "threshold": 250,
        "comparison_operator": "GreaterThanThreshold"}"#,
    );
    ok(
        &server,
        &["alarms", "put", "cli-latency", "--file", &latency],
    );
    let orders = write(data.path(), "orders.json", ORDERS_ALARM);
    ok(&server, &["alarms", "put", "cli-orders", "--file", &orders]);

    let out = data.path().join("rules.yml");
    let path = out.to_string_lossy().into_owned();
    let (success, stdout, stderr) = run(
        &server,
        &[
            "alarms",
            "export",
            "--format",
            "prometheus",
            "--output",
            &path,
        ],
    );
    assert!(success, "{stderr}");
    assert!(stdout.is_empty(), "{stdout}");
    let yaml = std::fs::read_to_string(&out).unwrap_or_else(|e| panic!("{e}"));
    assert!(yaml.contains("groups:"), "{yaml}");
    assert!(yaml.contains("- alert: \"cli_latency\""), "{yaml}");
    assert!(yaml.contains("histogram_quantile(0.99"), "{yaml}");
    assert!(
        yaml.contains("vigil_function_duration_seconds_bucket"),
        "{yaml}"
    );
    // /metrics shows milliseconds in seconds: 250 ms is 0.25 there.
    assert!(yaml.contains(") > 0.25"), "{yaml}");
    assert!(
        !yaml.contains("cli_orders"),
        "a custom metric never reaches /metrics: {yaml}"
    );
    let skipped = stderr
        .lines()
        .find(|l| l.starts_with("skipped cli-orders: "))
        .unwrap_or_else(|| panic!("cli-orders is not reported as skipped: {stderr}"));
    assert!(
        skipped.len() > "skipped cli-orders: ".len(),
        "no reason: {skipped}"
    );

    // To stdout without --output: the same file.
    let (success, stdout, _) = run(&server, &["alarms", "export", "--format", "prometheus"]);
    assert!(success);
    assert_eq!(stdout, yaml);
}
