//! The parts of an open log's shared state that its workers own: the
//! writer's queue and active segment, and the background thread's signal.
//! They hold no reference to the log itself, so `inner.rs` (which holds
//! them) and `writer.rs` / `background.rs` (which work on them) import
//! this module and never each other in a circle.

use std::collections::VecDeque;
use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::Instant;

use crate::frame::HEADER_LEN;
use crate::index::{IndexBuilder, SegIndex};
use crate::{Error, Result};

/// Locks a mutex, carrying on if a holder panicked: every critical section
/// leaves its state consistent before anything in it can panic.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Framed records for one segment, waiting for a group write.
#[derive(Debug)]
pub(crate) struct Chunk {
    pub seg: u64,
    pub buf: Vec<u8>,
    /// The last sequence number whose bytes are in `buf`.
    pub last_seq: u64,
    /// Appends (batches) in `buf`.
    pub batches: u64,
}

/// The queue of framed bytes and the logical tail of the log.
#[derive(Debug)]
pub(crate) struct Queue {
    /// The last sequence number handed out.
    pub seq: u64,
    pub chunks: Vec<Chunk>,
    /// Where the next record goes: segment and offset.
    pub tail_seg: u64,
    pub tail_len: u64,
    /// Records in the tail segment, written or queued.
    pub tail_records: u64,
    /// When the tail segment's first record arrived (for roll by age).
    pub tail_first: Option<Instant>,
    /// Emptied buffers, reused.
    pub spare: Vec<Vec<u8>>,
}

impl Queue {
    pub(crate) fn new(tail_seg: u64, tail_len: u64, tail_records: u64) -> Queue {
        Queue {
            seq: 0,
            chunks: Vec::new(),
            tail_seg,
            tail_len,
            tail_records,
            tail_first: (tail_records > 0).then(Instant::now),
            spare: Vec::new(),
        }
    }

    /// Starts the next segment: later records go there.
    pub(crate) fn roll(&mut self) {
        self.tail_seg += 1;
        self.tail_len = HEADER_LEN;
        self.tail_records = 0;
        self.tail_first = None;
        self.push_chunk();
    }

    /// Starts a chunk for the tail segment, reusing a spare buffer.
    fn push_chunk(&mut self) {
        let buf = self.spare.pop().unwrap_or_default();
        self.chunks.push(Chunk {
            seg: self.tail_seg,
            buf,
            last_seq: self.seq,
            batches: 0,
        });
    }

    pub(crate) fn tail_chunk(&mut self) -> &mut Chunk {
        if self.chunks.last().is_none_or(|c| c.seg != self.tail_seg) {
            self.push_chunk();
        }
        let last = self.chunks.len() - 1;
        &mut self.chunks[last]
    }

    pub(crate) fn recycle(&mut self, mut buf: Vec<u8>) {
        // Keep a few moderate buffers; drop one that grew huge.
        if self.spare.len() < 4 && buf.capacity() <= 8 << 20 {
            buf.clear();
            self.spare.push(buf);
        }
    }
}

/// Why a group write failed, kept for every append of the group.
#[derive(Debug, Clone)]
pub(crate) enum Failure {
    Full,
    Io(PathBuf, io::ErrorKind, String),
}

impl Failure {
    pub(crate) fn error(&self, dir: &std::path::Path) -> Error {
        match self {
            Failure::Full => Error::Full {
                dir: dir.to_owned(),
            },
            Failure::Io(path, kind, msg) => Error::Io {
                path: path.clone(),
                source: io::Error::new(*kind, msg.clone()),
            },
        }
    }

    pub(crate) fn of(path: PathBuf, e: &io::Error) -> Failure {
        // ENOSPC, EDQUOT, or a write that stopped short.
        let full = matches!(
            e.kind(),
            io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded | io::ErrorKind::WriteZero
        );
        if full {
            Failure::Full
        } else {
            Failure::Io(path, e.kind(), e.to_string())
        }
    }
}

/// The active segment, owned by whoever holds the writer's lock.
#[derive(Debug)]
pub(crate) struct Active {
    pub id: u64,
    pub file: Arc<File>,
    /// Bytes written (all of them intact frames, after the header).
    pub len: u64,
    pub builder: IndexBuilder,
    /// The last sequence number written or failed.
    pub written_seq: u64,
    /// Failed sequence ranges (inclusive) and why.
    pub failures: VecDeque<(u64, u64, Failure)>,
    /// Sealed segments' files not yet fsynced by [`Inner::sync_to`].
    pub unsynced: Vec<Arc<File>>,
    /// A segment file was created since the directory was last fsynced.
    pub dir_dirty: bool,
    /// The chunks of the group being written (kept for their capacity).
    pub taken: Vec<Chunk>,
    /// Buffers of the last group, handed back to the queue at the next.
    pub spare_bufs: Vec<Vec<u8>>,
    /// `write` calls and records written, for [`crate::Stats`].
    pub writes: u64,
    pub records_appended: u64,
}

impl Active {
    pub(crate) fn outcome(&self, seq: u64, dir: &std::path::Path) -> Result<()> {
        for (lo, hi, why) in self.failures.iter().rev() {
            if (*lo..=*hi).contains(&seq) {
                return Err(why.error(dir));
            }
            if *hi < seq {
                break;
            }
        }
        Ok(())
    }
}

/// A segment just sealed by the writer, to be made durable and indexed.
#[derive(Debug)]
pub(crate) struct SealJob {
    pub id: u64,
    pub file: Arc<File>,
    pub index: Arc<SegIndex>,
}

#[derive(Debug, Default)]
pub(crate) struct State {
    pub kicked: bool,
    pub stop: bool,
    pub seals: Vec<SealJob>,
}

/// How the log talks to its background thread.
#[derive(Debug, Default)]
pub(crate) struct Bg {
    pub state: Mutex<State>,
    pub cv: Condvar,
    /// Written since the last background fsync.
    pub dirty: AtomicBool,
    /// Times the thread woke from a wait.
    pub wakeups: AtomicU64,
}

impl Bg {
    /// Wakes the thread to look at its deadlines again.
    pub(crate) fn kick(&self) {
        lock(&self.state).kicked = true;
        self.cv.notify_one();
    }

    /// Notes a write; wakes the thread only when it was clean.
    pub(crate) fn note_written(&self) {
        if !self.dirty.load(Ordering::SeqCst) && !self.dirty.swap(true, Ordering::SeqCst) {
            self.kick();
        }
    }

    pub(crate) fn push_seal(&self, job: SealJob) {
        let mut s = lock(&self.state);
        s.seals.push(job);
        s.kicked = true;
        drop(s);
        self.cv.notify_one();
    }

    pub(crate) fn stop(&self) {
        lock(&self.state).stop = true;
        self.cv.notify_one();
    }
}
