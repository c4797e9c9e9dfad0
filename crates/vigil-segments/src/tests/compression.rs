//! Compressed sealed segments.

use std::fs;
use std::ops::ControlFlow;
use std::time::{Duration, Instant};

use super::{all, opts};
use crate::files::{self, Kind};
use crate::{Compression, Durability, Options, Position, SegmentLog};

fn lz4_opts() -> Options {
    Options {
        segment_bytes: 64 << 10,
        index_every_bytes: 4 << 10,
        compression: Compression::Lz4,
        ..opts()
    }
}

/// A log-like payload: compressible, but not trivially.
fn line(i: u64) -> Vec<u8> {
    format!(
        "{{\"ts\":{i},\"level\":\"info\",\"model\":\"fraud-v{}\",\"latency_us\":{},\"msg\":\"scored request {}\"}}",
        i % 3,
        (i * 7919) % 10_000,
        i
    )
    .into_bytes()
}

fn wait_compressed(log: &SegmentLog, n: usize) {
    let t = Instant::now();
    while log.segments().iter().filter(|s| s.compressed).count() < n {
        assert!(
            t.elapsed() < Duration::from_secs(20),
            "{:?}",
            log.segments()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn sealed_segments_are_compressed_and_still_read() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = SegmentLog::open(dir.path(), lz4_opts()).unwrap();
    let mut positions = Vec::new();
    for i in 0..5000u64 {
        positions.push(log.append(i as i64, &line(i), Durability::Os).unwrap());
    }
    let sealed = log.segments().len() - 1;
    assert!(sealed >= 3);
    wait_compressed(&log, sealed);
    let segs = log.segments();
    for s in &segs[..sealed] {
        assert!(s.compressed && s.sealed);
        let raw = files::path(dir.path(), s.id, Kind::Seg);
        assert!(!raw.exists(), "{raw:?} left behind");
        // The size on disk is the compressed file's, well under the raw size.
        assert!(s.bytes < 40 << 10, "{s:?}");
    }
    let got = all(&log);
    assert_eq!(got.len(), 5000);
    for (i, r) in got.iter().enumerate() {
        assert_eq!(r.payload, line(i as u64));
        assert_eq!(r.position, positions[i]);
    }
    for &i in &[0usize, 1, 777, 2500, 4999] {
        let r = log.read_at(positions[i]).unwrap().unwrap();
        assert_eq!(r.payload, line(i as u64));
    }
    let bad = Position {
        segment: positions[10].segment,
        offset: positions[10].offset + 3,
    };
    assert_eq!(log.read_at(bad).unwrap(), None);

    let mut ts = Vec::new();
    let stats = log
        .scan(1000, 1100, |r| {
            ts.push(r.timestamp_us);
            ControlFlow::Continue(())
        })
        .unwrap();
    assert_eq!(ts, (1000..1100).collect::<Vec<_>>());
    assert!(stats.segments_opened <= 2);
    // A scan from the middle of a compressed segment starts at the record.
    let mut first = None;
    log.scan_from(positions[1234], |r| {
        first = Some(r.timestamp_us);
        ControlFlow::Break(())
    })
    .unwrap();
    assert_eq!(first, Some(1234));
    drop(log);

    let (log, rec) = SegmentLog::open(dir.path(), lz4_opts()).unwrap();
    assert_eq!(rec.records, 5000);
    assert_eq!(all(&log), got);
    // Reopened without compression, compressed segments still read.
    drop(log);
    let (log, _) = SegmentLog::open(dir.path(), opts()).unwrap();
    assert_eq!(all(&log), got);
}

#[test]
fn a_damaged_footer_is_rebuilt_and_a_leftover_raw_copy_removed() {
    let dir = tempfile::tempdir().unwrap();
    let (log, _) = SegmentLog::open(dir.path(), lz4_opts()).unwrap();
    for i in 0..3000u64 {
        log.append(i as i64, &line(i), Durability::Os).unwrap();
    }
    let sealed = log.segments().len() - 1;
    wait_compressed(&log, sealed);
    let got = all(&log);
    let first = log.segments()[0].id;
    drop(log);

    // A crash between the rename and the removal of the raw file.
    let lz4 = files::path(dir.path(), first, Kind::Lz4);
    let raw = files::path(dir.path(), first, Kind::Seg);
    fs::write(&raw, b"stale raw copy").unwrap();
    let (log, _) = SegmentLog::open(dir.path(), lz4_opts()).unwrap();
    assert!(!raw.exists());
    assert_eq!(all(&log), got);
    drop(log);

    // A torn footer: the blocks are walked again, nothing is lost.
    let len = fs::metadata(&lz4).unwrap().len();
    let f = fs::OpenOptions::new().write(true).open(&lz4).unwrap();
    f.set_len(len - 5).unwrap();
    drop(f);
    let (log, rec) = SegmentLog::open(dir.path(), lz4_opts()).unwrap();
    assert_eq!(rec.records, got.len() as u64);
    assert_eq!(all(&log), got);
    let mut n = 0;
    log.scan(10, 20, |_| {
        n += 1;
        ControlFlow::Continue(())
    })
    .unwrap();
    assert_eq!(n, 10);
}
