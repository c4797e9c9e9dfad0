//! The spill queue: an append-only, segmented local file queue that keeps
//! records while the backend is down, until they are replayed.
//!
//! Each segment `NNNNNNNNNNNNNNNNNNNN.spill` holds records framed as
//! `[len: u32 LE][crc32: u32 LE][len bytes of JSON]`. A torn or corrupt tail
//! (e.g. after `kill -9` mid-write) is detected by the length or checksum,
//! counted, and cut off when the queue is opened.

use std::collections::{HashMap, VecDeque};
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use crate::config::SpillPolicy;
use crate::error::{Result, StoreError};
use crate::record::InferenceRecord;

const HEADER_BYTES: u64 = 8;
const EXTENSION: &str = "spill";

type Key = (String, String);

/// A record and the offset of its frame in its segment.
type Frame = (u64, InferenceRecord);

/// What a push did besides queueing the record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PushReport {
    /// Records dropped by the `drop_oldest` policy to make room.
    pub dropped: u64,
}

/// A closed segment waiting to be replayed.
#[derive(Debug, Clone)]
pub struct Segment {
    id: u64,
    path: PathBuf,
    bytes: u64,
    keys: Vec<Key>,
}

impl Segment {
    /// Number of records in the segment.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// True when the segment holds no record.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }
}

#[derive(Debug)]
struct Active {
    file: File,
    segment: Segment,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Location {
    segment: u64,
    offset: u64,
}

#[derive(Debug, Default)]
struct State {
    closed: VecDeque<Segment>,
    active: Option<Active>,
    total_bytes: u64,
    next_id: u64,
    /// Where each waiting record sits: memory stays small however large the
    /// queue, and the rare idempotent retry during an outage reads one frame.
    pending: HashMap<Key, Location>,
}

/// The spill queue. Its lock is only taken while the backend is failing or
/// the queue is non-empty, never on the healthy hot path.
#[derive(Debug)]
pub struct SpillQueue {
    dir: PathBuf,
    max_bytes: u64,
    segment_bytes: u64,
    policy: SpillPolicy,
    fsync: bool,
    state: Mutex<State>,
    /// Mirrors `state.pending.len()` so the healthy path never takes the lock.
    pending: AtomicUsize,
    /// Written since the last fsync (only tracked when `fsync` is off).
    unsynced: AtomicBool,
}

/// What opening an existing queue found.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Recovered {
    /// Records found waiting for replay.
    pub records: u64,
    /// Torn or corrupt tails cut off.
    pub corrupt: u64,
}

impl SpillQueue {
    /// Opens the queue in `dir`, loading every segment left by a previous
    /// run (cutting torn tails) so it is replayed first.
    pub fn open(
        dir: &Path,
        max_bytes: u64,
        policy: SpillPolicy,
        fsync: bool,
    ) -> Result<(Self, Recovered)> {
        std::fs::create_dir_all(dir)?;
        let mut ids: Vec<u64> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok())
            .filter_map(|e| {
                let path = e.path();
                if path.extension().and_then(|x| x.to_str()) != Some(EXTENSION) {
                    return None;
                }
                path.file_stem()?.to_str()?.parse().ok()
            })
            .collect();
        ids.sort_unstable();
        let mut state = State::default();
        let mut recovered = Recovered::default();
        for id in ids {
            let path = segment_path(dir, id);
            let (records, valid_bytes, torn) = read_frames(&path)?;
            if torn {
                recovered.corrupt += 1;
                OpenOptions::new()
                    .write(true)
                    .open(&path)?
                    .set_len(valid_bytes)?;
            }
            if records.is_empty() {
                std::fs::remove_file(&path)?;
                continue;
            }
            let mut keys = Vec::with_capacity(records.len());
            for (offset, r) in records {
                let key = (r.model, r.request_id);
                keys.push(key.clone());
                state.pending.entry(key).or_insert(Location {
                    segment: id,
                    offset,
                });
            }
            recovered.records += keys.len() as u64;
            state.total_bytes += valid_bytes;
            state.closed.push_back(Segment {
                id,
                path,
                bytes: valid_bytes,
                keys,
            });
            state.next_id = id + 1;
        }
        let queue = SpillQueue {
            dir: dir.to_owned(),
            max_bytes,
            segment_bytes: (max_bytes / 8).clamp(1, 16 * 1024 * 1024),
            policy,
            fsync,
            pending: AtomicUsize::new(state.pending.len()),
            unsynced: AtomicBool::new(false),
            state: Mutex::new(state),
        };
        Ok((queue, recovered))
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, State>> {
        self.state
            .lock()
            .map_err(|_| StoreError::Unavailable("spill queue lock poisoned".into()))
    }

