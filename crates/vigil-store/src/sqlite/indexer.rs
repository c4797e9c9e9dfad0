//! The indexer: applies journaled records to SQLite in large transactions,
//! off the request path, then checkpoints the WAL and deletes journal
//! segments that are applied and checkpointed.
//!
//! It runs on its own thread and sleeps while nothing is journaled. After
//! the first append of a quiet spell it waits `index_interval_ms` (so one
//! transaction takes everything journaled meanwhile), or less once the
//! tail holds `max_batch_records`. The position of the last record applied
//! is written in the same transaction as the records, so a crash at any
//! point replays exactly the records after it (and a replayed record that
//! SQLite already holds is a no-op: the insert is conditional).

use std::ops::ControlFlow;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OptionalExtension, params};
use vigil_segments::{Position, SegmentLog};

use super::rows;
use super::tail::Tail;
use crate::codec;
use crate::error::{Result, StoreError};
use crate::record::InferenceRecord;

/// The WAL is checkpointed (and applied journal segments deleted) at most
/// this often while records are applied, and once more when the log closes.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(1);

/// The writer connection and what it has applied.
#[derive(Debug)]
pub(super) struct Db {
    pub conn: Connection,
    /// The last journal record applied to SQLite.
    applied: Option<Position>,
    /// `applied` as of the last checkpoint: journal segments before it are
    /// in the database file.
    checkpointed: Option<Position>,
    last_checkpoint: Instant,
}

/// What the appenders, the readers and the indexer thread share.
#[derive(Debug)]
pub(super) struct Shared {
    pub journal: SegmentLog,
    pub tail: Tail,
    pub db: Mutex<Db>,
    pub signal: Signal,
    /// Wakes appenders waiting for room in a full tail.
    pub room: tokio::sync::Notify,
    pub interval: Duration,
    /// Most records applied in one transaction.
    pub batch: usize,
    /// The tail's size at which the indexer runs without waiting for
    /// `interval`: a full batch, or a full tail (appends are waiting).
    pub full_at: usize,
    /// Records applied, transactions, checkpoints (tests and stats read them).
    pub applied_records: AtomicU64,
    pub transactions: AtomicU64,
    pub checkpoints: AtomicU64,
}

impl Db {
    /// Reads the applied position written by the last transaction.
    pub fn open(conn: Connection) -> Result<Db> {
        let applied = conn
            .query_row(
                "SELECT segment, offset FROM journal_applied WHERE id = 1",
                [],
                |row| Ok((row.get::<_, i64>(0)?, row.get::<_, i64>(1)?)),
            )
            .optional()?
            .map(|(segment, offset)| Position {
                segment: u64::try_from(segment).unwrap_or(0),
                offset: u64::try_from(offset).unwrap_or(0),
            });
        Ok(Db {
            conn,
            applied,
            checkpointed: applied,
            last_checkpoint: Instant::now(),
        })
    }

    pub fn applied(&self) -> Option<Position> {
        self.applied
    }

    /// Forgets the applied position (after the journal was emptied, so its
    /// numbering may start over).
    pub fn reset(&mut self) -> Result<()> {
        self.conn.execute("DELETE FROM journal_applied", [])?;
        self.applied = None;
        self.checkpointed = None;
        Ok(())
    }
}

