//! The metrics service the server wires: the time-series store fed by the
//! registry's per-second drain and by the custom-metrics API, queried by
//! statistic, by metric math and by the alarm engine.

use std::path::Path;
use std::sync::Arc;

use std::str::FromStr;

use crate::aggregate::Aggregate;
use crate::alarm::{
    AlarmData, AlarmEngine, AlarmError, Dispatch, MetricAlarm, MetricSource, Point,
};
use crate::fleet::{Evaluator, Fleet};
use crate::math::{self, MathError, MetricDataQuery, MetricStat, Output, Range, Series};
use crate::model::{Resolution, SeriesKey};
use crate::notify::{Notifier, NotifierConfig};
use crate::registry::Registry;
use crate::statistic::Statistic;
use crate::tsdb::{
    Query, QueryError, QueryResult, Record, SeriesFilter, Tsdb, TsdbConfig, TsdbError,
};

/// The metric store, the registry whose drains it keeps, the alarm engine
/// evaluated over the store and the notifier its transitions go to.
#[derive(Debug)]
pub struct MetricsService {
    tsdb: Tsdb,
    registry: Arc<Registry>,
    alarms: AlarmEngine,
    notifier: Notifier,
    /// `metrics.url`: the fleet's shared store; queries and alarms read it.
    fleet: Option<Arc<Fleet>>,
}

