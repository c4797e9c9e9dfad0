//! Appends: framing into a shared queue, group commit, rolls by size and
//! shared fsyncs.
//!
//! An appender frames its records into the queue under a short mutex and
//! gets a sequence number and its positions (the queue knows where the
//! tail of the log will be). It then takes the writer's lock: if its
//! sequence is already written, someone else's group carried it; otherwise
//! it takes everything queued and writes it in one `write` per segment.

use std::fs::OpenOptions;
use std::io::{self, Write};
use std::mem;
use std::sync::atomic::Ordering;
use std::sync::{Arc, TryLockError};
use std::time::Instant;

use crate::files::{self, Kind};
use crate::frame::{self, FRAME_HEAD, HEADER_LEN, SEG_MAGIC};
use crate::index::IndexBuilder;
use crate::inner::{Counters, Inner, SegMeta};
use crate::state::{Active, Failure, SealJob, lock};
use crate::{Durability, Error, Position, Result};

/// How many failed sequence ranges are remembered for late waiters.
const MAX_FAILURES: usize = 4096;

/// How often a waiter yields to a write in flight before it sleeps on the
/// writer's lock.
const MAX_YIELDS: u32 = 200;

impl Inner {
    /// Frames `records` into the queue, reports each one's position to
    /// `pos`, and returns once the group write (and, for
    /// [`Durability::Fsync`], the fsync) carrying them is done.
    pub(crate) fn append_with(
        &self,
        records: &[(i64, &[u8])],
        durability: Durability,
        mut pos: impl FnMut(Position),
    ) -> Result<()> {
        let max = self.opts.max_record_bytes;
        let mut bytes = 0u64;
        for (_, p) in records {
            if p.len() > max as usize {
                return Err(Error::TooLarge { len: p.len(), max });
            }
            bytes += (FRAME_HEAD + p.len()) as u64;
        }
        if records.is_empty() {
            return Ok(());
        }
        // The CRC of a single record is computed before the queue's lock.
        let single_crc = match records {
            [(ts, p)] => Some(frame::frame_crc(*ts, p)),
            _ => None,
        };
        let (seq, first) = {
            let mut q = lock(&self.queue);
            if q.tail_records > 0 && q.tail_len + bytes > self.opts.segment_bytes {
                q.roll();
            }
            let seg = q.tail_seg;
            let mut offset = q.tail_len;
            let chunk = q.tail_chunk();
            for (ts, p) in records {
                pos(Position {
                    segment: seg,
                    offset,
                });
                let crc = single_crc.unwrap_or_else(|| frame::frame_crc(*ts, p));
                frame::encode_with_crc(&mut chunk.buf, *ts, p, crc);
                offset += (FRAME_HEAD + p.len()) as u64;
            }
            chunk.batches += 1;
            q.seq += 1;
            let seq = q.seq;
            let last = q.chunks.len() - 1;
            q.chunks[last].last_seq = seq;
            q.tail_len = offset;
            q.tail_records += records.len() as u64;
            let first = q.tail_first.is_none();
            if first {
                q.tail_first = Some(Instant::now());
            }
            (seq, first)
        };
        if first && self.opts.segment_age.is_some() {
            self.bg.kick();
        }
        self.wait_written(seq)?;
        if durability == Durability::Fsync {
            self.sync_to(seq)?;
        }
        Ok(())
    }

    /// Seals the tail segment if it holds a record; returns its id.
    pub(crate) fn roll_now(&self) -> Result<Option<u64>> {
        let (old, seq) = {
            let mut q = lock(&self.queue);
            if q.tail_records == 0 {
                return Ok(None);
            }
            let old = q.tail_seg;
            q.seq += 1;
            q.roll();
            let seq = q.seq;
            let last = q.chunks.len() - 1;
            q.chunks[last].last_seq = seq;
            (old, seq)
        };
        self.wait_written(seq)?;
        Ok(Some(old))
    }

