//! The spill queue's previous file format, kept only to migrate a spill
//! directory written by an older Vigil onto the segment log: the directory
//! is renamed to `<dir>.legacy` (atomic), its records are appended to a new
//! log in `<dir>` and made durable, then `<dir>.legacy` is removed. A crash
//! midway leaves `<dir>.legacy`, and the next open migrates it again: the
//! records already copied come twice, which replay tolerates (it is
//! idempotent, and the spill's key index keeps the first copy).
//!
//! Each segment `NNNNNNNNNNNNNNNNNNNN.spill` holds records framed as
//! `[len: u32 LE][crc32: u32 LE][len bytes of JSON]`. A torn or corrupt
//! tail (e.g. after `kill -9` mid-write) is detected by the length or the
//! checksum and cut off.

use std::path::{Path, PathBuf};

use vigil_segments::SegmentLog;

use crate::error::{Result, StoreError};
use crate::record::InferenceRecord;

const HEADER_BYTES: usize = 8;
const EXTENSION: &str = "spill";

/// `<dir>.legacy`, where an older version's files wait to be migrated.
fn legacy_dir(dir: &Path) -> Result<PathBuf> {
    let Some(name) = dir.file_name() else {
        return Err(StoreError::Config(format!(
            "spill directory {} has no name",
            dir.display()
        )));
    };
    let mut legacy = name.to_owned();
    legacy.push(".legacy");
    Ok(dir.with_file_name(legacy))
}

/// Renames `dir` to `<dir>.legacy` if it holds legacy files; returns the
/// legacy directory when there is one to migrate (just renamed, or left by
/// a migration that a crash interrupted).
pub(super) fn set_aside(dir: &Path) -> Result<Option<PathBuf>> {
    let legacy = legacy_dir(dir)?;
    if !segment_files(dir)?.is_empty() {
        if legacy.exists() {
            return Err(StoreError::Config(format!(
                "spill directory {} holds legacy *.spill files and {} exists too: \
                 move one of them away",
                dir.display(),
                legacy.display()
            )));
        }
        // Atomic: a crash leaves either the old layout or `<dir>.legacy`.
        std::fs::rename(dir, &legacy)?;
        sync_parent(dir);
    }
    Ok(legacy.exists().then_some(legacy))
}

/// The legacy segment files in `dir`, oldest first (none when `dir` does
/// not exist).
pub(super) fn segment_files(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(err) => return Err(err.into()),
    };
    let mut files: Vec<(u64, PathBuf)> = Vec::new();
    for entry in entries {
        let path = entry?.path();
        if path.extension().and_then(|x| x.to_str()) != Some(EXTENSION) {
            continue;
        }
        // A `.spill` file whose stem is not a number was never written by
        // Vigil; it sorts last and is migrated like the others.
        let id = path
            .file_stem()
            .and_then(|s| s.to_str())
            .and_then(|s| s.parse().ok())
            .unwrap_or(u64::MAX);
        files.push((id, path));
    }
    files.sort();
    Ok(files.into_iter().map(|(_, path)| path).collect())
}

/// Appends the records of every legacy file in `legacy_dir` to `log`, in
/// order, makes them durable, then deletes the files oldest first (so a
/// crash midway leaves only files not yet deleted, to be migrated again)
/// and the directory; returns how many files had a torn or corrupt tail.
/// Records go in batches of at most `segment_bytes` (a batch is never
/// split across segments), so the new segments have the usual size.
pub(super) fn migrate(legacy_dir: &Path, log: &SegmentLog, segment_bytes: u64) -> Result<u64> {
    let (mut records_moved, mut torn_files) = (0u64, 0u64);
    let files = segment_files(legacy_dir)?;
    for path in &files {
        let (records, torn) = read_file(path)?;
        if torn {
            tracing::warn!(path = %path.display(), "legacy spill file has a torn tail, cutting it");
            torn_files += 1;
        }
        let mut batch: Vec<(i64, Vec<u8>)> = Vec::new();
        let mut batch_bytes = 0u64;
        for record in &records {
            let body = serde_json::to_vec(record)
                .map_err(|e| StoreError::Corrupt(format!("spill encode: {e}")))?;
            let frame = body.len() as u64 + super::FRAME_OVERHEAD;
            if !batch.is_empty() && batch_bytes + frame > segment_bytes {
                append(log, &mut batch)?;
                batch_bytes = 0;
            }
            batch_bytes += frame;
            batch.push((record.received_at_us, body));
        }
        append(log, &mut batch)?;
        records_moved += records.len() as u64;
    }
    log.sync()?;
    for path in &files {
        std::fs::remove_file(path)?;
    }
    std::fs::remove_dir_all(legacy_dir)?;
    sync_parent(legacy_dir);
    tracing::info!(
        records = records_moved,
        torn = torn_files,
        dir = %log.dir().display(),
        "legacy spill files migrated to the segment log"
    );
    Ok(torn_files)
}

