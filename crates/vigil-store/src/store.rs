//! [`Store`]: a backend plus the spill queue, the retention sweeper and the
//! counters. This is what the server opens and holds.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;

use crate::InferenceLog;
use crate::clock::{Clock, SystemClock};
use crate::config::StoreConfig;
use crate::error::{Result, StoreError};
use crate::postgres::PostgresLog;
use crate::record::{AppendOutcome, InferenceRecord, ListQuery, Page};
use crate::redact::Redactor;
use crate::spill::SpillQueue;
use crate::sqlite::{SqliteLog, judge};
use crate::stats::{StoreStats, StoreStatsSnapshot};

/// The inference log as the server uses it: appends go to the backend, or
/// to the spill queue while the backend fails; the spill is replayed in the
/// background; expired records are swept.
///
/// While the backend is failing ("degraded"), `lookup` answers from the
/// spill queue only (a record already in the backend is not seen, so a
/// retry may be scored again and then resolve as a replay or a conflict
/// when the spill is replayed); `get`, `list` and `delete_expired` return
/// the backend's error.
///
/// Open one `Store` per `data_dir`: while records are spilled, the spill
/// queue's segment log holds the spill directory's lock, and a second store
/// that must spill meanwhile gets an unavailable error.
#[derive(Debug)]
pub struct Store {
    inner: Arc<Inner>,
    shutdown: watch::Sender<bool>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
}

#[derive(Debug)]
struct Inner {
    backend: Arc<dyn InferenceLog>,
    spill: SpillQueue,
    degraded: AtomicBool,
    stats: Arc<StoreStats>,
    /// Signalled after records are spilled: the replayer waits on it
    /// instead of polling, so a healthy store's replayer never wakes (the
    /// spill's segment log fsyncs in `os` mode on its own thread, which
    /// exists only while records are spilled).
    spilled_for_replay: Notify,
    /// Replay attempts by the replayer (tests read it).
    replay_attempts: AtomicU64,
}

impl Store {
    /// Opens the configured backend (SQLite when `url` is unset, PostgreSQL
    /// otherwise) with the system clock.
    pub async fn open(config: &StoreConfig) -> Result<Arc<Store>> {
        Self::open_with_clock(config, Arc::new(SystemClock)).await
    }

