//! Log groups on the segment log: one segment log per group (so a group's
//! retention drops whole segments of that group only, and a query over one
//! group never reads another's bytes), a catalog of groups in
//! `groups.json`, and scans by time range that open only the segments
//! whose time range overlaps it.
//!
//! Layout of the data directory:
//!
//! ```text
//! groups.json            the groups: name, retention, creation time
//! %2Fvigil%2Faccess/     one segment log per group (name escaped)
//!   00000000000000000001.seg ...
//! ```
//!
//! Events are appended in `os` durability by default: acknowledged once
//! written to the kernel, so they survive `kill -9`, and synced in the
//! background. Sealed segments are LZ4-compressed (the segment log's
//! block compression keeps time-range scans cheap).

mod codec;
pub mod ingest;
pub mod names;

use std::collections::BTreeMap;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use vigil_segments::{Compression, Durability, Options, Position, SegmentLog};

pub use codec::StoredEvent;
pub use ingest::{BatchError, InputEvent, RejectReason, Rejected};

/// How the store writes and keeps segments. Every field has a default.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreOptions {
    /// When an append returns. Default: `os` (survives `kill -9`).
    pub durability: Durability,
    /// The background fsync's interval in `os` mode. Default: 1 s.
    pub fsync_interval: Duration,
    /// A group's active segment is sealed at this size. Default: 16 MiB.
    pub segment_bytes: u64,
    /// ... or once its first event is this old. Default: 1 hour, so a
    /// day's retention drops about an hour at a time.
    pub segment_age: Duration,
    /// How sealed segments are stored. Default: LZ4 blocks.
    pub compression: Compression,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            durability: Durability::Os,
            fsync_interval: Duration::from_secs(1),
            segment_bytes: 16 << 20,
            segment_age: Duration::from_secs(3600),
            compression: Compression::Lz4,
        }
    }
}

/// What goes wrong in the store.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// A group or stream name, or a retention, breaks the rules.
    #[error("{0}")]
    Invalid(String),
    /// The batch is refused whole.
    #[error("{0}")]
    Batch(#[from] BatchError),
    /// No such group.
    #[error("log group {0:?} does not exist")]
    NoGroup(String),
    /// The segment log of a group.
    #[error("{0}")]
    Storage(#[from] vigil_segments::Error),
    /// The catalog file or a group's directory.
    #[error("{path}: {message}")]
    Catalog {
        /// The file or directory.
        path: PathBuf,
        /// What failed.
        message: String,
    },
}

/// A group as the API lists it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GroupInfo {
    /// Its name.
    pub name: String,
    /// Days events are kept; `None`: never expire.
    pub retention_days: Option<u32>,
    /// When it was created, in Unix milliseconds.
    pub created_ms: i64,
    /// Bytes on disk (compressed where sealed).
    pub stored_bytes: u64,
    /// Events stored.
    pub events: u64,
}

/// What a [`LogStore::put`] stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PutOutcome {
    /// Events stored.
    pub accepted: usize,
    /// Events left out, each with its index and reason.
    pub rejected: Vec<Rejected>,
    /// What the EMF events of the batch gave, when it had any (filled by
    /// [`crate::pipeline::Logs::put`] when metrics are on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub emf: Option<crate::emf::EmfReport>,
}

/// A group's entry in `groups.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct GroupMeta {
    name: String,
    retention_days: Option<u32>,
    created_ms: i64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Catalog {
    groups: Vec<GroupMeta>,
}

#[derive(Debug)]
struct Group {
    meta: Mutex<GroupMeta>,
    log: SegmentLog,
}

/// The log groups in one data directory.
#[derive(Debug)]
pub struct LogStore {
    dir: PathBuf,
    options: StoreOptions,
    groups: RwLock<BTreeMap<String, Arc<Group>>>,
    /// Serialises changes of the catalog (create, delete, retention).
    catalog: Mutex<()>,
}

impl LogStore {
    /// Opens (or creates) the store in `dir`, opening every group's
    /// segment log (torn tails are cut, as the segment log does).
    pub fn open(dir: impl AsRef<Path>, options: StoreOptions) -> Result<LogStore, LogError> {
        let dir = dir.as_ref().to_owned();
        std::fs::create_dir_all(&dir).map_err(|e| catalog_err(&dir, &e))?;
        let catalog = read_catalog(&dir)?;
        let mut groups = BTreeMap::new();
        for meta in catalog.groups {
            let log = open_group_log(&dir, &meta.name, &options)?;
            groups.insert(
                meta.name.clone(),
                Arc::new(Group {
                    meta: Mutex::new(meta),
                    log,
                }),
            );
        }
        Ok(LogStore {
            dir,
            options,
            groups: RwLock::new(groups),
            catalog: Mutex::new(()),
        })
    }