/// Appends and empties `batch` (written to the kernel; synced at the end).
fn append(log: &SegmentLog, batch: &mut Vec<(i64, Vec<u8>)>) -> Result<()> {
    let records: Vec<(i64, &[u8])> = batch.iter().map(|(t, b)| (*t, b.as_slice())).collect();
    log.append_batch(&records, vigil_segments::Durability::Os)?;
    batch.clear();
    Ok(())
}

/// Makes a rename or removal in `dir`'s parent durable.
fn sync_parent(dir: &Path) {
    let Some(parent) = dir.parent() else {
        return;
    };
    let parent = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    if let Err(err) = std::fs::File::open(parent).and_then(|d| d.sync_all()) {
        tracing::warn!(error = %err, dir = %parent.display(), "cannot fsync directory");
    }
}

/// Every intact record of a legacy file, and whether a torn or corrupt
/// tail followed them.
pub(super) fn read_file(path: &Path) -> Result<(Vec<InferenceRecord>, bool)> {
    let bytes = std::fs::read(path)?;
    Ok(decode(&bytes))
}

/// Decodes frames up to the first torn or corrupt one.
fn decode(bytes: &[u8]) -> (Vec<InferenceRecord>, bool) {
    let mut records = Vec::new();
    let mut pos = 0usize;
    while pos < bytes.len() {
        let Some(header) = bytes.get(pos..pos + HEADER_BYTES) else {
            return (records, true);
        };
        let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
        let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
        let start = pos + HEADER_BYTES;
        let Some(body) = start.checked_add(len).and_then(|end| bytes.get(start..end)) else {
            return (records, true);
        };
        if crc32fast::hash(body) != crc {
            return (records, true);
        }
        match serde_json::from_slice::<InferenceRecord>(body) {
            Ok(r) => records.push(r),
            Err(_) => return (records, true),
        }
        pos = start + len;
    }
    (records, false)
}

/// One record framed as the previous version wrote it.
#[cfg(test)]
pub(super) fn encode(record: &InferenceRecord) -> Vec<u8> {
    let body = serde_json::to_vec(record).unwrap_or_else(|e| panic!("{e}"));
    let len = u32::try_from(body.len()).unwrap_or_else(|e| panic!("{e}"));
    let mut frame = Vec::with_capacity(body.len() + HEADER_BYTES);
    frame.extend_from_slice(&len.to_le_bytes());
    frame.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    frame.extend_from_slice(&body);
    frame
}

/// The path the previous version gave segment `id`.
#[cfg(test)]
pub(super) fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.{EXTENSION}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(id: &str) -> InferenceRecord {
        let mut r = InferenceRecord::new(id, 7, "fraud", "1", crate::Input::default());
        r.scores = vec![0.5];
        r
    }

    #[test]
    fn decode_reads_frames_and_stops_at_a_torn_tail() {
        let mut bytes = [encode(&rec("a")), encode(&rec("b"))].concat();
        let (records, torn) = decode(&bytes);
        let ids: Vec<_> = records.iter().map(|r| r.request_id.as_str()).collect();
        assert_eq!((ids, torn), (vec!["a", "b"], false));
        bytes.truncate(bytes.len() - 3);
        let (records, torn) = decode(&bytes);
        assert_eq!((records.len(), torn), (1, true));
        // A header claiming more bytes than exist, or a flipped body byte.
        let mut bad = encode(&rec("c"));
        bad[HEADER_BYTES + 1] ^= 0x20;
        assert_eq!(decode(&bad), (Vec::new(), true));
        assert_eq!(decode(&[0xff; 8]), (Vec::new(), true));
    }

    #[test]
    fn segment_files_sort_by_number_and_skip_others() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        for name in [
            "00000000000000000010.spill",
            "00000000000000000002.spill",
            "LOCK",
        ] {
            assert!(std::fs::write(dir.path().join(name), b"").is_ok());
        }
        let names: Vec<String> = segment_files(dir.path())
            .unwrap_or_else(|e| panic!("{e}"))
            .iter()
            .filter_map(|p| Some(p.file_name()?.to_str()?.to_owned()))
            .collect();
        assert_eq!(
            names,
            ["00000000000000000002.spill", "00000000000000000010.spill"]
        );
        let missing = segment_files(&dir.path().join("absent"));
        assert!(missing.is_ok_and(|f| f.is_empty()));
    }
}
