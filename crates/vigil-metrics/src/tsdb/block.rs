//! A block: the points of one tier of one series inside one fixed time
//! window. The open form is columns (cheap appends and merges); the sealed
//! form is bytes:
//!
//! ```text
//! varint points
//! u8     flags: bit 0 every count is 1 (count column left out)
//!               bit 1 every min = max = sum (min and max columns left out)
//!               bits 2-3 sketches: 0 none, 1 every point is one value, 2 mixed
//! varint length of the bit stream, then the bit stream:
//!        bucket numbers (delta of delta), [count], sum, [min, max] (XOR),
//!        [2-bit sketch tag per point when mixed: 0 none, 1 one value, 2 full]
//! then, when mixed, for each full sketch: varint length + Sketch::encode
//! ```
//!
//! A "plain" series (every point one value) keeps only timestamps and one
//! value column.

use crate::aggregate::Aggregate;
use crate::sketch::Sketch;

use super::codec::{
    BitReader, BitWriter, Truncated, get_varint, put_varint, read_floats, read_timestamps,
    write_floats, write_timestamps,
};

/// The sketch of one point.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum SketchCell {
    /// No percentiles (a statistic set was merged in).
    Absent,
    /// The point is one value counted once: its sketch is that of `min`,
    /// rebuilt when needed instead of stored.
    Single,
    /// Any other sketch.
    Full(Sketch),
}

impl SketchCell {
    /// How `agg`'s sketch is kept. A one-sample aggregate's sketch is taken
    /// to be the sketch of its one value, as `Aggregate::from_value` makes it.
    pub(crate) fn of(agg: &Aggregate) -> SketchCell {
        match &agg.sketch {
            None => SketchCell::Absent,
            Some(s) if agg.count == 1.0 && agg.min == agg.max && s.count() == 1 => {
                SketchCell::Single
            }
            Some(s) => SketchCell::Full(s.clone()),
        }
    }

    fn single(value: f64) -> Sketch {
        let mut s = Sketch::new();
        s.add(value, 1);
        s
    }

    /// The sketch, given the point's `min`.
    pub(crate) fn to_sketch(&self, min: f64) -> Option<Sketch> {
        match self {
            SketchCell::Absent => None,
            SketchCell::Single => Some(SketchCell::single(min)),
            SketchCell::Full(s) => Some(s.clone()),
        }
    }
}

/// Points as columns, ascending by bucket number, one point per bucket.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Columns {
    pub(crate) ts: Vec<i64>,
    pub(crate) count: Vec<f64>,
    pub(crate) sum: Vec<f64>,
    pub(crate) min: Vec<f64>,
    pub(crate) max: Vec<f64>,
    /// Empty when decoded without sketches.
    pub(crate) sketch: Vec<SketchCell>,
}

impl Columns {
    pub(crate) fn len(&self) -> usize {
        self.ts.len()
    }

    /// Merges `agg` into the point of `bucket`, adding the point if absent.
    pub(crate) fn record(&mut self, bucket: i64, agg: &Aggregate) {
        match self.ts.last() {
            Some(&last) if last == bucket => self.merge_at(self.ts.len() - 1, agg),
            Some(&last) if last > bucket => match self.ts.binary_search(&bucket) {
                Ok(i) => self.merge_at(i, agg),
                Err(i) => self.insert(i, bucket, agg),
            },
            _ => self.insert(self.ts.len(), bucket, agg),
        }
    }

    fn insert(&mut self, i: usize, bucket: i64, agg: &Aggregate) {
        self.ts.insert(i, bucket);
        self.count.insert(i, agg.count);
        self.sum.insert(i, agg.sum);
        self.min.insert(i, agg.min);
        self.max.insert(i, agg.max);
        self.sketch.insert(i, SketchCell::of(agg));
    }

    fn merge_at(&mut self, i: usize, agg: &Aggregate) {
        let cell = std::mem::replace(&mut self.sketch[i], SketchCell::Absent);
        self.sketch[i] = match (cell, &agg.sketch) {
            (SketchCell::Absent, _) | (_, None) => SketchCell::Absent,
            (SketchCell::Single, Some(s)) => {
                let mut base = SketchCell::single(self.min[i]);
                base.merge(s);
                SketchCell::Full(base)
            }
            (SketchCell::Full(mut base), Some(s)) => {
                base.merge(s);
                SketchCell::Full(base)
            }
        };
        self.count[i] += agg.count;
        self.sum[i] += agg.sum;
        self.min[i] = self.min[i].min(agg.min);
        self.max[i] = self.max[i].max(agg.max);
    }

    /// Points with buckets in `from..to`, copied.
    pub(crate) fn range(&self, from: i64, to: i64) -> Columns {
        let a = self.ts.partition_point(|&t| t < from);
        let b = self.ts.partition_point(|&t| t < to);
        Columns {
            ts: self.ts[a..b].to_vec(),
            count: self.count[a..b].to_vec(),
            sum: self.sum[a..b].to_vec(),
            min: self.min[a..b].to_vec(),
            max: self.max[a..b].to_vec(),
            sketch: self.sketch.get(a..b).map(<[_]>::to_vec).unwrap_or_default(),
        }
    }

