//! Subscription filters (SEMANTICS §3.3): a named filter pattern on a log
//! group with a destination (an HTTP endpoint receiving the cloud's
//! `DATA_MESSAGE` payload, a file of JSON lines, or an OTLP/HTTP
//! collector). At most two per group.
//!
//! [`Subscriptions`] is a [`Tap`]: inside the append, each kept event is
//! matched against the group's filters and a matching one is pushed into
//! that filter's bounded buffer (what does not fit is dropped and counted;
//! ingestion never waits). One tokio task per filter batches its buffer
//! (up to [`SubscriptionOptions::batch_events`] or what came in within
//! [`SubscriptionOptions::linger`]), delivers it, retries with exponential
//! backoff, and removes the events once delivered or given up: delivery is
//! at least once while the process runs (buffers are in memory). Each
//! event carries an `id` that stays the same across retries.
//!
//! Definitions persist in `subscriptions.json` beside the groups' catalog.

mod buffer;
pub mod definition;
mod deliver;
pub mod otlp;
pub mod payload;
mod persist;
mod tap;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::task::JoinHandle;
use vigil_metrics::notify::{HttpClient, RetryPolicy};

pub use buffer::DeliveryStats;
pub use definition::{Destination, Encoding, FilterSpec, SubscriptionFilter};
pub use persist::FILE;

use buffer::{Buffer, lock};
use deliver::{Delivery, FileSink, HttpSink, OtlpSink, Sink};

use crate::pattern::Pattern;
use crate::store::LogStore;

/// Subscription filters a group may have.
pub const MAX_FILTERS_PER_GROUP: usize = 2;

/// What goes wrong defining a subscription.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubscriptionError {
    /// A field of the definition breaks the rules.
    #[error("{field}: {message}")]
    Invalid {
        /// `name`, `pattern`, `destination.url`, ...
        field: &'static str,
        /// Expected versus got.
        message: String,
    },
    /// The group has its two filters already.
    #[error(
        "log group {0:?} has {MAX_FILTERS_PER_GROUP} subscription filters already, the most it \
         may have: delete one, or put one of the same name to replace it"
    )]
    Limit(String),
    /// No such group.
    #[error("log group {0:?} does not exist")]
    NoGroup(String),
    /// No such filter.
    #[error("subscription filter {name:?} of log group {group:?} does not exist")]
    NotFound {
        /// The group.
        group: String,
        /// The filter's name.
        name: String,
    },
    /// `subscriptions.json` cannot be read or written.
    #[error("{path}: {message}")]
    Storage {
        /// The file.
        path: PathBuf,
        /// What failed.
        message: String,
    },
    /// Opened outside a tokio runtime (the delivery tasks need one).
    #[error("subscriptions need a tokio runtime")]
    NoRuntime,
}

impl SubscriptionError {
    pub(crate) fn invalid(field: &'static str, message: impl Into<String>) -> Self {
        SubscriptionError::Invalid {
            field,
            message: message.into(),
        }
    }

    pub(crate) fn storage(path: &Path, message: impl Into<String>) -> Self {
        SubscriptionError::Storage {
            path: path.to_owned(),
            message: message.into(),
        }
    }

    /// The error code at the API boundary.
    pub fn code(&self) -> &'static str {
        match self {
            SubscriptionError::Invalid { .. } => "bad_request",
            SubscriptionError::Limit(_) => "conflict",
            SubscriptionError::NoGroup(_) | SubscriptionError::NotFound { .. } => "not_found",
            SubscriptionError::Storage { .. } | SubscriptionError::NoRuntime => "internal",
        }
    }
}

/// How subscriptions buffer and deliver. Every field has a default.
#[derive(Debug, Clone)]
pub struct SubscriptionOptions {
    /// The payload's `owner`. Default: `vigil`.
    pub owner: String,
    /// Events a filter's buffer holds; more are dropped. Default: 10,000.
    pub buffer_events: usize,
    /// Most events in one delivery. Default: 500.
    pub batch_events: usize,
    /// Most message bytes in one delivery (one event may be more).
    /// Default: 1 MiB.
    pub batch_bytes: usize,
    /// How long a delivery waits for a batch to fill. Default: 1 s.
    pub linger: Duration,
    /// Retries of a failed delivery. Default: 6 attempts, waits of 0.5 s
    /// doubling up to 10 s, within 60 s.
    pub retry: RetryPolicy,
    /// TCP/TLS connect timeout. Default: 5 s.
    pub connect_timeout: Duration,
    /// One attempt's timeout. Default: 10 s.
    pub request_timeout: Duration,
    /// Where [`Subscriptions::put`] may write `file` destinations: a
    /// relative path is resolved against it, an absolute one must lie
    /// inside it, so an API key cannot append to any file the process may
    /// write. [`Subscriptions::put_from_config`] is not held to it.
    /// Default: `None`, which refuses every `file` destination from `put`.
    pub files_dir: Option<PathBuf>,
}

