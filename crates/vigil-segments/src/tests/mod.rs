//! Behaviour tests of the whole log, on real files in a temporary directory.

#![allow(clippy::unwrap_used)]

use std::fs::{self, OpenOptions};
use std::ops::ControlFlow;
use std::path::Path;
use std::time::Duration;

use super::*;
use crate::files::Kind;
use crate::frame::HEADER_LEN;

pub(crate) fn opts() -> Options {
    Options {
        segment_age: None,
        ..Options::default()
    }
}

pub(crate) fn payload(i: u64) -> Vec<u8> {
    let n = (i % 37) as usize + 1;
    (0..n)
        .map(|k| (i as u8).wrapping_mul(31).wrapping_add(k as u8))
        .collect()
}

pub(crate) fn all(log: &SegmentLog) -> Vec<OwnedRecord> {
    let mut out = Vec::new();
    log.scan_from(Position::default(), |r| {
        out.push(OwnedRecord {
            position: r.position,
            timestamp_us: r.timestamp_us,
            payload: r.payload.to_vec(),
        });
        ControlFlow::Continue(())
    })
    .unwrap();
    out
}

fn seg_file(dir: &Path, id: u64) -> std::path::PathBuf {
    files::path(dir, id, Kind::Seg)
}

#[test]
fn append_then_read_back_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let (log, rec) = SegmentLog::open(dir.path(), opts()).unwrap();
    assert_eq!(rec, Recovery::default());
    let mut positions = Vec::new();
    for i in 0..100u64 {
        positions.push(log.append(i as i64, &payload(i), Durability::Os).unwrap());
    }
    assert!(positions.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(positions[0].offset, HEADER_LEN);
    let got = all(&log);
    assert_eq!(got.len(), 100);
    for (i, r) in got.iter().enumerate() {
        assert_eq!(r.timestamp_us, i as i64);
        assert_eq!(r.payload, payload(i as u64));
        assert_eq!(r.position, positions[i]);
        assert_eq!(log.read_at(r.position).unwrap().as_ref(), Some(r));
    }
    let last = positions[99];
    assert_eq!(
        log.end(),
        Position {
            segment: last.segment,
            offset: last.offset + 16 + payload(99).len() as u64
        }
    );
    assert_eq!(log.read_at(log.end()).unwrap(), None);
    assert_eq!(
        log.read_at(Position {
            segment: last.segment,
            offset: last.offset + 1
        })
        .unwrap(),
        None
    );
    let s = log.stats();
    assert_eq!(s.records_appended, 100);
    assert!(s.writes >= 1 && s.writes <= 100);
}

#[test]
fn scan_from_a_position_starts_there() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = SegmentLog::open(dir.path(), opts()).unwrap();
    let ps: Vec<Position> = (0..10)
        .map(|i| log.append(i, b"x", Durability::Os).unwrap())
        .collect();
    let mut ts = Vec::new();
    let stats = log
        .scan_from(ps[4], |r| {
            ts.push(r.timestamp_us);
            if ts.len() == 3 {
                ControlFlow::Break(())
            } else {
                ControlFlow::Continue(())
            }
        })
        .unwrap();
    assert_eq!(ts, vec![4, 5, 6]);
    assert_eq!(stats.records, 3);
    assert_eq!(stats.payload_bytes, 3);
    let end = log.end();
    let mut n = 0;
    log.scan_from(end, |_| {
        n += 1;
        ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(n, 0);
}

#[test]
fn batches_are_contiguous_and_too_large_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let o = Options {
        max_record_bytes: 100,
        ..opts()
    };
    let (log, _) = SegmentLog::open(dir.path(), o).unwrap();
    let recs: Vec<(i64, &[u8])> = vec![(1, b"a"), (2, b"bb"), (3, b"")];
    let ps = log.append_batch(&recs, Durability::Os).unwrap();
    assert_eq!(ps[1].offset, ps[0].offset + 17);
    assert_eq!(ps[2].offset, ps[1].offset + 18);
    assert_eq!(
        ps.iter().map(|p| p.segment).collect::<Vec<_>>(),
        vec![ps[0].segment; 3]
    );
    let big = vec![0u8; 101];
    match log.append(4, &big, Durability::Os) {
        Err(Error::TooLarge { len: 101, max: 100 }) => {}
        other => panic!("{other:?}"),
    }
    let bad: Vec<(i64, &[u8])> = vec![(5, b"ok"), (6, &big)];
    assert!(matches!(
        log.append_batch(&bad, Durability::Os),
        Err(Error::TooLarge { .. })
    ));
    assert_eq!(all(&log).len(), 3);
    assert_eq!(log.append_batch(&[], Durability::Os).unwrap(), vec![]);
}

