//! Black-box tests of the SQLite log's journal through the real binary:
//! `kill -9` while the indexer is inside a SQLite transaction loses
//! nothing acknowledged, and a full disk answers 503, loses nothing and
//! recovers when space returns.

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use common::logged::{SCORE, assert_all_logged, load};
use common::{score_body, try_http};

/// `vigil serve` with its diagnostics (at debug level for the store) on a
/// channel, so the test sees the indexer's transactions open and commit.
struct Watched {
    child: Child,
    addr: String,
    diagnostics: Receiver<String>,
}

fn serve_watched(data: &Path, config: &Path) -> Watched {
    let mut child = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data)
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "info,vigil_store=debug")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn vigil serve");
    let (stdout, stderr) = (child.stdout.take(), child.stderr.take());
    let (addr_tx, addr_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout.expect("piped"))
            .lines()
            .map_while(Result::ok)
        {
            if let Ok(value) = serde_json::from_str::<serde_json::Value>(&line)
                && value["msg"] == "listening"
            {
                let _ = addr_tx.send(value["addr"].as_str().unwrap_or_default().to_owned());
            }
        }
    });
    let (tx, diagnostics) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr.expect("piped"))
            .lines()
            .map_while(Result::ok)
        {
            if line.contains("journal batch") && tx.send(line).is_err() {
                return;
            }
        }
    });
    let addr = addr_rx
        .recv_timeout(Duration::from_secs(30))
        .expect("vigil serve printed no listening line within 30 s");
    Watched {
        child,
        addr,
        diagnostics,
    }
}

