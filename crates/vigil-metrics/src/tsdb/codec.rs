//! The bit-level codec of sealed blocks, as Gorilla (Pelkonen et al., VLDB
//! 2015) and Prometheus' chunks have it: delta-of-delta timestamps and XOR
//! floats. Written here rather than taken from a crate because it is the
//! store's product: the block layout around it (columns that collapse for
//! plain series, sketches) is ours anyway.
//!
//! Timestamps are bucket numbers (timestamp / tier resolution), so a regular
//! series has delta 1 and costs one bit per point. Every read is bounds
//! checked: a damaged file gives an error, never a panic.

/// Appends bits, most significant first, to a byte vector.
#[derive(Debug, Default)]
pub(crate) struct BitWriter {
    out: Vec<u8>,
    acc: u64,
    /// Bits held in `acc` (0..64).
    nacc: u32,
}

impl BitWriter {
    pub(crate) fn new() -> Self {
        BitWriter::default()
    }

    /// Writes the low `n` bits of `value` (`n` ≤ 64).
    #[inline]
    pub(crate) fn write(&mut self, value: u64, n: u32) {
        debug_assert!(n <= 64);
        if n == 0 {
            return;
        }
        let value = if n == 64 {
            value
        } else {
            value & ((1 << n) - 1)
        };
        let free = 64 - self.nacc;
        if n < free {
            self.acc = (self.acc << n) | value;
            self.nacc += n;
        } else {
            let rest = n - free;
            // `free` is 1..=64: shift in two steps so 64 never overflows.
            let acc = if free == 64 { 0 } else { self.acc << free };
            let word = acc | (value >> rest);
            self.out.extend_from_slice(&word.to_be_bytes());
            self.acc = if rest == 0 {
                0
            } else {
                value & ((1 << rest) - 1)
            };
            self.nacc = rest;
        }
    }

    /// Pads to a byte boundary with zeros and returns the bytes.
    pub(crate) fn finish(mut self) -> Vec<u8> {
        if self.nacc > 0 {
            let word = self.acc << (64 - self.nacc);
            let n = self.nacc.div_ceil(8) as usize;
            self.out.extend_from_slice(&word.to_be_bytes()[..n]);
        }
        self.out
    }
}

/// Reading past the end of a block's bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Truncated;

/// Reads bits written by [`BitWriter`].
#[derive(Debug)]
pub(crate) struct BitReader<'a> {
    bytes: &'a [u8],
    /// Position in bits.
    pos: usize,
}

impl<'a> BitReader<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        BitReader { bytes, pos: 0 }
    }

    /// Reads `n` bits (`n` ≤ 64).
    #[inline]
    pub(crate) fn read(&mut self, n: u32) -> Result<u64, Truncated> {
        if n == 0 {
            return Ok(0);
        }
        let end = self.pos + n as usize;
        if end > self.bytes.len() * 8 {
            return Err(Truncated);
        }
        let byte = self.pos / 8;
        let shift = (self.pos % 8) as u32;
        // Load up to 9 bytes starting at `byte` as a u128 window.
        let mut window = [0u8; 16];
        let take = (self.bytes.len() - byte).min(9);
        window[..take].copy_from_slice(&self.bytes[byte..byte + take]);
        let w = u128::from_be_bytes(window);
        let v = (w << shift) >> (128 - n);
        self.pos = end;
        Ok(v as u64)
    }

    #[inline]
    pub(crate) fn bit(&mut self) -> Result<bool, Truncated> {
        Ok(self.read(1)? == 1)
    }
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Delta-of-delta timestamps: the first in 64 bits, then every
/// delta-of-delta (the first delta counts as one against 0), zigzagged, in
/// a prefix code: `0`; `10`+7; `110`+9; `1110`+12; `1111`+64 bits.
pub(crate) fn write_timestamps(w: &mut BitWriter, ts: &[i64]) {
    let Some(&first) = ts.first() else { return };
    w.write(first as u64, 64);
    let mut prev = first;
    let mut prev_delta = 0i64;
    for &t in &ts[1..] {
        let delta = t.wrapping_sub(prev);
        let dod = zigzag(delta.wrapping_sub(prev_delta));
        if dod == 0 {
            w.write(0b0, 1);
        } else if dod < 1 << 7 {
            w.write(0b10, 2);
            w.write(dod, 7);
        } else if dod < 1 << 9 {
            w.write(0b110, 3);
            w.write(dod, 9);
        } else if dod < 1 << 12 {
            w.write(0b1110, 4);
            w.write(dod, 12);
        } else {
            w.write(0b1111, 4);
            w.write(dod, 64);
        }
        prev = t;
        prev_delta = delta;
    }
}

