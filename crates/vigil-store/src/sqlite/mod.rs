//! The embedded backend: a journal in front of one SQLite file.
//!
//! An append is checked for idempotency (the unapplied tail in memory, then
//! SQLite), written to the journal (a [`vigil_segments::SegmentLog`] in
//! `data_dir/journal`) and acknowledged: with `os` durability once the
//! journal write reached the kernel (the journal is fsynced in the
//! background every `fsync_interval_ms`), with `fsync` after a group
//! `fdatasync` of the journal. No request waits for a SQLite commit: the
//! indexer thread applies journaled records in large transactions (see
//! [`indexer`]), and reads see journaled records through the tail.
//!
//! On open, whatever the journal holds past the last applied record is
//! applied before the log serves, then the journal starts over empty.

mod indexer;
mod rows;
mod schema;
mod tail;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use async_trait::async_trait;
use rusqlite::{Connection, OpenFlags};
use vigil_segments::{Durability as JournalDurability, Options, SegmentLog};

use crate::InferenceLog;
use crate::codec;
use crate::config::{Durability, StoreConfig};
use crate::error::{Result, StoreError};
use crate::record::{AppendOutcome, InferenceRecord, ListQuery, Page, page_from_rows};
use crate::sql::{COLUMNS, Param, first_occurrences, list_sql};
use indexer::{Db, Shared, Signal};
pub(crate) use rows::judge;
use rows::{SELECT_BY_ID_ORDER, into_record, raw_row, select_one};
use tail::{Entry, Found, Tail};

/// Read-only connections kept open for queries.
const READERS: usize = 4;

/// The SQLite inference log.
#[derive(Debug)]
pub struct SqliteLog {
    path: PathBuf,
    shared: Arc<Shared>,
    readers: Arc<Readers>,
    durability: Durability,
    /// Most records in the unapplied tail; appends wait when it is full.
    capacity: usize,
    closed: AtomicBool,
    indexer: Option<JoinHandle<()>>,
}

/// The read-only connections, taken round-robin.
#[derive(Debug)]
struct Readers {
    conns: Vec<Mutex<Connection>>,
    next: AtomicUsize,
}

impl Readers {
    /// Runs `f` on a free reader, or waits for one.
    fn with<T>(&self, f: impl FnOnce(&Connection) -> Result<T>) -> Result<T> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        for i in 0..self.conns.len() {
            if let Ok(conn) = self.conns[(start + i) % self.conns.len()].try_lock() {
                return f(&conn);
            }
        }
        let conn = self.conns[start % self.conns.len()]
            .lock()
            .map_err(|_| StoreError::Unavailable("sqlite reader poisoned".into()))?;
        f(&conn)
    }
}

impl SqliteLog {
    /// Opens (creating if needed) `inferences.db` and the journal in the
    /// configured data directory, applies migrations, applies what the
    /// journal holds from a previous run and starts the indexer thread.
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
        // The journal is the durability point: SQLite's own commits need
        // not be synced, only its checkpoints before journal segments go.
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        // Checkpoints run on the indexer thread, between its transactions.
        conn.pragma_update(None, "wal_autocheckpoint", 0)?;
        schema::migrate(&mut conn)?;

        let mut conns = Vec::with_capacity(READERS);
        for _ in 0..READERS {
            let reader = Connection::open_with_flags(
                &path,
                OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )?;
            reader.busy_timeout(Duration::from_secs(5))?;
            conns.push(Mutex::new(reader));
        }

        let (journal, recovery) = SegmentLog::open(
            config.journal_dir(),
            Options {
                segment_bytes: config.journal_segment_bytes,
                fsync_interval: Duration::from_millis(config.fsync_interval_ms),
                ..Options::default()
            },
        )?;
        if recovery.cut_bytes > 0 || recovery.skipped_records > 0 {
            tracing::warn!(
                cut_bytes = recovery.cut_bytes,
                skipped_records = recovery.skipped_records,
                "inference journal: torn or corrupt records found and cut"
            );
        }
        let mut db = Db::open(conn)?;
        if let Some(applied) = db.applied()
            && !journal.segments().iter().any(|s| s.id == applied.segment)
        {
            // Applying it all again is safe: the insert is conditional.
            tracing::warn!(
                dir = %config.journal_dir().display(),
                "the journal no longer holds the last applied record, applying all of it"
            );
            db.reset()?;
        }
        let shared = Arc::new(Shared {
            journal,
            tail: Tail::default(),
            db: Mutex::new(db),
            signal: Signal::default(),
            room: tokio::sync::Notify::new(),
            interval: Duration::from_millis(config.index_interval_ms),
            batch: config.max_batch_records.max(1),
            full_at: config
                .max_batch_records
                .min(config.writer_queue_capacity)
                .max(1),
            applied_records: AtomicU64::new(0),
            transactions: AtomicU64::new(0),
            checkpoints: AtomicU64::new(0),
        });
        shared.recover()?;
        let indexer = {
            let shared = Arc::clone(&shared);
            std::thread::Builder::new()
                .name("vigil-indexer".into())
                .spawn(move || shared.run())?
        };
        Ok(SqliteLog {
            path,
            shared,
            readers: Arc::new(Readers {
                conns,
                next: AtomicUsize::new(0),
            }),
            durability: config.durability,
            capacity: config.writer_queue_capacity.max(1),
            closed: AtomicBool::new(false),
            indexer: Some(indexer),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Stops taking appends; later calls fail with [`StoreError::Closed`].
    /// What is journaled is applied when the log is dropped.
    pub async fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }

    async fn read<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let readers = Arc::clone(&self.readers);
        tokio::task::spawn_blocking(move || readers.with(f))
            .await
            .map_err(|e| StoreError::Unavailable(format!("read task failed: {e}")))?
    }

