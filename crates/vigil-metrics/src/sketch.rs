//! A mergeable quantile sketch (DDSketch, ≤ 1% relative error).
//!
//! PLACEHOLDER (skeleton): keeps exact values so that the other modules can
//! compile against the API; the DDSketch replaces the body, not the API.

use serde::{Deserialize, Serialize};

/// A mergeable distribution sketch.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sketch {
    values: Vec<(f64, u64)>,
}

impl Sketch {
    /// An empty sketch.
    pub fn new() -> Self {
        Sketch::default()
    }

    /// Adds `value` `count` times.
    pub fn add(&mut self, value: f64, count: u64) {
        if count > 0 {
            self.values.push((value, count));
        }
    }

    /// Merges another sketch into this one.
    pub fn merge(&mut self, other: &Sketch) {
        self.values.extend_from_slice(&other.values);
    }

    /// Number of values added.
    pub fn count(&self) -> u64 {
        self.values.iter().map(|(_, c)| c).sum()
    }

    /// The value at quantile `q` in `[0, 1]`; `None` when empty.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let mut sorted = self.values.clone();
        sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
        let total = self.count();
        if total == 0 {
            return None;
        }
        let rank = (q.clamp(0.0, 1.0) * (total - 1) as f64).round() as u64;
        let mut seen = 0;
        for (v, c) in sorted {
            seen += c;
            if seen > rank {
                return Some(v);
            }
        }
        None
    }
}
