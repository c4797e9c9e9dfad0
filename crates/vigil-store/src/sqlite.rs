//! The embedded backend: one SQLite file in WAL mode, group commits run by
//! the appending tasks (see [`Writer`]), a maintenance thread for fsyncs and
//! checkpoints, and a small pool of read-only connections.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, LazyLock, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, TransactionBehavior, params};
use tokio::sync::oneshot;

use crate::InferenceLog;
use crate::config::{Durability, StoreConfig};
use crate::error::{Result, StoreError};
use crate::input::Input;
use crate::record::{
    AppendOutcome, InferenceRecord, ListQuery, Page, page_from_rows, scores_from_bytes,
    scores_to_bytes,
};
use crate::sql::{COLUMNS, Param, list_sql};

/// Read-only connections kept open for queries.
const READERS: usize = 4;

/// The idempotency lookup, built once.
static SELECT_ONE_SQL: LazyLock<String> = LazyLock::new(|| {
    format!("SELECT {COLUMNS} FROM inferences WHERE request_id = ?1 AND model = ?2")
});

/// Migrations, applied in order; the index is the schema version minus one.
const MIGRATIONS: &[&str] = &[
    "CREATE TABLE inferences (
        request_id TEXT NOT NULL,
        received_at_us INTEGER NOT NULL,
        model TEXT NOT NULL,
        version TEXT NOT NULL,
        input TEXT NOT NULL,
        input_fingerprint TEXT NOT NULL,
        scores BLOB NOT NULL,
        label TEXT,
        threshold REAL,
        latency_us INTEGER NOT NULL,
        cached INTEGER NOT NULL,
        api_key_name TEXT,
        trace_id TEXT,
        UNIQUE (request_id, model)
    );
    CREATE INDEX inferences_received_at ON inferences (received_at_us, request_id, model);",
    // v2: inputs in binary form (rows written as JSON text stay readable),
    // no stored fingerprint, and a time index of times alone (SQLite adds the
    // rowid): for a fraud row the input alone shrinks from 702 to 386 bytes
    // and the 64-byte fingerprint goes.
    "CREATE TABLE inferences_v2 (
        request_id TEXT NOT NULL,
        received_at_us INTEGER NOT NULL,
        model TEXT NOT NULL,
        version TEXT NOT NULL,
        input BLOB NOT NULL,
        scores BLOB NOT NULL,
        label TEXT,
        threshold REAL,
        latency_us INTEGER NOT NULL,
        cached INTEGER NOT NULL,
        api_key_name TEXT,
        trace_id TEXT,
        UNIQUE (request_id, model)
    );
    INSERT INTO inferences_v2
        SELECT request_id, received_at_us, model, version, input, scores, label, threshold,
            latency_us, cached, api_key_name, trace_id
        FROM inferences ORDER BY rowid;
    DROP TABLE inferences;
    ALTER TABLE inferences_v2 RENAME TO inferences;
    CREATE INDEX inferences_received_at ON inferences (received_at_us);",
];

/// A record with its blob column encoded by the caller, so a commit only
/// runs SQLite.
struct EncodedRecord {
    record: InferenceRecord,
    scores: Vec<u8>,
}

type Ack = oneshot::Sender<Result<Vec<AppendOutcome>>>;

/// The group-commit writer: appends queue up, and the first one finding no
/// commit scheduled schedules one, which writes everything queued by then
/// in one transaction (see [`Writer::schedule`]).
struct Writer {
    queue: Mutex<Queue>,
    conn: Mutex<Connection>,
    /// True while a commit is scheduled or running.
    leading: AtomicBool,
    /// Wakes appenders waiting for room in a full queue.
    room: tokio::sync::Notify,
    /// Wakes the maintenance thread after a commit.
    sync: SyncSignal,
    max_batch: usize,
    capacity: usize,
    inline: bool,
}

#[derive(Default)]
struct Queue {
    pending: Vec<(Vec<EncodedRecord>, Ack)>,
    closed: bool,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("max_batch", &self.max_batch)
            .field("capacity", &self.capacity)
            .field("inline", &self.inline)
            .finish_non_exhaustive()
    }
}

