//! Sketch and statistic costs: add, merge, encode/decode, p99 and tm90.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use vigil_metrics::sketch::Sketch;
use vigil_metrics::{Aggregate, Statistic};

/// Latency-like values in ms: a log-normal-ish spread from a fixed LCG, so
/// runs compare (no rand dependency).
fn latencies(n: usize) -> Vec<f64> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..n)
        .map(|_| {
            x = x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
            let u = (x >> 11) as f64 / (1u64 << 53) as f64;
            // ~2 ms median, a long tail to ~2 s.
            2.0 * (u * 7.0).exp() * (1.0 + 0.1 * u)
        })
        .collect()
}

fn sketch_of(values: &[f64]) -> Sketch {
    let mut s = Sketch::new();
    for &v in values {
        s.add(v, 1);
    }
    s
}

fn bench(c: &mut Criterion) {
    let values = latencies(1000);
    let sketch = sketch_of(&values);
    let other = sketch_of(&latencies(2000)[1000..]);
    let bytes = sketch.to_bytes();
    let agg = Aggregate::from_values(&values, &[]).unwrap_or_else(|e| panic!("{e}"));
    let p99: Statistic = "p99".parse().unwrap_or_else(|e| panic!("{e}"));
    let tm90: Statistic = "tm90".parse().unwrap_or_else(|e| panic!("{e}"));
    eprintln!(
        "encoded sketch of 1,000 latency-like values: {} bytes, {} bins",
        bytes.len(),
        sketch.bins().count()
    );

    let mut g = c.benchmark_group("sketch");
    g.throughput(Throughput::Elements(values.len() as u64));
    g.bench_function("add_1000", |b| b.iter(|| sketch_of(black_box(&values))));
    g.throughput(Throughput::Elements(1));
    g.bench_function("merge", |b| {
        b.iter(|| {
            let mut s = sketch.clone();
            s.merge(black_box(&other));
            s
        })
    });
    g.throughput(Throughput::Bytes(bytes.len() as u64));
    g.bench_function("encode", |b| {
        let mut out = Vec::with_capacity(bytes.len());
        b.iter(|| {
            out.clear();
            black_box(&sketch).encode(&mut out);
            out.len()
        })
    });
    g.bench_function("decode", |b| b.iter(|| Sketch::decode(black_box(&bytes))));
    g.throughput(Throughput::Elements(1));
    g.bench_function("quantile_p99", |b| {
        b.iter(|| black_box(&sketch).quantile(0.99))
    });
    g.bench_function("statistic_p99", |b| b.iter(|| p99.value(black_box(&agg))));
    g.bench_function("statistic_tm90", |b| b.iter(|| tm90.value(black_box(&agg))));
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
