//! Cache key rules and the in-process cache through the router.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use proptest::prelude::*;

use super::*;
use crate::gateway::tests::{config_with, score_request};
use crate::state::AppState;
use crate::test_util::{Answer, DEMO_ROW, DEMO_ROW_2, demo_features, send};

#[test]
fn missing_and_signed_zero_share_a_key_other_bits_do_not() {
    let quiet = f64::NAN;
    let other_nan = f64::from_bits(0x7ff0_0000_0000_0001);
    let negative_nan = -f64::NAN;
    assert_eq!(canonical_bits(quiet), canonical_bits(other_nan));
    assert_eq!(canonical_bits(quiet), canonical_bits(negative_nan));
    assert_eq!(canonical_bits(-0.0), canonical_bits(0.0));
    assert_ne!(canonical_bits(1.0), canonical_bits(1.0 + f64::EPSILON));
    assert_ne!(canonical_bits(0.0), canonical_bits(f64::MIN_POSITIVE));
    assert_ne!(canonical_bits(quiet), canonical_bits(f64::INFINITY));
}

proptest! {
    /// Two values share a key exactly when a tree cannot tell them apart.
    #[test]
    fn same_key_iff_same_value_up_to_nan_and_zero_sign(a in any::<f64>(), b in any::<f64>()) {
        let same = (a.is_nan() && b.is_nan()) || a.to_bits() == b.to_bits() || (a == 0.0 && b == 0.0);
        prop_assert_eq!(canonical_bits(a) == canonical_bits(b), same);
    }
}

fn state(extra: &str) -> AppState {
    AppState::from_config(&config_with(extra)).expect("state")
}

async fn score(state: &AppState, features: &str, no_cache: bool) -> Answer {
    let mut request = score_request(None, &format!("{{\"features\": {features}}}"));
    if no_cache {
        request
            .headers_mut()
            .insert("cache-control", HeaderValue::from_static("no-cache"));
    }
    send(state, request).await
}

fn cache_header(answer: &Answer) -> &str {
    answer.headers[CACHE_HEADER].to_str().expect("ascii")
}

#[tokio::test]
async fn second_identical_row_is_a_hit_whatever_the_key_order() {
    let state = state("");
    let features = demo_features(&DEMO_ROW);
    let first = score(&state, &features, false).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    assert_eq!(cache_header(&first), "miss");
    assert_eq!(first.json["cached"], false);
    let second = score(&state, &features, false).await;
    assert_eq!(cache_header(&second), "hit");
    assert_eq!(second.json["cached"], true);
    assert_eq!(second.json["score"], first.json["score"]);
    assert_eq!(second.json["label"], first.json["label"]);

    // Same features in another order, `-0` for `0` and an explicit null
    // for an absent feature: the same row.
    let reordered = r#"{"new_device": 1, "foreign": 1, "distance_from_home_km": 800,
        "tx_last_hour": 4, "card_age_days": 12, "hour": 3, "merchant_category": 5, "amount": 950}"#;
    assert_eq!(cache_header(&score(&state, reordered, false).await), "hit");

    // A different row misses; no-cache bypasses and is not a hit.
    let other = score(&state, &demo_features(&DEMO_ROW_2), false).await;
    assert_eq!(cache_header(&other), "miss");
    let bypass = score(&state, &features, true).await;
    assert_eq!(cache_header(&bypass), "bypass");
    assert_eq!(bypass.json["cached"], false);
    assert_eq!(bypass.json["score"], first.json["score"]);

    let metrics = state.gateway().telemetry().snapshot();
    assert!(metrics.contains(&(crate::telemetry::names::CACHE_HITS.name, None, 2)));
    assert!(metrics.contains(&(crate::telemetry::names::CACHE_MISSES.name, None, 2)));
}

#[tokio::test]
async fn missing_values_are_part_of_the_key() {
    let state = state("");
    let all = r#"{"amount": 10, "hour": 3}"#;
    let with_null = r#"{"amount": 10, "hour": 3, "foreign": null}"#;
    let with_zero = r#"{"amount": 10, "hour": 3, "foreign": 0}"#;
    assert_eq!(cache_header(&score(&state, all, false).await), "miss");
    assert_eq!(cache_header(&score(&state, with_null, false).await), "hit");
    assert_eq!(cache_header(&score(&state, with_zero, false).await), "miss");
}

