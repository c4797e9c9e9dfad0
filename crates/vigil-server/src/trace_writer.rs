//! Where sampled traces go once their request is answered: a bounded
//! queue (a full queue drops the trace and counts it, so a slow disk never
//! slows a request) in front of one writer thread, which appends them to
//! the trace store and adds them to the service map, a batch at a time.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError};
use std::time::Duration;

use serde::Serialize;
use vigil_trace::model::Span;
use vigil_trace::sampling::Sampler;
use vigil_trace::service_map::{ServiceMap, ServiceMapConfig};
use vigil_trace::store::{StoreOptions, TraceStore};

use crate::config::TracesConfig;
use crate::telemetry::trace::TraceSink;

/// How often the writer drains the queue while traces keep coming (one
/// wake per interval instead of one per request, as the log writer does).
const DRAIN_INTERVAL: Duration = Duration::from_millis(10);

/// Everything tracing keeps: the sampling rules, the trace store and the
/// service map, and the writer feeding the last two.
#[derive(Debug)]
pub struct Traces {
    /// The sampling rules in force.
    pub sampler: Arc<Sampler>,
    /// The stored traces.
    pub store: Arc<TraceStore>,
    /// The service map, aggregated as traces are written.
    pub map: Arc<ServiceMap>,
    /// The queue in front of the writer.
    pub writer: Arc<TraceWriter>,
}

/// The writer's counters since start.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct WriterStats {
    /// Traces taken into the queue.
    pub queued: u64,
    /// Traces dropped because the queue was full.
    pub dropped: u64,
    /// Spans written to the store.
    pub spans_written: u64,
    /// Batches the store failed to take (their spans are lost).
    pub write_errors: u64,
}

/// The queue's sending side and its counters.
#[derive(Debug)]
pub struct TraceWriter {
    tx: SyncSender<Vec<Span>>,
    queued: AtomicU64,
    dropped: AtomicU64,
    counts: Arc<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    spans_written: AtomicU64,
    write_errors: AtomicU64,
}

impl TraceWriter {
    /// The counters since start.
    pub fn stats(&self) -> WriterStats {
        WriterStats {
            queued: self.queued.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            spans_written: self.counts.spans_written.load(Ordering::Relaxed),
            write_errors: self.counts.write_errors.load(Ordering::Relaxed),
        }
    }
}

impl TraceSink for TraceWriter {
    fn write(&self, spans: Vec<Span>) -> bool {
        match self.tx.try_send(spans) {
            Ok(()) => {
                self.queued.fetch_add(1, Ordering::Relaxed);
                true
            }
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
                false
            }
        }
    }
}

impl Traces {
    /// Opens the trace store in `config`'s directory (under `store_dir` by
    /// default), the sampling rules (the config's, with the API's changes
    /// kept beside the store) and the service map, and starts the writer.
    pub fn open(config: &TracesConfig, store_dir: &Path) -> anyhow::Result<Traces> {
        let dir = config.dir(store_dir);
        std::fs::create_dir_all(&dir)
            .map_err(|err| anyhow::anyhow!("cannot create {}: {err}", dir.display()))?;
        let sampler = Sampler::open(&dir, config.sampling_rules.clone())
            .map_err(|err| anyhow::anyhow!("traces: {err}"))?;
        let options = StoreOptions {
            retain_age: Duration::from_secs(u64::from(config.retention_days) * 86_400),
            retain_bytes: Some(config.max_bytes),
            ..StoreOptions::default()
        };
        let store = TraceStore::open(dir.join("store"), options)
            .map_err(|err| anyhow::anyhow!("cannot open the trace store: {err}"))?;
        let store = Arc::new(store);
        let map = Arc::new(ServiceMap::new(ServiceMapConfig::default()));
        let writer = start_writer(config.queue_capacity, Arc::clone(&store), Arc::clone(&map))?;
        Ok(Traces {
            sampler: Arc::new(sampler),
            store,
            map,
            writer,
        })
    }
}

fn start_writer(
    capacity: usize,
    store: Arc<TraceStore>,
    map: Arc<ServiceMap>,
) -> anyhow::Result<Arc<TraceWriter>> {
    let (tx, rx) = std::sync::mpsc::sync_channel(capacity);
    let counts = Arc::new(Counts::default());
    let thread_counts = Arc::clone(&counts);
    std::thread::Builder::new()
        .name("vigil-trace-writer".to_owned())
        .spawn(move || drain(&rx, &store, &map, &thread_counts))?;
    Ok(Arc::new(TraceWriter {
        tx,
        queued: AtomicU64::new(0),
        dropped: AtomicU64::new(0),
        counts,
    }))
}

/// Writes what arrives until every sender is gone: blocks while the queue
/// is empty, drains it every [`DRAIN_INTERVAL`] while it is not.
fn drain(rx: &Receiver<Vec<Span>>, store: &TraceStore, map: &ServiceMap, counts: &Counts) {
    let mut batch: Vec<Span> = Vec::new();
    while let Ok(first) = rx.recv() {
        batch.extend(first);
        loop {
            let mut gone = false;
            loop {
                match rx.try_recv() {
                    Ok(spans) => batch.extend(spans),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        gone = true;
                        break;
                    }
                }
            }
            write(&mut batch, store, map, counts);
            if gone {
                return;
            }
            std::thread::sleep(DRAIN_INTERVAL);
            match rx.try_recv() {
                Ok(spans) => batch.extend(spans),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => return,
            }
        }
    }
}

fn write(batch: &mut Vec<Span>, store: &TraceStore, map: &ServiceMap, counts: &Counts) {
    if batch.is_empty() {
        return;
    }
    match store.append(batch) {
        Ok(n) => {
            counts.spans_written.fetch_add(n as u64, Ordering::Relaxed);
        }
        Err(err) => {
            counts.write_errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(error = %err, spans = batch.len(), "spans not stored in the trace store");
        }
    }
    map.add_batch(batch, vigil_metrics::service::now_ms());
    batch.clear();
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_trace::model::{SpanId, TraceId};

    #[test]
    fn queued_traces_reach_the_store_and_the_map_and_a_full_queue_counts_drops() {
        let dir = tempfile::tempdir().unwrap();
        let config = TracesConfig {
            queue_capacity: 2,
            ..TracesConfig::default()
        };
        let traces = Traces::open(&config, dir.path()).unwrap();
        let now = crate::telemetry::trace::now_us();
        let trace = TraceId([3; 16]);
        let root = Span::new(
            trace,
            SpanId([1; 8]),
            None,
            "vigil",
            "vigil",
            now - 100,
            now,
        );
        let child = Span::new(
            trace,
            SpanId([2; 8]),
            Some(SpanId([1; 8])),
            "score",
            "vigil",
            now - 50,
            now,
        );
        traces.writer.write(vec![child, root]);
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while traces.store.get(trace).unwrap().len() < 2 {
            assert!(std::time::Instant::now() < deadline, "not written");
            std::thread::sleep(Duration::from_millis(10));
        }
        let now_ms = now / 1000;
        let graph = traces.map.map(now_ms - 60_000, now_ms + 60_000);
        assert!(!graph.edges.is_empty(), "{graph:?}");
        // A burst beyond the queue's capacity is dropped, not blocked on.
        for _ in 0..1000 {
            traces.writer.write(vec![Span::new(
                trace,
                SpanId([9; 8]),
                None,
                "x",
                "vigil",
                now,
                now,
            )]);
        }
        let stats = traces.writer.stats();
        assert_eq!(stats.queued + stats.dropped, 1001);
        assert!(stats.dropped > 0, "{stats:?}");
    }
}