    /// Applies the whole journal to SQLite now, so a query that follows
    /// sees every acknowledged record.
    async fn flush(&self) -> Result<()> {
        self.with_writer(|_| Ok(())).await
    }

    /// Runs `f` on the writer connection after applying the whole journal.
    async fn with_writer<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let shared = Arc::clone(&self.shared);
        tokio::task::spawn_blocking(move || {
            let mut db = shared.lock_db()?;
            shared.apply_all(&mut db)?;
            f(&mut db.conn)
        })
        .await
        .map_err(|e| StoreError::Unavailable(format!("sqlite task failed: {e}")))?
    }

    /// Checks, journals and answers `records`; `fresh` skips reading
    /// SQLite for ids generated just now.
    async fn journal(
        &self,
        records: Vec<InferenceRecord>,
        fresh: bool,
    ) -> Result<Vec<AppendOutcome>> {
        for r in &records {
            r.validate()?;
        }
        if records.is_empty() {
            return Ok(Vec::new());
        }
        if self.closed.load(Ordering::Acquire) {
            return Err(StoreError::Closed);
        }
        self.room().await;
        match self.durability {
            // A journal write is a few microseconds: no hand-off.
            Durability::Os => journal_records(&self.shared, &self.readers, records, fresh),
            Durability::Fsync => {
                let (shared, readers) = (Arc::clone(&self.shared), Arc::clone(&self.readers));
                tokio::task::spawn_blocking(move || {
                    let outcomes = journal_records(&shared, &readers, records, fresh)?;
                    // One fdatasync for every append queued meanwhile; it
                    // also covers a replayed record that is journaled only.
                    shared.journal.sync()?;
                    Ok(outcomes)
                })
                .await
                .map_err(|e| StoreError::Unavailable(format!("append task failed: {e}")))?
            }
        }
    }

    /// Waits while the unapplied tail is full (SQLite is behind).
    async fn room(&self) {
        while self.shared.tail.len() >= self.capacity {
            let room = self.shared.room.notified();
            if self.shared.tail.len() < self.capacity {
                return;
            }
            self.shared.signal.notify();
            room.await;
        }
    }
}

impl Drop for SqliteLog {
    fn drop(&mut self) {
        // The indexer applies what is journaled and checkpoints once more;
        // joining it releases the journal's lock before the drop returns.
        self.shared.signal.stop();
        if let Some(indexer) = self.indexer.take() {
            let _ = indexer.join();
        }
    }
}

impl Shared {
    /// At open: applies what a previous run journaled but did not apply,
    /// then (once it is checkpointed) empties the journal, so its numbering
    /// may start over.
    fn recover(&self) -> Result<()> {
        let mut db = self.lock_db()?;
        let replayed = self.apply_all(&mut db)?;
        if replayed > 0 {
            tracing::info!(
                records = replayed,
                "journal applied to sqlite before serving"
            );
        }
        if self.checkpoint(&mut db) {
            db.reset()?;
            self.journal.roll()?;
            self.journal.delete_before(vigil_segments::Position {
                segment: u64::MAX,
                offset: 0,
            })?;
        }
        Ok(())
    }
}

