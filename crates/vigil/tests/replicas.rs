//! Two `vigil serve` processes sharing one Redis cache: an entry written
//! through one is a hit on the other, and a flush through one empties both;
//! a fresh replica (or one whose cache a reload rebuilt) reads and writes
//! the shared entries from its very first request. Needs `VIGIL_TEST_REDIS_URL` (started by `.ci/run`): ignored unless run
//! with `-- --include-ignored`, and then a failure without it.

mod common;

use std::process::Child;
use std::time::{Duration, Instant};

use common::{http, workspace};

struct Replica {
    child: Child,
    addr: String,
    /// Each replica's own inference log directory (one store per directory).
    _data: tempfile::TempDir,
}

impl Replica {
    fn start(config: &std::path::Path) -> Replica {
        let data = tempfile::tempdir().expect("tempdir");
        let args = [
            std::ffi::OsStr::new("--data-dir"),
            data.path().as_os_str(),
            std::ffi::OsStr::new("--config"),
            config.as_os_str(),
        ];
        let (child, line) = common::launch(&args);
        let addr = line["addr"].as_str().unwrap_or_default().to_owned();
        Replica {
            child,
            addr,
            _data: data,
        }
    }

    fn score(&self, amount: u32) -> serde_json::Value {
        let body = format!(
            r#"{{"features": {{"amount": {amount}, "merchant_category": 5, "hour": 3, "card_age_days": 12,
            "tx_last_hour": 4, "distance_from_home_km": 800, "foreign": 1, "new_device": 1}}}}"#
        );
        let (status, text) = http(&self.addr, "POST", "/v1/models/fraud/score", Some(&body));
        assert_eq!(status, 200, "{text}");
        serde_json::from_str(&text).expect("json")
    }

    /// Score until the answer is `cached == want` (connections and the
    /// background write are asynchronous), at most 5 s.
    fn score_until_cached(&self, amount: u32, want: bool) -> serde_json::Value {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let answer = self.score(amount);
            if answer["cached"] == want || Instant::now() > deadline {
                return answer;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Held by each test: a flush deletes every version's keys of the model,
/// so the tests of this file take turns on the shared Redis.
static REDIS: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// `VIGIL_TEST_REDIS_URL`; these tests are ignored unless asked for, and
/// then fail without it.
fn redis_url() -> String {
    match std::env::var("VIGIL_TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "VIGIL_TEST_REDIS_URL is not set: this test needs a Redis server \
             (`source .ci/services.sh; start_services` starts one and sets it)"
        ),
    }
}

/// Writes the replicas' config: the demo model under `version` (a version
/// of its own keeps a test's keys apart from other runs' and tests'), the
/// cache on `url` with `timeout_ms`.
fn write_config(path: &std::path::Path, url: &str, version: &str, timeout_ms: u32) {
    let model = workspace().join("crates/vigil-server/assets/demo-fraud.json");
    std::fs::write(
        path,
        format!(
            "[server]\naccess_log = false\n\n[[models]]\nname = \"fraud\"\npath = \"{}\"\nversion = \"{version}\"\n\n\
             [cache]\nurl = \"{url}\"\ntimeout_ms = {timeout_ms}\n",
            model.display()
        ),
    )
    .expect("write config");
}

/// How many cache keys Redis holds for the demo model at `version`, asked
/// over RESP directly (`KEYS`, fine on a test server), so that counting
/// writes nothing through Vigil.
fn keys_in_redis(url: &str, version: &str) -> usize {
    use std::io::{BufRead, BufReader, Write};
    let rest = url.trim_start_matches("redis://").trim_end_matches('/');
    let (host, db) = match rest.split_once('/') {
        Some((host, db)) => (host, db),
        None => (rest, "0"),
    };
    let host = host.rsplit('@').next().unwrap_or(host);
    let stream = std::net::TcpStream::connect(host).expect("connect to redis");
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut writer = stream.try_clone().expect("clone");
    let mut reader = BufReader::new(stream);
    let command = |parts: &[&str]| {
        let mut out = format!("*{}\r\n", parts.len());
        for part in parts {
            out.push_str(&format!("${}\r\n{part}\r\n", part.len()));
        }
        out
    };
    let pattern = format!("vigil:cache:fraud:{version}:*");
    let mut line = String::new();
    writer
        .write_all(command(&["SELECT", db]).as_bytes())
        .expect("write");
    reader.read_line(&mut line).expect("read");
    assert_eq!(line.trim_end(), "+OK", "SELECT {db}");
    writer
        .write_all(command(&["KEYS", &pattern]).as_bytes())
        .expect("write");
    line.clear();
    reader.read_line(&mut line).expect("read");
    let count = line.trim_end().strip_prefix('*').expect("an array reply");
    count.parse().expect("a count")
}

/// Polls until Redis holds `want` keys for `version` (the writes are in the
/// background), at most 5 s; returns the last count.
fn wait_for_keys(url: &str, version: &str, want: usize) -> usize {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let count = keys_in_redis(url, version);
        if count == want || Instant::now() > deadline {
            return count;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Reload `replica`'s config; panics unless it answers 200.
fn reload(replica: &Replica) {
    let (status, text) = http(&replica.addr, "POST", "/api/admin/reload", None);
    assert_eq!(status, 200, "{text}");
}

/// No warm-up anywhere: each replica's first request after start, and the
/// first after a reload that rebuilt its cache, already goes through Redis.
#[test]
#[ignore = "needs VIGIL_TEST_REDIS_URL (started by .ci/run)"]
fn fresh_and_reloaded_replicas_use_the_shared_cache_from_their_first_request() {
    let url = redis_url();
    let _turn = REDIS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("vigil.toml");
    let version = format!("first-{}", std::process::id());
    write_config(&config, &url, &version, 200);
    assert_eq!(keys_in_redis(&url, &version), 0);

    // A's very first request is a miss, and it is written.
    let a = Replica::start(&config);
    let first_on_a = a.score(950);
    assert_eq!(first_on_a["cached"], false, "{first_on_a}");
    assert_eq!(
        wait_for_keys(&url, &version, 1),
        1,
        "a's first miss was not written"
    );
    // B's very first request hits what A wrote.
    let b = Replica::start(&config);
    let first_on_b = b.score(950);
    assert_eq!(
        first_on_b["cached"], true,
        "b's first request missed: {first_on_b}"
    );
    assert_eq!(first_on_b["score"], first_on_a["score"]);

    // A changed [cache] rebuilds the cache on reload. B's first request
    // after it is a miss that is written...
    write_config(&config, &url, &version, 250);
    reload(&b);
    let after_reload_b = b.score(12);
    assert_eq!(after_reload_b["cached"], false, "{after_reload_b}");
    assert_eq!(
        wait_for_keys(&url, &version, 2),
        2,
        "b's first miss after the reload was not written"
    );
    // ... and A's first request after its reload hits it.
    reload(&a);
    let after_reload_a = a.score(12);
    assert_eq!(
        after_reload_a["cached"], true,
        "a's first request after the reload missed: {after_reload_a}"
    );
    assert_eq!(after_reload_a["score"], after_reload_b["score"]);
}

#[test]
#[ignore = "needs VIGIL_TEST_REDIS_URL (started by .ci/run)"]
fn replicas_share_cache_entries_and_flushes_through_redis() {
    let url = redis_url();
    let _turn = REDIS
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("vigil.toml");
    let version = format!("replicas-{}", std::process::id());
    write_config(&config, &url, &version, 200);
    let (a, b) = (Replica::start(&config), Replica::start(&config));

    // A writes the row with amount 950 (and is connected once it hits it).
    let through_a = a.score_until_cached(950, true);
    assert_eq!(
        through_a["cached"], true,
        "replica a never hit: {through_a}"
    );
    // B warms its connection on another row, so that its first request for
    // 950 can only hit what A wrote.
    let warm = b.score_until_cached(12, true);
    assert_eq!(warm["cached"], true, "replica b never connected: {warm}");
    let on_b = b.score(950);
    assert_eq!(
        on_b["cached"], true,
        "replica b did not hit a's entry: {on_b}"
    );
    assert_eq!(on_b["score"], through_a["score"]);

    let (status, text) = http(&b.addr, "DELETE", "/api/cache?model=fraud", None);
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("\"backend\":\"redis\""), "{text}");
    assert_eq!(
        a.score(950)["cached"],
        false,
        "the flush through b did not reach a"
    );
}
