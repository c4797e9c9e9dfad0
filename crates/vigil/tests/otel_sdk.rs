//! The real binary against the OpenTelemetry Python SDK as an instrumented
//! caller (`python/otel_sdk.py`): a `checkout` service's client spans,
//! propagated with `traceparent` and with the AWS X-Ray propagator's
//! `X-Amzn-Trace-Id`, exported to `POST /v1/traces` by the SDK's OTLP/HTTP
//! exporter (protobuf, gzip). Each stored trace has the caller's span as
//! the parent of Vigil's root, and the service map shows checkout calling
//! vigil. Needs `VIGIL_TEST_PYTHON` (a python with .ci/requirements.txt,
//! made by .ci/python.sh): ignored unless run with `-- --include-ignored`,
//! and then a failure without it.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{Serve, http, traced_config, workspace};
use serde_json::Value;

fn edge<'a>(graph: &'a Value, caller: &str, callee: &str) -> Option<&'a Value> {
    graph["edges"]
        .as_array()?
        .iter()
        .find(|e| e["caller"] == caller && e["callee"] == callee)
}

/// The stored spans of `trace` once both the caller's and Vigil's root
/// are there.
fn stored(addr: &str, trace: &str) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (status, text) = http(addr, "GET", &format!("/api/traces/{trace}"), None);
        let spans: Vec<Value> = serde_json::from_str::<Value>(&text)
            .ok()
            .and_then(|v| v["spans"].as_array().cloned())
            .unwrap_or_default();
        let both = spans.iter().any(|s| s["service"] == "checkout")
            && spans.iter().any(|s| s["name"] == "vigil");
        if both {
            return spans;
        }
        assert!(
            Instant::now() < deadline,
            "trace {trace} never held both spans: {status} {text}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
#[ignore = "needs VIGIL_TEST_PYTHON (started by .ci/run)"]
fn an_otel_sdk_callers_spans_join_vigils_traces_and_the_service_map() {
    let Ok(python) = std::env::var("VIGIL_TEST_PYTHON") else {
        panic!(
            "VIGIL_TEST_PYTHON must name a python with opentelemetry-sdk, \
             opentelemetry-exporter-otlp-proto-http and opentelemetry-propagator-aws-xray \
             (.ci/python.sh makes one)"
        );
    };
    let dir = tempfile::tempdir().expect("test setup");
    // The caller sampled its spans; Vigil samples every scoring request and
    // neither the exports nor the test's admin calls, so the map's edges
    // are the scoring calls alone.
    let config = traced_config(
        dir.path(),
        "[[traces.sampling_rules]]\nname = \"no-otlp\"\npriority = 2\nreservoir = 0\n\
         fixed_rate = 0.0\nurl_path = \"/v1/traces\"\n",
    );
    let server = Serve::start(&[
        std::ffi::OsStr::new("--data-dir"),
        dir.path().as_os_str(),
        std::ffi::OsStr::new("--config"),
        config.as_os_str(),
    ]);
    let script = workspace().join("crates/vigil/tests/python/otel_sdk.py");
    let output = Command::new(&python)
        .arg(&script)
        .arg(&server.addr)
        .output()
        .unwrap_or_else(|err| panic!("run {python}: {err}"));
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "otel_sdk.py failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    let ids: Value = stdout
        .lines()
        .last()
        .and_then(|line| serde_json::from_str(line).ok())
        .unwrap_or_else(|| panic!("no ids printed:\n{stdout}\n{stderr}"));

    for propagation in ["w3c", "xray"] {
        let trace = ids[propagation]["trace_id"].as_str().expect("trace id");
        let caller = ids[propagation]["span_id"].as_str().expect("span id");
        let spans = stored(&server.addr, trace);
        let checkout: Vec<&Value> = spans
            .iter()
            .filter(|s| s["service"] == "checkout")
            .collect();
        assert_eq!(checkout.len(), 1, "{propagation}: {spans:#?}");
        let checkout = checkout[0];
        assert_eq!(checkout["span_id"], caller, "{propagation}: {checkout}");
        assert_eq!(checkout["kind"], "client", "{propagation}: {checkout}");
        assert!(checkout.get("parent_id").is_none(), "{checkout}");
        let root = spans
            .iter()
            .find(|s| s["name"] == "vigil")
            .expect("vigil's root");
        assert_eq!(root["parent_id"], caller, "{propagation}: {root}");
        assert_eq!(root["service"], "vigil");
        if propagation == "xray" {
            // The Parent Vigil answered with is its root span.
            assert_eq!(root["span_id"], ids["xray"]["vigil_root"], "{root}");
        }
    }

    let deadline = Instant::now() + Duration::from_secs(20);
    let graph = loop {
        let (status, text) = http(&server.addr, "GET", "/api/service-map", None);
        assert_eq!(status, 200, "{text}");
        let graph: Value = serde_json::from_str(&text).expect("a graph");
        let calls = edge(&graph, "service:checkout", "service:vigil")
            .and_then(|e| e["count"].as_u64())
            .unwrap_or(0);
        if calls >= 2 || Instant::now() > deadline {
            break graph;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let calls = edge(&graph, "service:checkout", "service:vigil")
        .unwrap_or_else(|| panic!("no checkout → vigil edge in {graph:#}"));
    assert_eq!(calls["count"], 2, "{calls}");
    assert_eq!(calls["ok"], 2, "{calls}");
    let roots = edge(&graph, "client", "service:checkout")
        .unwrap_or_else(|| panic!("no client → checkout edge in {graph:#}"));
    assert_eq!(roots["count"], 2, "{roots}");
    // Both scoring calls had a caller: none counts as called by the client.
    assert!(
        edge(&graph, "client", "service:vigil").is_none(),
        "{graph:#}"
    );
    let nodes: Vec<&str> = graph["nodes"]
        .as_array()
        .expect("nodes")
        .iter()
        .filter_map(|n| n["id"].as_str())
        .collect();
    assert!(nodes.contains(&"service:checkout"), "{nodes:?}");

    // The receiver counted what it took.
    let (status, text) = http(&server.addr, "GET", "/metrics", None);
    assert_eq!(status, 200);
    assert!(
        text.lines()
            .any(|l| l == "vigil_traces_otlp_received_spans_total 2"),
        "{text}"
    );
}
