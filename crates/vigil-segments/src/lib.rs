//! The segment log: one directory of numbered, append-only segment files
//! that survive `kill -9`, cut a torn tail, find a time range without
//! reading everything and expire by dropping whole files.
//!
//! It is the storage under the spill queue and the inference-log journal,
//! and later under the metrics write-ahead log, the log store and the trace
//! store. It knows nothing of HTTP, SQL or what a record means: a record is
//! a timestamp (microseconds) and opaque bytes.
//!
//! - [`SegmentLog::open`] takes the directory's lock file (one writer per
//!   directory), checks every segment from its last known-good point and
//!   cuts torn tails ([`Recovery`] says how many bytes).
//! - [`SegmentLog::append`] / [`SegmentLog::append_batch`] frame records
//!   (`length`, `CRC32C`, timestamp, bytes) and group-commit them: appends
//!   queued while a write is in flight go out together in the next `write`.
//!   [`Durability::Os`] returns once the bytes are written to the kernel
//!   (survives `kill -9`); [`Durability::Fsync`] returns after a group
//!   `fdatasync`. In `os` mode a background thread fsyncs at most every
//!   `fsync_interval` and sleeps while nothing is written.
//! - Segments roll by size and age; a sealed segment keeps its time range
//!   and a sparse time index, so [`SegmentLog::scan`] of the last hour opens
//!   only the last hour's segments.
//! - Retention by age and total size deletes whole sealed segments, off the
//!   writer's path.
//!
//! All methods block; async callers run `Fsync` appends on a blocking pool.
//! `SegmentLog` is `Send + Sync`: share it behind an `Arc`.
//!
//! # On disk
//!
//! ```text
//! dir/LOCK                       held with File::try_lock while open
//! dir/00000000000000000007.seg   a segment: header, then frames
//! dir/00000000000000000007.idx   its sidecar, once sealed
//! dir/00000000000000000006.lz4   a sealed segment, compressed
//! ```
//!
//! - Every file starts with a 24-byte header: magic (`VIGILSEG` or
//!   `VIGILLZ4`), format version (u32), the largest payload the file may
//!   hold (u32), a CRC32C of those 16 bytes and 4 zero bytes. Any other file
//!   in the directory, or a damaged header, is refused as
//!   [`Error::Foreign`] rather than guessed at.
//! - A frame is `[len u32 LE][crc32c u32 LE][timestamp i64 LE][payload]`,
//!   the CRC32C covering the timestamp and the payload. A [`Position`] is
//!   the segment's number and the frame's offset in the uncompressed
//!   segment; it never changes, compressed or not.
//! - The sidecar (written to a `.tmp`, fsynced and renamed, after the
//!   segment itself is fsynced) holds the segment's valid length, record
//!   count, time range and a sparse time index: one entry per about
//!   `index_every_bytes` (offset, end, oldest and newest timestamp, count).
//! - A compressed segment holds one independently compressed LZ4 block per
//!   index entry (each with its own CRC32C) and the index as a footer, so a
//!   range scan decompresses only the blocks it needs. It is written to a
//!   `.tmp`, fsynced and renamed before the raw file goes.
//!
//! # Guarantees
//!
//! - An append that returned `Ok` under [`Durability::Os`] survives the
//!   death of the process (`kill -9`, a panic, an OOM kill); under
//!   [`Durability::Fsync`], or once [`SegmentLog::sync`] returned, it also
//!   survives a crash of the machine. `Os` appends reach the disk within
//!   about `fsync_interval` anyway.
//! - An append that returned an error kept nothing: a full disk
//!   ([`Error::Full`]) cuts the segment back to its last good length and
//!   fails every append of that group; the log goes on, and appends succeed
//!   again once there is space.
//! - A batch is contiguous in one segment and either wholly kept or not.
//! - Opening after a crash keeps every intact frame before the first
//!   damage that no intact frame follows (a torn tail, cut off). A damaged
//!   frame in the middle is skipped with a warning naming segment and
//!   offset and counted ([`Recovery::skipped_records`],
//!   [`ScanStats::skipped_records`]); nothing panics on what a file holds.
//! - Readers run beside the writer: a scan sees every record acknowledged
//!   before it started (up to [`SegmentLog::end`]), never a partly written
//!   one, in log order; a segment deleted by retention under a reader is
//!   finished from the open file, one deleted before the reader reached it
//!   is skipped.
//!
//! Records are never rewritten: retention drops whole sealed segments and
//! compression swaps a sealed file for an equivalent one. Unix only (the
//! reads use `pread`).