    /// Creates `name` unless it exists (`retention_days` applies to a new
    /// group only); returns whether it was created.
    pub fn create_group(
        &self,
        name: &str,
        retention_days: Option<u32>,
        now_ms: i64,
    ) -> Result<bool, LogError> {
        names::check_group_name(name).map_err(LogError::Invalid)?;
        if let Some(days) = retention_days {
            names::check_retention(days).map_err(LogError::Invalid)?;
        }
        let _catalog = lock(&self.catalog);
        if self.group(name).is_some() {
            return Ok(false);
        }
        let meta = GroupMeta {
            name: name.to_owned(),
            retention_days,
            created_ms: now_ms,
        };
        // The catalog first: a crash after it leaves an empty group, which
        // the next open creates the directory of.
        let mut all = self.metas();
        all.push(meta.clone());
        write_catalog(&self.dir, all)?;
        let log = open_group_log(&self.dir, name, &self.options)?;
        write_lock(&self.groups).insert(
            name.to_owned(),
            Arc::new(Group {
                meta: Mutex::new(meta),
                log,
            }),
        );
        Ok(true)
    }

    /// Stores the events of a batch sent to `group`/`stream` at `now_ms`,
    /// creating the group on first use; events outside the time window are
    /// left out and listed (SEMANTICS §3.2).
    pub fn put(
        &self,
        group: &str,
        stream: &str,
        events: &[InputEvent],
        now_ms: i64,
    ) -> Result<PutOutcome, LogError> {
        names::check_group_name(group).map_err(LogError::Invalid)?;
        names::check_stream_name(stream).map_err(LogError::Invalid)?;
        let (accepted, rejected) = ingest::check_batch(events, now_ms)?;
        let g = match self.group(group) {
            Some(g) => g,
            None => {
                self.create_group(group, None, now_ms)?;
                self.group(group)
                    .ok_or_else(|| LogError::NoGroup(group.to_owned()))?
            }
        };
        if !accepted.is_empty() {
            // One buffer for the batch, cut into records by their ends.
            let bytes: usize = accepted
                .iter()
                .map(|&i| codec::encoded_len(stream, &events[i].message))
                .sum();
            let mut buf = Vec::with_capacity(bytes);
            let mut ends = Vec::with_capacity(accepted.len());
            for &i in &accepted {
                codec::encode(&mut buf, now_ms, stream, &events[i].message);
                ends.push(buf.len());
            }
            let mut from = 0;
            let records: Vec<(i64, &[u8])> = accepted
                .iter()
                .zip(&ends)
                .map(|(&i, &end)| {
                    let record = &buf[from..end];
                    from = end;
                    (events[i].timestamp.saturating_mul(1000), record)
                })
                .collect();
            g.log.append_batch(&records, self.options.durability)?;
        }
        Ok(PutOutcome {
            accepted: accepted.len(),
            rejected,
            emf: None,
        })
    }

    /// Whether the group `name` exists.
    pub fn has_group(&self, name: &str) -> bool {
        read_lock(&self.groups).contains_key(name)
    }

    /// Every group, by name.
    pub fn groups(&self) -> Vec<GroupInfo> {
        read_lock(&self.groups)
            .values()
            .map(|g| {
                let meta = lock(&g.meta).clone();
                let segments = g.log.segments();
                GroupInfo {
                    name: meta.name,
                    retention_days: meta.retention_days,
                    created_ms: meta.created_ms,
                    stored_bytes: segments.iter().map(|s| s.bytes).sum(),
                    events: segments.iter().map(|s| s.records).sum(),
                }
            })
            .collect()
    }

    /// At most how many events of `group` lie in `from_ms..to_ms`: the
    /// events of the segments whose time range overlaps it (exact when the
    /// range covers whole segments), for a progress bar's total.
    pub fn estimate_events(&self, group: &str, from_ms: i64, to_ms: i64) -> Result<u64, LogError> {
        let g = self
            .group(group)
            .ok_or_else(|| LogError::NoGroup(group.to_owned()))?;
        let (from_us, to_us) = (from_ms.saturating_mul(1000), to_ms.saturating_mul(1000));
        Ok(g.log
            .segments()
            .iter()
            .filter(|s| {
                s.time_range_us
                    .is_some_and(|(lo, hi)| lo < to_us && hi >= from_us)
            })
            .map(|s| s.records)
            .sum())
    }

    /// Deletes a group and its events; returns whether it existed.
    pub fn delete_group(&self, name: &str) -> Result<bool, LogError> {
        let _catalog = lock(&self.catalog);
        let Some(group) = write_lock(&self.groups).remove(name) else {
            return Ok(false);
        };
        write_catalog(&self.dir, self.metas())?;
        // Scans that hold the group finish first; the last handle closes
        // the segment log (and its lock) before the files go.
        drop(group);
        let path = self.dir.join(names::group_dir_name(name));
        match std::fs::remove_dir_all(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(true),
            Err(e) => Err(catalog_err(&path, &e)),
        }
    }

