//! [`Series`], the query [`Range`] and its period grid, and the point-wise
//! primitives the evaluator is built from. Every primitive drops a point
//! whose result is not finite (division by zero, `LOG(0)`, overflow), so a
//! series never holds NaN or infinity.

use serde::{Deserialize, Serialize};

/// One time series: timestamps in milliseconds, strictly ascending, with one
/// finite value each.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Series {
    /// Milliseconds since the epoch, strictly ascending.
    pub timestamps: Vec<i64>,
    /// One value per timestamp.
    pub values: Vec<f64>,
}

impl Series {
    /// A series from `(timestamp_ms, value)` points, kept in the given order.
    pub fn from_points(points: impl IntoIterator<Item = (i64, f64)>) -> Self {
        let (timestamps, values) = points.into_iter().unzip();
        Series { timestamps, values }
    }

    /// The number of points.
    pub fn len(&self) -> usize {
        self.timestamps.len()
    }

    /// Whether there are no points.
    pub fn is_empty(&self) -> bool {
        self.timestamps.is_empty()
    }

    /// The points as `(timestamp_ms, value)`.
    pub fn points(&self) -> impl Iterator<Item = (i64, f64)> + '_ {
        self.timestamps
            .iter()
            .copied()
            .zip(self.values.iter().copied())
    }

    /// The value at `t`, if there is a point there.
    pub fn get(&self, t: i64) -> Option<f64> {
        self.timestamps
            .binary_search(&t)
            .ok()
            .map(|i| self.values[i])
    }

    /// Checks the invariants a data source must keep: as many values as
    /// timestamps, timestamps strictly ascending, values finite.
    pub fn check(&self) -> Result<(), String> {
        if self.timestamps.len() != self.values.len() {
            return Err(format!(
                "{} timestamps but {} values",
                self.timestamps.len(),
                self.values.len()
            ));
        }
        if let Some(i) = self.timestamps.windows(2).position(|w| w[0] >= w[1]) {
            return Err(format!(
                "timestamps are not strictly ascending at index {}",
                i + 1
            ));
        }
        if let Some(i) = self.values.iter().position(|v| !v.is_finite()) {
            return Err(format!("value at index {i} is not finite"));
        }
        Ok(())
    }

    /// The points with `start_ms <= t < end_ms`.
    pub(crate) fn clip(mut self, start_ms: i64, end_ms: i64) -> Series {
        let lo = self.timestamps.partition_point(|&t| t < start_ms);
        let hi = self.timestamps.partition_point(|&t| t < end_ms);
        self.timestamps.truncate(hi);
        self.values.truncate(hi);
        self.timestamps.drain(..lo);
        self.values.drain(..lo);
        self
    }

    fn push_finite(&mut self, t: i64, v: f64) {
        if v.is_finite() {
            self.timestamps.push(t);
            self.values.push(v);
        }
    }

    /// `f` of every value; non-finite results are dropped.
    pub(crate) fn map(mut self, f: impl Fn(f64) -> f64) -> Series {
        let mut keep = 0;
        for i in 0..self.timestamps.len() {
            let v = f(self.values[i]);
            if v.is_finite() {
                self.timestamps[keep] = self.timestamps[i];
                self.values[keep] = v;
                keep += 1;
            }
        }
        self.timestamps.truncate(keep);
        self.values.truncate(keep);
        self
    }

    /// `f(a, b)` at the timestamps both have (a merge join).
    pub(crate) fn zip_with(a: &Series, b: &Series, f: impl Fn(f64, f64) -> f64) -> Series {
        let n = a.len().min(b.len());
        let mut out = Series {
            timestamps: Vec::with_capacity(n),
            values: Vec::with_capacity(n),
        };
        let (mut i, mut j) = (0, 0);
        while i < a.len() && j < b.len() {
            let (ta, tb) = (a.timestamps[i], b.timestamps[j]);
            if ta < tb {
                i += 1;
            } else if tb < ta {
                j += 1;
            } else {
                out.push_finite(ta, f(a.values[i], b.values[j]));
                i += 1;
                j += 1;
            }
        }
        out
    }

    /// Per timestamp of the union of `series`, `f` of the values present
    /// there followed by `extra` (the scalars, present everywhere).
    pub(crate) fn combine(series: &[&Series], extra: &[f64], f: impl Fn(&[f64]) -> f64) -> Series {
        let mut stamps: Vec<i64> = series
            .iter()
            .flat_map(|s| s.timestamps.iter().copied())
            .collect();
        stamps.sort_unstable();
        stamps.dedup();
        let mut cursors = vec![0usize; series.len()];
        let mut buf = Vec::with_capacity(series.len() + extra.len());
        let mut out = Series::default();
        for t in stamps {
            buf.clear();
            for (s, c) in series.iter().zip(cursors.iter_mut()) {
                if s.timestamps.get(*c) == Some(&t) {
                    buf.push(s.values[*c]);
                    *c += 1;
                }
            }
            buf.extend_from_slice(extra);
            out.push_finite(t, f(&buf));
        }
        out
    }

    /// vᵢ − vᵢ₋₁ at tᵢ; the first point has none.
    pub(crate) fn diff(&self) -> Series {
        let mut out = Series::default();
        for i in 1..self.len() {
            out.push_finite(self.timestamps[i], self.values[i] - self.values[i - 1]);
        }
        out
    }

    /// (vᵢ − vᵢ₋₁) / (tᵢ − tᵢ₋₁ in seconds) at tᵢ; the first point has none.
    pub(crate) fn rate(&self) -> Series {
        let mut out = Series::default();
        for i in 1..self.len() {
            let dt_s = (self.timestamps[i] - self.timestamps[i - 1]) as f64 / 1000.0;
            out.push_finite(
                self.timestamps[i],
                (self.values[i] - self.values[i - 1]) / dt_s,
            );
        }
        out
    }

    /// The series plus a point at every grid timestamp it has no point at,
    /// valued by `fill(previous, t, next)` (the neighbouring points, if any);
    /// `None` leaves the gap.
    pub(crate) fn fill(
        &self,
        grid: &[i64],
        fill: impl Fn(Option<(i64, f64)>, i64, Option<(i64, f64)>) -> Option<f64>,
    ) -> Series {
        let mut out = Series::default();
        let mut i = 0; // next own point not yet copied
        for &t in grid {
            while i < self.len() && self.timestamps[i] < t {
                out.push_finite(self.timestamps[i], self.values[i]);
                i += 1;
            }
            if i < self.len() && self.timestamps[i] == t {
                continue; // copied on the next round or after the loop
            }
            let prev = i
                .checked_sub(1)
                .map(|p| (self.timestamps[p], self.values[p]));
            let next = (i < self.len()).then(|| (self.timestamps[i], self.values[i]));
            if let Some(v) = fill(prev, t, next) {
                out.push_finite(t, v);
            }
        }
        while i < self.len() {
            out.push_finite(self.timestamps[i], self.values[i]);
            i += 1;
        }
        out
    }

    /// `v` at every grid timestamp.
    pub(crate) fn constant(grid: &[i64], v: f64) -> Series {
        let mut out = Series::default();
        if v.is_finite() {
            out.timestamps = grid.to_vec();
            out.values = vec![v; grid.len()];
        }
        out
    }
}