/// Journals the new records of `records` (after the idempotency check:
/// the tail, then SQLite unless the ids were just generated) and answers each;
/// runs without awaiting, under the tail shards' locks.
fn journal_records(
    shared: &Shared,
    readers: &Readers,
    records: Vec<InferenceRecord>,
    generated_ids: bool,
) -> Result<Vec<AppendOutcome>> {
    let tail = &shared.tail;
    let firsts = first_occurrences(&records);
    let shard_of: Vec<usize> = records
        .iter()
        .map(|r| tail.shard_of(&r.request_id))
        .collect();
    let mut order = shard_of.clone();
    order.sort_unstable();
    order.dedup();
    // Locked in ascending order, so two batches never deadlock.
    let mut guards = order
        .iter()
        .map(|&s| tail.lock(s))
        .collect::<Result<Vec<_>>>()?;
    let slot = |i: usize| order.binary_search(&shard_of[i]).unwrap_or_default();
    let mut outcomes: Vec<Option<AppendOutcome>> = vec![None; records.len()];
    let mut fresh = Vec::new();
    for (i, r) in records.iter().enumerate() {
        if firsts[i] != i {
            continue;
        }
        let shard = &mut guards[slot(i)];
        if let Some(e) = shard.find(&r.model, &r.request_id) {
            outcomes[i] = Some(judge(r, (*e.record).clone()));
            continue;
        }
        // Generated ids, and ids a lookup just found absent, need no read.
        let unseen = generated_ids || shard.take_absent(&r.model, &r.request_id);
        if !unseen
            && let Some(existing) = readers.with(|c| select_one(c, &r.model, &r.request_id))?
        {
            outcomes[i] = Some(judge(r, existing));
        } else {
            fresh.push(i);
        }
    }
    let positions = if fresh.is_empty() {
        Vec::new()
    } else {
        let payloads: Vec<Vec<u8>> = fresh.iter().map(|&i| codec::encode(&records[i])).collect();
        let batch: Vec<(i64, &[u8])> = fresh
            .iter()
            .zip(&payloads)
            .map(|(&i, p)| (records[i].received_at_us, p.as_slice()))
            .collect();
        shared.journal.append_batch(&batch, JournalDurability::Os)?
    };
    for &i in &fresh {
        outcomes[i] = Some(AppendOutcome::Inserted);
    }
    // A later record with an earlier one's key is judged against it.
    for (i, r) in records.iter().enumerate() {
        let first = firsts[i];
        if first != i {
            outcomes[i] = match &outcomes[first] {
                Some(AppendOutcome::Replayed(e) | AppendOutcome::Conflict(e)) => {
                    Some(judge(r, (**e).clone()))
                }
                _ => Some(judge(r, records[first].clone())),
            };
        }
    }
    // The journaled records move into the tail, uncopied.
    let mut records: Vec<Option<InferenceRecord>> = records.into_iter().map(Some).collect();
    for (&i, position) in fresh.iter().zip(positions) {
        if let Some(record) = records[i].take() {
            let entry = Entry {
                record: Arc::new(record),
                position,
            };
            tail.insert(&mut guards[slot(i)], entry);
        }
    }
    drop(guards);
    if !fresh.is_empty() {
        shared.signal.mark();
        if tail.len() >= shared.full_at {
            shared.signal.notify();
        }
    }
    outcomes
        .into_iter()
        .map(|o| o.ok_or_else(|| StoreError::Unavailable("missing append outcome".into())))
        .collect()
}

#[async_trait]
impl InferenceLog for SqliteLog {
    async fn lookup(&self, model: &str, request_id: &str) -> Result<Option<InferenceRecord>> {
        let tail = &self.shared.tail;
        let generation = match tail.get(model, request_id)? {
            Found::Journaled(r) => return Ok(Some((*r).clone())),
            Found::Missing { generation } => generation,
        };
        // A primary-key read from a WAL snapshot never waits for the writer
        // and takes microseconds, so it runs inline: handing it to the
        // blocking pool would cost more than the query.
        let stored = self.readers.with(|c| select_one(c, model, request_id))?;
        if stored.is_none() {
            tail.remember_absent(model, request_id, generation)?;
        }
        Ok(stored)
    }

    async fn append_batch(&self, records: Vec<InferenceRecord>) -> Result<Vec<AppendOutcome>> {
        self.journal(records, false).await
    }

    async fn append_fresh_batch(
        &self,
        records: Vec<InferenceRecord>,
    ) -> Result<Vec<AppendOutcome>> {
        self.journal(records, true).await
    }

    async fn get(&self, request_id: &str) -> Result<Vec<InferenceRecord>> {
        // The tail first: a record applied meanwhile is then in SQLite.
        let journaled = self.shared.tail.with_id(request_id)?;
        let id = request_id.to_owned();
        let mut records = self
            .read(move |conn| {
                let sql = format!(
                    "SELECT {COLUMNS} FROM inferences WHERE request_id = ?1 {SELECT_BY_ID_ORDER}"
                );
                let mut stmt = conn.prepare_cached(&sql)?;
                let rows = stmt.query_map([&id], raw_row)?;
                rows.map(|r| r.map_err(StoreError::from).and_then(into_record))
                    .collect::<Result<Vec<_>>>()
            })
            .await?;
        for r in journaled {
            if !records.iter().any(|s| s.model == r.model) {
                records.push(r);
            }
        }
        records.sort_by(|a, b| (b.received_at_us, &b.model).cmp(&(a.received_at_us, &a.model)));
        Ok(records)
    }

    async fn list(&self, query: &ListQuery) -> Result<Page> {
        let limit = query.effective_limit()?;
        let (sql, params) = list_sql(query, limit, |n| format!("?{n}"))?;
        // Journaled records are applied first, so the page is exact.
        self.flush().await?;
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
        self.with_writer(move |conn| rows::delete_batch(conn, before_us, batch_size))
            .await
    }
}

#[cfg(test)]
mod tests;