impl Default for SubscriptionOptions {
    fn default() -> Self {
        SubscriptionOptions {
            owner: "vigil".to_owned(),
            buffer_events: 10_000,
            batch_events: 500,
            batch_bytes: 1 << 20,
            linger: Duration::from_secs(1),
            retry: RetryPolicy {
                max_attempts: 6,
                initial_backoff: Duration::from_millis(500),
                max_backoff: Duration::from_secs(10),
                deadline: Duration::from_secs(60),
            },
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(10),
            files_dir: None,
        }
    }
}

/// A filter with its counters.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FilterView {
    /// The definition.
    pub filter: SubscriptionFilter,
    /// Its delivery so far.
    pub delivery: DeliveryStats,
}

/// What `put` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    /// A new filter.
    Created,
    /// A filter of that name was replaced (its buffer and counters kept).
    Replaced,
}

#[derive(Debug)]
struct Active {
    filter: SubscriptionFilter,
    pattern: Pattern,
    buffer: Arc<Buffer>,
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Active {
    fn abort(&self) {
        if let Some(task) = lock(&self.task).take() {
            task.abort();
        }
    }
}

/// Every subscription filter, and the tap that feeds them.
#[derive(Debug)]
pub struct Subscriptions {
    dir: PathBuf,
    store: Arc<LogStore>,
    options: Arc<SubscriptionOptions>,
    runtime: tokio::runtime::Handle,
    http: HttpClient,
    /// By group, in the order they were made.
    active: RwLock<HashMap<String, Vec<Arc<Active>>>>,
    /// Serialises changes and the file's rewrites.
    changes: Mutex<()>,
    next_id: AtomicU64,
}

impl Subscriptions {
    /// Reads the definitions in `dir` (the log store's directory) and
    /// starts their delivery tasks on the current tokio runtime.
    pub fn open(
        dir: impl AsRef<Path>,
        store: Arc<LogStore>,
        options: SubscriptionOptions,
    ) -> Result<Subscriptions, SubscriptionError> {
        let runtime =
            tokio::runtime::Handle::try_current().map_err(|_| SubscriptionError::NoRuntime)?;
        let dir = dir.as_ref().to_owned();
        let mut options = options;
        if let Some(files) = &mut options.files_dir
            && files.is_relative()
        {
            let cwd = std::env::current_dir()
                .map_err(|e| SubscriptionError::storage(files, e.to_string()))?;
            *files = cwd.join(&*files);
        }
        let subs = Subscriptions {
            http: HttpClient::new(options.connect_timeout),
            dir,
            store,
            options: Arc::new(options),
            runtime,
            active: RwLock::new(HashMap::new()),
            changes: Mutex::new(()),
            next_id: AtomicU64::new(0),
        };
        for filter in persist::read(&subs.dir)? {
            let in_file = |e: SubscriptionError| {
                SubscriptionError::storage(
                    &subs.dir.join(FILE),
                    format!("filter {:?} of {:?}: {e}", filter.name, filter.group),
                )
            };
            definition::check_name(&filter.name).map_err(in_file)?;
            let pattern = definition::parse_pattern(&filter.pattern).map_err(in_file)?;
            let sink = subs.sink_for(&filter.destination).map_err(in_file)?;
            subs.install(filter, pattern, sink);
        }
        Ok(subs)
    }

    /// Creates or replaces filter `name` of `group` (which must exist);
    /// a third filter of a group is refused. A `file` destination must lie
    /// in [`SubscriptionOptions::files_dir`] (a relative path is resolved
    /// there, and stored resolved).
    pub fn put(
        &self,
        group: &str,
        name: &str,
        mut spec: FilterSpec,
        now_ms: i64,
    ) -> Result<PutOutcome, SubscriptionError> {
        if let Destination::File { path } = &mut spec.destination {
            *path = self.confine(path)?;
        }
        self.put_from_config(group, name, spec, now_ms)
    }

