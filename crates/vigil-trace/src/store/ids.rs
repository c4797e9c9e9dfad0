//! The per-segment trace-id index of the span log: for each segment, a
//! sorted list of `(key, offset, count)`, one entry per trace per batch,
//! where `key` is bytes 8..16 of the trace id (random both in ids Vigil
//! makes, whose first 4 bytes are a time, and in ids from elsewhere),
//! `offset` the frame offset of the trace's record in the batch and
//! `count` how many spans it holds (segments written before a record held
//! a trace's spans have one record per span: the run is `count` records). A `get` binary-searches each candidate segment and
//! reads only those frames.
//!
//! The active segment's entries live in memory; once the log moves on to a
//! new segment the sealed one's list is written beside the log as
//! `ids/<segment>.ids` (temporary file, renamed). On open, a segment with
//! no (or a damaged) file is rebuilt from its records. The cost is 20
//! bytes of memory and disk per trace per batch.
//!
//! ```text
//! [b"VTIDS001"][count u64 LE] then count × [key u64][offset u64][count u32]
//! ```

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::model::TraceId;

const MAGIC: &[u8; 8] = b"VTIDS001";
const ENTRY: usize = 20;

/// One trace's run of spans in one batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Entry {
    /// Bytes 8..16 of the trace id.
    pub key: u64,
    /// The frame offset of the run's first record.
    pub offset: u64,
    /// Spans in the run.
    pub count: u32,
}

/// The key under which a trace is indexed.
pub fn key(id: &TraceId) -> u64 {
    let mut b = [0; 8];
    b.copy_from_slice(&id.0[8..]);
    u64::from_le_bytes(b)
}

/// The index of one segment.
#[derive(Debug, Default)]
pub struct SegmentIds {
    /// Sorted once the segment is sealed; in append order while active.
    pub entries: Vec<Entry>,
    /// Whether `entries` is sorted (and persisted).
    pub sealed: bool,
    /// Spans the segment holds (for the expired count).
    pub spans: u64,
}

impl SegmentIds {
    /// The runs whose key is `k`.
    pub fn find(&self, k: u64) -> Vec<Entry> {
        if self.sealed {
            let lo = self.entries.partition_point(|e| e.key < k);
            self.entries[lo..]
                .iter()
                .take_while(|e| e.key == k)
                .copied()
                .collect()
        } else {
            self.entries
                .iter()
                .filter(|e| e.key == k)
                .copied()
                .collect()
        }
    }

    /// Sorts the entries and writes them to `ids/<segment>.ids`.
    pub fn seal(&mut self, dir: &Path, segment: u64) -> std::io::Result<()> {
        self.entries.sort_unstable();
        self.sealed = true;
        write(dir, segment, &self.entries)
    }
}

/// Every segment's index, by segment number.
pub type IdIndex = BTreeMap<u64, SegmentIds>;

/// The file of `segment` in `dir`.
pub fn path(dir: &Path, segment: u64) -> PathBuf {
    dir.join(format!("{segment:020}.ids"))
}

fn write(dir: &Path, segment: u64, entries: &[Entry]) -> std::io::Result<()> {
    let mut buf = Vec::with_capacity(16 + entries.len() * ENTRY);
    buf.extend_from_slice(MAGIC);
    buf.extend_from_slice(&(entries.len() as u64).to_le_bytes());
    for e in entries {
        buf.extend_from_slice(&e.key.to_le_bytes());
        buf.extend_from_slice(&e.offset.to_le_bytes());
        buf.extend_from_slice(&e.count.to_le_bytes());
    }
    let target = path(dir, segment);
    let tmp = target.with_extension("tmp");
    let mut f = std::fs::File::create(&tmp)?;
    f.write_all(&buf)?;
    // Not fsynced: a lost or torn file is rebuilt from the segment on open.
    drop(f);
    std::fs::rename(&tmp, &target)
}

/// Reads `segment`'s file; `None` when missing or not a valid one (it is
/// then rebuilt).
pub fn read(dir: &Path, segment: u64) -> Option<Vec<Entry>> {
    let bytes = std::fs::read(path(dir, segment)).ok()?;
    let head = bytes.get(..16)?;
    if &head[..8] != MAGIC {
        return None;
    }
    let count = usize::try_from(u64::from_le_bytes(head[8..16].try_into().ok()?)).ok()?;
    let body = bytes.get(16..)?;
    if body.len() != count.checked_mul(ENTRY)? {
        return None;
    }
    let mut out = Vec::with_capacity(count);
    for chunk in body.chunks_exact(ENTRY) {
        out.push(Entry {
            key: u64::from_le_bytes(chunk[..8].try_into().ok()?),
            offset: u64::from_le_bytes(chunk[8..16].try_into().ok()?),
            count: u32::from_le_bytes(chunk[16..20].try_into().ok()?),
        });
    }
    out.is_sorted().then_some(out)
}

/// Deletes `segment`'s file, if any.
pub fn remove(dir: &Path, segment: u64) {
    let _ = std::fs::remove_file(path(dir, segment));
}

/// The segment numbers that have a file in `dir`.
pub fn listed(dir: &Path) -> Vec<u64> {
    let Ok(read) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    read.filter_map(|e| {
        let name = e.ok()?.file_name();
        let name = name.to_str()?;
        name.strip_suffix(".ids")?.parse().ok()
    })
    .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_index_round_trips_and_finds_every_run() {
        let dir = tempfile::tempdir().unwrap();
        let mut ids = SegmentIds::default();
        for (i, k) in [5u64, 1, 5, 9].into_iter().enumerate() {
            ids.entries.push(Entry {
                key: k,
                offset: i as u64 * 100,
                count: 2,
            });
        }
        assert_eq!(ids.find(5).len(), 2);
        ids.seal(dir.path(), 7).unwrap();
        let back = read(dir.path(), 7).unwrap();
        assert_eq!(back, ids.entries);
        assert_eq!(
            ids.find(5).iter().map(|e| e.offset).collect::<Vec<_>>(),
            [0, 200]
        );
        assert!(ids.find(4).is_empty());
        assert_eq!(listed(dir.path()), [7]);
        std::fs::write(path(dir.path(), 7), b"VTIDS001\x09").unwrap();
        assert_eq!(read(dir.path(), 7), None, "a damaged file is rebuilt");
    }
}