impl Shared {
    pub fn lock_db(&self) -> Result<MutexGuard<'_, Db>> {
        self.db
            .lock()
            .map_err(|_| StoreError::Unavailable("sqlite writer poisoned".into()))
    }

    /// Applies everything journaled so far; returns how many records.
    pub fn apply_all(&self, db: &mut Db) -> Result<u64> {
        let mut total = 0;
        loop {
            let n = self.apply_batch(db)?;
            total += n as u64;
            if n < self.batch {
                return Ok(total);
            }
        }
    }

    /// Applies up to `batch` journaled records in one transaction.
    fn apply_batch(&self, db: &mut Db) -> Result<usize> {
        let after = db.applied;
        let mut records: Vec<(Position, InferenceRecord)> = Vec::new();
        let mut undecodable = 0u64;
        self.journal
            .scan_from(after.unwrap_or_default(), |r| {
                if Some(r.position) == after {
                    return ControlFlow::Continue(());
                }
                match codec::decode(r.payload) {
                    Ok(record) => records.push((r.position, record)),
                    Err(err) => {
                        undecodable += 1;
                        tracing::error!(
                            error = %err,
                            segment = r.position.segment,
                            offset = r.position.offset,
                            "journal record cannot be decoded, skipping it"
                        );
                    }
                }
                if records.len() >= self.batch {
                    ControlFlow::Break(())
                } else {
                    ControlFlow::Continue(())
                }
            })
            .map_err(StoreError::from)?;
        let Some(&(last, _)) = records.last() else {
            return Ok(0);
        };
        tracing::debug!(records = records.len(), "journal batch: transaction open");
        let tx = db.conn.transaction()?;
        for (_, record) in &records {
            rows::insert(&tx, record)?;
        }
        tx.execute(
            "INSERT INTO journal_applied (id, segment, offset) VALUES (1, ?1, ?2) \
             ON CONFLICT (id) DO UPDATE SET segment = excluded.segment, offset = excluded.offset",
            params![
                i64::try_from(last.segment).unwrap_or(i64::MAX),
                i64::try_from(last.offset).unwrap_or(i64::MAX)
            ],
        )?;
        tx.commit()?;
        tracing::debug!(records = records.len(), "journal batch: committed");
        db.applied = Some(last);
        self.applied_records
            .fetch_add(records.len() as u64 + undecodable, Ordering::Relaxed);
        self.transactions.fetch_add(1, Ordering::Relaxed);
        self.tail.remove_applied(&records)?;
        self.room.notify_waiters();
        Ok(records.len())
    }

    /// Checkpoints the WAL into the database file (which fsyncs both), then
    /// deletes the journal segments wholly applied before the checkpoint;
    /// returns whether everything applied is checkpointed.
    pub fn checkpoint(&self, db: &mut Db) -> bool {
        db.last_checkpoint = Instant::now();
        if db.applied == db.checkpointed {
            return true;
        }
        let done = db
            .conn
            .query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |row| {
                row.get::<_, i64>(0)
            });
        match done {
            // 0: not blocked. The WAL was synced first, so every applied
            // transaction is durable in SQLite now.
            Ok(0) => {
                self.checkpoints.fetch_add(1, Ordering::Relaxed);
                db.checkpointed = db.applied;
                if let Some(applied) = db.applied
                    && let Err(err) = self.journal.delete_before(applied)
                {
                    tracing::warn!(error = %err, "cannot delete applied journal segments");
                }
                true
            }
            Ok(_) => {
                tracing::debug!("wal checkpoint busy, will retry");
                false
            }
            Err(err) => {
                tracing::warn!(error = %err, "wal checkpoint failed");
                false
            }
        }
    }

    /// One round of the indexer thread: apply, then checkpoint when due.
    fn index(&self, stopping: bool) {
        let Ok(mut db) = self.lock_db() else {
            return;
        };
        if let Err(err) = self.apply_all(&mut db) {
            // The records stay journaled (and in the tail): retried next round.
            tracing::warn!(error = %err, "applying the journal to sqlite failed, will retry");
            self.signal.mark();
        }
        if stopping || db.last_checkpoint.elapsed() >= CHECKPOINT_EVERY {
            let _ = self.checkpoint(&mut db);
        }
    }

    /// The indexer thread's loop, until the log is dropped.
    pub fn run(&self) {
        loop {
            let stopping = self
                .signal
                .wait(self.interval, || self.tail.len() >= self.full_at);
            self.index(stopping);
            if stopping {
                return;
            }
        }
    }
}

/// What the indexer thread sleeps on: records journaled since its last
/// round, or the log being dropped. With neither it waits without a
/// timeout, so an idle log costs no wake-ups.
#[derive(Debug, Default)]
pub(super) struct Signal {
    /// Set by the first append after a round; the thread clears it.
    pending: AtomicBool,
    /// True once the log is dropped; guards the condition variable.
    stopping: Mutex<bool>,
    wake: Condvar,
    /// Times the thread woke from its wait (tests read it).
    pub wakeups: AtomicU64,
}

impl Signal {
    /// Called after records are journaled. Only the first append after a
    /// round takes the lock and wakes the thread.
    pub fn mark(&self) {
        if !self.pending.swap(true, Ordering::AcqRel) {
            self.notify();
        }
    }

    /// Wakes the thread now (the tail is full).
    pub fn notify(&self) {
        // Taking the lock orders this with the thread's check of `pending`.
        let _guard = self.stopping.lock();
        self.wake.notify_one();
    }

    pub fn stop(&self) {
        if let Ok(mut stopping) = self.stopping.lock() {
            *stopping = true;
        }
        self.wake.notify_one();
    }

    /// Blocks until records are pending and `interval` has passed since
    /// the thread saw them (or `full()` says not to wait), or the log is
    /// dropped; clears `pending` and returns whether it is stopping.
    fn wait(&self, interval: Duration, full: impl Fn() -> bool) -> bool {
        let Ok(mut stopping) = self.stopping.lock() else {
            return true;
        };
        let mut since: Option<Instant> = None;
        loop {
            if *stopping {
                return true;
            }
            if self.pending.load(Ordering::Acquire) {
                let at = *since.get_or_insert_with(Instant::now) + interval;
                let now = Instant::now();
                if now >= at || full() {
                    self.pending.store(false, Ordering::Release);
                    return false;
                }
                stopping = match self.wake.wait_timeout(stopping, at - now) {
                    Ok((guard, _)) => guard,
                    Err(_) => return true,
                };
            } else {
                stopping = match self.wake.wait(stopping) {
                    Ok(guard) => guard,
                    Err(_) => return true,
                };
            }
            self.wakeups.fetch_add(1, Ordering::Relaxed);
        }
    }
}
