//! Metric filters (SEMANTICS §3.1): a filter pattern on a log group and a
//! metric transformation; every stored event the pattern matches adds its
//! value to the metric's minute (the event's timestamp floored to 60 s,
//! stored at 60 s resolution). [`MetricFilters`] is the tap that does it,
//! and the keeper of the definitions (in `metric_filters.json` beside the
//! log groups, written atomically).
//!
//! Aggregates go to a [`MetricSink`] on [`MetricFilters::flush`], which
//! the server calls every few seconds: the metric store merges data of the
//! same minute, so several partial flushes add up to the minute's total.
//! A filter's default value is emitted once a minute has closed, only for
//! a minute in which events arrived in the group and the filter produced no
//! datapoint. The same keeper extracts metrics embedded in events
//! ([`crate::emf`]) for [`crate::pipeline::Logs::put`], sending them to
//! the sink at once.
//!
//! ```
//! use std::sync::{Arc, Mutex};
//! use vigil_logs::metric_filter::{FilterSpec, MetricFilters, MetricSink};
//! use vigil_logs::pipeline::{Batch, Tap};
//! use vigil_logs::store::InputEvent;
//! use vigil_metrics::tsdb::Record;
//!
//! #[derive(Debug, Default)]
//! struct Memory(Mutex<Vec<Record>>);
//! impl MetricSink for Memory {
//!     fn put(&self, records: &[Record]) -> Result<(), String> {
//!         self.0.lock().unwrap().extend_from_slice(records);
//!         Ok(())
//!     }
//! }
//!
//! let dir = tempfile::tempdir().unwrap();
//! let sink = Arc::new(Memory::default());
//! let filters = MetricFilters::open(dir.path(), sink.clone()).unwrap();
//! let spec: FilterSpec = serde_json::from_str(
//!     r#"{"pattern": "ERROR", "metric": {"name": "Errors", "namespace": "App", "value": "1"}}"#,
//! ).unwrap();
//! filters.put("/app", "errors", spec, 0).unwrap();
//! let events = [InputEvent { timestamp: 60_000, message: "ERROR disk full".into() }];
//! filters.stored(&Batch::new("/app", "s", 60_000, &events));
//! filters.flush(61_000);
//! let records = sink.0.lock().unwrap();
//! assert_eq!((records[0].timestamp_ms, records[0].aggregate.sum), (60_000, 1.0));
//! ```

pub mod definition;
mod pending;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use serde::{Deserialize, Serialize};
use vigil_metrics::tsdb::Record;

pub use definition::{
    FilterDef, FilterError, FilterSpec, MAX_DIMENSIONS, MAX_FILTERS_PER_GROUP, MetricFilter,
    MetricSpec,
};
pub use pending::{CLOSE_AFTER_MS, MINUTE_MS, REMEMBER_MS, minute_of};

use crate::emf::{self, EmfInvalid, EmfReport};
use crate::pipeline::{Batch, Tap};
use pending::{Hit, Pending};

/// Where the records of metric filters and EMF go (the metric store).
pub trait MetricSink: Send + Sync + fmt::Debug {
    /// Stores `records`; the error says why they were not stored.
    fn put(&self, records: &[Record]) -> Result<(), String>;
}

/// The definitions file, in the log store's directory.
pub const FILE_NAME: &str = "metric_filters.json";

/// The keeper's counters since start (the server turns their increases
/// into `Vigil/Logs` metrics).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct MetricFilterStats {
    /// Events a metric filter's pattern matched (once per filter).
    pub matched_events: u64,
    /// Datapoints (one per series and minute, defaults included) the
    /// filters handed to the sink.
    pub filter_records: u64,
    /// Records extracted from EMF events and handed to the sink.
    pub emf_records: u64,
    /// Problems found in EMF events (one per invalid directive).
    pub emf_invalid: u64,
    /// Writes to the sink that failed (their records are lost).
    pub sink_errors: u64,
}

#[derive(Debug, Default)]
struct Counters {
    matched_events: AtomicU64,
    filter_records: AtomicU64,
    emf_records: AtomicU64,
    emf_invalid: AtomicU64,
    sink_errors: AtomicU64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct File {
    filters: Vec<FilterDef>,
}

/// Every group's metric filters, the minutes they are gathering, and the
/// sink their data go to.
pub struct MetricFilters {
    path: PathBuf,
    sink: Arc<dyn MetricSink>,
    /// Group → its filters, by name.
    groups: RwLock<BTreeMap<String, Vec<Arc<MetricFilter>>>>,
    pending: Mutex<Pending>,
    /// Serialises definition changes with their write of the file.
    changes: Mutex<()>,
    counters: Counters,
}

impl fmt::Debug for MetricFilters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MetricFilters")
            .field("path", &self.path)
            .field("filters", &self.len())
            .finish_non_exhaustive()
    }
}

