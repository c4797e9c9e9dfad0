//! Queries: validation (SEMANTICS.md §1.3), the choice of tier, and the
//! aggregation of a tier's buckets into periods.

use crate::aggregate::Aggregate;
use crate::model::{Dimensions, SeriesKey, Unit};
use crate::statistic::Statistic;

use super::block::{Columns, SketchCell};
use super::config::TierConfig;
use super::series::Piece;

/// The most points a query returns per series.
pub const MAX_POINTS: i64 = 1_440;

/// Periods allowed below 60 s, for high-resolution data.
const SUB_MINUTE: [u32; 5] = [1, 5, 10, 20, 30];

/// One series (or, with `unit: None`, the series of every unit with this
/// namespace, name and dimensions), a time range and a period.
#[derive(Debug, Clone, PartialEq)]
pub struct Query {
    /// The namespace.
    pub namespace: String,
    /// The metric name.
    pub name: String,
    /// The exact dimension set.
    pub dimensions: Dimensions,
    /// Only data sent with this unit; `None`: every unit, merged.
    pub unit: Option<Unit>,
    /// Start, Unix milliseconds, inclusive; rounded down to the period.
    pub start_ms: i64,
    /// End, Unix milliseconds, exclusive; rounded up to the period.
    pub end_ms: i64,
    /// Seconds per returned point.
    pub period_s: u32,
    /// Statistics of each period (for [`super::Tsdb::query`]).
    pub statistics: Vec<Statistic>,
}

impl Query {
    /// A query of exactly `key` (its unit included).
    pub fn new(
        key: &SeriesKey,
        start_ms: i64,
        end_ms: i64,
        period_s: u32,
        statistics: Vec<Statistic>,
    ) -> Self {
        Query {
            namespace: key.namespace.clone(),
            name: key.name.clone(),
            dimensions: key.dimensions.clone(),
            unit: Some(key.unit),
            start_ms,
            end_ms,
            period_s,
            statistics,
        }
    }
}

/// A query's answer: the starts of the periods that hold data, ascending,
/// and one column of values per statistic (`None` where the data cannot
/// answer it, e.g. a percentile of a statistic set).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct QueryResult {
    /// Period starts, Unix milliseconds, ascending.
    pub timestamps: Vec<i64>,
    /// `values[i][j]`: statistic `i` of period `j`.
    pub values: Vec<Vec<Option<f64>>>,
}

/// A query refused; every variant but [`QueryError::Unavailable`] is the
/// client's mistake (HTTP 400, `bad_request`) and names the field to fix.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QueryError {
    /// `start_ms` is not before `end_ms`.
    #[error("start_ms ({start_ms}) must be before end_ms ({end_ms})")]
    EmptyRange {
        /// As given.
        start_ms: i64,
        /// As given.
        end_ms: i64,
    },
    /// The period does not fit the data's resolution or age.
    #[error("period_s must be {expected}, got {period_s}")]
    Period {
        /// As given.
        period_s: u32,
        /// What is allowed, and why.
        expected: String,
    },
    /// More than [`MAX_POINTS`] periods.
    #[error(
        "the query spans {points} periods of {period_s} s, more than the 1440 allowed per series: use period_s {min_period_s} or more, or a shorter range from start_ms to end_ms"
    )]
    TooManyPoints {
        /// Periods the query spans.
        points: i64,
        /// As given.
        period_s: u32,
        /// The smallest allowed period that fits.
        min_period_s: u32,
    },
    /// The fleet's shared store (`metrics.url`) did not answer (HTTP 503;
    /// the detail is in the log).
    #[error("the fleet's metric store is unavailable")]
    Unavailable,
}

impl QueryError {
    /// `bad_request`, or `unavailable` for [`QueryError::Unavailable`].
    pub fn code(&self) -> &'static str {
        match self {
            QueryError::Unavailable => "unavailable",
            _ => "bad_request",
        }
    }
}

/// What the matching series were written with.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct DataKind {
    pub(crate) high: bool,
    pub(crate) standard: bool,
}

