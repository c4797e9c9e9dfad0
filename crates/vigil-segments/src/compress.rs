//! Compressed sealed segments: `{id:020}.lz4`.
//!
//! Layout: a file header (magic `VIGILLZ4`), then one independently
//! compressed LZ4 block per sparse-index block of the raw segment, each
//! `[raw offset u64][raw len u32][compressed len u32][crc32c u32][bytes]`
//! (the CRC covering the first 16 header bytes and the compressed bytes),
//! then a footer: the segment's index (with each block's place in this
//! file), its length (u32) and `VIGILEND`. Positions stay the raw
//! segment's offsets; a range scan decompresses only the blocks it needs.
//! A damaged footer is rebuilt by walking the blocks from the header.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::ops::ControlFlow;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use crate::files::{self, Kind, io_err, read_full_at};
use crate::frame::{self, Event, FRAME_HEAD, HEADER_LEN, Walked, le_u32, le_u64};
use crate::index::{Block, IndexBuilder, SegIndex};
use crate::inner::{Inner, SegMeta};
use crate::state::lock;
use crate::{Error, Recovery, Result};

/// The first bytes of a compressed segment file.
pub(crate) const LZ4_MAGIC: &[u8; 8] = b"VIGILLZ4";
const END_MAGIC: &[u8; 8] = b"VIGILEND";
const BLOCK_HEAD: usize = 20;

fn block_head(raw_offset: u64, raw_len: u32, comp: &[u8]) -> [u8; BLOCK_HEAD] {
    let mut h = [0u8; BLOCK_HEAD];
    h[0..8].copy_from_slice(&raw_offset.to_le_bytes());
    h[8..12].copy_from_slice(&raw_len.to_le_bytes());
    h[12..16].copy_from_slice(&(comp.len() as u32).to_le_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&h[..16]), comp);
    h[16..20].copy_from_slice(&crc.to_le_bytes());
    h
}

/// Reads and checks the compressed block at `at`; returns its raw offset
/// and decompresses it into `out`.
fn read_block(
    file: &File,
    at: u64,
    limit: u64,
    buf: &mut Vec<u8>,
    out: &mut Vec<u8>,
) -> io::Result<Option<u64>> {
    let mut h = [0u8; BLOCK_HEAD];
    if at + BLOCK_HEAD as u64 > limit || read_full_at(file, &mut h, at)? < BLOCK_HEAD {
        return Ok(None);
    }
    let raw_offset = le_u64(&h[0..8]);
    let raw_len = le_u32(&h[8..12]) as usize;
    let comp_len = le_u32(&h[12..16]) as usize;
    if at + (BLOCK_HEAD + comp_len) as u64 > limit || raw_len > 1 << 30 {
        return Ok(None);
    }
    buf.resize(comp_len, 0);
    if read_full_at(file, buf, at + BLOCK_HEAD as u64)? < comp_len {
        return Ok(None);
    }
    if crc32c::crc32c_append(crc32c::crc32c(&h[..16]), buf) != le_u32(&h[16..20]) {
        return Ok(None);
    }
    out.resize(raw_len, 0);
    match lz4_flex::block::decompress_into(buf, out) {
        Ok(n) if n == raw_len => Ok(Some(raw_offset)),
        _ => Ok(None),
    }
}

/// A compressed segment opened for reading.
#[derive(Debug)]
pub(crate) struct Lz4Segment {
    file: File,
    index: Arc<SegIndex>,
    max_record: u32,
    len: u64,
}

impl Lz4Segment {
    pub(crate) fn new(file: File, meta: &SegMeta) -> io::Result<Lz4Segment> {
        let index = meta
            .index
            .clone()
            .ok_or_else(|| io::Error::other("compressed segment without an index"))?;
        let len = file.metadata()?.len();
        Ok(Lz4Segment {
            file,
            index,
            max_record: meta.max_record,
            len,
        })
    }

