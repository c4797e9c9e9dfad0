//! The spill queue: keeps records while the backend is down, until they
//! are replayed, in a [`SegmentLog`] in the spill directory.
//!
//! Each record is one segment-log record: the record's JSON, stamped with
//! its `received_at_us`. The segment log frames, checksums and recovers
//! them (a torn or corrupt tail after `kill -9` is cut at open and counted).
//!
//! The log is opened only while records wait, at the first spill or at open
//! when the directory holds segments, and closed once the queue drains:
//! a healthy store holds neither the directory's lock nor the log's
//! background fsync thread, and stores sharing a data directory (replicas
//! in tests) collide only if both spill at once, which the second sees as
//! an unavailable spill rather than interleaved files.
//!
//! A spill directory written by an older Vigil (`*.spill` files) is
//! migrated at open (see `legacy.rs`).

mod legacy;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::Duration;

use serde::Deserialize;
// The size budget counts the segment log's bytes per record besides the
// payload, and per new segment file.
use vigil_segments::{
    FRAME_OVERHEAD_BYTES as FRAME_OVERHEAD, Options, Position, SEGMENT_HEADER_BYTES, SegmentLog,
};

use crate::config::{Durability, SpillPolicy};
use crate::error::{Result, StoreError};
use crate::record::InferenceRecord;

/// Smallest and largest segment size.
const MIN_SEGMENT_BYTES: u64 = 4096;
const MAX_SEGMENT_BYTES: u64 = 16 * 1024 * 1024;
/// Past every segment: `delete_before(ALL_SEALED)` deletes all sealed ones.
const ALL_SEALED: Position = Position {
    segment: u64::MAX,
    offset: 0,
};

type Key = (String, String);

/// The part of a spilled record the index needs.
#[derive(Deserialize)]
struct KeyOf {
    model: String,
    request_id: String,
}

/// What a push did besides queueing the record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PushReport {
    /// Records dropped by the `drop_oldest` policy to make room.
    pub dropped: u64,
}

/// What opening an existing queue found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Records found waiting for replay.
    pub records: u64,
    /// Torn or corrupt tails cut off, plus corrupt records skipped.
    pub corrupt: u64,
}

/// A sealed segment waiting to be replayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    id: u64,
    records: usize,
}

impl Segment {
    /// Number of records in the segment.
    pub fn len(&self) -> usize {
        self.records
    }

    /// True when the segment holds no record.
    pub fn is_empty(&self) -> bool {
        self.records == 0
    }
}

/// Where the waiting records are.
#[derive(Debug, Default)]
struct Index {
    /// The keys in each segment that holds waiting records, so finishing
    /// or dropping a segment forgets exactly its keys.
    segments: BTreeMap<u64, Vec<Key>>,
    /// Where each waiting record sits: memory stays small however large the
    /// queue, and the rare idempotent retry during an outage reads one record.
    /// A key spilled twice keeps its first position.
    positions: HashMap<Key, Position>,
    /// Records in `segments`, duplicates included.
    records: usize,
}

impl Index {
    fn add(&mut self, key: Key, position: Position) {
        self.segments
            .entry(position.segment)
            .or_default()
            .push(key.clone());
        self.positions.entry(key).or_insert(position);
        self.records += 1;
    }

    /// Forgets segment `id`; returns how many records it held.
    fn forget(&mut self, id: u64) -> usize {
        let Some(keys) = self.segments.remove(&id) else {
            return 0;
        };
        for key in &keys {
            if self.positions.get(key).is_some_and(|p| p.segment == id) {
                self.positions.remove(key);
            }
        }
        self.records -= keys.len();
        keys.len()
    }

    /// Sealed segments below this position hold no waiting record.
    fn deletable_before(&self) -> Position {
        match self.segments.keys().next() {
            Some(&segment) => Position { segment, offset: 0 },
            None => ALL_SEALED,
        }
    }
}

/// The spill queue. Its locks are only taken while the backend is failing
/// or the queue is non-empty, never on the healthy hot path.
#[derive(Debug)]
pub struct SpillQueue {
    dir: PathBuf,
    options: Options,
    durability: vigil_segments::Durability,
    max_bytes: u64,
    policy: SpillPolicy,
    /// `Some` while records wait. Lock order: `log`, then `index`.
    log: RwLock<Option<SegmentLog>>,
    index: Mutex<Index>,
    /// Mirrors `index.records` so the healthy path never takes a lock.
    pending: AtomicUsize,
    /// fsyncs done by the logs closed since open.
    closed_fsyncs: AtomicU64,
}

