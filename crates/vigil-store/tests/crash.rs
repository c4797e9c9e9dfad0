//! Acknowledged ⇒ recorded, at the library level: a child process appends
//! under load and prints each acknowledged id; the parent `kill -9`s it
//! mid-load, reopens the SQLite file and checks every printed id is there
//! with its exact score, exactly once.

#![allow(clippy::unwrap_used)]

#[allow(dead_code)] // the crash test uses only `read_all`
mod support;

use std::collections::HashMap;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use vigil_store::{AppendOutcome, InferenceLog, InferenceRecord, Store, StoreConfig};

const CHILD_ENV: &str = "VIGIL_STORE_CRASH_CHILD_DIR";

fn record(id: u64) -> InferenceRecord {
    let input = match json!({"amount": id as f64 + 0.25, "country": "DE"}) {
        serde_json::Value::Object(m) => m,
        _ => unreachable!(),
    };
    let mut r = InferenceRecord::new(format!("k-{id}"), id as i64, "fraud", "v1", input);
    r.scores = vec![1.0 / (id as f64 + 3.0)];
    r
}

/// The child side: appends until killed. Does nothing in a normal test run.
#[test]
fn crash_child_appends_until_killed() {
    let Ok(dir) = std::env::var(CHILD_ENV) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let store = Store::open(&StoreConfig::with_data_dir(dir)).await.unwrap();
        let next = Arc::new(AtomicU64::new(0));
        for _ in 0..32 {
            let (store, next) = (Arc::clone(&store), Arc::clone(&next));
            tokio::spawn(async move {
                loop {
                    let id = next.fetch_add(1, Ordering::Relaxed);
                    // Exiting closes stdout, so the parent never waits on a stalled child.
                    match store.append(record(id)).await {
                        Ok(AppendOutcome::Inserted) => {}
                        other => {
                            eprintln!("child: unexpected append result {other:?}");
                            std::process::exit(3);
                        }
                    }
                    let line = format!("acked {id} {}\n", record(id).scores[0].to_bits());
                    std::io::stdout().lock().write_all(line.as_bytes()).unwrap();
                }
            });
        }
        // Runs until the parent kills the process.
        std::future::pending::<()>().await;
    });
}

#[test]
fn kill_9_mid_load_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("vigil-data");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "crash_child_appends_until_killed",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &data)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut acked: HashMap<u64, u64> = HashMap::new();
    let started = Instant::now();
    for line in BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        let mut parts = line.split_whitespace();
        if parts.next() != Some("acked") {
            continue;
        }
        let id: u64 = parts.next().unwrap().parse().unwrap();
        let bits: u64 = parts.next().unwrap().parse().unwrap();
        acked.insert(id, bits);
        if acked.len() >= 20_000 || started.elapsed() > Duration::from_secs(20) {
            break;
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert!(
        acked.len() > 100,
        "child acknowledged only {} records",
        acked.len()
    );

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let store = Store::open(&StoreConfig::with_data_dir(&data))
            .await
            .unwrap();
        let stored = support::read_all(store.as_ref()).await;
        for (id, bits) in &acked {
            let r = stored
                .get(&format!("k-{id}"))
                .unwrap_or_else(|| panic!("acknowledged k-{id} is missing after kill -9"));
            assert_eq!(r.scores[0].to_bits(), *bits);
        }
        assert!(stored.len() >= acked.len());
        eprintln!(
            "kill -9: {} acknowledged, {} stored",
            acked.len(),
            stored.len()
        );
        store.shutdown().await;
    });
}