    /// Walks the frames in raw offsets `a..b`, decompressing only the
    /// blocks that hold them. A damaged block is reported as skipped.
    pub(crate) fn walk(
        &self,
        a: u64,
        b: u64,
        bufs: &mut (Vec<u8>, Vec<u8>),
        f: &mut dyn FnMut(Event<'_>) -> ControlFlow<()>,
    ) -> io::Result<ControlFlow<()>> {
        let (comp, raw) = bufs;
        for blk in self
            .index
            .blocks
            .iter()
            .filter(|k| k.end > a && k.offset < b)
        {
            let ok = read_block(&self.file, blk.comp_offset, self.len, comp, raw)?;
            if ok != Some(blk.offset) || raw.len() as u64 != blk.end - blk.offset {
                if f(Event::Skipped {
                    from: blk.offset,
                    to: blk.end,
                })
                .is_break()
                {
                    return Ok(ControlFlow::Break(()));
                }
                continue;
            }
            let mut tail = None;
            let walked = frame::walk(raw, blk.offset, true, self.max_record, |e| match e {
                Event::Record { offset, .. } if offset < a || offset >= b => {
                    ControlFlow::Continue(())
                }
                e => f(e),
            });
            match walked {
                Walked::Stopped => return Ok(ControlFlow::Break(())),
                Walked::BadTail(x) => tail = Some(x),
                _ => {}
            }
            if let Some(x) = tail
                && f(Event::Skipped {
                    from: x,
                    to: blk.end,
                })
                .is_break()
            {
                return Ok(ControlFlow::Break(()));
            }
        }
        Ok(ControlFlow::Continue(()))
    }

    /// The bytes of the frame at raw offset `off`, if a block holds one.
    pub(crate) fn frame_at(&self, off: u64) -> io::Result<Option<Vec<u8>>> {
        let blocks = &self.index.blocks;
        let i = blocks.partition_point(|k| k.offset <= off);
        let Some(blk) = i.checked_sub(1).map(|i| blocks[i]) else {
            return Ok(None);
        };
        if off >= blk.end {
            return Ok(None);
        }
        let (mut comp, mut raw) = (Vec::new(), Vec::new());
        if read_block(&self.file, blk.comp_offset, self.len, &mut comp, &mut raw)?
            != Some(blk.offset)
        {
            return Ok(None);
        }
        let at = (off - blk.offset) as usize;
        if raw.len() < at + FRAME_HEAD {
            return Ok(None);
        }
        let total = FRAME_HEAD + le_u32(&raw[at..]) as usize;
        Ok(raw.get(at..at + total).map(<[u8]>::to_vec))
    }
}

/// Writes the compressed form of raw segment `src` (described by `index`)
/// to `tmp`, fsynced; returns the index with the blocks' places.
fn write_compressed(
    src: &File,
    index: &SegIndex,
    max_record: u32,
    tmp: &Path,
) -> io::Result<SegIndex> {
    let mut out = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(tmp)?;
    let mut w = io::BufWriter::with_capacity(1 << 20, &mut out);
    w.write_all(&frame::file_header(LZ4_MAGIC, max_record))?;
    let mut at = HEADER_LEN;
    let mut blocks = Vec::with_capacity(index.blocks.len());
    let (mut raw, mut comp) = (Vec::new(), Vec::new());
    for blk in &index.blocks {
        let n = (blk.end - blk.offset) as usize;
        raw.resize(n, 0);
        if read_full_at(src, &mut raw, blk.offset)? < n {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "segment ends before its index says",
            ));
        }
        comp.resize(lz4_flex::block::get_maximum_output_size(n), 0);
        let c = lz4_flex::block::compress_into(&raw, &mut comp).map_err(io::Error::other)?;
        w.write_all(&block_head(blk.offset, n as u32, &comp[..c]))?;
        w.write_all(&comp[..c])?;
        blocks.push(Block {
            comp_offset: at,
            comp_len: c as u32,
            ..*blk
        });
        at += (BLOCK_HEAD + c) as u64;
    }
    let index = SegIndex {
        blocks,
        ..index.clone()
    };
    let footer = index.encode();
    w.write_all(&footer)?;
    w.write_all(&(footer.len() as u32).to_le_bytes())?;
    w.write_all(END_MAGIC)?;
    w.flush()?;
    drop(w);
    out.sync_data()?;
    Ok(index)
}

impl Inner {
    /// Rewrites sealed segment `id` compressed and swaps the files: the
    /// `.lz4` is complete and durable before the raw file goes.
    pub(crate) fn compress_segment(&self, id: u64) {
        let meta = match lock(&self.catalog).segs.get(&id) {
            Some(m) if m.sealed && !m.compressed && m.index.is_some() => m.clone(),
            _ => return,
        };
        let Some(index) = meta.index.clone() else {
            return;
        };
        let seg = files::path(&self.dir, id, Kind::Seg);
        let tmp = files::tmp_path(&self.dir, id, Kind::Lz4);
        let dest = files::path(&self.dir, id, Kind::Lz4);
        let written =
            File::open(&seg).and_then(|src| write_compressed(&src, &index, meta.max_record, &tmp));
        let new_index = match written {
            Ok(ix) => ix,
            Err(e) => {
                let _ = files::remove_if_exists(&tmp);
                if e.kind() != io::ErrorKind::NotFound {
                    tracing::warn!(segment = %seg.display(), error = %e, "compressing a segment failed");
                }
                return;
            }
        };
        let _files = lock(&self.files_lock);
        if !lock(&self.catalog).segs.contains_key(&id) {
            let _ = files::remove_if_exists(&tmp);
            return; // deleted meanwhile
        }
        let swapped = std::fs::rename(&tmp, &dest)
            .and_then(|()| files::sync_dir(&self.dir))
            .and_then(|()| std::fs::metadata(&dest));
        let size = match swapped {
            Ok(m) => m.len(),
            Err(e) => {
                let _ = files::remove_if_exists(&tmp);
                tracing::warn!(segment = %dest.display(), error = %e, "swapping in a compressed segment failed");
                return;
            }
        };
        if let Some(m) = lock(&self.catalog).segs.get_mut(&id) {
            m.compressed = true;
            m.disk_bytes = size;
            m.index = Some(Arc::new(new_index));
        }
        // Readers that have the raw file open keep reading it; later ones
        // open the compressed file.
        for kind in [Kind::Seg, Kind::Idx] {
            let p = files::path(&self.dir, id, kind);
            if let Err(e) = files::remove_if_exists(&p) {
                tracing::warn!(file = %p.display(), error = %e, "removing a compressed segment's raw file failed");
            }
        }
    }
}