    /// Bytes the columns take in memory (capacity, sketches estimated by
    /// their encoded size).
    pub(crate) fn heap_bytes(&self) -> usize {
        let full: usize = self
            .sketch
            .iter()
            .map(|c| match c {
                SketchCell::Full(s) => {
                    let mut b = Vec::new();
                    s.encode(&mut b);
                    b.len()
                }
                _ => 0,
            })
            .sum();
        self.ts.capacity() * 8
            + (self.count.capacity()
                + self.sum.capacity()
                + self.min.capacity()
                + self.max.capacity())
                * 8
            + self.sketch.capacity() * std::mem::size_of::<SketchCell>()
            + full
    }

    /// The sealed form.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let n = self.len();
        let ones = self.count.iter().all(|&c| c.to_bits() == 1f64.to_bits());
        let plain = (0..n).all(|i| {
            let s = self.sum[i].to_bits();
            self.min[i].to_bits() == s && self.max[i].to_bits() == s
        });
        let single = self.sketch.iter().all(|c| *c == SketchCell::Single);
        let absent = self.sketch.iter().all(|c| *c == SketchCell::Absent);
        let sketch_mode: u8 = if n > 0 && single {
            1
        } else if absent {
            0
        } else {
            2
        };
        let mut w = BitWriter::new();
        write_timestamps(&mut w, &self.ts);
        if !ones {
            write_floats(&mut w, self.count.iter().copied());
        }
        write_floats(&mut w, self.sum.iter().copied());
        if !plain {
            write_floats(&mut w, self.min.iter().copied());
            write_floats(&mut w, self.max.iter().copied());
        }
        if sketch_mode == 2 {
            for c in &self.sketch {
                let tag = match c {
                    SketchCell::Absent => 0,
                    SketchCell::Single => 1,
                    SketchCell::Full(_) => 2,
                };
                w.write(tag, 2);
            }
        }
        let bits = w.finish();
        let mut out = Vec::with_capacity(bits.len() + 8);
        put_varint(&mut out, n as u64);
        out.push(u8::from(ones) | (u8::from(plain) << 1) | (sketch_mode << 2));
        put_varint(&mut out, bits.len() as u64);
        out.extend_from_slice(&bits);
        if sketch_mode == 2 {
            let mut buf = Vec::new();
            for c in &self.sketch {
                if let SketchCell::Full(s) = c {
                    buf.clear();
                    s.encode(&mut buf);
                    put_varint(&mut out, buf.len() as u64);
                    out.extend_from_slice(&buf);
                }
            }
        }
        out
    }

    /// Reads a sealed block; without `sketches` the sketch column is left
    /// empty (and not read).
    pub(crate) fn decode(bytes: &[u8], sketches: bool) -> Result<Columns, String> {
        let trunc = |_: Truncated| "truncated block".to_owned();
        let mut at = 0;
        let n = get_varint(bytes, &mut at).map_err(trunc)? as usize;
        let flags = *bytes.get(at).ok_or("truncated block")?;
        at += 1;
        let bits_len = get_varint(bytes, &mut at).map_err(trunc)? as usize;
        let bits = bytes
            .get(at..at.saturating_add(bits_len))
            .ok_or("truncated block")?;
        at += bits_len;
        // Every point takes at least one bit per column: a count beyond
        // that is damage, refused before allocating for it.
        if n > bits_len.saturating_mul(8) + 1 {
            return Err(format!("block claims {n} points in {bits_len} bytes"));
        }
        let (ones, plain, mode) = (flags & 1 != 0, flags & 2 != 0, (flags >> 2) & 3);
        if mode == 3 || flags >> 4 != 0 {
            return Err(format!("unknown block flags {flags:#x}"));
        }
        let mut r = BitReader::new(bits);
        let mut c = Columns {
            ts: Vec::with_capacity(n),
            count: Vec::with_capacity(n),
            sum: Vec::with_capacity(n),
            min: Vec::with_capacity(n),
            max: Vec::with_capacity(n),
            sketch: Vec::new(),
        };
        read_timestamps(&mut r, n, &mut c.ts).map_err(trunc)?;
        if ones {
            c.count.resize(n, 1.0);
        } else {
            read_floats(&mut r, n, &mut c.count).map_err(trunc)?;
        }
        read_floats(&mut r, n, &mut c.sum).map_err(trunc)?;
        if plain {
            c.min.clone_from(&c.sum);
            c.max.clone_from(&c.sum);
        } else {
            read_floats(&mut r, n, &mut c.min).map_err(trunc)?;
            read_floats(&mut r, n, &mut c.max).map_err(trunc)?;
        }
        if !sketches {
            return Ok(c);
        }
        c.sketch = match mode {
            0 => vec![SketchCell::Absent; n],
            1 => vec![SketchCell::Single; n],
            _ => {
                let mut tags = Vec::with_capacity(n);
                for _ in 0..n {
                    tags.push(r.read(2).map_err(trunc)?);
                }
                let mut cells = Vec::with_capacity(n);
                for tag in tags {
                    cells.push(match tag {
                        0 => SketchCell::Absent,
                        1 => SketchCell::Single,
                        2 => {
                            let len = get_varint(bytes, &mut at).map_err(trunc)? as usize;
                            let raw = bytes
                                .get(at..at.saturating_add(len))
                                .ok_or("truncated sketch in block")?;
                            at += len;
                            let (s, _) = Sketch::decode(raw)?;
                            SketchCell::Full(s)
                        }
                        other => return Err(format!("unknown sketch tag {other}")),
                    });
                }
                cells
            }
        };
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    fn stat_set(count: f64, sum: f64, min: f64, max: f64) -> Aggregate {
        Aggregate {
            count,
            sum,
            min,
            max,
            sketch: None,
        }
    }

    #[test]
    fn a_plain_series_keeps_one_value_column_and_decodes_back() {
        let mut c = Columns::default();
        for i in 0..600 {
            c.record(1_000 + i, &Aggregate::from_value(100.0 + (i % 7) as f64));
        }
        let bytes = c.encode();
        assert_eq!(bytes[varint_len(600)] & 0b1111, 0b0111);
        assert!(bytes.len() < 600 * 2, "{} bytes", bytes.len());
        assert_eq!(Columns::decode(&bytes, true).unwrap(), c);
    }

    fn varint_len(n: u64) -> usize {
        let mut v = Vec::new();
        put_varint(&mut v, n);
        v.len()
    }

    #[test]
    fn merging_into_a_point_sums_and_widens_and_keeps_the_sketch() {
        let mut c = Columns::default();
        c.record(10, &Aggregate::from_value(5.0));
        c.record(12, &Aggregate::from_value(1.0));
        c.record(10, &Aggregate::from_value(9.0));
        c.record(11, &Aggregate::from_value(2.0));
        assert_eq!(c.ts, vec![10, 11, 12]);
        assert_eq!(
            (c.count[0], c.sum[0], c.min[0], c.max[0]),
            (2.0, 14.0, 5.0, 9.0)
        );
        let SketchCell::Full(s) = &c.sketch[0] else {
            panic!("{:?}", c.sketch[0])
        };
        assert_eq!(s.count(), 2);
        assert_eq!(c.sketch[1], SketchCell::Single);
        c.record(11, &stat_set(3.0, 6.0, 1.0, 3.0));
        assert_eq!(c.sketch[1], SketchCell::Absent);
        let back = Columns::decode(&c.encode(), true).unwrap();
        assert_eq!(back, c);
        let no_sketch = Columns::decode(&c.encode(), false).unwrap();
        assert!(no_sketch.sketch.is_empty());
        assert_eq!(no_sketch.sum, c.sum);
    }

    #[test]
    fn damaged_blocks_are_errors() {
        let mut c = Columns::default();
        for i in 0..50 {
            c.record(i * 3, &stat_set(2.0, i as f64, 0.5, 7.0));
        }
        let bytes = c.encode();
        for cut in 0..bytes.len() {
            assert!(Columns::decode(&bytes[..cut], true).is_err(), "cut {cut}");
        }
        assert!(Columns::decode(&[0xff, 0xff, 0xff, 0x7f, 0, 0], true).is_err());
    }

    fn arb_agg() -> impl Strategy<Value = Aggregate> {
        prop_oneof![
            any::<u64>().prop_map(|b| Aggregate::from_value(f64::from_bits(b))),
            (any::<u64>(), any::<u64>(), any::<u64>(), any::<u64>()).prop_map(|(a, b, c, d)| {
                stat_set(
                    f64::from_bits(a),
                    f64::from_bits(b),
                    f64::from_bits(c),
                    f64::from_bits(d),
                )
            }),
            proptest::collection::vec(-1e6f64..1e6, 1..5).prop_map(|vs| {
                let mut a = Aggregate::from_value(vs[0]);
                for v in &vs[1..] {
                    a.merge(&Aggregate::from_value(*v));
                }
                a
            }),
        ]
    }

    proptest! {
        #[test]
        fn blocks_round_trip(points in proptest::collection::vec((0i64..10_000, arb_agg()), 0..120)) {
            let mut c = Columns::default();
            for (t, a) in &points {
                c.record(*t, a);
            }
            let back = Columns::decode(&c.encode(), true).unwrap();
            // Compare bit patterns: NaN != NaN.
            let bits = |v: &[f64]| v.iter().map(|x| x.to_bits()).collect::<Vec<_>>();
            prop_assert_eq!(&back.ts, &c.ts);
            prop_assert_eq!(bits(&back.count), bits(&c.count));
            prop_assert_eq!(bits(&back.sum), bits(&c.sum));
            prop_assert_eq!(bits(&back.min), bits(&c.min));
            prop_assert_eq!(bits(&back.max), bits(&c.max));
            prop_assert_eq!(back.sketch.len(), c.sketch.len());
            for (a, b) in back.sketch.iter().zip(&c.sketch) {
                prop_assert_eq!(std::mem::discriminant(a), std::mem::discriminant(b));
            }
        }
    }
}
