//! Where sampled traces go once their request is answered: bounded
//! buffers (a full one drops the trace and counts it, so a slow disk never
//! slows a request) in front of one writer thread, which appends them to
//! the trace store and adds them to the service map, a batch at a time,
//! then offers the batch to the OTLP export when there is one
//! ([`crate::trace_export`]).
//!
//! Vigil's own traces are encoded on the request's thread, into that
//! thread's shard of [`PreparedTraces`] buffers: the spans are freed where
//! they were made, and nothing is allocated or sent per trace. (Handing
//! over the spans themselves, two dozen allocations per trace freed on
//! another core, cost more than the writer's work.) Every
//! [`DRAIN_INTERVAL`] the writer swaps each shard's buffer for the empty
//! one it wrote last time. The channel carries what is rare: spans
//! received over OTLP, flushes, and the wake-up of an idle writer by the
//! first trace after a pause. Vigil's spans cross only when the OTLP
//! export needs them.

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use serde::Serialize;
use vigil_trace::model::Span;
use vigil_trace::sampling::Sampler;
use vigil_trace::service_map::MapSpan;
use vigil_trace::service_map::{ServiceMap, ServiceMapConfig};
use vigil_trace::store::{PreparedTraces, StoreOptions, TraceStore};

use crate::config::TracesConfig;
use crate::telemetry::trace::{SpanOrigin, TraceSink};
use crate::trace_export::{ExportStats, TraceExporter};

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
    /// The rebuild of the service map from the spans stored before start.
    pub rebuild: Arc<MapRebuild>,
}

/// The service map's rebuild after a start: the spans stored before it
/// (within the map's retention) are read in a thread of their own and
/// their figures added to the live map once read, so the map of the last
/// hours survives a restart without holding up start-up or the writer.
#[derive(Debug, Default)]
pub struct MapRebuild {
    done: std::sync::OnceLock<RebuildReport>,
}

/// What a finished rebuild read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RebuildReport {
    /// Stored spans fed to the map.
    pub spans: u64,
    /// How long it took, ms.
    pub took_ms: u64,
    /// Whether the store failed part-way (the map has what was read).
    pub failed: bool,
}

impl MapRebuild {
    /// The report, once the rebuild has finished.
    pub fn report(&self) -> Option<RebuildReport> {
        self.done.get().copied()
    }
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
    /// The OTLP export's counters, when `traces.otlp_endpoint` is set.
    pub export: Option<ExportStats>,
}

/// The writer's intake: the per-thread shards of Vigil's own traces, the
/// channel for the rest, and the counters.
#[derive(Debug)]
pub struct TraceWriter {
    shards: Arc<Shards>,
    tx: SyncSender<Message>,
    counts: Arc<Counts>,
    exporter: Option<Arc<TraceExporter>>,
}

#[derive(Debug, Default)]
struct Counts {
    spans_written: AtomicU64,
    write_errors: AtomicU64,
}

/// Vigil's own traces waiting for the writer, a shard per recording
/// thread (threads are spread over them, two per core), each bounded.
#[derive(Debug)]
struct Shards {
    shards: Box<[Mutex<Shard>]>,
    /// Traces a shard holds before it drops.
    per_shard: usize,
    /// The writer found every shard empty and waits on the channel: the
    /// next trace must send it a [`Message::Wake`].
    idle: AtomicBool,
}

/// One shard: the traces, their spans when exported, its counters.
#[derive(Debug, Default)]
struct Shard {
    traces: PreparedTraces,
    spans: Vec<Span>,
    queued: u64,
    dropped: u64,
}