impl Writer {
    /// Queues one append and makes sure a leader will commit it.
    async fn append(self: &Arc<Self>, records: Vec<EncodedRecord>) -> Result<Vec<AppendOutcome>> {
        let (ack, done) = oneshot::channel();
        let mut item = Some((records, ack));
        while let Some(next) = item.take() {
            let room = self.room.notified();
            {
                let mut queue = self.queue.lock().map_err(|_| poisoned())?;
                if queue.closed {
                    return Err(StoreError::Closed);
                }
                if queue.pending.len() < self.capacity {
                    queue.pending.push(next);
                } else {
                    item = Some(next);
                }
            }
            if item.is_some() {
                // Full: wait for a commit to make room.
                room.await;
            }
        }
        self.schedule();
        done.await.map_err(|_| StoreError::Closed)?
    }

    /// Starts a commit of what is queued, unless one is already on its way.
    ///
    /// In `os` mode the commit is a task that first yields: every request
    /// already runnable on this worker gets to queue its record before it
    /// runs, so one commit serves them all (group commit with no timer and
    /// no thread hand-off). In `fsync` mode it runs on the blocking pool.
    fn schedule(self: &Arc<Self>) {
        if self.leading.swap(true, Ordering::SeqCst) {
            return;
        }
        let writer = Arc::clone(self);
        if self.inline {
            tokio::spawn(async move {
                tokio::task::yield_now().await;
                writer.commit_queued();
            });
        } else {
            tokio::task::spawn_blocking(move || writer.commit_queued());
        }
    }

    /// Commits one batch, then schedules the next if more is queued. Runs
    /// only while `leading` is held.
    fn commit_queued(self: &Arc<Self>) {
        if let Some(batch) = self.take_batch() {
            match self.conn.lock() {
                Ok(mut conn) => commit_appends(&mut conn, batch),
                Err(_) => fail_all(batch, "sqlite writer poisoned"),
            }
            self.sync.mark_dirty();
            self.room.notify_waiters();
        }
        self.leading.store(false, Ordering::SeqCst);
        // An append queued after the take saw `leading` set and left the
        // commit to us.
        let more = self.queue.lock().is_ok_and(|q| !q.pending.is_empty());
        if more {
            self.schedule();
        }
    }

    /// Up to `max_batch` records' worth of queued appends (at least one).
    fn take_batch(&self) -> Option<Vec<Pending>> {
        let mut queue = self.queue.lock().ok()?;
        if queue.pending.is_empty() {
            return None;
        }
        let mut records = 0;
        let mut take = 0;
        for (encoded, _) in &queue.pending {
            if take > 0 && records + encoded.len() > self.max_batch {
                break;
            }
            records += encoded.len();
            take += 1;
        }
        Some(queue.pending.drain(..take).collect())
    }
}

fn poisoned() -> StoreError {
    StoreError::Unavailable("sqlite writer poisoned".into())
}

fn fail_all(batch: Vec<Pending>, msg: &str) {
    for (_, ack) in batch {
        let _ = ack.send(Err(StoreError::Unavailable(msg.to_owned())));
    }
}

/// The SQLite inference log.
#[derive(Debug)]
pub struct SqliteLog {
    path: PathBuf,
    writer: Arc<Writer>,
    /// Dropped with the log: stops the maintenance thread after a last
    /// fsync and checkpoint.
    _maintenance: StopOnDrop,
    readers: Arc<Vec<Mutex<Connection>>>,
    next_reader: AtomicUsize,
}

impl SqliteLog {
    /// Opens (creating if needed) `inferences.db` in the configured data
    /// directory, applies migrations and starts the maintenance thread.
    pub async fn open(config: &StoreConfig) -> Result<Self> {
        let config = config.clone();
        Self::open_with_wal_limit(config, WAL_RESTART_BYTES).await
    }

    /// [`SqliteLog::open`] with another WAL size limit (tests).
    pub(crate) async fn open_with_wal_limit(config: StoreConfig, wal_limit: i64) -> Result<Self> {
        tokio::task::spawn_blocking(move || Self::open_blocking(&config, wal_limit))
            .await
            .map_err(|e| StoreError::Unavailable(format!("open task failed: {e}")))?
    }

