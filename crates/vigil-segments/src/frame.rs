//! File headers, record frames and the frame walker that validates them.
//!
//! A frame is `[len u32 LE][crc32c u32 LE][timestamp i64 LE][payload]`, the
//! CRC32C covering the timestamp and the payload. The walker checks every
//! frame; after a bad one it resynchronises by trying each following byte
//! offset for a frame whose length fits and whose CRC matches.

use std::ops::ControlFlow;

/// Bytes of a frame before its payload.
pub(crate) const FRAME_HEAD: usize = 16;

/// Bytes of a file header (segment or compressed segment).
pub(crate) const HEADER_LEN: u64 = 24;

/// The first bytes of a segment file.
pub(crate) const SEG_MAGIC: &[u8; 8] = b"VIGILSEG";

/// The on-disk format version.
pub(crate) const VERSION: u32 = 1;

/// A file header: magic, version, the largest payload the file may hold,
/// and a CRC32C of those 16 bytes (so any flipped bit is noticed).
pub(crate) fn file_header(magic: &[u8; 8], max_record: u32) -> [u8; HEADER_LEN as usize] {
    let mut h = [0u8; HEADER_LEN as usize];
    h[..8].copy_from_slice(magic);
    h[8..12].copy_from_slice(&VERSION.to_le_bytes());
    h[12..16].copy_from_slice(&max_record.to_le_bytes());
    let crc = crc32c::crc32c(&h[..16]);
    h[16..20].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Checks a file header; returns the file's largest payload, or why the
/// header is not the log's.
pub(crate) fn check_header(bytes: &[u8], magic: &[u8; 8]) -> Result<u32, String> {
    if bytes.len() < HEADER_LEN as usize {
        return Err(format!("header of {} bytes is too short", bytes.len()));
    }
    if &bytes[..8] != magic {
        return Err("bad magic".to_owned());
    }
    let version = le_u32(&bytes[8..12]);
    let max_record = le_u32(&bytes[12..16]);
    let crc = le_u32(&bytes[16..20]);
    if crc != crc32c::crc32c(&bytes[..16]) {
        return Err("header checksum mismatch".to_owned());
    }
    if version != VERSION {
        return Err(format!("unsupported version {version}"));
    }
    if bytes[20..24] != [0u8; 4] {
        return Err("reserved header bytes are not zero".to_owned());
    }
    Ok(max_record)
}

/// True when `bytes` (shorter than a header) can be the start of a header
/// with `magic`: a file torn while its header was being written.
pub(crate) fn is_torn_header(bytes: &[u8], magic: &[u8; 8]) -> bool {
    bytes.len() < HEADER_LEN as usize && {
        let n = bytes.len().min(8);
        bytes[..n] == magic[..n]
    }
}

pub(crate) fn le_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_le_bytes(a)
}

pub(crate) fn le_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[..8]);
    u64::from_le_bytes(a)
}

pub(crate) fn le_i64(b: &[u8]) -> i64 {
    le_u64(b) as i64
}

/// The frame CRC: CRC32C over the timestamp and the payload.
pub(crate) fn frame_crc(timestamp_us: i64, payload: &[u8]) -> u32 {
    crc32c::crc32c_append(crc32c::crc32c(&timestamp_us.to_le_bytes()), payload)
}

/// Appends one frame to `buf`, with a CRC computed beforehand.
pub(crate) fn encode_with_crc(buf: &mut Vec<u8>, timestamp_us: i64, payload: &[u8], crc: u32) {
    buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    buf.extend_from_slice(&crc.to_le_bytes());
    buf.extend_from_slice(&timestamp_us.to_le_bytes());
    buf.extend_from_slice(payload);
}

/// Appends one frame to `buf`.
#[cfg(test)]
pub(crate) fn encode(buf: &mut Vec<u8>, timestamp_us: i64, payload: &[u8]) {
    encode_with_crc(buf, timestamp_us, payload, frame_crc(timestamp_us, payload));
}

