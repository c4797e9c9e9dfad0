//! The statistics a query or an alarm asks for (SEMANTICS.md §1.2), parsed
//! from their CloudWatch spelling (`Sum`, `p99`, `tm90`, `IQM`, `PR(0:300)`).
//!
//! Choices where the public sources are silent:
//! - A range `(a, b]` excludes its lower bound and includes its upper bound,
//!   for values and for ranks alike.
//! - Percentage trims cut fractional points: `TM(10%:90%)` of 15 points
//!   keeps ranks (1.5, 13.5], the two partial points weighing one half each.
//! - `WM` moves each value outside the range to the nearest value kept
//!   inside it, for percentage and value bounds alike (so it always lies
//!   between Minimum and Maximum); nothing inside the range gives no value.
//! - `PR` answers a percentage (0–100), as CloudWatch shows it.
//! - Extended statistics are computed from the sketch's bins (each value
//!   within 1%), clamped to the aggregate's exact minimum and maximum.

use std::fmt;
use std::str::FromStr;

use crate::aggregate::Aggregate;

/// The range a trimmed or winsorized statistic keeps.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Bounds {
    /// Ranks as percentages, each in `[0, 100]`; an absent bound is 0 or 100.
    Percent {
        /// Lower percentage (exclusive).
        lower: Option<f64>,
        /// Upper percentage (inclusive).
        upper: Option<f64>,
    },
    /// Absolute values; an absent bound is unbounded.
    Value {
        /// Lower value (exclusive).
        lower: Option<f64>,
        /// Upper value (inclusive).
        upper: Option<f64>,
    },
}

/// One statistic.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Statistic {
    /// Number of values.
    SampleCount,
    /// Sum of values.
    Sum,
    /// Smallest value.
    Minimum,
    /// Largest value.
    Maximum,
    /// Sum / SampleCount.
    Average,
    /// `pNN.NN`, held as written: `p99` holds `99.0`.
    Percentile(f64),
    /// `TM(..)`, `tmNN` (= `TM(:NN%)`), `IQM` (= `TM(25%:75%)`): the mean of
    /// the values inside the range.
    TrimmedMean(Bounds),
    /// `WM(..)`, `wmNN`: the mean after moving values outside the range to
    /// its edges.
    WinsorizedMean(Bounds),
    /// `TC(..)`, `tcNN`: how many values lie inside the range.
    TrimmedCount(Bounds),
    /// `TS(..)`, `tsNN`: the sum of the values inside the range.
    TrimmedSum(Bounds),
    /// `PR(a:b)`: the percentage of values in `(a, b]` (value bounds only).
    PercentRank {
        /// Lower value (exclusive); unbounded when absent.
        lower: Option<f64>,
        /// Upper value (inclusive); unbounded when absent.
        upper: Option<f64>,
    },
}

/// `v` moved inside `[agg.min, agg.max]`. Not `f64::clamp`, which panics
/// when min > max or either is NaN, as a corrupt stored aggregate may hold.
fn within(v: f64, agg: &Aggregate) -> f64 {
    if v < agg.min {
        agg.min
    } else if v > agg.max {
        agg.max
    } else {
        v
    }
}

/// One bin's value (clamped to the exact min/max) and count.
fn weighted_bins(agg: &Aggregate) -> Option<(Vec<(f64, f64)>, f64)> {
    let sketch = agg.sketch.as_ref()?;
    if sketch.is_empty() {
        return None;
    }
    let bins: Vec<(f64, f64)> = sketch
        .bins()
        .map(|b| (within(b.value, agg), b.count as f64))
        .collect();
    Some((bins, sketch.count() as f64))
}

/// Count and sum of the points inside `bounds`, and the sum after moving
/// the points outside to the nearest kept value.
struct Kept {
    count: f64,
    sum: f64,
    winsorized_sum: f64,
}

fn keep(bins: &[(f64, f64)], n: f64, bounds: Bounds) -> Kept {
    match bounds {
        Bounds::Percent { lower, upper } => {
            let lo = lower.unwrap_or(0.0) / 100.0 * n;
            let hi = upper.unwrap_or(100.0) / 100.0 * n;
            let (mut count, mut sum) = (0.0, 0.0);
            let (mut first, mut last) = (None, None);
            let mut below = 0.0;
            for &(v, c) in bins {
                let (start, end) = (below, below + c);
                below = end;
                let overlap = end.min(hi) - start.max(lo);
                if overlap > 0.0 {
                    count += overlap;
                    sum += overlap * v;
                    first.get_or_insert(v);
                    last = Some(v);
                }
            }
            let edges = first.unwrap_or(0.0) * lo + last.unwrap_or(0.0) * (n - hi);
            Kept {
                count,
                sum,
                winsorized_sum: sum + edges,
            }
        }
        Bounds::Value { lower, upper } => {
            let lo = lower.unwrap_or(f64::NEG_INFINITY);
            let hi = upper.unwrap_or(f64::INFINITY);
            let (mut count, mut sum, mut below, mut above) = (0.0, 0.0, 0.0, 0.0);
            let (mut first, mut last) = (None, None);
            for &(v, c) in bins {
                if v <= lo {
                    below += c;
                } else if v <= hi {
                    count += c;
                    sum += v * c;
                    first.get_or_insert(v);
                    last = Some(v);
                } else {
                    above += c;
                }
            }
            let edges = first.unwrap_or(0.0) * below + last.unwrap_or(0.0) * above;
            Kept {
                count,
                sum,
                winsorized_sum: sum + edges,
            }
        }
    }
}