/// Reads `n` timestamps written by [`write_timestamps`].
pub(crate) fn read_timestamps(
    r: &mut BitReader<'_>,
    n: usize,
    out: &mut Vec<i64>,
) -> Result<(), Truncated> {
    if n == 0 {
        return Ok(());
    }
    let mut prev = r.read(64)? as i64;
    out.push(prev);
    let mut prev_delta = 0i64;
    for _ in 1..n {
        let dod = if !r.bit()? {
            0
        } else if !r.bit()? {
            r.read(7)?
        } else if !r.bit()? {
            r.read(9)?
        } else if !r.bit()? {
            r.read(12)?
        } else {
            r.read(64)?
        };
        let delta = prev_delta.wrapping_add(unzigzag(dod));
        prev = prev.wrapping_add(delta);
        out.push(prev);
        prev_delta = delta;
    }
    Ok(())
}

/// Gorilla XOR floats, on the raw bit patterns (NaN payloads kept): the
/// first value in 64 bits, then `0` for a repeat; `10` + the meaningful
/// bits when they fit the previous window; `11` + 5 bits of leading zeros +
/// 6 bits of length (64 written as 0) + the meaningful bits otherwise.
pub(crate) fn write_floats(w: &mut BitWriter, values: impl IntoIterator<Item = f64>) {
    let mut it = values.into_iter();
    let Some(first) = it.next() else { return };
    let mut prev = first.to_bits();
    w.write(prev, 64);
    // An impossible window, so the first change writes its own.
    let mut lead = u32::MAX;
    let mut trail = 0u32;
    for v in it {
        let bits = v.to_bits();
        let x = bits ^ prev;
        prev = bits;
        if x == 0 {
            w.write(0, 1);
            continue;
        }
        let l = x.leading_zeros().min(31);
        let t = x.trailing_zeros();
        if lead != u32::MAX && l >= lead && t >= trail {
            w.write(0b10, 2);
            w.write(x >> trail, 64 - lead - trail);
        } else {
            lead = l;
            trail = t;
            let len = 64 - l - t;
            w.write(0b11, 2);
            w.write(u64::from(l), 5);
            w.write(u64::from(len & 63), 6);
            w.write(x >> t, len);
        }
    }
}

/// Reads `n` floats written by [`write_floats`].
pub(crate) fn read_floats(
    r: &mut BitReader<'_>,
    n: usize,
    out: &mut Vec<f64>,
) -> Result<(), Truncated> {
    if n == 0 {
        return Ok(());
    }
    let mut prev = r.read(64)?;
    out.push(f64::from_bits(prev));
    let mut lead = 0u32;
    let mut trail = 0u32;
    for _ in 1..n {
        if r.bit()? {
            if r.bit()? {
                lead = r.read(5)? as u32;
                let len = match r.read(6)? as u32 {
                    0 => 64,
                    l => l,
                };
                if lead + len > 64 {
                    return Err(Truncated);
                }
                trail = 64 - lead - len;
            }
            let len = 64 - lead - trail;
            let x = r.read(len)? << trail;
            prev ^= x;
        }
        out.push(f64::from_bits(prev));
    }
    Ok(())
}