    /// [`Subscriptions::put`] for a definition of the operator's config
    /// file: a `file` destination may be anywhere.
    pub fn put_from_config(
        &self,
        group: &str,
        name: &str,
        spec: FilterSpec,
        now_ms: i64,
    ) -> Result<PutOutcome, SubscriptionError> {
        definition::check_name(name)?;
        let pattern = definition::parse_pattern(&spec.pattern)?;
        let sink = self.sink_for(&spec.destination)?;
        if !self.store.has_group(group) {
            return Err(SubscriptionError::NoGroup(group.to_owned()));
        }
        let _changes = lock(&self.changes);
        let existing = self.find(group, name);
        if existing.is_none()
            && read_lock(&self.active)
                .get(group)
                .is_some_and(|v| v.len() >= MAX_FILTERS_PER_GROUP)
        {
            return Err(SubscriptionError::Limit(group.to_owned()));
        }
        let filter = SubscriptionFilter {
            group: group.to_owned(),
            name: name.to_owned(),
            pattern: spec.pattern,
            destination: spec.destination,
            created_ms: existing.as_ref().map_or(now_ms, |a| a.filter.created_ms),
        };
        let mut all = self.filters();
        all.retain(|f| !(f.group == group && f.name == name));
        all.push(filter.clone());
        persist::write(&self.dir, all)?;
        match existing {
            Some(old) => {
                self.replace(&old, filter, pattern, sink);
                Ok(PutOutcome::Replaced)
            }
            None => {
                self.install(filter, pattern, sink);
                Ok(PutOutcome::Created)
            }
        }
    }

    /// Filter `name` of `group` with its counters.
    pub fn get(&self, group: &str, name: &str) -> Option<FilterView> {
        self.find(group, name).map(|a| view(&a))
    }

    /// The filters of `group`, in the order they were made.
    pub fn list(&self, group: &str) -> Vec<FilterView> {
        read_lock(&self.active)
            .get(group)
            .map(|v| v.iter().map(|a| view(a)).collect())
            .unwrap_or_default()
    }

    /// Deletes filter `name` of `group`; what its buffer held is not
    /// delivered. Returns whether it existed.
    pub fn delete(&self, group: &str, name: &str) -> Result<bool, SubscriptionError> {
        let _changes = lock(&self.changes);
        if self.find(group, name).is_none() {
            return Ok(false);
        }
        let mut all = self.filters();
        all.retain(|f| !(f.group == group && f.name == name));
        persist::write(&self.dir, all)?;
        let mut active = write_lock(&self.active);
        if let Some(list) = active.get_mut(group) {
            list.retain(|a| {
                let keep = a.filter.name != name;
                if !keep {
                    a.abort();
                }
                keep
            });
            if list.is_empty() {
                active.remove(group);
            }
        }
        Ok(true)
    }

    /// Every filter's counters, for the server's metrics.
    pub fn stats(&self) -> Vec<FilterView> {
        let active = read_lock(&self.active);
        let mut out: Vec<FilterView> = active.values().flatten().map(|a| view(a)).collect();
        out.sort_by(|a, b| {
            (&a.filter.group, &a.filter.name).cmp(&(&b.filter.group, &b.filter.name))
        });
        out
    }

    /// Asks every delivery task to deliver what it holds (one attempt per
    /// batch) and waits for them up to `timeout`; the rest are stopped.
    pub async fn shutdown(&self, timeout: Duration) {
        let all: Vec<Arc<Active>> = read_lock(&self.active)
            .values()
            .flatten()
            .cloned()
            .collect();
        for a in &all {
            a.buffer.close();
        }
        let deadline = tokio::time::Instant::now() + timeout;
        for a in &all {
            let task = lock(&a.task).take();
            if let Some(mut task) = task
                && tokio::time::timeout_at(deadline, &mut task).await.is_err()
            {
                tracing::warn!(group = %a.filter.group, filter = %a.filter.name,
                    buffered = a.buffer.len(), "subscription not flushed at shutdown");
                task.abort();
            }
        }
    }

