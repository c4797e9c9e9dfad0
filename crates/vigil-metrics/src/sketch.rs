//! A mergeable quantile sketch: DDSketch with a logarithmic mapping and 1%
//! relative accuracy (Masson, Rim, Lee, VLDB 2019).
//!
//! Why our own and not the `sketches-ddsketch` crate: that crate keeps its
//! bins private (`Store`'s fields are `pub(crate)`), and the extended
//! statistics (trimmed and winsorized means, `PR`, `TC`, `TS`) walk the
//! bins in value order. We also want a compact, bounds-checked binary form
//! for the time-series store and for replicas exchanging aggregates.
//!
//! Every value `v > 0` falls in bin `k = ceil(log_γ v)` with
//! `γ = (1 + α) / (1 − α)`, α = 0.01; the bin's representative value
//! `2γᵏ / (γ + 1)` is within α of every value in `(γᵏ⁻¹, γᵏ]`. Negative
//! values go to a mirrored store, zero to its own counter. Each store keeps
//! at most [`MAX_BINS`] consecutive keys: a key below `max_key − MAX_BINS + 1`
//! is counted in that lowest bin (DDSketch's "collapsing lowest" store), so
//! only magnitudes ~6·10¹⁷ times smaller than the largest of the same sign
//! lose accuracy. The folding depends only on the largest key, so a merge is
//! exactly the sketch of the union, bin by bin.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The relative accuracy α: every quantile is within 1% of the true value
/// of the rank it picks (up to floating-point rounding at bin edges).
pub const RELATIVE_ACCURACY: f64 = 0.01;

/// Most consecutive bins one store (positive or negative) keeps.
pub const MAX_BINS: usize = 2048;

/// γ = (1 + α) / (1 − α).
#[cfg(test)]
const GAMMA: f64 = (1.0 + RELATIVE_ACCURACY) / (1.0 - RELATIVE_ACCURACY);
/// ln γ, precomputed because `ln` is not `const`.
const LN_GAMMA: f64 = 0.020_000_666_706_669_435;
/// ln(2 / (1 + γ)): from a bin's upper edge γᵏ to its representative.
const LN_MIDPOINT: f64 = -0.010_050_335_853_501_338;
/// Keys of the smallest subnormal and the largest finite f64, with margin:
/// no finite value maps outside, so a decoded key outside is corrupt.
const MIN_KEY: i32 = -40_000;
const MAX_KEY: i32 = 40_000;
/// Format version of [`Sketch::encode`].
const VERSION: u8 = 1;

/// One bin, as [`Sketch::bins`] yields it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Bin {
    /// The representative value (within 1% of every value counted here).
    pub value: f64,
    /// How many values fell here.
    pub count: u64,
}

/// Contiguous counts for keys `offset ..= offset + bins.len() - 1`. When
/// non-empty, the first and last counts are non-zero, so two stores with
/// the same content have the same representation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Store {
    offset: i32,
    bins: Vec<u64>,
}

impl Store {
    fn add(&mut self, key: i32, count: u64) {
        if self.bins.is_empty() {
            self.offset = key;
            self.bins.push(count);
            return;
        }
        let max = self.offset + self.bins.len() as i32 - 1;
        if key > max {
            let floor = key - MAX_BINS as i32 + 1;
            if floor > self.offset {
                // Fold every key below the new floor into the floor bin;
                // the old first bin is non-zero, so the folded one is too.
                let upto = (floor.min(max) - self.offset) as usize;
                let folded = self.bins[..=upto]
                    .iter()
                    .fold(0u64, |a, &c| a.saturating_add(c));
                if floor > max {
                    self.bins.clear();
                    self.bins.push(folded);
                } else {
                    self.bins.drain(..upto);
                    self.bins[0] = folded;
                }
                self.offset = floor;
            }
            self.bins.resize((key - self.offset) as usize + 1, 0);
            if let Some(last) = self.bins.last_mut() {
                *last = count;
            }
            return;
        }
        let key = key.max(max - MAX_BINS as i32 + 1);
        if key < self.offset {
            let grow = (self.offset - key) as usize;
            self.bins.splice(0..0, std::iter::repeat_n(0, grow));
            self.offset = key;
        }
        let slot = &mut self.bins[(key - self.offset) as usize];
        *slot = slot.saturating_add(count);
    }

