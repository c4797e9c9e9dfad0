//! What one period of one series holds: count, sum, min, max and, when the
//! data allow percentiles, a sketch. Aggregates merge (periods into longer
//! periods, replicas into a fleet).

use serde::{Deserialize, Serialize};

use crate::sketch::Sketch;

/// One period's aggregate of one series.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Aggregate {
    /// SampleCount (a double, as CloudWatch has it).
    pub count: f64,
    /// Sum of the values.
    pub sum: f64,
    /// Smallest value.
    pub min: f64,
    /// Largest value.
    pub max: f64,
    /// The distribution, when percentiles can be answered; `None` after a
    /// statistic set with SampleCount > 1 and Min ≠ Max was merged in.
    pub sketch: Option<Sketch>,
}

impl Aggregate {
    /// One value, counted once.
    pub fn from_value(value: f64) -> Self {
        let mut sketch = Sketch::new();
        sketch.add(value, 1);
        Aggregate {
            count: 1.0,
            sum: value,
            min: value,
            max: value,
            sketch: Some(sketch),
        }
    }

    /// Merges `other` into `self`.
    pub fn merge(&mut self, other: &Aggregate) {
        self.count += other.count;
        self.sum += other.sum;
        self.min = self.min.min(other.min);
        self.max = self.max.max(other.max);
        match (&mut self.sketch, &other.sketch) {
            (Some(a), Some(b)) => a.merge(b),
            _ => self.sketch = None,
        }
    }
}