/// Checks `q` against the data's resolution, the age of its start (which
/// tiers still hold it) and the point limit; returns the index of the tier
/// to read: the coarsest whose resolution divides the period (each of its
/// buckets lies inside one period, and it has the fewest buckets).
pub(crate) fn plan(
    q: &Query,
    tiers: &[TierConfig],
    kind: DataKind,
    now_ms: i64,
) -> Result<usize, QueryError> {
    if q.start_ms >= q.end_ms {
        return Err(QueryError::EmptyRange {
            start_ms: q.start_ms,
            end_ms: q.end_ms,
        });
    }
    let p = q.period_s;
    let period_err = |expected: String| QueryError::Period {
        period_s: p,
        expected,
    };
    let high_rule = kind.high || !kind.standard;
    if high_rule {
        if !(SUB_MINUTE.contains(&p) || (p >= 60 && p.is_multiple_of(60))) {
            return Err(period_err(
                "1, 5, 10, 20, 30 or a multiple of 60 for high-resolution data".to_owned(),
            ));
        }
    } else if p < 60 || !p.is_multiple_of(60) {
        return Err(period_err(
            "a multiple of 60 for standard-resolution (60 s) data".to_owned(),
        ));
    }
    // The finest tier that still holds data as old as the start.
    let age_s = now_ms.saturating_sub(q.start_ms).max(0) / 1000;
    let needed = tiers
        .iter()
        .find(|t| i64::try_from(t.retention_s).unwrap_or(i64::MAX) >= age_s)
        .or(tiers.last());
    if let Some(t) = needed
        && !p.is_multiple_of(t.resolution_s)
    {
        return Err(period_err(format!(
            "a multiple of {} for data from {} h ago (start_ms): older data are kept at {} s resolution",
            t.resolution_s,
            age_s / 3600,
            t.resolution_s
        )));
    }
    let (from, to) = aligned(q);
    let period_ms = i64::from(p) * 1000;
    let points = (to - from) / period_ms;
    if points > MAX_POINTS {
        let span_s = (to - from) / 1000;
        let want = (span_s + MAX_POINTS - 1) / MAX_POINTS;
        let step = i64::from(needed.map_or(1, |t| t.resolution_s));
        let min = if want <= 30 && step == 1 {
            i64::from(
                SUB_MINUTE
                    .into_iter()
                    .find(|&s| i64::from(s) >= want)
                    .unwrap_or(60),
            )
        } else {
            let step = step.max(60);
            (want + step - 1) / step * step
        };
        return Err(QueryError::TooManyPoints {
            points,
            period_s: p,
            min_period_s: u32::try_from(min).unwrap_or(u32::MAX),
        });
    }
    let tier = tiers
        .iter()
        .rposition(|t| p.is_multiple_of(t.resolution_s))
        .unwrap_or(0);
    Ok(tier)
}

/// The query's range, start rounded down and end rounded up to the period.
pub(crate) fn aligned(q: &Query) -> (i64, i64) {
    let period_ms = i64::from(q.period_s.max(1)) * 1000;
    let from = q.start_ms.div_euclid(period_ms) * period_ms;
    let to = q.end_ms.saturating_add(period_ms - 1).div_euclid(period_ms) * period_ms;
    (from, to)
}

/// Whether a statistic can be answered without sketches.
pub(crate) fn needs_sketch(stats: &[Statistic]) -> bool {
    !stats.iter().all(|s| {
        matches!(
            s,
            Statistic::SampleCount
                | Statistic::Sum
                | Statistic::Minimum
                | Statistic::Maximum
                | Statistic::Average
        )
    })
}

/// Period aggregates, ascending by period start.
pub(crate) type Periods = Vec<(i64, Aggregate)>;

/// Folds a tier's pieces (ascending) into periods of `period_ms` within
/// `from_ms..to_ms`.
pub(crate) fn fold(
    pieces: Vec<Piece>,
    res_ms: i64,
    period_ms: i64,
    from_ms: i64,
    to_ms: i64,
    sketches: bool,
    out: &mut Periods,
) -> Result<(), String> {
    for piece in pieces {
        let cols = match piece {
            Piece::Open(c) => c,
            Piece::Sealed(bytes) => Columns::decode(&bytes, sketches)?,
        };
        for i in 0..cols.len() {
            let ts = cols.ts[i].saturating_mul(res_ms);
            if ts < from_ms || ts >= to_ms {
                continue;
            }
            let start = ts.div_euclid(period_ms) * period_ms;
            let cell = if sketches { cols.sketch.get(i) } else { None };
            match out.last_mut() {
                Some((s, agg)) if *s == start => {
                    agg.count += cols.count[i];
                    agg.sum += cols.sum[i];
                    agg.min = agg.min.min(cols.min[i]);
                    agg.max = agg.max.max(cols.max[i]);
                    match (&mut agg.sketch, cell) {
                        (Some(s), Some(SketchCell::Single)) => s.add(cols.min[i], 1),
                        (Some(s), Some(SketchCell::Full(f))) => s.merge(f),
                        _ => agg.sketch = None,
                    }
                }
                _ => out.push((
                    start,
                    Aggregate {
                        count: cols.count[i],
                        sum: cols.sum[i],
                        min: cols.min[i],
                        max: cols.max[i],
                        sketch: cell.and_then(|c| c.to_sketch(cols.min[i])),
                    },
                )),
            }
        }
    }
    Ok(())
}

/// Merges period lists of several series (units) into one.
pub(crate) fn merge_periods(lists: Vec<Periods>) -> Periods {
    let mut lists = lists.into_iter();
    let Some(first) = lists.next() else {
        return Vec::new();
    };
    let mut map: std::collections::BTreeMap<i64, Aggregate> = first.into_iter().collect();
    for list in lists {
        for (t, a) in list {
            match map.entry(t) {
                std::collections::btree_map::Entry::Occupied(mut e) => e.get_mut().merge(&a),
                std::collections::btree_map::Entry::Vacant(e) => {
                    e.insert(a);
                }
            }
        }
    }
    map.into_iter().collect()
}

