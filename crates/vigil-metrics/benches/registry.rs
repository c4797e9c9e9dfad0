//! The hot path's cost: what a handler's events pay per counter add and per
//! distribution value (with and without an exemplar), and the
//! once-a-second drain.

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
    // A sampled request: the same value, and its trace kept as the
    // bucket's exemplar.
    let mut v = 0.0f64;
    let mut at_ms = 1_764_547_200_000i64;
    group.bench_function("distribution_record_with_exemplar", |b| {
        b.iter(|| {
            v = (v + 0.37) % 40.0;
            at_ms += 1;
            latency.record_with_exemplar(black_box(v), black_box([7; 16]), at_ms);
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
    for (i, h) in handles.iter().enumerate() {
        h.record_with_exemplar(3.0, [i as u8; 16], 1_764_547_200_000);
    }
    group.bench_function("render_openmetrics_100_histograms_with_exemplars", |b| {
        b.iter(|| black_box(registry.render_openmetrics()))
    });
    group.finish();
}

criterion_group!(benches, hot_path);
criterion_main!(benches);
