//! Black-box: metric filters and EMF against a real `vigil serve` on port
//! 0. A filter from the config file and one made through the API count
//! events sent over HTTP; the data written at shutdown and the API's filter
//! are there after a restart; an EMF event's metrics are stored at once.

mod common;

use std::ffi::OsStr;

use common::{Serve, http};

fn json(body: &str) -> serde_json::Value {
    serde_json::from_str(body).unwrap_or_else(|e| panic!("{e}: {body}"))
}

fn ok(server: &Serve, method: &str, path: &str, body: Option<&str>) -> serde_json::Value {
    let (status, text) = http(&server.addr, method, path, body);
    assert_eq!(status, 200, "{method} {path}: {text}");
    json(&text)
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}

#[test]
fn filters_count_events_across_a_restart_and_emf_is_stored() {
    let data = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let config = data.path().join("vigil.toml");
    let model = common::workspace().join("crates/vigil-server/assets/demo-fraud.json");
    std::fs::write(
        &config,
        format!(
            r#"[[models]]
name = "fraud"
path = {:?}

[[logs.metric_filters]]
group = "/app"
name = "errors"
pattern = "ERROR"
metric = {{ name = "Errors", namespace = "App", value = 1, unit = "Count" }}
"#,
            model.display().to_string()
        ),
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let args = [
        OsStr::new("--config"),
        config.as_os_str(),
        OsStr::new("--data-dir"),
        data.path().as_os_str(),
    ];
    let server = Serve::start(&args);
    ok(&server, "PUT", "/api/logs/%2Fapp", Some("{}"));
    let filter = r#"{"pattern": "[level, ms]", "metric": {"name": "Ms", "namespace": "App", "value": "$ms", "unit": "Milliseconds"}}"#;
    ok(
        &server,
        "PUT",
        "/api/logs/%2Fapp/metric-filters/ms",
        Some(filter),
    );
    let list = ok(&server, "GET", "/api/logs/%2Fapp/metric-filters", None);
    let names: Vec<&str> = list["metric_filters"]
        .as_array()
        .map(|l| l.iter().filter_map(|f| f["name"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(names, vec!["errors", "ms"]);

    let t = now_ms();
    let emf = format!(
        r#"{{\"_aws\":{{\"Timestamp\":{t},\"CloudWatchMetrics\":[{{\"Namespace\":\"svc\",\"Dimensions\":[[\"Model\"]],\"Metrics\":[{{\"Name\":\"latencyMs\"}}]}}]}},\"Model\":\"fraud\",\"latencyMs\":[12,15,40]}}"#
    );
    let body = format!(
        r#"{{"events": [{{"timestamp": {t}, "message": "ERROR 30"}}, {{"timestamp": {t}, "message": "INFO 12"}},
            {{"timestamp": {t}, "message": "{emf}"}}]}}"#
    );
    let put = ok(&server, "POST", "/api/logs/%2Fapp/host-1", Some(&body));
    assert_eq!(put["accepted"], 3);
    assert_eq!(put["emf"]["metrics"], 1, "{put}");
    assert_eq!(put["emf"]["invalid"], serde_json::json!([]));
    // SIGTERM: the filters' last data are written on the way out.
    assert_eq!(server.terminate(), Some(0));

    let server = Serve::start(&args);
    let list = ok(&server, "GET", "/api/logs/%2Fapp/metric-filters", None);
    assert_eq!(
        list["metric_filters"].as_array().map(Vec::len),
        Some(2),
        "{list}"
    );
    let (start, end) = (t / 60_000 * 60_000, t / 60_000 * 60_000 + 60_000);
    let get = |series: &str, stat: &str| {
        let path = format!("/api/metrics/{series}stat={stat}&period=60&start={start}&end={end}");
        ok(&server, "GET", &path, None)["values"][stat][0].clone()
    };
    assert_eq!(get("App/Errors?unit=Count&", "Sum"), 1.0);
    assert_eq!(get("App/Ms?", "Sum"), 42.0);
    assert_eq!(get("App/Ms?", "SampleCount"), 2.0);
    assert_eq!(get("svc/latencyMs?dim.Model=fraud&", "Sum"), 67.0);
    let (status, text) = http(
        &server.addr,
        "DELETE",
        "/api/logs/%2Fapp/metric-filters/ms",
        None,
    );
    assert_eq!(status, 204, "{text}");
}