impl Statistic {
    /// `IQM`: the mean of the middle half.
    pub const IQM: Statistic = Statistic::TrimmedMean(Bounds::Percent {
        lower: Some(25.0),
        upper: Some(75.0),
    });

    /// The statistic of one period's aggregate; `None` when the data cannot
    /// answer it (no values, a percentile or extended statistic of data
    /// without a sketch, or a trimmed mean with nothing inside the range).
    pub fn value(&self, agg: &Aggregate) -> Option<f64> {
        if agg.count <= 0.0 {
            return None;
        }
        match *self {
            Statistic::SampleCount => Some(agg.count),
            Statistic::Sum => Some(agg.sum),
            Statistic::Minimum => Some(agg.min),
            Statistic::Maximum => Some(agg.max),
            Statistic::Average => Some(agg.sum / agg.count),
            Statistic::Percentile(p) => agg
                .sketch
                .as_ref()?
                .quantile(p / 100.0)
                .map(|v| within(v, agg)),
            Statistic::TrimmedMean(b) => {
                let (bins, n) = weighted_bins(agg)?;
                let k = keep(&bins, n, b);
                // Summing rounds: keep a mean of values inside their range.
                (k.count > 0.0).then(|| within(k.sum / k.count, agg))
            }
            Statistic::WinsorizedMean(b) => {
                let (bins, n) = weighted_bins(agg)?;
                let k = keep(&bins, n, b);
                (k.count > 0.0).then(|| within(k.winsorized_sum / n, agg))
            }
            Statistic::TrimmedCount(b) => {
                let (bins, n) = weighted_bins(agg)?;
                Some(keep(&bins, n, b).count)
            }
            Statistic::TrimmedSum(b) => {
                let (bins, n) = weighted_bins(agg)?;
                Some(keep(&bins, n, b).sum)
            }
            Statistic::PercentRank { lower, upper } => {
                let (bins, n) = weighted_bins(agg)?;
                let k = keep(&bins, n, Bounds::Value { lower, upper });
                Some(100.0 * k.count / n)
            }
        }
    }

    /// For a percentile statistic, its percentile (`99.0` for `p99`).
    pub fn percentile(&self) -> Option<f64> {
        match *self {
            Statistic::Percentile(p) => Some(p),
            _ => None,
        }
    }

    /// Whether the statistic needs the distribution (a sketch), not only
    /// count, sum, min and max.
    pub fn needs_sketch(&self) -> bool {
        !matches!(
            self,
            Statistic::SampleCount
                | Statistic::Sum
                | Statistic::Minimum
                | Statistic::Maximum
                | Statistic::Average
        )
    }
}

const EXPECTED: &str = "expected SampleCount, Sum, Minimum, Maximum, Average, pNN.NN, \
tmNN, wmNN, tcNN, tsNN, IQM, TM(a:b), WM(a:b), TC(a:b), TS(a:b) or PR(a:b)";

/// Parses `NN` / `NN.NN` as a percentage in `[0, 100]`.
fn percentage(s: &str, what: &str) -> Result<f64, String> {
    let (int, frac) = s.split_once('.').unwrap_or((s, ""));
    let digits = |p: &str| p.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() || !digits(int) || !digits(frac) || (s.contains('.') && frac.is_empty()) {
        return Err(format!("{what} must be a number like 99 or 99.9"));
    }
    if frac.len() > 2 {
        return Err(format!("{what} has at most two decimal places"));
    }
    match s.parse::<f64>() {
        Ok(p) if (0.0..=100.0).contains(&p) => Ok(p),
        _ => Err(format!("{what} must be between 0 and 100")),
    }
}

/// Parses one absolute bound: a finite number.
fn value_bound(s: &str) -> Result<f64, String> {
    match s.parse::<f64>() {
        Ok(v) if v.is_finite() => Ok(v),
        _ => Err(format!("bound `{s}` is not a finite number")),
    }
}

