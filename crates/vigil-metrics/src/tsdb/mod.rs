//! The embedded time-series store.
//!
//! - **Tiers** ([`TsdbConfig`]): 1 s points kept 3 h, 60 s kept 15 days,
//!   300 s kept 63 days, 3600 s kept 455 days. High-resolution data land in
//!   the 1 s tier, standard data in the 60 s tier; a point is merged
//!   (SEMANTICS.md §1.3, [`Aggregate`] merge) into its bucket of that tier
//!   and of every coarser tier when written, so each tier is complete and a
//!   query reads one. Retention drops whole blocks per tier.
//! - **Blocks**: each tier of a series is cut into fixed windows from the
//!   epoch. The open window is columns; a window that ended
//!   [`TsdbConfig::seal_delay`] ago is sealed: delta-of-delta timestamps,
//!   Gorilla XOR floats, columns that are constant for plain series left
//!   out, encoded sketches only where a point is more than one value.
//! - **Durability** ([`Tsdb::open`]): every write goes to a write-ahead log
//!   (`vigil-segments`) under its shard's lock, so the log's order per shard
//!   is the order of application. [`Tsdb::record_durable`] returns once the
//!   record is in the kernel (survives `kill -9`); [`Tsdb::record`] buffers
//!   per shard and the buffer reaches the log every
//!   [`TsdbConfig::wal_flush_interval`]. A checkpoint writes each shard's
//!   blocks to `blocks/shard-NNNN.tsdb` (temporary file + rename) with the
//!   log position it covers, then deletes log segments every shard file
//!   covers. Opening loads the files, then replays each shard's records
//!   after its position.
//!
//! A fleet's replicas share their aggregates through PostgreSQL
//! (`crate::fleet`); this store stays each replica's own.

mod block;
mod codec;
mod config;
pub(crate) mod persist;
mod query;
mod series;

use std::collections::BTreeSet;
use std::hash::BuildHasher;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rustc_hash::{FxBuildHasher, FxHashMap};
use vigil_segments::{Durability, Options, Position, SegmentLog};

use crate::aggregate::Aggregate;
use crate::model::{Resolution, SeriesKey, Unit};

pub use config::{TierConfig, TsdbConfig};
pub(crate) use query::{DataKind, aligned, evaluate, plan};
pub use query::{MAX_POINTS, Query, QueryError, QueryResult};

use series::Series;

/// One datum to store: an aggregate of one series at one time.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// The series.
    pub key: SeriesKey,
    /// Unix milliseconds; stored in the bucket of its tier's resolution.
    pub timestamp_ms: i64,
    /// What the datum holds.
    pub aggregate: Aggregate,
    /// 1 s or 60 s.
    pub resolution: Resolution,
}

/// Which series [`Tsdb::list`] returns; `None` matches anything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SeriesFilter {
    /// Exact namespace.
    pub namespace: Option<String>,
    /// Exact metric name.
    pub name: Option<String>,
    /// Each dimension must be present, with this value when given.
    pub dimensions: Vec<(String, Option<String>)>,
}

impl SeriesFilter {
    /// Whether `key` passes the filter.
    pub(crate) fn matches(&self, key: &SeriesKey) -> bool {
        self.namespace.as_ref().is_none_or(|n| *n == key.namespace)
            && self.name.as_ref().is_none_or(|n| *n == key.name)
            && self
                .dimensions
                .iter()
                .all(|(k, v)| match key.dimensions.get(k) {
                    None => false,
                    Some(have) => v.as_ref().is_none_or(|v| v == have),
                })
    }
}

/// What one tier holds, over every series.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TierStats {
    /// Seconds per point.
    pub resolution_s: u32,
    /// Points in sealed (compressed) blocks.
    pub sealed_points: u64,
    /// Bytes of sealed blocks (in memory; the block files hold the same).
    pub sealed_bytes: u64,
    /// Points in open blocks.
    pub open_points: u64,
    /// Heap bytes of open blocks.
    pub open_bytes: u64,
}

impl TierStats {
    /// Bytes per point of sealed blocks (`None` when there are none).
    pub fn sealed_bytes_per_point(&self) -> Option<f64> {
        (self.sealed_points > 0).then(|| self.sealed_bytes as f64 / self.sealed_points as f64)
    }
}

