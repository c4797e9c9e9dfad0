//! The background thread: fsync in `os` mode, sealing (fsync and index
//! sidecar), roll by age, retention and compression.
//!
//! It sleeps on a condition variable with no timeout while it has nothing
//! to do: an idle log causes no wakeups. Its only timed waits are real
//! deadlines (the next fsync, the active segment's age, the oldest
//! segment's expiry).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::Compression;
use crate::files::{self, Kind};
use crate::inner::{Counters, Inner};
use crate::state::{SealJob, lock};

/// How long a failed roll by age waits before it is tried again.
const ROLL_RETRY: Duration = Duration::from_secs(1);

/// Microseconds since the Unix epoch, now.
fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros().min(i64::MAX as u128) as i64)
}

/// The background thread's body.
pub(crate) fn run(inner: Arc<Inner>) {
    let interval = inner.opts.fsync_interval;
    let mut last_sync: Option<Instant> = None;
    let mut first = true;
    let mut roll_retry: Option<Instant> = None;
    loop {
        let (stop, seals) = {
            let mut s = lock(&inner.bg.state);
            s.kicked = false;
            (s.stop, std::mem::take(&mut s.seals))
        };
        let sealed = !seals.is_empty();
        for job in seals {
            inner.seal(job);
        }
        if stop {
            if let Err(e) = inner.sync_all() {
                tracing::error!(error = %e, "final fsync of the segment log failed");
            }
            return;
        }

        let now = Instant::now();
        let mut deadline: Option<Instant> = None;
        let mut at = |d: Instant| deadline = Some(deadline.map_or(d, |x| x.min(d)));
        if inner.bg.dirty.load(Ordering::Acquire) {
            let due = last_sync.map_or(now, |t| t + interval);
            if now >= due {
                inner.bg.dirty.store(false, Ordering::SeqCst);
                if let Err(e) = inner.sync_all() {
                    tracing::error!(error = %e, "background fsync of the segment log failed");
                }
                last_sync = Some(now);
            } else {
                at(due);
            }
        }
        if let Some(age) = inner.opts.segment_age {
            let first = lock(&inner.queue).tail_first;
            if let Some(first) = first {
                let due = (first + age).max(roll_retry.unwrap_or(now));
                if now >= due {
                    match inner.roll_now() {
                        Ok(Some(_)) => roll_retry = None,
                        Ok(None) => roll_retry = Some(now + age),
                        Err(e) => {
                            // A full disk: try again later, not in a loop.
                            tracing::warn!(error = %e, "rolling the segment log by age failed");
                            roll_retry = Some(now + ROLL_RETRY);
                        }
                    }
                    continue;
                }
                at(due);
            }
        }
        if first && inner.opts.compression == Compression::Lz4 {
            // Segments sealed before a restart and not yet compressed.
            let raw: Vec<u64> = lock(&inner.catalog)
                .segs
                .values()
                .filter(|m| m.sealed && !m.compressed)
                .map(|m| m.id)
                .collect();
            for id in raw {
                inner.compress_segment(id);
            }
        }
        if sealed || first || inner.opts.retain_age.is_some() {
            first = false;
            if let Some(d) = inner.retain() {
                at(now + d);
            }
        }

        let mut s = lock(&inner.bg.state);
        if s.kicked || s.stop {
            continue;
        }
        s = match deadline {
            None => inner.bg.cv.wait(s).unwrap_or_else(|p| p.into_inner()),
            Some(d) => {
                let wait = d.saturating_duration_since(Instant::now());
                inner
                    .bg
                    .cv
                    .wait_timeout(s, wait)
                    .unwrap_or_else(|p| p.into_inner())
                    .0
            }
        };
        drop(s);
        inner.bg.wakeups.fetch_add(1, Ordering::Relaxed);
    }
}

impl Inner {
    /// Makes a sealed segment durable and writes its index sidecar.
    fn seal(&self, job: SealJob) {
        let seg = files::path(&self.dir, job.id, Kind::Seg);
        if let Err(e) = job.file.sync_data() {
            // Without durable bytes no sidecar may claim them; the next
            // open scans the segment instead.
            tracing::error!(segment = %seg.display(), error = %e, "fsync of a sealed segment failed");
            return;
        }
        Counters::add(&self.counters.fsyncs, 1);
        let idx = files::path(&self.dir, job.id, Kind::Idx);
        let tmp = files::tmp_path(&self.dir, job.id, Kind::Idx);
        {
            let _files = lock(&self.files_lock);
            if !lock(&self.catalog).segs.contains_key(&job.id) {
                return; // deleted meanwhile
            }
            if let Err(e) = files::write_atomic(&self.dir, &tmp, &idx, &job.index.encode()) {
                tracing::warn!(index = %idx.display(), error = %e, "writing an index sidecar failed");
                return;
            }
        }
        if self.opts.compression == Compression::Lz4 {
            self.compress_segment(job.id);
        }
    }

    /// Deletes sealed segments past the retention limits; returns when the
    /// oldest remaining one expires by age.
    pub(crate) fn retain(&self) -> Option<Duration> {
        let (victims, next) = {
            let c = lock(&self.catalog);
            let mut victims = Vec::new();
            let mut next_us: Option<i64> = None;
            if let Some(age) = self.opts.retain_age {
                let cutoff = now_us().saturating_sub(age.as_micros().min(i64::MAX as u128) as i64);
                for m in c.segs.values().filter(|m| m.sealed) {
                    match m.time {
                        Some((_, newest)) if newest >= cutoff => {
                            let left = newest - cutoff + 1;
                            next_us = Some(next_us.map_or(left, |n| n.min(left)));
                        }
                        _ => victims.push(m.id),
                    }
                }
            }
            if let Some(limit) = self.opts.retain_bytes {
                let mut total: u64 = c
                    .segs
                    .values()
                    .filter(|m| !victims.contains(&m.id))
                    .map(|m| m.disk_bytes)
                    .sum();
                for m in c.segs.values().filter(|m| m.sealed) {
                    if total <= limit {
                        break;
                    }
                    if !victims.contains(&m.id) {
                        victims.push(m.id);
                        total -= m.disk_bytes;
                    }
                }
            }
            (victims, next_us)
        };
        if !victims.is_empty() {
            self.delete_segments(&victims);
        }
        next.map(|us| Duration::from_micros(us.max(0) as u64))
    }

    /// Deletes sealed segments (whole files); returns how many went.
    pub(crate) fn delete_segments(&self, ids: &[u64]) -> u64 {
        let _files = lock(&self.files_lock);
        let gone: Vec<u64> = {
            let mut c = lock(&self.catalog);
            ids.iter()
                .filter(|id| c.segs.get(id).is_some_and(|m| m.sealed))
                .copied()
                .collect::<Vec<_>>()
                .into_iter()
                .filter(|id| c.segs.remove(id).is_some())
                .collect()
        };
        Counters::add(&self.counters.segments_deleted, gone.len() as u64);
        for id in &gone {
            for kind in [Kind::Seg, Kind::Idx, Kind::Lz4] {
                let p = files::path(&self.dir, *id, kind);
                if let Err(e) = files::remove_if_exists(&p) {
                    tracing::warn!(file = %p.display(), error = %e, "deleting a segment file failed");
                }
            }
        }
        gone.len() as u64
    }
}