/// The statistics of each period.
pub(crate) fn evaluate(periods: &Periods, stats: &[Statistic]) -> QueryResult {
    QueryResult {
        timestamps: periods.iter().map(|(t, _)| *t).collect(),
        values: stats
            .iter()
            .map(|s| periods.iter().map(|(_, a)| s.value(a)).collect())
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::tsdb::config::TsdbConfig;

    const HOUR_MS: i64 = 3_600_000;
    const DAY_MS: i64 = 24 * HOUR_MS;
    const NOW: i64 = 1_000 * DAY_MS;
    const HIGH: DataKind = DataKind {
        high: true,
        standard: false,
    };
    const STANDARD: DataKind = DataKind {
        high: false,
        standard: true,
    };

    fn q(start_ago_ms: i64, len_ms: i64, period_s: u32) -> Query {
        let mut q = Query::new(
            &SeriesKey::new("ns", "m"),
            NOW - start_ago_ms,
            NOW - start_ago_ms + len_ms,
            period_s,
            vec![],
        );
        q.unit = None;
        q
    }

    fn plan_of(query: &Query, kind: DataKind) -> Result<usize, QueryError> {
        plan(query, &TsdbConfig::default().tiers, kind, NOW)
    }

    #[test]
    fn periods_follow_the_data_resolution() {
        for p in [1, 5, 10, 20, 30, 60, 120] {
            assert!(plan_of(&q(HOUR_MS, 600_000, p), HIGH).is_ok(), "{p}");
        }
        for p in [2, 15, 45, 90] {
            let err = plan_of(&q(HOUR_MS, HOUR_MS, p), HIGH).unwrap_err();
            assert!(
                err.to_string().starts_with("period_s must be 1, 5, 10"),
                "{err}"
            );
        }
        for p in [1, 30, 90] {
            let err = plan_of(&q(HOUR_MS, HOUR_MS, p), STANDARD).unwrap_err();
            assert!(err.to_string().contains("standard-resolution"), "{err}");
        }
        assert_eq!(plan_of(&q(HOUR_MS, HOUR_MS, 60), STANDARD), Ok(1));
    }

    #[test]
    fn periods_follow_the_age_of_the_start() {
        // Older than 3 h: multiples of 60.
        assert!(plan_of(&q(4 * HOUR_MS, HOUR_MS, 10), HIGH).is_err());
        assert_eq!(plan_of(&q(4 * HOUR_MS, HOUR_MS, 60), HIGH), Ok(1));
        // 15-63 days: multiples of 300.
        let err = plan_of(&q(20 * DAY_MS, DAY_MS, 60), HIGH).unwrap_err();
        assert!(err.to_string().contains("a multiple of 300"), "{err}");
        assert_eq!(plan_of(&q(20 * DAY_MS, DAY_MS, 600), HIGH), Ok(2));
        // Older: multiples of 3600.
        assert!(plan_of(&q(100 * DAY_MS, DAY_MS, 600), HIGH).is_err());
        assert_eq!(plan_of(&q(100 * DAY_MS, DAY_MS, 7200), HIGH), Ok(3));
    }

    #[test]
    fn the_coarsest_dividing_tier_is_read() {
        assert_eq!(plan_of(&q(HOUR_MS, HOUR_MS, 10), HIGH), Ok(0));
        assert_eq!(plan_of(&q(HOUR_MS, HOUR_MS, 120), HIGH), Ok(1));
        assert_eq!(plan_of(&q(HOUR_MS, HOUR_MS, 900), HIGH), Ok(2));
        assert_eq!(plan_of(&q(HOUR_MS, DAY_MS, 3600), HIGH), Ok(3));
    }

    #[test]
    fn too_many_points_says_which_period_fits() {
        // 3 h at 1 s: 10,800 points; 3 h / 1440 = 7.5 s → 10 s.
        let err = plan_of(&q(3 * HOUR_MS - 1000, 3 * HOUR_MS, 1), HIGH).unwrap_err();
        assert_eq!(
            err,
            QueryError::TooManyPoints {
                points: 10_800,
                period_s: 1,
                min_period_s: 10
            }
        );
        assert!(err.to_string().contains("use period_s 10 or more"));
        // 2 days at 60 s: 2,880 → 120.
        let err = plan_of(&q(2 * DAY_MS, 2 * DAY_MS, 60), STANDARD).unwrap_err();
        assert!(
            matches!(
                err,
                QueryError::TooManyPoints {
                    min_period_s: 120,
                    ..
                }
            ),
            "{err}"
        );
        assert!(plan_of(&q(HOUR_MS, DAY_MS, 60), STANDARD).is_ok());
    }

    #[test]
    fn an_empty_range_names_both_fields() {
        let err = plan_of(&q(HOUR_MS, 0, 60), HIGH).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!(
                "start_ms ({}) must be before end_ms ({})",
                NOW - HOUR_MS,
                NOW - HOUR_MS
            )
        );
    }

    #[test]
    fn periods_align_to_the_epoch() {
        let mut query = q(0, 0, 60);
        query.start_ms = 61_000;
        query.end_ms = 119_001;
        assert_eq!(aligned(&query), (60_000, 120_000));
        query.start_ms = -1;
        assert_eq!(aligned(&query).0, -60_000);
    }
}
