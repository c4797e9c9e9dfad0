//! Several replicas, one set of figures (`metrics.url`): each replica keeps
//! its embedded store and also writes what it stores to PostgreSQL; queries
//! and alarms read the fleet's merged aggregates from there; one replica at
//! a time (the holder of an advisory lock) evaluates the alarms.
//!
//! - **Writing** ([`Fleet::enqueue`]): the tick's 1 s drain and the API's
//!   puts go into a bounded [`outbox`] (never the request path's business
//!   beyond a push); a task writes it every second in one transaction: the
//!   1 s rows, and this replica's running aggregate of each coarse bucket
//!   that changed. A PostgreSQL outage keeps the 1 s rows waiting up to
//!   [`OUTBOX_ROWS`], then the oldest are dropped, counted and logged; the
//!   coarse buckets are complete again at the next write.
//! - **Reading** ([`Fleet::periods`]): the §1.3 rules pick the tier, as in
//!   the embedded store; every replica's rows of each period merge
//!   ([`Aggregate::merge`]: sums add, sketches merge, so percentiles are the
//!   fleet's).
//! - **Alarms** ([`leader`]): the lock holder evaluates and saves the
//!   engine's state document before it sends; a replica that takes over
//!   adopts it first.

mod leader;
mod outbox;
mod pg;

use std::collections::BTreeMap;
use std::future::Future;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use tokio_postgres::Client;

use crate::aggregate::Aggregate;
use crate::alarm::AlarmEngine;
use crate::model::{SeriesKey, Unit};
use crate::tsdb::{Query, QueryError, Record, SeriesFilter, TierConfig};

pub use leader::Step;
use leader::{Coordinator, Leadership};
use outbox::Outbox;

/// Rows the outbox holds while PostgreSQL is away (about a minute of a
/// thousand busy series), beyond which the oldest are dropped.
pub const OUTBOX_ROWS: usize = 250_000;
/// How long a statement may take before the caller gets an error.
const STATEMENT_TIMEOUT: Duration = Duration::from_secs(5);
/// How often the outbox is written.
const FLUSH_INTERVAL: Duration = Duration::from_secs(1);

/// Errors of the shared store.
#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    /// `metrics.url` is not a PostgreSQL connection string.
    #[error("metrics.url: {0}")]
    Config(String),
    /// The server refused or went away.
    #[error("metrics.url: {0}")]
    Postgres(#[from] tokio_postgres::Error),
    /// No answer in time.
    #[error("metrics.url: no answer within {} s", STATEMENT_TIMEOUT.as_secs())]
    Timeout,
}

/// Whether this replica evaluates the alarms (what `GET /api/alarms`
/// reports).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Evaluator {
    /// `true` when the alarms are shared by a fleet (`metrics.url`).
    pub fleet: bool,
    /// Whether this replica evaluated in its last slot (always true alone).
    pub leader: bool,
    /// This process's replica id in the shared store (fleet only).
    pub replica: Option<String>,
}

/// The leader's session and its view of the leadership.
#[derive(Debug)]
struct LeaderSession {
    pg: tokio_postgres::Config,
    client: Option<Client>,
    holding: bool,
    slots: u64,
}

impl LeaderSession {
    async fn client(&mut self) -> Result<&Client, FleetError> {
        if self.client.as_ref().is_none_or(Client::is_closed) {
            self.holding = false;
            self.client = Some(timed(pg::connect(&self.pg)).await?);
        }
        self.client
            .as_ref()
            .ok_or_else(|| FleetError::Config("no leader session".into()))
    }
}

impl Coordinator for LeaderSession {
    async fn hold(&mut self) -> Result<bool, String> {
        let result: Result<bool, FleetError> = async {
            let was_holding = self.holding && self.client.as_ref().is_some_and(|c| !c.is_closed());
            let client = self.client().await?;
            if was_holding {
                // The lock lives as long as the session: a live session
                // still holds it.
                timed(client.simple_query("SELECT 1")).await?;
                Ok(true)
            } else {
                let held = timed(pg::try_lock(client)).await?;
                Ok(held)
            }
        }
        .await;
        match result {
            Ok(held) => {
                self.holding = held;
                Ok(held)
            }
            Err(err) => {
                self.holding = false;
                self.client = None;
                Err(err.to_string())
            }
        }
    }