mod background;
mod compress;
mod files;
mod frame;
mod index;
mod inner;
mod reader;
mod recovery;
mod state;
mod writer;

use std::collections::VecDeque;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::inner::{Catalog, Counters, Inner};
use crate::state::{Active, Bg, Queue, lock};

/// Bytes a record takes on disk besides its payload (length, CRC32C,
/// timestamp): for callers that budget a log's size.
pub const FRAME_OVERHEAD_BYTES: u64 = frame::FRAME_HEAD as u64;

/// Bytes of the header every segment file starts with.
pub const SEGMENT_HEADER_BYTES: u64 = frame::HEADER_LEN;

/// When an append returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Durability {
    /// Once the record is written to the kernel: it survives a crash of the
    /// process (`kill -9`), and the background fsync makes it durable
    /// within `fsync_interval`.
    #[default]
    Os,
    /// Once a group `fdatasync` covering the record has finished.
    Fsync,
}

/// How sealed segments are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Compression {
    /// As written.
    #[default]
    None,
    /// Rewritten once, after sealing, as independently compressed blocks.
    Lz4,
}

/// How a log rolls, syncs and expires segments. Every field has a default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// The active segment is sealed once it reaches this size. Default: 64 MiB.
    pub segment_bytes: u64,
    /// The active segment is sealed once its first record is this old (by
    /// the wall clock of the writer). `None`: size only. Default: 1 hour.
    pub segment_age: Option<Duration>,
    /// In `os` mode, the longest time a written record waits for the
    /// background fsync. Default: 100 ms.
    pub fsync_interval: Duration,
    /// Sealed segments whose newest record is older than this are deleted.
    /// `None`: kept. Default: `None`.
    pub retain_age: Option<Duration>,
    /// The oldest sealed segments are deleted while the log is larger than
    /// this. `None`: no limit. Default: `None`.
    pub retain_bytes: Option<u64>,
    /// How sealed segments are stored. Default: [`Compression::None`].
    pub compression: Compression,
    /// The largest payload accepted, in bytes. Default: 16 MiB.
    pub max_record_bytes: u32,
    /// A sparse time-index entry is kept for about every this many bytes of
    /// a sealed segment. Default: 64 KiB.
    pub index_every_bytes: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            segment_bytes: 64 << 20,
            segment_age: Some(Duration::from_secs(3600)),
            fsync_interval: Duration::from_millis(100),
            retain_age: None,
            retain_bytes: None,
            compression: Compression::None,
            max_record_bytes: 16 << 20,
            index_every_bytes: 64 << 10,
        }
    }
}

/// Where a record lies: its segment and the byte offset of its frame in
/// the segment as written (uncompressed). Positions order like the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Position {
    /// The segment's number (its file name).
    pub segment: u64,
    /// The frame's offset in the segment.
    pub offset: u64,
}

/// One record, borrowed from a scan's buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// Where the record lies.
    pub position: Position,
    /// The timestamp given to `append`, in microseconds.
    pub timestamp_us: i64,
    /// The bytes given to `append`.
    pub payload: &'a [u8],
}

/// One record, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnedRecord {
    /// Where the record lies.
    pub position: Position,
    /// The timestamp given to `append`, in microseconds.
    pub timestamp_us: i64,
    /// The bytes given to `append`.
    pub payload: Vec<u8>,
}

/// What opening a log found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Recovery {
    /// Segments found.
    pub segments: usize,
    /// Intact records found in the segments that were checked.
    pub records: u64,
    /// Bytes of torn or corrupt tails cut off.
    pub cut_bytes: u64,
    /// Corrupt records in the middle of a segment, skipped (left in place).
    pub skipped_records: u64,
}

/// A segment as the log knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentInfo {
    /// The segment's number.
    pub id: u64,
    /// True once it is sealed (never written again).
    pub sealed: bool,
    /// Its size on disk, in bytes.
    pub bytes: u64,
    /// Intact records in it.
    pub records: u64,
    /// The oldest and newest record timestamps (`None` when empty).
    pub time_range_us: Option<(i64, i64)>,
    /// True when stored compressed.
    pub compressed: bool,
}

