//! Metric filters and EMF on the ingestion path: the tap over a batch of
//! 1,000 JSON access events with one filter (value `$.latency_us`, one
//! dimension) and with ten; EMF extraction of the SEMANTICS §5 example; and
//! the fast path every non-EMF event takes. One core; events per second.
//!
//! `cargo bench -p vigil-logs --bench metric_filter`

use std::hint::black_box;
use std::sync::Arc;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use vigil_logs::emf;
use vigil_logs::metric_filter::{FilterSpec, MetricFilters, MetricSink};
use vigil_logs::pipeline::{Batch, Tap};
use vigil_logs::store::InputEvent;
use vigil_metrics::tsdb::Record;

const EVENTS: usize = 1000;
const NOW: i64 = 1_800_000_000_000;

#[derive(Debug)]
struct Discard;

impl MetricSink for Discard {
    fn put(&self, records: &[Record]) -> Result<(), String> {
        black_box(records.len());
        Ok(())
    }
}

fn json_events() -> Vec<InputEvent> {
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    (0..EVENTS)
        .map(|i| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let r = seed;
            InputEvent {
                timestamp: NOW + i as i64 * 50,
                message: format!(
                    r#"{{"ts":"2027-01-15T08:00:{:02}.{:03}Z","level":"info","route":"/v2/models/fraud/infer","method":"POST","status":{},"latency_us":{},"bytes":{},"request_id":"{:016x}"}}"#,
                    r % 60,
                    (r >> 8) % 1000,
                    [200, 200, 404, 503][((r >> 12) % 4) as usize],
                    (r >> 16) % 4000,
                    (r >> 28) % 5000,
                    r,
                ),
            }
        })
        .collect()
}

fn filters(n: usize) -> (tempfile::TempDir, MetricFilters) {
    let dir = tempfile::tempdir().expect("tempdir");
    let filters = MetricFilters::open(dir.path(), Arc::new(Discard)).expect("open");
    for i in 0..n {
        let spec: FilterSpec = serde_json::from_str(&format!(
            r#"{{"pattern": "{{ $.status >= {} }}", "metric": {{"name": "Latency{i}", "namespace": "Bench",
                "value": "$.latency_us", "dimensions": {{"Route": "$.route"}}}}}}"#,
            200 + i * 30
        ))
        .expect("spec");
        filters
            .put("/bench", &format!("f{i}"), spec, 0)
            .expect("put");
    }
    (dir, filters)
}

fn bench_tap(c: &mut Criterion) {
    let events = json_events();
    let mut group = c.benchmark_group("metric_filter");
    group.throughput(Throughput::Elements(EVENTS as u64));
    for n in [1, 10] {
        let (_dir, filters) = filters(n);
        group.bench_function(format!("tap_{n}_filters"), |b| {
            b.iter(|| {
                filters.stored(&Batch::new("/bench", "s", NOW, black_box(&events)));
                filters.flush(NOW)
            })
        });
    }
    group.finish();
}

fn bench_emf(c: &mut Criterion) {
    let line = r#"{"_aws":{"Timestamp":1800000000000,"CloudWatchMetrics":[{"Namespace":"svc","Dimensions":[["Model"],["Model","Stage"],[]],"Metrics":[{"Name":"latencyMs","Unit":"Milliseconds","StorageResolution":1}]}]},"Model":"fraud","Stage":"prod","latencyMs":[12,15,40],"requestId":"r-1"}"#;
    let plain: Vec<String> = json_events().into_iter().map(|e| e.message).collect();
    let mut group = c.benchmark_group("emf");
    group.throughput(Throughput::Elements(1));
    group.bench_function("extract_example", |b| {
        b.iter(|| emf::extract(black_box(line), NOW).map(|x| x.records.len()))
    });
    group.throughput(Throughput::Elements(plain.len() as u64));
    group.bench_function("fast_path_non_emf", |b| {
        b.iter(|| {
            plain
                .iter()
                .filter(|m| emf::extract(black_box(m), NOW).is_some())
                .count()
        })
    });
    group.finish();
}

criterion_group!(benches, bench_tap, bench_emf);
criterion_main!(benches);
