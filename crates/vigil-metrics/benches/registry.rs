//! The hot path's cost: what a handler's events pay per counter add and per
//! distribution value, and the once-a-second drain.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use vigil_metrics::SeriesKey;
use vigil_metrics::registry::{LATENCY_BUCKETS_MS, PromName, Registry};

fn prom(name: &str) -> PromName {
    PromName {
        name: name.to_owned(),
        help: "bench",
    }
}

fn hot_path(c: &mut Criterion) {
    let registry = Registry::new();
    let counter = registry.counter(SeriesKey::new("Bench", "Count"), prom("bench_count"));
    let latency = registry.distribution(
        SeriesKey::new("Bench", "Latency"),
        prom("bench_latency"),
        LATENCY_BUCKETS_MS,
    );
    let mut group = c.benchmark_group("registry");
    group.throughput(Throughput::Elements(1));
    group.bench_function("counter_incr", |b| b.iter(|| counter.incr()));
    let mut v = 0.0f64;
    group.bench_function("distribution_record", |b| {
        b.iter(|| {
            v = (v + 0.37) % 40.0;
            latency.record(black_box(v));
        })
    });
    group.finish();

    let registry = Registry::new();
    let handles: Vec<_> = (0..100)
        .map(|i| {
            registry.distribution(
                SeriesKey::new("Bench", "Latency").with_dimension("route", format!("/r{i}")),
                prom("bench_latency"),
                LATENCY_BUCKETS_MS,
            )
        })
        .collect();
    let mut group = c.benchmark_group("registry_drain");
    group.throughput(Throughput::Elements(100));
    group.bench_function("drain_100_series_of_100_values", |b| {
        b.iter(|| {
            for h in &handles {
                for i in 0..100 {
                    h.record(f64::from(i));
                }
            }
            black_box(registry.drain())
        })
    });
    group.bench_function("render_prometheus_100_histograms", |b| {
        b.iter(|| black_box(registry.render_prometheus()))
    });
    group.finish();
}

criterion_group!(benches, hot_path);
criterion_main!(benches);