#[tokio::test]
async fn oip_infer_uses_the_cache_too() {
    let state = state("");
    let row: Vec<String> = DEMO_ROW.iter().map(|v| v.to_string()).collect();
    let body = format!(
        r#"{{"inputs": [{{"name": "input-0", "datatype": "FP64", "shape": [1, 8], "data": [{}]}}]}}"#,
        row.join(",")
    );
    let request = || {
        Request::post("/v2/models/fraud/infer")
            .header("content-type", "application/json")
            .body(Body::from(body.clone()))
            .expect("request")
    };
    let first = send(&state, request()).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    assert_eq!(cache_header(&first), "miss");
    let second = send(&state, request()).await;
    assert_eq!(cache_header(&second), "hit");
    assert_eq!(second.json["outputs"], first.json["outputs"]);
}

#[tokio::test]
async fn ttl_zero_turns_the_cache_off_and_entries_expire() {
    let off = state("[cache]\nttl_ms = 0\n");
    let features = demo_features(&DEMO_ROW);
    for _ in 0..2 {
        assert_eq!(cache_header(&score(&off, &features, false).await), "bypass");
    }
    let short = state("[cache]\nttl_ms = 20\n");
    assert_eq!(cache_header(&score(&short, &features, false).await), "miss");
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    assert_eq!(cache_header(&score(&short, &features, false).await), "miss");
}

#[tokio::test]
async fn flush_empties_the_cache_entirely_or_per_model() {
    let state = state("");
    let features = demo_features(&DEMO_ROW);
    score(&state, &features, false).await;
    score(&state, &demo_features(&DEMO_ROW_2), false).await;
    let flush = |uri: &str| Request::delete(uri).body(Body::empty()).expect("request");
    let answer = send(&state, flush("/api/cache?model=nope")).await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND, "{}", answer.text);
    let answer = send(&state, flush("/api/cache?model=fraud")).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.json["flushed"], 2);
    assert_eq!(answer.json["backend"], "memory");
    assert_eq!(cache_header(&score(&state, &features, false).await), "miss");
    let answer = send(&state, flush("/api/cache")).await;
    assert_eq!(answer.json["flushed"], 1);
    assert_eq!(cache_header(&score(&state, &features, false).await), "miss");
}

/// The Redis server of the suite: `VIGIL_TEST_REDIS_URL` on database `db`
/// (one per test, so flushes do not race). The tests that call this are
/// `#[ignore]`d and run with `-- --include-ignored` (`.ci/run`); run without
/// a server they fail instead of passing having checked nothing.
fn redis_url(db: u32) -> String {
    let url = match std::env::var("VIGIL_TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "VIGIL_TEST_REDIS_URL is not set: this test needs a Redis server \
             (`source .ci/services.sh; start_services` starts one and sets it)"
        ),
    };
    let base = url.trim_end_matches('/');
    let base = match base.rsplit_once('/') {
        Some((head, tail)) if !tail.is_empty() && tail.bytes().all(|b| b.is_ascii_digit()) => head,
        _ => base,
    };
    format!("{base}/{db}")
}