    async fn load(&mut self) -> Result<Option<Vec<u8>>, String> {
        let client = self.client().await.map_err(|e| e.to_string())?;
        timed(pg::load_state(client))
            .await
            .map_err(|e| e.to_string())
    }
}

#[derive(Debug)]
struct LeaderState {
    leadership: Leadership,
    session: LeaderSession,
}

/// A replica's link to the shared store.
#[derive(Debug)]
pub struct Fleet {
    pg: tokio_postgres::Config,
    replica: String,
    tiers: Vec<TierConfig>,
    handle: tokio::runtime::Handle,
    outbox: Mutex<Outbox>,
    reader: Mutex<Option<Arc<Client>>>,
    leader: tokio::sync::Mutex<LeaderState>,
    is_leader: AtomicBool,
    written_rows: AtomicU64,
}

impl Fleet {
    /// Connects to `url`, creates the tables if needed and starts the task
    /// that writes the outbox every second. Fails when PostgreSQL cannot be
    /// reached. Must be called inside a Tokio runtime.
    pub async fn connect(url: &str, tiers: Vec<TierConfig>) -> Result<Arc<Fleet>, FleetError> {
        let mut pg =
            tokio_postgres::Config::from_str(url).map_err(|e| FleetError::Config(e.to_string()))?;
        pg.connect_timeout(Duration::from_secs(5));
        pg.application_name("vigil-metrics");
        let mut client = timed(pg::connect(&pg)).await?;
        timed(pg::migrate(&mut client)).await?;
        let replica = replica_id();
        let fleet = Arc::new(Fleet {
            pg: pg.clone(),
            replica,
            tiers,
            handle: tokio::runtime::Handle::current(),
            outbox: Mutex::new(Outbox::new(OUTBOX_ROWS)),
            reader: Mutex::new(None),
            leader: tokio::sync::Mutex::new(LeaderState {
                leadership: Leadership::default(),
                session: LeaderSession {
                    pg,
                    client: None,
                    holding: false,
                    slots: 0,
                },
            }),
            is_leader: AtomicBool::new(false),
            written_rows: AtomicU64::new(0),
        });
        tokio::spawn(write_every_second(Arc::downgrade(&fleet), client));
        tracing::info!(replica = %fleet.replica, "metrics.url: sharing aggregates and alarms with the fleet");
        Ok(fleet)
    }

    /// This process's replica id.
    pub fn replica(&self) -> &str {
        &self.replica
    }

    /// Whether this replica evaluated the alarms in its last slot.
    pub fn is_leader(&self) -> bool {
        self.is_leader.load(Ordering::Relaxed)
    }

    /// Rows written to the shared store since the start.
    pub fn written_rows(&self) -> u64 {
        self.written_rows.load(Ordering::Relaxed)
    }

    /// Rows waiting in the outbox, open coarse buckets, and rows dropped
    /// from the outbox since the start.
    pub fn outbox(&self) -> (usize, usize, u64) {
        let outbox = lock(&self.outbox);
        let (waiting, open) = outbox.len();
        (waiting, open, outbox.dropped())
    }

    /// Queues records for the shared store (a push; the writing task does
    /// the I/O).
    pub fn enqueue(&self, records: &[Record]) {
        let now = crate::model::now_ms();
        let dropped = lock(&self.outbox).push(records, &self.tiers, now);
        if dropped > 0 {
            tracing::warn!(
                dropped,
                "metrics.url: the shared store is behind; dropped the oldest aggregates"
            );
        }
    }

    /// Writes whatever the outbox holds now (at shutdown).
    pub async fn flush(&self) {
        let rows = lock(&self.outbox).take(crate::model::now_ms());
        if rows.is_empty() {
            return;
        }
        let result = async {
            let mut client = timed(pg::connect(&self.pg)).await?;
            let mut cache = pg::SeriesCache::new();
            timed(pg::write_rows(
                &mut client,
                &mut cache,
                &self.replica,
                &rows,
            ))
            .await
        }
        .await;
        match result {
            Ok(()) => {
                self.written_rows
                    .fetch_add(rows.len() as u64, Ordering::Relaxed);
            }
            Err(err) => {
                tracing::warn!(error = %err, rows = rows.len(), "metrics.url: last aggregates not written");
            }
        }
    }

