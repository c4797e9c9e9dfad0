//! Router tests of the gateway: keys, throttling, concurrency, timeout.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, Bytes, HttpBody};
use axum::http::{Request, StatusCode};
use governor::clock::FakeRelativeClock;
use tower::ServiceExt;

use super::throttle::GatewayClock;
use super::*;
use crate::access_log::AccessLog;
use crate::config::Config;
use crate::state::AppState;
use crate::test_util::{DEMO_ROW, MemorySink, assert_error, demo_features, send};

pub(crate) const SCORE_KEY: &str = "vgl_score_key";
pub(crate) const ADMIN_KEY: &str = "vgl_admin_key";
const OFF_KEY: &str = "vgl_disabled";
const OTHER_KEY: &str = "vgl_other_model";

/// A config serving the demo model with `extra` TOML appended.
pub(crate) fn config_with(extra: &str) -> Config {
    let demo = crate::DEMO_MODEL;
    let dir = std::env::temp_dir().join(format!("vigil-gw-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("fraud.json");
    if !path.exists() {
        std::fs::write(&path, demo).expect("write model");
    }
    let text = format!(
        "[[models]]\nname = \"fraud\"\npath = \"{}\"\n\n{extra}",
        path.display()
    );
    Config::from_toml(&text).unwrap_or_else(|err| panic!("{err:#}\n{text}"))
}

/// The `[[keys]]` block of the tests.
pub(crate) fn keys_toml() -> String {
    format!(
        r#"
[[keys]]
name = "checkout"
hash = "{}"

[[keys]]
name = "ops"
hash = "{}"
roles = ["admin"]

[[keys]]
name = "retired"
hash = "{}"
enabled = false

[[keys]]
name = "elsewhere"
hash = "{}"
models = []
"#,
        hash_key(SCORE_KEY),
        hash_key(ADMIN_KEY),
        hash_key(OFF_KEY),
        hash_key(OTHER_KEY)
    )
}

fn state_on(config: &Config) -> (AppState, FakeRelativeClock) {
    let clock = FakeRelativeClock::default();
    let state = AppState::with_clock(config, GatewayClock::Fake(clock.clone())).expect("state");
    (state, clock)
}

pub(crate) fn score_request(key: Option<(&str, &str)>, body: &str) -> Request<Body> {
    let mut builder = Request::builder()
        .method("POST")
        .uri("/v1/models/fraud/score")
        .header("content-type", "application/json");
    if let Some((header, value)) = key {
        builder = builder.header(header, value);
    }
    builder.body(Body::from(body.to_owned())).expect("request")
}

fn body() -> String {
    format!("{{\"features\": {}}}", demo_features(&DEMO_ROW))
}

fn bearer(key: &str) -> Option<(&'static str, String)> {
    Some(("authorization", format!("Bearer {key}")))
}

async fn score_with(state: &AppState, key: Option<(&str, String)>) -> crate::test_util::Answer {
    let key = key.as_ref().map(|(h, v)| (*h, v.as_str()));
    send(state, score_request(key, &body())).await
}

#[tokio::test]
async fn without_keys_scoring_is_open_and_admin_only_on_loopback() {
    let (state, _) = state_on(&config_with(""));
    assert_eq!(score_with(&state, None).await.status, StatusCode::OK);
    let flush = Request::delete("/api/cache")
        .body(Body::empty())
        .expect("request");
    assert_eq!(send(&state, flush).await.status, StatusCode::OK);
    state
        .gateway()
        .set_listen_addr("0.0.0.0:8080".parse().expect("addr"));
    let flush = Request::delete("/api/cache")
        .body(Body::empty())
        .expect("request");
    let answer = send(&state, flush).await;
    assert_error(&answer, StatusCode::FORBIDDEN, "forbidden", &["admin key"]);
    // Scoring stays open on any address.
    assert_eq!(score_with(&state, None).await.status, StatusCode::OK);
}

#[tokio::test]
async fn keys_are_required_checked_and_scoped() {
    let (state, _) = state_on(&config_with(&keys_toml()));
    let answer = score_with(&state, None).await;
    assert_error(
        &answer,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        &["missing api key"],
    );
    let answer = score_with(&state, bearer("vgl_nope")).await;
    assert_error(
        &answer,
        StatusCode::FORBIDDEN,
        "forbidden",
        &["unknown api key"],
    );
    let answer = score_with(&state, bearer(OFF_KEY)).await;
    assert_error(
        &answer,
        StatusCode::FORBIDDEN,
        "forbidden",
        &["`retired`", "disabled"],
    );
    let answer = score_with(&state, bearer(OTHER_KEY)).await;
    assert_error(
        &answer,
        StatusCode::FORBIDDEN,
        "forbidden",
        &["`elsewhere`", "model `fraud`"],
    );
    let answer = score_with(&state, Some(("authorization", "Basic abc".to_owned()))).await;
    assert_error(
        &answer,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
        &["Bearer KEY"],
    );

    assert_eq!(
        score_with(&state, bearer(SCORE_KEY)).await.status,
        StatusCode::OK
    );
    let answer = score_with(&state, Some(("x-api-key", SCORE_KEY.to_owned()))).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    // Admin keys may score too.
    assert_eq!(
        score_with(&state, bearer(ADMIN_KEY)).await.status,
        StatusCode::OK
    );

    // Model metadata is a model endpoint too.
    let meta = Request::get("/v2/models/fraud")
        .body(Body::empty())
        .expect("request");
    assert_eq!(send(&state, meta).await.status, StatusCode::UNAUTHORIZED);
    // Health and the document stay open.
    for uri in [
        "/v2/health/live",
        "/v2/health/ready",
        "/v2",
        "/openapi.json",
    ] {
        let request = Request::get(uri).body(Body::empty()).expect("request");
        assert_eq!(send(&state, request).await.status, StatusCode::OK, "{uri}");
    }

    let flush = |key: &str| {
        Request::delete("/api/cache")
            .header("x-api-key", key)
            .body(Body::empty())
            .expect("request")
    };
    let answer = send(&state, flush(SCORE_KEY)).await;
    assert_error(
        &answer,
        StatusCode::FORBIDDEN,
        "forbidden",
        &["`checkout`", "admin role"],
    );
    assert_eq!(send(&state, flush(ADMIN_KEY)).await.status, StatusCode::OK);
    // Keys are required for the admin API even on loopback once configured.
    let anonymous = Request::delete("/api/cache")
        .body(Body::empty())
        .expect("request");
    assert_eq!(
        send(&state, anonymous).await.status,
        StatusCode::UNAUTHORIZED
    );
}

#[tokio::test]
async fn the_key_name_reaches_the_access_log_never_the_key() {
    let sink = std::sync::Arc::new(MemorySink::default());
    let (state, _) = state_on(&config_with(&keys_toml()));
    let state = state.with_access_log(AccessLog::to_sink(sink.clone()));
    assert_eq!(
        score_with(&state, bearer(SCORE_KEY)).await.status,
        StatusCode::OK
    );
    assert_eq!(
        score_with(&state, bearer(OTHER_KEY)).await.status,
        StatusCode::FORBIDDEN
    );
    let lines = sink.0.lock().expect("not poisoned").clone();
    assert_eq!(lines.len(), 2);
    let first: serde_json::Value = serde_json::from_str(&lines[0]).expect("json");
    assert_eq!(first["key"], "checkout");
    assert_eq!(first["status"], 200);
    // A refused key is not attached: the request was not authenticated.
    let second: serde_json::Value = serde_json::from_str(&lines[1]).expect("json");
    assert_eq!(second["key"], serde_json::Value::Null);
    assert!(!lines.concat().contains(SCORE_KEY));
}

#[tokio::test]
async fn the_global_bucket_throttles_with_retry_after_and_refills_on_the_clock() {
    let config = config_with("[gateway]\nrate_per_s = 0.5\nburst = 2\n");
    let (state, clock) = state_on(&config);
    for _ in 0..2 {
        assert_eq!(score_with(&state, None).await.status, StatusCode::OK);
    }
    let misses = state.gateway().telemetry().snapshot();
    // Throttled even with a body the handler would reject: it never runs.
    let answer = send(&state, score_request(None, "{not json")).await;
    assert_error(
        &answer,
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_requests",
        &["rate limit"],
    );
    assert_eq!(answer.headers["retry-after"], "2");
    assert_eq!(
        state.gateway().telemetry().throttles(ThrottleReason::Rate),
        1
    );
    let stats = Request::get("/api/gateway/stats")
        .body(Body::empty())
        .expect("request");
    let stats = send(&state, stats).await;
    assert_eq!(stats.status, StatusCode::OK, "{}", stats.text);
    assert_eq!(
        stats.json["counters"][0],
        serde_json::json!({"name": "Throttles", "reason": "rate", "value": 1})
    );
    assert_eq!(stats.json["cache_backend"], "memory");
    // Throttled requests did not reach the cache (nor the model).
    assert_eq!(state.gateway().telemetry().snapshot(), {
        let mut expected = misses;
        expected[0].2 += 1;
        expected
    });
    // Health is never throttled.
    let live = Request::get("/v2/health/live")
        .body(Body::empty())
        .expect("request");
    assert_eq!(send(&state, live).await.status, StatusCode::OK);
    clock.advance(Duration::from_millis(1999));
    assert_eq!(
        score_with(&state, None).await.status,
        StatusCode::TOO_MANY_REQUESTS
    );
    clock.advance(Duration::from_millis(1));
    assert_eq!(score_with(&state, None).await.status, StatusCode::OK);
}

#[tokio::test]
async fn a_key_plan_throttles_only_that_key() {
    let extra = format!(
        "{}\n[[keys]]\nname = \"small\"\nhash = \"{}\"\nrate_per_s = 1.0\n",
        keys_toml(),
        hash_key("vgl_small")
    );
    let (state, clock) = state_on(&config_with(&extra));
    assert_eq!(
        score_with(&state, bearer("vgl_small")).await.status,
        StatusCode::OK
    );
    let answer = score_with(&state, bearer("vgl_small")).await;
    assert_error(
        &answer,
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_requests",
        &["api key's rate limit"],
    );
    assert_eq!(answer.headers["retry-after"], "1");
    assert_eq!(
        state
            .gateway()
            .telemetry()
            .throttles(ThrottleReason::KeyRate),
        1
    );
    assert_eq!(
        state.gateway().telemetry().throttles(ThrottleReason::Rate),
        0
    );
    // Another key is unaffected.
    assert_eq!(
        score_with(&state, bearer(SCORE_KEY)).await.status,
        StatusCode::OK
    );
    clock.advance(Duration::from_secs(1));
    assert_eq!(
        score_with(&state, bearer("vgl_small")).await.status,
        StatusCode::OK
    );
}

/// A request body that never arrives: keeps a request in flight.
struct PendingBody;

impl HttpBody for PendingBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;
    fn poll_frame(
        self: Pin<&mut Self>,
        _: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        Poll::Pending
    }
}

fn stuck_request() -> Request<Body> {
    Request::post("/v1/models/fraud/score")
        .header("content-type", "application/json")
        .body(Body::new(PendingBody))
        .expect("request")
}

#[tokio::test]
async fn over_the_concurrency_limit_is_refused_at_once() {
    for (status_config, status, code) in [
        ("", StatusCode::TOO_MANY_REQUESTS, "too_many_requests"),
        (
            "concurrency_status = 503\n",
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
        ),
    ] {
        let config = config_with(&format!(
            "[gateway]\nmax_concurrent_requests = 1\n{status_config}"
        ));
        let (state, _) = state_on(&config);
        let app = crate::app(state.clone());
        let stuck = tokio::spawn(app.oneshot(stuck_request()));
        // Let the stuck request take the permit.
        while state.gateway().telemetry().snapshot()[3].2 == 0 {
            tokio::task::yield_now().await;
        }
        let answer = score_with(&state, None).await;
        assert_error(&answer, status, code, &["max_concurrent_requests"]);
        assert_eq!(answer.headers["retry-after"], "1");
        assert_eq!(
            state
                .gateway()
                .telemetry()
                .throttles(ThrottleReason::Concurrency),
            1
        );
        stuck.abort();
        let _ = stuck.await;
        // The aborted request gave its permit back.
        assert_eq!(score_with(&state, None).await.status, StatusCode::OK);
    }
}

#[tokio::test]
async fn a_slow_request_gets_a_504() {
    let config = config_with("[gateway]\nrequest_timeout_ms = 30\n");
    let (state, _) = state_on(&config);
    let answer = send(&state, stuck_request()).await;
    assert_error(
        &answer,
        StatusCode::GATEWAY_TIMEOUT,
        "timeout",
        &["request_timeout_ms (30 ms)"],
    );
    assert_eq!(
        state.gateway().telemetry().snapshot()[4],
        (crate::telemetry::names::TIMEOUTS.name, None, 1)
    );
    // The permit was released.
    assert_eq!(score_with(&state, None).await.status, StatusCode::OK);
}

#[test]
fn key_config_problems_are_all_reported() {
    let text = format!(
        r#"
[[models]]
name = "fraud"
path = "x.json"

[gateway]
rate_per_s = -1.0
burst = 0
concurrency_status = 500

[[keys]]
name = "a"
hash = "plain-text-key"
roles = ["root"]

[[keys]]
name = "a"
hash = "{h}"
burst = 3
models = ["nope"]

[[keys]]
hash = "{h}"

[cache]
url = "http://localhost"
"#,
        h = hash_key("k")
    );
    let err = format!("{:#}", Config::from_toml(&text).expect_err("invalid"));
    for needle in [
        "gateway.rate_per_s: must be between 0 and 1e9, got -1",
        "gateway.burst: must be at least 1",
        "gateway.concurrency_status: must be 429 or 503, got 500",
        "keys[0] (`a`): hash must be \"sha256:\" and 64 hex digits",
        "keys[0] (`a`): unknown role \"root\"",
        "keys[1] (`a`): duplicate key name `a`",
        "keys[1] (`a`): burst needs rate_per_s",
        "keys[1] (`a`): models lists `nope`",
        "keys[2]: missing required key `name`",
        "keys[2]: the same hash is used by another key",
        "cache.url: must start with redis://",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
}
