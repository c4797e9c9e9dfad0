//! The embedded backend: one SQLite file in WAL mode, one writer thread
//! doing group commits, and a small pool of read-only connections.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, TransactionBehavior, params};
use tokio::sync::{mpsc, oneshot};

use crate::InferenceLog;
use crate::config::{Durability, StoreConfig};
use crate::error::{Result, StoreError};
use crate::record::{
    AppendOutcome, InferenceRecord, ListQuery, Page, input_from_text, input_to_text,
    page_from_rows, scores_from_bytes, scores_to_bytes,
};
use crate::sql::{COLUMNS, Param, list_sql};

/// Read-only connections kept open for queries.
const READERS: usize = 4;

/// The idempotency lookup, built once.
static SELECT_ONE_SQL: LazyLock<String> = LazyLock::new(|| {
    format!("SELECT {COLUMNS} FROM inferences WHERE request_id = ?1 AND model = ?2")
});

/// Migrations, applied in order; the index is the schema version minus one.
const MIGRATIONS: &[&str] = &["CREATE TABLE inferences (
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
    CREATE INDEX inferences_received_at ON inferences (received_at_us, request_id, model);"];

/// A record with its JSON and blob columns encoded by the caller, so the
/// single writer thread only runs SQLite.
struct EncodedRecord {
    record: InferenceRecord,
    input: String,
    scores: Vec<u8>,
}

enum WriteCmd {
    Append {
        records: Vec<EncodedRecord>,
        ack: oneshot::Sender<Result<Vec<AppendOutcome>>>,
    },
    Delete {
        before_us: i64,
        batch_size: usize,
        ack: oneshot::Sender<Result<u64>>,
    },
    Shutdown,
}

/// The SQLite inference log.
#[derive(Debug)]
pub struct SqliteLog {
    path: PathBuf,
    tx: mpsc::Sender<WriteCmd>,
    readers: Arc<Vec<Mutex<Connection>>>,
    next_reader: AtomicUsize,
}

impl SqliteLog {
    /// Opens (creating if needed) `inferences.db` in the configured data
    /// directory, applies migrations and starts the writer thread.
    pub async fn open(config: &StoreConfig) -> Result<Self> {
        let config = config.clone();
        tokio::task::spawn_blocking(move || Self::open_blocking(&config))
            .await
            .map_err(|e| StoreError::Unavailable(format!("open task failed: {e}")))?
    }

    fn open_blocking(config: &StoreConfig) -> Result<Self> {
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
        // Checkpoints run on their own thread; the writer only checkpoints
        // as a safety net when the WAL grows past ~64 MiB.
        conn.pragma_update(None, "wal_autocheckpoint", 16_384)?;
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

        let (tx, rx) = mpsc::channel(config.writer_queue_capacity);
        let dirty = Arc::new(AtomicBool::new(false));
        let (stop_tx, stop_rx) = std::sync::mpsc::channel::<()>();
        {
            let wal = wal_path(&path);
            let interval = Duration::from_millis(config.fsync_interval_ms);
            let dirty = Arc::clone(&dirty);
            std::thread::Builder::new()
                .name("vigil-store-fsync".into())
                .spawn(move || fsync_loop(&checkpointer, &wal, interval, &dirty, &stop_rx))?;
        }
        let max_batch = config.max_batch_records;
        std::thread::Builder::new()
            .name("vigil-store-writer".into())
            .spawn(move || {
                writer_loop(conn, rx, max_batch, &dirty);
                drop(stop_tx);
            })?;
        Ok(SqliteLog {
            path,
            tx,
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
        let _ = self.tx.send(WriteCmd::Shutdown).await;
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
                input: input_to_text(&record.input),
                scores: scores_to_bytes(&record.scores),
                record,
            })
            .collect();
        let (ack, done) = oneshot::channel();
        self.tx
            .send(WriteCmd::Append { records, ack })
            .await
            .map_err(|_| StoreError::Closed)?;
        done.await.map_err(|_| StoreError::Closed)?
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
        let (ack, done) = oneshot::channel();
        self.tx
            .send(WriteCmd::Delete {
                before_us,
                batch_size,
                ack,
            })
            .await
            .map_err(|_| StoreError::Closed)?;
        done.await.map_err(|_| StoreError::Closed)?
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

/// Every `interval` while commits are pending (and once more when the
/// writer stops): fsyncs the WAL, which is what `os` durability promises,
/// then runs a passive checkpoint so the writer rarely has to.
fn fsync_loop(
    checkpointer: &Connection,
    wal: &Path,
    interval: Duration,
    dirty: &AtomicBool,
    stop: &std::sync::mpsc::Receiver<()>,
) {
    loop {
        let stopping = !matches!(
            stop.recv_timeout(interval),
            Err(std::sync::mpsc::RecvTimeoutError::Timeout)
        );
        if dirty.swap(false, Ordering::AcqRel) {
            // fsync applies to the file, not the descriptor, so a separate
            // handle flushes what the writer's connection wrote.
            let synced = std::fs::File::open(wal).and_then(|f| f.sync_data());
            if let Err(err) = synced {
                tracing::warn!(error = %err, "wal fsync failed");
                dirty.store(true, Ordering::Release);
            }
            let checkpoint =
                checkpointer.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
            if let Err(err) = checkpoint {
                tracing::debug!(error = %err, "passive wal checkpoint failed");
            }
        }
        if stopping {
            return;
        }
    }
}

fn writer_loop(
    mut conn: Connection,
    mut rx: mpsc::Receiver<WriteCmd>,
    max_batch: usize,
    dirty: &AtomicBool,
) {
    let mut appends = Vec::new();
    let mut deletes = Vec::new();
    while let Some(first) = rx.blocking_recv() {
        let mut shutdown = false;
        let mut count = 0;
        let mut next = Some(first);
        while let Some(cmd) = next.take() {
            match cmd {
                WriteCmd::Append { records, ack } => {
                    count += records.len();
                    appends.push((records, ack));
                }
                WriteCmd::Delete {
                    before_us,
                    batch_size,
                    ack,
                } => deletes.push((before_us, batch_size, ack)),
                WriteCmd::Shutdown => {
                    shutdown = true;
                    break;
                }
            }
            if count < max_batch {
                next = rx.try_recv().ok();
            }
        }
        if !appends.is_empty() {
            commit_appends(&mut conn, &mut appends);
            dirty.store(true, Ordering::Release);
        }
        for (before_us, batch_size, ack) in deletes.drain(..) {
            let _ = ack.send(delete_batch(&mut conn, before_us, batch_size));
            dirty.store(true, Ordering::Release);
        }
        if shutdown {
            break;
        }
    }
}

type Pending = (
    Vec<EncodedRecord>,
    oneshot::Sender<Result<Vec<AppendOutcome>>>,
);

/// Writes every queued append in one transaction, then acknowledges each.
fn commit_appends(conn: &mut Connection, appends: &mut Vec<Pending>) {
    match insert_all(conn, appends) {
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

fn insert_all(conn: &mut Connection, appends: &[Pending]) -> Result<Vec<Vec<AppendOutcome>>> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let mut all = Vec::with_capacity(appends.len());
    {
        let insert_sql = format!(
            "INSERT INTO inferences ({COLUMNS}) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13) \
             ON CONFLICT (request_id, model) DO NOTHING"
        );
        let mut insert = tx.prepare_cached(&insert_sql)?;
        for (records, _) in appends {
            let mut outcomes = Vec::with_capacity(records.len());
            for encoded in records {
                let r = &encoded.record;
                let inserted = insert.execute(params![
                    r.request_id,
                    r.received_at_us,
                    r.model,
                    r.version,
                    encoded.input,
                    r.input_fingerprint,
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
                    let existing = select_one(&tx, &r.model, &r.request_id)?.ok_or_else(|| {
                        StoreError::Unavailable("conflicting row vanished".into())
                    })?;
                    judge(r, existing)
                };
                outcomes.push(outcome);
            }
            all.push(outcomes);
        }
    }
    tx.commit()?;
    Ok(all)
}

/// Replayed when the inputs match, otherwise a conflict.
pub(crate) fn judge(new: &InferenceRecord, existing: InferenceRecord) -> AppendOutcome {
    if existing.input_fingerprint == new.input_fingerprint {
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

/// A row as read, before the JSON and blob columns are decoded.
struct RawRow {
    record: InferenceRecord,
    input: String,
    scores: Vec<u8>,
}

fn raw_row(row: &Row<'_>) -> rusqlite::Result<RawRow> {
    Ok(RawRow {
        record: InferenceRecord {
            request_id: row.get(0)?,
            received_at_us: row.get(1)?,
            model: row.get(2)?,
            version: row.get(3)?,
            input: serde_json::Map::new(),
            input_fingerprint: row.get(5)?,
            scores: Vec::new(),
            label: row.get(7)?,
            threshold: row.get(8)?,
            latency_us: row.get(9)?,
            cached: row.get(10)?,
            api_key_name: row.get(11)?,
            trace_id: row.get(12)?,
        },
        input: row.get(4)?,
        scores: row.get(6)?,
    })
}

fn into_record(raw: RawRow) -> Result<InferenceRecord> {
    let mut record = raw.record;
    record.input = input_from_text(&raw.input)?;
    record.scores = scores_from_bytes(&raw.scores)?;
    Ok(record)
}