    /// Returns once `seq` is written, writing the queue if nobody has.
    ///
    /// While another appender's write is in flight, waiters yield rather
    /// than sleep on the lock: they stay runnable, so appenders that come
    /// meanwhile queue behind the write and the next group carries them
    /// all, and nobody pays a futex sleep and wake per record.
    fn wait_written(&self, seq: u64) -> Result<()> {
        let mut yields = 0u32;
        loop {
            if self.written_seq.load(Ordering::Acquire) >= seq {
                // Failures are published before `written_seq`.
                if self.failed_hi.load(Ordering::Acquire) < seq {
                    return Ok(());
                }
                return lock(&self.active).outcome(seq, &self.dir);
            }
            let guard = match self.active.try_lock() {
                Ok(g) => Some(g),
                Err(TryLockError::Poisoned(p)) => Some(p.into_inner()),
                Err(TryLockError::WouldBlock) if yields >= MAX_YIELDS => Some(lock(&self.active)),
                Err(TryLockError::WouldBlock) => None,
            };
            match guard {
                Some(mut a) => {
                    if a.written_seq < seq {
                        self.write_group(&mut a);
                    }
                    return a.outcome(seq, &self.dir);
                }
                None => {
                    yields += 1;
                    std::thread::yield_now();
                }
            }
        }
    }

    /// Writes everything queued: one `write` per segment.
    fn write_group(&self, a: &mut Active) {
        let mut upto;
        {
            let mut q = lock(&self.queue);
            // Hand back the last group's buffers and take this group.
            for b in a.spare_bufs.drain(..) {
                q.recycle(b);
            }
            mem::swap(&mut q.chunks, &mut a.taken);
            upto = q.seq;
        }
        let mut taken = mem::take(&mut a.taken);
        let mut ok_upto = a.written_seq;
        let mut records = 0u64;
        let mut failure: Option<(Failure, usize)> = None;
        for (i, chunk) in taken.iter().enumerate() {
            if chunk.seg != a.id
                && let Err(f) = self.open_next(a, chunk.seg)
            {
                failure = Some((f, i));
                break;
            }
            if !chunk.buf.is_empty() {
                if let Err(e) = (&*a.file).write_all(&chunk.buf) {
                    let path = files::path(&self.dir, a.id, Kind::Seg);
                    // Keep nothing of the group: cut back to the last good length.
                    if let Err(cut) = a.file.set_len(a.len) {
                        tracing::error!(segment = %path.display(), error = %cut, "cannot cut a failed write back");
                    }
                    failure = Some((Failure::of(path, &e), i));
                    break;
                }
                a.writes += 1;
                records += index_frames(&mut a.builder, a.len, &chunk.buf);
                a.len += chunk.buf.len() as u64;
            }
            ok_upto = chunk.last_seq;
        }
        if let Some((why, at)) = failure {
            let mut batches: u64 = taken[at..].iter().map(|c| c.batches).sum();
            let mut q = lock(&self.queue);
            // Every append queued after the failure was placed behind the
            // lost bytes: fail them too and put the tail back.
            for c in q.chunks.drain(..) {
                batches += c.batches;
                a.spare_bufs.push(c.buf);
            }
            upto = q.seq;
            q.tail_seg = a.id;
            q.tail_len = a.len;
            q.tail_records = a.builder.index().records;
            if q.tail_records == 0 {
                q.tail_first = None;
            }
            drop(q);
            if matches!(why, Failure::Full) {
                Counters::add(&self.counters.full_errors, batches);
            }
            tracing::warn!(dir = %self.dir.display(), failure = ?why, appends = batches, "group write failed");
            match a.failures.back_mut() {
                Some(last)
                    if last.1 == ok_upto
                        && matches!((&last.2, &why), (Failure::Full, Failure::Full)) =>
                {
                    last.1 = upto;
                }
                _ => a.failures.push_back((ok_upto + 1, upto, why)),
            }
            if a.failures.len() > MAX_FAILURES {
                a.failures.pop_front();
            }
            self.failed_hi.fetch_max(upto, Ordering::AcqRel);
        }
        for c in taken.drain(..) {
            a.spare_bufs.push(c.buf);
        }
        a.taken = taken;
        a.records_appended += records;
        {
            let mut c = lock(&self.catalog);
            let ix = a.builder.index();
            if let Some(m) = c.segs.get_mut(&a.id) {
                m.len = a.len;
                m.disk_bytes = a.len;
                m.records = ix.records;
                m.time = ix.time;
            }
            c.end = Position {
                segment: a.id,
                offset: a.len,
            };
        }
        // Published after the catalog: a returned append is in `end()`.
        // SeqCst pairs with the background thread's clearing of `dirty`
        // before it reads `written_seq`: one of the two sees the other.
        a.written_seq = upto;
        self.written_seq.store(upto, Ordering::SeqCst);
        if records > 0 {
            self.bg.note_written();
        }
    }

