//! The trace store's budgets: ingestion (batches of 8 spans, one request's
//! trace, and of 500), a search over the last hour of 1,000,000 spans
//! (150,000 summaries) with a predicate matching 1%, `get`, and a
//! restart's service-map rebuild from that hour of spans; and what a
//! sampled scoring request's thread spends building its six spans and
//! encoding them into its `PreparedTraces` buffer (`prepare/*`).
//!
//! `cargo bench -p vigil-trace --bench store -- --warm-up-time 1 --measurement-time 3`

use std::hint::black_box;
use std::ops::ControlFlow;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use vigil_trace::model::{AnnotationValue, Span, SpanId, SpanKind, TraceId, TraceSummary};
use vigil_trace::service_map::{MapSpan, ServiceMap, ServiceMapConfig};
use vigil_trace::store::{PreparedTraces, StoreOptions, TraceStore};

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

/// The spans of one scoring request as Vigil records them: a root with
/// its HTTP block, five annotations and two metadata values, then the
/// gateway, parse, score, inference-log and response stages.
fn scoring_request(seq: u64, start_us: i64) -> Vec<Span> {
    let mut random = [0u8; 12];
    random[4..].copy_from_slice(&seq.wrapping_mul(0x9e37_79b9_7f4a_7c15).to_le_bytes());
    let id = TraceId::from_parts((start_us / 1_000_000) as u32, random);
    let root_id = SpanId((seq | 1).to_le_bytes());
    let stages = ["gateway", "parse", "score", "inference_log", "response"];
    let mut spans: Vec<Span> = Vec::with_capacity(8);
    for (i, name) in stages.iter().enumerate() {
        let at = start_us + 30 + i as i64 * 40;
        let mut span = Span::new(
            id,
            SpanId(((seq << 3) + i as u64 + 2).to_le_bytes()),
            Some(root_id),
            *name,
            "vigil",
            at,
            at + 10,
        );
        if matches!(*name, "parse" | "score") {
            span.annotations
                .insert("rows".into(), AnnotationValue::Number(1.0));
        }
        spans.push(span);
    }
    let mut root = Span::new(
        id,
        root_id,
        None,
        "vigil",
        "vigil",
        start_us,
        start_us + 285,
    );
    root.kind = SpanKind::Server;
    root.set_status(200);
    if let Some(h) = &mut root.http {
        h.method = Some("POST".to_owned());
        h.url = Some("/v1/models/fraud/score".to_owned());
        h.user_agent = Some("wrk".to_owned());
        h.content_length = Some(107);
    }
    for (key, value) in [
        ("label", AnnotationValue::from("legit")),
        ("model", AnnotationValue::from("fraud")),
        (
            "request_id",
            AnnotationValue::String(format!("aa50f222-{seq:012x}")),
        ),
        ("route", AnnotationValue::from("/v1/models/{name}/score")),
        ("version", AnnotationValue::from("1")),
    ] {
        root.annotations.insert(key.into(), value);
    }
    root.metadata.insert(
        "scores".to_owned(),
        serde_json::json!([2.309_983_102_577_462e-7]),
    );
    root.metadata
        .insert("threshold".to_owned(), serde_json::json!(0.5));
    spans.push(root);
    spans
}

/// What a sampled request's thread spends on its trace: building the spans
/// (as the request records them) and encoding them into its buffer
/// (`PreparedTraces::push`), then freeing them; and the encoding alone.
fn prepare(c: &mut Criterion) {
    let mut group = c.benchmark_group("prepare");
    group.throughput(Throughput::Elements(1));
    let t0 = now_us();
    let mut traces = PreparedTraces::new();
    let mut seq = 0u64;
    group.bench_function("record_and_encode_scoring_trace", |b| {
        b.iter(|| {
            seq += 1;
            if traces.traces() == 256 {
                traces.clear();
            }
            let spans = scoring_request(seq, t0 + seq as i64);
            traces.push(black_box(&spans))
        });
    });
    group.bench_function("encode_scoring_trace", |b| {
        b.iter_batched(
            || {
                seq += 1;
                scoring_request(seq, t0 + seq as i64)
            },
            |spans| {
                if traces.traces() == 256 {
                    traces.clear();
                }
                traces.push(black_box(&spans))
            },
            BatchSize::SmallInput,
        );
    });
    group.finish();
}

criterion_group!(benches, ingest, prepare, reads);
criterion_main!(benches);
