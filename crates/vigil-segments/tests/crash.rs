//! Acknowledged ⇒ recorded: a child process appends under load from
//! several threads in `os` mode and prints each acknowledged record's id;
//! the parent `kill -9`s it mid-load, reopens the log and checks that every
//! printed id is there exactly once, intact.

#![allow(clippy::unwrap_used)]

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::ops::ControlFlow;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use vigil_segments::{Compression, Durability, Options, Position, SegmentLog};

const CHILD_ENV: &str = "VIGIL_SEGMENTS_CRASH_CHILD_DIR";

fn options() -> Options {
    Options {
        // Small segments, so the kill lands amid rolls, seals and compression.
        segment_bytes: 256 << 10,
        index_every_bytes: 8 << 10,
        compression: Compression::Lz4,
        ..Options::default()
    }
}

fn payload(id: u64) -> Vec<u8> {
    let n = (id % 300) as usize;
    let mut p = format!("record {id} ").into_bytes();
    p.extend((0..n).map(|k| (id as u8).wrapping_add(k as u8)));
    p
}

/// The child side: appends until killed. Does nothing in a normal run.
#[test]
fn crash_child() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let (log, _) = SegmentLog::open(&dir, options()).unwrap();
    let log = Arc::new(log);
    let next = Arc::new(AtomicU64::new(0));
    let threads: Vec<_> = (0..8)
        .map(|_| {
            let (log, next) = (Arc::clone(&log), Arc::clone(&next));
            std::thread::spawn(move || {
                loop {
                    let id = next.fetch_add(1, Ordering::Relaxed);
                    if let Err(e) = log.append(id as i64, &payload(id), Durability::Os) {
                        eprintln!("child: append failed: {e}");
                        std::process::exit(3);
                    }
                    let mut out = std::io::stdout().lock();
                    writeln!(out, "acked {id}").unwrap();
                    out.flush().unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
}

#[test]
fn kill_9_mid_load_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("log");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, &data)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut acked: Vec<u64> = Vec::new();
    let started = Instant::now();
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        let Some(id) = line.strip_prefix("acked ") else {
            continue;
        };
        acked.push(id.parse().unwrap());
        if acked.len() >= 5000 || started.elapsed() > Duration::from_secs(20) {
            break;
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(
        acked.len() > 1000,
        "child acknowledged only {} records",
        acked.len()
    );

    let (log, recovery) = SegmentLog::open(&data, options()).unwrap();
    let mut seen: HashMap<u64, u32> = HashMap::new();
    let stats = log
        .scan_from(Position::default(), |r| {
            let id = r.timestamp_us as u64;
            assert_eq!(r.payload, payload(id), "record {id} damaged");
            *seen.entry(id).or_default() += 1;
            ControlFlow::Continue(())
        })
        .unwrap();
    for id in &acked {
        assert_eq!(
            seen.get(id),
            Some(&1),
            "acknowledged record {id} missing or duplicated"
        );
    }
    assert!(seen.values().all(|n| *n == 1), "a record stored twice");
    assert_eq!(stats.skipped_records, 0);
    eprintln!(
        "kill -9: {} acknowledged, {} stored, {} segments, {} bytes cut",
        acked.len(),
        seen.len(),
        recovery.segments,
        recovery.cut_bytes
    );
    // The reopened log goes on.
    let p = log.append(-1, b"after", Durability::Fsync).unwrap();
    assert_eq!(log.read_at(p).unwrap().unwrap().payload, b"after");
}