/// LEB128 varint.
pub(crate) fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Reads a LEB128 varint at `*at`, advancing it.
pub(crate) fn get_varint(bytes: &[u8], at: &mut usize) -> Result<u64, Truncated> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let b = *bytes.get(*at).ok_or(Truncated)?;
        *at += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b < 0x80 {
            return Ok(v);
        }
    }
    Err(Truncated)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    fn roundtrip_ts(ts: &[i64]) -> Vec<i64> {
        let mut w = BitWriter::new();
        write_timestamps(&mut w, ts);
        let bytes = w.finish();
        let mut out = Vec::new();
        read_timestamps(&mut BitReader::new(&bytes), ts.len(), &mut out).unwrap();
        out
    }

    fn roundtrip_f(vs: &[f64]) -> Vec<u64> {
        let mut w = BitWriter::new();
        write_floats(&mut w, vs.iter().copied());
        let bytes = w.finish();
        let mut out = Vec::new();
        read_floats(&mut BitReader::new(&bytes), vs.len(), &mut out).unwrap();
        out.iter().map(|v| v.to_bits()).collect()
    }

    #[test]
    fn bits_of_every_width_read_back() {
        let mut w = BitWriter::new();
        let items: Vec<(u64, u32)> = (0..=64u32)
            .map(|n| (0xDEAD_BEEF_CAFE_F00D_u64.rotate_left(n), n))
            .collect();
        for &(v, n) in &items {
            w.write(v, n);
        }
        let bytes = w.finish();
        let mut r = BitReader::new(&bytes);
        for &(v, n) in &items {
            let mask = if n == 64 { u64::MAX } else { (1 << n) - 1 };
            assert_eq!(r.read(n).unwrap(), v & mask, "width {n}");
        }
    }

    #[test]
    fn a_regular_series_costs_one_bit_per_timestamp() {
        let ts: Vec<i64> = (1_000..1_800).collect();
        let mut w = BitWriter::new();
        write_timestamps(&mut w, &ts);
        // 64 bits of the first, 2+7 for the first delta, 1 bit after.
        assert_eq!(w.finish().len(), (64usize + 9 + 798).div_ceil(8));
        assert_eq!(roundtrip_ts(&ts), ts);
    }

    #[test]
    fn repeated_floats_cost_one_bit_and_nan_payloads_survive() {
        let nan = f64::from_bits(0x7ff8_0000_dead_beef);
        let vs = [
            1.5,
            1.5,
            1.5,
            nan,
            -0.0,
            0.0,
            f64::INFINITY,
            f64::MIN_POSITIVE,
        ];
        assert_eq!(
            roundtrip_f(&vs),
            vs.iter().map(|v| v.to_bits()).collect::<Vec<_>>()
        );
        let mut w = BitWriter::new();
        write_floats(&mut w, std::iter::repeat_n(42.0, 801));
        assert_eq!(w.finish().len(), (64usize + 800).div_ceil(8));
    }

    #[test]
    fn truncated_input_is_an_error_not_a_panic() {
        let ts: Vec<i64> = vec![0, 5, 1 << 40, -7];
        let mut w = BitWriter::new();
        write_timestamps(&mut w, &ts);
        let bytes = w.finish();
        for cut in 0..bytes.len() {
            let mut out = Vec::new();
            assert!(read_timestamps(&mut BitReader::new(&bytes[..cut]), 4, &mut out).is_err());
        }
        let mut v = Vec::new();
        assert!(read_floats(&mut BitReader::new(&[0xff; 9]), 3, &mut v).is_err());
    }

    #[test]
    fn varints_round_trip_and_reject_truncation() {
        let mut out = Vec::new();
        for v in [0, 1, 127, 128, 300, u64::MAX] {
            put_varint(&mut out, v);
        }
        let mut at = 0;
        for v in [0, 1, 127, 128, 300, u64::MAX] {
            assert_eq!(get_varint(&out, &mut at).unwrap(), v);
        }
        assert!(get_varint(&[0x80, 0x80], &mut 0).is_err());
    }

    proptest! {
        #[test]
        fn timestamps_round_trip(ts in proptest::collection::vec(any::<i64>(), 0..200)) {
            prop_assert_eq!(roundtrip_ts(&ts), ts);
        }

        #[test]
        fn near_regular_timestamps_round_trip(
            start in any::<i32>(),
            steps in proptest::collection::vec(0i64..5_000, 0..300),
        ) {
            let mut t = i64::from(start);
            let ts: Vec<i64> = steps.iter().map(|s| { t += s; t }).collect();
            prop_assert_eq!(roundtrip_ts(&ts), ts);
        }

        #[test]
        fn arbitrary_float_bits_round_trip(bits in proptest::collection::vec(any::<u64>(), 0..200)) {
            let vs: Vec<f64> = bits.iter().map(|b| f64::from_bits(*b)).collect();
            prop_assert_eq!(roundtrip_f(&vs), bits);
        }

        #[test]
        fn close_floats_round_trip(base in any::<f64>(), deltas in proptest::collection::vec(-3i8..3, 0..300)) {
            let mut v = base;
            let vs: Vec<f64> = deltas.iter().map(|d| { v += f64::from(*d) * 0.25; v }).collect();
            let want: Vec<u64> = vs.iter().map(|v| v.to_bits()).collect();
            prop_assert_eq!(roundtrip_f(&vs), want);
        }

        #[test]
        fn garbage_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..64), n in 0usize..100) {
            let mut out = Vec::new();
            let _ = read_floats(&mut BitReader::new(&bytes), n, &mut out);
            let mut ts = Vec::new();
            let _ = read_timestamps(&mut BitReader::new(&bytes), n, &mut ts);
        }
    }
}
