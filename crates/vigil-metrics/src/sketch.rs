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

impl Sketch {
    /// Appends the sketch's binary form to `out`.
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&(self.values.len() as u32).to_le_bytes());
        for (v, c) in &self.values {
            out.extend_from_slice(&v.to_le_bytes());
            out.extend_from_slice(&c.to_le_bytes());
        }
    }

    /// Reads a sketch written by [`Sketch::encode`]; returns it and the
    /// number of bytes read.
    pub fn decode(bytes: &[u8]) -> Result<(Sketch, usize), String> {
        let take = |at: usize, n: usize| bytes.get(at..at + n).ok_or("truncated sketch");
        let len = u32::from_le_bytes(take(0, 4)?.try_into().map_err(|_| "truncated sketch")?);
        let mut at = 4;
        let mut values = Vec::new();
        for _ in 0..len {
            let v = f64::from_le_bytes(take(at, 8)?.try_into().map_err(|_| "truncated sketch")?);
            let c = u64::from_le_bytes(
                take(at + 8, 8)?
                    .try_into()
                    .map_err(|_| "truncated sketch")?,
            );
            values.push((v, c));
            at += 16;
        }
        Ok((Sketch { values }, at))
    }
}