/// Parses the inside of `TM(…)`: `a%:b%`, `a:b`, either side may be empty.
fn bounds(inner: &str) -> Result<Bounds, String> {
    let (lo, hi) = inner
        .split_once(':')
        .ok_or("expected two bounds separated by `:`, like (10%:90%) or (0:300)")?;
    let (lo, hi) = (lo.trim(), hi.trim());
    if lo.is_empty() && hi.is_empty() {
        return Err("at least one bound is needed".into());
    }
    let sides: Vec<bool> = [lo, hi]
        .iter()
        .filter(|s| !s.is_empty())
        .map(|s| s.ends_with('%'))
        .collect();
    let percent = sides.iter().all(|&p| p);
    if !percent && sides.iter().any(|&p| p) {
        return Err("bounds must both be percentages or both be values".into());
    }
    let parse = |s: &str| -> Result<Option<f64>, String> {
        if s.is_empty() {
            Ok(None)
        } else if percent {
            percentage(&s[..s.len() - 1], "a bound percentage").map(Some)
        } else {
            value_bound(s).map(Some)
        }
    };
    let (lower, upper) = (parse(lo)?, parse(hi)?);
    if let (Some(l), Some(u)) = (lower, upper)
        && l >= u
    {
        return Err("the lower bound must be below the upper bound".into());
    }
    Ok(if percent {
        Bounds::Percent { lower, upper }
    } else {
        Bounds::Value { lower, upper }
    })
}

fn parse(s: &str) -> Result<Statistic, String> {
    Ok(match s {
        "SampleCount" => Statistic::SampleCount,
        "Sum" => Statistic::Sum,
        "Minimum" => Statistic::Minimum,
        "Maximum" => Statistic::Maximum,
        "Average" => Statistic::Average,
        "IQM" => Statistic::IQM,
        _ => {
            if let Some(open) = s.find('(') {
                let name = &s[..open];
                let inner = s[open + 1..]
                    .strip_suffix(')')
                    .ok_or("expected `)` at the end")?;
                let b = || bounds(inner);
                return Ok(match name {
                    "TM" | "tm" => Statistic::TrimmedMean(b()?),
                    "WM" | "wm" => Statistic::WinsorizedMean(b()?),
                    "TC" | "tc" => Statistic::TrimmedCount(b()?),
                    "TS" | "ts" => Statistic::TrimmedSum(b()?),
                    "PR" | "pr" => match b()? {
                        Bounds::Value { lower, upper } => Statistic::PercentRank { lower, upper },
                        Bounds::Percent { .. } => {
                            return Err("PR bounds are values, not percentages".into());
                        }
                    },
                    _ => return Err(EXPECTED.into()),
                });
            }
            let short = |nn: &str| -> Result<Bounds, String> {
                Ok(Bounds::Percent {
                    lower: None,
                    upper: Some(percentage(nn, "a percentage")?),
                })
            };
            if let Some(nn) = s.strip_prefix("tm") {
                Statistic::TrimmedMean(short(nn)?)
            } else if let Some(nn) = s.strip_prefix("wm") {
                Statistic::WinsorizedMean(short(nn)?)
            } else if let Some(nn) = s.strip_prefix("tc") {
                Statistic::TrimmedCount(short(nn)?)
            } else if let Some(nn) = s.strip_prefix("ts") {
                Statistic::TrimmedSum(short(nn)?)
            } else if let Some(nn) = s.strip_prefix('p') {
                Statistic::Percentile(percentage(nn, "a percentile")?)
            } else {
                return Err(EXPECTED.into());
            }
        }
    })
}

impl FromStr for Statistic {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        parse(s).map_err(|reason| format!("unknown statistic `{s}`: {reason}"))
    }
}

fn write_bounds(f: &mut fmt::Formatter<'_>, name: &str, b: &Bounds) -> fmt::Result {
    let one = |f: &mut fmt::Formatter<'_>, v: Option<f64>, pct: bool| match v {
        None => Ok(()),
        Some(v) if pct => write!(f, "{v}%"),
        Some(v) => write!(f, "{v}"),
    };
    match *b {
        Bounds::Percent {
            lower: None,
            upper: Some(u),
        } => write!(f, "{}{u}", name.to_ascii_lowercase()),
        Bounds::Percent { lower, upper } => {
            write!(f, "{name}(")?;
            one(f, lower, true)?;
            f.write_str(":")?;
            one(f, upper, true)?;
            f.write_str(")")
        }
        Bounds::Value { lower, upper } => {
            write!(f, "{name}(")?;
            one(f, lower, false)?;
            f.write_str(":")?;
            one(f, upper, false)?;
            f.write_str(")")
        }
    }
}

impl fmt::Display for Statistic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Statistic::SampleCount => f.write_str("SampleCount"),
            Statistic::Sum => f.write_str("Sum"),
            Statistic::Minimum => f.write_str("Minimum"),
            Statistic::Maximum => f.write_str("Maximum"),
            Statistic::Average => f.write_str("Average"),
            Statistic::Percentile(p) => write!(f, "p{p}"),
            s if *s == Statistic::IQM => f.write_str("IQM"),
            Statistic::TrimmedMean(b) => write_bounds(f, "TM", b),
            Statistic::WinsorizedMean(b) => write_bounds(f, "WM", b),
            Statistic::TrimmedCount(b) => write_bounds(f, "TC", b),
            Statistic::TrimmedSum(b) => write_bounds(f, "TS", b),
            Statistic::PercentRank { lower, upper } => write_bounds(
                f,
                "PR",
                &Bounds::Value {
                    lower: *lower,
                    upper: *upper,
                },
            ),
        }
    }
}

#[cfg(test)]
mod tests;