    /// Non-zero bins as `(key, count)`, ascending by key.
    fn iter(&self) -> impl DoubleEndedIterator<Item = (i32, u64)> + '_ {
        let offset = self.offset;
        self.bins
            .iter()
            .enumerate()
            .filter(|&(_, &c)| c > 0)
            .map(move |(i, &c)| (offset + i as i32, c))
    }

    fn merge(&mut self, other: &Store) {
        // Highest key first, so the floor is final before the low keys come.
        for (key, count) in other.iter().rev() {
            self.add(key, count);
        }
    }
}

/// A mergeable distribution sketch (DDSketch, 1% relative accuracy).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Sketch {
    positive: Store,
    negative: Store,
    zero: u64,
    count: u64,
}

fn key_of(magnitude: f64) -> i32 {
    // `magnitude` is finite and > 0, so the key lies in MIN_KEY..=MAX_KEY.
    (magnitude.ln() / LN_GAMMA).ceil() as i32
}

fn value_of(key: i32) -> f64 {
    // In log space so the top bin of f64::MAX does not overflow.
    (f64::from(key) * LN_GAMMA + LN_MIDPOINT)
        .exp()
        .min(f64::MAX)
}

impl Sketch {
    /// An empty sketch.
    pub fn new() -> Self {
        Sketch::default()
    }

    /// Adds `value` `count` times. NaN and ±∞ are ignored: validation
    /// rejects them before they get here.
    pub fn add(&mut self, value: f64, count: u64) {
        if count == 0 || !value.is_finite() {
            return;
        }
        if value > 0.0 {
            self.positive.add(key_of(value), count);
        } else if value < 0.0 {
            self.negative.add(key_of(-value), count);
        } else {
            self.zero = self.zero.saturating_add(count);
        }
        self.count = self.count.saturating_add(count);
    }

    /// Merges another sketch into this one; the result is exactly the
    /// sketch of both inputs' values.
    pub fn merge(&mut self, other: &Sketch) {
        self.positive.merge(&other.positive);
        self.negative.merge(&other.negative);
        self.zero = self.zero.saturating_add(other.zero);
        self.count = self.count.saturating_add(other.count);
    }

    /// Number of values added.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Whether no value was added.
    pub fn is_empty(&self) -> bool {
        self.count == 0
    }

    /// The non-empty bins in ascending value order: negative values (most
    /// negative first), zero, then positive values.
    pub fn bins(&self) -> impl DoubleEndedIterator<Item = Bin> + '_ {
        let negative = self.negative.iter().rev().map(|(k, count)| Bin {
            value: -value_of(k),
            count,
        });
        let zero = (self.zero > 0).then_some(Bin {
            value: 0.0,
            count: self.zero,
        });
        let positive = self.positive.iter().map(|(k, count)| Bin {
            value: value_of(k),
            count,
        });
        negative.chain(zero).chain(positive)
    }

    /// The value at quantile `q` in `[0, 1]`; `None` when empty. The rank
    /// picked is `⌊q·(n − 1)⌋` (0-based, a 1e-9 tolerance absorbing
    /// rounding in `q`), as DDSketch does.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        if self.count == 0 || q.is_nan() {
            return None;
        }
        let rank = Self::rank(q, self.count);
        let mut seen = 0u64;
        // Walk from the nearer end: p99 looks at a few top bins only.
        if rank >= self.count / 2 {
            let from_top = self.count - 1 - rank;
            for bin in self.bins().rev() {
                seen = seen.saturating_add(bin.count);
                if seen > from_top {
                    return Some(bin.value);
                }
            }
        } else {
            for bin in self.bins() {
                seen = seen.saturating_add(bin.count);
                if seen > rank {
                    return Some(bin.value);
                }
            }
        }
        None
    }

    /// The 0-based rank [`Sketch::quantile`] picks among `n` values.
    pub fn rank(q: f64, n: u64) -> u64 {
        let r = (q.clamp(0.0, 1.0) * (n.saturating_sub(1)) as f64 + 1e-9).floor();
        (r as u64).min(n.saturating_sub(1))
    }
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn zigzag(v: i32) -> u64 {
    u64::from(((v << 1) ^ (v >> 31)) as u32)
}

fn unzigzag(v: u64) -> Option<i32> {
    let v = u32::try_from(v).ok()?;
    Some(((v >> 1) as i32) ^ -((v & 1) as i32))
}

/// A bounds-checked reader over encoded bytes.
struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8, String> {
        let b = *self.bytes.get(self.at).ok_or("truncated sketch")?;
        self.at += 1;
        Ok(b)
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let b = self.byte()?;
            let part = u64::from(b & 0x7f);
            if shift == 63 && part > 1 {
                return Err("sketch varint overflows 64 bits".into());
            }
            v |= part << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("sketch varint longer than 10 bytes".into())
    }
}