    fn open_blocking(config: &StoreConfig, wal_limit: i64) -> Result<Self> {
        std::fs::create_dir_all(&config.data_dir)?;
        let path = config.sqlite_path();
        let mut conn = Connection::open(&path)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        let sync = match config.durability {
            Durability::Os => "NORMAL",
            Durability::Fsync => "FULL",
        };
        conn.pragma_update(None, "synchronous", sync)?;
        // Checkpoints run on the maintenance thread, never in a commit.
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        migrate(&mut conn)?;
        let checkpointer = Connection::open(&path)?;
        checkpointer.busy_timeout(Duration::from_millis(100))?;
        checkpointer.pragma_update(None, "synchronous", sync)?;

        let mut readers = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            let reader = Connection::open_with_flags(
                &path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            reader.busy_timeout(Duration::from_secs(5))?;
            readers.push(Mutex::new(reader));
        }

        let writer = Arc::new(Writer {
            queue: Mutex::new(Queue::default()),
            conn: Mutex::new(conn),
            leading: AtomicBool::new(false),
            room: tokio::sync::Notify::new(),
            sync: SyncSignal::default(),
            max_batch: config.max_batch_records.max(1),
            capacity: config.writer_queue_capacity.max(1),
            inline: config.durability == Durability::Os,
        });
        {
            let wal = wal_path(&path);
            let interval = Duration::from_millis(config.fsync_interval_ms);
            let writer = Arc::clone(&writer);
            std::thread::Builder::new()
                .name("vigil-store-sync".into())
                .spawn(move || {
                    maintenance_loop(&checkpointer, &writer, &wal, interval, wal_limit)
                })?;
        }
        Ok(SqliteLog {
            path,
            _maintenance: StopOnDrop(Arc::clone(&writer)),
            writer,
            readers: Arc::new(readers),
            next_reader: AtomicUsize::new(0),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stops the writer after the appends already queued; later calls fail
    /// with [`StoreError::Closed`].
    pub async fn close(&self) {
        if let Ok(mut queue) = self.writer.queue.lock() {
            queue.closed = true;
        }
    }

    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let idx = self.next_reader.fetch_add(1, Ordering::Relaxed) % READERS;
        let readers = Arc::clone(&self.readers);
        tokio::task::spawn_blocking(move || {
            let conn = readers[idx]
                .lock()
                .map_err(|_| StoreError::Unavailable("sqlite reader poisoned".into()))?;
            f(&conn)
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("read task failed: {e}")))?
    }
}

#[async_trait]
impl InferenceLog for SqliteLog {
    async fn lookup(&self, model: &str, request_id: &str) -> Result<Option<InferenceRecord>> {
        // A primary-key read from a WAL snapshot never waits for the writer
        // and takes microseconds, so it runs inline: handing it to the
        // blocking pool would cost more than the query.
        let start = self.next_reader.fetch_add(1, Ordering::Relaxed);
        for i in 0..READERS {
            if let Ok(conn) = self.readers[(start + i) % READERS].try_lock() {
                return select_one(&conn, model, request_id);
            }
        }
        let (model, request_id) = (model.to_owned(), request_id.to_owned());
        self.read(move |conn| select_one(conn, &model, &request_id))
            .await
    }

    async fn append_batch(&self, records: Vec<InferenceRecord>) -> Result<Vec<AppendOutcome>> {
        for r in &records {
            r.validate()?;
        }
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let records = records
            .into_iter()
            .map(|record| EncodedRecord {
                scores: scores_to_bytes(&record.scores),
                record,
            })
            .collect();
        self.writer.append(records).await
    }

    async fn get(&self, request_id: &str) -> Result<Vec<InferenceRecord>> {
        let request_id = request_id.to_owned();
        self.read(move |conn| {
            let sql = format!(
                "SELECT {COLUMNS} FROM inferences WHERE request_id = ?1 \
                 ORDER BY received_at_us DESC, model DESC"
            );
            let mut stmt = conn.prepare_cached(&sql)?;
            let rows = stmt.query_map([&request_id], raw_row)?;
            rows.map(|r| r.map_err(StoreError::from).and_then(into_record))
                .collect()
        })
        .await
    }

    async fn list(&self, query: &ListQuery) -> Result<Page> {
        let limit = query.effective_limit()?;
        let (sql, params) = list_sql(query, limit, |n| format!("?{n}"))?;
        self.read(move |conn| {
            let values: Vec<rusqlite::types::Value> = params
                .into_iter()
                .map(|p| match p {
                    Param::Int(i) => rusqlite::types::Value::Integer(i),
                    Param::Text(s) => rusqlite::types::Value::Text(s),
                })
                .collect();
            let mut stmt = conn.prepare_cached(&sql)?;
            let rows = stmt.query_map(rusqlite::params_from_iter(values), raw_row)?;
            let records = rows
                .map(|r| r.map_err(StoreError::from).and_then(into_record))
                .collect::<Result<Vec<_>>>()?;
            Ok(page_from_rows(records, limit))
        })
        .await
    }

    async fn delete_expired(&self, before_us: i64, batch_size: usize) -> Result<u64> {
        let writer = Arc::clone(&self.writer);
        tokio::task::spawn_blocking(move || {
            let mut conn = writer.conn.lock().map_err(|_| poisoned())?;
            let deleted = delete_batch(&mut conn, before_us, batch_size)?;
            if deleted > 0 {
                writer.sync.mark_dirty();
            }
            Ok(deleted)
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("delete task failed: {e}")))?
    }
}

fn wal_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push("-wal");
    PathBuf::from(name)
}

fn migrate(conn: &mut Connection) -> Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS schema_version (
            version INTEGER PRIMARY KEY,
            applied_at_us INTEGER NOT NULL
        )",
    )?;
    let current: i64 = tx.query_row(
        "SELECT COALESCE(MAX(version), 0) FROM schema_version",
        [],
        |r| r.get(0),
    )?;
    let now = crate::clock::Clock::now_us(&crate::clock::SystemClock);
    for (i, sql) in MIGRATIONS.iter().enumerate() {
        let version = i64::try_from(i + 1).unwrap_or(i64::MAX);
        if version > current {
            if current > 0 {
                // v2 rewrites the table: say why a large log takes a while to open.
                tracing::info!(
                    from = current,
                    to = version,
                    "migrating the inference log schema"
                );
            }
            tx.execute_batch(sql)?;
            tx.execute(
                "INSERT INTO schema_version (version, applied_at_us) VALUES (?1, ?2)",
                params![version, now],
            )?;
        }
    }
    tx.commit()?;
    Ok(())
}

