//! What goes to disk: write-ahead-log payloads (records) and block files
//! (one per shard, the shard's blocks as of a write-ahead-log position).
//!
//! ```text
//! WAL payload:  u8 version (1), u16 LE shard, then records:
//!   key, u8 resolution (1 | 60), varint zigzag timestamp_ms,
//!   f64 LE count, sum, min, max, u8 0 | 1 + varint length + Sketch::encode
//! key: varint-length strings namespace, name; varint n, n × (name, value);
//!   u8 unit (index in Unit::ALL)
//!
//! Block file blocks/shard-NNNN.tsdb:
//!   "VIGILTSD", u32 LE version (1), u32 LE shards, u32 LE shard,
//!   u64 LE segment, u64 LE offset (the WAL position it covers up to),
//!   varint series, per series: key, u8 flags (1 high, 2 standard),
//!   varint tiers, per tier: varint blocks, per block: varint zigzag window,
//!   varint points, varint length, block bytes;
//!   u32 LE CRC32C of everything before it
//! ```

use std::fs;
use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use vigil_segments::Position;

use crate::aggregate::Aggregate;
use crate::model::{Resolution, SeriesKey, Unit};
use crate::sketch::Sketch;

use super::codec::{get_varint, put_varint};
use super::series::{Block, Sealed, Series, Tier};

const WAL_VERSION: u8 = 1;
const MAGIC: &[u8; 8] = b"VIGILTSD";
const FILE_VERSION: u32 = 1;

