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

/// Why values could not form an aggregate.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AggregateError {
    /// `values` was empty.
    #[error("values must hold at least one value")]
    NoValues,
    /// `counts` was given with a different length.
    #[error("counts has {counts} entries but values has {values}")]
    LengthMismatch {
        /// Number of values.
        values: usize,
        /// Number of counts.
        counts: usize,
    },
    /// A count that is not a whole number ≥ 1 (or beyond 2^53).
    #[error("counts[{index}] must be a whole number of at least 1, got {count}")]
    BadCount {
        /// Position in `counts`.
        index: usize,
        /// The count given.
        count: f64,
    },
    /// A statistic set with SampleCount ≤ 0.
    #[error("count must be greater than 0, got {0}")]
    BadSampleCount(f64),
    /// A statistic set with Minimum > Maximum.
    #[error("min ({min}) must not exceed max ({max})")]
    MinAboveMax {
        /// Minimum given.
        min: f64,
        /// Maximum given.
        max: f64,
    },
}

/// Largest whole count a f64 holds exactly.
const MAX_COUNT: f64 = 9_007_199_254_740_992.0;

/// Flag bits of [`Aggregate::encode`].
const HAS_SKETCH: u8 = 1;
const WHOLE_COUNT: u8 = 2;
const SINGLE_VALUE: u8 = 4;

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

    /// The `Values`/`Counts` form: each value counted `counts[i]` times, or
    /// once each when `counts` is empty. Counts are whole numbers ≥ 1.
    pub fn from_values(values: &[f64], counts: &[f64]) -> Result<Self, AggregateError> {
        if values.is_empty() {
            return Err(AggregateError::NoValues);
        }
        if !counts.is_empty() && counts.len() != values.len() {
            return Err(AggregateError::LengthMismatch {
                values: values.len(),
                counts: counts.len(),
            });
        }
        let mut agg = Aggregate {
            count: 0.0,
            sum: 0.0,
            min: f64::INFINITY,
            max: f64::NEG_INFINITY,
            sketch: None,
        };
        let mut sketch = Sketch::new();
        for (index, &value) in values.iter().enumerate() {
            let count = counts.get(index).copied().unwrap_or(1.0);
            if !(1.0..=MAX_COUNT).contains(&count) || count.fract() != 0.0 {
                return Err(AggregateError::BadCount { index, count });
            }
            agg.count += count;
            agg.sum += value * count;
            agg.min = agg.min.min(value);
            agg.max = agg.max.max(value);
            sketch.add(value, count as u64);
        }
        agg.sketch = Some(sketch);
        Ok(agg)
    }

    /// The statistic-set form. It keeps a sketch only when it describes one
    /// value (`count == 1` or `min == max`, SEMANTICS.md §1.2) and the count
    /// is whole, so percentiles are answered only then.
    pub fn from_stats(count: f64, sum: f64, min: f64, max: f64) -> Result<Self, AggregateError> {
        if count.is_nan() || count <= 0.0 {
            return Err(AggregateError::BadSampleCount(count));
        }
        if min > max {
            return Err(AggregateError::MinAboveMax { min, max });
        }
        let single = count == 1.0 || min == max;
        let sketch = (single && count.fract() == 0.0 && count <= MAX_COUNT).then(|| {
            let mut s = Sketch::new();
            s.add(min, count as u64);
            s
        });
        Ok(Aggregate {
            count,
            sum,
            min,
            max,
            sketch,
        })
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

    /// Appends the binary form to `out`: a flag byte; the count (a varint
    /// when whole, else 8 bytes); sum; min and max (one value when equal);
    /// then the sketch when present. Floats are little-endian f64.
    pub fn encode(&self, out: &mut Vec<u8>) {
        let whole = self.count >= 0.0 && self.count <= MAX_COUNT && self.count.fract() == 0.0;
        let single = self.min.to_bits() == self.max.to_bits();
        let mut flags = 0;
        if self.sketch.is_some() {
            flags |= HAS_SKETCH;
        }
        if whole {
            flags |= WHOLE_COUNT;
        }
        if single {
            flags |= SINGLE_VALUE;
        }
        out.push(flags);
        if whole {
            put_varint(out, self.count as u64);
        } else {
            out.extend_from_slice(&self.count.to_le_bytes());
        }
        out.extend_from_slice(&self.sum.to_le_bytes());
        out.extend_from_slice(&self.min.to_le_bytes());
        if !single {
            out.extend_from_slice(&self.max.to_le_bytes());
        }
        if let Some(s) = &self.sketch {
            s.encode(out);
        }
    }

    /// Reads an aggregate written by [`Aggregate::encode`]; returns it and
    /// the number of bytes read. Never panics on malformed input.
    pub fn decode(bytes: &[u8]) -> Result<(Aggregate, usize), String> {
        let mut at = 0usize;
        let flags = *bytes.first().ok_or("truncated aggregate")?;
        at += 1;
        if flags & !(HAS_SKETCH | WHOLE_COUNT | SINGLE_VALUE) != 0 {
            return Err(format!("unknown aggregate flags {flags:#04x}"));
        }
        let f64_at = |at: &mut usize| -> Result<f64, String> {
            let b = bytes.get(*at..*at + 8).ok_or("truncated aggregate")?;
            *at += 8;
            let mut a = [0u8; 8];
            a.copy_from_slice(b);
            Ok(f64::from_le_bytes(a))
        };
        let count = if flags & WHOLE_COUNT != 0 {
            let (v, used) = get_varint(&bytes[at..]).ok_or("bad aggregate count")?;
            at += used;
            v as f64
        } else {
            f64_at(&mut at)?
        };
        let sum = f64_at(&mut at)?;
        let min = f64_at(&mut at)?;
        let max = if flags & SINGLE_VALUE != 0 {
            min
        } else {
            f64_at(&mut at)?
        };
        let sketch = if flags & HAS_SKETCH != 0 {
            let (s, used) = Sketch::decode(&bytes[at..])?;
            at += used;
            Some(s)
        } else {
            None
        };
        let agg = Aggregate {
            count,
            sum,
            min,
            max,
            sketch,
        };
        Ok((agg, at))
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// A varint and its length; `None` when truncated or longer than 10 bytes.
fn get_varint(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut v = 0u64;
    for (i, &b) in bytes.iter().enumerate().take(10) {
        v |= u64::from(b & 0x7f).checked_shl(7 * i as u32)?;
        if b & 0x80 == 0 {
            return Some((v, i + 1));
        }
    }
    None
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn values_and_counts_weigh_each_value() {
        let a = Aggregate::from_values(&[1.0, 5.0, 2.0], &[2.0, 1.0, 3.0]).unwrap();
        assert_eq!((a.count, a.sum, a.min, a.max), (6.0, 13.0, 1.0, 5.0));
        let s = a.sketch.as_ref().unwrap();
        assert_eq!(s.count(), 6);
        assert_eq!(s.bins().map(|b| b.count).collect::<Vec<_>>(), [2, 3, 1]);
    }

    #[test]
    fn counts_default_to_one() {
        let a = Aggregate::from_values(&[1.0, 2.0], &[]).unwrap();
        assert_eq!((a.count, a.sum), (2.0, 3.0));
    }

    #[test]
    fn bad_values_and_counts_are_rejected() {
        assert_eq!(
            Aggregate::from_values(&[], &[]),
            Err(AggregateError::NoValues)
        );
        assert_eq!(
            Aggregate::from_values(&[1.0, 2.0], &[1.0]),
            Err(AggregateError::LengthMismatch {
                values: 2,
                counts: 1
            })
        );
        let err = Aggregate::from_values(&[1.0, 2.0], &[1.0, 0.5]).unwrap_err();
        assert_eq!(
            err.to_string(),
            "counts[1] must be a whole number of at least 1, got 0.5"
        );
        assert!(Aggregate::from_values(&[1.0], &[0.0]).is_err());
    }

    #[test]
    fn statistic_sets_keep_a_sketch_only_for_one_value() {
        let a = Aggregate::from_stats(1.0, 4.0, 4.0, 4.0).unwrap();
        assert_eq!(a.sketch.as_ref().map(Sketch::count), Some(1));
        let same = Aggregate::from_stats(5.0, 15.0, 3.0, 3.0).unwrap();
        assert_eq!(same.sketch.as_ref().map(Sketch::count), Some(5));
        let spread = Aggregate::from_stats(5.0, 15.0, 1.0, 5.0).unwrap();
        assert_eq!(spread.sketch, None);
        assert_eq!(
            Aggregate::from_stats(0.0, 0.0, 1.0, 1.0),
            Err(AggregateError::BadSampleCount(0.0))
        );
        assert_eq!(
            Aggregate::from_stats(2.0, 3.0, 2.0, 1.0)
                .unwrap_err()
                .to_string(),
            "min (2) must not exceed max (1)"
        );
    }

    #[test]
    fn merging_a_statistic_set_drops_the_sketch() {
        let mut a = Aggregate::from_value(1.0);
        a.merge(&Aggregate::from_value(3.0));
        assert_eq!(a.sketch.as_ref().map(Sketch::count), Some(2));
        a.merge(&Aggregate::from_stats(2.0, 10.0, 4.0, 6.0).unwrap());
        assert_eq!((a.count, a.sum, a.min, a.max), (4.0, 14.0, 1.0, 6.0));
        assert_eq!(a.sketch, None);
    }

    #[test]
    fn encoding_of_one_value_is_small() {
        let mut out = Vec::new();
        Aggregate::from_value(12.5).encode(&mut out);
        // flags, count, sum, min, then the sketch: version, zero count, one
        // positive bin (n, key 127 as a 2-byte zigzag varint, count), no
        // negative bins.
        assert_eq!(out.len(), 1 + 1 + 8 + 8 + (1 + 1 + 4 + 1), "{out:?}");
    }

    #[test]
    fn decode_rejects_unknown_flags() {
        assert_eq!(
            Aggregate::decode(&[0x80]).unwrap_err(),
            "unknown aggregate flags 0x80"
        );
        assert_eq!(Aggregate::decode(&[]).unwrap_err(), "truncated aggregate");
    }

    fn aggregate() -> impl Strategy<Value = Aggregate> {
        prop_oneof![
            prop::collection::vec((-1e6f64..1e6, 1u32..5), 1..50).prop_map(|vc| {
                let (v, c): (Vec<f64>, Vec<f64>) =
                    vc.into_iter().map(|(v, c)| (v, f64::from(c))).unzip();
                Aggregate::from_values(&v, &c).unwrap()
            }),
            (0.5f64..1e6, -1e6f64..1e6, -1e6f64..1e6, 0f64..1e3)
                .prop_map(|(n, s, m, d)| { Aggregate::from_stats(n, s, m, m + d).unwrap() }),
        ]
    }

    proptest! {
        #[test]
        fn encode_decode_round_trips(a in aggregate(), tail in prop::collection::vec(any::<u8>(), 0..4)) {
            let mut bytes = Vec::new();
            a.encode(&mut bytes);
            let len = bytes.len();
            bytes.extend_from_slice(&tail);
            let (back, used) = Aggregate::decode(&bytes).unwrap();
            prop_assert_eq!(used, len);
            prop_assert_eq!(back, a);
        }

        #[test]
        fn decode_never_panics(bytes in prop::collection::vec(any::<u8>(), 0..80)) {
            if let Ok((_, used)) = Aggregate::decode(&bytes) {
                prop_assert!(used <= bytes.len());
            }
        }

        #[test]
        fn merge_is_the_aggregate_of_the_union(
            a in prop::collection::vec(-1e3f64..1e3, 1..50),
            b in prop::collection::vec(-1e3f64..1e3, 1..50),
        ) {
            let mut merged = Aggregate::from_values(&a, &[]).unwrap();
            merged.merge(&Aggregate::from_values(&b, &[]).unwrap());
            let union: Vec<f64> = a.iter().chain(&b).copied().collect();
            let whole = Aggregate::from_values(&union, &[]).unwrap();
            prop_assert_eq!(merged.count, whole.count);
            prop_assert_eq!(merged.min, whole.min);
            prop_assert_eq!(merged.max, whole.max);
            prop_assert!((merged.sum - whole.sum).abs() <= 1e-6 * (1.0 + whole.sum.abs()));
            prop_assert_eq!(merged.sketch, whole.sketch);
        }
    }
}