/// The WAL is fsynced at least this often while commits are pending, even
/// when `fsync_interval_ms` is longer: small, frequent flushes keep each
/// fsync short, and a long one stalls the commits writing the WAL meanwhile.
const MAX_SYNC_TICK: Duration = Duration::from_millis(10);

/// WAL size past which the maintenance thread restarts the WAL, so it is
/// overwritten in place instead of growing.
const WAL_RESTART_BYTES: i64 = 64 << 20;

/// What the maintenance thread sleeps on: a commit since the last fsync, or
/// the log being dropped. With neither it blocks without a timeout, so an
/// idle log costs no wake-ups.
#[derive(Debug, Default)]
struct SyncSignal {
    /// Set after every commit that wrote something; the maintenance thread
    /// clears it when it fsyncs.
    dirty: AtomicBool,
    /// True once the log is dropped; guards the condition variable.
    stopping: Mutex<bool>,
    wake: Condvar,
    /// WAL fsyncs done (tests read it).
    fsyncs: AtomicU64,
    /// Times the thread woke from its wait (tests read it).
    wakeups: AtomicU64,
    /// Times the WAL was brought to a complete checkpoint so the next
    /// commit starts it over (tests read it).
    restarts: AtomicU64,
}

impl SyncSignal {
    /// Called after a commit. Only the first commit after an fsync takes
    /// the lock and wakes the thread; the others find `dirty` already set.
    fn mark_dirty(&self) {
        if !self.dirty.swap(true, Ordering::AcqRel) {
            // Taking the lock orders this with the thread's check of
            // `dirty`, so the wake cannot fall between its check and its wait.
            let _guard = self.stopping.lock();
            self.wake.notify_one();
        }
    }

    fn stop(&self) {
        if let Ok(mut stopping) = self.stopping.lock() {
            *stopping = true;
        }
        self.wake.notify_one();
    }