impl SpillQueue {
    /// Opens the queue in `dir`: migrates an older version's `*.spill`
    /// files, then loads what a previous run left (cutting torn tails) so
    /// it is replayed first. `fsync` durability makes every push wait for
    /// an fsync; `os` leaves it to the log's background fsync, at most
    /// `fsync_interval` later.
    pub fn open(
        dir: &Path,
        max_bytes: u64,
        policy: SpillPolicy,
        durability: Durability,
        fsync_interval: Duration,
    ) -> Result<(Self, Recovered)> {
        let queue = SpillQueue {
            dir: dir.to_owned(),
            options: Options {
                segment_bytes: (max_bytes / 8).clamp(MIN_SEGMENT_BYTES, MAX_SEGMENT_BYTES),
                // Sealed when the replayer reaches the active segment.
                segment_age: None,
                fsync_interval,
                // The spill's own policy governs its size.
                retain_age: None,
                retain_bytes: None,
                ..Options::default()
            },
            durability: match durability {
                Durability::Os => vigil_segments::Durability::Os,
                Durability::Fsync => vigil_segments::Durability::Fsync,
            },
            max_bytes,
            policy,
            log: RwLock::new(None),
            index: Mutex::new(Index::default()),
            pending: AtomicUsize::new(0),
            closed_fsyncs: AtomicU64::new(0),
        };
        let recovered = queue.recover()?;
        Ok((queue, recovered))
    }

    fn recover(&self) -> Result<Recovered> {
        let (log, recovery, torn) = if let Some(legacy_dir) = legacy::set_aside(&self.dir)? {
            let (log, recovery) = self.open_log()?;
            let torn = legacy::migrate(&legacy_dir, &log, self.options.segment_bytes)?;
            (log, recovery, torn)
        } else if holds_segments(&self.dir)? {
            match self.open_log() {
                Ok((log, recovery)) => (log, recovery, 0),
                Err(vigil_segments::Error::Locked { dir }) => {
                    tracing::warn!(
                        dir = %dir.display(),
                        "spill directory is held by another store, leaving its records to it"
                    );
                    return Ok(Recovered::default());
                }
                Err(err) => return Err(err.into()),
            }
        } else {
            return Ok(Recovered::default());
        };
        let (index, corrupt) = load(&log, &recovery, torn)?;
        let recovered = Recovered {
            records: index.records as u64,
            corrupt,
        };
        self.install(log, index)?;
        Ok(recovered)
    }

    fn open_log(&self) -> vigil_segments::Result<(SegmentLog, vigil_segments::Recovery)> {
        SegmentLog::open(&self.dir, self.options.clone())
    }

    /// Keeps `log` open if `index` holds records, else closes it.
    fn install(&self, log: SegmentLog, index: Index) -> Result<()> {
        let mut slot = self.write_log()?;
        if index.records == 0 {
            self.close(log);
            return Ok(());
        }
        let mut current = self.lock_index()?;
        self.pending.store(index.records, Ordering::Release);
        *current = index;
        *slot = Some(log);
        Ok(())
    }

    /// Deletes what is left of a drained log (empty or corrupt segments)
    /// and closes it, releasing the directory's lock.
    fn close(&self, log: SegmentLog) {
        let cleaned = log.roll().and_then(|_| log.delete_before(ALL_SEALED));
        if let Err(err) = cleaned {
            tracing::warn!(error = %err, "cannot clean up the drained spill log");
        }
        self.closed_fsyncs
            .fetch_add(log.stats().fsyncs, Ordering::Relaxed);
    }

    /// Closes the log if nothing waits (after a replay or a refused push).
    fn close_if_drained(&self) {
        let Ok(mut slot) = self.log.write() else {
            return;
        };
        // Re-checked under the write lock: no push can run meanwhile.
        if self.is_empty()
            && let Some(log) = slot.take()
        {
            self.close(log);
        }
    }

    /// Opens the log again after the queue drained, loading anything
    /// found in it (left by a crashed store that shared the directory).
    fn reopen(&self) -> Result<SegmentLog> {
        let (log, recovery) = self.open_log().map_err(|err| match err {
            // Another store spills into this directory right now.
            vigil_segments::Error::Locked { .. } => {
                StoreError::Unavailable(format!("spill queue: {err}"))
            }
            err => err.into(),
        })?;
        let (found, corrupt) = load(&log, &recovery, 0)?;
        if found.records > 0 || corrupt > 0 {
            tracing::warn!(
                records = found.records,
                corrupt,
                "spill directory held records left by another run"
            );
        }
        let mut index = self.lock_index()?;
        self.pending.store(found.records, Ordering::Release);
        *index = found;
        Ok(log)
    }

