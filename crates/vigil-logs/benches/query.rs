//! Scan rates of the query language on one core, over events held in
//! memory (the store's decompression is measured by its own bench).
//!
//! `cargo bench -p vigil-logs --bench query`

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use vigil_logs::query::{Event, Query, QueryLimits};

const EVENTS: usize = 100_000;
/// 2026-12-01T21:05:00.000Z
const T0: i64 = 1_796_159_100_000;

/// ~200-byte JSON access-log lines, 2% of them 5xx, one every 10 ms.
fn json_events() -> Vec<(i64, String)> {
    (0..EVENTS)
        .map(|i| {
            let status = match i % 50 {
                0 => 503,
                1..=5 => 404,
                _ => 200,
            };
            let msg = format!(
                r#"{{"ts":"2026-12-01T21:05:{:02}.{:03}Z","method":"POST","path":"/v2/models/fraud-{}/infer","status":{status},"latency_us":{},"bytes":{},"request_id":"0190b3e4-{:04x}-7abc-9def-0123456789ab","ua":"curl/8.5.0"}}"#,
                (i / 100) % 60,
                i % 1000,
                i % 7,
                200 + (i * 37) % 5000,
                100 + (i * 13) % 900,
                i % 65536,
            );
            (T0 + i as i64 * 10, msg)
        })
        .collect()
}

/// ~200-byte text lines, 1% of them errors.
fn text_events() -> Vec<(i64, String)> {
    (0..EVENTS)
        .map(|i| {
            let level = if i % 100 == 0 { "ERROR" } else { "INFO" };
            let msg = format!(
                "2026-12-01T21:05:00.{:03}Z {level} [worker-{}] request {:08x} handled by model fraud-v{} in {} us with {} bytes of body, cache miss, queue wait 0 us, batch size 1, no surprises at all",
                i % 1000,
                i % 8,
                i * 2654435761 % 4_294_967_296,
                i % 5,
                200 + (i * 37) % 5000,
                100 + (i * 13) % 900,
            );
            (T0 + i as i64 * 10, msg)
        })
        .collect()
}

fn bench(c: &mut Criterion, name: &str, query: &str, events: &[(i64, String)]) {
    let query = Query::parse(query).expect("the bench queries parse");
    let mut group = c.benchmark_group("query");
    group.throughput(Throughput::Elements(events.len() as u64));
    group.bench_function(name, |b| {
        b.iter(|| {
            let out = query
                .run(
                    events.iter().map(|(ts, m)| Event {
                        timestamp_ms: *ts,
                        ingestion_ms: *ts,
                        group: "/vigil/access",
                        stream: "i-1",
                        message: m,
                    }),
                    QueryLimits::default(),
                )
                .expect("the bench queries run");
            assert!(!out.rows.is_empty());
            out.matched
        });
    });
    group.finish();
}

fn queries(c: &mut Criterion) {
    let json = json_events();
    let text = text_events();
    let mean = |v: &[(i64, String)]| v.iter().map(|(_, m)| m.len()).sum::<usize>() / v.len();
    eprintln!(
        "json events: {} bytes on average; text events: {} bytes",
        mean(&json),
        mean(&text)
    );
    bench(
        c,
        "json_filter_stats_by_bin",
        "filter status >= 500 | stats count(*) by bin(1m)",
        &json,
    );
    bench(c, "text_like", r#"filter @message like "ERROR""#, &text);
    bench(
        c,
        "text_like_limit_20",
        r#"filter @message like "ERROR" | limit 20"#,
        &text,
    );
    bench(
        c,
        "json_stats_pct_by_path",
        "stats count(*), pct(latency_us, 99) by path",
        &json,
    );
}

criterion_group!(benches, queries);
criterion_main!(benches);
