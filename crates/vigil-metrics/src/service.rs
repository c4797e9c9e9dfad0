//! The metrics service the server wires: the time-series store fed by the
//! registry's per-second drain and by the custom-metrics API, queried by
//! statistic, by metric math and by the alarm engine.

use std::path::Path;
use std::sync::Arc;

use std::str::FromStr;

use crate::aggregate::Aggregate;
use crate::math::{self, MathError, MetricDataQuery, MetricStat, Output, Range, Series};
use crate::model::{Resolution, SeriesKey};
use crate::registry::Registry;
use crate::statistic::Statistic;
use crate::tsdb::{
    Query, QueryError, QueryResult, Record, SeriesFilter, Tsdb, TsdbConfig, TsdbError,
};

/// The metric store and the registry whose drains it keeps.
#[derive(Debug)]
pub struct MetricsService {
    tsdb: Tsdb,
    registry: Arc<Registry>,
}

impl MetricsService {
    /// Opens (or creates) the store in `dir`; the registry's drains are
    /// stored by [`MetricsService::tick`].
    pub fn open(
        dir: &Path,
        config: TsdbConfig,
        registry: Arc<Registry>,
    ) -> Result<Self, TsdbError> {
        Ok(MetricsService {
            tsdb: Tsdb::open(dir, config)?,
            registry,
        })
    }

    /// A store in memory (tests, and `metrics.enabled` without a disk).
    pub fn in_memory(config: TsdbConfig, registry: Arc<Registry>) -> Result<Self, TsdbError> {
        Ok(MetricsService {
            tsdb: Tsdb::in_memory(config)?,
            registry,
        })
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
        records.len()
    }

    /// Stores data the API acknowledged: in the write-ahead log before this
    /// returns, so it survives `kill -9`.
    pub fn put(&self, records: &[Record]) -> Result<(), TsdbError> {
        self.tsdb.record_batch_durable(records)
    }

    /// The statistics of each period of `q`.
    pub fn query(&self, q: &Query, now_ms: i64) -> Result<QueryResult, QueryError> {
        self.tsdb.query(q, now_ms)
    }

    /// One metric's statistic per period, as a series for metric math.
    pub fn fetch(&self, stat: &MetricStat, range: &Range, now_ms: i64) -> Result<Series, String> {
        let statistic = Statistic::from_str(&stat.stat)?;
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
        let result = self.tsdb.query(&q, now_ms).map_err(|e| e.to_string())?;
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
        let mut fetch = |stat: &MetricStat| self.fetch(stat, &range, now_ms);
        math::run(queries, range, &mut fetch)
    }

    /// The series matching `filter`.
    pub fn list(&self, filter: &SeriesFilter) -> Vec<SeriesKey> {
        self.tsdb.list(filter)
    }

    /// Writes blocks to disk and cuts the write-ahead log.
    pub fn checkpoint(&self) -> Result<(), TsdbError> {
        self.tsdb.checkpoint()
    }
}

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