/// What the bytes at the start of a slice hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Check {
    /// An intact frame with this timestamp and payload length.
    Valid { timestamp_us: i64, len: usize },
    /// Not a frame (or a frame cut by the end of the data).
    Invalid,
    /// Cannot tell before this many bytes are available.
    NeedMore(usize),
}

/// Checks for a frame at the start of `data`; `at_end` says that no bytes
/// follow `data`.
pub(crate) fn check(data: &[u8], max_record: u32, at_end: bool) -> Check {
    if data.len() < FRAME_HEAD {
        return if at_end {
            Check::Invalid
        } else {
            Check::NeedMore(FRAME_HEAD)
        };
    }
    let len = le_u32(&data[0..4]);
    if len > max_record {
        return Check::Invalid;
    }
    let total = FRAME_HEAD + len as usize;
    if data.len() < total {
        return if at_end {
            Check::Invalid
        } else {
            Check::NeedMore(total)
        };
    }
    let crc = le_u32(&data[4..8]);
    if crc32c::crc32c(&data[8..total]) != crc {
        return Check::Invalid;
    }
    Check::Valid {
        timestamp_us: le_i64(&data[8..16]),
        len: len as usize,
    }
}

/// What the walker reports.
#[derive(Debug)]
pub(crate) enum Event<'a> {
    /// An intact record whose frame starts at `offset`.
    Record {
        offset: u64,
        timestamp_us: i64,
        payload: &'a [u8],
    },
    /// Bytes `from..to` hold no intact frame; a valid frame starts at `to`.
    Skipped { from: u64, to: u64 },
}

/// How a walk over a slice ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Walked {
    /// Every frame up to the end of the data was reported.
    End,
    /// No intact frame from this offset to the end of the data.
    BadTail(u64),
    /// Walk again from `at` with at least `want` bytes.
    NeedMore { at: u64, want: usize },
    /// The callback broke.
    Stopped,
}

