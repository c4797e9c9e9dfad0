//! A full disk, for real: a 256 KiB tmpfs.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::{all, opts};
use crate::{Durability, Error, Options, SegmentLog};

/// Unmounts on drop, so a failing test leaves no mount behind.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(dir: &Path) -> Option<Tmpfs> {
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", "size=256k", "tmpfs"])
            .arg(dir)
            .output();
        let why = match out {
            Ok(o) if o.status.success() => return Some(Tmpfs(dir.to_owned())),
            Ok(o) => String::from_utf8_lossy(&o.stderr).trim().to_owned(),
            Err(e) => e.to_string(),
        };
        if std::env::var("CI").as_deref() == Ok("true") {
            panic!("cannot mount a tmpfs for the full-disk test: {why}");
        }
        eprintln!("skipping the full-disk test: cannot mount a tmpfs (needs root): {why}");
        None
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.0).status();
    }
}

#[test]
fn a_full_disk_fails_the_group_keeps_nothing_and_recovers() {
    let dir = tempfile::tempdir().unwrap();
    let Some(_mount) = Tmpfs::mount(dir.path()) else {
        return;
    };
    let path = dir.path().join("log");
    let o = Options {
        segment_bytes: 32 << 10,
        ..opts()
    };
    let (log, _) = SegmentLog::open(&path, o.clone()).unwrap();
    let record = vec![7u8; 1000];
    let mut acked = 0u64;
    let full = loop {
        match log.append(acked as i64, &record, Durability::Os) {
            Ok(_) => acked += 1,
            Err(e) => break e,
        }
        assert!(acked < 1000, "the tmpfs never filled up");
    };
    match &full {
        Error::Full { dir: d } => assert_eq!(d, &path),
        other => panic!("expected a full disk, got {other}"),
    }
    assert!(acked > 100);
    // A batch fails whole, as does a later single append.
    let batch: Vec<(i64, &[u8])> = (0..40).map(|i| (i, &record[..])).collect();
    assert!(matches!(
        log.append_batch(&batch, Durability::Fsync),
        Err(Error::Full { .. })
    ));
    assert!(log.stats().full_errors >= 2);
    // Nothing of the failed appends was kept.
    let got = all(&log);
    assert_eq!(got.len() as u64, acked);
    assert!(
        got.iter()
            .enumerate()
            .all(|(i, r)| r.timestamp_us == i as i64 && r.payload == record)
    );

    // Space comes back: later appends succeed.
    let deleted = log.delete_before(log.end()).unwrap();
    assert!(deleted >= 2);
    let p = log.append(-1, b"after", Durability::Fsync).unwrap();
    assert_eq!(log.read_at(p).unwrap().unwrap().payload, b"after");
    let kept = all(&log);
    drop(log);

    let (log, rec) = SegmentLog::open(&path, o).unwrap();
    assert_eq!(rec.cut_bytes, 0);
    assert_eq!(all(&log), kept);
    drop(log);
}