impl Shards {
    fn new(capacity: usize) -> Shards {
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZeroUsize::get);
        Shards {
            shards: (0..cores * 2).map(|_| Mutex::default()).collect(),
            per_shard: capacity.div_ceil(cores).max(1),
            idle: AtomicBool::new(true),
        }
    }

    /// The calling thread's shard.
    fn mine(&self) -> MutexGuard<'_, Shard> {
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        thread_local! {
            static INDEX: usize = NEXT.fetch_add(1, Ordering::Relaxed);
        }
        let i = INDEX.with(|i| *i) % self.shards.len();
        lock(&self.shards[i])
    }

    /// Swaps every shard holding traces with its empty `spare` (cleared
    /// where it is written, so it keeps its buffers); true if any did.
    fn take(&self, spare: &mut [Shard]) -> bool {
        let mut took = false;
        for (shard, spare) in self.shards.iter().zip(spare) {
            let mut shard = lock(shard);
            if !shard.traces.is_empty() {
                std::mem::swap(&mut shard.traces, &mut spare.traces);
                std::mem::swap(&mut shard.spans, &mut spare.spans);
                took = true;
            }
        }
        took
    }

    fn all_empty(&self) -> bool {
        self.shards.iter().all(|s| lock(s).traces.is_empty())
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// What the writer's channel carries.
enum Message {
    /// Traces are waiting in the shards (sent to an idle writer).
    Wake,
    /// Spans received over OTLP.
    Received(Vec<Span>),
    /// Write what was taken, sync the store, then answer.
    Flush(std::sync::mpsc::Sender<()>),
}

impl TraceWriter {
    /// Waits (at most `timeout`) until every trace queued so far is in the
    /// store, synced, and in the service map; then, when there is an OTLP
    /// export, until it has sent them (or given up) within what is left of
    /// `timeout`. For a graceful shutdown.
    pub fn flush(&self, timeout: Duration) {
        let deadline = std::time::Instant::now() + timeout;
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        if self.tx.send(Message::Flush(done_tx)).is_ok() {
            let _ = done_rx.recv_timeout(timeout);
        }
        if let Some(exporter) = &self.exporter {
            while exporter.pending() > 0 && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }

    /// The counters since start.
    pub fn stats(&self) -> WriterStats {
        let (mut queued, mut dropped) = (0, 0);
        for shard in &self.shards.shards {
            let shard = lock(shard);
            queued += shard.queued;
            dropped += shard.dropped;
        }
        WriterStats {
            queued,
            dropped,
            spans_written: self.counts.spans_written.load(Ordering::Relaxed),
            write_errors: self.counts.write_errors.load(Ordering::Relaxed),
            export: self.exporter.as_ref().map(|e| e.stats()),
        }
    }
}

impl TraceSink for TraceWriter {
    fn write(&self, origin: SpanOrigin, spans: Vec<Span>) -> bool {
        match origin {
            SpanOrigin::Own => {
                {
                    let mut shard = self.shards.mine();
                    if shard.traces.traces() >= self.shards.per_shard {
                        shard.dropped += 1;
                        return false;
                    }
                    if !shard.traces.push(&spans) {
                        return true;
                    }
                    shard.queued += 1;
                    if self.exporter.is_some() {
                        shard.spans.extend(spans);
                    }
                }
                // After the shard's lock: a writer that went idle before
                // it is seen idle here (see `drain`).
                if self.shards.idle.load(Ordering::SeqCst)
                    && self.shards.idle.swap(false, Ordering::SeqCst)
                {
                    // A full channel has messages: the writer is awake.
                    let _ = self.tx.try_send(Message::Wake);
                }
                true
            }
            SpanOrigin::Received => match self.tx.try_send(Message::Received(spans)) {
                Ok(()) => {
                    self.shards.mine().queued += 1;
                    true
                }
                Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                    let mut shard = self.shards.mine();
                    shard.dropped += 1;
                    false
                }
            },
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
        // The mark is taken before the writer starts: the rebuild reads
        // exactly the spans the live map will never see.
        let rebuild = start_rebuild(&store, &map, ServiceMapConfig::default())?;
        let exporter = match &config.otlp {
            Some(otlp) => Some(Arc::new(TraceExporter::start(otlp)?)),
            None => None,
        };
        let writer = start_writer(
            config.queue_capacity,
            Arc::clone(&store),
            Arc::clone(&map),
            exporter,
        )?;
        Ok(Traces {
            sampler: Arc::new(sampler),
            store,
            map,
            writer,
            rebuild,
        })
    }
}

/// Spans per batch fed to the rebuilt map.
const REBUILD_BATCH: usize = 4096;

/// Starts the rebuild of `map` from the spans in `store` now (see
/// [`MapRebuild`]). The rebuilt map's clock is the latest span end read,
/// as if each span arrived when it ended.
fn start_rebuild(
    store: &Arc<TraceStore>,
    map: &Arc<ServiceMap>,
    config: ServiceMapConfig,
) -> anyhow::Result<Arc<MapRebuild>> {
    let status = Arc::new(MapRebuild::default());
    let upto = store.spans_end();
    let restart_ms = vigil_metrics::service::now_ms();
    // Spans that start a little before the retention may end inside it.
    let from_ms = restart_ms - i64::from(config.retention_minutes) * 60_000 - 600_000;
    let (store, map, done) = (Arc::clone(store), Arc::clone(map), Arc::clone(&status));
    std::thread::Builder::new()
        .name("vigil-map-rebuild".to_owned())
        .spawn(move || {
            let started = std::time::Instant::now();
            let rebuilt = ServiceMap::new(config);
            let mut batch: Vec<MapSpan> = Vec::with_capacity(REBUILD_BATCH);
            let mut clock_ms = i64::MIN;
            let mut read: u64 = 0;
            let result = store.scan_spans(
                from_ms.saturating_mul(1000),
                i64::MAX,
                upto,
                |span| {
                    clock_ms = clock_ms.max(span.end_us.div_euclid(1000));
                    read += 1;
                    batch.push(MapSpan::from(span));
                    if batch.len() == REBUILD_BATCH {
                        rebuilt.add_spans(&batch, clock_ms);
                        batch.clear();
                    }
                    std::ops::ControlFlow::Continue(())
                },
            );
            if !batch.is_empty() {
                rebuilt.add_spans(&batch, clock_ms);
            }
            map.absorb(&rebuilt, restart_ms);
            let took_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
            let failed = match result {
                Ok(_) => {
                    if read > 0 {
                        tracing::info!(spans = read, took_ms, "service map rebuilt from the stored spans");
                    }
                    false
                }
                Err(err) => {
                    tracing::warn!(error = %err, spans = read, took_ms,
                        "service map rebuild stopped: the trace store failed; the map has what was read");
                    true
                }
            };
            let _ = done.done.set(RebuildReport { spans: read, took_ms, failed });
        })?;
    Ok(status)
}

fn start_writer(
    capacity: usize,
    store: Arc<TraceStore>,
    map: Arc<ServiceMap>,
    exporter: Option<Arc<TraceExporter>>,
) -> anyhow::Result<Arc<TraceWriter>> {
    let (tx, rx) = std::sync::mpsc::sync_channel(capacity);
    let shards = Arc::new(Shards::new(capacity));
    let counts = Arc::new(Counts::default());
    let (thread_shards, thread_counts) = (Arc::clone(&shards), Arc::clone(&counts));
    let thread_exporter = exporter.clone();
    std::thread::Builder::new()
        .name("vigil-trace-writer".to_owned())
        .spawn(move || {
            let sinks = Sinks {
                store: &store,
                map: &map,
                exporter: thread_exporter.as_deref(),
            };
            drain(&rx, &thread_shards, &sinks, &thread_counts);
        })?;
    Ok(Arc::new(TraceWriter {
        shards,
        tx,
        counts,
        exporter,
    }))
}

/// Where the writer puts each batch.
struct Sinks<'a> {
    store: &'a TraceStore,
    map: &'a ServiceMap,
    exporter: Option<&'a TraceExporter>,
}

/// What the writer has taken since its last write: Vigil's own whole
/// traces (the shards' buffers, swapped out) apart from spans received,
/// which the map remembers as parents; and the flushes to answer.
struct Batch {
    own: Vec<Shard>,
    received: Vec<Span>,
    flushes: Vec<std::sync::mpsc::Sender<()>>,
}

impl Batch {
    fn take(&mut self, message: Message) {
        match message {
            Message::Wake => {}
            Message::Received(spans) => self.received.extend(spans),
            Message::Flush(done) => self.flushes.push(done),
        }
    }

    /// Takes every message waiting; false once every sender is gone.
    fn take_waiting(&mut self, rx: &Receiver<Message>) -> bool {
        loop {
            match rx.try_recv() {
                Ok(message) => self.take(message),
                Err(TryRecvError::Empty) => return true,
                Err(TryRecvError::Disconnected) => return false,
            }
        }
    }
}

/// Writes what arrives until every sender is gone: waits on the channel
/// while every shard is empty, takes the shards and the channel every
/// [`DRAIN_INTERVAL`] while traces keep coming.
fn drain(rx: &Receiver<Message>, shards: &Shards, sinks: &Sinks<'_>, counts: &Counts) {
    let mut batch = Batch {
        own: (0..shards.shards.len()).map(|_| Shard::default()).collect(),
        received: Vec::new(),
        flushes: Vec::new(),
    };
    loop {
        // Idle is published before the shards are looked at, and a trace
        // looks at it after its shard's lock: either the writer sees the
        // trace here, or the trace sees the writer idle and wakes it.
        shards.idle.store(true, Ordering::SeqCst);
        if shards.all_empty() {
            match rx.recv() {
                Ok(message) => batch.take(message),
                Err(_) => return,
            }
        }
        shards.idle.store(false, Ordering::SeqCst);
        loop {
            let open = batch.take_waiting(rx);
            let took = shards.take(&mut batch.own);
            let busy = took || !batch.received.is_empty();
            write(&mut batch, sinks, counts);
            if !open {
                return;
            }
            if !busy {
                break;
            }
            std::thread::sleep(DRAIN_INTERVAL);
        }
    }
}

fn write(batch: &mut Batch, sinks: &Sinks<'_>, counts: &Counts) {
    let stored = |result: vigil_trace::store::Result<usize>, spans: usize| match result {
        Ok(n) => {
            counts.spans_written.fetch_add(n as u64, Ordering::Relaxed);
        }
        Err(err) => {
            counts.write_errors.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(error = %err, spans, "spans not stored in the trace store");
        }
    };
    if !batch.received.is_empty() {
        stored(sinks.store.append(&batch.received), batch.received.len());
    }
    for own in batch.own.iter().filter(|o| !o.traces.is_empty()) {
        stored(sinks.store.append_prepared(&own.traces), own.traces.spans());
    }
    let now_ms = vigil_metrics::service::now_ms();
    // Received first: an upstream caller's span is then known when the
    // own trace it called is counted.
    if !batch.received.is_empty() {
        sinks.map.add_batch(&batch.received, now_ms);
    }
    for own in batch.own.iter_mut().filter(|o| !o.traces.is_empty()) {
        sinks.map.add_whole_traces(own.traces.map_spans(), now_ms);
        own.traces.clear();
    }
    match sinks.exporter {
        // Never blocks: a full export queue drops the spans and counts them.
        Some(exporter) => {
            let mut spans = std::mem::take(&mut batch.received);
            for own in &mut batch.own {
                spans.append(&mut own.spans);
            }
            if !spans.is_empty() {
                exporter.offer(spans);
            }
        }
        None => batch.received.clear(),
    }
    if !batch.flushes.is_empty() {
        if let Err(err) = sinks.store.sync() {
            tracing::warn!(error = %err, "trace store sync failed");
        }
        for done in batch.flushes.drain(..) {
            let _ = done.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use vigil_trace::model::{SpanId, TraceId};

    /// Opens `dir`'s traces, waiting while the previous instance's writer
    /// thread still holds the store's lock.
    fn reopen(config: &TracesConfig, dir: &Path) -> Traces {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            match Traces::open(config, dir) {
                Ok(traces) => return traces,
                Err(err) => {
                    assert!(std::time::Instant::now() < deadline, "reopen: {err}");
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
    }

    /// After a restart the map shows the traces stored before it, with
    /// the same counts, and then counts new ones on top.
    #[test]
    fn the_map_is_rebuilt_from_the_stored_spans_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let config = TracesConfig::default();
        let now = crate::telemetry::trace::now_us();
        let trace = |n: u8| {
            let id = TraceId([n; 16]);
            let root = Span::new(id, SpanId([1; 8]), None, "vigil", "vigil", now - 900, now);
            let mut redis = Span::new(
                id,
                SpanId([2; 8]),
                Some(SpanId([1; 8])),
                "redis",
                "vigil",
                now - 800,
                now - 700,
            );
            redis.remote = true;
            vec![redis, root]
        };
        let before = {
            let traces = Traces::open(&config, dir.path()).unwrap();
            for n in 1..=7 {
                traces.writer.write(SpanOrigin::Own, trace(n));
            }
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while traces.writer.stats().spans_written < 14 {
                assert!(std::time::Instant::now() < deadline, "not written");
                std::thread::sleep(Duration::from_millis(10));
            }
            let now_ms = now / 1000;
            traces.map.map(now_ms - 60_000, now_ms + 60_000)
        };
        let traces = reopen(&config, dir.path());
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let report = loop {
            if let Some(report) = traces.rebuild.report() {
                break report;
            }
            assert!(std::time::Instant::now() < deadline, "no rebuild");
            std::thread::sleep(Duration::from_millis(10));
        };
        assert_eq!((report.spans, report.failed), (14, false));
        let now_ms = now / 1000;
        let after = traces.map.map(now_ms - 60_000, now_ms + 60_000);
        assert_eq!(after, before);
        let count = |graph: &vigil_trace::service_map::ServiceGraph| {
            graph
                .edges
                .iter()
                .find(|e| e.callee == "remote:redis")
                .map(|e| e.stats.count)
        };
        assert_eq!(count(&after), Some(7));
        traces.writer.write(SpanOrigin::Own, trace(8));
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while count(&traces.map.map(now_ms - 60_000, now_ms + 60_000)) != Some(8) {
            assert!(
                std::time::Instant::now() < deadline,
                "the new trace is not counted"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

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
        traces.writer.write(SpanOrigin::Own, vec![child, root]);
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
            traces.writer.write(
                SpanOrigin::Own,
                vec![Span::new(
                    trace,
                    SpanId([9; 8]),
                    None,
                    "x",
                    "vigil",
                    now,
                    now,
                )],
            );
        }
        let stats = traces.writer.stats();
        assert_eq!(stats.queued + stats.dropped, 1001);
        assert!(stats.dropped > 0, "{stats:?}");
    }

    /// A flush returns once what was queued before it is stored and
    /// counted in the map: a graceful shutdown loses no queued trace.
    #[test]
    fn a_flush_waits_for_the_queued_traces() {
        let dir = tempfile::tempdir().unwrap();
        let traces = Traces::open(&TracesConfig::default(), dir.path()).unwrap();
        let now = crate::telemetry::trace::now_us();
        for n in 1..=50u8 {
            let id = TraceId([n; 16]);
            let root = Span::new(id, SpanId([1; 8]), None, "vigil", "vigil", now - 90, now);
            let score = Span::new(
                id,
                SpanId([2; 8]),
                Some(SpanId([1; 8])),
                "score",
                "vigil",
                now - 50,
                now - 10,
            );
            assert!(traces.writer.write(SpanOrigin::Own, vec![score, root]));
        }
        traces.writer.flush(Duration::from_secs(10));
        assert_eq!(traces.writer.stats().spans_written, 100);
        assert_eq!(traces.store.get(TraceId([50; 16])).unwrap().len(), 2);
        let now_ms = now / 1000;
        let graph = traces.map.map(now_ms - 60_000, now_ms + 60_000);
        let score = graph
            .edges
            .iter()
            .find(|e| e.callee == "stage:vigil::score");
        assert_eq!(score.map(|e| e.stats.count), Some(50), "{graph:?}");
    }

    /// Traces from many threads all reach the store; one sent after the
    /// writer has gone idle wakes it.
    #[test]
    fn traces_from_many_threads_and_after_a_pause_all_land() {
        let dir = tempfile::tempdir().unwrap();
        let traces = Traces::open(&TracesConfig::default(), dir.path()).unwrap();
        let now = crate::telemetry::trace::now_us();
        let id = |n: u32| {
            let mut id = [7; 16];
            id[..4].copy_from_slice(&n.to_le_bytes());
            TraceId(id)
        };
        let one = |n: u32| {
            vec![Span::new(
                id(n),
                SpanId([1; 8]),
                None,
                "vigil",
                "vigil",
                now - 9,
                now,
            )]
        };
        std::thread::scope(|scope| {
            for t in 0..8u32 {
                let writer = &traces.writer;
                scope.spawn(move || {
                    for i in 0..100 {
                        assert!(writer.write(SpanOrigin::Own, one(t * 1000 + i)));
                    }
                });
            }
        });
        let written = |n: u64| {
            let deadline = std::time::Instant::now() + Duration::from_secs(10);
            while traces.writer.stats().spans_written < n {
                assert!(
                    std::time::Instant::now() < deadline,
                    "{:?}",
                    traces.writer.stats()
                );
                std::thread::sleep(Duration::from_millis(5));
            }
        };
        written(800);
        // Idle now (nothing came for several drain intervals): the next
        // trace must wake the writer, not wait for another.
        std::thread::sleep(DRAIN_INTERVAL * 5);
        assert!(traces.writer.write(SpanOrigin::Own, one(99_999)));
        written(801);
        let stats = traces.writer.stats();
        assert_eq!((stats.queued, stats.dropped), (801, 0));
        assert_eq!(traces.store.get(id(7_099)).unwrap().len(), 1);
        assert_eq!(traces.store.get(id(99_999)).unwrap().len(), 1);
    }

    #[test]
    fn stored_spans_are_offered_to_the_otlp_export() {
        let dir = tempfile::tempdir().unwrap();
        // A port nobody listens on: the export fails, and is counted.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let config = TracesConfig {
            otlp: Some(crate::config::OtlpExportConfig {
                endpoint: format!("http://127.0.0.1:{port}/v1/traces")
                    .parse()
                    .unwrap(),
                protocol: crate::config::OtlpProtocol::HttpProtobuf,
                headers: Vec::new(),
                timeout_ms: 200,
                batch_spans: 512,
                queue_spans: 8192,
            }),
            ..TracesConfig::default()
        };
        let traces = Traces::open(&config, dir.path()).unwrap();
        assert_eq!(
            traces.writer.stats().export,
            Some(ExportStats::default()),
            "export counters are served once the export is on"
        );
        let now = crate::telemetry::trace::now_us();
        let trace = TraceId([4; 16]);
        let spans: Vec<Span> = (1..=3)
            .map(|i| Span::new(trace, SpanId([i; 8]), None, "vigil", "vigil", now - 10, now))
            .collect();
        traces.writer.write(SpanOrigin::Own, spans);
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        loop {
            let export = traces.writer.stats().export.unwrap();
            if export.failed_spans == 3 {
                assert_eq!(export.queued_spans, 3, "{export:?}");
                assert_eq!(export.failed_batches, 1, "{export:?}");
                assert_eq!(export.exported_spans, 0, "{export:?}");
                break;
            }
            assert!(std::time::Instant::now() < deadline, "{export:?}");
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(traces.store.get(trace).unwrap().len(), 3);
        let without = Traces::open(&TracesConfig::default(), &dir.path().join("b")).unwrap();
        assert_eq!(without.writer.stats().export, None);
    }
}