    /// True when nothing waits for replay.
    pub fn is_empty(&self) -> bool {
        self.pending.load(Ordering::Acquire) == 0
    }

    /// Bytes currently queued.
    pub fn bytes(&self) -> u64 {
        self.lock().map(|s| s.total_bytes).unwrap_or(0)
    }

    /// The spilled record with this key, if it waits for replay.
    pub fn lookup(&self, model: &str, request_id: &str) -> Option<InferenceRecord> {
        if self.is_empty() {
            return None;
        }
        let location = {
            let state = self.lock().ok()?;
            *state
                .pending
                .get(&(model.to_owned(), request_id.to_owned()))?
        };
        // The segment may be replayed and deleted meanwhile; then the
        // record is in the backend and `None` is the right answer here.
        read_frame_at(&segment_path(&self.dir, location.segment), location.offset)
    }

    /// Appends `record`. With policy `reject`, a full queue fails with
    /// [`StoreError::SpillFull`]; with `drop_oldest` the oldest segments are
    /// deleted to make room.
    pub fn push(&self, record: &InferenceRecord) -> Result<PushReport> {
        let body = serde_json::to_vec(record)
            .map_err(|e| StoreError::Corrupt(format!("spill encode: {e}")))?;
        let len = u32::try_from(body.len())
            .map_err(|_| StoreError::Corrupt("record too large to spill".into()))?;
        let frame_bytes = HEADER_BYTES + u64::from(len);
        let mut report = PushReport::default();
        let mut state = self.lock()?;
        if frame_bytes > self.max_bytes {
            return Err(StoreError::SpillFull);
        }
        while state.total_bytes + frame_bytes > self.max_bytes {
            match self.policy {
                SpillPolicy::Reject => return Err(StoreError::SpillFull),
                SpillPolicy::DropOldest => {
                    if state.closed.is_empty() {
                        close_active(&mut state);
                    }
                    let Some(oldest) = state.closed.pop_front() else {
                        return Err(StoreError::SpillFull);
                    };
                    report.dropped += oldest.keys.len() as u64;
                    forget(&mut state, &oldest);
                    self.pending.store(state.pending.len(), Ordering::Release);
                    remove_file_logged(&oldest.path);
                }
            }
        }
        let needs_new = state
            .active
            .as_ref()
            .is_none_or(|a| a.segment.bytes + frame_bytes > self.segment_bytes);
        if needs_new {
            close_active(&mut state);
            let id = state.next_id;
            state.next_id += 1;
            let path = segment_path(&self.dir, id);
            let file = OpenOptions::new().create(true).append(true).open(&path)?;
            state.active = Some(Active {
                file,
                segment: Segment {
                    id,
                    path,
                    bytes: 0,
                    keys: Vec::new(),
                },
            });
        }
        let Some(active) = state.active.as_mut() else {
            return Err(StoreError::Corrupt("spill segment missing".into()));
        };
        let mut frame = Vec::with_capacity(body.len() + 8);
        frame.extend_from_slice(&len.to_le_bytes());
        frame.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
        frame.extend_from_slice(&body);
        active.file.write_all(&frame)?;
        if self.fsync {
            active.file.sync_data()?;
        } else {
            self.unsynced.store(true, Ordering::Release);
        }
        let key = (record.model.clone(), record.request_id.clone());
        let location = Location {
            segment: active.segment.id,
            offset: active.segment.bytes,
        };
        active.segment.bytes += frame_bytes;
        active.segment.keys.push(key.clone());
        state.total_bytes += frame_bytes;
        state.pending.entry(key).or_insert(location);
        self.pending.store(state.pending.len(), Ordering::Release);
        Ok(report)
    }

    /// Fsyncs the active segment if anything was written since the last
    /// sync; `os` durability calls this every `fsync_interval_ms`.
    pub fn sync(&self) -> Result<()> {
        if !self.unsynced.swap(false, Ordering::AcqRel) {
            return Ok(());
        }
        let state = self.lock()?;
        if let Some(active) = &state.active
            && let Err(err) = active.file.sync_data()
        {
            self.unsynced.store(true, Ordering::Release);
            return Err(err.into());
        }
        Ok(())
    }

    /// The oldest segment to replay, closing the active one if it is the
    /// only one left; `None` when the queue is empty.
    pub fn oldest(&self) -> Result<Option<Segment>> {
        let mut state = self.lock()?;
        if state.closed.is_empty() {
            close_active(&mut state);
        }
        Ok(state.closed.front().cloned())
    }