/// Loads compressed segment `id` at open. `Ok(None)`: the file is not
/// usable (and a raw copy exists to fall back on).
pub(crate) fn load(
    dir: &Path,
    id: u64,
    has_raw: bool,
    index_every: u32,
    recovery: &mut Recovery,
) -> Result<Option<SegMeta>> {
    let path = files::path(dir, id, Kind::Lz4);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .map_err(io_err(&path))?;
    let len = file.metadata().map_err(io_err(&path))?.len();
    let mut head = [0u8; HEADER_LEN as usize];
    let got = read_full_at(&file, &mut head, 0).map_err(io_err(&path))?;
    let max_record = match frame::check_header(&head[..got], LZ4_MAGIC) {
        Ok(m) => m,
        Err(_) if has_raw => return Ok(None),
        Err(reason) => return Err(Error::Foreign { path, reason }),
    };
    let meta = |index: SegIndex, disk_bytes| SegMeta {
        id,
        sealed: true,
        len: index.valid_len,
        disk_bytes,
        records: index.records,
        time: index.time,
        max_record,
        index: Some(Arc::new(index)),
        compressed: true,
    };
    if let Some(ix) = read_footer(&file, len).map_err(io_err(&path))? {
        recovery.records += ix.records;
        return Ok(Some(meta(ix, len)));
    }
    if has_raw {
        return Ok(None);
    }
    // Rebuild the index from the blocks that are intact, and cut the rest.
    tracing::warn!(segment = %path.display(), "compressed segment footer is damaged; rebuilding it");
    let mut builder = IndexBuilder::new(index_every);
    let mut blocks = Vec::new();
    let (mut comp, mut raw) = (Vec::new(), Vec::new());
    let mut at = HEADER_LEN;
    while let Some(off) = read_block(&file, at, len, &mut comp, &mut raw).map_err(io_err(&path))? {
        if off < builder.index().valid_len {
            break;
        }
        let before = builder.index().records;
        let mut block = Block {
            offset: off,
            end: off + raw.len() as u64,
            min_ts: i64::MAX,
            max_ts: i64::MIN,
            records: 0,
            comp_offset: at,
            comp_len: comp.len() as u32,
        };
        frame::walk(&raw, off, true, max_record, |e| {
            if let Event::Record {
                offset,
                timestamp_us,
                payload,
            } = e
            {
                builder.add(offset, timestamp_us, (FRAME_HEAD + payload.len()) as u64);
                block.min_ts = block.min_ts.min(timestamp_us);
                block.max_ts = block.max_ts.max(timestamp_us);
            }
            ControlFlow::Continue(())
        });
        block.records = (builder.index().records - before) as u32;
        builder.extend_to(block.end);
        if block.records == 0 {
            (block.min_ts, block.max_ts) = (0, 0);
        }
        blocks.push(block);
        at += (BLOCK_HEAD + comp.len()) as u64;
    }
    let index = SegIndex {
        blocks,
        ..builder.finish()
    };
    let footer = index.encode();
    file.set_len(at)
        .and_then(|()| file.write_all_at(&footer, at))
        .and_then(|()| {
            file.write_all_at(
                &(footer.len() as u32).to_le_bytes(),
                at + footer.len() as u64,
            )
        })
        .and_then(|()| file.write_all_at(END_MAGIC, at + footer.len() as u64 + 4))
        .and_then(|()| file.sync_data())
        .map_err(io_err(&path))?;
    recovery.cut_bytes += len.saturating_sub(at);
    recovery.records += index.records;
    let size = at + footer.len() as u64 + 12;
    Ok(Some(meta(index, size)))
}

fn read_footer(file: &File, len: u64) -> io::Result<Option<SegIndex>> {
    if len < HEADER_LEN + 12 {
        return Ok(None);
    }
    let mut tail = [0u8; 12];
    read_full_at(file, &mut tail, len - 12)?;
    let n = u64::from(le_u32(&tail[..4]));
    if &tail[4..] != END_MAGIC || n > len - 12 - HEADER_LEN {
        return Ok(None);
    }
    let mut footer = vec![0u8; n as usize];
    read_full_at(file, &mut footer, len - 12 - n)?;
    let Some(ix) = SegIndex::decode(&footer) else {
        return Ok(None);
    };
    let body_end = len - 12 - n;
    let fits = ix.blocks.iter().all(|b| {
        b.comp_offset >= HEADER_LEN
            && b.comp_offset + (BLOCK_HEAD as u64) + u64::from(b.comp_len) <= body_end
    });
    Ok(fits.then_some(ix))
}
