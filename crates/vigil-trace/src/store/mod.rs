//! The embedded trace store, on the segment log (`vigil-segments`).
//!
//! ```text
//! dir/spans/       segment log: one record per trace per batch holding
//!                  its spans, timestamp = the first start among them
//! dir/summaries/   segment log: one TraceSummary per trace per batch,
//!                  same timestamp
//! dir/ids/         one trace-id index per sealed span segment (see `ids`)
//! ```
//!
//! - **Write path**: [`TraceStore::append`] groups a batch by trace and
//!   encodes each ([`PreparedTraces`]; Vigil's own traces come encoded by
//!   the thread that recorded them, to [`TraceStore::append_prepared`]),
//!   writes each trace's spans as one record (one segment-log batch for
//!   all), records each trace's record in the id index, then writes one
//!   summary per trace. A
//!   crash between the two leaves spans that `get` finds and `search` does
//!   not; never a summary without its spans. Records use the binary codec
//!   of `codec` (smaller and faster to decode than JSON).
//! - **Search** reads summaries only, newest segment first, and opens only
//!   segments whose time range meets the query's (the segment log's time
//!   index): see [`TraceStore::search`].
//! - **Get** probes the id index of each segment (a binary search in
//!   memory), skipping, for ids Vigil made (`TraceId::epoch_s` within the
//!   stored time range), the segments that ended over an hour before the
//!   trace began; then reads just the frames of the trace's runs. If the
//!   time-limited probe finds nothing, it probes every segment (a random
//!   id can look like a time).
//! - **Retention**: whole segments, in the segment log's background thread
//!   (by age of the newest record, and a size cap split 7/8 for spans and
//!   1/8 for summaries), never under the writer's lock; [`TraceStore::expire`]
//!   applies the same limits for a given `now` (and the size cap over the
//!   whole store) on demand.
//! - **Crash safety** is the segment log's: appends acknowledged under
//!   `os` durability survive `kill -9`, torn tails are cut on open, and a
//!   missing or damaged id index is rebuilt from its segment.
//! - **Threads**: `append` from one writer (others wait for its lock);
//!   `get`, `search` and `stats` from any thread at the same time.

mod codec;
mod ids;
mod prepared;
#[cfg(test)]
pub(crate) use codec::tests as codec_tests;
mod search;

use std::collections::{HashMap, HashSet};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, RwLock};
use std::time::Duration;

use vigil_segments::{
    Compression, Durability, FRAME_OVERHEAD_BYTES, Options, Position, SegmentLog,
};

use crate::model::{Span, TraceId};

pub use prepared::PreparedTraces;
pub use search::{Cursor, Page};

/// How the store writes and keeps its segments. Every field has a default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// Traces whose newest span started longer ago than this are dropped
    /// (whole segments). Default: 30 days (§6).
    pub retain_age: Duration,
    /// The store is kept under about this many bytes by dropping its
    /// oldest segments. `None`: no cap. Default: `None`.
    pub retain_bytes: Option<u64>,
    /// Let the segment logs' background threads apply the retention by the
    /// wall clock. Off, only [`TraceStore::expire`] does. Default: on.
    pub background_retention: bool,
    /// A segment is sealed at this size. Default: 64 MiB.
    pub segment_bytes: u64,
    /// ... or once its first record is this old. Default: 1 hour.
    pub segment_age: Duration,
    /// When an append returns. Default: `os` (survives `kill -9`).
    pub durability: Durability,
    /// The background fsync's interval in `os` mode. Default: 1 s.
    pub fsync_interval: Duration,
    /// How sealed segments are stored. Default: LZ4 blocks.
    pub compression: Compression,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            retain_age: Duration::from_secs(30 * 86_400),
            retain_bytes: None,
            background_retention: true,
            segment_bytes: 64 << 20,
            segment_age: Duration::from_secs(3600),
            durability: Durability::Os,
            fsync_interval: Duration::from_secs(1),
            compression: Compression::Lz4,
        }
    }
}

/// What goes wrong in the trace store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The span or summary segment log.
    #[error("{0}")]
    Storage(#[from] vigil_segments::Error),
    /// A cursor that is not one this store handed out.
    #[error("cursor: {0}")]
    BadCursor(String),
    /// The store's directories.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
}

