//! A segment's summary and sparse time index, and its encoding (the `.idx`
//! sidecar of a sealed segment and the footer of a compressed one).

use crate::frame::{HEADER_LEN, le_i64, le_u32, le_u64};

const IDX_MAGIC: &[u8; 8] = b"VIGILIDX";
const IDX_VERSION: u32 = 1;
const FIXED: usize = 8 + 4 + 8 + 8 + 8 + 8 + 4;
const PER_BLOCK: usize = 8 + 8 + 8 + 8 + 4 + 8 + 4;

/// One block of a sealed segment: frames `offset..end` (uncompressed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Block {
    /// The first frame's offset.
    pub offset: u64,
    /// The offset after the last frame.
    pub end: u64,
    /// The oldest and newest timestamp in the block.
    pub min_ts: i64,
    pub max_ts: i64,
    /// Intact records in the block.
    pub records: u32,
    /// Where the block's compressed form starts in the compressed file, and
    /// its length (both 0 for an uncompressed segment).
    pub comp_offset: u64,
    pub comp_len: u32,
}

/// What a sealed segment holds.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct SegIndex {
    /// The length of the valid bytes (uncompressed), header included.
    pub valid_len: u64,
    /// Intact records.
    pub records: u64,
    /// The oldest and newest timestamps.
    pub time: Option<(i64, i64)>,
    /// The sparse time index, in offset order, covering every record.
    pub blocks: Vec<Block>,
}

impl SegIndex {
    /// The encoded form, checksummed.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(FIXED + PER_BLOCK * self.blocks.len() + 4);
        b.extend_from_slice(IDX_MAGIC);
        b.extend_from_slice(&IDX_VERSION.to_le_bytes());
        b.extend_from_slice(&self.valid_len.to_le_bytes());
        b.extend_from_slice(&self.records.to_le_bytes());
        let (lo, hi) = self.time.unwrap_or((0, 0));
        b.extend_from_slice(&lo.to_le_bytes());
        b.extend_from_slice(&hi.to_le_bytes());
        b.extend_from_slice(&(self.blocks.len() as u32).to_le_bytes());
        for k in &self.blocks {
            b.extend_from_slice(&k.offset.to_le_bytes());
            b.extend_from_slice(&k.end.to_le_bytes());
            b.extend_from_slice(&k.min_ts.to_le_bytes());
            b.extend_from_slice(&k.max_ts.to_le_bytes());
            b.extend_from_slice(&k.records.to_le_bytes());
            b.extend_from_slice(&k.comp_offset.to_le_bytes());
            b.extend_from_slice(&k.comp_len.to_le_bytes());
        }
        let crc = crc32c::crc32c(&b);
        b.extend_from_slice(&crc.to_le_bytes());
        b
    }

    /// Decodes an encoded index; `None` when it is not one or is damaged.
    pub(crate) fn decode(b: &[u8]) -> Option<SegIndex> {
        if b.len() < FIXED + 4 || &b[..8] != IDX_MAGIC {
            return None;
        }
        let (body, crc) = b.split_at(b.len() - 4);
        if crc32c::crc32c(body) != le_u32(crc) || le_u32(&body[8..12]) != IDX_VERSION {
            return None;
        }
        let valid_len = le_u64(&body[12..20]);
        let records = le_u64(&body[20..28]);
        let (lo, hi) = (le_i64(&body[28..36]), le_i64(&body[36..44]));
        let n = le_u32(&body[44..48]) as usize;
        if body.len() != FIXED + n.checked_mul(PER_BLOCK)? {
            return None;
        }
        let mut blocks = Vec::with_capacity(n);
        let mut at = FIXED;
        let mut prev_end = HEADER_LEN;
        let mut count = 0u64;
        for _ in 0..n {
            let k = &body[at..at + PER_BLOCK];
            let block = Block {
                offset: le_u64(&k[0..8]),
                end: le_u64(&k[8..16]),
                min_ts: le_i64(&k[16..24]),
                max_ts: le_i64(&k[24..32]),
                records: le_u32(&k[32..36]),
                comp_offset: le_u64(&k[36..44]),
                comp_len: le_u32(&k[44..48]),
            };
            // Blocks must tile the valid bytes in order.
            if block.offset < prev_end || block.end < block.offset || block.end > valid_len {
                return None;
            }
            prev_end = block.end;
            count += u64::from(block.records);
            blocks.push(block);
            at += PER_BLOCK;
        }
        if count != records || valid_len < HEADER_LEN {
            return None;
        }
        Some(SegIndex {
            valid_len,
            records,
            time: (records > 0).then_some((lo, hi)),
            blocks,
        })
    }
}