/// Walks the frames of `data`, whose first byte lies at offset `base`;
/// `at_end` says that `data` reaches the end of the valid bytes.
pub(crate) fn walk(
    data: &[u8],
    base: u64,
    at_end: bool,
    max_record: u32,
    mut f: impl FnMut(Event<'_>) -> ControlFlow<()>,
) -> Walked {
    let mut i = 0usize;
    loop {
        if i == data.len() {
            return if at_end {
                Walked::End
            } else {
                Walked::NeedMore {
                    at: base + i as u64,
                    want: FRAME_HEAD,
                }
            };
        }
        match check(&data[i..], max_record, at_end) {
            Check::Valid { timestamp_us, len } => {
                let payload = &data[i + FRAME_HEAD..i + FRAME_HEAD + len];
                let event = Event::Record {
                    offset: base + i as u64,
                    timestamp_us,
                    payload,
                };
                if f(event).is_break() {
                    return Walked::Stopped;
                }
                i += FRAME_HEAD + len;
            }
            Check::NeedMore(n) => {
                return Walked::NeedMore {
                    at: base + i as u64,
                    want: n,
                };
            }
            Check::Invalid => {
                // The rare path: try every following offset.
                let mut c = i + 1;
                loop {
                    if c >= data.len() {
                        if at_end {
                            return Walked::BadTail(base + i as u64);
                        }
                        return Walked::NeedMore {
                            at: base + i as u64,
                            want: c - i + FRAME_HEAD,
                        };
                    }
                    match check(&data[c..], max_record, at_end) {
                        Check::Valid { .. } => break,
                        Check::Invalid => c += 1,
                        Check::NeedMore(n) => {
                            return Walked::NeedMore {
                                at: base + i as u64,
                                want: c - i + n,
                            };
                        }
                    }
                }
                let event = Event::Skipped {
                    from: base + i as u64,
                    to: base + c as u64,
                };
                if f(event).is_break() {
                    return Walked::Stopped;
                }
                i = c;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn frames(records: &[(i64, &[u8])]) -> Vec<u8> {
        let mut buf = Vec::new();
        for (ts, p) in records {
            encode(&mut buf, *ts, p);
        }
        buf
    }

    type Walk = (Vec<(u64, i64, Vec<u8>)>, Vec<(u64, u64)>, Walked);

    fn collect(data: &[u8], at_end: bool) -> Walk {
        let (mut recs, mut skips) = (Vec::new(), Vec::new());
        let w = walk(data, 100, at_end, 1 << 20, |e| {
            match e {
                Event::Record {
                    offset,
                    timestamp_us,
                    payload,
                } => recs.push((offset, timestamp_us, payload.to_vec())),
                Event::Skipped { from, to } => skips.push((from, to)),
            }
            ControlFlow::Continue(())
        });
        (recs, skips, w)
    }

    #[test]
    fn frame_layout_is_len_crc_timestamp_payload() {
        let buf = frames(&[(-7, b"abc")]);
        assert_eq!(buf.len(), FRAME_HEAD + 3);
        assert_eq!(le_u32(&buf[0..4]), 3);
        assert_eq!(le_u32(&buf[4..8]), crc32c::crc32c(&buf[8..]));
        assert_eq!(le_i64(&buf[8..16]), -7);
        assert_eq!(&buf[16..], b"abc");
    }

    #[test]
    fn walk_reports_every_frame_with_offsets() {
        let buf = frames(&[(1, b"a"), (2, b""), (3, b"ccc")]);
        let (recs, skips, w) = collect(&buf, true);
        assert_eq!(w, Walked::End);
        assert!(skips.is_empty());
        assert_eq!(
            recs,
            vec![
                (100, 1, b"a".to_vec()),
                (117, 2, vec![]),
                (133, 3, b"ccc".to_vec())
            ]
        );
    }

    #[test]
    fn a_cut_frame_needs_more_or_is_a_bad_tail() {
        let buf = frames(&[(1, b"aaaa"), (2, b"bbbb")]);
        let cut = &buf[..buf.len() - 2];
        let (recs, _, w) = collect(cut, false);
        assert_eq!(recs.len(), 1);
        assert_eq!(w, Walked::NeedMore { at: 120, want: 20 });
        let (recs, _, w) = collect(cut, true);
        assert_eq!(recs.len(), 1);
        assert_eq!(w, Walked::BadTail(120));
    }

    #[test]
    fn a_corrupt_middle_frame_is_skipped_and_the_next_found() {
        let mut buf = frames(&[(1, b"aaaa"), (2, b"bbbb"), (3, b"cccc")]);
        buf[20 + 17] ^= 0x40; // the second record's payload
        let (recs, skips, w) = collect(&buf, true);
        assert_eq!(w, Walked::End);
        assert_eq!(skips, vec![(120, 140)]);
        let ts: Vec<i64> = recs.iter().map(|r| r.1).collect();
        assert_eq!(ts, vec![1, 3]);
    }

    #[test]
    fn a_corrupt_length_is_skipped_too() {
        let mut buf = frames(&[(1, b"aaaa"), (2, b"bbbb"), (3, b"cccc")]);
        buf[20] = 0xff; // the second record's length
        let (recs, skips, _) = collect(&buf, true);
        assert_eq!(skips, vec![(120, 140)]);
        assert_eq!(recs.len(), 2);
    }

    #[test]
    fn zeros_are_not_frames() {
        assert_eq!(check(&[0u8; 64], 1 << 20, true), Check::Invalid);
    }

    #[test]
    fn header_round_trips_and_any_flip_is_noticed() {
        let h = file_header(SEG_MAGIC, 4096);
        assert_eq!(check_header(&h, SEG_MAGIC), Ok(4096));
        assert!(check_header(&h, b"VIGILLZ4").is_err());
        for i in 0..h.len() {
            for bit in 0..8 {
                let mut bad = h;
                bad[i] ^= 1 << bit;
                assert!(check_header(&bad, SEG_MAGIC).is_err(), "byte {i} bit {bit}");
            }
        }
        assert!(is_torn_header(&h[..5], SEG_MAGIC));
        assert!(is_torn_header(&h[..20], SEG_MAGIC));
        assert!(!is_torn_header(b"VIGX", SEG_MAGIC));
    }
}