    /// Like [`Store::open`] with an injected clock for retention.
    pub async fn open_with_clock(
        config: &StoreConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<Store>> {
        config.validate()?;
        let backend: Arc<dyn InferenceLog> = match &config.url {
            None => Arc::new(SqliteLog::open(config).await?),
            Some(_) => Arc::new(PostgresLog::connect(config).await?),
        };
        Self::with_backend(config, backend, clock)
    }

    /// Wraps any backend (also a test double) with the spill queue, the
    /// replayer and the sweeper. Must be called inside a Tokio runtime.
    pub fn with_backend(
        config: &StoreConfig,
        backend: Arc<dyn InferenceLog>,
        clock: Arc<dyn Clock>,
    ) -> Result<Arc<Store>> {
        config.validate()?;
        let (spill, recovered) = SpillQueue::open(
            &config.spill_dir(),
            config.spill_max_bytes,
            config.spill_policy,
            config.durability,
            Duration::from_millis(config.fsync_interval_ms),
        )?;
        let stats = Arc::new(StoreStats::default());
        StoreStats::add(&stats.spill_corrupt, recovered.corrupt);
        if recovered.records > 0 || recovered.corrupt > 0 {
            tracing::warn!(
                records = recovered.records,
                corrupt = recovered.corrupt,
                "spill queue holds records from a previous run"
            );
        }
        let inner = Arc::new(Inner {
            backend,
            spill,
            degraded: AtomicBool::new(recovered.records > 0),
            stats,
            spilled_for_replay: Notify::new(),
            replay_attempts: AtomicU64::new(0),
        });
        let (shutdown, shutdown_rx) = watch::channel(false);
        let mut tasks = vec![tokio::spawn(replayer(
            Arc::clone(&inner),
            Duration::from_millis(config.spill_replay_interval_ms),
            config.max_batch_records,
            shutdown_rx.clone(),
        ))];
        if let Some(days) = config.retention_days {
            tasks.push(tokio::spawn(crate::retention::sweeper(
                Arc::clone(&inner.backend),
                clock,
                days,
                config.retention_batch_size,
                Duration::from_millis(config.retention_sweep_interval_ms),
                Arc::clone(&inner.stats),
                shutdown_rx,
            )));
        }
        Ok(Arc::new(Store {
            inner,
            shutdown,
            tasks: Mutex::new(tasks),
        }))
    }

    /// A redactor built from the configuration's rules and key.
    pub fn redactor(config: &StoreConfig) -> Redactor {
        Redactor::new(
            config.redact.clone(),
            config
                .redact_hash_key
                .clone()
                .unwrap_or_default()
                .into_bytes(),
        )
    }

    /// The live counters.
    pub fn stats(&self) -> &Arc<StoreStats> {
        &self.inner.stats
    }

    /// A copy of the counters.
    pub fn stats_snapshot(&self) -> StoreStatsSnapshot {
        self.inner.stats.snapshot()
    }

    /// The wrapped backend.
    pub fn backend(&self) -> &Arc<dyn InferenceLog> {
        &self.inner.backend
    }

    /// True while appends go to the spill queue.
    pub fn is_degraded(&self) -> bool {
        self.inner.degraded.load(Ordering::Acquire)
    }

    /// Records waiting in the spill queue, in bytes.
    pub fn spill_bytes(&self) -> u64 {
        self.inner.spill.bytes()
    }

    /// Tries to replay the spill queue now; returns once it is empty or the
    /// backend failed again.
    pub async fn replay_spill(&self) -> Result<u64> {
        replay_all(&self.inner, usize::MAX).await
    }

    /// Stops the background tasks (one last replay attempt included).
    pub async fn shutdown(&self) {
        let _ = self.shutdown.send(true);
        let tasks = match self.tasks.lock() {
            Ok(mut t) => std::mem::take(&mut *t),
            Err(_) => Vec::new(),
        };
        for task in tasks {
            let _ = task.await;
        }
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        let _ = self.shutdown.send(true);
    }
}

impl Inner {
    fn answer_from_spill(&self, record: &InferenceRecord) -> Option<AppendOutcome> {
        let existing = self.spill.lookup(&record.model, &record.request_id)?;
        Some(judge(record, existing))
    }

    fn count(&self, outcome: &AppendOutcome) {
        let counter = match outcome {
            AppendOutcome::Inserted => &self.stats.records_written,
            AppendOutcome::Replayed(_) => &self.stats.idempotent_replays,
            AppendOutcome::Conflict(_) => &self.stats.conflicts,
            AppendOutcome::Spilled => &self.stats.records_spilled,
        };
        StoreStats::add(counter, 1);
    }

    fn spill_records(&self, records: &[InferenceRecord]) -> Result<Vec<AppendOutcome>> {
        let mut outcomes = Vec::with_capacity(records.len());
        for record in records {
            if let Some(outcome) = self.answer_from_spill(record) {
                outcomes.push(outcome);
                continue;
            }
            match self.spill.push(record) {
                Ok(report) => {
                    StoreStats::add(&self.stats.records_dropped, report.dropped);
                    outcomes.push(AppendOutcome::Spilled);
                    // A stored permit when nobody waits: nothing is lost.
                    self.spilled_for_replay.notify_one();
                }
                Err(err) => {
                    if matches!(err, StoreError::SpillFull) {
                        StoreStats::add(&self.stats.records_rejected, 1);
                    } else {
                        StoreStats::add(&self.stats.store_errors, 1);
                    }
                    return Err(err);
                }
            }
        }
        Ok(outcomes)
    }

    async fn append_batch(
        &self,
        records: Vec<InferenceRecord>,
        fresh: bool,
    ) -> Result<Vec<AppendOutcome>> {
        for r in &records {
            r.validate()?;
        }
        let started = Instant::now();
        let result = self.append_inner(records, fresh).await;
        if let Ok(outcomes) = &result {
            outcomes.iter().for_each(|o| self.count(o));
        }
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.stats.observe_write_latency(micros);
        result
    }

