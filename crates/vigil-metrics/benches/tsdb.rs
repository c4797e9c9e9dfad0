//! The time-series store: ingestion in batches of 1,000, a query of 3 h of
//! 1 s data, and bytes per stored point (printed).
#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::time::Instant;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use vigil_metrics::tsdb::{Query, Record, Tsdb, TsdbConfig};
use vigil_metrics::{Aggregate, Resolution, SeriesKey, Statistic};

const HOUR_MS: i64 = 3_600_000;
const NOW: i64 = 1_700_000_000_000 / HOUR_MS * HOUR_MS;

fn keys(n: usize) -> Vec<SeriesKey> {
    (0..n)
        .map(|i| {
            SeriesKey::new("Bench", "LatencyMs")
                .with_dimension("model", format!("m{i}"))
                .with_dimension("route", "/v1/infer")
        })
        .collect()
}

/// A latency-like value: integer milliseconds around 100.
fn value(i: i64) -> f64 {
    (100 + (i * 7919) % 23) as f64
}

/// `n` batches of 1,000: 100 series × 10 consecutive seconds each.
fn batches(keys: &[SeriesKey], n: usize, start_ms: i64) -> Vec<Vec<Record>> {
    (0..n as i64)
        .map(|b| {
            let mut out = Vec::with_capacity(1000);
            for s in 0..10 {
                let t = start_ms + (b * 10 + s) * 1000;
                for k in keys {
                    out.push(Record {
                        key: k.clone(),
                        timestamp_ms: t,
                        aggregate: Aggregate::from_value(value(b * 10 + s)),
                        resolution: Resolution::High,
                    });
                }
            }
            out
        })
        .collect()
}

fn ingest(c: &mut Criterion) {
    let ks = keys(100);
    let pre = batches(&ks, 1080, NOW - 3 * HOUR_MS);
    let mut g = c.benchmark_group("tsdb_ingest");
    g.throughput(Throughput::Elements(1000));
    let db = Tsdb::in_memory(TsdbConfig::default()).unwrap();
    let mut i = 0;
    g.bench_function("record_batch_1000_in_memory", |b| {
        b.iter(|| {
            db.record_batch(&pre[i % pre.len()]);
            i += 1;
        })
    });
    let dir = tempfile::tempdir().unwrap();
    let disk = Tsdb::open(dir.path(), TsdbConfig::default()).unwrap();
    let mut j = 0;
    g.bench_function("record_batch_durable_1000_wal", |b| {
        b.iter(|| {
            disk.record_batch_durable(&pre[j % pre.len()]).unwrap();
            j += 1;
        })
    });
    g.finish();
}

fn filled() -> (Tsdb, SeriesKey) {
    let db = Tsdb::in_memory(TsdbConfig::default()).unwrap();
    let k = keys(1).remove(0);
    let start = NOW - 3 * HOUR_MS;
    let recs: Vec<Record> = (0..3 * 3600)
        .map(|i| Record {
            key: k.clone(),
            timestamp_ms: start + i * 1000,
            aggregate: Aggregate::from_value(value(i)),
            resolution: Resolution::High,
        })
        .collect();
    db.record_batch(&recs);
    db.maintain(NOW);
    (db, k)
}

fn p99_us(db: &Tsdb, q: &Query) -> (f64, f64) {
    let mut us: Vec<f64> = (0..2000)
        .map(|_| {
            let t = Instant::now();
            black_box(db.query(q, NOW).unwrap());
            t.elapsed().as_secs_f64() * 1e6
        })
        .collect();
    us.sort_by(f64::total_cmp);
    (us[us.len() / 2], us[us.len() * 99 / 100])
}

fn query(c: &mut Criterion) {
    let (db, k) = filled();
    let mut g = c.benchmark_group("tsdb_query_3h_of_1s");
    g.throughput(Throughput::Elements(3 * 3600));
    let stats: Vec<Statistic> = ["Average", "Maximum", "p99"]
        .iter()
        .map(|s| s.parse().unwrap())
        .collect();
    for period in [60u32, 10] {
        let q = Query::new(&k, NOW - 3 * HOUR_MS, NOW, period, stats.clone());
        g.bench_function(format!("period_{period}_avg_max_p99"), |b| {
            b.iter(|| black_box(db.query(&q, NOW).unwrap()))
        });
        let (p50, p99) = p99_us(&db, &q);
        println!("query 3 h of 1 s data, period {period}: p50 {p50:.1} µs, p99 {p99:.1} µs");
    }
    let q = Query::new(&k, NOW - 3 * HOUR_MS, NOW, 10, vec![Statistic::Average]);
    g.bench_function("period_10_avg_no_sketch", |b| {
        b.iter(|| black_box(db.query(&q, NOW).unwrap()))
    });
    g.finish();
}

fn sizes(_: &mut Criterion) {
    // Plain: one value per point.
    let (db, _) = filled();
    db.seal_all();
    let st = db.stats();
    for t in &st.tiers {
        println!(
            "plain series, {} s tier: {} points, {:.2} bytes/point sealed",
            t.resolution_s,
            t.sealed_points,
            t.sealed_bytes_per_point().unwrap_or(0.0)
        );
    }
    // Sketch: each 1 s point aggregates 10 values.
    let db = Tsdb::in_memory(TsdbConfig::default()).unwrap();
    let k = keys(1).remove(0);
    let start = NOW - 3 * HOUR_MS;
    for i in 0..3 * 3600 {
        let mut a = Aggregate::from_value(value(i));
        for j in 1..10 {
            a.merge(&Aggregate::from_value(value(i * 10 + j)));
        }
        db.record(&k, start + i * 1000, &a, Resolution::High);
    }
    db.seal_all();
    for t in &db.stats().tiers {
        println!(
            "sketch series (10 values/s), {} s tier: {} points, {:.2} bytes/point sealed",
            t.resolution_s,
            t.sealed_points,
            t.sealed_bytes_per_point().unwrap_or(0.0)
        );
    }
    // Memory of open blocks, before sealing.
    let (db, _) = filled();
    let t0 = db.stats().tiers[0];
    println!(
        "open 1 s block: {:.1} heap bytes/point",
        t0.open_bytes as f64 / t0.open_points.max(1) as f64
    );
}

criterion_group!(benches, ingest, query, sizes);
criterion_main!(benches);