/// The store's size.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TsdbStats {
    /// Series held.
    pub series: u64,
    /// Per tier, finest first.
    pub tiers: Vec<TierStats>,
    /// Bytes of the write-ahead log on disk (0 in memory).
    pub wal_bytes: u64,
    /// Bytes of the block files on disk (0 in memory).
    pub block_file_bytes: u64,
}

/// Errors of opening, writing and checkpointing a store on disk.
#[derive(Debug, thiserror::Error)]
pub enum TsdbError {
    /// The configuration is invalid (every problem listed).
    #[error("invalid tsdb config: {}", .0.join("; "))]
    Config(Vec<String>),
    /// The write-ahead log failed.
    #[error("tsdb write-ahead log: {0}")]
    Wal(#[from] vigil_segments::Error),
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The failure.
        source: std::io::Error,
    },
    /// A block file is damaged or not the store's.
    #[error("{path}: {reason}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> TsdbError + '_ {
    move |source| TsdbError::Io {
        path: path.to_owned(),
        source,
    }
}

#[derive(Debug, Default)]
struct Shard {
    series: FxHashMap<SeriesKey, Series>,
    /// Encoded records of [`Tsdb::record`] not yet in the log (WAL payload
    /// body, without its header).
    pending: Vec<u8>,
}

#[derive(Debug)]
struct Disk {
    log: SegmentLog,
    blocks_dir: PathBuf,
}

#[derive(Debug)]
struct Inner {
    config: TsdbConfig,
    shards: Vec<Mutex<Shard>>,
    disk: Option<Disk>,
    stop: Mutex<bool>,
    wake: Condvar,
}

/// Buffered records above this size are flushed at once.
const PENDING_FLUSH_BYTES: usize = 1 << 20;

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding a shard lock leaves the shard consistent
    // (every mutation is a whole point), so a poisoned lock is usable.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// The time-series store. `Send + Sync`; share it behind an `Arc`.
#[derive(Debug)]
pub struct Tsdb {
    inner: Arc<Inner>,
    background: Option<JoinHandle<()>>,
}

impl Tsdb {
    /// A store in memory only, with no background thread: the caller runs
    /// [`Tsdb::maintain`] (sealing and retention).
    pub fn in_memory(config: TsdbConfig) -> Result<Tsdb, TsdbError> {
        config.validate().map_err(TsdbError::Config)?;
        Ok(Tsdb {
            inner: Arc::new(Inner::new(config, None)),
            background: None,
        })
    }