impl MetricFilters {
    /// Opens the definitions in `dir/metric_filters.json` (none when the
    /// file does not exist); `sink` receives the data.
    pub fn open(dir: &Path, sink: Arc<dyn MetricSink>) -> Result<MetricFilters, FilterError> {
        let path = dir.join(FILE_NAME);
        let storage = |message: String| FilterError::Storage {
            path: path.clone(),
            message,
        };
        let file: File = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes)
                .map_err(|e| storage(format!("not a metric-filter file: {e}")))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => File::default(),
            Err(e) => return Err(storage(e.to_string())),
        };
        let mut groups: BTreeMap<String, Vec<Arc<MetricFilter>>> = BTreeMap::new();
        for (i, def) in file.filters.into_iter().enumerate() {
            let (group, name) = (def.group.clone(), def.name.clone());
            let filter = MetricFilter::new(def)
                .map_err(|e| storage(format!("filters[{i}] ({group} {name}): {e}")))?;
            let list = groups.entry(group).or_default();
            list.retain(|f| f.def().name != name);
            list.push(Arc::new(filter));
            list.sort_by(|a, b| a.def().name.cmp(&b.def().name));
        }
        Ok(MetricFilters {
            path,
            sink,
            groups: RwLock::new(groups),
            pending: Mutex::new(Pending::default()),
            changes: Mutex::new(()),
            counters: Counters::default(),
        })
    }

    /// How many filters there are, in every group.
    pub fn len(&self) -> usize {
        read(&self.groups).values().map(Vec::len).sum()
    }

    /// Whether no group has a filter.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Creates or replaces the filter `name` of `group` (a replaced one
    /// keeps its creation time); returns it as stored and whether it was
    /// created. A group holds at most [`MAX_FILTERS_PER_GROUP`].
    pub fn put(
        &self,
        group: &str,
        name: &str,
        spec: FilterSpec,
        now_ms: i64,
    ) -> Result<(FilterDef, bool), FilterError> {
        let _changes = lock(&self.changes);
        let (existing, count) = {
            let groups = read(&self.groups);
            let list = groups.get(group).map_or(&[][..], Vec::as_slice);
            let existing = list.iter().find(|f| f.def().name == name).cloned();
            (existing, list.len())
        };
        let filter = Arc::new(MetricFilter::new(FilterDef {
            group: group.to_owned(),
            name: name.to_owned(),
            pattern: spec.pattern,
            metric: spec.metric,
            created_ms: existing.as_ref().map_or(now_ms, |f| f.def().created_ms),
        })?);
        if existing.is_none() && count >= MAX_FILTERS_PER_GROUP {
            return Err(FilterError::TooMany {
                group: group.to_owned(),
            });
        }
        let mut next = self.snapshot();
        let list = next.entry(group.to_owned()).or_default();
        list.retain(|f| f.def().name != name);
        list.push(Arc::clone(&filter));
        list.sort_by(|a, b| a.def().name.cmp(&b.def().name));
        self.write(&next)?;
        *write(&self.groups) = next;
        let created = existing.is_none();
        if let Some(old) = existing {
            old.retire();
        }
        Ok((filter.def().clone(), created))
    }

    /// The filter `name` of `group`.
    pub fn get(&self, group: &str, name: &str) -> Option<FilterDef> {
        read(&self.groups)
            .get(group)?
            .iter()
            .find(|f| f.def().name == name)
            .map(|f| f.def().clone())
    }

    /// The filters of `group`, by name.
    pub fn list(&self, group: &str) -> Vec<FilterDef> {
        read(&self.groups)
            .get(group)
            .map(|l| l.iter().map(|f| f.def().clone()).collect())
            .unwrap_or_default()
    }

    /// Deletes the filter `name` of `group`; returns whether it existed.
    pub fn delete(&self, group: &str, name: &str) -> Result<bool, FilterError> {
        let _changes = lock(&self.changes);
        let mut next = self.snapshot();
        let Some(list) = next.get_mut(group) else {
            return Ok(false);
        };
        let Some(at) = list.iter().position(|f| f.def().name == name) else {
            return Ok(false);
        };
        let gone = list.remove(at);
        if list.is_empty() {
            next.remove(group);
        }
        self.write(&next)?;
        *write(&self.groups) = next;
        gone.retire();
        Ok(true)
    }

    /// Writes what was gathered to the sink: every aggregate so far, and
    /// the defaults of minutes closed by `now_ms`. Returns the number of
    /// records written (0 when the sink failed: they are lost, counted in
    /// [`MetricFilterStats::sink_errors`]).
    pub fn flush(&self, now_ms: i64) -> usize {
        let records = lock(&self.pending).take(now_ms);
        if records.is_empty() {
            return 0;
        }
        match self.sink.put(&records) {
            Ok(()) => {
                self.counters
                    .filter_records
                    .fetch_add(records.len() as u64, Ordering::Relaxed);
                records.len()
            }
            Err(err) => {
                self.counters.sink_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(error = %err, records = records.len(), "metric filter data could not be stored");
                0
            }
        }
    }

    /// Whether [`MetricFilters::flush`] has something to write now or
    /// later (an aggregate, or a default still owed); the flusher skips
    /// its blocking call while it has not.
    pub fn has_pending(&self) -> bool {
        !lock(&self.pending).is_idle()
    }

    /// Extracts the metrics embedded in `batch`'s events (EMF) at `now_ms`
    /// and hands them to the sink at once; `None` when no event was EMF.
    pub fn emf(&self, batch: &Batch<'_>, now_ms: i64) -> Option<EmfReport> {
        let mut report: Option<EmfReport> = None;
        let mut records = Vec::new();
        for (index, event) in batch.events() {
            let Some(out) = emf::extract(&event.message, now_ms) else {
                continue;
            };
            let r = report.get_or_insert_with(EmfReport::default);
            r.metrics += out.records.len();
            r.invalid.extend(
                out.errors
                    .into_iter()
                    .map(|message| EmfInvalid { index, message }),
            );
            records.extend(out.records);
        }
        let r = report.as_ref()?;
        self.counters
            .emf_invalid
            .fetch_add(r.invalid.len() as u64, Ordering::Relaxed);
        if !records.is_empty() {
            match self.sink.put(&records) {
                Ok(()) => {
                    self.counters
                        .emf_records
                        .fetch_add(records.len() as u64, Ordering::Relaxed);
                }
                Err(err) => {
                    self.counters.sink_errors.fetch_add(1, Ordering::Relaxed);
                    tracing::warn!(error = %err, group = batch.group, "EMF metrics could not be stored");
                }
            }
        }
        report
    }

    /// The counters since start.
    pub fn stats(&self) -> MetricFilterStats {
        let c = &self.counters;
        MetricFilterStats {
            matched_events: c.matched_events.load(Ordering::Relaxed),
            filter_records: c.filter_records.load(Ordering::Relaxed),
            emf_records: c.emf_records.load(Ordering::Relaxed),
            emf_invalid: c.emf_invalid.load(Ordering::Relaxed),
            sink_errors: c.sink_errors.load(Ordering::Relaxed),
        }
    }

    fn snapshot(&self) -> BTreeMap<String, Vec<Arc<MetricFilter>>> {
        read(&self.groups).clone()
    }

    /// Writes every definition atomically (a synced temporary file renamed
    /// over the old one).
    fn write(&self, groups: &BTreeMap<String, Vec<Arc<MetricFilter>>>) -> Result<(), FilterError> {
        use std::io::Write as _;
        let file = File {
            filters: groups.values().flatten().map(|f| f.def().clone()).collect(),
        };
        let storage = |message: String| FilterError::Storage {
            path: self.path.clone(),
            message,
        };
        let bytes = serde_json::to_vec_pretty(&file).map_err(|e| storage(e.to_string()))?;
        let tmp = self.path.with_extension("json.tmp");
        let dir = self.path.parent().unwrap_or(Path::new("."));
        let write = || -> std::io::Result<()> {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&bytes)?;
            f.sync_all()?;
            std::fs::rename(&tmp, &self.path)?;
            std::fs::File::open(dir)?.sync_all()
        };
        write().map_err(|e| storage(e.to_string()))
    }
}

