//! The log store: ingestion in batches of 1,000 events of ~200 bytes (an
//! access-log line), a full scan of stored events (sealed and
//! LZ4-compressed), and bytes on disk per event (printed).
#![allow(clippy::unwrap_used)]

use std::hint::black_box;
use std::ops::ControlFlow;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use vigil_logs::store::{InputEvent, LogStore, StoreOptions};

const NOW: i64 = 1_800_000_000_000;

/// A JSON access-log line of about 200 bytes.
fn line(i: usize) -> String {
    format!(
        r#"{{"ts":"2026-12-01T21:00:{:02}.{:03}Z","method":"POST","route":"/v1/models/fraud/score","status":{},"latency_us":{},"bytes":{},"request_id":"0193a6f1-{:04x}-7c3e-9a1b-3f2e{:08x}"}}"#,
        i % 60,
        i % 1000,
        if i.is_multiple_of(50) { 500 } else { 200 },
        100 + (i * 7919) % 2500,
        300 + i % 700,
        i % 65536,
        i
    )
}

fn batch(start: usize) -> Vec<InputEvent> {
    (start..start + 1000)
        .map(|i| InputEvent {
            timestamp: NOW - 3_600_000 + i as i64,
            message: line(i),
        })
        .collect()
}

fn ingest(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let store = LogStore::open(dir.path(), StoreOptions::default()).unwrap();
    let batches: Vec<Vec<InputEvent>> = (0..64).map(|b| batch(b * 1000)).collect();
    let mut g = c.benchmark_group("logs");
    g.throughput(Throughput::Elements(1000));
    let mut n = 0;
    g.bench_function("put_batch_of_1000", |b| {
        b.iter(|| {
            let out = store
                .put("/bench/access", "s", &batches[n % batches.len()], NOW)
                .unwrap();
            n += 1;
            black_box(out.accepted)
        });
    });
    g.finish();
}

fn scan(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let options = StoreOptions {
        segment_bytes: 4 << 20,
        ..StoreOptions::default()
    };
    let store = LogStore::open(dir.path(), options.clone()).unwrap();
    let events = 500_000usize;
    let mut raw = 0usize;
    for b in 0..events / 1000 {
        let batch = batch(b * 1000);
        raw += batch.iter().map(|e| e.message.len()).sum::<usize>();
        store.put("/bench/access", "s", &batch, NOW).unwrap();
    }
    drop(store);
    // Reopened: every segment but the last sealed; compression runs in the
    // background, so wait for it.
    let store = LogStore::open(dir.path(), options).unwrap();
    std::thread::sleep(std::time::Duration::from_secs(2));
    let info = &store.groups()[0];
    println!(
        "logs: {} events, {:.1} raw bytes/event, {:.1} stored bytes/event (ratio {:.2})",
        info.events,
        raw as f64 / events as f64,
        info.stored_bytes as f64 / info.events as f64,
        raw as f64 / info.stored_bytes as f64
    );
    let mut g = c.benchmark_group("logs");
    g.throughput(Throughput::Elements(events as u64));
    g.sample_size(10);
    g.bench_function("scan_500k_events", |b| {
        b.iter(|| {
            let mut bytes = 0usize;
            store
                .scan("/bench/access", 0, NOW, |e| {
                    bytes += e.message.len();
                    ControlFlow::Continue(())
                })
                .unwrap();
            black_box(bytes)
        });
    });
    g.finish();
}

criterion_group!(benches, ingest, scan);
criterion_main!(benches);