    /// Opens (creating if needed) the store in `dir`: `dir/wal/` (the
    /// write-ahead log) and `dir/blocks/` (block files). Loads the block
    /// files, replays the log after them, and starts the background thread
    /// (log flush, sealing, retention, checkpoints).
    pub fn open(dir: impl AsRef<Path>, config: TsdbConfig) -> Result<Tsdb, TsdbError> {
        config.validate().map_err(TsdbError::Config)?;
        let dir = dir.as_ref();
        let blocks_dir = dir.join("blocks");
        std::fs::create_dir_all(&blocks_dir).map_err(io_err(&blocks_dir))?;
        let (log, _recovery) = SegmentLog::open(dir.join("wal"), Options::default())?;
        let inner = Inner::new(
            config,
            Some(Disk {
                log,
                blocks_dir: blocks_dir.clone(),
            }),
        );
        let covers = inner.load_blocks(&blocks_dir)?;
        inner.replay(&covers)?;
        let inner = Arc::new(inner);
        let bg = Arc::clone(&inner);
        let background = std::thread::Builder::new()
            .name("vigil-tsdb".to_owned())
            .spawn(move || bg.run_background())
            .map_err(io_err(dir))?;
        Ok(Tsdb {
            inner,
            background: Some(background),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &TsdbConfig {
        &self.inner.config
    }

    /// Stores one datum of Vigil's own metrics: in memory at once, in the
    /// write-ahead log within [`TsdbConfig::wal_flush_interval`] (a crash
    /// loses at most that much).
    pub fn record(
        &self,
        key: &SeriesKey,
        timestamp_ms: i64,
        agg: &Aggregate,
        resolution: Resolution,
    ) {
        let i = self.inner.shard_of(key);
        let mut shard = lock(&self.inner.shards[i]);
        self.inner
            .apply(&mut shard, key, timestamp_ms, agg, resolution, true);
    }

    /// [`Tsdb::record`] of many data, each shard locked once.
    pub fn record_batch(&self, records: &[Record]) {
        for (i, idx) in self.inner.by_shard(records).into_iter().enumerate() {
            if idx.is_empty() {
                continue;
            }
            let mut shard = lock(&self.inner.shards[i]);
            for j in idx {
                let r = &records[j];
                self.inner.apply(
                    &mut shard,
                    &r.key,
                    r.timestamp_ms,
                    &r.aggregate,
                    r.resolution,
                    true,
                );
            }
        }
    }

    /// Stores one datum of the API: returns once it is in the write-ahead
    /// log (survives `kill -9`) and in memory.
    pub fn record_durable(
        &self,
        key: &SeriesKey,
        timestamp_ms: i64,
        agg: &Aggregate,
        resolution: Resolution,
    ) -> Result<(), TsdbError> {
        self.record_batch_durable(&[Record {
            key: key.clone(),
            timestamp_ms,
            aggregate: agg.clone(),
            resolution,
        }])
    }

    /// [`Tsdb::record_durable`] of many data: one log append for the batch.
    /// On an error nothing of the batch was stored.
    pub fn record_batch_durable(&self, records: &[Record]) -> Result<(), TsdbError> {
        let Some(disk) = &self.inner.disk else {
            self.record_batch(records);
            return Ok(());
        };
        let groups = self.inner.by_shard(records);
        // Lock every shard involved, in index order (no deadlock), so the
        // log order per shard is the order of application.
        let mut guards: Vec<(usize, MutexGuard<'_, Shard>)> = groups
            .iter()
            .enumerate()
            .filter(|(_, g)| !g.is_empty())
            .map(|(i, _)| (i, lock(&self.inner.shards[i])))
            .collect();
        let mut payloads = Vec::with_capacity(guards.len() * 2);
        for (i, shard) in &guards {
            if !shard.pending.is_empty() {
                let mut p = Vec::with_capacity(shard.pending.len() + 3);
                persist::wal_header(&mut p, *i);
                p.extend_from_slice(&shard.pending);
                payloads.push(p);
            }
            let mut p = Vec::new();
            persist::wal_header(&mut p, *i);
            for &j in &groups[*i] {
                let r = &records[j];
                persist::put_record(&mut p, &r.key, r.timestamp_ms, &r.aggregate, r.resolution);
            }
            payloads.push(p);
        }
        let ts = now_us();
        let batch: Vec<(i64, &[u8])> = payloads.iter().map(|p| (ts, p.as_slice())).collect();
        disk.log.append_batch(&batch, Durability::Os)?;
        for (i, shard) in &mut guards {
            shard.pending.clear();
            for &j in &groups[*i] {
                let r = &records[j];
                self.inner.apply(
                    shard,
                    &r.key,
                    r.timestamp_ms,
                    &r.aggregate,
                    r.resolution,
                    false,
                );
            }
        }
        Ok(())
    }

    /// The statistics of each period of `q` with data (SEMANTICS.md §1.3).
    pub fn query(&self, q: &Query, now_ms: i64) -> Result<QueryResult, QueryError> {
        let sketches = query::needs_sketch(&q.statistics);
        let periods = self.inner.periods(q, now_ms, sketches)?;
        Ok(query::evaluate(&periods, &q.statistics))
    }

    /// The aggregate of each period of `q` with data, ascending by period
    /// start (for metric math and alarms); `q.statistics` is ignored.
    pub fn query_aggregates(
        &self,
        q: &Query,
        now_ms: i64,
    ) -> Result<Vec<(i64, Aggregate)>, QueryError> {
        self.inner.periods(q, now_ms, true)
    }

    /// The series matching `filter`, sorted.
    pub fn list(&self, filter: &SeriesFilter) -> Vec<SeriesKey> {
        let mut out = BTreeSet::new();
        for shard in &self.inner.shards {
            let shard = lock(shard);
            out.extend(shard.series.keys().filter(|k| filter.matches(k)).cloned());
        }
        out.into_iter().collect()
    }

    /// Seals blocks whose window ended [`TsdbConfig::seal_delay`] before
    /// `now_ms` and drops what each tier's retention no longer keeps (the
    /// background thread runs this every 10 s).
    pub fn maintain(&self, now_ms: i64) {
        self.inner.maintain(now_ms);
    }

    /// Seals every open block (for measuring sizes; later points reopen
    /// their block).
    pub fn seal_all(&self) {
        for shard in &self.inner.shards {
            let mut shard = lock(shard);
            for s in shard.series.values_mut() {
                s.seal_all(&self.inner.config.tiers);
            }
        }
    }

    /// Writes every shard's blocks to its file and cuts the log before
    /// them (the background thread runs this every
    /// [`TsdbConfig::checkpoint_interval`]). Nothing to do in memory.
    pub fn checkpoint(&self) -> Result<(), TsdbError> {
        self.inner.checkpoint()
    }

    /// Sizes, per tier and on disk.
    pub fn stats(&self) -> TsdbStats {
        let cfg = &self.inner.config;
        let mut st = TsdbStats {
            tiers: cfg
                .tiers
                .iter()
                .map(|t| TierStats {
                    resolution_s: t.resolution_s,
                    ..TierStats::default()
                })
                .collect(),
            ..TsdbStats::default()
        };
        for shard in &self.inner.shards {
            let shard = lock(shard);
            st.series += shard.series.len() as u64;
            for s in shard.series.values() {
                for (tier, out) in s.tiers.iter().zip(&mut st.tiers) {
                    let u = tier.usage();
                    out.sealed_points += u.sealed_points;
                    out.sealed_bytes += u.sealed_bytes;
                    out.open_points += u.open_points;
                    out.open_bytes += u.open_bytes;
                }
            }
        }
        if let Some(disk) = &self.inner.disk {
            st.wal_bytes = disk.log.total_bytes();
            st.block_file_bytes = std::fs::read_dir(&disk.blocks_dir)
                .map(|rd| {
                    rd.filter_map(Result::ok)
                        .filter_map(|e| e.metadata().ok())
                        .map(|m| m.len())
                        .sum()
                })
                .unwrap_or(0);
        }
        st
    }

    /// Stops the background thread and checkpoints.
    pub fn close(mut self) -> Result<(), TsdbError> {
        self.stop_background();
        self.inner.checkpoint()
    }

    fn stop_background(&mut self) {
        *lock(&self.inner.stop) = true;
        self.inner.wake.notify_all();
        if let Some(h) = self.background.take()
            && h.join().is_err()
        {
            tracing::error!("the tsdb background thread panicked");
        }
    }
}

impl Drop for Tsdb {
    /// Stops the background thread and flushes buffered records to the
    /// log (no checkpoint: the next open replays the log).
    fn drop(&mut self) {
        self.stop_background();
        self.inner.flush_pending();
    }
}

impl Inner {
    fn new(config: TsdbConfig, disk: Option<Disk>) -> Self {
        Inner {
            shards: (0..config.shards).map(|_| Mutex::default()).collect(),
            config,
            disk,
            stop: Mutex::new(false),
            wake: Condvar::new(),
        }
    }

    fn shard_of(&self, key: &SeriesKey) -> usize {
        (FxBuildHasher.hash_one(key) % self.shards.len() as u64) as usize
    }

    fn by_shard(&self, records: &[Record]) -> Vec<Vec<usize>> {
        let mut out = vec![Vec::new(); self.shards.len()];
        for (j, r) in records.iter().enumerate() {
            out[self.shard_of(&r.key)].push(j);
        }
        out
    }

    /// Merges one datum into its series; with `log`, also into the shard's
    /// buffer for the write-ahead log.
    fn apply(
        &self,
        shard: &mut Shard,
        key: &SeriesKey,
        timestamp_ms: i64,
        agg: &Aggregate,
        resolution: Resolution,
        log: bool,
    ) {
        if log && let Some(disk) = &self.disk {
            persist::put_record(&mut shard.pending, key, timestamp_ms, agg, resolution);
            if shard.pending.len() >= PENDING_FLUSH_BYTES {
                let i = self.shard_of(key);
                flush_shard(disk, i, shard);
            }
        }
        let cfg = &self.config;
        let base = cfg.base_tier(resolution.seconds());
        let high = resolution == Resolution::High;
        if let Some(s) = shard.series.get_mut(key) {
            s.record(&cfg.tiers, base, high, timestamp_ms, agg);
        } else {
            let mut s = Series::new(cfg.tiers.len());
            s.record(&cfg.tiers, base, high, timestamp_ms, agg);
            shard.series.insert(key.clone(), s);
        }
    }

    fn periods(
        &self,
        q: &Query,
        now_ms: i64,
        sketches: bool,
    ) -> Result<query::Periods, QueryError> {
        let units: Vec<Unit> = match q.unit {
            Some(u) => vec![u],
            None => Unit::ALL.to_vec(),
        };
        let mut key = SeriesKey {
            namespace: q.namespace.clone(),
            name: q.name.clone(),
            dimensions: q.dimensions.clone(),
            unit: Unit::None,
        };
        // First the kind of data (for validation), then the pieces of the
        // chosen tier, each under its shard's lock; decoding after.
        let mut kind = query::DataKind::default();
        let mut found = Vec::new();
        for u in units {
            key.unit = u;
            let i = self.shard_of(&key);
            let shard = lock(&self.shards[i]);
            if let Some(s) = shard.series.get(&key) {
                kind.high |= s.has_high;
                kind.standard |= s.has_standard;
                found.push((i, u));
            }
        }
        let tier = query::plan(q, &self.config.tiers, kind, now_ms)?;
        let cfg = &self.config.tiers[tier];
        let res_ms = i64::from(cfg.resolution_s) * 1000;
        let (from_ms, to_ms) = query::aligned(q);
        let period_ms = i64::from(q.period_s) * 1000;
        let mut lists = Vec::new();
        for (i, u) in found {
            key.unit = u;
            let pieces = {
                let shard = lock(&self.shards[i]);
                match shard.series.get(&key) {
                    Some(s) => s.tiers[tier].pieces(
                        cfg,
                        from_ms.div_euclid(res_ms),
                        to_ms.div_euclid(res_ms),
                    ),
                    None => Vec::new(),
                }
            };
            let mut out = Vec::new();
            if let Err(reason) = query::fold(
                pieces, res_ms, period_ms, from_ms, to_ms, sketches, &mut out,
            ) {
                tracing::error!(%reason, namespace = %key.namespace, metric = %key.name, "skipping a damaged block");
            }
            lists.push(out);
        }
        Ok(if lists.len() == 1 {
            lists.pop().unwrap_or_default()
        } else {
            query::merge_periods(lists)
        })
    }

    fn maintain(&self, now_ms: i64) {
        let seal_ms = self.config.seal_delay.as_millis() as i64;
        for shard in &self.shards {
            let mut shard = lock(shard);
            shard
                .series
                .retain(|_, s| !s.maintain(&self.config.tiers, now_ms, seal_ms));
        }
    }

    fn flush_pending(&self) {
        let Some(disk) = &self.disk else { return };
        for (i, shard) in self.shards.iter().enumerate() {
            let mut shard = lock(shard);
            flush_shard(disk, i, &mut shard);
        }
    }

    fn shard_path(dir: &Path, i: usize) -> PathBuf {
        dir.join(format!("shard-{i:04}.tsdb"))
    }

    fn checkpoint(&self) -> Result<(), TsdbError> {
        let Some(disk) = &self.disk else {
            return Ok(());
        };
        // Roll first: what the shards cover then starts in a fresh segment,
        // so every older segment can go once the files are written.
        self.flush_pending();
        disk.log.roll()?;
        let mut oldest: Option<Position> = None;
        let mut skipped = false;
        for (i, shard) in self.shards.iter().enumerate() {
            let bytes = {
                let mut shard = lock(shard);
                flush_shard(disk, i, &mut shard);
                if !shard.pending.is_empty() {
                    // The log refused the buffer: this shard's file must not
                    // claim to cover it, and the log must keep what its old
                    // file does not cover.
                    skipped = true;
                    continue;
                }
                let covers = disk.log.end();
                oldest = Some(oldest.map_or(covers, |o| o.min(covers)));
                persist::encode_shard(self.shards.len(), i, covers, shard.series.iter())
            };
            let path = Inner::shard_path(&disk.blocks_dir, i);
            persist::write_atomic(&path, &bytes).map_err(io_err(&path))?;
        }
        if let Some(p) = oldest.filter(|_| !skipped) {
            disk.log.delete_before(p)?;
        }
        Ok(())
    }

    /// Loads every shard file; returns the log position each covers.
    fn load_blocks(&self, dir: &Path) -> Result<Vec<Position>, TsdbError> {
        let n = self.shards.len();
        let mut covers = vec![Position::default(); n];
        let entries = std::fs::read_dir(dir).map_err(io_err(dir))?;
        for e in entries {
            let e = e.map_err(io_err(dir))?;
            let path = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if name.ends_with(".tmp") {
                // A checkpoint that did not finish; its shard file is intact.
                let _ = std::fs::remove_file(&path);
                continue;
            }
            let Some(i) = name
                .strip_prefix("shard-")
                .and_then(|s| s.strip_suffix(".tsdb"))
                .and_then(|s| s.parse::<usize>().ok())
            else {
                return Err(TsdbError::Corrupt {
                    path,
                    reason: "not a tsdb block file".to_owned(),
                });
            };
            let bytes = std::fs::read(&path).map_err(io_err(&path))?;
            let corrupt = |reason: String| TsdbError::Corrupt {
                path: path.clone(),
                reason,
            };
            let file = persist::decode_shard(&bytes, self.config.tiers.len()).map_err(corrupt)?;
            if file.shards != n || file.shard != i || i >= n {
                return Err(corrupt(format!(
                    "written with shards = {} (shard {}), configured shards = {n}",
                    file.shards, file.shard
                )));
            }
            covers[i] = file.covers;
            let mut shard = lock(&self.shards[i]);
            shard.series.extend(file.series);
        }
        Ok(covers)
    }

    /// Applies the log's records that the shard files do not cover.
    fn replay(&self, covers: &[Position]) -> Result<(), TsdbError> {
        let Some(disk) = &self.disk else {
            return Ok(());
        };
        let from = covers.iter().copied().min().unwrap_or_default();
        let mut bad = 0u64;
        disk.log.scan_from(from, |rec| {
            match persist::read_payload(rec.payload) {
                Ok((i, records)) if i < covers.len() => {
                    if rec.position >= covers[i] {
                        let mut shard = lock(&self.shards[i]);
                        for (key, ts, agg, res) in &records {
                            self.apply(&mut shard, key, *ts, agg, *res, false);
                        }
                    }
                }
                Ok(_) | Err(_) => bad += 1,
            }
            ControlFlow::Continue(())
        })?;
        if bad > 0 {
            tracing::warn!(
                records = bad,
                "skipped unreadable tsdb write-ahead log records"
            );
        }
        Ok(())
    }

    fn run_background(&self) {
        let tick = self
            .config
            .wal_flush_interval
            .max(Duration::from_millis(10));
        let maintain_every = Duration::from_secs(10);
        let (mut last_maintain, mut last_checkpoint) = (Instant::now(), Instant::now());
        loop {
            {
                let stop = lock(&self.stop);
                if *stop {
                    return;
                }
                let (stop, _) = self
                    .wake
                    .wait_timeout(stop, tick)
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if *stop {
                    return;
                }
            }
            self.flush_pending();
            if last_maintain.elapsed() >= maintain_every {
                self.maintain(now_us() / 1000);
                last_maintain = Instant::now();
            }
            if last_checkpoint.elapsed() >= self.config.checkpoint_interval {
                if let Err(err) = self.checkpoint() {
                    tracing::error!(error = %err, "tsdb checkpoint failed");
                }
                last_checkpoint = Instant::now();
            }
        }
    }
}

/// Appends a shard's buffered records to the log; on an error they stay
/// buffered (retried at the next flush).
fn flush_shard(disk: &Disk, i: usize, shard: &mut Shard) {
    if shard.pending.is_empty() {
        return;
    }
    let mut p = Vec::with_capacity(shard.pending.len() + 3);
    persist::wal_header(&mut p, i);
    p.extend_from_slice(&shard.pending);
    match disk.log.append(now_us(), &p, Durability::Os) {
        Ok(_) => shard.pending.clear(),
        Err(err) => tracing::error!(error = %err, shard = i, "tsdb write-ahead log append failed"),
    }
}

#[cfg(test)]
mod tests;
