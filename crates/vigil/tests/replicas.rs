//! Two `vigil serve` processes sharing one Redis cache: an entry written
//! through one is a hit on the other, and a flush through one empties both.
//! Needs `VIGIL_TEST_REDIS_URL` (started by `.ci/run`): ignored unless run
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

#[test]
#[ignore = "needs VIGIL_TEST_REDIS_URL (started by .ci/run)"]
fn replicas_share_cache_entries_and_flushes_through_redis() {
    let url = match std::env::var("VIGIL_TEST_REDIS_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "VIGIL_TEST_REDIS_URL is not set: this test needs a Redis server \
             (`source .ci/services.sh; start_services` starts one and sets it)"
        ),
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let model = workspace().join("crates/vigil-server/assets/demo-fraud.json");
    let config = dir.path().join("vigil.toml");
    // A version of its own keeps this test's keys apart from other runs.
    let version = format!("replicas-{}", std::process::id());
    std::fs::write(
        &config,
        format!(
            "[server]\naccess_log = false\n\n[[models]]\nname = \"fraud\"\npath = \"{}\"\nversion = \"{version}\"\n\n\
             [cache]\nurl = \"{url}\"\ntimeout_ms = 200\n",
            model.display()
        ),
    )
    .expect("write config");
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
