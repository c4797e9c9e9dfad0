//! The service map at ingestion and at query time: 1,000,000 spans (7 per
//! trace: gateway → vigil → cache → redis, vigil → score, vigil →
//! inference_log → postgresql), children before parents as they end, in
//! batches of 1,000 spans over an hour; then the map of that hour.
//! `add_1m_spans_cold` reads the 1M spans (~300 MB with their strings)
//! from memory; `add_1m_spans_fresh_batches` times only `add_batch` on each
//! batch just built, hot in cache as after decoding a request.
//!
//! `cargo bench -p vigil-trace --bench service_map -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use vigil_trace::model::{Span, SpanId, TraceId};
use vigil_trace::service_map::{MapSpan, ServiceMap, ServiceMapConfig};

const SPANS: usize = 1_000_000;
const PER_TRACE: usize = 7;
const BATCH: usize = 1000;
const T0_MS: i64 = 1_767_225_600_000;

/// Deterministic pseudo-random numbers (xorshift), so runs compare.
fn rng(seed: &mut u64) -> u64 {
    *seed ^= *seed << 13;
    *seed ^= *seed >> 7;
    *seed ^= *seed << 17;
    *seed
}

fn trace(i: u64, seed: &mut u64) -> Vec<Span> {
    let mut t = [0; 16];
    t[..8].copy_from_slice(&i.to_be_bytes());
    t[8..].copy_from_slice(&rng(seed).to_be_bytes());
    let id = |n: u8| SpanId([n, 1, 2, 3, 4, 5, 6, 7]);
    // Traces spread evenly over one hour.
    let at = T0_MS * 1000 + (i as i64 * 3_600_000_000) / (SPANS / PER_TRACE) as i64;
    let r = rng(seed);
    let span = |n: u8,
                parent: Option<u8>,
                name: &'static str,
                service: &'static str,
                start: i64,
                end: i64| {
        Span::new(
            TraceId(t),
            id(n),
            parent.map(id),
            name,
            service,
            at + start,
            at + end,
        )
    };
    let mut redis = span(4, Some(3), "redis", "vigil", 200, 200 + (r % 500) as i64);
    redis.remote = true;
    let mut pg = span(
        7,
        Some(6),
        "postgresql",
        "vigil",
        3_000,
        3_000 + (r % 2000) as i64,
    );
    pg.remote = true;
    let mut vigil = span(2, Some(1), "vigil", "vigil", 50, 6_000 + (r % 4000) as i64);
    vigil.set_status([200, 200, 200, 200, 404, 429, 503][(r >> 20) as usize % 7]);
    let mut gateway = span(1, None, "gateway", "gateway", 0, 10_500);
    gateway.set_status(200);
    vec![
        redis,
        span(3, Some(2), "cache", "vigil", 100, 900),
        span(5, Some(2), "score", "vigil", 1_000, 2_000),
        pg,
        span(6, Some(2), "inference_log", "vigil", 2_900, 5_500),
        vigil,
        gateway,
    ]
}

fn spans() -> Vec<Span> {
    let mut seed = 0x9e37_79b9_7f4a_7c15;
    (0..(SPANS / PER_TRACE) as u64)
        .flat_map(|i| trace(i, &mut seed))
        .collect()
}

fn add_all(map: &ServiceMap, spans: &[Span]) {
    add_all_with(map, spans, BATCH, ServiceMap::add_batch);
}

/// Batches of whole traces, as near [`BATCH`] spans as whole traces go.
const WHOLE_BATCH: usize = BATCH / PER_TRACE * PER_TRACE;

/// Feeds `spans` in batches of `size` through `add` (`add_batch`, or
/// `add_whole_traces` for batches of whole traces, as Vigil's own are).
fn add_all_with<S>(map: &ServiceMap, spans: &[S], size: usize, add: fn(&ServiceMap, &[S], i64))
where
    S: Ends,
{
    for (n, batch) in spans.chunks(size).enumerate() {
        // Arrival: the batch's last span end, plus a second.
        let now_ms = batch.last().map_or(T0_MS, |s| s.end_us() / 1000) + 1000;
        add(map, batch, now_ms + n as i64 % 2);
    }
}

/// A span's end, for its batch's arrival time.
trait Ends {
    fn end_us(&self) -> i64;
}

impl Ends for Span {
    fn end_us(&self) -> i64 {
        self.end_us
    }
}

impl Ends for MapSpan {
    fn end_us(&self) -> i64 {
        self.end_us
    }
}

fn bench(c: &mut Criterion) {
    let spans = spans();
    // Whole traces reach the map as their facts, made where recorded.
    let facts: Vec<MapSpan> = spans.iter().map(MapSpan::from).collect();
    let mut group = c.benchmark_group("service_map");
    group.sample_size(10);
    group.throughput(Throughput::Elements(spans.len() as u64));
    group.bench_function("add_1m_spans_cold", |b| {
        b.iter_batched(
            || ServiceMap::new(ServiceMapConfig::default()),
            |map| {
                add_all(&map, &spans);
                map
            },
            BatchSize::PerIteration,
        )
    });
    group.bench_function("add_1m_spans_whole_traces", |b| {
        b.iter_batched(
            || ServiceMap::new(ServiceMapConfig::default()),
            |map| {
                add_all_with(&map, &facts, WHOLE_BATCH, ServiceMap::add_whole_traces);
                map
            },
            BatchSize::PerIteration,
        )
    });
    group.bench_function("add_1m_spans_fresh_batches", |b| {
        b.iter_custom(|iters| {
            let mut timed = Duration::ZERO;
            for _ in 0..iters {
                let map = ServiceMap::new(ServiceMapConfig::default());
                let mut seed = 0x9e37_79b9_7f4a_7c15;
                let traces = (SPANS / PER_TRACE) as u64;
                let per_batch = (BATCH / PER_TRACE) as u64;
                let mut first = 0;
                while first < traces {
                    let last = (first + per_batch).min(traces);
                    let batch: Vec<Span> =
                        (first..last).flat_map(|i| trace(i, &mut seed)).collect();
                    let now_ms = batch.last().map_or(T0_MS, |s| s.end_us / 1000) + 1000;
                    let start = Instant::now();
                    map.add_batch(black_box(&batch), now_ms);
                    timed += start.elapsed();
                    first = last;
                }
            }
            timed
        })
    });
    group.finish();

    let map = ServiceMap::new(ServiceMapConfig::default());
    add_all(&map, &spans);
    let graph = map.map(T0_MS, T0_MS + 3_600_000);
    let total: u64 = graph.edges.iter().map(|e| e.stats.count).sum();
    assert_eq!(total as usize, spans.len(), "every span is one call");
    assert_eq!(graph.edges.len(), 7);
    let whole = ServiceMap::new(ServiceMapConfig::default());
    add_all_with(&whole, &facts, WHOLE_BATCH, ServiceMap::add_whole_traces);
    assert_eq!(
        whole.map(T0_MS, T0_MS + 3_600_000),
        graph,
        "whole traces count the same"
    );

    let mut group = c.benchmark_group("service_map_query");
    group.throughput(Throughput::Elements(1));
    group.bench_function("map_one_hour_of_minutes", |b| {
        b.iter(|| map.map(black_box(T0_MS), black_box(T0_MS + 3_600_000)))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
