//! The trace store's budgets: ingestion (batches of 8 spans, one request's
//! trace, and of 500), a search over the last hour of 1,000,000 spans
//! (150,000 summaries) with a predicate matching 1%, `get`, and a
//! restart's service-map rebuild from that hour of spans.
//!
//! `cargo bench -p vigil-trace --bench store -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::ops::ControlFlow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use vigil_trace::model::{AnnotationValue, Span, SpanId, SpanKind, TraceId, TraceSummary};
use vigil_trace::service_map::{MapSpan, ServiceMap, ServiceMapConfig};
use vigil_trace::store::{StoreOptions, TraceStore};

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// A trace like Vigil's own: a root with an HTTP block, stages, a remote
/// call; `tenant` annotation `t<seq % 100>`.
fn trace(seq: u64, start_us: i64, n: usize) -> Vec<Span> {
    let mut random = [0u8; 12];
    random[4..].copy_from_slice(&seq.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_le_bytes());
    let id = TraceId::from_parts((start_us / 1_000_000) as u32, random);
    (0..n)
        .map(|i| {
            let mut s = Span::new(
                id,
                SpanId([(i + 1) as u8; 8]),
                (i > 0).then_some(SpanId([1; 8])),
                [
                    "vigil", "gateway", "cache", "score", "redis", "log", "respond", "x",
                ][i % 8],
                "vigil",
                start_us + i as i64 * 50,
                start_us + 2_000,
            );
            if i == 0 {
                s.kind = SpanKind::Server;
                s.set_status(200);
                if let Some(h) = &mut s.http {
                    h.method = Some("POST".into());
                    h.url = Some("/v1/models/fraud/infer".into());
                }
                s.annotations.insert(
                    "tenant".into(),
                    AnnotationValue::String(format!("t{}", seq % 100)),
                );
                s.annotations
                    .insert("model".into(), AnnotationValue::from("fraud"));
            }
            if i == 4 {
                s.kind = SpanKind::Client;
                s.remote = true;
            }
            s
        })
        .collect()
}

fn options() -> StoreOptions {
    StoreOptions {
        background_retention: false,
        ..StoreOptions::default()
    }
}

fn ingest(c: &mut Criterion) {
    let mut group = c.benchmark_group("store_append");
    for (name, per_batch) in [("batch_8", 1usize), ("batch_500", 62)] {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = TraceStore::open(dir.path(), options()).expect("open");
        let mut seq = 0u64;
        let t0 = now_us();
        let sample: Vec<Span> = (0..per_batch as u64)
            .flat_map(|i| trace(i, t0, 8))
            .collect();
        group.throughput(Throughput::Elements(sample.len() as u64));
        group.bench_function(name, |b| {
            b.iter_batched(
                || {
                    seq += per_batch as u64;
                    (0..per_batch as u64)
                        .flat_map(|i| trace(seq + i, t0 + seq as i64, 8))
                        .collect::<Vec<Span>>()
                },
                |batch| store.append(black_box(&batch)).expect("append"),
                BatchSize::SmallInput,
            );
        });
    }
    group.finish();
}

fn reads(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = TraceStore::open(dir.path(), options()).expect("open");
    let end = now_us();
    let start = end - 3_600_000_000;
    let traces = 150_000u64;
    let mut batch = Vec::new();
    let mut spans = 0usize;
    let mut ids = Vec::new();
    for seq in 0..traces {
        let n = if seq % 3 == 0 { 6 } else { 7 };
        let t = trace(seq, start + (seq as i64) * 24_000, n);
        if seq % 997 == 0 {
            ids.push(t[0].trace_id);
        }
        spans += t.len();
        batch.extend(t);
        if batch.len() >= 64 {
            store.append(&batch).expect("append");
            batch.clear();
        }
    }
    store.append(&batch).expect("append");
    store.roll().expect("roll");
    // Let the background thread compress the sealed segments.
    std::thread::sleep(Duration::from_secs(3));
    eprintln!("store: {spans} spans, {:?}", store.stats());

    let tenant = AnnotationValue::String("t42".into());
    let pred = |s: &TraceSummary| {
        s.annotations
            .iter()
            .any(|(k, v)| k == "tenant" && *v == tenant)
    };
    let mut group = c.benchmark_group("store_read");
    group.throughput(Throughput::Elements(traces));
    group.bench_function("search_last_hour_1pct", |b| {
        b.iter(|| {
            let page = store
                .search(start, end + 1, pred, 2_000, None)
                .expect("search");
            assert_eq!(page.summaries.len(), 1_500);
            page
        });
    });
    // A restart's service-map rebuild: every span of the hour decoded and
    // fed to a fresh map in the server's batches of 4,096.
    group.throughput(Throughput::Elements(spans as u64));
    group.sample_size(10);
    group.bench_function("rebuild_map_last_hour", |b| {
        b.iter(|| {
            let map = ServiceMap::new(ServiceMapConfig::default());
            let mut batch = Vec::with_capacity(4096);
            let mut clock_ms = i64::MIN;
            let read = store
                .scan_spans(start, end + 1, store.spans_end(), |span| {
                    clock_ms = clock_ms.max(span.end_us / 1000);
                    batch.push(MapSpan::from(span));
                    if batch.len() == 4096 {
                        map.add_spans(&batch, clock_ms);
                        batch.clear();
                    }
                    ControlFlow::Continue(())
                })
                .expect("scan");
            map.add_spans(&batch, clock_ms);
            assert_eq!(read, spans as u64);
            map
        });
    });
    group.sample_size(100);
    group.throughput(Throughput::Elements(1));
    let mut i = 0;
    group.bench_function("get", |b| {
        b.iter(|| {
            i = (i + 1) % ids.len();
            let spans = store.get(ids[i]).expect("get");
            assert!(spans.len() >= 6);
            spans
        });
    });
    group.finish();
}

criterion_group!(benches, ingest, reads);
criterion_main!(benches);
