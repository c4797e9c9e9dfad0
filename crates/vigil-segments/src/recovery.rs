//! Opening a directory: the lock, the listing, and checking every segment
//! from its last known-good point.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions, TryLockError};
use std::io::Write;
use std::ops::ControlFlow;
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::sync::Arc;

use crate::compress;
use crate::files::{self, Kind, Name, io_err, read_full_at};
use crate::frame::{self, Event, HEADER_LEN, SEG_MAGIC};
use crate::index::{IndexBuilder, SegIndex};
use crate::inner::SegMeta;
use crate::reader::{FileEnd, walk_file};
use crate::{Error, Options, Recovery, Result};

/// What opening found, ready to become a live log.
#[derive(Debug)]
pub(crate) struct Opened {
    pub lock: File,
    pub segs: BTreeMap<u64, SegMeta>,
    pub active_id: u64,
    /// The active segment, opened for appending.
    pub active_file: File,
    pub active_builder: IndexBuilder,
    pub recovery: Recovery,
}

#[derive(Debug, Default, Clone, Copy)]
struct Found {
    seg: bool,
    idx: bool,
    lz4: bool,
}

/// Takes the lock of `dir` (created if needed) and checks its segments.
pub(crate) fn open(dir: &Path, opts: &Options) -> Result<Opened> {
    fs::create_dir_all(dir).map_err(io_err(dir))?;
    let lock_path = dir.join(files::LOCK);
    let lock = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&lock_path)
        .map_err(io_err(&lock_path))?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(TryLockError::WouldBlock) => {
            return Err(Error::Locked {
                dir: dir.to_owned(),
            });
        }
        Err(TryLockError::Error(e)) => return Err(io_err(&lock_path)(e)),
    }

    let mut found: BTreeMap<u64, Found> = BTreeMap::new();
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let path = entry.path();
        let kind = entry.file_type().map_err(io_err(&path))?;
        let name = entry.file_name();
        let parsed = name.to_str().and_then(files::parse);
        match parsed {
            Some(Name::Lock) if kind.is_file() => {}
            Some(Name::Tmp) if kind.is_file() => {
                fs::remove_file(&path).map_err(io_err(&path))?;
            }
            Some(Name::File(id, k)) if kind.is_file() => {
                let f = found.entry(id).or_default();
                match k {
                    Kind::Seg => f.seg = true,
                    Kind::Idx => f.idx = true,
                    Kind::Lz4 => f.lz4 = true,
                }
            }
            _ => {
                let reason = if kind.is_dir() {
                    "unexpected directory"
                } else {
                    "unexpected file name"
                };
                return Err(Error::Foreign {
                    path,
                    reason: reason.to_owned(),
                });
            }
        }
    }

    let mut recovery = Recovery::default();
    let mut segs = BTreeMap::new();
    let last = found
        .iter()
        .rev()
        .find(|(_, f)| f.seg || f.lz4)
        .map(|(id, _)| *id);
    let mut active: Option<(u64, IndexBuilder)> = None;
    for (id, f) in found {
        let idx_path = files::path(dir, id, Kind::Idx);
        let seg_path = files::path(dir, id, Kind::Seg);
        if f.lz4 {
            let mut found_here = Recovery::default();
            match compress::load(dir, id, f.seg, opts.index_every_bytes, &mut found_here)? {
                Some(meta) => {
                    // The swap finished its rename: the raw copy is redundant.
                    files::remove_if_exists(&seg_path).map_err(io_err(&seg_path))?;
                    files::remove_if_exists(&idx_path).map_err(io_err(&idx_path))?;
                    recovery.segments += 1;
                    recovery.records += found_here.records;
                    recovery.cut_bytes += found_here.cut_bytes;
                    segs.insert(id, meta);
                    continue;
                }
                None => {
                    let lz4 = files::path(dir, id, Kind::Lz4);
                    tracing::warn!(segment = %lz4.display(), "unusable compressed segment; keeping its raw copy");
                    files::remove_if_exists(&lz4).map_err(io_err(&lz4))?;
                }
            }
        }
        if !f.seg {
            // A sidecar whose segment is gone.
            files::remove_if_exists(&idx_path).map_err(io_err(&idx_path))?;
            continue;
        }
        recovery.segments += 1;
        let (meta, builder) = check_segment(dir, id, f.idx, opts, &mut recovery)?;
        let is_active =
            Some(id) == last && !meta.sealed && meta.max_record >= opts.max_record_bytes;
        if is_active {
            active = Some((id, builder));
        } else if meta.index.is_none() {
            segs.insert(id, seal_at_open(dir, meta, builder)?);
            continue;
        }
        segs.insert(id, meta);
    }

    let (active_id, active_builder) = match active {
        Some(a) => a,
        None => {
            let id = last.map_or(1, |l| l + 1);
            create_segment(dir, id, opts.max_record_bytes)?;
            segs.insert(id, SegMeta::empty(id, opts.max_record_bytes));
            (id, IndexBuilder::new(opts.index_every_bytes))
        }
    };
    let path = files::path(dir, active_id, Kind::Seg);
    let active_file = OpenOptions::new()
        .read(true)
        .append(true)
        .open(&path)
        .map_err(io_err(&path))?;
    Ok(Opened {
        lock,
        segs,
        active_id,
        active_file,
        active_builder,
        recovery,
    })
}

