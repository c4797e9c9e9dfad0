//! The filter language on the trace search's hot path: a 3-clause filter
//! evaluated over 1,000 varied trace summaries (summaries per second, one
//! core), and parsing it.
//!
//! `cargo bench -p vigil-trace --bench filter -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use vigil_trace::filter::Filter;
use vigil_trace::model::{AnnotationValue, Http, TraceId, TraceSummary};

const TRACES: usize = 1000;

/// Deterministic pseudo-random numbers (xorshift), so runs compare.
fn rng(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

fn summaries() -> Vec<TraceSummary> {
    let mut seed = 0x9e37_79b9_7f4a_7c15;
    (0..TRACES)
        .map(|i| {
            let r = rng(&mut seed);
            let status = [200, 200, 200, 201, 404, 429, 500][(r % 7) as usize];
            let service = ["vigil", "gateway", "batch"][(r >> 8) as usize % 3];
            let start = 1_700_000_000_000_000 + i as i64 * 1000;
            TraceSummary {
                trace_id: TraceId([(i % 251) as u8 + 1; 16]),
                start_us: start,
                end_us: start + (r >> 16) as i64 % 200_000,
                response_time_us: (r >> 24) as i64 % 150_000,
                service: service.to_owned().into(),
                name: service.to_owned().into(),
                http: Some(Http {
                    method: Some("POST".to_owned()),
                    url: Some(format!("/v2/models/fraud/versions/{}/infer", r % 5)),
                    user_agent: Some("python-requests/2.32.3".to_owned()),
                    client_ip: Some(format!("10.0.{}.{}", r % 256, (r >> 8) % 256)),
                    status: Some(status),
                    content_length: Some(120),
                }),
                error: (400..500).contains(&status),
                throttle: status == 429,
                fault: status >= 500,
                services: vec![service.to_owned().into(), "vigil".into()],
                annotations: vec![
                    ("cached".into(), AnnotationValue::Bool(r.is_multiple_of(3))),
                    ("model".into(), AnnotationValue::String("fraud".to_owned())),
                ],
                spans: 7,
            }
        })
        .collect()
}

fn bench(c: &mut Criterion) {
    let traces = summaries();
    let text = "service(\"gateway\") AND responsetime > 0.05 AND http.url CONTAINS \"/versions/3\"";
    let filter = Filter::parse(text).expect("the bench filter parses");
    let hits = traces.iter().filter(|t| filter.matches(t)).count();
    assert!(hits > 0 && hits < TRACES, "{hits} hits");

    let mut group = c.benchmark_group("filter");
    group.throughput(Throughput::Elements(TRACES as u64));
    group.bench_function("three_clauses_1000_summaries", |b| {
        b.iter(|| {
            black_box(&traces)
                .iter()
                .filter(|t| filter.matches(t))
                .count()
        })
    });
    let annotated = Filter::parse("annotation.cached = true OR fault && NOT http.status = 429")
        .expect("the bench filter parses");
    group.bench_function("annotation_or_flags_1000_summaries", |b| {
        b.iter(|| {
            black_box(&traces)
                .iter()
                .filter(|t| annotated.matches(t))
                .count()
        })
    });
    group.finish();

    let mut group = c.benchmark_group("filter_parse");
    group.throughput(Throughput::Elements(1));
    group.bench_function("three_clauses", |b| {
        b.iter(|| Filter::parse(black_box(text)))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