    async fn append_inner(
        &self,
        records: Vec<InferenceRecord>,
        fresh: bool,
    ) -> Result<Vec<AppendOutcome>> {
        if self.degraded.load(Ordering::Acquire) {
            return self.spill_records(&records);
        }
        if self.spill.is_empty() {
            let written = if fresh {
                self.backend.append_fresh_batch(records.clone()).await
            } else {
                self.backend.append_batch(records.clone()).await
            };
            return match written {
                Ok(outcomes) => Ok(outcomes),
                Err(err) if err.is_backend_failure() => self.fail_over(&err, &records),
                Err(err) => Err(err),
            };
        }
        // Replay in progress: keys still in the spill are answered from it.
        let mut outcomes: Vec<Option<AppendOutcome>> =
            records.iter().map(|r| self.answer_from_spill(r)).collect();
        let (to_backend, idx): (Vec<InferenceRecord>, Vec<usize>) = records
            .iter()
            .enumerate()
            .filter(|(i, _)| outcomes[*i].is_none())
            .map(|(i, r)| (r.clone(), i))
            .unzip();
        if !to_backend.is_empty() {
            let written = match self.backend.append_batch(to_backend.clone()).await {
                Ok(o) => o,
                Err(err) if err.is_backend_failure() => self.fail_over(&err, &to_backend)?,
                Err(err) => return Err(err),
            };
            for (i, outcome) in idx.into_iter().zip(written) {
                outcomes[i] = Some(outcome);
            }
        }
        outcomes
            .into_iter()
            .map(|o| o.ok_or_else(|| StoreError::Unavailable("missing append outcome".into())))
            .collect()
    }

    fn fail_over(
        &self,
        err: &StoreError,
        records: &[InferenceRecord],
    ) -> Result<Vec<AppendOutcome>> {
        StoreStats::add(&self.stats.store_errors, 1);
        if !self.degraded.swap(true, Ordering::AcqRel) {
            tracing::warn!(error = %err, "store backend failing, spilling records locally");
        }
        self.spill_records(records)
    }
}

/// Replays spilled segments oldest first; stops at the first backend failure.
async fn replay_all(inner: &Inner, chunk: usize) -> Result<u64> {
    let mut replayed = 0;
    while let Some(segment) = inner.spill.oldest()? {
        let records = inner.spill.read(&segment)?;
        for part in records.chunks(chunk.clamp(1, 4096)) {
            let outcomes = match inner.backend.append_batch(part.to_vec()).await {
                Ok(outcomes) => outcomes,
                Err(err) if err.is_backend_failure() => return Err(err),
                // The backend refuses some record itself: write the chunk one
                // by one so a single bad record cannot block the queue forever.
                Err(_) => replay_one_by_one(inner, part).await?,
            };
            // The backend answers again: new appends may go to it directly
            // (keys still in the spill are answered from it) while the
            // backlog drains.
            inner.degraded.store(false, Ordering::Release);
            for (record, outcome) in part.iter().zip(outcomes) {
                if let AppendOutcome::Conflict(existing) = outcome {
                    StoreStats::add(&inner.stats.conflicts, 1);
                    tracing::warn!(
                        request_id = %record.request_id,
                        model = %record.model,
                        stored_version = %existing.version,
                        "spilled record conflicts with a stored one, keeping the stored one"
                    );
                }
            }
            StoreStats::add(&inner.stats.records_unspilled, part.len() as u64);
            replayed += part.len() as u64;
        }
        inner.spill.finish(&segment)?;
    }
    inner.degraded.store(false, Ordering::Release);
    Ok(replayed)
}

/// Replays records singly; records the backend rejects are dropped
/// (counted and logged) and reported as `Inserted`, so that only real
/// conflicts are counted as such.
async fn replay_one_by_one(
    inner: &Inner,
    records: &[InferenceRecord],
) -> Result<Vec<AppendOutcome>> {
    let mut outcomes = Vec::with_capacity(records.len());
    for record in records {
        match inner.backend.append_batch(vec![record.clone()]).await {
            Ok(mut o) => outcomes.push(o.pop().unwrap_or(AppendOutcome::Inserted)),
            Err(err) if err.is_backend_failure() => return Err(err),
            Err(err) => {
                StoreStats::add(&inner.stats.records_dropped, 1);
                tracing::error!(
                    error = %err,
                    request_id = %record.request_id,
                    model = %record.model,
                    "spilled record rejected by the backend, dropping it"
                );
                outcomes.push(AppendOutcome::Inserted);
            }
        }
    }
    Ok(outcomes)
}

/// Retries the spill queue every `interval` while the store is degraded or
/// the queue holds records; otherwise sleeps until something is spilled.
/// On shutdown, one last attempt if there is anything to replay.
async fn replayer(
    inner: Arc<Inner>,
    interval: Duration,
    chunk: usize,
    mut shutdown: watch::Receiver<bool>,
) {
    let pending = |inner: &Inner| inner.degraded.load(Ordering::Acquire) || !inner.spill.is_empty();
    loop {
        let mut stopping = *shutdown.borrow();
        if !stopping && !pending(&inner) {
            tokio::select! {
                () = inner.spilled_for_replay.notified() => continue,
                _ = shutdown.changed() => return,
            }
        }
        if !stopping {
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                _ = shutdown.changed() => {}
            }
            stopping = *shutdown.borrow();
        }
        if pending(&inner) {
            inner.replay_attempts.fetch_add(1, Ordering::Relaxed);
            match replay_all(&inner, chunk).await {
                Ok(0) => {}
                Ok(n) => tracing::info!(records = n, "spill queue replayed"),
                Err(err) => {
                    StoreStats::add(&inner.stats.store_errors, 1);
                    tracing::debug!(error = %err, "spill replay failed, will retry");
                }
            }
        }
        if stopping {
            return;
        }
    }
}