impl Store {
    /// Non-zero bin count, first key (zigzag), then per bin the key delta
    /// from the previous bin (none for the first) and the count.
    fn encode(&self, out: &mut Vec<u8>) {
        let n = self.bins.iter().filter(|&&c| c > 0).count();
        put_varint(out, n as u64);
        let mut prev = None;
        for (key, count) in self.iter() {
            match prev {
                None => put_varint(out, zigzag(key)),
                Some(p) => put_varint(out, (key - p) as u64),
            }
            put_varint(out, count);
            prev = Some(key);
        }
    }

    fn decode(r: &mut Reader<'_>) -> Result<(Store, u64), String> {
        let n = r.varint()?;
        if n > MAX_BINS as u64 {
            return Err(format!(
                "sketch store has {n} bins, at most {MAX_BINS} allowed"
            ));
        }
        let mut store = Store::default();
        let mut total = 0u64;
        let mut prev: Option<i32> = None;
        for _ in 0..n {
            let key = match prev {
                None => unzigzag(r.varint()?).ok_or("sketch key out of range")?,
                Some(p) => {
                    let delta = r.varint()?;
                    if delta == 0 {
                        return Err("sketch keys are not strictly increasing".into());
                    }
                    i32::try_from(delta)
                        .ok()
                        .and_then(|d| p.checked_add(d))
                        .ok_or("sketch key out of range")?
                }
            };
            if !(MIN_KEY..=MAX_KEY).contains(&key) {
                return Err(format!("sketch key {key} out of range"));
            }
            if (key - store.offset) as usize >= MAX_BINS && prev.is_some() {
                return Err(format!("sketch store spans more than {MAX_BINS} bins"));
            }
            let count = r.varint()?;
            if count == 0 {
                return Err("sketch bin with a zero count".into());
            }
            total = total.checked_add(count).ok_or("sketch count overflows")?;
            if prev.is_none() {
                store.offset = key;
            }
            store.bins.resize((key - store.offset) as usize, 0);
            store.bins.push(count);
            prev = Some(key);
        }
        Ok((store, total))
    }
}

impl Sketch {
    /// Appends the sketch's binary form to `out`: a version byte, the zero
    /// count, then the positive and negative stores (varint key deltas and
    /// varint counts).
    pub fn encode(&self, out: &mut Vec<u8>) {
        out.push(VERSION);
        put_varint(out, self.zero);
        self.positive.encode(out);
        self.negative.encode(out);
    }

    /// Reads a sketch written by [`Sketch::encode`]; returns it and the
    /// number of bytes read. Never panics: any malformed input is an error.
    pub fn decode(bytes: &[u8]) -> Result<(Sketch, usize), String> {
        let mut r = Reader { bytes, at: 0 };
        let version = r.byte()?;
        if version != VERSION {
            return Err(format!("unknown sketch format version {version}"));
        }
        let zero = r.varint()?;
        let (positive, p) = Store::decode(&mut r)?;
        let (negative, n) = Store::decode(&mut r)?;
        let count = zero
            .checked_add(p)
            .and_then(|c| c.checked_add(n))
            .ok_or("sketch count overflows")?;
        let sketch = Sketch {
            positive,
            negative,
            zero,
            count,
        };
        Ok((sketch, r.at))
    }

    /// The binary form as a new vector.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        self.encode(&mut out);
        out
    }
}

// Serde carries the binary form, so a deserialized sketch is validated the
// same way a decoded one is.
impl Serialize for Sketch {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(&self.to_bytes())
    }
}