    /// Blocks until `deadline(dirty, now)` has passed (`None`: no deadline)
    /// or the log is dropped; returns whether it is stopping.
    fn wait(&self, deadline: impl Fn(bool, Instant) -> Option<Instant>) -> bool {
        let Ok(mut stopping) = self.stopping.lock() else {
            return true;
        };
        loop {
            if *stopping {
                return true;
            }
            let now = Instant::now();
            stopping = match deadline(self.dirty.load(Ordering::Acquire), now) {
                Some(at) if at <= now => return false,
                Some(at) => match self.wake.wait_timeout(stopping, at - now) {
                    Ok((guard, _)) => guard,
                    Err(_) => return true,
                },
                None => match self.wake.wait(stopping) {
                    Ok(guard) => guard,
                    Err(_) => return true,
                },
            };
            self.wakeups.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Stops the maintenance thread when the log is dropped.
#[derive(Debug)]
struct StopOnDrop(Arc<Writer>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.sync.stop();
    }
}

/// When the maintenance thread must act next: the fsync of a WAL written
/// since the last one (at once, or `tick` after the last fsync: at most one
/// per tick, and never later than `tick` after the write), else the pending
/// checkpoint; `None` when neither is owed, so it waits for a commit.
fn next_deadline(
    dirty: bool,
    last_sync: Option<Instant>,
    tick: Duration,
    checkpoint_at: Option<Instant>,
    now: Instant,
) -> Option<Instant> {
    let sync_at = dirty.then(|| last_sync.map_or(now, |at| (at + tick).max(now)));
    match (sync_at, checkpoint_at) {
        (Some(sync), Some(checkpoint)) => Some(sync.min(checkpoint)),
        (sync, checkpoint) => sync.or(checkpoint),
    }
}

/// The maintenance thread: fsyncs the WAL after commits (what `os`
/// durability promises: at least every `interval` after a write, and at
/// most every `min(interval, 10 ms)`), checkpoints it into the database
/// `interval` after the previous checkpoint once something was synced, and
/// keeps it from growing; once more when the log is dropped. With nothing
/// written it sleeps until a commit wakes it. The writer never checkpoints.
fn maintenance_loop(
    checkpointer: &Connection,
    writer: &Writer,
    wal: &Path,
    interval: Duration,
    wal_limit: i64,
) {
    let tick = interval.min(MAX_SYNC_TICK);
    let page_size: i64 = checkpointer
        .query_row("PRAGMA page_size", [], |row| row.get(0))
        .unwrap_or(4096);
    let restart_frames = wal_limit / page_size.max(512);
    let mut last_checkpoint = Instant::now();
    let mut last_sync: Option<Instant> = None;
    let mut unchecked = false;
    loop {
        let checkpoint_at = unchecked.then(|| last_checkpoint + interval);
        let stopping = writer
            .sync
            .wait(|dirty, now| next_deadline(dirty, last_sync, tick, checkpoint_at, now));
        let now = Instant::now();
        let sync_due = stopping || last_sync.is_none_or(|at| now >= at + tick);
        if sync_due && writer.sync.dirty.swap(false, Ordering::AcqRel) {
            // fsync applies to the file, not the descriptor, so a separate
            // handle flushes what the writer's connection wrote.
            let synced = std::fs::File::open(wal).and_then(|f| f.sync_data());
            if let Err(err) = synced {
                tracing::warn!(error = %err, "wal fsync failed");
                writer.sync.dirty.store(true, Ordering::Release);
            }
            writer.sync.fsyncs.fetch_add(1, Ordering::Relaxed);
            last_sync = Some(now);
            unchecked = true;
        }
        if unchecked && (stopping || now >= last_checkpoint + interval) {
            last_checkpoint = now;
            unchecked = false;
            match passive_checkpoint(checkpointer) {
                Ok(frames) if frames >= restart_frames => restart_wal(checkpointer, writer),
                Ok(_) => {}
                Err(err) => tracing::debug!(error = %err, "passive wal checkpoint failed"),
            }
        }
        if stopping {
            return;
        }
    }
}

/// Copies committed WAL frames into the database without blocking the
/// writer; returns the WAL's length in frames.
fn passive_checkpoint(conn: &Connection) -> Result<i64> {
    Ok(conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| row.get(1))?)
}

/// Checkpoints the few frames written since the last checkpoint while the
/// writer waits, so the WAL is fully copied and the next commit starts it
/// over from the beginning. Under steady load this is the only moment the
/// WAL is ever complete; it costs the writer one short pause per 64 MiB.
fn restart_wal(checkpointer: &Connection, writer: &Writer) {
    let Ok(_paused) = writer.conn.lock() else {
        return;
    };
    match passive_checkpoint(checkpointer) {
        Ok(_) => {
            writer.sync.restarts.fetch_add(1, Ordering::Relaxed);
        }
        Err(err) => tracing::debug!(error = %err, "wal restart checkpoint failed"),
    }
}

type Pending = (Vec<EncodedRecord>, Ack);

/// Writes every queued append in one transaction, then acknowledges each.
fn commit_appends(conn: &mut Connection, mut appends: Vec<Pending>) {
    match insert_all(conn, &appends) {
        Ok(outcomes) => {
            for ((_, ack), outcome) in appends.drain(..).zip(outcomes) {
                let _ = ack.send(Ok(outcome));
            }
        }
        Err(err) => {
            tracing::warn!(error = %err, "sqlite group commit failed");
            let msg = err.to_string();
            for (_, ack) in appends.drain(..) {
                let _ = ack.send(Err(StoreError::Unavailable(msg.clone())));
            }
        }
    }
}

/// The conditional insert, built once.
static INSERT_SQL: LazyLock<String> = LazyLock::new(|| {
    format!(
        "INSERT INTO inferences ({COLUMNS}) \
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12) \
         ON CONFLICT (request_id, model) DO NOTHING"
    )
});

fn insert_all(conn: &mut Connection, appends: &[Pending]) -> Result<Vec<Vec<AppendOutcome>>> {
    // Cached statements: a group commit parses no SQL.
    conn.prepare_cached("BEGIN IMMEDIATE")?.execute([])?;
    let result = insert_in_transaction(conn, appends).and_then(|all| {
        conn.prepare_cached("COMMIT")?.execute([])?;
        Ok(all)
    });
    if result.is_err()
        && !conn.is_autocommit()
        && let Err(err) = conn
            .prepare_cached("ROLLBACK")
            .and_then(|mut s| s.execute([]))
    {
        tracing::warn!(error = %err, "sqlite rollback failed");
    }
    result
}

fn insert_in_transaction(
    conn: &Connection,
    appends: &[Pending],
) -> Result<Vec<Vec<AppendOutcome>>> {
    let mut all = Vec::with_capacity(appends.len());
    let mut insert = conn.prepare_cached(&INSERT_SQL)?;
    for (records, _) in appends {
        let mut outcomes = Vec::with_capacity(records.len());
        for encoded in records {
            let r = &encoded.record;
            let inserted = insert.execute(params![
                r.request_id,
                r.received_at_us,
                r.model,
                r.version,
                r.input.as_bytes(),
                encoded.scores,
                r.label,
                r.threshold,
                r.latency_us,
                r.cached,
                r.api_key_name,
                r.trace_id,
            ])?;
            let outcome = if inserted == 1 {
                AppendOutcome::Inserted
            } else {
                let existing = select_one(conn, &r.model, &r.request_id)?
                    .ok_or_else(|| StoreError::Unavailable("conflicting row vanished".into()))?;
                judge(r, existing)
            };
            outcomes.push(outcome);
        }
        all.push(outcomes);
    }
    Ok(all)
}

/// Replayed when the inputs match, otherwise a conflict.
pub(crate) fn judge(new: &InferenceRecord, existing: InferenceRecord) -> AppendOutcome {
    if existing.input == new.input {
        AppendOutcome::Replayed(Box::new(existing))
    } else {
        AppendOutcome::Conflict(Box::new(existing))
    }
}

fn delete_batch(conn: &mut Connection, before_us: i64, batch_size: usize) -> Result<u64> {
    let limit = i64::try_from(batch_size).unwrap_or(i64::MAX);
    let deleted = conn.execute(
        "DELETE FROM inferences WHERE rowid IN \
         (SELECT rowid FROM inferences WHERE received_at_us < ?1 LIMIT ?2)",
        params![before_us, limit],
    )?;
    Ok(deleted as u64)
}

fn select_one(conn: &Connection, model: &str, request_id: &str) -> Result<Option<InferenceRecord>> {
    let mut stmt = conn.prepare_cached(&SELECT_ONE_SQL)?;
    stmt.query_row(params![request_id, model], raw_row)
        .optional()?
        .map(into_record)
        .transpose()
}

/// A row as read, before the input and scores are decoded.
struct RawRow {
    record: InferenceRecord,
    input: Vec<u8>,
    scores: Vec<u8>,
}

fn raw_row(row: &Row<'_>) -> rusqlite::Result<RawRow> {
    Ok(RawRow {
        record: InferenceRecord {
            request_id: row.get(0)?,
            received_at_us: row.get(1)?,
            model: row.get(2)?,
            version: row.get(3)?,
            input: Input::default(),
            scores: Vec::new(),
            label: row.get(6)?,
            threshold: row.get(7)?,
            latency_us: row.get(8)?,
            cached: row.get(9)?,
            api_key_name: row.get(10)?,
            trace_id: row.get(11)?,
        },
        // Rows from before schema v2 hold the input as JSON text.
        input: match row.get_ref(4)? {
            ValueRef::Text(bytes) | ValueRef::Blob(bytes) => bytes.to_vec(),
            other => {
                let kind = other.data_type();
                return Err(rusqlite::Error::InvalidColumnType(4, "input".into(), kind));
            }
        },
        scores: row.get(5)?,
    })
}

fn into_record(raw: RawRow) -> Result<InferenceRecord> {
    let mut record = raw.record;
    record.input = Input::from_stored(raw.input)?;
    record.scores = scores_from_bytes(&raw.scores)?;
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_support::settled;

    fn record(i: usize) -> InferenceRecord {
        let mut input = serde_json::Map::new();
        input.insert("amount".into(), serde_json::json!(i as f64 + 0.5));
        input.insert("note".into(), serde_json::json!("x".repeat(600)));
        let mut r = InferenceRecord::new(format!("w-{i}"), i as i64, "fraud", "1", input);
        r.scores = vec![0.25];
        r
    }

    /// A database written by schema v1 (inputs as JSON text, a stored
    /// fingerprint) is migrated: its records read back the same, replays
    /// and conflicts are judged against them, and new records are binary.
    #[tokio::test]
    async fn schema_v1_records_survive_the_migration() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let config = StoreConfig::with_data_dir(dir.path());
        {
            let conn = Connection::open(config.sqlite_path()).unwrap_or_else(|e| panic!("{e}"));
            conn.execute_batch(MIGRATIONS[0])
                .unwrap_or_else(|e| panic!("{e}"));
            conn.execute_batch(
                "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at_us INTEGER NOT NULL);
                 INSERT INTO schema_version VALUES (1, 0);
                 INSERT INTO inferences VALUES ('old', 5, 'fraud', '1', '{\"amount\":12.0,\"note\":\"x\"}',
                     'ignored', X'000000000000D03F', 'legit', 0.5, 7, 0, NULL, NULL);",
            )
            .unwrap_or_else(|e| panic!("{e}"));
        }
        let log = SqliteLog::open(&config)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let old = log.lookup("fraud", "old").await.ok().flatten();
        let input = Input::from_map(
            serde_json::json!({"amount": 12, "note": "x"})
                .as_object()
                .cloned()
                .as_ref()
                .unwrap_or_else(|| panic!("object")),
        );
        assert_eq!(
            old.as_ref().map(|r| (&r.input, r.scores.clone())),
            Some((&input, vec![0.25]))
        );
        let mut again = InferenceRecord::new("old", 9, "fraud", "2", input);
        assert!(matches!(
            log.append(again.clone()).await,
            Ok(AppendOutcome::Replayed(_))
        ));
        again.input = Input::default();
        assert!(matches!(
            log.append(again).await,
            Ok(AppendOutcome::Conflict(_))
        ));
        assert_eq!(
            log.append(record(1)).await.ok(),
            Some(AppendOutcome::Inserted)
        );
        let page = log
            .list(&ListQuery::default())
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let ids: Vec<&str> = page.records.iter().map(|r| r.request_id.as_str()).collect();
        assert_eq!(ids, ["old", "w-1"]);
    }

