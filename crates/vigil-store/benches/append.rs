//! Sustained append throughput into the SQLite log (journaled, applied to
//! SQLite by the indexer thread): many tasks
//! append one record at a time, each waiting for its acknowledgement, as
//! concurrent HTTP requests do.

#![allow(clippy::unwrap_used, missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;
use vigil_store::{Durability, InferenceLog, InferenceRecord, Store, StoreConfig};

const TASKS: u64 = 64;
const PER_TASK: u64 = 160;

fn record(id: u64) -> InferenceRecord {
    let input = match json!({
        "amount": 129.99, "country": "FR", "card_age_days": 412, "hour": 13,
        "merchant_category": "electronics", "velocity_1h": 3, "email_domain_risk": 0.12
    }) {
        serde_json::Value::Object(m) => m,
        _ => unreachable!(),
    };
    let mut r = InferenceRecord::new(
        format!("bench-{id}"),
        1_700_000_000_000_000 + id as i64,
        "fraud",
        "v1",
        input,
    );
    r.scores = vec![0.0421];
    r.label = Some("legit".into());
    r.threshold = Some(0.5);
    r.latency_us = 35;
    r.api_key_name = Some("shop".into());
    r
}

fn bench_durability(c: &mut Criterion, name: &str, durability: Durability) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = StoreConfig::with_data_dir(dir.path());
    config.durability = durability;
    let store: Arc<Store> = rt.block_on(Store::open(&config)).unwrap();
    let next = Arc::new(AtomicU64::new(0));

    let mut group = c.benchmark_group("sqlite_append");
    group.throughput(Throughput::Elements(TASKS * PER_TASK));
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(8));
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            rt.block_on(async {
                let start = Instant::now();
                for _ in 0..iters {
                    let mut tasks = Vec::with_capacity(TASKS as usize);
                    for _ in 0..TASKS {
                        let store = Arc::clone(&store);
                        let next = Arc::clone(&next);
                        tasks.push(tokio::spawn(async move {
                            for _ in 0..PER_TASK {
                                let id = next.fetch_add(1, Ordering::Relaxed);
                                store.append(record(id)).await.unwrap();
                            }
                        }));
                    }
                    for t in tasks {
                        t.await.unwrap();
                    }
                }
                start.elapsed()
            })
        });
    });
    if durability == Durability::Os {
        // The idempotency check every request makes before scoring.
        // Filtered runs skip the append bench: make sure there is data.
        rt.block_on(async {
            while next.load(Ordering::Relaxed) < 50_000 {
                let batch = (0..1000)
                    .map(|_| record(next.fetch_add(1, Ordering::Relaxed)))
                    .collect();
                store.append_batch(batch).await.unwrap();
            }
        });
        let written = next.load(Ordering::Relaxed);
        group.bench_function("64_tasks_lookup_hit", |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let start = Instant::now();
                    for _ in 0..iters {
                        let mut tasks = Vec::with_capacity(TASKS as usize);
                        for t in 0..TASKS {
                            let store = Arc::clone(&store);
                            tasks.push(tokio::spawn(async move {
                                for i in 0..PER_TASK {
                                    let id = (t * 7919 + i * 104_729) % written;
                                    let found = store.lookup("fraud", &format!("bench-{id}")).await;
                                    assert!(found.unwrap().is_some());
                                }
                            }));
                        }
                        for t in tasks {
                            t.await.unwrap();
                        }
                    }
                    start.elapsed()
                })
            });
        });
    }
    group.finish();
    let stats = store.stats_snapshot();
    eprintln!(
        "{name}: {} records written, mean append latency {} us",
        stats.records_written,
        stats.write_latency_us_sum / stats.write_latency_count.max(1)
    );
    rt.block_on(store.shutdown());
}

fn appends(c: &mut Criterion) {
    bench_durability(c, "64_tasks_os", Durability::Os);
    bench_durability(c, "64_tasks_fsync", Durability::Fsync);
}

criterion_group!(benches, appends);
criterion_main!(benches);