    fn write_log(&self) -> Result<RwLockWriteGuard<'_, Option<SegmentLog>>> {
        self.log
            .write()
            .map_err(|_| StoreError::Unavailable("spill queue lock poisoned".into()))
    }

    fn read_log(&self) -> Result<RwLockReadGuard<'_, Option<SegmentLog>>> {
        self.log
            .read()
            .map_err(|_| StoreError::Unavailable("spill queue lock poisoned".into()))
    }

    fn lock_index(&self) -> Result<MutexGuard<'_, Index>> {
        self.index
            .lock()
            .map_err(|_| StoreError::Unavailable("spill queue lock poisoned".into()))
    }

    /// True when nothing waits for replay.
    pub fn is_empty(&self) -> bool {
        self.pending.load(Ordering::Acquire) == 0
    }

    /// Bytes currently queued (the segment files' size).
    pub fn bytes(&self) -> u64 {
        match self.log.read() {
            Ok(log) => log.as_ref().map_or(0, SegmentLog::total_bytes),
            Err(_) => 0,
        }
    }

    /// fsyncs of the spill's segment logs since open (tests read it).
    pub fn fsyncs(&self) -> u64 {
        let open = match self.log.read() {
            Ok(log) => log.as_ref().map_or(0, |l| l.stats().fsyncs),
            Err(_) => 0,
        };
        self.closed_fsyncs.load(Ordering::Relaxed) + open
    }

    /// The spilled record with this key, if it waits for replay.
    pub fn lookup(&self, model: &str, request_id: &str) -> Option<InferenceRecord> {
        if self.is_empty() {
            return None;
        }
        let log = self.read_log().ok()?;
        let log = log.as_ref()?;
        let position = *self
            .lock_index()
            .ok()?
            .positions
            .get(&(model.to_owned(), request_id.to_owned()))?;
        // The segment may be replayed and deleted meanwhile; then the
        // record is in the backend and `None` is the right answer here.
        let found = match log.read_at(position) {
            Ok(found) => found?,
            Err(err) => {
                tracing::debug!(error = %err, "spilled record unreadable");
                return None;
            }
        };
        let record: InferenceRecord = serde_json::from_slice(&found.payload).ok()?;
        (record.model == model && record.request_id == request_id).then_some(record)
    }

    /// Appends `record`. With policy `reject`, a full queue fails with
    /// [`StoreError::SpillFull`]; with `drop_oldest` the oldest segments are
    /// deleted to make room.
    pub fn push(&self, record: &InferenceRecord) -> Result<PushReport> {
        let body = serde_json::to_vec(record)
            .map_err(|e| StoreError::Corrupt(format!("spill encode: {e}")))?;
        let frame = body.len() as u64 + FRAME_OVERHEAD;
        if frame > self.max_bytes {
            return Err(StoreError::SpillFull);
        }
        let pushed = self.push_to_log(record, &body, frame);
        if self.is_empty() {
            // A refused first push: do not hold the directory for nothing.
            self.close_if_drained();
        }
        pushed
    }

    fn push_to_log(&self, record: &InferenceRecord, body: &[u8], frame: u64) -> Result<PushReport> {
        {
            let log = self.read_log()?;
            if let Some(log) = log.as_ref() {
                return self.push_body(log, record, body, frame);
            }
        }
        // Drained, so closed: reopen it, and push while no one can close it.
        let mut slot = self.write_log()?;
        if slot.is_none() {
            *slot = Some(self.reopen()?);
        }
        match slot.as_ref() {
            Some(log) => self.push_body(log, record, body, frame),
            None => Err(StoreError::Unavailable("spill log closed".into())),
        }
    }

    fn push_body(
        &self,
        log: &SegmentLog,
        record: &InferenceRecord,
        body: &[u8],
        frame: u64,
    ) -> Result<PushReport> {
        let mut index = self.lock_index()?;
        let mut report = PushReport::default();
        loop {
            let total = log.total_bytes();
            if total + self.cost(log, frame) <= self.max_bytes {
                break;
            }
            if self.policy == SpillPolicy::Reject {
                return Err(StoreError::SpillFull);
            }
            report.dropped += self.drop_oldest(log, &mut index)?;
            if log.total_bytes() >= total {
                return Err(StoreError::SpillFull);
            }
        }
        let position = log.append(record.received_at_us, body, self.durability)?;
        index.add((record.model.clone(), record.request_id.clone()), position);
        self.pending.store(index.records, Ordering::Release);
        Ok(report)
    }

    /// What appending a frame adds to the log's size, at most.
    fn cost(&self, log: &SegmentLog, frame: u64) -> u64 {
        let new_segment = match log.segments().last() {
            Some(active) if !active.sealed => active.bytes + frame > self.options.segment_bytes,
            _ => true,
        };
        frame + if new_segment { SEGMENT_HEADER_BYTES } else { 0 }
    }

    /// Deletes the oldest segment holding records (sealing it first if it
    /// is the active one), or only leftovers if none does; returns how many
    /// records were dropped.
    fn drop_oldest(&self, log: &SegmentLog, index: &mut Index) -> Result<u64> {
        let Some(&oldest) = index.segments.keys().next() else {
            log.roll()?;
            log.delete_before(ALL_SEALED)?;
            return Ok(0);
        };
        seal(log, oldest)?;
        let dropped = index.forget(oldest);
        self.pending.store(index.records, Ordering::Release);
        log.delete_before(index.deletable_before())?;
        Ok(dropped as u64)
    }

    /// The oldest segment to replay, sealing the active one if it is the
    /// only one left; `None` when the queue is empty.
    pub fn oldest(&self) -> Result<Option<Segment>> {
        let log = self.read_log()?;
        let Some(log) = log.as_ref() else {
            return Ok(None);
        };
        let index = self.lock_index()?;
        let Some((&id, keys)) = index.segments.iter().next() else {
            return Ok(None);
        };
        seal(log, id)?;
        Ok(Some(Segment {
            id,
            records: keys.len(),
        }))
    }

    /// Reads a segment's records in order (skipping corrupt ones).
    pub fn read(&self, segment: &Segment) -> Result<Vec<InferenceRecord>> {
        let log = self.read_log()?;
        let Some(log) = log.as_ref() else {
            return Ok(Vec::new());
        };
        let mut records = Vec::with_capacity(segment.records);
        let from = Position {
            segment: segment.id,
            offset: 0,
        };
        log.scan_from(from, |r| {
            if r.position.segment != segment.id {
                return ControlFlow::Break(());
            }
            match serde_json::from_slice::<InferenceRecord>(r.payload) {
                Ok(record) => records.push(record),
                Err(err) => tracing::warn!(
                    error = %err,
                    segment = r.position.segment,
                    offset = r.position.offset,
                    "undecodable spilled record skipped"
                ),
            }
            ControlFlow::Continue(())
        })?;
        Ok(records)
    }

    /// Removes a replayed segment and forgets its records.
    pub fn finish(&self, segment: &Segment) -> Result<()> {
        {
            let log = self.read_log()?;
            let Some(log) = log.as_ref() else {
                return Ok(());
            };
            let mut index = self.lock_index()?;
            // Already dropped by `drop_oldest` while it was being replayed.
            if !index.segments.contains_key(&segment.id) {
                return Ok(());
            }
            index.forget(segment.id);
            self.pending.store(index.records, Ordering::Release);
            log.delete_before(index.deletable_before())?;
        }
        if self.is_empty() {
            self.close_if_drained();
        }
        Ok(())
    }
}