    /// `path` inside `files_dir`, or why not (the directory is created).
    fn confine(&self, path: &Path) -> Result<PathBuf, SubscriptionError> {
        let invalid = |m: String| SubscriptionError::invalid("destination.path", m);
        let Some(dir) = &self.options.files_dir else {
            return Err(invalid(
                "file destinations can only be defined in the config file here".into(),
            ));
        };
        if path
            .components()
            .any(|c| matches!(c, std::path::Component::ParentDir))
        {
            return Err(invalid("must not contain `..`".into()));
        }
        let resolved = dir.join(path);
        if !resolved.starts_with(dir) || resolved == *dir {
            return Err(invalid(format!(
                "must name a file in {} (a relative path is resolved there)",
                dir.display()
            )));
        }
        if let Some(parent) = resolved.parent() {
            std::fs::create_dir_all(parent).map_err(|e| {
                SubscriptionError::storage(parent, format!("cannot create the directory: {e}"))
            })?;
        }
        Ok(resolved)
    }

    fn find(&self, group: &str, name: &str) -> Option<Arc<Active>> {
        read_lock(&self.active)
            .get(group)?
            .iter()
            .find(|a| a.filter.name == name)
            .cloned()
    }

    fn filters(&self) -> Vec<SubscriptionFilter> {
        read_lock(&self.active)
            .values()
            .flatten()
            .map(|a| a.filter.clone())
            .collect()
    }

    fn sink_for(&self, destination: &Destination) -> Result<Arc<dyn Sink>, SubscriptionError> {
        let uri = definition::target_uri(destination)?;
        Ok(match (destination, uri) {
            (Destination::Http { encoding, .. }, Some(uri)) => Arc::new(HttpSink {
                client: self.http.clone(),
                uri,
                encoding: *encoding,
                owner: self.options.owner.clone(),
            }),
            (Destination::Otlp { .. }, Some(uri)) => Arc::new(OtlpSink {
                client: self.http.clone(),
                uri,
            }),
            (Destination::File { path }, _) => Arc::new(FileSink { path: path.clone() }),
            (_, None) => {
                return Err(SubscriptionError::invalid(
                    "destination",
                    "has no url to deliver to",
                ));
            }
        })
    }

    fn spawn(
        &self,
        filter: &SubscriptionFilter,
        buffer: &Arc<Buffer>,
        sink: Arc<dyn Sink>,
    ) -> JoinHandle<()> {
        self.runtime.spawn(deliver::run(Delivery {
            group: filter.group.clone(),
            name: filter.name.clone(),
            sink,
            buffer: Arc::clone(buffer),
            options: Arc::clone(&self.options),
        }))
    }

    /// Adds a filter with a sink of the caller's (tests script one).
    fn install(&self, filter: SubscriptionFilter, pattern: Pattern, sink: Arc<dyn Sink>) {
        let buffer = Arc::new(Buffer::new(self.options.buffer_events));
        let task = self.spawn(&filter, &buffer, sink);
        let group = filter.group.clone();
        let active = Arc::new(Active {
            filter,
            pattern,
            buffer,
            task: Mutex::new(Some(task)),
        });
        write_lock(&self.active)
            .entry(group)
            .or_default()
            .push(active);
    }

    /// Swaps `old` for the new definition, keeping its buffer and counters;
    /// a batch the old task was sending goes again to the new destination.
    fn replace(
        &self,
        old: &Arc<Active>,
        filter: SubscriptionFilter,
        pattern: Pattern,
        sink: Arc<dyn Sink>,
    ) {
        old.abort();
        let task = self.spawn(&filter, &old.buffer, sink);
        let new = Arc::new(Active {
            filter,
            pattern,
            buffer: Arc::clone(&old.buffer),
            task: Mutex::new(Some(task)),
        });
        let mut active = write_lock(&self.active);
        if let Some(slot) = active
            .get_mut(&new.filter.group)
            .and_then(|v| v.iter_mut().find(|a| a.filter.name == new.filter.name))
        {
            *slot = new;
        }
    }
}

fn view(a: &Active) -> FilterView {
    FilterView {
        filter: a.filter.clone(),
        delivery: a.buffer.stats(),
    }
}

fn read_lock<T>(m: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn write_lock<T>(m: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(std::sync::PoisonError::into_inner)
}