    /// The fsync deadline: at once after a quiet spell, a tick after the
    /// previous fsync under steady writes (so never later than a tick after
    /// any write), none at all when nothing was written.
    #[test]
    fn a_write_is_owed_an_fsync_within_a_tick_and_a_clean_wal_none() {
        let t0 = Instant::now();
        let ms = Duration::from_millis;
        let tick = ms(10);
        assert_eq!(next_deadline(false, None, tick, None, t0), None);
        assert_eq!(
            next_deadline(false, Some(t0), tick, None, t0 + ms(5000)),
            None
        );
        let late = t0 + ms(5000);
        assert_eq!(next_deadline(true, Some(t0), tick, None, late), Some(late));
        assert_eq!(next_deadline(true, None, tick, None, late), Some(late));
        for since_sync in [0, 1, 3, 9, 10, 11, 500] {
            let now = t0 + ms(since_sync);
            let at = next_deadline(true, Some(t0), tick, None, now);
            assert_eq!(
                at,
                Some((t0 + tick).max(now)),
                "{since_sync} ms after the fsync"
            );
            // The write happened at or before `now`: owed within a tick.
            assert!(at.is_some_and(|at| at <= now + tick));
        }
        let checkpoint = t0 + ms(100);
        let now = t0 + ms(3);
        assert_eq!(
            next_deadline(false, Some(t0), tick, Some(checkpoint), now),
            Some(checkpoint)
        );
        assert_eq!(
            next_deadline(true, Some(t0), tick, Some(checkpoint), now),
            Some(t0 + tick)
        );
    }