#[test]
fn rolls_by_size_and_scans_across_segments() {
    let dir = tempfile::tempdir().unwrap();
    let o = Options {
        segment_bytes: 1000,
        index_every_bytes: 200,
        ..opts()
    };
    let (log, _) = SegmentLog::open(dir.path(), o.clone()).unwrap();
    for i in 0..200u64 {
        log.append(i as i64 * 10, &payload(i), Durability::Os)
            .unwrap();
    }
    let segs = log.segments();
    assert!(segs.len() > 5, "{segs:?}");
    assert!(
        segs[..segs.len() - 1]
            .iter()
            .all(|s| s.sealed && s.bytes <= 1000)
    );
    assert!(!segs.last().unwrap().sealed);
    assert_eq!(segs.iter().map(|s| s.records).sum::<u64>(), 200);
    assert_eq!(log.total_bytes(), segs.iter().map(|s| s.bytes).sum::<u64>());
    assert_eq!(log.stats().rolls, segs.len() as u64 - 1);
    let got = all(&log);
    assert_eq!(
        got.iter().map(|r| r.timestamp_us).collect::<Vec<_>>(),
        (0..200).map(|i| i * 10).collect::<Vec<_>>()
    );

    // A time range opens only the segments that overlap it.
    let mut ts = Vec::new();
    let stats = log
        .scan(505, 700, |r| {
            ts.push(r.timestamp_us);
            ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(ts, (51..70).map(|i| i * 10).collect::<Vec<_>>());
    assert!(stats.segments_opened <= 3, "{stats:?}");
    assert_eq!(stats.records, 19);
    drop(log);

    // Reopened: sealed segments are trusted from their sidecars.
    let (log, rec) = SegmentLog::open(dir.path(), o).unwrap();
    assert_eq!(rec.records, 200);
    assert_eq!(rec.segments, segs.len());
    assert_eq!(rec.cut_bytes, 0);
    assert_eq!(all(&log), got);
    let mut n = 0;
    log.scan(505, 700, |_| {
        n += 1;
        ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(n, 19);
}

#[test]
fn explicit_roll_and_delete_before() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = SegmentLog::open(dir.path(), opts()).unwrap();
    assert_eq!(log.roll().unwrap(), None);
    let a = log.append(1, b"one", Durability::Os).unwrap();
    assert_eq!(log.roll().unwrap(), Some(a.segment));
    assert_eq!(log.roll().unwrap(), None);
    let b = log.append(2, b"two", Durability::Os).unwrap();
    assert_eq!(b.segment, a.segment + 1);
    assert_eq!(b.offset, HEADER_LEN);
    log.roll().unwrap();
    let c = log.append(3, b"three", Durability::Fsync).unwrap();
    assert_eq!(log.segments().len(), 3);
    assert_eq!(log.delete_before(c).unwrap(), 2);
    assert_eq!(log.stats().segments_deleted, 2);
    assert_eq!(log.read_at(a).unwrap(), None);
    assert_eq!(
        all(&log).iter().map(|r| r.timestamp_us).collect::<Vec<_>>(),
        vec![3]
    );
    assert!(!seg_file(dir.path(), a.segment).exists());
    // The active segment is never deleted.
    assert_eq!(
        log.delete_before(Position {
            segment: u64::MAX,
            offset: 0
        })
        .unwrap(),
        0
    );
}

#[test]
fn reopen_cuts_a_torn_tail_and_keeps_working() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = SegmentLog::open(dir.path(), opts()).unwrap();
    let mut last = Position::default();
    for i in 0..10u64 {
        last = log.append(i as i64, &payload(i), Durability::Os).unwrap();
    }
    drop(log);
    let path = seg_file(dir.path(), last.segment);
    let len = fs::metadata(&path).unwrap().len();
    let f = OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(len - 3).unwrap();
    drop(f);
    let (log, rec) = SegmentLog::open(dir.path(), opts()).unwrap();
    assert_eq!(rec.records, 9);
    assert_eq!(rec.cut_bytes, len - 3 - last.offset);
    assert_eq!(all(&log).len(), 9);
    let p = log.append(99, b"after", Durability::Os).unwrap();
    assert_eq!(p, last);
    assert_eq!(all(&log).last().unwrap().payload, b"after");
}

#[test]
fn a_corrupt_middle_record_is_skipped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = SegmentLog::open(dir.path(), opts()).unwrap();
    let ps: Vec<Position> = (0..5u64)
        .map(|i| {
            log.append(i as i64, &payload(i + 10), Durability::Os)
                .unwrap()
        })
        .collect();
    drop(log);
    let path = seg_file(dir.path(), ps[2].segment);
    let mut bytes = fs::read(&path).unwrap();
    bytes[ps[2].offset as usize + 17] ^= 1;
    fs::write(&path, &bytes).unwrap();
    let (log, rec) = SegmentLog::open(dir.path(), opts()).unwrap();
    assert_eq!(rec.records, 4);
    assert_eq!(rec.skipped_records, 1);
    assert_eq!(rec.cut_bytes, 0);
    let mut ts = Vec::new();
    let stats = log
        .scan_from(Position::default(), |r| {
            ts.push(r.timestamp_us);
            ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(ts, vec![0, 1, 3, 4]);
    assert_eq!(stats.skipped_records, 1);
    assert_eq!(log.read_at(ps[2]).unwrap(), None);
    assert_eq!(log.read_at(ps[3]).unwrap().unwrap().timestamp_us, 3);
}

#[test]
fn a_second_open_of_the_same_dir_is_locked() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = SegmentLog::open(dir.path(), opts()).unwrap();
    match SegmentLog::open(dir.path(), opts()) {
        Err(Error::Locked { dir: d }) => assert_eq!(d, dir.path()),
        other => panic!("{other:?}"),
    }
    drop(log);
    let (_log, _) = SegmentLog::open(dir.path(), opts()).unwrap();
}

#[test]
fn foreign_files_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("notes.txt"), b"hi").unwrap();
    match SegmentLog::open(dir.path(), opts()) {
        Err(Error::Foreign { path, .. }) => assert_eq!(path, dir.path().join("notes.txt")),
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_damaged_header_is_foreign_and_a_leftover_tmp_is_removed() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = SegmentLog::open(dir.path(), opts()).unwrap();
    let p = log.append(1, b"x", Durability::Os).unwrap();
    drop(log);
    let tmp = files::tmp_path(dir.path(), 3, Kind::Idx);
    fs::write(&tmp, b"half").unwrap();
    let (log, _) = SegmentLog::open(dir.path(), opts()).unwrap();
    assert!(!tmp.exists());
    drop(log);
    let path = seg_file(dir.path(), p.segment);
    let mut bytes = fs::read(&path).unwrap();
    bytes[9] ^= 0x80;
    fs::write(&path, &bytes).unwrap();
    match SegmentLog::open(dir.path(), opts()) {
        Err(Error::Foreign { path: got, reason }) => {
            assert_eq!(got, path);
            assert!(reason.contains("header"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn fsync_appends_are_synced_and_an_idle_log_never_wakes() {
    let dir = tempfile::tempdir().unwrap();
    let o = Options {
        fsync_interval: Duration::from_millis(10),
        segment_age: Some(Duration::from_secs(3600)),
        ..Options::default()
    };
    let (log, _) = SegmentLog::open(dir.path(), o).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(log.background_wakeups(), 0);
    log.append(1, b"durable", Durability::Fsync).unwrap();
    assert_eq!(log.stats().fsyncs, 1);
    log.append(2, b"os", Durability::Os).unwrap();
    // The background fsync follows within the interval, then the thread sleeps.
    let t = std::time::Instant::now();
    while log.stats().fsyncs < 2 {
        assert!(t.elapsed() < Duration::from_secs(20), "no background fsync");
        std::thread::sleep(Duration::from_millis(5));
    }
    let woke = log.background_wakeups();
    assert!(woke >= 1);
    std::thread::sleep(Duration::from_millis(200));
    assert_eq!(log.background_wakeups(), woke);
    // Nothing written since: nothing to sync.
    log.sync().unwrap();
    assert_eq!(log.stats().fsyncs, 2);
}

#[test]
fn concurrent_appenders_get_distinct_positions_and_all_land() {
    let dir = tempfile::tempdir().unwrap();
    let o = Options {
        segment_bytes: 4096,
        ..opts()
    };
    let (log, _) = SegmentLog::open(dir.path(), o.clone()).unwrap();
    let log = std::sync::Arc::new(log);
    let threads: Vec<_> = (0..8u64)
        .map(|t| {
            let log = std::sync::Arc::clone(&log);
            std::thread::spawn(move || {
                let mut mine = Vec::new();
                for i in 0..300u64 {
                    let id = t * 1000 + i;
                    let d = if i % 50 == 0 {
                        Durability::Fsync
                    } else {
                        Durability::Os
                    };
                    let p = if i % 7 == 0 {
                        let a = payload(id);
                        let recs: Vec<(i64, &[u8])> = vec![(id as i64, &a), (id as i64, &a)];
                        let ps = log.append_batch(&recs, d).unwrap();
                        assert_eq!(ps[0].segment, ps[1].segment);
                        ps[0]
                    } else {
                        log.append(id as i64, &payload(id), d).unwrap()
                    };
                    mine.push((p, id));
                }
                mine
            })
        })
        .collect();
    let mut expected: Vec<(Position, u64)> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    expected.sort();
    let got = all(&log);
    let n_batches = 8 * (300 / 7 + 1);
    assert_eq!(got.len(), 8 * 300 + n_batches);
    let firsts: Vec<(Position, u64)> = got
        .iter()
        .filter(|r| expected.binary_search_by(|e| e.0.cmp(&r.position)).is_ok())
        .map(|r| (r.position, r.timestamp_us as u64))
        .collect();
    assert_eq!(firsts, expected);
    for r in &got {
        assert_eq!(r.payload, payload(r.timestamp_us as u64));
    }
    let s = log.stats();
    assert_eq!(s.records_appended, got.len() as u64);
    assert!(s.rolls > 3);
    drop(log);
    let (log, rec) = SegmentLog::open(dir.path(), o).unwrap();
    assert_eq!(rec.records, got.len() as u64);
    assert_eq!(all(&log), got);
}

#[test]
fn concurrent_fsync_appends_all_land_synced() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = SegmentLog::open(dir.path(), opts()).unwrap();
    let log = std::sync::Arc::new(log);
    let threads: Vec<_> = (0..16i64)
        .map(|t| {
            let log = std::sync::Arc::clone(&log);
            std::thread::spawn(move || {
                for i in 0..40 {
                    log.append(t * 100 + i, b"durable", Durability::Fsync)
                        .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let s = log.stats();
    assert_eq!(s.records_appended, 640);
    assert_eq!(all(&log).len(), 640);
    assert!(s.fsyncs >= 1, "{s:?}");
}

/// Appends queued while a write holds the writer's lock go out in one
/// `write` and one `fsync`; the test holds the lock itself, so the
/// grouping does not depend on how the threads are scheduled.
#[test]
fn appends_queued_behind_a_write_share_one_write_and_one_fsync() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = SegmentLog::open(dir.path(), opts()).unwrap();
    let log = std::sync::Arc::new(log);
    let before = log.stats();
    let held = crate::state::lock(&log.inner.active);
    let threads: Vec<_> = (0..16i64)
        .map(|t| {
            let log = std::sync::Arc::clone(&log);
            std::thread::spawn(move || log.append(t, b"durable", Durability::Fsync).unwrap())
        })
        .collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while crate::state::lock(&log.inner.queue).seq < 16 {
        assert!(
            std::time::Instant::now() < deadline,
            "appenders never queued"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    drop(held);
    for t in threads {
        t.join().unwrap();
    }
    let s = log.stats();
    assert_eq!(s.records_appended, 16);
    assert_eq!(s.writes - before.writes, 1, "{s:?}");
    assert_eq!(s.fsyncs - before.fsyncs, 1, "{s:?}");
    assert_eq!(all(&log).len(), 16);
}

#[test]
fn a_sealed_segment_shorter_than_its_index_is_scanned_and_reindexed() {
    let dir = tempfile::tempdir().unwrap();
    let o = Options {
        segment_bytes: 600,
        ..opts()
    };
    let (log, _) = SegmentLog::open(dir.path(), o.clone()).unwrap();
    let ps: Vec<Position> = (0..40u64)
        .map(|i| log.append(i as i64, &payload(i), Durability::Os).unwrap())
        .collect();
    drop(log);
    let first = ps[0].segment;
    let idx = files::path(dir.path(), first, Kind::Idx);
    let old_idx = fs::read(&idx).unwrap();
    let in_first: Vec<&Position> = ps.iter().filter(|p| p.segment == first).collect();
    assert!(in_first.len() > 3);
    // Cut inside the third record of the first (sealed) segment.
    let cut = in_first[2].offset + 5;
    OpenOptions::new()
        .write(true)
        .open(seg_file(dir.path(), first))
        .unwrap()
        .set_len(cut)
        .unwrap();
    let (log, rec) = SegmentLog::open(dir.path(), o).unwrap();
    assert_eq!(rec.cut_bytes, 5);
    assert_eq!(rec.records, 40 - in_first.len() as u64 + 2);
    let segs = log.segments();
    assert_eq!(
        (segs[0].id, segs[0].records, segs[0].sealed),
        (first, 2, true)
    );
    let new_idx = fs::read(&idx).unwrap();
    assert_ne!(new_idx, old_idx, "the stale sidecar was rewritten");
    let ix = crate::index::SegIndex::decode(&new_idx).unwrap();
    assert_eq!((ix.valid_len, ix.records), (in_first[2].offset, 2));
    let got = all(&log);
    assert_eq!(got.len(), 40 - in_first.len() + 2);
}

mod background;
mod compression;
mod full_disk;
mod props;
