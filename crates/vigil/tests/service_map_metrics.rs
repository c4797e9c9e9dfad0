//! The service map's figures reach the metric store through the real
//! binary: requests traced, a graceful shutdown (which hands out the
//! minutes not settled yet), a restart on the same data directory, and
//! `Vigil/ServiceMap` answers the exact count.

mod common;

use std::ffi::OsStr;
use std::time::{SystemTime, UNIX_EPOCH};

use common::{Serve, http, score_body, traced_config};
use serde_json::Value;

#[test]
fn a_graceful_shutdown_puts_the_service_maps_minutes_into_the_metric_store() {
    let dir = tempfile::tempdir().expect("test setup");
    let config = traced_config(dir.path(), "");
    let args = [
        OsStr::new("--data-dir"),
        dir.path().as_os_str(),
        OsStr::new("--config"),
        config.as_os_str(),
    ];
    let start_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_millis() as i64;
    let server = Serve::start(&args);
    const SENT: u64 = 6;
    for i in 0..SENT {
        let (status, body) = http(
            &server.addr,
            "POST",
            "/v1/models/fraud/score",
            Some(&score_body(&format!("map-{i}"), 30.0 + i as f64)),
        );
        assert_eq!(status, 200, "{body}");
    }
    // The writer adds the traces to the map a few ms after each answer.
    std::thread::sleep(std::time::Duration::from_millis(500));
    assert_eq!(server.terminate(), Some(0));

    let server = Serve::start(&args);
    let start = (start_ms / 60_000 - 1) * 60_000;
    let uri = format!(
        "/api/metrics/Vigil%2FServiceMap/Requests?dim.Caller=client&dim.Callee=service:vigil\
         &stat=Sum&period=60&start={start}&end={}",
        start + 10 * 60_000
    );
    let (status, body) = http(&server.addr, "GET", &uri, None);
    assert_eq!(status, 200, "{body}");
    let reply: Value = serde_json::from_str(&body).expect("JSON");
    let sum: f64 = reply["values"]["Sum"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(Value::as_f64)
        .sum();
    assert_eq!(sum, SENT as f64, "{body}");
    let uri = format!(
        "/api/metrics/Vigil%2FServiceMap/ResponseTime?dim.Caller=client&dim.Callee=service:vigil\
         &stat=SampleCount&stat=p99&period=600&start={start}&end={}",
        start + 10 * 60_000
    );
    let (status, body) = http(&server.addr, "GET", &uri, None);
    assert_eq!(status, 200, "{body}");
    let reply: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(reply["values"]["SampleCount"][0], SENT as f64, "{body}");
    let p99 = reply["values"]["p99"][0].as_f64().unwrap_or(-1.0);
    assert!(p99 > 0.0 && p99 < 5.0, "{body}");
}