/// Seals segment `id` if it is the active one.
fn seal(log: &SegmentLog, id: u64) -> Result<()> {
    let active = log.segments().iter().any(|s| s.id == id && !s.sealed);
    if active {
        log.roll()?;
    }
    Ok(())
}

/// Indexes every record of `log`; returns the index and what was corrupt:
/// `more`, a torn tail cut by the log's recovery and the corrupt records
/// skipped (by the recovery and again by the scan: counted once).
fn load(log: &SegmentLog, recovery: &vigil_segments::Recovery, more: u64) -> Result<(Index, u64)> {
    let mut index = Index::default();
    let mut undecodable = 0u64;
    let stats = log.scan_from(Position::default(), |r| {
        match serde_json::from_slice::<KeyOf>(r.payload) {
            Ok(k) => index.add((k.model, k.request_id), r.position),
            Err(err) => {
                undecodable += 1;
                tracing::warn!(
                    error = %err,
                    segment = r.position.segment,
                    offset = r.position.offset,
                    "undecodable spilled record skipped"
                );
            }
        }
        ControlFlow::Continue(())
    })?;
    let cut = u64::from(recovery.cut_bytes > 0);
    let skipped = recovery.skipped_records.max(stats.skipped_records);
    Ok((index, more + cut + skipped + undecodable))
}

/// True when `dir` holds anything besides the log's lock file.
fn holds_segments(dir: &Path) -> Result<bool> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(err) => return Err(err.into()),
    };
    for entry in entries {
        if entry?.file_name() != "LOCK" {
            return Ok(true);
        }
    }
    Ok(false)
}