/// What a scan read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ScanStats {
    /// Records handed to the callback.
    pub records: u64,
    /// Payload bytes handed to the callback.
    pub payload_bytes: u64,
    /// Segment files opened.
    pub segments_opened: u64,
    /// Corrupt records skipped (with a warning naming segment and offset).
    pub skipped_records: u64,
}

/// Counters since the log was opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    /// Records appended.
    pub records_appended: u64,
    /// `write` calls made by group commits (≤ records appended).
    pub writes: u64,
    /// `fdatasync` calls, foreground and background.
    pub fsyncs: u64,
    /// Segments sealed.
    pub rolls: u64,
    /// Segments deleted (retention or [`SegmentLog::delete_before`]).
    pub segments_deleted: u64,
    /// Appends refused because the disk was full.
    pub full_errors: u64,
}

/// Errors of the segment log. Every variant names the file or directory.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Another process holds the directory's lock.
    #[error("segment log {dir} is locked by another process (lock file {dir}/LOCK)")]
    Locked {
        /// The directory.
        dir: PathBuf,
    },
    /// A file in the directory is not one of the log's, or a segment's
    /// header is not the log's.
    #[error("{path}: not a segment log file ({reason})")]
    Foreign {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The disk is full: nothing of the failed append was kept, and later
    /// appends succeed again once there is space.
    #[error("segment log {dir}: no space left on the device")]
    Full {
        /// The directory.
        dir: PathBuf,
    },
    /// A payload is larger than `max_record_bytes`.
    #[error("record of {len} bytes exceeds the limit of {max} bytes")]
    TooLarge {
        /// The payload's length.
        len: usize,
        /// The limit.
        max: u32,
    },
    /// Any other I/O failure.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
}

/// The segment log's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An open segment log: the directory's one writer, and any number of
/// concurrent readers.
#[derive(Debug)]
pub struct SegmentLog {
    inner: Arc<Inner>,
    background: Option<JoinHandle<()>>,
}