/// The trace store's result type.
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// What the store holds and has dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StoreStats {
    /// Spans stored.
    pub spans: u64,
    /// Trace summaries stored (one per trace per batch).
    pub summaries: u64,
    /// Traces in the id index (distinct per segment; a trace written in
    /// batches that landed in two segments counts twice).
    pub traces: u64,
    /// Bytes on disk (segments and id indexes).
    pub bytes: u64,
    /// The oldest span start stored, µs since the epoch.
    pub oldest_us: Option<i64>,
    /// Segments dropped by retention since open (spans and summaries).
    pub expired_segments: u64,
    /// Spans dropped by retention since open.
    pub expired_spans: u64,
    /// Records that did not decode and were skipped (a bug, not damage:
    /// the segment log checks every record's CRC).
    pub corrupt_records: u64,
}

/// A point in the span log (see [`TraceStore::spans_end`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SpanMark(Position);

/// The trace store in one directory: one writer, any number of readers.
#[derive(Debug)]
pub struct TraceStore {
    spans: SegmentLog,
    summaries: SegmentLog,
    ids_dir: PathBuf,
    ids: RwLock<ids::IdIndex>,
    options: StoreOptions,
    writer: Mutex<()>,
    expired_spans: AtomicU64,
    corrupt: AtomicU64,
}

impl TraceStore {
    /// Opens (or creates) the store in `dir`: opens both segment logs
    /// (cutting torn tails) and loads, or rebuilds, the id index.
    pub fn open(dir: impl AsRef<Path>, options: StoreOptions) -> Result<TraceStore> {
        let dir = dir.as_ref();
        let ids_dir = dir.join("ids");
        std::fs::create_dir_all(&ids_dir).map_err(|source| StoreError::Io {
            path: ids_dir.clone(),
            source,
        })?;
        let (spans, _) = SegmentLog::open(dir.join("spans"), log_options(&options, 7, 8))?;
        let (summaries, _) = SegmentLog::open(dir.join("summaries"), log_options(&options, 1, 8))?;
        let store = TraceStore {
            spans,
            summaries,
            ids_dir,
            ids: RwLock::new(ids::IdIndex::new()),
            options,
            writer: Mutex::new(()),
            expired_spans: AtomicU64::new(0),
            corrupt: AtomicU64::new(0),
        };
        store.load_ids()?;
        Ok(store)
    }

    /// Stores a batch (the spans of one or more traces, in any order) and
    /// one summary per trace; returns the number of spans stored. When
    /// the span write fails nothing is kept; when the summary write after
    /// it fails, the spans stay (`get` finds them, `search` does not) and
    /// the error is returned.
    pub fn append(&self, spans: &[Span]) -> Result<usize> {
        let mut traces = PreparedTraces::new();
        for group in group_by_trace(spans) {
            traces.push_any(&group);
        }
        self.append_prepared(&traces)
    }

    /// Stores traces prepared where they were recorded (each one whole:
    /// its spans, then its summary), as [`TraceStore::append`] stores
    /// spans; returns the number of spans stored.
    pub fn append_prepared(&self, traces: &PreparedTraces) -> Result<usize> {
        let spans = traces.spans();
        if spans == 0 {
            return Ok(0);
        }
        let (records, summaries) = traces.records();
        let _writer = lock(&self.writer);
        let positions = self.spans.append_batch(&records, self.options.durability)?;
        self.index_batch(traces.entries(), &positions);
        self.summaries
            .append_batch(&summaries, self.options.durability)?;
        Ok(spans)
    }

