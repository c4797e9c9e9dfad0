//! The identity of a series: namespace, metric name, the exact dimension set
//! and the unit (SEMANTICS.md §1.1). Two data with different dimension sets
//! or units are different series and are never aggregated together.

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

/// A metric's dimensions, kept sorted by name so equal sets compare equal.
pub type Dimensions = BTreeMap<String, String>;

/// The unit of a series, with CloudWatch's names.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize,
)]
pub enum Unit {
    Seconds,
    Microseconds,
    Milliseconds,
    Bytes,
    Kilobytes,
    Megabytes,
    Gigabytes,
    Terabytes,
    Bits,
    Kilobits,
    Megabits,
    Gigabits,
    Terabits,
    Percent,
    Count,
    #[serde(rename = "Bytes/Second")]
    BytesPerSecond,
    #[serde(rename = "Kilobytes/Second")]
    KilobytesPerSecond,
    #[serde(rename = "Megabytes/Second")]
    MegabytesPerSecond,
    #[serde(rename = "Gigabytes/Second")]
    GigabytesPerSecond,
    #[serde(rename = "Terabytes/Second")]
    TerabytesPerSecond,
    #[serde(rename = "Bits/Second")]
    BitsPerSecond,
    #[serde(rename = "Kilobits/Second")]
    KilobitsPerSecond,
    #[serde(rename = "Megabits/Second")]
    MegabitsPerSecond,
    #[serde(rename = "Gigabits/Second")]
    GigabitsPerSecond,
    #[serde(rename = "Terabits/Second")]
    TerabitsPerSecond,
    #[serde(rename = "Count/Second")]
    CountPerSecond,
    #[default]
    None,
}

impl Unit {
    /// Every unit, in CloudWatch's order.
    pub const ALL: [Unit; 27] = [
        Unit::Seconds,
        Unit::Microseconds,
        Unit::Milliseconds,
        Unit::Bytes,
        Unit::Kilobytes,
        Unit::Megabytes,
        Unit::Gigabytes,
        Unit::Terabytes,
        Unit::Bits,
        Unit::Kilobits,
        Unit::Megabits,
        Unit::Gigabits,
        Unit::Terabits,
        Unit::Percent,
        Unit::Count,
        Unit::BytesPerSecond,
        Unit::KilobytesPerSecond,
        Unit::MegabytesPerSecond,
        Unit::GigabytesPerSecond,
        Unit::TerabytesPerSecond,
        Unit::BitsPerSecond,
        Unit::KilobitsPerSecond,
        Unit::MegabitsPerSecond,
        Unit::GigabitsPerSecond,
        Unit::TerabitsPerSecond,
        Unit::CountPerSecond,
        Unit::None,
    ];

    /// The unit's name as users write it (`Bytes/Second`, `Count`).
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Seconds => "Seconds",
            Unit::Microseconds => "Microseconds",
            Unit::Milliseconds => "Milliseconds",
            Unit::Bytes => "Bytes",
            Unit::Kilobytes => "Kilobytes",
            Unit::Megabytes => "Megabytes",
            Unit::Gigabytes => "Gigabytes",
            Unit::Terabytes => "Terabytes",
            Unit::Bits => "Bits",
            Unit::Kilobits => "Kilobits",
            Unit::Megabits => "Megabits",
            Unit::Gigabits => "Gigabits",
            Unit::Terabits => "Terabits",
            Unit::Percent => "Percent",
            Unit::Count => "Count",
            Unit::BytesPerSecond => "Bytes/Second",
            Unit::KilobytesPerSecond => "Kilobytes/Second",
            Unit::MegabytesPerSecond => "Megabytes/Second",
            Unit::GigabytesPerSecond => "Gigabytes/Second",
            Unit::TerabytesPerSecond => "Terabytes/Second",
            Unit::BitsPerSecond => "Bits/Second",
            Unit::KilobitsPerSecond => "Kilobits/Second",
            Unit::MegabitsPerSecond => "Megabits/Second",
            Unit::GigabitsPerSecond => "Gigabits/Second",
            Unit::TerabitsPerSecond => "Terabits/Second",
            Unit::CountPerSecond => "Count/Second",
            Unit::None => "None",
        }
    }

    /// Parses a unit name; `None` for a name that is not a unit.
    pub fn parse(name: &str) -> Option<Unit> {
        Unit::ALL.into_iter().find(|u| u.as_str() == name)
    }
}

impl fmt::Display for Unit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Storage resolution of a datum: 1 s (high resolution) or 60 s (standard).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(try_from = "u32", into = "u32")]
pub enum Resolution {
    /// High resolution: 1 s points, kept 3 h before roll-up.
    High,
    /// Standard resolution: 60 s points (the default).
    #[default]
    Standard,
}

impl Resolution {
    /// The resolution in seconds (1 or 60).
    pub fn seconds(self) -> u32 {
        match self {
            Resolution::High => 1,
            Resolution::Standard => 60,
        }
    }
}

impl TryFrom<u32> for Resolution {
    type Error = String;
    fn try_from(s: u32) -> Result<Self, String> {
        match s {
            1 => Ok(Resolution::High),
            60 => Ok(Resolution::Standard),
            other => Err(format!("resolution must be 1 or 60, got {other}")),
        }
    }
}

impl From<Resolution> for u32 {
    fn from(r: Resolution) -> u32 {
        r.seconds()
    }
}

/// One series: namespace + metric name + exact dimension set + unit.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SeriesKey {
    /// e.g. `InferencePipeline`, `Vigil/Gateway`.
    pub namespace: String,
    /// e.g. `LatencyMs`.
    pub name: String,
    /// The exact dimension set (may be empty).
    #[serde(default)]
    pub dimensions: Dimensions,
    /// The unit the data were sent with.
    #[serde(default)]
    pub unit: Unit,
}

impl SeriesKey {
    /// A key with no dimensions and unit `None`.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        SeriesKey {
            namespace: namespace.into(),
            name: name.into(),
            dimensions: Dimensions::new(),
            unit: Unit::None,
        }
    }

    /// Adds (or replaces) one dimension.
    pub fn with_dimension(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.dimensions.insert(name.into(), value.into());
        self
    }

    /// Sets the unit.
    pub fn with_unit(mut self, unit: Unit) -> Self {
        self.unit = unit;
        self
    }
}

/// Unix milliseconds now (what the alarm engine and the store are given).
pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_unit_parses_back_from_its_name_and_serde_agrees() {
        for unit in Unit::ALL {
            assert_eq!(Unit::parse(unit.as_str()), Some(unit));
            let json = serde_json::to_string(&unit).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(json, format!("\"{}\"", unit.as_str()));
        }
        assert_eq!(Unit::parse("Furlongs"), None);
    }

    #[test]
    fn resolution_accepts_only_1_and_60() {
        assert_eq!(Resolution::try_from(1), Ok(Resolution::High));
        assert_eq!(Resolution::try_from(60), Ok(Resolution::Standard));
        assert!(Resolution::try_from(5).is_err());
    }
}