impl SegmentLog {
    /// Opens (creating if needed) the log in `dir`: takes the lock file,
    /// checks every segment from its last known-good point, cuts torn tails
    /// and starts the background thread (fsync, roll by age, retention,
    /// compression). An unreadable or foreign file in `dir` is an error
    /// naming it.
    pub fn open(dir: impl AsRef<Path>, options: Options) -> Result<(SegmentLog, Recovery)> {
        let dir = dir.as_ref().to_owned();
        let opened = recovery::open(&dir, &options)?;
        let recovery = opened.recovery;
        let active_len = opened
            .segs
            .get(&opened.active_id)
            .map_or(frame::HEADER_LEN, |m| m.len);
        let records = opened.active_builder.index().records;
        let inner = Arc::new(Inner {
            catalog: Mutex::new(Catalog {
                segs: opened.segs,
                end: Position {
                    segment: opened.active_id,
                    offset: active_len,
                },
            }),
            queue: Mutex::new(Queue::new(opened.active_id, active_len, records)),
            active: Mutex::new(Active {
                id: opened.active_id,
                file: Arc::new(opened.active_file),
                len: active_len,
                builder: opened.active_builder,
                written_seq: 0,
                failures: VecDeque::new(),
                unsynced: Vec::new(),
                dir_dirty: false,
                taken: Vec::new(),
                spare_bufs: Vec::new(),
                writes: 0,
                records_appended: 0,
            }),
            written_seq: AtomicU64::new(0),
            failed_hi: AtomicU64::new(0),
            synced_seq: AtomicU64::new(0),
            sync_lock: Mutex::new(()),
            files_lock: Mutex::new(()),
            counters: Counters::default(),
            bg: Bg::default(),
            _lock: opened.lock,
            opts: options,
            dir,
        });
        let bg = Arc::clone(&inner);
        let background = std::thread::Builder::new()
            .name("vigil-segments".to_owned())
            .spawn(move || background::run(bg))
            .map_err(files::io_err(&inner.dir))?;
        Ok((
            SegmentLog {
                inner,
                background: Some(background),
            },
            recovery,
        ))
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Appends one record; see [`SegmentLog::append_batch`].
    pub fn append(
        &self,
        timestamp_us: i64,
        payload: &[u8],
        durability: Durability,
    ) -> Result<Position> {
        let mut at = Position::default();
        self.inner
            .append_with(&[(timestamp_us, payload)], durability, |p| at = p)?;
        Ok(at)
    }

    /// Appends records in order, contiguously in one segment, in one group
    /// commit with whatever other appenders queued meanwhile; returns each
    /// record's position. On an error nothing of the batch is kept.
    pub fn append_batch(
        &self,
        records: &[(i64, &[u8])],
        durability: Durability,
    ) -> Result<Vec<Position>> {
        let mut out = Vec::with_capacity(records.len());
        self.inner
            .append_with(records, durability, |p| out.push(p))?;
        Ok(out)
    }

    /// Makes everything written so far durable (one `fdatasync`, shared
    /// with concurrent callers; nothing to do when nothing was written).
    pub fn sync(&self) -> Result<()> {
        self.inner.sync_all()
    }

    /// The position just after the last appended record: a scan from an
    /// earlier position ends there.
    pub fn end(&self) -> Position {
        lock(&self.inner.catalog).end
    }

    /// The record at `position`, if it is there and intact.
    pub fn read_at(&self, position: Position) -> Result<Option<OwnedRecord>> {
        self.inner.read_at_impl(position)
    }

    /// Calls `f` with every record whose timestamp lies in
    /// `from_us..to_us`, in log order, opening only segments whose time
    /// range overlaps it; stops early when `f` breaks.
    pub fn scan(
        &self,
        from_us: i64,
        to_us: i64,
        f: impl FnMut(Record<'_>) -> ControlFlow<()>,
    ) -> Result<ScanStats> {
        self.inner.scan_impl(from_us, to_us, f)
    }

    /// Calls `f` with every record at or after `from`, in log order, up to
    /// [`SegmentLog::end`] as of the call (the active segment included).
    pub fn scan_from(
        &self,
        from: Position,
        f: impl FnMut(Record<'_>) -> ControlFlow<()>,
    ) -> Result<ScanStats> {
        self.inner.scan_from_impl(from, f)
    }

    /// Seals the active segment now if it holds a record; returns its id.
    /// The next append starts a new segment.
    pub fn roll(&self) -> Result<Option<u64>> {
        self.inner.roll_now()
    }

    /// Deletes every sealed segment numbered below `position.segment`
    /// (whole files; readers that have one open finish reading it);
    /// returns how many were deleted.
    pub fn delete_before(&self, position: Position) -> Result<u64> {
        let ids: Vec<u64> = lock(&self.inner.catalog)
            .segs
            .range(..position.segment)
            .filter(|(_, m)| m.sealed)
            .map(|(id, _)| *id)
            .collect();
        Ok(self.inner.delete_segments(&ids))
    }

    /// The segments, oldest first (the active one last).
    pub fn segments(&self) -> Vec<SegmentInfo> {
        let c = lock(&self.inner.catalog);
        c.segs
            .range(..=c.end.segment)
            .map(|(_, m)| m.info())
            .collect()
    }

    /// The size of all segments, in bytes.
    pub fn total_bytes(&self) -> u64 {
        lock(&self.inner.catalog).total_bytes()
    }

    /// The counters.
    pub fn stats(&self) -> Stats {
        let (records, writes) = {
            let a = lock(&self.inner.active);
            (a.records_appended, a.writes)
        };
        self.inner.counters.snapshot(records, writes)
    }

    /// How many times the background thread has woken from a wait: an idle
    /// log adds none.
    pub fn background_wakeups(&self) -> u64 {
        self.inner.bg.wakeups.load(Ordering::Relaxed)
    }
}

impl Drop for SegmentLog {
    /// Stops the background thread (which fsyncs what was written) and
    /// releases the directory's lock.
    fn drop(&mut self) {
        self.inner.bg.stop();
        if let Some(handle) = self.background.take()
            && handle.join().is_err()
        {
            tracing::error!(dir = %self.inner.dir.display(), "the segment log's background thread panicked");
        }
    }
}

#[cfg(test)]
mod tests;