/// What goes wrong opening the service.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The time-series store.
    #[error("{0}")]
    Tsdb(#[from] TsdbError),
    /// The alarm engine's state file.
    #[error("{0}")]
    Alarms(#[from] AlarmError),
}

impl MetricsService {
    /// Opens (or creates) the store in `dir` (the alarms' state in
    /// `dir/alarms`); the registry's drains are stored by
    /// [`MetricsService::tick`].
    pub fn open(
        dir: &Path,
        config: TsdbConfig,
        registry: Arc<Registry>,
        notifier: NotifierConfig,
    ) -> Result<Self, OpenError> {
        let alarms_dir = dir.join("alarms");
        std::fs::create_dir_all(&alarms_dir).map_err(|err| AlarmError::Storage {
            path: alarms_dir.display().to_string(),
            message: err.to_string(),
        })?;
        Ok(MetricsService {
            tsdb: Tsdb::open(dir, config)?,
            registry,
            alarms: AlarmEngine::open(&alarms_dir)?,
            notifier: Notifier::new(notifier),
            fleet: None,
        })
    }

    /// A store in memory (tests).
    pub fn in_memory(config: TsdbConfig, registry: Arc<Registry>) -> Result<Self, TsdbError> {
        Ok(MetricsService {
            tsdb: Tsdb::in_memory(config)?,
            registry,
            alarms: AlarmEngine::in_memory(),
            notifier: Notifier::new(NotifierConfig::default()),
            fleet: None,
        })
    }

    /// Shares this replica's aggregates with a fleet and reads the fleet's
    /// from now on (queries, listing, alarms); the alarms are evaluated only
    /// while this replica holds the fleet's lock. The query methods then
    /// block on PostgreSQL: call them from a blocking thread.
    pub fn with_fleet(mut self, fleet: Arc<Fleet>) -> Self {
        self.fleet = Some(fleet);
        self
    }

    /// The fleet's shared store, if any.
    pub fn fleet(&self) -> Option<&Arc<Fleet>> {
        self.fleet.as_ref()
    }

    /// Whether this replica evaluates the alarms.
    pub fn evaluator(&self) -> Evaluator {
        match &self.fleet {
            None => Evaluator {
                fleet: false,
                leader: true,
                replica: None,
            },
            Some(fleet) => Evaluator {
                fleet: true,
                leader: fleet.is_leader(),
                replica: Some(fleet.replica().to_owned()),
            },
        }
    }

    /// Writes what waits for the fleet's store (at shutdown).
    pub async fn flush_fleet(&self) {
        if let Some(fleet) = &self.fleet {
            fleet.flush().await;
        }
    }

    /// The alarm engine.
    pub fn alarms(&self) -> &AlarmEngine {
        &self.alarms
    }

    /// The notifier (its delivery counters).
    pub fn notifier(&self) -> &Notifier {
        &self.notifier
    }

    /// Evaluates the alarms due at `now_ms` and sends each transition's
    /// actions, recording every delivery or failure in the alarm's history.
    /// The store is read on a blocking thread; sends run concurrently.
    ///
    /// In a fleet only the holder of the fleet's lock evaluates; it saves
    /// the alarm state to the shared store before sending.
    pub async fn evaluate_alarms(self: &Arc<Self>, now_ms: i64) {
        if let Some(fleet) = &self.fleet {
            let evaluator = Arc::clone(self);
            let sender = Arc::clone(self);
            let evaluate = async move {
                tokio::task::spawn_blocking(move || evaluator.alarms.tick(now_ms, &*evaluator))
                    .await
                    .map_err(|err| tracing::error!(error = %err, "alarm evaluation task failed"))
                    .ok()
            };
            fleet
                .alarm_slot(&self.alarms, now_ms, evaluate, move |dispatches| {
                    Box::pin(async move { sender.dispatch(dispatches).await })
                })
                .await;
            return;
        }
        let service = Arc::clone(self);
        let dispatches =
            match tokio::task::spawn_blocking(move || service.alarms.tick(now_ms, &*service)).await
            {
                Ok(dispatches) => dispatches,
                Err(err) => {
                    tracing::error!(error = %err, "alarm evaluation task failed");
                    return;
                }
            };
        self.dispatch(dispatches).await;
    }

    /// Sends what a transition (evaluated or forced) asks for.
    pub async fn dispatch(self: &Arc<Self>, dispatches: Vec<Dispatch>) {
        let mut sends = tokio::task::JoinSet::new();
        for (notification, actions) in dispatches {
            for (index, action) in actions.into_iter().enumerate() {
                let service = Arc::clone(self);
                let notification = notification.clone();
                sends.spawn(async move {
                    let result = service
                        .notifier
                        .send(&notification, &action)
                        .await
                        .map(|_| ())
                        .map_err(|err| err.to_string());
                    service.alarms.record_action_result(
                        &notification.alarm_name,
                        notification.new_state,
                        index,
                        result,
                        now_ms(),
                    );
                });
            }
        }
        while sends.join_next().await.is_some() {}
    }

    /// The time-series store.
    pub fn tsdb(&self) -> &Tsdb {
        &self.tsdb
    }

    /// The registry.
    pub fn registry(&self) -> &Arc<Registry> {
        &self.registry
    }

    /// Once a second: stores what the hot path recorded since the last
    /// tick as 1 s points at `now_ms` (Vigil's own metrics may lose at most
    /// the last second). Returns the number of series written.
    pub fn tick(&self, now_ms: i64) -> usize {
        let drained = self.registry.drain();
        let records = own_records(drained, now_ms);
        self.tsdb.record_batch(&records);
        if let Some(fleet) = &self.fleet {
            fleet.enqueue(&records);
        }
        records.len()
    }

    /// Stores data the API acknowledged: in the write-ahead log before this
    /// returns, so it survives `kill -9`.
    /// In a fleet they are also queued for the shared store.
    pub fn put(&self, records: &[Record]) -> Result<(), TsdbError> {
        self.tsdb.record_batch_durable(records)?;
        if let Some(fleet) = &self.fleet {
            fleet.enqueue(records);
        }
        Ok(())
    }

    /// The statistics of each period of `q` (in a fleet, of every replica's
    /// data merged).
    pub fn query(&self, q: &Query, now_ms: i64) -> Result<QueryResult, QueryError> {
        match &self.fleet {
            None => self.tsdb.query(q, now_ms),
            Some(fleet) => {
                let periods = fleet.block_on(fleet.periods(q, now_ms))?;
                Ok(crate::tsdb::evaluate(&periods, &q.statistics))
            }
        }
    }

    /// One metric's statistic per period, as a series for metric math.
    pub fn fetch(&self, stat: &MetricStat, range: &Range, now_ms: i64) -> Result<Series, String> {
        self.fetch_series(stat, range, now_ms)
            .map_err(|err| err.unwrap_or_else(|| QueryError::Unavailable.to_string()))
    }

    /// [`MetricsService::fetch`]; `Err(None)` when the fleet's store did not
    /// answer.
    fn fetch_series(
        &self,
        stat: &MetricStat,
        range: &Range,
        now_ms: i64,
    ) -> Result<Series, Option<String>> {
        let statistic = Statistic::from_str(&stat.stat).map_err(Some)?;
        let q = Query {
            namespace: stat.namespace.clone(),
            name: stat.metric_name.clone(),
            dimensions: stat.dimensions.clone(),
            unit: stat.unit,
            start_ms: range.start_ms,
            end_ms: range.end_ms,
            period_s: stat.period,
            statistics: vec![statistic],
        };
        let result = self.query(&q, now_ms).map_err(|e| match e {
            QueryError::Unavailable => None,
            other => Some(other.to_string()),
        })?;
        let column = result.values.into_iter().next().unwrap_or_default();
        Ok(Series::from_points(
            result
                .timestamps
                .into_iter()
                .zip(column)
                .filter_map(|(t, v)| Some((t, v?))),
        ))
    }

    /// Runs a set of metric queries and expressions (SEMANTICS.md §1.3);
    /// the entries with `return_data` come back.
    pub fn query_math(
        &self,
        queries: &[MetricDataQuery],
        range: Range,
        now_ms: i64,
    ) -> Result<Vec<Output>, MathError> {
        let mut unavailable = false;
        let mut fetch = |stat: &MetricStat| {
            self.fetch_series(stat, &range, now_ms).map_err(|err| {
                unavailable |= err.is_none();
                err.unwrap_or_else(|| QueryError::Unavailable.to_string())
            })
        };
        let result = math::run(queries, range, &mut fetch);
        if unavailable {
            return Err(MathError::Unavailable);
        }
        result
    }

    /// The series matching `filter` (in a fleet, every replica's).
    pub fn list(&self, filter: &SeriesFilter) -> Result<Vec<SeriesKey>, QueryError> {
        match &self.fleet {
            None => Ok(self.tsdb.list(filter)),
            Some(fleet) => fleet.block_on(fleet.list(filter)),
        }
    }

    /// Writes blocks to disk and cuts the write-ahead log.
    pub fn checkpoint(&self) -> Result<(), TsdbError> {
        self.tsdb.checkpoint()
    }
}

impl AlarmData for MetricsService {
    fn fetch(
        &self,
        alarm: &MetricAlarm,
        start_ms: i64,
        end_ms: i64,
        period_s: u32,
    ) -> Result<Vec<Point>, String> {
        let now = now_ms();
        match alarm.source() {
            MetricSource::Single {
                namespace,
                metric_name,
                dimensions,
                statistic,
                unit,
            } => {
                let q = Query {
                    namespace: namespace.clone(),
                    name: metric_name.clone(),
                    dimensions: dimensions.clone(),
                    unit: *unit,
                    start_ms,
                    end_ms,
                    period_s,
                    statistics: vec![*statistic, Statistic::SampleCount],
                };
                let result = self.query(&q, now).map_err(|e| e.to_string())?;
                let mut columns = result.values.into_iter();
                let values = columns.next().unwrap_or_default();
                let counts = columns.next().unwrap_or_default();
                Ok(result
                    .timestamps
                    .into_iter()
                    .zip(values)
                    .zip(counts)
                    .filter_map(|((timestamp_ms, value), count)| {
                        Some(Point {
                            timestamp_ms,
                            value: value?,
                            sample_count: count,
                        })
                    })
                    .collect())
            }
            MetricSource::Math(queries) => {
                let range = Range {
                    start_ms,
                    end_ms,
                    period_s,
                };
                let outputs = self
                    .query_math(queries, range, now)
                    .map_err(|e| e.to_string())?;
                let output = outputs
                    .into_iter()
                    .next()
                    .ok_or("no entry has return_data")?;
                Ok(output
                    .timestamps
                    .into_iter()
                    .zip(output.values)
                    .map(|(timestamp_ms, value)| Point {
                        timestamp_ms,
                        value,
                        sample_count: None,
                    })
                    .collect())
            }
        }
    }
}

pub use crate::model::now_ms;

/// A drain as 1 s records at `now_ms`.
fn own_records(drained: Vec<(SeriesKey, Aggregate)>, now_ms: i64) -> Vec<Record> {
    drained
        .into_iter()
        .map(|(key, aggregate)| Record {
            key,
            timestamp_ms: now_ms,
            aggregate,
            resolution: Resolution::High,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::PromName;
    use crate::statistic::Statistic;

    #[test]
    fn a_tick_stores_the_drain_as_one_second_points() {
        let registry = Arc::new(Registry::new());
        let service = MetricsService::in_memory(TsdbConfig::default(), Arc::clone(&registry))
            .unwrap_or_else(|e| panic!("{e}"));
        let key = SeriesKey::new("Ns", "Hits");
        let hits = registry.counter(
            key.clone(),
            PromName {
                name: "ns_hits".into(),
                help: "hits",
            },
        );
        let t0 = 1_764_547_200_000;
        hits.add(3);
        assert_eq!(service.tick(t0), 1);
        hits.add(4);
        assert_eq!(service.tick(t0 + 1000), 1);
        let q = Query::new(
            &key,
            t0,
            t0 + 60_000,
            60,
            vec![Statistic::Sum, Statistic::SampleCount],
        );
        let result = service
            .query(&q, t0 + 2000)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(result.timestamps, vec![t0]);
        assert_eq!(result.values[0], vec![Some(7.0)]);
        assert_eq!(result.values[1], vec![Some(2.0)]);
    }
}