#[async_trait]
impl InferenceLog for Store {
    async fn lookup(&self, model: &str, request_id: &str) -> Result<Option<InferenceRecord>> {
        if let Some(r) = self.inner.spill.lookup(model, request_id) {
            return Ok(Some(r));
        }
        if self.is_degraded() {
            return Ok(None);
        }
        match self.inner.backend.lookup(model, request_id).await {
            Err(err) if err.is_backend_failure() => {
                StoreStats::add(&self.inner.stats.store_errors, 1);
                tracing::warn!(error = %err, "idempotency lookup failed, treating id as new");
                Ok(None)
            }
            other => other,
        }
    }

    async fn append_batch(&self, records: Vec<InferenceRecord>) -> Result<Vec<AppendOutcome>> {
        self.inner.append_batch(records, false).await
    }

    async fn append_fresh_batch(
        &self,
        records: Vec<InferenceRecord>,
    ) -> Result<Vec<AppendOutcome>> {
        self.inner.append_batch(records, true).await
    }

    async fn get(&self, request_id: &str) -> Result<Vec<InferenceRecord>> {
        self.inner.backend.get(request_id).await
    }

    async fn list(&self, query: &ListQuery) -> Result<Page> {
        self.inner.backend.list(query).await
    }

    async fn delete_expired(&self, before_us: i64, batch_size: usize) -> Result<u64> {
        let deleted = self
            .inner
            .backend
            .delete_expired(before_us, batch_size)
            .await?;
        StoreStats::add(&self.inner.stats.retention_deleted, deleted);
        Ok(deleted)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::ManualClock;

    /// A SQLite log that fails every call while `fail` is set.
    #[derive(Debug)]
    struct Flaky {
        inner: SqliteLog,
        fail: AtomicBool,
    }

    impl Flaky {
        fn check(&self) -> Result<()> {
            if self.fail.load(Ordering::SeqCst) {
                return Err(StoreError::Unavailable("injected failure".into()));
            }
            Ok(())
        }
    }

    #[async_trait]
    impl InferenceLog for Flaky {
        async fn lookup(&self, model: &str, id: &str) -> Result<Option<InferenceRecord>> {
            self.check()?;
            self.inner.lookup(model, id).await
        }
        async fn append_batch(&self, records: Vec<InferenceRecord>) -> Result<Vec<AppendOutcome>> {
            self.check()?;
            self.inner.append_batch(records).await
        }
        async fn get(&self, id: &str) -> Result<Vec<InferenceRecord>> {
            self.check()?;
            self.inner.get(id).await
        }
        async fn list(&self, query: &ListQuery) -> Result<Page> {
            self.check()?;
            self.inner.list(query).await
        }
        async fn delete_expired(&self, before_us: i64, batch_size: usize) -> Result<u64> {
            self.check()?;
            self.inner.delete_expired(before_us, batch_size).await
        }
    }

    fn record(id: &str) -> InferenceRecord {
        let mut r = InferenceRecord::new(id, 1, "fraud", "1", serde_json::Map::new());
        r.scores = vec![0.5];
        r
    }

    /// Waits (at most 10 s) until `counter` reaches `at_least`; returns it.
    async fn reached(counter: &AtomicU64, at_least: u64) -> u64 {
        for _ in 0..1000 {
            if counter.load(Ordering::Relaxed) >= at_least {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        counter.load(Ordering::Relaxed)
    }

    /// Like `test_support::settled` for the spill's fsync count: waits (at most 10 s)
    /// until it reaches `at_least` and stops moving; returns it.
    async fn settled_fsyncs(spill: &SpillQueue, at_least: u64) -> u64 {
        let mut before = spill.fsyncs();
        for _ in 0..100 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            let now = spill.fsyncs();
            if now == before && now >= at_least {
                break;
            }
            before = now;
        }
        before
    }

    /// A healthy store opens no spill log, so it never fsyncs it, and never
    /// runs the replayer; a spilled record is fsynced once by the spill
    /// log's background thread, its segment once more when the replayer
    /// seals it, and nothing more while the replayer retries or after the
    /// backend is back.
    #[tokio::test]
    async fn spill_tasks_run_only_while_there_is_a_spill() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut config = StoreConfig::with_data_dir(dir.path());
        config.fsync_interval_ms = 10;
        // Long enough for the background fsync of a spilled record to come
        // before the replayer's first attempt seals its segment.
        config.spill_replay_interval_ms = 300;
        let interval = Duration::from_millis(config.spill_replay_interval_ms);
        let backend = Arc::new(Flaky {
            inner: SqliteLog::open(&config)
                .await
                .unwrap_or_else(|e| panic!("{e}")),
            fail: AtomicBool::new(false),
        });
        let clock = Arc::new(ManualClock::new(0));
        let store =
            Store::with_backend(&config, backend.clone(), clock).unwrap_or_else(|e| panic!("{e}"));
        let inner = &store.inner;
        assert_eq!(
            store.append(record("a")).await.ok(),
            Some(AppendOutcome::Inserted)
        );
        // Two intervals of a healthy store: nothing to sync or replay.
        tokio::time::sleep(2 * interval).await;
        assert_eq!(inner.spill.fsyncs(), 0);
        assert!(
            !config.spill_dir().exists(),
            "a healthy store opened the spill"
        );
        assert_eq!(inner.replay_attempts.load(Ordering::Relaxed), 0);

        backend.fail.store(true, Ordering::SeqCst);
        assert_eq!(
            store.append(record("b")).await.ok(),
            Some(AppendOutcome::Spilled)
        );
        assert_eq!(settled_fsyncs(&inner.spill, 1).await, 1);
        let failing = reached(&inner.replay_attempts, 3).await;
        assert!(failing >= 3, "no retries while failing: {failing}");
        // The first attempt sealed the segment (fsynced by the log's
        // background thread); the retries only read it.
        assert_eq!(settled_fsyncs(&inner.spill, 2).await, 2);
        let still_failing = reached(&inner.replay_attempts, failing + 2).await;
        assert!(still_failing >= failing + 2);
        assert_eq!(inner.spill.fsyncs(), 2);

        backend.fail.store(false, Ordering::SeqCst);
        for _ in 0..1000 {
            if !store.is_degraded() && store.spill_bytes() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(!store.is_degraded());
        assert_eq!(store.spill_bytes(), 0);
        assert_eq!(store.stats_snapshot().records_unspilled, 1);
        let attempts = inner.replay_attempts.load(Ordering::Relaxed);
        // Replayed: three more intervals without an attempt or a sync.
        tokio::time::sleep(3 * interval).await;
        assert_eq!(inner.replay_attempts.load(Ordering::Relaxed), attempts);
        assert_eq!(inner.spill.fsyncs(), 2);
        store.shutdown().await;
    }
}