    /// Runs `future` to completion from a blocking thread (the store's
    /// callers are synchronous: handlers call them in `spawn_blocking`, the
    /// alarm engine on its blocking thread).
    pub(crate) fn block_on<T>(&self, future: impl Future<Output = T>) -> T {
        self.handle.block_on(future)
    }

    async fn reader(&self) -> Result<Arc<Client>, FleetError> {
        if let Some(client) = lock(&self.reader).as_ref()
            && !client.is_closed()
        {
            return Ok(Arc::clone(client));
        }
        let client = Arc::new(timed(pg::connect(&self.pg)).await?);
        *lock(&self.reader) = Some(Arc::clone(&client));
        Ok(client)
    }

    /// The fleet's aggregate of each period of `q` with data, ascending:
    /// the tier the §1.3 rules pick, every replica's rows merged.
    pub(crate) async fn periods(
        &self,
        q: &Query,
        now_ms: i64,
    ) -> Result<Vec<(i64, Aggregate)>, QueryError> {
        let unavailable = |err: FleetError| {
            tracing::warn!(error = %err, "metrics.url: query failed");
            QueryError::Unavailable
        };
        let units: Vec<Unit> = match q.unit {
            Some(u) => vec![u],
            None => Unit::ALL.to_vec(),
        };
        let keys: Vec<SeriesKey> = units
            .into_iter()
            .map(|unit| SeriesKey {
                namespace: q.namespace.clone(),
                name: q.name.clone(),
                dimensions: q.dimensions.clone(),
                unit,
            })
            .collect();
        let client = self.reader().await.map_err(unavailable)?;
        let (ids, high, standard) = timed(pg::find_series(&client, &keys))
            .await
            .map_err(unavailable)?;
        let kind = crate::tsdb::DataKind { high, standard };
        let tier = crate::tsdb::plan(q, &self.tiers, kind, now_ms)?;
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let (from_ms, to_ms) = crate::tsdb::aligned(q);
        let resolution_s = self.tiers[tier].resolution_s;
        let rows = timed(pg::read_buckets(
            &client,
            &ids,
            resolution_s,
            from_ms,
            to_ms,
        ))
        .await
        .map_err(unavailable)?;
        Ok(merge_periods(rows, i64::from(q.period_s) * 1000))
    }

    /// The stored series matching `filter`, sorted.
    pub(crate) async fn list(&self, filter: &SeriesFilter) -> Result<Vec<SeriesKey>, QueryError> {
        let client = self.reader().await.map_err(|err| {
            tracing::warn!(error = %err, "metrics.url: listing failed");
            QueryError::Unavailable
        })?;
        let mut keys = timed(pg::all_series(&client)).await.map_err(|err| {
            tracing::warn!(error = %err, "metrics.url: listing failed");
            QueryError::Unavailable
        })?;
        keys.retain(|k| filter.matches(k));
        keys.sort();
        Ok(keys)
    }

    /// One alarm slot: whether this replica leads (taking the lock when it
    /// is free and adopting the shared state when it just took it), then,
    /// if it leads, `evaluate` (which returns what to send), the state saved
    /// to the shared store, and `send`. Slots never overlap: a slot that
    /// finds the previous one still running is skipped.
    pub async fn alarm_slot<F, S, D>(
        &self,
        engine: &AlarmEngine,
        now_ms: i64,
        evaluate: F,
        send: S,
    ) -> Option<Step>
    where
        F: Future<Output = Option<D>>,
        S: FnOnce(D) -> std::pin::Pin<Box<dyn Future<Output = ()> + Send>>,
    {
        let Ok(mut state) = self.leader.try_lock() else {
            tracing::debug!("alarm evaluation: the previous slot is still running");
            return None;
        };
        let LeaderState {
            leadership,
            session,
        } = &mut *state;
        let step = leadership.slot(session, engine).await;
        self.is_leader.store(step.leads(), Ordering::Relaxed);
        if !step.leads() {
            return Some(step);
        }
        let Some(dispatches) = evaluate.await else {
            return Some(step);
        };
        // Saved before sending: a successor continues from here and does
        // not notify these transitions again.
        self.save_state(session, engine, now_ms).await;
        send(dispatches).await;
        // The actions' outcomes are in the history.
        self.save_state(session, engine, now_ms).await;
        session.slots += 1;
        if session.slots % 6 == 1
            && let Ok(client) = session.client().await
        {
            match timed(pg::prune(client, &self.tiers, now_ms)).await {
                Ok(0) => {}
                Ok(deleted) => tracing::debug!(deleted, "metrics.url: rows past retention deleted"),
                Err(err) => tracing::warn!(error = %err, "metrics.url: retention delete failed"),
            }
        }
        Some(step)
    }