fn zz(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzz(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// A cursor over bytes whose every read is checked.
pub(crate) struct Cursor<'a> {
    pub(crate) bytes: &'a [u8],
    pub(crate) at: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(bytes: &'a [u8]) -> Self {
        Cursor { bytes, at: 0 }
    }

    pub(crate) fn done(&self) -> bool {
        self.at >= self.bytes.len()
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(n).ok_or("length overflow")?;
        let s = self
            .bytes
            .get(self.at..end)
            .ok_or_else(|| format!("truncated at byte {}", self.at))?;
        self.at = end;
        Ok(s)
    }

    fn varint(&mut self) -> Result<u64, String> {
        get_varint(self.bytes, &mut self.at)
            .map_err(|_| format!("truncated varint at byte {}", self.at))
    }

    fn len(&mut self) -> Result<usize, String> {
        let n = self.varint()?;
        usize::try_from(n).map_err(|_| format!("length {n} too large"))
    }

    fn u8(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }

    fn f64(&mut self) -> Result<f64, String> {
        Ok(f64::from_le_bytes(self.array()?))
    }

    fn string(&mut self) -> Result<String, String> {
        let n = self.len()?;
        String::from_utf8(self.take(n)?.to_vec()).map_err(|_| "string is not utf-8".to_owned())
    }
}

fn put_key(out: &mut Vec<u8>, key: &SeriesKey) {
    put_str(out, &key.namespace);
    put_str(out, &key.name);
    put_varint(out, key.dimensions.len() as u64);
    for (k, v) in &key.dimensions {
        put_str(out, k);
        put_str(out, v);
    }
    let unit = Unit::ALL
        .iter()
        .position(|u| *u == key.unit)
        .unwrap_or(Unit::ALL.len() - 1);
    out.push(unit as u8);
}

fn get_key(c: &mut Cursor<'_>) -> Result<SeriesKey, String> {
    let mut key = SeriesKey::new(c.string()?, c.string()?);
    for _ in 0..c.varint()? {
        let k = c.string()?;
        let v = c.string()?;
        key.dimensions.insert(k, v);
    }
    let unit = c.u8()?;
    key.unit = *Unit::ALL
        .get(usize::from(unit))
        .ok_or_else(|| format!("unknown unit {unit}"))?;
    Ok(key)
}

/// Starts a WAL payload for `shard`.
pub(crate) fn wal_header(out: &mut Vec<u8>, shard: usize) {
    out.push(WAL_VERSION);
    out.extend_from_slice(&(shard as u16).to_le_bytes());
}

/// Appends one record to a WAL payload.
pub(crate) fn put_record(
    out: &mut Vec<u8>,
    key: &SeriesKey,
    timestamp_ms: i64,
    agg: &Aggregate,
    resolution: Resolution,
) {
    put_key(out, key);
    out.push(resolution.seconds() as u8);
    put_varint(out, zz(timestamp_ms));
    for v in [agg.count, agg.sum, agg.min, agg.max] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    match &agg.sketch {
        None => out.push(0),
        Some(s) => {
            out.push(1);
            let mut b = Vec::new();
            s.encode(&mut b);
            put_varint(out, b.len() as u64);
            out.extend_from_slice(&b);
        }
    }
}

/// A decoded WAL record.
pub(crate) type WalRecord = (SeriesKey, i64, Aggregate, Resolution);

/// Reads a WAL payload: its shard and records.
pub(crate) fn read_payload(bytes: &[u8]) -> Result<(usize, Vec<WalRecord>), String> {
    let mut c = Cursor::new(bytes);
    let version = c.u8()?;
    if version != WAL_VERSION {
        return Err(format!("unknown wal record version {version}"));
    }
    let shard = usize::from(u16::from_le_bytes(c.array()?));
    let mut out = Vec::new();
    while !c.done() {
        let key = get_key(&mut c)?;
        let resolution = Resolution::try_from(u32::from(c.u8()?))?;
        let ts = unzz(c.varint()?);
        let (count, sum, min, max) = (c.f64()?, c.f64()?, c.f64()?, c.f64()?);
        let sketch = match c.u8()? {
            0 => None,
            1 => {
                let n = c.len()?;
                Some(Sketch::decode(c.take(n)?)?.0)
            }
            other => return Err(format!("unknown sketch tag {other}")),
        };
        out.push((
            key,
            ts,
            Aggregate {
                count,
                sum,
                min,
                max,
                sketch,
            },
            resolution,
        ));
    }
    Ok((shard, out))
}

/// A shard's series, encoded as a block file (open blocks are encoded as
/// sealed ones; memory keeps them open).
pub(crate) fn encode_shard<'a>(
    shards: usize,
    shard: usize,
    covers: Position,
    series: impl ExactSizeIterator<Item = (&'a SeriesKey, &'a Series)>,
) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&FILE_VERSION.to_le_bytes());
    out.extend_from_slice(&(shards as u32).to_le_bytes());
    out.extend_from_slice(&(shard as u32).to_le_bytes());
    out.extend_from_slice(&covers.segment.to_le_bytes());
    out.extend_from_slice(&covers.offset.to_le_bytes());
    put_varint(&mut out, series.len() as u64);
    for (key, s) in series {
        put_key(&mut out, key);
        out.push(u8::from(s.has_high) | (u8::from(s.has_standard) << 1));
        put_varint(&mut out, s.tiers.len() as u64);
        for tier in &s.tiers {
            put_varint(&mut out, tier.blocks.len() as u64);
            for (window, block) in &tier.blocks {
                put_varint(&mut out, zz(*window));
                let (points, bytes): (u32, std::borrow::Cow<'_, [u8]>) = match block {
                    Block::Open(c) => (c.len() as u32, c.encode().into()),
                    Block::Sealed(s) => (s.points, (&*s.bytes).into()),
                };
                put_varint(&mut out, u64::from(points));
                put_varint(&mut out, bytes.len() as u64);
                out.extend_from_slice(&bytes);
            }
        }
    }
    let crc = crc32c::crc32c(&out);
    out.extend_from_slice(&crc.to_le_bytes());
    out
}

/// A block file read back.
#[derive(Debug)]
pub(crate) struct ShardFile {
    pub(crate) shards: usize,
    pub(crate) shard: usize,
    pub(crate) covers: Position,
    pub(crate) series: Vec<(SeriesKey, Series)>,
}

