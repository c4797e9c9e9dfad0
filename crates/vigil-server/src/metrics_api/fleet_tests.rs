//! The metrics routes of two replicas sharing one PostgreSQL
//! (`metrics.url`): each answers the fleet's merged figures, and `503`
//! when the shared store is gone. Needs `VIGIL_TEST_POSTGRES_URL`.

use std::sync::Arc;

use axum::http::StatusCode;
use serde_json::json;
use vigil_metrics::fleet::Fleet;
use vigil_metrics::service::MetricsService;

use crate::state::AppState;
use crate::test_util::{assert_error, demo_state, json_request, send};

fn base_url() -> String {
    match std::env::var("VIGIL_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "VIGIL_TEST_POSTGRES_URL is not set: this test needs a PostgreSQL server \
             (`source .ci/services.sh; start_services` starts one and sets it)"
        ),
    }
}

async fn admin(base: &str) -> tokio_postgres::Client {
    let (client, conn) = tokio_postgres::connect(base, tokio_postgres::NoTls)
        .await
        .expect("connect to VIGIL_TEST_POSTGRES_URL");
    tokio::spawn(conn);
    client
}

/// A replica: the demo state with a metric store joined to `url`.
async fn replica(url: &str) -> (AppState, Arc<MetricsService>) {
    let state = demo_state();
    let registry = Arc::clone(state.gateway().telemetry().registry());
    let tiers = vigil_metrics::tsdb::TsdbConfig::default().tiers;
    let fleet = Fleet::connect(url, tiers).await.expect("join the fleet");
    let service = Arc::new(
        MetricsService::in_memory(vigil_metrics::tsdb::TsdbConfig::default(), registry)
            .expect("in-memory metric store")
            .with_fleet(fleet),
    );
    (state.with_metrics(Arc::clone(&service)), service)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs VIGIL_TEST_POSTGRES_URL (started by .ci/run)"]
async fn each_replica_answers_the_fleets_figures_and_503_without_its_store() {
    let base = base_url();
    let name = format!(
        "vigil_fleet_routes_{}_{}",
        std::process::id(),
        vigil_metrics::service::now_ms() % 1_000_000_000
    );
    let admin = admin(&base).await;
    admin
        .batch_execute(&format!("CREATE DATABASE {name}"))
        .await
        .expect("create database");
    let url = vigil_store::postgres::url_with_database(&base, &name);
    let (a, service_a) = replica(&url).await;
    let (b, service_b) = replica(&url).await;

    let minute = (vigil_metrics::service::now_ms() - 600_000).div_euclid(60_000) * 60_000;
    for (app, values, offset) in [(&a, json!([10, 20]), 1_000), (&b, json!([30, 40]), 2_000)] {
        let body = json!({"metrics": [{"name": "Basket", "unit": "Count", "values": values,
            "timestamp": minute + offset, "resolution": 1}]});
        let answer = send(
            app,
            json_request("POST", "/api/metrics/Shop", &body.to_string()),
        )
        .await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    }
    service_a.flush_fleet().await;
    service_b.flush_fleet().await;

    let get = format!(
        "/api/metrics/Shop/Basket?stat=Sum&stat=SampleCount&stat=p50&period=60&start={minute}&end={}",
        minute + 60_000
    );
    for app in [&a, &b] {
        let answer = send(app, json_request("GET", &get, "")).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
        assert_eq!(
            answer.json["timestamps"],
            json!([minute]),
            "{}",
            answer.text
        );
        assert_eq!(
            answer.json["values"]["Sum"],
            json!([100.0]),
            "{}",
            answer.text
        );
        assert_eq!(
            answer.json["values"]["SampleCount"],
            json!([4.0]),
            "{}",
            answer.text
        );
        let p50 = answer.json["values"]["p50"][0]
            .as_f64()
            .expect("p50 from the merged sketch");
        assert!((p50 - 20.0).abs() <= 0.2 + 1e-9, "p50 {p50}");
    }
    let math = json!({"metrics": [
        {"id": "s", "metric_stat": {"namespace": "Shop", "metric_name": "Basket", "period": 60, "stat": "Sum"}, "return_data": false},
        {"id": "half", "expression": "s / 2"}],
        "start": minute, "end": minute + 60_000});
    let answer = send(
        &b,
        json_request("POST", "/api/metrics/query", &math.to_string()),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(
        answer.json["results"][0]["values"],
        json!([50.0]),
        "{}",
        answer.text
    );
    let answer = send(&a, json_request("GET", "/api/metrics?namespace=Shop", "")).await;
    assert_eq!(
        answer.json["series"].as_array().map(Vec::len),
        Some(1),
        "{}",
        answer.text
    );
    let answer = send(&a, json_request("GET", "/api/alarms", "")).await;
    assert_eq!(answer.json["evaluator"]["mode"], "fleet", "{}", answer.text);

    // The shared store goes away: a 503, with no detail in the body.
    admin
        .batch_execute(&format!("DROP DATABASE {name} WITH (FORCE)"))
        .await
        .expect("drop database");
    for path in [get.as_str(), "/api/metrics"] {
        let answer = send(&a, json_request("GET", path, "")).await;
        assert_error(
            &answer,
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            &["fleet's metric store"],
        );
        assert!(!answer.text.contains(&name), "{}", answer.text);
    }
    let answer = send(
        &b,
        json_request("POST", "/api/metrics/query", &math.to_string()),
    )
    .await;
    assert_error(
        &answer,
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        &["fleet's metric store"],
    );
    // Custom metrics are still acknowledged (stored locally, queued).
    let body = json!({"metrics": [{"name": "Basket", "value": 1, "resolution": 1}]});
    let answer = send(
        &a,
        json_request("POST", "/api/metrics/Shop", &body.to_string()),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
}
