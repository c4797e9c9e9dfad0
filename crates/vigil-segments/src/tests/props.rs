//! Property tests: any truncation and any flipped byte of any segment.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use proptest::prelude::*;

use super::{all, opts};
use crate::files::{self, Kind};
use crate::frame::HEADER_LEN;
use crate::{Durability, Error, Options, OwnedRecord, SegmentLog};

fn small() -> Options {
    Options {
        segment_bytes: 400,
        index_every_bytes: 64,
        ..opts()
    }
}

fn records() -> impl Strategy<Value = Vec<(i64, Vec<u8>)>> {
    prop::collection::vec(
        (any::<i64>(), prop::collection::vec(any::<u8>(), 0..48)),
        1..40,
    )
}

/// Writes `recs` (rolling by size), closes; returns what landed, by segment.
fn build(dir: &Path, recs: &[(i64, Vec<u8>)]) -> BTreeMap<u64, Vec<OwnedRecord>> {
    let (log, _) = SegmentLog::open(dir, small()).unwrap();
    for (ts, p) in recs {
        log.append(*ts, p, Durability::Os).unwrap();
    }
    let mut by_seg: BTreeMap<u64, Vec<OwnedRecord>> = BTreeMap::new();
    for r in all(&log) {
        by_seg.entry(r.position.segment).or_default().push(r);
    }
    by_seg
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn any_truncation_recovers_a_prefix_of_that_segment(
        recs in records(),
        pick in any::<prop::sample::Index>(),
        at in any::<prop::sample::Index>(),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let before = build(dir.path(), &recs);
        let ids: Vec<u64> = before.keys().copied().collect();
        let id = ids[pick.index(ids.len())];
        let path = files::path(dir.path(), id, Kind::Seg);
        let len = fs::metadata(&path).unwrap().len();
        let cut = at.index(len as usize + 1) as u64;
        fs::OpenOptions::new().write(true).open(&path).unwrap().set_len(cut).unwrap();

        let (log, _) = SegmentLog::open(dir.path(), small()).unwrap();
        let got = all(&log);
        let (this, others): (Vec<_>, Vec<_>) = got.iter().cloned().partition(|r| r.position.segment == id);
        let want = &before[&id];
        prop_assert!(this.len() <= want.len());
        prop_assert_eq!(&this[..], &want[..this.len()]);
        // Whole frames that survived the cut are all kept.
        let intact = want.iter().filter(|r| r.position.offset + 16 + r.payload.len() as u64 <= cut).count();
        prop_assert_eq!(this.len(), intact);
        let rest: Vec<OwnedRecord> = before.iter().filter(|(s, _)| **s != id).flat_map(|(_, v)| v.clone()).collect();
        prop_assert_eq!(others, rest);
        // And the log keeps working.
        let p = log.append(42, b"after", Durability::Os).unwrap();
        prop_assert_eq!(log.read_at(p).unwrap().unwrap().payload, b"after".to_vec());
        prop_assert_eq!(all(&log).last().unwrap().position, p);
    }

    #[test]
    fn any_flipped_byte_loses_exactly_the_record_it_hit(
        recs in records(),
        pick in any::<prop::sample::Index>(),
        at in any::<prop::sample::Index>(),
        mask in 1u8..,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let before = build(dir.path(), &recs);
        let ids: Vec<u64> = before.keys().copied().collect();
        let id = ids[pick.index(ids.len())];
        let path = files::path(dir.path(), id, Kind::Seg);
        let mut bytes = fs::read(&path).unwrap();
        let area = bytes.len() - HEADER_LEN as usize;
        let off = HEADER_LEN as usize + at.index(area);
        bytes[off] ^= mask;
        fs::write(&path, &bytes).unwrap();

        let (log, _) = SegmentLog::open(dir.path(), small()).unwrap();
        let mut skipped = 0;
        let mut got = Vec::new();
        log.scan_from(crate::Position::default(), |r| {
            got.push(OwnedRecord { position: r.position, timestamp_us: r.timestamp_us, payload: r.payload.to_vec() });
            std::ops::ControlFlow::Continue(())
        }).map(|s| skipped = s.skipped_records).unwrap();
        let want: Vec<OwnedRecord> = before
            .values()
            .flatten()
            .filter(|r| {
                let hit = r.position.segment == id
                    && (r.position.offset..r.position.offset + 16 + r.payload.len() as u64).contains(&(off as u64));
                !hit
            })
            .cloned()
            .collect();
        prop_assert_eq!(got, want);
        prop_assert!(skipped <= 1);
    }

    #[test]
    fn any_flipped_header_byte_is_a_foreign_file(
        recs in records(),
        pick in any::<prop::sample::Index>(),
        at in 0..HEADER_LEN as usize,
        mask in 1u8..,
    ) {
        let dir = tempfile::tempdir().unwrap();
        let before = build(dir.path(), &recs);
        let ids: Vec<u64> = before.keys().copied().collect();
        let id = ids[pick.index(ids.len())];
        let path = files::path(dir.path(), id, Kind::Seg);
        let mut bytes = fs::read(&path).unwrap();
        bytes[at] ^= mask;
        fs::write(&path, &bytes).unwrap();
        match SegmentLog::open(dir.path(), small()) {
            Err(Error::Foreign { path: p, .. }) => prop_assert_eq!(p, path),
            other => prop_assert!(false, "expected a foreign file, got {:?}", other.map(|_| ())),
        }
    }
}