    /// Every stored span of `trace_id`, from any batch, sorted by start
    /// (then span id); empty when the trace is not stored.
    pub fn get(&self, trace_id: TraceId) -> Result<Vec<Span>> {
        let key = ids::key(&trace_id);
        let after_us = self.vigil_time_bound(&trace_id);
        let mut runs = self.find_runs(key, after_us);
        if runs.is_empty() && after_us.is_some() {
            runs = self.find_runs(key, None);
        }
        let mut out = Vec::new();
        for (segment, entry) in runs {
            // The run's spans: in one record, or (written before records
            // held a trace's spans) one per record.
            let mut left = u64::from(entry.count);
            self.spans.scan_from(
                Position {
                    segment,
                    offset: entry.offset,
                },
                |r| {
                    if r.position.segment != segment || left == 0 {
                        return ControlFlow::Break(());
                    }
                    match codec::decode_spans(r.payload) {
                        Some(spans) => {
                            left = left.saturating_sub(spans.len() as u64);
                            out.extend(spans.into_iter().filter(|s| s.trace_id == trace_id));
                        }
                        None => {
                            left -= 1;
                            self.corrupt.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    if left == 0 {
                        ControlFlow::Break(())
                    } else {
                        ControlFlow::Continue(())
                    }
                },
            )?;
        }
        out.sort_by_key(|s| (s.start_us, s.span_id));
        Ok(out)
    }

    /// Where the span log ends now: a [`TraceStore::scan_spans`] up to it
    /// sees the spans appended before, none after.
    pub fn spans_end(&self) -> SpanMark {
        SpanMark(self.spans.end())
    }

    /// Calls `f` with every stored span that starts in `start_us..end_us`
    /// and was appended before `upto`, in the order they were appended
    /// (opening only the segments whose time range meets the window);
    /// stops early when `f` breaks. Returns the spans handed to `f`.
    ///
    /// A record's timestamp is its first span's start, so a span that
    /// starts in the window is missed when an earlier span of its trace
    /// (of the same batch) started before it.
    pub fn scan_spans(
        &self,
        start_us: i64,
        end_us: i64,
        upto: SpanMark,
        mut f: impl FnMut(Span) -> ControlFlow<()>,
    ) -> Result<u64> {
        let mut seen = 0;
        self.spans.scan(start_us, end_us, |r| {
            if r.position >= upto.0 {
                return ControlFlow::Break(());
            }
            let Some(spans) = codec::decode_spans(r.payload) else {
                self.corrupt.fetch_add(1, Ordering::Relaxed);
                return ControlFlow::Continue(());
            };
            for span in spans {
                if (start_us..end_us).contains(&span.start_us) {
                    seen += 1;
                    f(span)?;
                }
            }
            ControlFlow::Continue(())
        })?;
        Ok(seen)
    }

    /// Drops the segments past the retention limits as of `now_us`: by age
    /// in each log, then the oldest segments (spans, and the summaries up
    /// to the same time) while the store is over its size cap. Returns the
    /// segments deleted. Whole files only, never under the writer's lock.
    pub fn expire(&self, now_us: i64) -> Result<u64> {
        let age_us = i64::try_from(self.options.retain_age.as_micros()).unwrap_or(i64::MAX);
        let cutoff = now_us.saturating_sub(age_us);
        let mut deleted = 0;
        for log in [&self.spans, &self.summaries] {
            let keep = log
                .segments()
                .into_iter()
                .find(|s| !s.sealed || s.time_range_us.is_some_and(|(_, hi)| hi >= cutoff));
            if let Some(first_kept) = keep {
                deleted += log.delete_before(Position {
                    segment: first_kept.id,
                    offset: 0,
                })?;
            }
        }
        if let Some(cap) = self.options.retain_bytes {
            while self.disk_bytes() > cap {
                let Some(oldest) = self.spans.segments().into_iter().find(|s| s.sealed) else {
                    break;
                };
                deleted += self.spans.delete_before(Position {
                    segment: oldest.id + 1,
                    offset: 0,
                })?;
                let until = oldest.time_range_us.map_or(i64::MIN, |(_, hi)| hi);
                let keep = self
                    .summaries
                    .segments()
                    .into_iter()
                    .find(|s| !s.sealed || s.time_range_us.is_some_and(|(_, hi)| hi > until));
                if let Some(first_kept) = keep {
                    deleted += self.summaries.delete_before(Position {
                        segment: first_kept.id,
                        offset: 0,
                    })?;
                }
            }
        }
        self.reconcile();
        Ok(deleted)
    }

    /// What the store holds, and what retention dropped since open.
    pub fn stats(&self) -> StoreStats {
        self.reconcile();
        let spans = self.spans.segments();
        let summaries = self.summaries.segments();
        let (traces, span_count) = {
            let ids = read(&self.ids);
            ids.values()
                .map(|s| (s.entries.len() as u64, s.spans))
                .fold((0, 0), |(t, n), (dt, dn)| (t + dt, n + dn))
        };
        StoreStats {
            spans: span_count,
            summaries: summaries.iter().map(|s| s.records).sum(),
            traces,
            bytes: self.disk_bytes(),
            oldest_us: spans
                .iter()
                .filter_map(|s| s.time_range_us.map(|(lo, _)| lo))
                .min(),
            expired_segments: self.spans.stats().segments_deleted
                + self.summaries.stats().segments_deleted,
            expired_spans: self.expired_spans.load(Ordering::Relaxed),
            corrupt_records: self.corrupt.load(Ordering::Relaxed),
        }
    }

    /// Makes every appended span and summary durable now.
    pub fn sync(&self) -> Result<()> {
        self.spans.sync()?;
        self.summaries.sync()?;
        Ok(())
    }

    /// Seals the active segments now (the next append starts new ones);
    /// for tests and benchmarks that want sealed, compressed segments.
    pub fn roll(&self) -> Result<()> {
        let _writer = lock(&self.writer);
        self.spans.roll()?;
        self.summaries.roll()?;
        let ids_dir = &self.ids_dir;
        for (segment, ids) in write(&self.ids).iter_mut().filter(|(_, s)| !s.sealed) {
            seal_ids(ids_dir, *segment, ids);
        }
        Ok(())
    }

    fn disk_bytes(&self) -> u64 {
        let ids_bytes: u64 = read(&self.ids)
            .values()
            .filter(|s| s.sealed)
            .map(|s| 16 + s.entries.len() as u64 * 20)
            .sum();
        self.spans.total_bytes() + self.summaries.total_bytes() + ids_bytes
    }

    /// Records the runs of a batch just written at `positions` (in the
    /// order of `groups`), sealing the index of segments the log left.
    fn index_batch(&self, traces: &[prepared::Prepared], positions: &[vigil_segments::Position]) {
        let Some(segment) = positions.first().map(|p| p.segment) else {
            return;
        };
        let mut ids = write(&self.ids);
        let mut rolled = false;
        for (old, seg_ids) in ids.range_mut(..segment).filter(|(_, s)| !s.sealed) {
            seal_ids(&self.ids_dir, *old, seg_ids);
            rolled = true;
        }
        let seg_ids = ids.entry(segment).or_default();
        for (trace, at) in traces.iter().zip(positions) {
            seg_ids.entries.push(ids::Entry {
                key: ids::key(&trace.trace_id),
                offset: at.offset,
                count: u32::try_from(trace.spans).unwrap_or(u32::MAX),
            });
            seg_ids.spans += trace.spans as u64;
        }
        drop(ids);
        if rolled {
            self.reconcile();
        }
    }

    /// The runs of `key`, in segments that may hold spans starting at or
    /// after `after_us`.
    fn find_runs(&self, key: u64, after_us: Option<i64>) -> Vec<(u64, ids::Entry)> {
        let skip: HashSet<u64> = match after_us {
            Some(after) => self
                .spans
                .segments()
                .into_iter()
                .filter(|s| s.time_range_us.is_some_and(|(_, hi)| hi < after))
                .map(|s| s.id)
                .collect(),
            None => HashSet::new(),
        };
        let ids = read(&self.ids);
        ids.iter()
            .filter(|(segment, _)| !skip.contains(segment))
            .flat_map(|(segment, s)| s.find(key).into_iter().map(|e| (*segment, e)))
            .collect()
    }

    /// For an id whose first 4 bytes read as a second within the stored
    /// range (give or take a day): an hour before it, which no span of the
    /// trace started before. `None` for ids that are not Vigil's form.
    fn vigil_time_bound(&self, id: &TraceId) -> Option<i64> {
        let start_us = i64::from(id.epoch_s()) * 1_000_000;
        let segments = self.spans.segments();
        let lo = segments
            .iter()
            .filter_map(|s| s.time_range_us.map(|r| r.0))
            .min()?;
        let hi = segments
            .iter()
            .filter_map(|s| s.time_range_us.map(|r| r.1))
            .max()?;
        const DAY_US: i64 = 86_400_000_000;
        (start_us >= lo - DAY_US && start_us <= hi + DAY_US).then(|| start_us - DAY_US / 24)
    }

    /// Loads each span segment's id index, rebuilding the missing ones, and
    /// removes the files of segments that are gone.
    fn load_ids(&self) -> Result<()> {
        let segments = self.spans.segments();
        let present: HashSet<u64> = segments.iter().map(|s| s.id).collect();
        for stale in ids::listed(&self.ids_dir) {
            if !present.contains(&stale) {
                ids::remove(&self.ids_dir, stale);
            }
        }
        let mut index = ids::IdIndex::new();
        for info in &segments {
            let persisted = if info.sealed {
                ids::read(&self.ids_dir, info.id)
            } else {
                None
            };
            let seg_ids = match persisted {
                Some(entries) => ids::SegmentIds {
                    spans: entries.iter().map(|e| u64::from(e.count)).sum(),
                    entries,
                    sealed: true,
                },
                None => {
                    let mut built = self.rebuild_ids(info.id)?;
                    if info.sealed {
                        seal_ids(&self.ids_dir, info.id, &mut built);
                    }
                    built
                }
            };
            index.insert(info.id, seg_ids);
        }
        *write(&self.ids) = index;
        Ok(())
    }

    /// The id index of one segment, from its records: consecutive records
    /// of one trace make one run.
    fn rebuild_ids(&self, segment: u64) -> Result<ids::SegmentIds> {
        let mut out = ids::SegmentIds::default();
        let mut run_end = 0;
        let mut run_id = TraceId::default();
        self.spans.scan_from(Position { segment, offset: 0 }, |r| {
            if r.position.segment != segment {
                return ControlFlow::Break(());
            }
            let (Some(id), Some(n)) = (
                codec::peek_trace_id(r.payload),
                codec::span_count(r.payload),
            ) else {
                return ControlFlow::Continue(());
            };
            out.spans += n;
            let n = u32::try_from(n).unwrap_or(u32::MAX);
            let key = ids::key(&id);
            match out.entries.last_mut() {
                Some(last) if run_id == id && run_end == r.position.offset => {
                    last.count = last.count.saturating_add(n);
                }
                _ => out.entries.push(ids::Entry {
                    key,
                    offset: r.position.offset,
                    count: n,
                }),
            }
            run_id = id;
            run_end = r.position.offset + FRAME_OVERHEAD_BYTES + r.payload.len() as u64;
            ControlFlow::Continue(())
        })?;
        Ok(out)
    }

    /// Drops the id index of span segments retention deleted.
    fn reconcile(&self) {
        let present: HashSet<u64> = self.spans.segments().iter().map(|s| s.id).collect();
        let mut ids = write(&self.ids);
        let gone: Vec<u64> = ids
            .keys()
            .filter(|id| !present.contains(id))
            .copied()
            .collect();
        for segment in gone {
            if let Some(seg_ids) = ids.remove(&segment) {
                self.expired_spans
                    .fetch_add(seg_ids.spans, Ordering::Relaxed);
                ids::remove(&self.ids_dir, segment);
            }
        }
    }
}

fn seal_ids(dir: &Path, segment: u64, ids: &mut ids::SegmentIds) {
    // A failed write only costs a rebuild at the next open.
    let _ = ids.seal(dir, segment);
}

/// The spans grouped by trace, each trace where it first appears.
fn group_by_trace(spans: &[Span]) -> Vec<Vec<&Span>> {
    let mut at: HashMap<TraceId, usize> = HashMap::new();
    let mut groups: Vec<Vec<&Span>> = Vec::new();
    let mut last: Option<(TraceId, usize)> = None;
    for span in spans {
        // A trace's spans usually come together: no lookup within a run.
        let i = match last {
            Some((id, i)) if id == span.trace_id => i,
            _ => *at.entry(span.trace_id).or_insert_with(|| {
                groups.push(Vec::new());
                groups.len() - 1
            }),
        };
        last = Some((span.trace_id, i));
        groups[i].push(span);
    }
    groups
}

fn log_options(o: &StoreOptions, share: u64, of: u64) -> Options {
    Options {
        segment_bytes: o.segment_bytes,
        segment_age: Some(o.segment_age),
        fsync_interval: o.fsync_interval,
        retain_age: o.background_retention.then_some(o.retain_age),
        retain_bytes: o
            .retain_bytes
            .filter(|_| o.background_retention)
            .map(|cap| cap / of * share),
        compression: o.compression,
        ..Options::default()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn read<T>(m: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write<T>(m: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests;
