//! The statistics a query or an alarm asks for (SEMANTICS.md §1.2), parsed
//! from their CloudWatch spelling (`Sum`, `p99`, `tm90`, `IQM`, `PR(0:300)`).
//!
//! SKELETON: only the five basic statistics and `pNN`; the extended ones
//! come with the sketch.

use std::fmt;
use std::str::FromStr;

use crate::aggregate::Aggregate;

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
}

impl Statistic {
    /// The statistic of one period's aggregate; `None` when the data cannot
    /// answer it (no values, or a percentile of a statistic set).
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
            Statistic::Percentile(p) => agg.sketch.as_ref()?.quantile(p / 100.0),
        }
    }

    /// For a percentile statistic, its percentile (`99.0` for `p99`).
    pub fn percentile(&self) -> Option<f64> {
        match *self {
            Statistic::Percentile(p) => Some(p),
            _ => None,
        }
    }
}

impl FromStr for Statistic {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Ok(match s {
            "SampleCount" => Statistic::SampleCount,
            "Sum" => Statistic::Sum,
            "Minimum" => Statistic::Minimum,
            "Maximum" => Statistic::Maximum,
            "Average" => Statistic::Average,
            other => match other.strip_prefix('p').map(str::parse::<f64>) {
                Some(Ok(p)) if (0.0..=100.0).contains(&p) => Statistic::Percentile(p),
                _ => return Err(format!("unknown statistic `{other}`")),
            },
        })
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
        }
    }
}