    /// Sets how long a group keeps events (`None`: forever).
    pub fn set_retention(&self, name: &str, days: Option<u32>) -> Result<(), LogError> {
        if let Some(days) = days {
            names::check_retention(days).map_err(LogError::Invalid)?;
        }
        let _catalog = lock(&self.catalog);
        let group = self
            .group(name)
            .ok_or_else(|| LogError::NoGroup(name.to_owned()))?;
        lock(&group.meta).retention_days = days;
        write_catalog(&self.dir, self.metas())
    }

    /// Calls `f` with every event of `group` whose timestamp lies in
    /// `from_ms..to_ms`, in the order stored, reading only the segments
    /// whose time range overlaps it; stops when `f` breaks.
    pub fn scan(
        &self,
        group: &str,
        from_ms: i64,
        to_ms: i64,
        mut f: impl FnMut(StoredEvent<'_>) -> ControlFlow<()>,
    ) -> Result<vigil_segments::ScanStats, LogError> {
        let g = self
            .group(group)
            .ok_or_else(|| LogError::NoGroup(group.to_owned()))?;
        let stats = g.log.scan(
            from_ms.saturating_mul(1000),
            to_ms.saturating_mul(1000),
            |r| match codec::decode(r.timestamp_us, r.payload) {
                Some(event) => f(event),
                None => ControlFlow::Continue(()),
            },
        )?;
        Ok(stats)
    }

    /// Deletes the sealed segments of each group with a retention whose
    /// events are all older than it; returns how many were deleted. Whole
    /// files only, never a rewrite, and never under an appender's lock.
    /// Segments go oldest first, so one holding a late, still-kept event
    /// keeps the ones after it until it expires too.
    pub fn expire(&self, now_ms: i64) -> Result<u64, LogError> {
        let groups: Vec<Arc<Group>> = read_lock(&self.groups).values().cloned().collect();
        let mut deleted = 0;
        for g in groups {
            let Some(days) = lock(&g.meta).retention_days else {
                continue;
            };
            let cutoff_us = now_ms
                .saturating_sub(i64::from(days) * 86_400_000)
                .saturating_mul(1000);
            let keep_from = g
                .log
                .segments()
                .into_iter()
                .find(|s| !s.sealed || s.time_range_us.is_some_and(|(_, hi)| hi >= cutoff_us));
            if let Some(first_kept) = keep_from {
                deleted += g.log.delete_before(Position {
                    segment: first_kept.id,
                    offset: 0,
                })?;
            }
        }
        Ok(deleted)
    }

    /// Makes every appended event durable now.
    pub fn sync(&self) -> Result<(), LogError> {
        let groups: Vec<Arc<Group>> = read_lock(&self.groups).values().cloned().collect();
        for g in groups {
            g.log.sync()?;
        }
        Ok(())
    }

    fn group(&self, name: &str) -> Option<Arc<Group>> {
        read_lock(&self.groups).get(name).cloned()
    }

    fn metas(&self) -> Vec<GroupMeta> {
        read_lock(&self.groups)
            .values()
            .map(|g| lock(&g.meta).clone())
            .collect()
    }
}

fn open_group_log(dir: &Path, name: &str, options: &StoreOptions) -> Result<SegmentLog, LogError> {
    let path = dir.join(names::group_dir_name(name));
    let (log, recovery) = SegmentLog::open(
        &path,
        Options {
            segment_bytes: options.segment_bytes,
            segment_age: Some(options.segment_age),
            fsync_interval: options.fsync_interval,
            compression: options.compression,
            ..Options::default()
        },
    )?;
    if recovery.cut_bytes > 0 || recovery.skipped_records > 0 {
        tracing::warn!(
            group = name,
            cut_bytes = recovery.cut_bytes,
            skipped_records = recovery.skipped_records,
            "log group recovered: a torn tail was cut"
        );
    }
    Ok(log)
}

const CATALOG_FILE: &str = "groups.json";

fn read_catalog(dir: &Path) -> Result<Catalog, LogError> {
    let path = dir.join(CATALOG_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| LogError::Catalog {
            path,
            message: format!("not a log-group catalog: {e}"),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Catalog::default()),
        Err(e) => Err(catalog_err(&path, &e)),
    }
}

/// Writes the catalog atomically (a synced temporary file renamed over it).
fn write_catalog(dir: &Path, mut groups: Vec<GroupMeta>) -> Result<(), LogError> {
    use std::io::Write as _;
    groups.sort_by(|a, b| a.name.cmp(&b.name));
    let path = dir.join(CATALOG_FILE);
    let tmp = dir.join(format!("{CATALOG_FILE}.tmp"));
    let bytes = serde_json::to_vec_pretty(&Catalog { groups }).map_err(|e| LogError::Catalog {
        path: path.clone(),
        message: e.to_string(),
    })?;
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)?;
        std::fs::File::open(dir)?.sync_all()
    };
    write().map_err(|e| catalog_err(&path, &e))
}

fn catalog_err(path: &Path, e: &std::io::Error) -> LogError {
    LogError::Catalog {
        path: path.to_owned(),
        message: e.to_string(),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn read_lock<T>(m: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write_lock<T>(m: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(std::sync::PoisonError::into_inner)
}

#[cfg(test)]
mod tests;
