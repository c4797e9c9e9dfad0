//! The real binary with Redis as the prediction cache and PostgreSQL as
//! the inference log, every request sampled: the service map shows both
//! as remote nodes, each edge counting exactly the requests sent, and each
//! stored trace has the spans of the stages the request passed. Needs
//! `VIGIL_TEST_REDIS_URL` and `VIGIL_TEST_POSTGRES_URL` (started by
//! `.ci/run`): ignored unless run with `-- --include-ignored`, and then a
//! failure without them.

mod common;

use std::time::{Duration, Instant};

use common::{Serve, http, traced_config};
use serde_json::Value;

fn env(name: &str) -> String {
    match std::env::var(name) {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "{name} is not set: this test needs Redis and PostgreSQL \
             (`source .ci/services.sh; start_redis; start_postgres` starts them and sets it)"
        ),
    }
}

fn edge<'a>(graph: &'a Value, caller: &str, callee: &str) -> Option<&'a Value> {
    graph["edges"]
        .as_array()?
        .iter()
        .find(|e| e["caller"] == caller && e["callee"] == callee)
}

#[test]
#[ignore = "needs VIGIL_TEST_REDIS_URL and VIGIL_TEST_POSTGRES_URL (started by .ci/run)"]
fn the_service_map_counts_every_request_to_redis_and_postgresql() {
    let redis = env("VIGIL_TEST_REDIS_URL");
    let postgres = common::fresh_database(&env("VIGIL_TEST_POSTGRES_URL"), "vigil_traces_bb");
    let dir = tempfile::tempdir().expect("test setup");
    // Every scoring request is sampled, the test's own admin calls never
    // (so the client → vigil edge counts the scoring requests alone).
    // Each test run scores new rows (the amount carries the run's pid), so
    // every lookup misses the shared cache and reaches Redis.
    let config = traced_config(
        dir.path(),
        &format!(
            "[cache]\nurl = \"{redis}\"\ntimeout_ms = 1000\n\n[store]\nurl = \"{postgres}\"\n"
        ),
    );
    let server = Serve::start(&[
        std::ffi::OsStr::new("--data-dir"),
        dir.path().as_os_str(),
        std::ffi::OsStr::new("--config"),
        config.as_os_str(),
    ]);
    const SENT: u64 = 12;
    let salt = f64::from(std::process::id() % 100_000);
    let mut trace_ids = Vec::new();
    for i in 0..SENT {
        let body = format!(
            r#"{{"features": {{"amount": {}, "merchant_category": 5, "hour": 3, "card_age_days": 12,
            "tx_last_hour": 4, "distance_from_home_km": 800, "foreign": 1, "new_device": 1}}}}"#,
            salt * 1000.0 + i as f64
        );
        let reply = common::try_http(&server.addr, "POST", "/v1/models/fraud/score", Some(&body))
            .expect("score");
        assert_eq!(reply.status, 200, "{}", reply.body);
        let header = reply
            .header("traceresponse")
            .expect("traceresponse")
            .to_owned();
        assert!(header.ends_with("-01"), "{header}");
        trace_ids.push(header.split('-').nth(1).expect("test setup").to_owned());
    }

    // The writer stores traces a few ms after each answer.
    let deadline = Instant::now() + Duration::from_secs(20);
    let graph = loop {
        let (status, text) = http(&server.addr, "GET", "/api/service-map", None);
        assert_eq!(status, 200, "{text}");
        let graph: Value = serde_json::from_str(&text).expect("test setup");
        let done = ["remote:redis", "remote:postgresql"].iter().all(|callee| {
            graph["edges"].as_array().is_some_and(|edges| {
                edges
                    .iter()
                    .filter(|e| e["callee"] == *callee)
                    .map(|e| e["count"].as_u64().unwrap_or(0))
                    .sum::<u64>()
                    >= SENT
            })
        });
        if done || Instant::now() > deadline {
            break graph;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let redis_edge = edge(&graph, "stage:vigil::cache", "remote:redis")
        .unwrap_or_else(|| panic!("no cache → redis edge in {graph:#}"));
    assert_eq!(redis_edge["count"], SENT, "{redis_edge}");
    assert_eq!(redis_edge["ok"], SENT, "{redis_edge}");
    let pg_edge = edge(&graph, "stage:vigil::inference_log", "remote:postgresql")
        .unwrap_or_else(|| panic!("no inference_log → postgresql edge in {graph:#}"));
    assert_eq!(pg_edge["count"], SENT, "{pg_edge}");
    let client_edge = edge(&graph, "client", "service:vigil")
        .unwrap_or_else(|| panic!("no client → vigil edge in {graph:#}"));
    assert_eq!(client_edge["count"], SENT, "{client_edge}");
    let nodes: Vec<&str> = graph["nodes"]
        .as_array()
        .expect("test setup")
        .iter()
        .filter_map(|n| n["id"].as_str())
        .collect();
    for node in [
        "client",
        "service:vigil",
        "remote:redis",
        "remote:postgresql",
    ] {
        assert!(nodes.contains(&node), "{node} missing from {nodes:?}");
    }

    // One trace: the stages, with Redis and PostgreSQL as remote children.
    let (status, text) = http(
        &server.addr,
        "GET",
        &format!("/api/traces/{}", trace_ids[0]),
        None,
    );
    assert_eq!(status, 200, "{text}");
    let trace: Value = serde_json::from_str(&text).expect("test setup");
    let spans = trace["spans"].as_array().expect("test setup");
    let by_name = |name: &str| spans.iter().find(|s| s["name"] == name).cloned();
    let cache = by_name("cache").expect("a cache span");
    let redis_span = by_name("redis").expect("a redis span");
    assert_eq!(redis_span["parent_id"], cache["span_id"]);
    assert_eq!(redis_span["remote"], true);
    let log = by_name("inference_log").expect("an inference_log span");
    let pg = by_name("postgresql").expect("a postgresql span");
    assert_eq!(pg["parent_id"], log["span_id"]);

    // The trace id is in the inference record too.
    let (status, text) = http(&server.addr, "GET", "/api/inferences?limit=100", None);
    assert_eq!(status, 200, "{text}");
    assert!(
        text.contains(&trace_ids[0]),
        "the record carries the trace id: {text}"
    );
}