/// Score until the cache header is `want` (the Redis connection and the
/// background SET are asynchronous), at most two seconds.
async fn score_until(state: &AppState, features: &str, want: &str) -> Answer {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        let answer = score(state, features, false).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
        if cache_header(&answer) == want || std::time::Instant::now() > deadline {
            return answer;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

#[tokio::test]
#[ignore = "needs VIGIL_TEST_REDIS_URL (started by .ci/run)"]
async fn two_replicas_share_entries_and_flushes_through_redis() {
    let url = redis_url(5);
    let toml = format!("[cache]\nurl = \"{url}\"\ntimeout_ms = 200\n");
    let (a, b) = (state(&toml), state(&toml));
    let flush = Request::delete("/api/cache")
        .body(Body::empty())
        .expect("request");
    assert_eq!(send(&a, flush).await.status, StatusCode::OK);
    let features = demo_features(&DEMO_ROW);
    // Written through A...
    let first = score_until(&a, &features, "hit").await;
    assert_eq!(cache_header(&first), "hit", "replica a never hit");
    // ... is a hit on B without B ever scoring it: B warms its connection
    // on another row, then asks for A's row once.
    let warm = score_until(&b, &demo_features(&DEMO_ROW_2), "hit").await;
    assert_eq!(cache_header(&warm), "hit", "replica b never connected");
    let on_b = score(&b, &features, false).await;
    assert_eq!(cache_header(&on_b), "hit");
    assert_eq!(on_b.json["cached"], true);
    assert_eq!(on_b.json["score"], first.json["score"]);
    // A flush through B empties it for A as well.
    let flush = Request::delete("/api/cache?model=fraud")
        .body(Body::empty())
        .expect("request");
    let answer = send(&b, flush).await;
    assert_eq!(answer.json["backend"], "redis", "{}", answer.text);
    assert!(
        answer.json["flushed"].as_u64().expect("count") >= 1,
        "{}",
        answer.text
    );
    assert_eq!(cache_header(&score(&a, &features, false).await), "miss");
}

/// How many keys the Redis database at `url` holds, asked on a connection
/// of its own.
async fn keys_in(url: &str) -> u64 {
    let client = ::redis::Client::open(url).expect("redis url");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("connect to redis");
    ::redis::cmd("DBSIZE")
        .query_async(&mut conn)
        .await
        .expect("DBSIZE")
}

/// No warm-up: a fresh replica's first request is a miss that is written,
/// and another fresh replica's first request hits it.
#[tokio::test]
#[ignore = "needs VIGIL_TEST_REDIS_URL (started by .ci/run)"]
async fn a_fresh_replicas_first_request_reads_and_writes_redis() {
    let url = redis_url(6);
    let toml = format!("[cache]\nurl = \"{url}\"\ntimeout_ms = 200\n");
    let a = state(&toml);
    let flush = Request::delete("/api/cache")
        .body(Body::empty())
        .expect("request");
    assert_eq!(send(&a, flush).await.status, StatusCode::OK);
    assert_eq!(keys_in(&url).await, 0);
    let features = demo_features(&DEMO_ROW);
    let first = score(&a, &features, false).await;
    assert_eq!(cache_header(&first), "miss", "{}", first.text);
    // The write is in the background: wait for it, at most 5 s.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while keys_in(&url).await == 0 && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert_eq!(keys_in(&url).await, 1, "the first miss was not written");
    let b = state(&toml);
    let on_b = score(&b, &features, false).await;
    assert_eq!(cache_header(&on_b), "hit", "{}", on_b.text);
    assert_eq!(on_b.json["score"], first.json["score"]);
}

#[tokio::test]
async fn redis_down_never_fails_a_request_and_opens_the_breaker() {
    // Nothing listens on port 1.
    let state = state("[cache]\nurl = \"redis://127.0.0.1:1/\"\nbreaker_open_ms = 60000\n");
    let features = demo_features(&DEMO_ROW);
    let expected = score(&state, &features, true).await.json["score"].clone();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    let breaker_open = || match &state.cache().backend {
        Backend::Redis(cache) => cache.breaker_is_open(),
        _ => panic!("redis backend expected"),
    };
    while !breaker_open() {
        let answer = score(&state, &features, false).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
        assert_eq!(answer.json["score"], expected);
        assert_eq!(cache_header(&answer), "miss");
        assert!(std::time::Instant::now() < deadline, "breaker never opened");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let errors = state.gateway().telemetry().snapshot();
    assert!(
        errors.contains(&(
            crate::telemetry::names::CACHE_ERRORS.name,
            None,
            u64::from(redis::TRIP_AFTER)
        )),
        "{errors:?}"
    );
    // While open, requests are scored without trying Redis.
    assert_eq!(score(&state, &features, false).await.status, StatusCode::OK);
    let flush = Request::delete("/api/cache")
        .body(Body::empty())
        .expect("request");
    let answer = send(&state, flush).await;
    assert_eq!(
        answer.status,
        StatusCode::SERVICE_UNAVAILABLE,
        "{}",
        answer.text
    );
    assert_eq!(answer.json["code"], "unavailable");
}
