//! Reads: `scan_from`, time-range `scan` and `read_at`, concurrent with the
//! writer and with retention.

use std::fs::File;
use std::io;
use std::ops::ControlFlow;

use crate::compress::Lz4Segment;
use crate::files::{self, Kind, read_full_at};
use crate::frame::{self, Check, Event, FRAME_HEAD, HEADER_LEN, Walked};
use crate::inner::{Inner, SegMeta};
use crate::state::lock;
use crate::{OwnedRecord, Position, Record, Result, ScanStats};

/// Bytes read from a segment file at a time.
const CHUNK: usize = 1 << 20;

/// How a walk over a file range ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FileEnd {
    /// Every frame up to the limit was reported.
    End,
    /// No intact frame from this offset to the limit.
    BadTail(u64),
    /// The file ends at this offset, before the limit.
    Short(u64),
    /// The callback broke.
    Stopped,
}

/// Walks the frames of `file` in `start..limit`, reading big pieces into
/// `buf` (reused across calls).
pub(crate) fn walk_file(
    file: &File,
    start: u64,
    limit: u64,
    max_record: u32,
    buf: &mut Vec<u8>,
    mut f: impl FnMut(Event<'_>) -> ControlFlow<()>,
) -> io::Result<FileEnd> {
    let mut pos = start;
    let mut want = 0usize;
    loop {
        if pos >= limit {
            return Ok(FileEnd::End);
        }
        let n = (CHUNK.max(want) as u64).min(limit - pos) as usize;
        if buf.len() < n {
            buf.resize(n, 0);
        }
        let got = read_full_at(file, &mut buf[..n], pos)?;
        let short = got < n;
        let at_end = short || pos + got as u64 == limit;
        match frame::walk(&buf[..got], pos, at_end, max_record, &mut f) {
            Walked::End if short => return Ok(FileEnd::Short(pos + got as u64)),
            Walked::End => return Ok(FileEnd::End),
            Walked::BadTail(x) => return Ok(FileEnd::BadTail(x)),
            Walked::Stopped => return Ok(FileEnd::Stopped),
            Walked::NeedMore { at, want: w } => {
                pos = at;
                want = w;
            }
        }
    }
}

/// A segment opened for reading.
pub(crate) enum Source {
    Raw(File),
    Lz4(Lz4Segment),
}

/// What a scan hands out and counts.
struct Sink<'f, F> {
    f: &'f mut F,
    stats: ScanStats,
    /// Timestamps kept: `from..to`.
    range: (i64, i64),
    /// Frames before this offset of the first segment are not handed out.
    min_offset: u64,
}

