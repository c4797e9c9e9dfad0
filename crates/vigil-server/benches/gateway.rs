//! Cost of the gateway, through the in-memory router (no sockets): a
//! scoring request with the gateway open, with a key, a throttled request,
//! and prediction-cache hits and misses (in process, and Redis when
//! `VIGIL_TEST_REDIS_URL` is set).

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use tower::ServiceExt;
use vigil_server::{AppState, Config, KeyConfig, Roles, app, gateway::hash_key};

const BODY: &str = r#"{"features": {"amount": 950, "merchant_category": 5, "hour": 3, "card_age_days": 12, "tx_last_hour": 4, "distance_from_home_km": 800, "foreign": 1, "new_device": 1}}"#;
const KEY: &str = "vgl_bench";

fn router(edit: impl FnOnce(&mut Config)) -> Router {
    let mut config = Config::demo();
    config.server.access_log = false;
    edit(&mut config);
    app(AppState::from_config(&config).expect("state"))
}

fn request(no_cache: bool, key: bool, amount: Option<u64>) -> Request<Body> {
    let mut builder =
        Request::post("/v1/models/fraud/score").header("content-type", "application/json");
    if no_cache {
        builder = builder.header("cache-control", "no-cache");
    }
    if key {
        builder = builder.header("authorization", format!("Bearer {KEY}"));
    }
    let body = match amount {
        Some(amount) => BODY.replace("950", &amount.to_string()),
        None => BODY.to_owned(),
    };
    builder.body(Body::from(body)).expect("request")
}

fn run(
    c: &mut Criterion,
    rt: &tokio::runtime::Runtime,
    name: &str,
    app: &Router,
    want: StatusCode,
    make: impl Fn(u64) -> Request<Body>,
) {
    let mut group = c.benchmark_group("gateway");
    group.throughput(Throughput::Elements(1));
    let mut i = 0u64;
    group.bench_function(name, |b| {
        b.iter(|| {
            i += 1;
            let response = rt
                .block_on(app.clone().oneshot(make(i)))
                .expect("infallible");
            assert_eq!(response.status(), want);
        })
    });
    group.finish();
}

fn key_config() -> KeyConfig {
    KeyConfig {
        name: "bench".to_owned(),
        hash: vigil_server::config::parse_key_hash(&hash_key(KEY)).expect("hash"),
        enabled: true,
        roles: Roles {
            score: true,
            admin: false,
        },
        rate_per_s: Some(1e9),
        burst: Some(1_000_000_000),
        models: None,
    }
}

fn bench(c: &mut Criterion) {
    // One runtime for everything: the Redis connection lives on it.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let rt = &rt;
    let open = router(|config| config.gateway.rate_per_s = 0.0);
    run(c, rt, "score_no_cache_open", &open, StatusCode::OK, |_| {
        request(true, false, None)
    });

    let keyed = router(|config| {
        config.gateway.rate_per_s = 1e9;
        config.gateway.burst = 1_000_000_000;
        config.keys = vec![key_config()];
    });
    run(
        c,
        rt,
        "score_no_cache_key_and_buckets",
        &keyed,
        StatusCode::OK,
        |_| request(true, true, None),
    );
    run(
        c,
        rt,
        "score_memory_cache_hit",
        &keyed,
        StatusCode::OK,
        |_| request(false, true, None),
    );
    run(
        c,
        rt,
        "score_memory_cache_miss",
        &keyed,
        StatusCode::OK,
        |i| request(false, true, Some(i)),
    );

    let throttled = router(|config| {
        config.gateway.rate_per_s = 1e-9;
        config.gateway.burst = 1;
    });
    let _ = rt.block_on(throttled.clone().oneshot(request(true, false, None)));
    run(
        c,
        rt,
        "throttled_429",
        &throttled,
        StatusCode::TOO_MANY_REQUESTS,
        |_| request(true, false, None),
    );

    if let Ok(url) = std::env::var("VIGIL_TEST_REDIS_URL") {
        let redis = router(|config| {
            config.gateway.rate_per_s = 0.0;
            config.cache.url = Some(url);
            config.cache.timeout_ms = 50;
        });
        // Warm up the connection and store the entry.
        for _ in 0..50 {
            let _ = rt.block_on(redis.clone().oneshot(request(false, false, None)));
            rt.block_on(async { tokio::time::sleep(std::time::Duration::from_millis(5)).await });
        }
        run(
            c,
            rt,
            "score_redis_cache_hit",
            &redis,
            StatusCode::OK,
            |_| request(false, false, None),
        );
        run(
            c,
            rt,
            "score_redis_cache_miss",
            &redis,
            StatusCode::OK,
            |i| request(false, false, Some(1_000_000 + i)),
        );
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);