impl Tap for MetricFilters {
    fn stored(&self, batch: &Batch<'_>) {
        let filters: Vec<Arc<MetricFilter>> = match read(&self.groups).get(batch.group) {
            Some(list) => list.clone(),
            None => return,
        };
        let with_default: Vec<usize> = (0..filters.len())
            .filter(|&i| filters[i].default_value().is_some())
            .collect();
        let mut hits: Vec<Hit> = Vec::new();
        let mut minutes: BTreeMap<i64, Vec<bool>> = BTreeMap::new();
        let mut matched = 0u64;
        for (_, event) in batch.events() {
            let minute = minute_of(event.timestamp);
            let mut row = (!with_default.is_empty()).then(|| {
                minutes
                    .entry(minute)
                    .or_insert_with(|| vec![false; with_default.len()])
            });
            for (i, filter) in filters.iter().enumerate() {
                let Some(found) = filter.evaluate(&event.message) else {
                    continue;
                };
                matched += 1;
                let Some((value, dims)) = found else {
                    continue;
                };
                hits.push((i, minute, value, dims));
                if let (Some(row), Ok(at)) = (row.as_deref_mut(), with_default.binary_search(&i)) {
                    row[at] = true;
                }
            }
        }
        if matched > 0 {
            self.counters
                .matched_events
                .fetch_add(matched, Ordering::Relaxed);
        }
        lock(&self.pending).merge(batch.group, &filters, hits, &with_default, minutes);
    }

    fn group_deleted(&self, group: &str) {
        let _changes = lock(&self.changes);
        let mut next = self.snapshot();
        let Some(gone) = next.remove(group) else {
            return;
        };
        if let Err(err) = self.write(&next) {
            tracing::warn!(error = %err, group, "the deleted group's metric filters stay in the file");
        }
        *write(&self.groups) = next;
        for f in gone {
            f.retire();
        }
        lock(&self.pending).forget_group(group);
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