impl<'de> Deserialize<'de> for Sketch {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> serde::de::Visitor<'de> for V {
            type Value = Sketch;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an encoded sketch")
            }
            fn visit_bytes<E: serde::de::Error>(self, v: &[u8]) -> Result<Sketch, E> {
                match Sketch::decode(v) {
                    Ok((s, used)) if used == v.len() => Ok(s),
                    Ok(_) => Err(E::custom("trailing bytes after sketch")),
                    Err(e) => Err(E::custom(e)),
                }
            }
            fn visit_seq<A: serde::de::SeqAccess<'de>>(
                self,
                mut seq: A,
            ) -> Result<Sketch, A::Error> {
                let mut bytes = Vec::new();
                while let Some(b) = seq.next_element::<u8>()? {
                    bytes.push(b);
                }
                self.visit_bytes(&bytes)
            }
        }
        d.deserialize_bytes(V)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    /// Relative-error bound, with room for rounding at bin edges.
    const TOLERANCE: f64 = RELATIVE_ACCURACY * (1.0 + 1e-9);

    fn exact_quantile(values: &[f64], q: f64) -> f64 {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        sorted[Sketch::rank(q, sorted.len() as u64) as usize]
    }

    fn rel_err(got: f64, want: f64) -> f64 {
        if want == 0.0 {
            got.abs()
        } else {
            ((got - want) / want).abs()
        }
    }

    fn sketch_of(values: &[f64]) -> Sketch {
        let mut s = Sketch::new();
        for &v in values {
            s.add(v, 1);
        }
        s
    }

    #[test]
    fn ln_gamma_matches_gamma() {
        assert!((GAMMA.ln() - LN_GAMMA).abs() < 1e-15);
        assert!(((2.0 / (1.0 + GAMMA)).ln() - LN_MIDPOINT).abs() < 1e-15);
    }

    #[test]
    fn extreme_finite_values_have_keys_in_range() {
        for v in [f64::MAX, f64::MIN_POSITIVE, 5e-324, 2f64.powi(360)] {
            let k = key_of(v);
            assert!((MIN_KEY..=MAX_KEY).contains(&k), "{v} -> {k}");
            assert!(rel_err(value_of(k), v) <= TOLERANCE || v < 1e-300, "{v}");
        }
    }

    #[test]
    fn empty_sketch_has_no_quantile() {
        assert_eq!(Sketch::new().quantile(0.5), None);
        assert_eq!(Sketch::new().count(), 0);
    }

    #[test]
    fn zero_negative_and_positive_values_are_ordered() {
        let s = sketch_of(&[-10.0, 0.0, 0.0, 5.0, -1.0]);
        let bins: Vec<Bin> = s.bins().collect();
        assert_eq!(bins.len(), 4);
        assert!(bins.windows(2).all(|w| w[0].value < w[1].value));
        assert_eq!(
            bins[2],
            Bin {
                value: 0.0,
                count: 2
            }
        );
        assert!(rel_err(bins[0].value, -10.0) <= TOLERANCE);
        assert!(rel_err(s.quantile(0.0).unwrap(), -10.0) <= TOLERANCE);
        assert_eq!(s.quantile(0.5), Some(0.0));
        assert!(rel_err(s.quantile(1.0).unwrap(), 5.0) <= TOLERANCE);
    }

    #[test]
    fn counts_add_up_and_nan_is_ignored() {
        let mut s = Sketch::new();
        s.add(3.0, 7);
        s.add(f64::NAN, 3);
        s.add(f64::INFINITY, 3);
        s.add(4.0, 0);
        assert_eq!(s.count(), 7);
        assert_eq!(s.bins().map(|b| b.count).sum::<u64>(), 7);
    }

    #[test]
    fn bin_count_is_bounded_by_collapsing_the_lowest() {
        let mut s = Sketch::new();
        // 1e-300 .. 1e300 spans ~69,000 keys.
        let mut v = 1e-300;
        while v < 1e300 {
            s.add(v, 1);
            v *= 1.5;
        }
        assert!(s.positive.bins.len() <= MAX_BINS);
        let top = s.quantile(1.0).unwrap();
        assert!(rel_err(top, v / 1.5) <= TOLERANCE);
        // The collapsed values all report the lowest kept bin.
        let lowest = s.bins().next().unwrap();
        assert!(lowest.count > 1000);
    }

    #[test]
    fn encoding_is_compact_for_latencies() {
        let values: Vec<f64> = (0..1000).map(|i| 5.0 + (i as f64 * 0.37) % 200.0).collect();
        let bytes = sketch_of(&values).to_bytes();
        assert!(bytes.len() < 1000, "{} bytes", bytes.len());
    }

    #[test]
    fn decode_rejects_corrupt_input_with_a_reason() {
        assert_eq!(Sketch::decode(&[]).unwrap_err(), "truncated sketch");
        assert_eq!(
            Sketch::decode(&[9]).unwrap_err(),
            "unknown sketch format version 9"
        );
        // One positive bin with count 0.
        assert_eq!(
            Sketch::decode(&[1, 0, 1, 2, 0, 0]).unwrap_err(),
            "sketch bin with a zero count"
        );
        // Two positive bins with delta 0.
        assert_eq!(
            Sketch::decode(&[1, 0, 2, 2, 1, 0, 1, 0]).unwrap_err(),
            "sketch keys are not strictly increasing"
        );
    }

    #[test]
    fn serde_round_trip_through_json() {
        let s = sketch_of(&[1.0, 2.0, -3.0, 0.0]);
        let json = serde_json::to_string(&s).unwrap();
        let back: Sketch = serde_json::from_str(&json).unwrap();
        assert_eq!(back, s);
    }

    fn value() -> impl Strategy<Value = f64> {
        prop_oneof![
            4 => 1e-3f64..1e4,
            1 => -1e6f64..1e6,
            1 => Just(0.0),
            1 => (-300i32..300, any::<bool>()).prop_map(|(e, neg)| {
                let v = 10f64.powi(e) * 1.2345;
                if neg { -v } else { v }
            }),
        ]
    }

    /// Values whose magnitudes span less than the ~6e17 a store covers.
    fn value_in_range() -> impl Strategy<Value = f64> {
        prop_oneof![
            4 => 1e-3f64..1e4,
            1 => -1e6f64..1e6,
            1 => Just(0.0),
            1 => (-8i32..8, any::<bool>(), 1.0f64..10.0).prop_map(|(e, neg, m)| {
                let v = 10f64.powi(e) * m;
                if neg { -v } else { v }
            }),
        ]
    }

    proptest! {
        #[test]
        fn quantiles_are_within_one_percent(
            values in prop::collection::vec(value_in_range(), 1..400),
            q in 0.0f64..=1.0,
        ) {
            let s = sketch_of(&values);
            let want = exact_quantile(&values, q);
            let got = s.quantile(q).unwrap();
            prop_assert!(rel_err(got, want) <= TOLERANCE, "q={q} got={got} want={want}");
        }

        #[test]
        fn merge_equals_sketch_of_union(
            a in prop::collection::vec(value(), 0..200),
            b in prop::collection::vec(value(), 0..200),
            c in prop::collection::vec(value(), 0..200),
        ) {
            let (sa, sb, sc) = (sketch_of(&a), sketch_of(&b), sketch_of(&c));
            let union: Vec<f64> = a.iter().chain(&b).chain(&c).copied().collect();
            let mut left = sa.clone();
            left.merge(&sb);
            left.merge(&sc);
            let mut bc = sb.clone();
            bc.merge(&sc);
            let mut right = sa.clone();
            right.merge(&bc);
            let whole = sketch_of(&union);
            prop_assert_eq!(&left, &whole);
            prop_assert_eq!(&right, &whole);
            prop_assert_eq!(left.bins().collect::<Vec<_>>(), whole.bins().collect::<Vec<_>>());
        }

        #[test]
        fn merge_equals_union_even_when_collapsing(
            a in prop::collection::vec(-330i32..330, 1..100),
            b in prop::collection::vec(-330i32..330, 1..100),
        ) {
            let to_vals = |e: &[i32]| e.iter().map(|&e| 10f64.powi(e)).collect::<Vec<_>>();
            let (va, vb) = (to_vals(&a), to_vals(&b));
            let mut merged = sketch_of(&va);
            merged.merge(&sketch_of(&vb));
            let union: Vec<f64> = va.iter().chain(&vb).copied().collect();
            prop_assert_eq!(merged, sketch_of(&union));
        }

        #[test]
        fn encode_decode_round_trips(values in prop::collection::vec(value(), 0..300), tail in prop::collection::vec(any::<u8>(), 0..8)) {
            let s = sketch_of(&values);
            let mut bytes = s.to_bytes();
            let len = bytes.len();
            bytes.extend_from_slice(&tail);
            let (back, used) = Sketch::decode(&bytes).unwrap();
            prop_assert_eq!(used, len);
            prop_assert_eq!(back, s);
        }

        #[test]
        fn decode_never_panics(versioned in any::<bool>(), mut bytes in prop::collection::vec(any::<u8>(), 0..64)) {
            if versioned {
                bytes.insert(0, VERSION);
            }
            if let Ok((s, used)) = Sketch::decode(&bytes) {
                prop_assert!(used <= bytes.len());
                prop_assert_eq!(s.bins().map(|b| b.count).sum::<u64>(), s.count());
            }
        }

        #[test]
        fn decode_never_panics_on_mutated_sketches(
            values in prop::collection::vec(value(), 1..50),
            flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
        ) {
            let mut bytes = sketch_of(&values).to_bytes();
            for (i, b) in flips {
                let at = i.index(bytes.len());
                bytes[at] = b;
            }
            if let Ok((s, _)) = Sketch::decode(&bytes) {
                prop_assert_eq!(s.bins().map(|b| b.count).sum::<u64>(), s.count());
            }
        }
    }
}
