//! The background thread: roll by age, retention, and readers racing
//! rolls, retention and compression.

use std::ops::ControlFlow;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::{all, opts, payload};
use crate::{Compression, Durability, Options, Position, SegmentLog};

fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_micros() as i64
}

fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let t = Instant::now();
    while !f() {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "timed out waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn the_active_segment_rolls_by_age_once() {
    let dir = tempfile::tempdir().unwrap();
    let o = Options {
        segment_age: Some(Duration::from_millis(50)),
        ..opts()
    };
    let (log, _) = SegmentLog::open(dir.path(), o).unwrap();
    std::thread::sleep(Duration::from_millis(120));
    assert_eq!(log.stats().rolls, 0, "an empty segment never rolls");
    let p = log.append(1, b"x", Durability::Os).unwrap();
    eventually("the roll", || log.stats().rolls == 1);
    let segs = log.segments();
    assert_eq!(segs.len(), 2);
    assert!(segs[0].sealed && segs[0].id == p.segment);
    std::thread::sleep(Duration::from_millis(150));
    assert_eq!(log.stats().rolls, 1);
    let woke = log.background_wakeups();
    std::thread::sleep(Duration::from_millis(150));
    assert_eq!(log.background_wakeups(), woke, "idle after the roll");
}

#[test]
fn retention_by_bytes_keeps_the_newest_whole_segments() {
    let dir = tempfile::tempdir().unwrap();
    let o = Options {
        segment_bytes: 2048,
        retain_bytes: Some(10_000),
        ..opts()
    };
    let (log, _) = SegmentLog::open(dir.path(), o).unwrap();
    for i in 0..2000u64 {
        log.append(i as i64, &payload(i), Durability::Os).unwrap();
    }
    eventually("retention", || {
        let s = log.stats();
        log.total_bytes() <= 10_000
            && s.segments_deleted + log.segments().len() as u64 == s.rolls + 1
    });
    assert!(log.stats().segments_deleted > 10);
    let got = all(&log);
    let ts: Vec<i64> = got.iter().map(|r| r.timestamp_us).collect();
    let first = ts[0];
    assert_eq!(ts, (first..2000).collect::<Vec<_>>(), "a gap-free suffix");
    assert!(
        log.total_bytes() > 10_000 - 2 * 2048,
        "only whole segments past the limit go: {:?}",
        log.segments()
    );
}

#[test]
fn retention_by_age_drops_sealed_segments_whose_newest_record_is_old() {
    let dir = tempfile::tempdir().unwrap();
    let o = Options {
        retain_age: Some(Duration::from_secs(3600)),
        ..opts()
    };
    let (log, _) = SegmentLog::open(dir.path(), o.clone()).unwrap();
    let old = now_us() - 2 * 3600 * 1_000_000;
    log.append(old, b"old", Durability::Os).unwrap();
    log.roll().unwrap();
    // Newest record 2 s short of expiring: kept until then.
    let soon = now_us() - 3600 * 1_000_000 + 300_000;
    log.append(old, b"old too", Durability::Os).unwrap();
    log.append(soon, b"soon", Durability::Os).unwrap();
    log.roll().unwrap();
    log.append(now_us(), b"new", Durability::Os).unwrap();
    eventually("the old segment's deletion", || log.segments().len() == 2);
    assert_eq!(log.segments()[0].records, 2);
    // The second one expires 0.3 s later, found by a timed wait.
    eventually("the second deletion", || log.segments().len() == 1);
    let got = all(&log);
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].payload, b"new");
    assert_eq!(log.stats().segments_deleted, 2);
}

fn readers_race(compression: Compression) {
    let dir = tempfile::tempdir().unwrap();
    let o = Options {
        segment_bytes: 4096,
        index_every_bytes: 512,
        retain_bytes: Some(24 << 10),
        compression,
        ..opts()
    };
    let (log, _) = SegmentLog::open(dir.path(), o).unwrap();
    let log = Arc::new(log);
    let done = Arc::new(AtomicBool::new(false));
    let readers: Vec<_> = (0..3)
        .map(|k| {
            let (log, done) = (Arc::clone(&log), Arc::clone(&done));
            std::thread::spawn(move || {
                let mut scans = 0u64;
                while !done.load(Ordering::Acquire) {
                    let mut seen: Vec<i64> = Vec::new();
                    let mut check = |r: crate::Record<'_>| {
                        assert_eq!(r.payload, payload(r.timestamp_us as u64), "intact");
                        seen.push(r.timestamp_us);
                        ControlFlow::Continue(())
                    };
                    let stats = if k == 0 {
                        log.scan(0, i64::MAX, &mut check).unwrap()
                    } else {
                        log.scan_from(Position::default(), &mut check).unwrap()
                    };
                    assert_eq!(stats.skipped_records, 0);
                    // Ordered; any gap lies wholly in segments deleted by now.
                    let mut oldest_now = None;
                    log.scan_from(Position::default(), |r| {
                        oldest_now = Some(r.timestamp_us);
                        ControlFlow::Break(())
                    })
                    .unwrap();
                    for w in seen.windows(2) {
                        assert!(w[0] < w[1], "out of order: {w:?}");
                        if w[1] != w[0] + 1 {
                            assert!(
                                oldest_now.is_some_and(|o| w[1] <= o),
                                "gap {w:?} in what exists (oldest {oldest_now:?})"
                            );
                        }
                    }
                    scans += 1;
                }
                scans
            })
        })
        .collect();
    for i in 0..20_000u64 {
        log.append(i as i64, &payload(i), Durability::Os).unwrap();
    }
    done.store(true, Ordering::Release);
    for r in readers {
        assert!(r.join().unwrap() > 0);
    }
    assert!(log.stats().rolls > 50);
    eventually("retention to catch up", || {
        log.stats().segments_deleted > 20
    });
}

#[test]
fn readers_see_ordered_intact_records_during_rolls_and_retention() {
    readers_race(Compression::None);
}

#[test]
fn readers_see_ordered_intact_records_during_compression_swaps() {
    readers_race(Compression::Lz4);
}