impl<F: FnMut(Record<'_>) -> ControlFlow<()>> Sink<'_, F> {
    fn event(&mut self, seg: u64, e: Event<'_>) -> ControlFlow<()> {
        match e {
            Event::Record {
                offset,
                timestamp_us,
                payload,
            } => {
                if offset < self.min_offset
                    || timestamp_us < self.range.0
                    || timestamp_us >= self.range.1
                {
                    return ControlFlow::Continue(());
                }
                self.stats.records += 1;
                self.stats.payload_bytes += payload.len() as u64;
                (self.f)(Record {
                    position: Position {
                        segment: seg,
                        offset,
                    },
                    timestamp_us,
                    payload,
                })
            }
            Event::Skipped { from, to } => {
                self.skipped(seg, from, to);
                ControlFlow::Continue(())
            }
        }
    }

    fn skipped(&mut self, seg: u64, from: u64, to: u64) {
        tracing::warn!(
            segment = seg,
            offset = from,
            bytes = to - from,
            "skipping a corrupt record"
        );
        self.stats.skipped_records += 1;
    }
}

impl Inner {
    /// Opens segment `meta` for reading; `None` when it was deleted. A
    /// segment swapped for its compressed form meanwhile is opened as that.
    pub(crate) fn open_source(&self, meta: &SegMeta) -> Result<Option<(Source, SegMeta)>> {
        let mut meta = meta.clone();
        for _ in 0..4 {
            let opened = if meta.compressed {
                File::open(files::path(&self.dir, meta.id, Kind::Lz4))
                    .and_then(|f| Lz4Segment::new(f, &meta))
                    .map(Source::Lz4)
            } else {
                File::open(files::path(&self.dir, meta.id, Kind::Seg)).map(Source::Raw)
            };
            match opened {
                Ok(s) => return Ok(Some((s, meta))),
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    // Deleted by retention, or swapped by compression.
                    match lock(&self.catalog).segs.get(&meta.id) {
                        None => return Ok(None),
                        Some(now) => meta = now.clone(),
                    }
                }
                Err(e) => {
                    let kind = if meta.compressed {
                        Kind::Lz4
                    } else {
                        Kind::Seg
                    };
                    return Err(files::io_err(&files::path(&self.dir, meta.id, kind))(e));
                }
            }
        }
        Ok(None)
    }

    /// The segments a read may touch, with each one's readable length, as
    /// of now.
    fn snapshot(&self, from_seg: u64) -> Vec<(SegMeta, u64)> {
        let c = lock(&self.catalog);
        let end = c.end;
        c.segs
            .range(from_seg..=end.segment)
            .map(|(id, m)| {
                let limit = if *id == end.segment {
                    end.offset
                } else {
                    m.len
                };
                (m.clone(), limit)
            })
            .collect()
    }

    pub(crate) fn scan_from_impl(
        &self,
        from: Position,
        mut f: impl FnMut(Record<'_>) -> ControlFlow<()>,
    ) -> Result<ScanStats> {
        let mut sink = Sink {
            f: &mut f,
            stats: ScanStats::default(),
            range: (i64::MIN, i64::MAX),
            min_offset: 0,
        };
        let mut buf = Vec::new();
        for (meta, limit) in self.snapshot(from.segment) {
            let start = if meta.id == from.segment {
                from.offset.max(HEADER_LEN)
            } else {
                HEADER_LEN
            };
            if start >= limit {
                continue;
            }
            // Records straddling `from` (not a frame start) are not handed out.
            sink.min_offset = start;
            let ranges = [(start, limit)];
            if self
                .read_ranges(&meta, &ranges, &mut buf, &mut sink)?
                .is_break()
            {
                break;
            }
        }
        Ok(sink.stats)
    }

    pub(crate) fn scan_impl(
        &self,
        from_us: i64,
        to_us: i64,
        mut f: impl FnMut(Record<'_>) -> ControlFlow<()>,
    ) -> Result<ScanStats> {
        let mut sink = Sink {
            f: &mut f,
            stats: ScanStats::default(),
            range: (from_us, to_us),
            min_offset: 0,
        };
        if from_us >= to_us {
            return Ok(sink.stats);
        }
        let mut buf = Vec::new();
        let mut ranges = Vec::new();
        for (meta, limit) in self.snapshot(0) {
            match meta.time {
                Some((lo, hi)) if hi >= from_us && lo < to_us => {}
                _ => continue,
            }
            ranges.clear();
            match &meta.index {
                Some(ix) => {
                    for b in &ix.blocks {
                        if b.max_ts < from_us || b.min_ts >= to_us || b.offset >= limit {
                            continue;
                        }
                        let end = b.end.min(limit);
                        match ranges.last_mut() {
                            Some((_, e)) if *e == b.offset => *e = end,
                            _ => ranges.push((b.offset, end)),
                        }
                    }
                }
                None => ranges.push((HEADER_LEN, limit)),
            }
            if ranges.is_empty() {
                continue;
            }
            if self
                .read_ranges(&meta, &ranges, &mut buf, &mut sink)?
                .is_break()
            {
                break;
            }
        }
        Ok(sink.stats)
    }

    /// Walks byte ranges (in order) of one segment into the sink.
    fn read_ranges<F: FnMut(Record<'_>) -> ControlFlow<()>>(
        &self,
        meta: &SegMeta,
        ranges: &[(u64, u64)],
        buf: &mut Vec<u8>,
        sink: &mut Sink<'_, F>,
    ) -> Result<ControlFlow<()>> {
        let Some((source, meta)) = self.open_source(meta)? else {
            return Ok(ControlFlow::Continue(()));
        };
        sink.stats.segments_opened += 1;
        let id = meta.id;
        match source {
            Source::Raw(file) => {
                let path = files::path(&self.dir, id, Kind::Seg);
                for &(a, b) in ranges {
                    let end = walk_file(&file, a, b, meta.max_record, buf, |e| sink.event(id, e))
                        .map_err(files::io_err(&path))?;
                    match end {
                        FileEnd::End => {}
                        FileEnd::Stopped => return Ok(ControlFlow::Break(())),
                        FileEnd::BadTail(x) => sink.skipped(id, x, b),
                        FileEnd::Short(x) => {
                            tracing::warn!(segment = id, offset = x, "segment file ends early");
                            break;
                        }
                    }
                }
            }
            Source::Lz4(seg) => {
                let path = files::path(&self.dir, id, Kind::Lz4);
                let mut bufs = (Vec::new(), std::mem::take(buf));
                for &(a, b) in ranges {
                    let flow = seg
                        .walk(a, b, &mut bufs, &mut |e| sink.event(id, e))
                        .map_err(files::io_err(&path))?;
                    if flow.is_break() {
                        *buf = bufs.1;
                        return Ok(ControlFlow::Break(()));
                    }
                }
                *buf = bufs.1;
            }
        }
        Ok(ControlFlow::Continue(()))
    }

    pub(crate) fn read_at_impl(&self, position: Position) -> Result<Option<OwnedRecord>> {
        let (meta, limit) = {
            let c = lock(&self.catalog);
            let Some(m) = c.segs.get(&position.segment) else {
                return Ok(None);
            };
            if position.segment > c.end.segment {
                return Ok(None);
            }
            let limit = if position.segment == c.end.segment {
                c.end.offset
            } else {
                m.len
            };
            (m.clone(), limit)
        };
        let off = position.offset;
        if off < HEADER_LEN || off + FRAME_HEAD as u64 > limit {
            return Ok(None);
        }
        let Some((source, meta)) = self.open_source(&meta)? else {
            return Ok(None);
        };
        let bytes = match source {
            Source::Raw(file) => {
                let path = files::path(&self.dir, meta.id, Kind::Seg);
                read_frame_at(&file, off, limit, meta.max_record).map_err(files::io_err(&path))?
            }
            Source::Lz4(seg) => {
                let path = files::path(&self.dir, meta.id, Kind::Lz4);
                seg.frame_at(off).map_err(files::io_err(&path))?
            }
        };
        let Some(bytes) = bytes else {
            return Ok(None);
        };
        Ok(match frame::check(&bytes, meta.max_record, true) {
            Check::Valid { timestamp_us, len } if len + FRAME_HEAD == bytes.len() => {
                Some(OwnedRecord {
                    position,
                    timestamp_us,
                    payload: bytes[FRAME_HEAD..].to_vec(),
                })
            }
            _ => None,
        })
    }
}

/// The bytes of the frame at `off`, if its length fits before `limit`.
fn read_frame_at(
    file: &File,
    off: u64,
    limit: u64,
    max_record: u32,
) -> io::Result<Option<Vec<u8>>> {
    let mut head = [0u8; FRAME_HEAD];
    if read_full_at(file, &mut head, off)? < FRAME_HEAD {
        return Ok(None);
    }
    let len = frame::le_u32(&head);
    let total = FRAME_HEAD as u64 + u64::from(len);
    if len > max_record || off + total > limit {
        return Ok(None);
    }
    let mut bytes = vec![0u8; total as usize];
    if read_full_at(file, &mut bytes, off)? < bytes.len() {
        return Ok(None);
    }
    Ok(Some(bytes))
}