/// Builds a [`SegIndex`] from frames seen in offset order.
#[derive(Debug, Clone)]
pub(crate) struct IndexBuilder {
    every: u64,
    index: SegIndex,
}

impl IndexBuilder {
    /// A builder for an empty segment, one block per about `every` bytes.
    pub(crate) fn new(every: u32) -> IndexBuilder {
        IndexBuilder {
            every: u64::from(every.max(1)),
            index: SegIndex {
                valid_len: HEADER_LEN,
                ..SegIndex::default()
            },
        }
    }

    /// Adds the frame of `frame_len` bytes at `offset`.
    pub(crate) fn add(&mut self, offset: u64, timestamp_us: i64, frame_len: u64) {
        let ix = &mut self.index;
        let end = offset + frame_len;
        ix.records += 1;
        ix.time = Some(match ix.time {
            None => (timestamp_us, timestamp_us),
            Some((lo, hi)) => (lo.min(timestamp_us), hi.max(timestamp_us)),
        });
        ix.valid_len = ix.valid_len.max(end);
        match ix.blocks.last_mut() {
            Some(b) if offset < b.offset + self.every => {
                b.end = end;
                b.min_ts = b.min_ts.min(timestamp_us);
                b.max_ts = b.max_ts.max(timestamp_us);
                b.records += 1;
            }
            _ => ix.blocks.push(Block {
                offset,
                end,
                min_ts: timestamp_us,
                max_ts: timestamp_us,
                records: 1,
                comp_offset: 0,
                comp_len: 0,
            }),
        }
    }

    /// Extends the valid length over bytes without records (a skipped
    /// corrupt region).
    pub(crate) fn extend_to(&mut self, end: u64) {
        self.index.valid_len = self.index.valid_len.max(end);
    }

    /// The index so far.
    pub(crate) fn index(&self) -> &SegIndex {
        &self.index
    }

    /// The finished index.
    pub(crate) fn finish(self) -> SegIndex {
        self.index
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn sample() -> SegIndex {
        let mut b = IndexBuilder::new(100);
        let mut off = HEADER_LEN;
        for ts in [5, 3, 9, 1, 7, 2] {
            b.add(off, ts, 60);
            off += 60;
        }
        b.finish()
    }

    #[test]
    fn builder_makes_blocks_of_about_every_bytes() {
        let ix = sample();
        assert_eq!(ix.records, 6);
        assert_eq!(ix.time, Some((1, 9)));
        assert_eq!(ix.valid_len, HEADER_LEN + 360);
        let spans: Vec<(u64, u64, i64, i64, u32)> = ix
            .blocks
            .iter()
            .map(|b| (b.offset, b.end, b.min_ts, b.max_ts, b.records))
            .collect();
        assert_eq!(
            spans,
            vec![(24, 144, 3, 5, 2), (144, 264, 1, 9, 2), (264, 384, 2, 7, 2)]
        );
    }

    #[test]
    fn encoding_round_trips_and_rejects_damage() {
        let ix = sample();
        let enc = ix.encode();
        assert_eq!(SegIndex::decode(&enc), Some(ix));
        for i in 0..enc.len() {
            let mut bad = enc.clone();
            bad[i] ^= 0x10;
            assert_eq!(SegIndex::decode(&bad), None, "byte {i}");
        }
        assert_eq!(SegIndex::decode(&enc[..enc.len() - 1]), None);
        let empty = IndexBuilder::new(10).finish();
        assert_eq!(SegIndex::decode(&empty.encode()), Some(empty));
    }
}
