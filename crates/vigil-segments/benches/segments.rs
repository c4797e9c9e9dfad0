//! The segment log's hot paths, on the real disk (not tmpfs):
//! (a) 64 concurrent appenders of 200-byte records in `os` mode,
//! (b) one appender's `os` append latency (criterion's mean, and p50/p99
//!     from a separate run into an HDR histogram),
//! (c) a time-range scan of sealed segments, uncompressed and lz4.

#![allow(clippy::unwrap_used, missing_docs)]

use std::hint::black_box;
use std::ops::ControlFlow;
use std::path::Path;
use std::sync::Barrier;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use vigil_segments::{Compression, Durability, Options, SegmentLog};

const THREADS: u64 = 64;
const PER_THREAD: u64 = 2000;
const RECORD: usize = 200;

/// A 200-byte, log-like record: JSON fields that vary per record and a
/// message of words drawn pseudo-randomly from a small vocabulary.
pub fn record(i: u64) -> Vec<u8> {
    const WORDS: [&str; 16] = [
        "scored", "request", "model", "latency", "cache", "miss", "hit", "feature", "drift",
        "batch", "upstream", "timeout", "retry", "ok", "shadow", "canary",
    ];
    let mut h = i.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut s = format!(
        "{{\"ts\":{},\"model\":\"fraud-v{}\",\"key\":\"req-{:08x}\",\"score\":0.{:04},\"latency_us\":{},\"country\":\"{}\",\"msg\":\"",
        1_700_000_000_000_000u64 + i,
        i % 4,
        (h >> 32) as u32,
        (i * 7919) % 10_000,
        20 + (i * 31) % 400,
        ["DE", "FR", "US", "GB", "NL"][(i % 5) as usize],
    );
    while s.len() < RECORD - 2 {
        h ^= h >> 29;
        h = h.wrapping_mul(0xBF58_476D_1CE4_E5B9);
        s.push_str(WORDS[(h >> 60) as usize]);
        s.push(' ');
    }
    let mut b = s.into_bytes();
    b.truncate(RECORD - 2);
    b.extend_from_slice(b"\"}");
    b
}

fn bench_dir() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap()
}

fn concurrent_append(c: &mut Criterion) {
    let dir = bench_dir();
    let opts = Options {
        // Bounded disk use over a long run.
        retain_bytes: Some(1 << 30),
        ..Options::default()
    };
    let (log, _) = SegmentLog::open(dir.path(), opts).unwrap();
    let payload = record(1);
    let mut group = c.benchmark_group("segments_append");
    group.throughput(Throughput::Elements(THREADS * PER_THREAD));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(10));
    group.bench_function("64_threads_200b_os", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            for _ in 0..iters {
                let barrier = Barrier::new(THREADS as usize + 1);
                total += std::thread::scope(|s| {
                    for t in 0..THREADS {
                        let (log, payload, barrier) = (&log, &payload, &barrier);
                        s.spawn(move || {
                            barrier.wait();
                            for i in 0..PER_THREAD {
                                log.append((t * PER_THREAD + i) as i64, payload, Durability::Os)
                                    .unwrap();
                            }
                        });
                    }
                    barrier.wait();
                    let start = Instant::now();
                    // The scope joins every appender before returning.
                    start
                })
                .elapsed();
            }
            total
        });
    });
    group.finish();
    let s = log.stats();
    eprintln!(
        "64 appenders: {} records in {} writes ({:.1} records per write), {} fsyncs, {} rolls",
        s.records_appended,
        s.writes,
        s.records_appended as f64 / s.writes.max(1) as f64,
        s.fsyncs,
        s.rolls
    );
}

fn single_append(c: &mut Criterion) {
    let dir = bench_dir();
    let opts = Options {
        retain_bytes: Some(1 << 30),
        ..Options::default()
    };
    let (log, _) = SegmentLog::open(dir.path(), opts).unwrap();
    let payload = record(2);
    let mut group = c.benchmark_group("segments_append");
    group.throughput(Throughput::Elements(1));
    let mut i = 0i64;
    group.bench_function("1_thread_200b_os", |b| {
        b.iter(|| {
            i += 1;
            black_box(log.append(i, &payload, Durability::Os).unwrap())
        });
    });
    group.finish();

    let mut h = hdrhistogram::Histogram::<u64>::new_with_bounds(1, 10_000_000, 3).unwrap();
    for k in 0..200_000 {
        let t = Instant::now();
        log.append(k, &payload, Durability::Os).unwrap();
        h.record(t.elapsed().as_nanos() as u64).unwrap();
    }
    eprintln!(
        "1 appender, os, 200 B: p50 {:.2} µs, p99 {:.2} µs, p99.9 {:.2} µs, max {:.1} µs ({} samples)",
        h.value_at_quantile(0.50) as f64 / 1e3,
        h.value_at_quantile(0.99) as f64 / 1e3,
        h.value_at_quantile(0.999) as f64 / 1e3,
        h.max() as f64 / 1e3,
        h.len()
    );
}

/// A log of `n` sealed records, compressed or not.
fn sealed_log(dir: &Path, n: u64, compression: Compression) -> SegmentLog {
    let opts = Options {
        segment_bytes: 32 << 20,
        compression,
        ..Options::default()
    };
    let (log, _) = SegmentLog::open(dir, opts).unwrap();
    let batch: Vec<Vec<u8>> = (0..1000).map(record).collect();
    for b in 0..n / 1000 {
        let recs: Vec<(i64, &[u8])> = batch
            .iter()
            .enumerate()
            .map(|(k, p)| ((b * 1000 + k as u64) as i64, &p[..]))
            .collect();
        log.append_batch(&recs, Durability::Os).unwrap();
    }
    log.roll().unwrap();
    if compression == Compression::Lz4 {
        let t = Instant::now();
        while log
            .segments()
            .iter()
            .filter(|s| s.sealed && !s.compressed)
            .count()
            > 0
        {
            assert!(t.elapsed() < Duration::from_secs(120));
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    log
}

fn scan(c: &mut Criterion) {
    const N: u64 = 640_000; // 128 MB of payload
    let mut group = c.benchmark_group("segments_scan");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(8));
    for (name, compression) in [
        ("sealed_raw", Compression::None),
        ("sealed_lz4", Compression::Lz4),
    ] {
        let dir = bench_dir();
        let log = sealed_log(dir.path(), N, compression);
        let disk: u64 = log.segments().iter().map(|s| s.bytes).sum();
        eprintln!(
            "{name}: {} segments, {:.1} MB on disk for {:.1} MB of payload (ratio {:.2})",
            log.segments().len(),
            disk as f64 / 1e6,
            (N * RECORD as u64) as f64 / 1e6,
            (N * RECORD as u64) as f64 / disk as f64
        );
        for (what, from, to) in [
            ("all", 0, N as i64),
            ("tenth", N as i64 / 2, N as i64 / 2 + N as i64 / 10),
        ] {
            let records = (to - from) as u64;
            group.throughput(Throughput::Bytes(records * RECORD as u64));
            group.bench_function(format!("{name}_{what}"), |b| {
                b.iter(|| {
                    let mut bytes = 0u64;
                    let stats = log
                        .scan(from, to, |r| {
                            bytes += r.payload.len() as u64;
                            ControlFlow::Continue(())
                        })
                        .unwrap();
                    assert_eq!(stats.records, records);
                    black_box(bytes)
                });
            });
        }
    }
    group.finish();
}

criterion_group!(benches, concurrent_append, single_append, scan);
criterion_main!(benches);