    /// Nothing written: the maintenance thread never wakes and never
    /// fsyncs. A write is fsynced once (a durable write is what `os` mode
    /// promises), and then the thread sleeps again.
    #[tokio::test]
    async fn an_idle_log_sleeps_and_a_write_is_fsynced_once() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut config = StoreConfig::with_data_dir(dir.path());
        config.fsync_interval_ms = 20;
        let log = SqliteLog::open(&config)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let sync = &log.writer.sync;
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(
            sync.fsyncs.load(Ordering::Relaxed),
            0,
            "fsync with nothing written"
        );
        assert_eq!(sync.wakeups.load(Ordering::Relaxed), 0, "an idle log woke");

        assert_eq!(
            log.append(record(1)).await.ok(),
            Some(AppendOutcome::Inserted)
        );
        assert_eq!(settled(&sync.fsyncs, 1).await, 1);
        let woke = settled(&sync.wakeups, 1).await;
        assert!(woke >= 1, "the write did not wake the thread");
        // Ten intervals of quiet: no more wakes, no more fsyncs.
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(sync.wakeups.load(Ordering::Relaxed), woke);
        assert_eq!(sync.fsyncs.load(Ordering::Relaxed), 1);

        // A delete that removes nothing writes nothing and is owed nothing.
        assert_eq!(log.delete_expired(0, 10).await.ok(), Some(0));
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(sync.fsyncs.load(Ordering::Relaxed), 1);
        assert_eq!(log.delete_expired(i64::MAX, 10).await.ok(), Some(1));
        assert_eq!(settled(&sync.fsyncs, 2).await, 2);
    }

    /// Under steady appends the WAL is restarted in place once it passes the
    /// limit, instead of growing with everything written.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn wal_is_restarted_instead_of_growing() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let mut config = StoreConfig::with_data_dir(dir.path());
        config.fsync_interval_ms = 5;
        let limit = 256 << 10;
        let log = SqliteLog::open_with_wal_limit(config.clone(), limit)
            .await
            .unwrap_or_else(|e| panic!("{e}"));
        let log = Arc::new(log);
        let wal = wal_path(log.path());
        let (tasks, per_task) = (8, 1000);
        let watcher = {
            let wal = wal.clone();
            tokio::spawn(async move {
                let mut largest = 0;
                for _ in 0..400 {
                    largest = largest.max(std::fs::metadata(&wal).map_or(0, |m| m.len()));
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                largest
            })
        };
        // Appends never pause, so the checkpoints never catch up by
        // themselves and SQLite alone would never restart the WAL.
        let writers: Vec<_> = (0..tasks)
            .map(|t| {
                let log = Arc::clone(&log);
                tokio::spawn(async move {
                    for i in 0..per_task {
                        let outcome = log.append(record(t * per_task + i)).await;
                        assert_eq!(outcome.ok(), Some(AppendOutcome::Inserted));
                    }
                })
            })
            .collect();
        for w in writers {
            w.await.unwrap_or_else(|e| panic!("{e}"));
        }
        let largest = watcher.await.unwrap_or_default();
        let total = tasks * per_task;
        // The mechanism, counted: with a 256 KiB limit these appends pass
        // it many times over, so the WAL must have been restarted more than
        // once. Its peak size is only reported: measured ~4 MiB with the
        // limit and ~90 MiB without on a quiet machine, but a starved
        // maintenance thread lets it grow between two of its wakes, so a
        // size bound would test the machine's load, not the code.
        let restarts = log.writer.sync.restarts.load(Ordering::Relaxed);
        assert!(
            restarts >= 2,
            "wal restarted {restarts} time(s), peak {largest} bytes"
        );
        eprintln!("wal peak {largest} bytes, {restarts} restarts");
        for i in [0, total / 2, total - 1] {
            let found = log.lookup("fraud", &format!("w-{i}")).await;
            assert_eq!(found.ok().flatten().map(|r| r.scores), Some(vec![0.25]));
        }
    }
}