/// The most periods one query may span (SEMANTICS §1.3: a query returns at
/// most 1,440 points per series).
pub const MAX_PERIODS: usize = 1440;

/// The time range and period of one run: `[start_ms, end_ms)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Range {
    /// Inclusive start, ms since the epoch.
    pub start_ms: i64,
    /// Exclusive end, ms since the epoch.
    pub end_ms: i64,
    /// The period in seconds.
    pub period_s: u32,
}

impl Range {
    /// The period grid: every multiple of the period (counted from the
    /// epoch) inside `[start_ms, end_ms)`. Errors name the `range.*` field.
    pub fn grid(&self) -> Result<Vec<i64>, (&'static str, String)> {
        if self.period_s == 0 {
            return Err(("range.period_s", "must be positive".to_owned()));
        }
        if self.end_ms <= self.start_ms {
            return Err((
                "range.end_ms",
                format!("must be after start_ms ({})", self.start_ms),
            ));
        }
        let p = i128::from(self.period_s) * 1000;
        let first = i128::from(self.start_ms).div_euclid(p) * p
            + if i128::from(self.start_ms).rem_euclid(p) == 0 {
                0
            } else {
                p
            };
        let end = i128::from(self.end_ms);
        let count = if first >= end {
            0
        } else {
            (end - first + p - 1) / p
        };
        if count > MAX_PERIODS as i128 {
            return Err((
                "range",
                format!(
                    "spans {count} periods of {} s; at most {MAX_PERIODS}",
                    self.period_s
                ),
            ));
        }
        // count <= MAX_PERIODS and every point lies in [start_ms, end_ms),
        // so each fits in an i64.
        Ok((0..count)
            .filter_map(|k| i64::try_from(first + k * p).ok())
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(points: &[(i64, f64)]) -> Series {
        Series::from_points(points.iter().copied())
    }

    #[test]
    fn grid_is_epoch_aligned_inside_the_half_open_range() {
        let r = Range {
            start_ms: 61_000,
            end_ms: 240_000,
            period_s: 60,
        };
        assert_eq!(r.grid(), Ok(vec![120_000, 180_000]));
        let r = Range {
            start_ms: 60_000,
            end_ms: 180_001,
            period_s: 60,
        };
        assert_eq!(r.grid(), Ok(vec![60_000, 120_000, 180_000]));
        let r = Range {
            start_ms: -60_000,
            end_ms: 60_000,
            period_s: 60,
        };
        assert_eq!(r.grid(), Ok(vec![-60_000, 0]));
    }

    #[test]
    fn grid_rejects_empty_zero_period_and_too_many_periods() {
        let bad = |start_ms, end_ms, period_s| Range {
            start_ms,
            end_ms,
            period_s,
        };
        assert_eq!(
            bad(0, 60_000, 0).grid().map_err(|e| e.0),
            Err("range.period_s")
        );
        assert_eq!(bad(5, 5, 60).grid().map_err(|e| e.0), Err("range.end_ms"));
        assert_eq!(
            bad(0, 1441 * 60_000, 60).grid().map_err(|e| e.0),
            Err("range")
        );
        assert_eq!(bad(0, 1440 * 60_000, 60).grid().map(|g| g.len()), Ok(1440));
        let huge = bad(i64::MIN, i64::MAX, u32::MAX);
        assert!(huge.grid().is_err());
    }

    #[test]
    fn check_finds_each_broken_invariant() {
        assert_eq!(s(&[(1, 1.0), (2, 2.0)]).check(), Ok(()));
        let uneven = Series {
            timestamps: vec![1, 2],
            values: vec![1.0],
        };
        assert!(uneven.check().is_err());
        assert!(s(&[(2, 1.0), (2, 2.0)]).check().is_err());
        assert!(s(&[(1, f64::NAN)]).check().is_err());
    }

    #[test]
    fn clip_keeps_the_half_open_range() {
        let c = s(&[(0, 0.0), (10, 1.0), (20, 2.0), (30, 3.0)]).clip(10, 30);
        assert_eq!(c, s(&[(10, 1.0), (20, 2.0)]));
    }

    #[test]
    fn map_drops_non_finite_results() {
        let m = s(&[(1, 4.0), (2, 0.0), (3, -1.0)]).map(f64::ln);
        assert_eq!(m, s(&[(1, 4.0f64.ln())]));
    }

    #[test]
    fn zip_with_keeps_only_common_timestamps() {
        let a = s(&[(1, 1.0), (2, 2.0), (4, 4.0)]);
        let b = s(&[(2, 10.0), (3, 30.0), (4, 40.0), (5, 50.0)]);
        assert_eq!(
            Series::zip_with(&a, &b, |x, y| x + y),
            s(&[(2, 12.0), (4, 44.0)])
        );
    }

    #[test]
    fn combine_uses_the_series_present_at_each_timestamp() {
        let a = s(&[(1, 1.0), (2, 2.0)]);
        let b = s(&[(2, 4.0), (3, 6.0)]);
        let sum = Series::combine(&[&a, &b], &[], |v| v.iter().sum());
        assert_eq!(sum, s(&[(1, 1.0), (2, 6.0), (3, 6.0)]));
        let with_scalar = Series::combine(&[&a, &b], &[10.0], |v| v.len() as f64);
        assert_eq!(with_scalar, s(&[(1, 2.0), (2, 3.0), (3, 2.0)]));
    }

    #[test]
    fn diff_and_rate_skip_the_first_point() {
        let a = s(&[(0, 1.0), (60_000, 7.0), (180_000, 4.0)]);
        assert_eq!(a.diff(), s(&[(60_000, 6.0), (180_000, -3.0)]));
        assert_eq!(a.rate(), s(&[(60_000, 0.1), (180_000, -3.0 / 120.0)]));
        assert!(s(&[(0, 1.0)]).rate().is_empty());
    }

    #[test]
    fn fill_calls_back_for_grid_gaps_only_and_keeps_off_grid_points() {
        let a = s(&[(15, 1.5), (20, 2.0), (40, 4.0)]);
        let grid = [10, 20, 30, 40, 50];
        let filled = a.fill(&grid, |prev, t, next| {
            Some(t as f64 + prev.map_or(0.0, |p| p.1) * 100.0 + next.map_or(0.0, |n| n.1) * 1000.0)
        });
        assert_eq!(
            filled,
            s(&[
                (10, 10.0 + 1500.0),
                (15, 1.5),
                (20, 2.0),
                (30, 30.0 + 200.0 + 4000.0),
                (40, 4.0),
                (50, 50.0 + 400.0),
            ])
        );
    }

    #[test]
    fn constant_covers_the_grid_unless_not_finite() {
        assert_eq!(Series::constant(&[1, 2], 3.0), s(&[(1, 3.0), (2, 3.0)]));
        assert!(Series::constant(&[1, 2], f64::INFINITY).is_empty());
    }
}