/// Reads a block file; `tiers` is the configured tier count (a file with
/// more tiers keeps the first ones).
pub(crate) fn decode_shard(bytes: &[u8], tiers: usize) -> Result<ShardFile, String> {
    let body_len = bytes.len().checked_sub(4).ok_or("file too short")?;
    let (body, crc) = bytes.split_at(body_len);
    let want = u32::from_le_bytes([crc[0], crc[1], crc[2], crc[3]]);
    if crc32c::crc32c(body) != want {
        return Err("checksum mismatch".to_owned());
    }
    let mut c = Cursor::new(body);
    if &c.array::<8>()? != MAGIC {
        return Err("not a vigil block file".to_owned());
    }
    let version = u32::from_le_bytes(c.array()?);
    if version != FILE_VERSION {
        return Err(format!("unknown block file version {version}"));
    }
    let shards = u32::from_le_bytes(c.array()?) as usize;
    let shard = u32::from_le_bytes(c.array()?) as usize;
    let covers = Position {
        segment: u64::from_le_bytes(c.array()?),
        offset: u64::from_le_bytes(c.array()?),
    };
    let n = c.varint()?;
    let mut series = Vec::new();
    for _ in 0..n {
        let key = get_key(&mut c)?;
        let flags = c.u8()?;
        let mut s = Series::new(tiers);
        s.has_high = flags & 1 != 0;
        s.has_standard = flags & 2 != 0;
        let ntiers = c.len()?;
        for t in 0..ntiers {
            let mut tier = Tier::default();
            for _ in 0..c.varint()? {
                let window = unzz(c.varint()?);
                let points = u32::try_from(c.varint()?).map_err(|_| "too many points")?;
                let len = c.len()?;
                let bytes: Arc<[u8]> = c.take(len)?.into();
                tier.blocks
                    .insert(window, Block::Sealed(Sealed { bytes, points }));
            }
            if let Some(slot) = s.tiers.get_mut(t) {
                *slot = tier;
            }
        }
        series.push((key, s));
    }
    Ok(ShardFile {
        shards,
        shard,
        covers,
        series,
    })
}

/// Writes `bytes` to `path` atomically: a temporary file, fsynced, renamed
/// over it, and the directory fsynced.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_data()?;
    }
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::tsdb::config::TsdbConfig;

    fn key() -> SeriesKey {
        SeriesKey::new("App", "Latency")
            .with_dimension("model", "m1")
            .with_dimension("zone", "é")
            .with_unit(Unit::Milliseconds)
    }

    #[test]
    fn wal_payloads_round_trip_and_reject_damage() {
        let mut out = Vec::new();
        wal_header(&mut out, 7);
        let a = Aggregate::from_value(2.5);
        let b = Aggregate {
            count: 3.0,
            sum: 9.0,
            min: 1.0,
            max: 5.0,
            sketch: None,
        };
        put_record(&mut out, &key(), -5, &a, Resolution::High);
        let boundary = out.len();
        put_record(
            &mut out,
            &SeriesKey::new("n", "m"),
            1 << 40,
            &b,
            Resolution::Standard,
        );
        let (shard, recs) = read_payload(&out).unwrap();
        assert_eq!(shard, 7);
        assert_eq!(recs[0], (key(), -5, a, Resolution::High));
        assert_eq!(
            recs[1],
            (SeriesKey::new("n", "m"), 1 << 40, b, Resolution::Standard)
        );
        assert_eq!(read_payload(&out[..boundary]).unwrap().1.len(), 1);
        for cut in (4..boundary).chain(boundary + 1..out.len()) {
            assert!(read_payload(&out[..cut]).is_err(), "cut {cut}");
        }
    }

    #[test]
    fn block_files_round_trip_and_detect_damage() {
        let cfg = TsdbConfig::default();
        let mut s = Series::new(cfg.tiers.len());
        for t in 0..1_000 {
            s.record(
                &cfg.tiers,
                0,
                true,
                t * 1000,
                &Aggregate::from_value(t as f64),
            );
        }
        s.seal_all(&cfg.tiers);
        s.record(&cfg.tiers, 0, true, 2_000_000, &Aggregate::from_value(1.0));
        let k = key();
        let covers = Position {
            segment: 3,
            offset: 99,
        };
        let bytes = encode_shard(16, 5, covers, [(&k, &s)].into_iter());
        let f = decode_shard(&bytes, cfg.tiers.len()).unwrap();
        assert_eq!((f.shards, f.shard, f.covers), (16, 5, covers));
        let (k2, s2) = &f.series[0];
        assert_eq!(k2, &k);
        assert!(s2.has_high && !s2.has_standard);
        for (a, b) in s.tiers.iter().zip(&s2.tiers) {
            let (ua, ub) = (a.usage(), b.usage());
            assert_eq!(ua.sealed_points + ua.open_points, ub.sealed_points);
        }
        let mut bad = bytes.clone();
        bad[40] ^= 1;
        assert_eq!(decode_shard(&bad, 4).unwrap_err(), "checksum mismatch");
        assert!(decode_shard(&bytes[..10], 4).is_err());
    }
}