    /// Creates segment `id`, makes it active and hands the old one to the
    /// background thread for sealing (fsync, index sidecar).
    fn open_next(&self, a: &mut Active, id: u64) -> Result<(), Failure> {
        let path = files::path(&self.dir, id, Kind::Seg);
        let header = frame::file_header(SEG_MAGIC, self.opts.max_record_bytes);
        let created = (|| {
            let open = || {
                OpenOptions::new()
                    .read(true)
                    .append(true)
                    .create_new(true)
                    .open(&path)
            };
            let mut f = match open() {
                // A leftover of a failed roll: nothing of it was acknowledged.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    std::fs::remove_file(&path)?;
                    open()?
                }
                other => other?,
            };
            if let Err(e) = f.write_all(&header) {
                let _ = std::fs::remove_file(&path);
                return Err(e);
            }
            Ok(f)
        })();
        let file = Arc::new(created.map_err(|e| Failure::of(path.clone(), &e))?);
        let old_file = mem::replace(&mut a.file, file);
        let builder = IndexBuilder::new(self.opts.index_every_bytes);
        let old_index = Arc::new(mem::replace(&mut a.builder, builder).finish());
        let old_id = mem::replace(&mut a.id, id);
        let old_len = mem::replace(&mut a.len, HEADER_LEN);
        a.unsynced.push(Arc::clone(&old_file));
        a.dir_dirty = true;
        {
            let mut c = lock(&self.catalog);
            if let Some(m) = c.segs.get_mut(&old_id) {
                // This group may have written to it before rolling.
                m.len = old_len;
                m.disk_bytes = old_len;
                m.records = old_index.records;
                m.time = old_index.time;
                m.sealed = true;
                m.index = Some(Arc::clone(&old_index));
            }
            c.segs
                .insert(id, SegMeta::empty(id, self.opts.max_record_bytes));
        }
        Counters::add(&self.counters.rolls, 1);
        self.bg.push_seal(SealJob {
            id: old_id,
            file: old_file,
            index: old_index,
        });
        Ok(())
    }

    /// Returns once everything up to `seq` is durable: one fsync serves
    /// every caller queued meanwhile.
    pub(crate) fn sync_to(&self, seq: u64) -> Result<()> {
        if self.synced_seq.load(Ordering::Acquire) >= seq {
            return Ok(());
        }
        let _g = lock(&self.sync_lock);
        if self.synced_seq.load(Ordering::Acquire) >= seq {
            return Ok(());
        }
        let (target, files, dir_dirty) = {
            let mut a = lock(&self.active);
            let mut files = mem::take(&mut a.unsynced);
            files.push(Arc::clone(&a.file));
            (a.written_seq, files, mem::take(&mut a.dir_dirty))
        };
        for f in &files {
            f.sync_data().map_err(files::io_err(&self.dir))?;
            Counters::add(&self.counters.fsyncs, 1);
        }
        if dir_dirty {
            files::sync_dir(&self.dir).map_err(files::io_err(&self.dir))?;
        }
        self.synced_seq.fetch_max(target, Ordering::AcqRel);
        Ok(())
    }

    /// Makes everything written so far durable.
    pub(crate) fn sync_all(&self) -> Result<()> {
        self.sync_to(self.written_seq.load(Ordering::SeqCst))
    }
}

/// Adds the frames of a buffer just written at `base` to the index;
/// returns how many there were.
fn index_frames(builder: &mut IndexBuilder, base: u64, buf: &[u8]) -> u64 {
    let mut off = 0usize;
    let mut n = 0;
    while off + FRAME_HEAD <= buf.len() {
        let len = frame::le_u32(&buf[off..]) as usize;
        let ts = frame::le_i64(&buf[off + 8..]);
        builder.add(base + off as u64, ts, (FRAME_HEAD + len) as u64);
        off += FRAME_HEAD + len;
        n += 1;
    }
    n
}