fn kill_9(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

#[test]
fn kill_9_while_the_indexer_is_mid_transaction_loses_nothing_acknowledged() {
    let data = tempfile::tempdir().expect("tempdir");
    let config = data.path().join("vigil.toml");
    // Few, large transactions: a kill right after one opens lands inside it.
    let model = common::workspace().join("crates/vigil-server/assets/demo-fraud.json");
    std::fs::write(
        &config,
        format!(
            "[[models]]\nname = \"fraud\"\npath = {:?}\n\n\
             [store]\nindex_interval_ms = 400\nmax_batch_records = 1000000\n",
            model.display().to_string()
        ),
    )
    .expect("write config");
    let db = data.path().join("db");
    let mut acked: HashMap<String, f64> = HashMap::new();
    let mut inside = 0;
    for attempt in 0..5 {
        if inside >= 2 {
            break;
        }
        let mut server = serve_watched(&db, &config);
        let stop = Arc::new(AtomicBool::new(false));
        let workers = load(&server.addr, 6, &format!("mid{attempt}"), &stop);
        // Skip the start-up replay's batch, if any: wait for one under load.
        let started = Instant::now();
        let mut opened = false;
        while started.elapsed() < Duration::from_secs(20) {
            match server.diagnostics.recv_timeout(Duration::from_secs(1)) {
                Ok(line)
                    if line.contains("transaction open")
                        && started.elapsed() > Duration::from_millis(500) =>
                {
                    opened = true;
                    break;
                }
                Ok(_) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break,
            }
        }
        kill_9(&mut server.child);
        stop.store(true, Ordering::Relaxed);
        for worker in workers {
            for (id, score, _) in worker.join().expect("worker") {
                assert!(
                    acked.insert(id, score).is_none(),
                    "an id was acknowledged twice"
                );
            }
        }
        assert!(opened, "no indexer transaction opened under load");
        // The kill landed inside the transaction unless it committed first.
        let committed = server
            .diagnostics
            .try_iter()
            .any(|l| l.contains("committed"));
        if !committed {
            inside += 1;
        }
    }
    assert!(inside >= 1, "no kill landed inside an indexer transaction");
    assert!(
        acked.len() >= 200,
        "only {} requests were acknowledged",
        acked.len()
    );
    let restarted = common::Serve::start(&[
        "--data-dir".as_ref(),
        db.as_os_str(),
        "--config".as_ref(),
        config.as_os_str(),
    ]);
    assert_all_logged(&restarted.addr, &acked);
    eprintln!(
        "kill -9 inside {inside} indexer transaction(s): {} acknowledged, all logged exactly once",
        acked.len()
    );
}

/// Mounts a tmpfs of `size` at `dir`; unmounted when dropped. `None` when
/// this is not root (only allowed outside CI).
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &Path, size: &str) -> Option<Tmpfs> {
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status();
        match status {
            Ok(s) if s.success() => Some(Tmpfs(dir.to_owned())),
            other => {
                assert!(
                    std::env::var("CI").as_deref() != Ok("true"),
                    "cannot mount a tmpfs (needs root): {other:?}"
                );
                eprintln!("skipped: cannot mount a tmpfs here (needs root): {other:?}");
                None
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the file system holding `path` to the last few KiB.
fn fill(path: &Path) -> std::fs::File {
    use std::io::Write;
    let mut file = std::fs::File::create(path).expect("create filler");
    let chunk = vec![0xa5u8; 16 << 10];
    while file.write_all(&chunk).is_ok() {}
    let _ = file.sync_all();
    file
}

#[test]
fn a_full_disk_answers_503_loses_nothing_and_recovers() {
    let base = tempfile::tempdir().expect("tempdir");
    let Some(_mount) = Tmpfs::mount(base.path(), "16m") else {
        return;
    };
    let data = base.path().join("data");
    let server = common::Serve::start(&["--data-dir".as_ref(), data.as_os_str()]);
    let mut acked = HashMap::new();
    let mut send = |id: &str, n: u32| {
        let body = score_body(id, 10.0 + f64::from(n) * 0.37);
        let reply = try_http(&server.addr, "POST", SCORE, Some(&body)).expect("answer");
        if reply.status == 200 {
            let value: serde_json::Value = serde_json::from_str(&reply.body).expect("json");
            acked.insert(id.to_owned(), value["score"].as_f64().expect("score"));
        }
        reply
    };
    for n in 0..20 {
        assert_eq!(send(&format!("before-{n}"), n).status, 200);
    }
    let filler_path = base.path().join("filler");
    let filler = fill(&filler_path);
    let mut refused = 0;
    for n in 0..3000 {
        let reply = send(&format!("full-{n}"), n);
        match reply.status {
            200 => {}
            503 => refused += 1,
            other => panic!("a full disk answered {other}: {}", reply.body),
        }
        if refused >= 20 {
            break;
        }
    }
    assert!(refused >= 20, "a full disk never answered 503");
    // Space returns: appends are taken again.
    filler.set_len(0).expect("free the space");
    drop(filler);
    std::fs::remove_file(&filler_path).expect("remove filler");
    let started = Instant::now();
    let mut n = 0;
    loop {
        n += 1;
        if send(&format!("after-{n}"), n).status == 200 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "still refused 15 s after space returned"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    for n in 0..20 {
        assert_eq!(send(&format!("again-{n}"), n).status, 200);
    }
    // Answers taken while the store was failing over sit in the spill queue
    // until the replayer writes them (every second): wait for it to drain.
    let started = Instant::now();
    loop {
        let reply = try_http(&server.addr, "GET", "/api/store/stats", None).expect("stats");
        let stats: serde_json::Value = serde_json::from_str(&reply.body).expect("json");
        if stats["degraded"] == false && stats["spill_bytes"] == 0 {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the spill queue did not drain: {stats}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_all_logged(&server.addr, &acked);
    eprintln!(
        "full disk: {refused} answered 503, {} acknowledged, all logged",
        acked.len()
    );
}

/// A file in the journal's directory that is not the journal's stops the
/// start with an error naming it, rather than being ignored or deleted.
#[test]
fn a_foreign_file_in_the_journal_is_a_start_up_error_naming_it() {
    let data = tempfile::tempdir().expect("tempdir");
    let journal = data.path().join("journal");
    std::fs::create_dir_all(&journal).expect("mkdir");
    let foreign = journal.join("notes.txt");
    std::fs::write(&foreign, "not a segment").expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_vigil"))
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data.path())
        .output()
        .expect("run vigil serve");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success(),
        "started with a foreign file: {stderr}"
    );
    assert!(
        stderr.contains(&foreign.display().to_string()),
        "the error does not name {}: {stderr}",
        foreign.display()
    );
    assert!(foreign.exists(), "the foreign file was removed");
}