    async fn save_state(&self, session: &mut LeaderSession, engine: &AlarmEngine, now_ms: i64) {
        let document = engine.export_state();
        let result = match session.client().await {
            Ok(client) => timed(pg::save_state(client, &document, &self.replica, now_ms)).await,
            Err(err) => Err(err),
        };
        if let Err(err) = result {
            tracing::error!(error = %err, "alarm evaluation: the shared alarm state was not saved");
        }
    }
}

/// Merges rows (bucket start, aggregate) of any replicas into periods of
/// `period_ms`, ascending.
pub(crate) fn merge_periods(
    rows: impl IntoIterator<Item = (i64, Aggregate)>,
    period_ms: i64,
) -> Vec<(i64, Aggregate)> {
    let mut periods: BTreeMap<i64, Aggregate> = BTreeMap::new();
    for (bucket, aggregate) in rows {
        let start = bucket.div_euclid(period_ms.max(1)) * period_ms.max(1);
        match periods.entry(start) {
            std::collections::btree_map::Entry::Occupied(mut e) => e.get_mut().merge(&aggregate),
            std::collections::btree_map::Entry::Vacant(e) => {
                e.insert(aggregate);
            }
        }
    }
    periods.into_iter().collect()
}

async fn write_every_second(fleet: Weak<Fleet>, client: Client) {
    let mut client = Some(client);
    let mut cache = pg::SeriesCache::new();
    let mut failing = false;
    let mut interval = tokio::time::interval(FLUSH_INTERVAL);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        interval.tick().await;
        let Some(fleet) = fleet.upgrade() else {
            return;
        };
        let rows = lock(&fleet.outbox).take(crate::model::now_ms());
        if rows.is_empty() {
            continue;
        }
        let result = async {
            if client.as_ref().is_none_or(Client::is_closed) {
                client = None;
                cache.clear();
                client = Some(timed(pg::connect(&fleet.pg)).await?);
            }
            match client.as_mut() {
                Some(c) => timed(pg::write_rows(c, &mut cache, &fleet.replica, &rows)).await,
                None => Err(FleetError::Config("no writer session".into())),
            }
        }
        .await;
        match result {
            Ok(()) => {
                fleet
                    .written_rows
                    .fetch_add(rows.len() as u64, Ordering::Relaxed);
                if failing {
                    failing = false;
                    tracing::info!("metrics.url: writing to the shared store again");
                }
            }
            Err(err) => {
                client = None;
                let waiting = rows.len();
                let dropped = lock(&fleet.outbox).restore(rows);
                if !failing || dropped > 0 {
                    tracing::warn!(error = %err, waiting, dropped, "metrics.url: aggregates not written; retrying every second");
                }
                failing = true;
            }
        }
    }
}

/// A statement with [`STATEMENT_TIMEOUT`].
async fn timed<T, E: Into<FleetError>>(
    future: impl Future<Output = Result<T, E>>,
) -> Result<T, FleetError> {
    match tokio::time::timeout(STATEMENT_TIMEOUT, future).await {
        Ok(result) => result.map_err(Into::into),
        Err(_) => Err(FleetError::Timeout),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A new id per process start: the start time and the process id.
fn replica_id() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("{:x}-{}", nanos as u64, std::process::id())
}

#[cfg(test)]
mod tests;