    /// Reads a segment's records in order (stopping at a torn tail).
    pub fn read(&self, segment: &Segment) -> Result<Vec<InferenceRecord>> {
        Ok(read_frames(&segment.path)?
            .0
            .into_iter()
            .map(|(_, r)| r)
            .collect())
    }

    /// Removes a replayed segment and forgets its records.
    pub fn finish(&self, segment: &Segment) -> Result<()> {
        let mut state = self.lock()?;
        let Some(pos) = state.closed.iter().position(|s| s.id == segment.id) else {
            // Already dropped by `drop_oldest` while it was being replayed.
            return Ok(());
        };
        if let Some(done) = state.closed.remove(pos) {
            forget(&mut state, &done);
            self.pending.store(state.pending.len(), Ordering::Release);
            remove_file_logged(&done.path);
        }
        Ok(())
    }
}

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.{EXTENSION}"))
}

fn close_active(state: &mut State) {
    if let Some(active) = state.active.take() {
        if active.segment.keys.is_empty() {
            remove_file_logged(&active.segment.path);
        } else {
            // A closed segment is never written again: make it durable now.
            if let Err(err) = active.file.sync_data() {
                tracing::warn!(error = %err, "cannot fsync spill segment");
            }
            state.closed.push_back(active.segment);
        }
    }
}

fn forget(state: &mut State, segment: &Segment) {
    state.total_bytes = state.total_bytes.saturating_sub(segment.bytes);
    for key in &segment.keys {
        if state
            .pending
            .get(key)
            .is_some_and(|l| l.segment == segment.id)
        {
            state.pending.remove(key);
        }
    }
}

fn remove_file_logged(path: &Path) {
    if let Err(err) = std::fs::remove_file(path) {
        tracing::warn!(error = %err, path = %path.display(), "cannot remove spill segment");
    }
}

/// One frame's record at `offset`, if it is intact.
fn read_frame_at(path: &Path, offset: u64) -> Option<InferenceRecord> {
    use std::io::{Seek, SeekFrom};
    let mut file = File::open(path).ok()?;
    file.seek(SeekFrom::Start(offset)).ok()?;
    let mut header = [0u8; 8];
    file.read_exact(&mut header).ok()?;
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    let mut body = vec![0u8; len];
    file.read_exact(&mut body).ok()?;
    if crc32fast::hash(&body) != crc {
        return None;
    }
    serde_json::from_slice(&body).ok()
}

