//! The state one open log shares between appenders, readers and the
//! background thread.

use std::collections::BTreeMap;
use std::fs::File;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use crate::frame::HEADER_LEN;
use crate::index::SegIndex;
use crate::state::{Active, Bg, Queue};
use crate::{Options, Position, SegmentInfo, Stats};

/// A segment as the catalog knows it.
#[derive(Debug, Clone)]
pub(crate) struct SegMeta {
    pub id: u64,
    pub sealed: bool,
    /// The valid bytes (uncompressed), header included.
    pub len: u64,
    /// The size of its file on disk.
    pub disk_bytes: u64,
    pub records: u64,
    pub time: Option<(i64, i64)>,
    /// The largest payload its header allows.
    pub max_record: u32,
    /// The sparse index of a sealed segment.
    pub index: Option<Arc<SegIndex>>,
    /// Stored as `.lz4`.
    pub compressed: bool,
}

impl SegMeta {
    /// A new, empty active segment: just its header.
    pub(crate) fn empty(id: u64, max_record: u32) -> SegMeta {
        SegMeta {
            id,
            sealed: false,
            len: HEADER_LEN,
            disk_bytes: HEADER_LEN,
            records: 0,
            time: None,
            max_record,
            index: None,
            compressed: false,
        }
    }

    pub(crate) fn info(&self) -> SegmentInfo {
        SegmentInfo {
            id: self.id,
            sealed: self.sealed,
            bytes: self.disk_bytes,
            records: self.records,
            time_range_us: self.time,
            compressed: self.compressed,
        }
    }
}

/// Every segment, and the end of what was written.
#[derive(Debug, Default)]
pub(crate) struct Catalog {
    pub segs: BTreeMap<u64, SegMeta>,
    pub end: Position,
}

impl Catalog {
    pub(crate) fn total_bytes(&self) -> u64 {
        self.segs.values().map(|s| s.disk_bytes).sum()
    }
}

/// The counters behind [`Stats`].
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub fsyncs: AtomicU64,
    pub rolls: AtomicU64,
    pub segments_deleted: AtomicU64,
    pub full_errors: AtomicU64,
}

impl Counters {
    pub(crate) fn add(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    /// The counters, with the writer's own (kept under its lock).
    pub(crate) fn snapshot(&self, records_appended: u64, writes: u64) -> Stats {
        let g = |c: &AtomicU64| c.load(Ordering::Relaxed);
        Stats {
            records_appended,
            writes,
            fsyncs: g(&self.fsyncs),
            rolls: g(&self.rolls),
            segments_deleted: g(&self.segments_deleted),
            full_errors: g(&self.full_errors),
        }
    }
}

/// One open log.
pub(crate) struct Inner {
    pub dir: PathBuf,
    pub opts: Options,
    /// Held (locked) for the log's lifetime; closing it releases the lock.
    pub _lock: File,
    pub catalog: Mutex<Catalog>,
    /// Framed bytes waiting for the next group write. Taken after `active`
    /// when both are held.
    pub queue: Mutex<Queue>,
    /// The writer's lock: the active segment's file.
    pub active: Mutex<Active>,
    /// The last sequence number written (or failed); mirrors `Active`.
    pub written_seq: AtomicU64,
    /// The highest sequence number of any failed group write.
    pub failed_hi: AtomicU64,
    /// The last sequence number made durable.
    pub synced_seq: AtomicU64,
    /// Serialises fsyncs, so one serves every waiter queued meanwhile.
    pub sync_lock: Mutex<()>,
    /// Held while files are unlinked, renamed or sidecars written, so a
    /// deletion and a sidecar write never interleave. Never the writer's.
    pub files_lock: Mutex<()>,
    pub counters: Counters,
    pub bg: Bg,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Inner").field("dir", &self.dir).finish()
    }
}