/// Creates an empty segment file (header only), durably.
fn create_segment(dir: &Path, id: u64, max_record: u32) -> Result<()> {
    let path = files::path(dir, id, Kind::Seg);
    let mut f = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(io_err(&path))?;
    f.write_all(&frame::file_header(SEG_MAGIC, max_record))
        .and_then(|()| f.sync_data())
        .map_err(io_err(&path))?;
    files::sync_dir(dir).map_err(io_err(dir))
}

/// Writes the index sidecar of a segment found sealed without one.
fn seal_at_open(dir: &Path, mut meta: SegMeta, builder: IndexBuilder) -> Result<SegMeta> {
    let index = builder.finish();
    let idx = files::path(dir, meta.id, Kind::Idx);
    let tmp = files::tmp_path(dir, meta.id, Kind::Idx);
    let seg = files::path(dir, meta.id, Kind::Seg);
    // The index claims the bytes: make them durable first.
    File::open(&seg)
        .and_then(|f| f.sync_data())
        .map_err(io_err(&seg))?;
    files::write_atomic(dir, &tmp, &idx, &index.encode()).map_err(io_err(&idx))?;
    meta.sealed = true;
    meta.index = Some(Arc::new(index));
    Ok(meta)
}

/// Checks one segment: trusts a valid index sidecar up to its length,
/// scans otherwise, and cuts a torn or corrupt tail.
fn check_segment(
    dir: &Path,
    id: u64,
    has_idx: bool,
    opts: &Options,
    recovery: &mut Recovery,
) -> Result<(SegMeta, IndexBuilder)> {
    let path = files::path(dir, id, Kind::Seg);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .map_err(io_err(&path))?;
    let mut file_len = file.metadata().map_err(io_err(&path))?.len();
    let mut head = [0u8; HEADER_LEN as usize];
    let got = read_full_at(&file, &mut head, 0).map_err(io_err(&path))?;
    let max_record = if got < head.len() {
        if !frame::is_torn_header(&head[..got], SEG_MAGIC) {
            return Err(Error::Foreign {
                path,
                reason: format!("header of {got} bytes is too short"),
            });
        }
        // Torn while being created: nothing was in it.
        tracing::warn!(segment = %path.display(), "rewriting a torn segment header");
        file.set_len(0)
            .and_then(|()| {
                file.write_all_at(&frame::file_header(SEG_MAGIC, opts.max_record_bytes), 0)
            })
            .and_then(|()| file.sync_data())
            .map_err(io_err(&path))?;
        file_len = HEADER_LEN;
        opts.max_record_bytes
    } else {
        frame::check_header(&head, SEG_MAGIC).map_err(|reason| Error::Foreign {
            path: path.clone(),
            reason,
        })?
    };

    let meta = |len: u64, records: u64, time, index: Option<Arc<SegIndex>>| SegMeta {
        id,
        sealed: index.is_some(),
        len,
        disk_bytes: len,
        records,
        time,
        max_record,
        index,
        compressed: false,
    };

    let idx_path = files::path(dir, id, Kind::Idx);
    if has_idx {
        let ix = fs::read(&idx_path)
            .map_err(io_err(&idx_path))
            .map(|b| SegIndex::decode(&b))?;
        match ix {
            Some(ix) if file_len >= ix.valid_len => {
                if file_len > ix.valid_len {
                    // Bytes past a sealed segment's end were never acknowledged.
                    cut(&file, &path, ix.valid_len, file_len, recovery)?;
                }
                recovery.records += ix.records;
                let m = meta(ix.valid_len, ix.records, ix.time, Some(Arc::new(ix)));
                return Ok((m, IndexBuilder::new(opts.index_every_bytes)));
            }
            _ => {
                tracing::warn!(index = %idx_path.display(), "index sidecar is stale or damaged; scanning the segment");
                files::remove_if_exists(&idx_path).map_err(io_err(&idx_path))?;
            }
        }
    }

    let mut builder = IndexBuilder::new(opts.index_every_bytes);
    let mut skipped = 0u64;
    let mut buf = Vec::new();
    let end = walk_file(&file, HEADER_LEN, file_len, max_record, &mut buf, |e| {
        match e {
            Event::Record {
                offset,
                timestamp_us,
                payload,
            } => builder.add(offset, timestamp_us, (frame::FRAME_HEAD + payload.len()) as u64),
            Event::Skipped { from, to } => {
                tracing::warn!(segment = %path.display(), offset = from, bytes = to - from, "skipping a corrupt record");
                skipped += 1;
                builder.extend_to(to);
            }
        }
        ControlFlow::Continue(())
    })
    .map_err(io_err(&path))?;
    let valid = match end {
        FileEnd::End | FileEnd::Stopped => file_len,
        FileEnd::BadTail(x) | FileEnd::Short(x) => x,
    };
    if valid < file_len {
        cut(&file, &path, valid, file_len, recovery)?;
    }
    builder.extend_to(valid);
    recovery.records += builder.index().records;
    recovery.skipped_records += skipped;
    let ix = builder.index();
    Ok((meta(valid, ix.records, ix.time, None), builder))
}

fn cut(file: &File, path: &Path, valid: u64, len: u64, recovery: &mut Recovery) -> Result<()> {
    tracing::warn!(segment = %path.display(), offset = valid, bytes = len - valid, "cutting a torn or corrupt tail");
    file.set_len(valid)
        .and_then(|()| file.sync_data())
        .map_err(io_err(path))?;
    recovery.cut_bytes += len - valid;
    Ok(())
}