/// Reads every valid record with its offset; returns them, the length of
/// the valid prefix and whether a torn or corrupt tail followed it.
fn read_frames(path: &Path) -> Result<(Vec<Frame>, u64, bool)> {
    let mut bytes = Vec::new();
    File::open(path)?.read_to_end(&mut bytes)?;
    let mut records = Vec::new();
    let mut pos = 0usize;
    while pos < bytes.len() {
        let Some(header) = bytes.get(pos..pos + 8) else {
            return Ok((records, pos as u64, true));
        };
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        let Some(body) = bytes.get(pos + 8..pos + 8 + len) else {
            return Ok((records, pos as u64, true));
        };
        if crc32fast::hash(body) != crc {
            return Ok((records, pos as u64, true));
        }
        match serde_json::from_slice::<InferenceRecord>(body) {
            Ok(r) => records.push((pos as u64, r)),
            Err(_) => return Ok((records, pos as u64, true)),
        }
        pos += 8 + len;
    }
    Ok((records, pos as u64, false))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str) -> InferenceRecord {
        let mut r = InferenceRecord::new(id, 1, "fraud", "1", crate::Input::default());
        r.scores = vec![0.25];
        r
    }

    fn open(dir: &Path, max: u64, policy: SpillPolicy) -> (SpillQueue, Recovered) {
        SpillQueue::open(dir, max, policy, false).unwrap_or_else(|e| panic!("{e}"))
    }

    fn drain(q: &SpillQueue) -> Vec<String> {
        let mut ids = Vec::new();
        while let Ok(Some(seg)) = q.oldest() {
            for r in q.read(&seg).unwrap_or_default() {
                ids.push(r.request_id);
            }
            assert!(q.finish(&seg).is_ok());
        }
        ids
    }

    #[test]
    fn pushes_survive_reopen_in_order() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        {
            let (q, _) = open(dir.path(), 1 << 20, SpillPolicy::Reject);
            for i in 0..5 {
                assert!(q.push(&rec(&format!("r{i}"))).is_ok());
            }
            assert!(q.lookup("fraud", "r3").is_some());
        }
        let (q, rec_) = open(dir.path(), 1 << 20, SpillPolicy::Reject);
        assert_eq!(
            rec_,
            Recovered {
                records: 5,
                corrupt: 0
            }
        );
        assert_eq!(q.lookup("fraud", "r3").map(|r| r.scores), Some(vec![0.25]));
        assert_eq!(drain(&q), vec!["r0", "r1", "r2", "r3", "r4"]);
        assert!(q.is_empty());
        assert_eq!(q.bytes(), 0);
    }

    #[test]
    fn torn_tail_is_skipped_and_cut() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        {
            let (q, _) = open(dir.path(), 1 << 20, SpillPolicy::Reject);
            assert!(q.push(&rec("a")).is_ok());
            assert!(q.push(&rec("b")).is_ok());
        }
        let seg = segment_path(dir.path(), 0);
        let len = std::fs::metadata(&seg).map(|m| m.len()).unwrap_or(0);
        // Cut the last record in half, as a kill -9 mid-write would.
        let f = OpenOptions::new().write(true).open(&seg);
        assert!(f.and_then(|f| f.set_len(len - 10)).is_ok());
        let (q, r) = open(dir.path(), 1 << 20, SpillPolicy::Reject);
        assert_eq!(
            r,
            Recovered {
                records: 1,
                corrupt: 1
            }
        );
        assert!(q.push(&rec("c")).is_ok());
        assert_eq!(drain(&q), vec!["a", "c"]);
    }

    #[test]
    fn corrupt_checksum_is_detected() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        {
            let (q, _) = open(dir.path(), 1 << 20, SpillPolicy::Reject);
            assert!(q.push(&rec("a")).is_ok());
        }
        let seg = segment_path(dir.path(), 0);
        let mut bytes = std::fs::read(&seg).unwrap_or_default();
        let last = bytes.len() - 2;
        bytes[last] ^= 0xff;
        assert!(std::fs::write(&seg, &bytes).is_ok());
        let (q, r) = open(dir.path(), 1 << 20, SpillPolicy::Reject);
        assert_eq!(
            r,
            Recovered {
                records: 0,
                corrupt: 1
            }
        );
        assert!(q.is_empty());
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(48))]

        /// Whatever byte a crash stops at, reopening yields exactly a prefix
        /// of what was pushed, and the queue keeps working afterwards.
        #[test]
        fn any_truncation_recovers_a_prefix(n in 1usize..12, cut in 0.0f64..1.0) {
            let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
            {
                let (q, _) = open(dir.path(), 1 << 20, SpillPolicy::Reject);
                for i in 0..n {
                    let id = format!("r{i:02}");
                    proptest::prop_assert!(q.push(&rec(&id)).is_ok());
                }
            }
            let seg = segment_path(dir.path(), 0);
            let len = std::fs::metadata(&seg).map(|m| m.len()).unwrap_or(0);
            let keep = (len as f64 * cut) as u64;
            let f = OpenOptions::new().write(true).open(&seg);
            proptest::prop_assert!(f.and_then(|f| f.set_len(keep)).is_ok());
            let (q, r) = open(dir.path(), 1 << 20, SpillPolicy::Reject);
            proptest::prop_assert!(r.records as usize <= n);
            proptest::prop_assert!(q.push(&rec("after")).is_ok());
            let ids = drain(&q);
            let mut expected: Vec<String> =
                (0..r.records as usize).map(|i| format!("r{i:02}")).collect();
            expected.push("after".into());
            proptest::prop_assert_eq!(ids, expected);
        }
    }

    #[test]
    fn reject_policy_refuses_when_full() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (q, _) = open(dir.path(), 600, SpillPolicy::Reject);
        let mut accepted = 0;
        for i in 0..20 {
            match q.push(&rec(&format!("r{i}"))) {
                Ok(_) => accepted += 1,
                Err(e) => {
                    assert!(matches!(e, StoreError::SpillFull));
                    break;
                }
            }
        }
        assert!(accepted > 0 && accepted < 20, "accepted {accepted}");
        assert!(q.bytes() <= 600);
        assert_eq!(drain(&q).len(), accepted);
    }

    #[test]
    fn drop_oldest_makes_room_and_counts() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let (q, _) = open(dir.path(), 2000, SpillPolicy::DropOldest);
        let mut dropped = 0;
        for i in 0..50 {
            match q.push(&rec(&format!("r{i:02}"))) {
                Ok(report) => dropped += report.dropped,
                Err(e) => panic!("{e}"),
            }
        }
        assert!(q.bytes() <= 2000);
        let left = drain(&q);
        assert!(dropped > 0);
        assert_eq!(left.len() as u64 + dropped, 50);
        assert_eq!(left.last().map(String::as_str), Some("r49"));
        assert!(q.lookup("fraud", "r00").is_none());
    }
}
