//! The web console in a real browser: Debian's Chromium driven by
//! Playwright (`playwright-core`, no bundled browser) through
//! `tests/browser/console.mjs`, against the real binary.
//!
//! The test starts `vigil serve` (the demo model, the seed runbook's
//! alarms), sends a known number of scoring requests, some answered 400,
//! waits until the metric API counts them, and has the browser check that
//! the seed dashboard's SuccessCount and ErrorCount widgets show exactly
//! those numbers and that the latency graph has points (no CSP violation,
//! no script error). Then it pushes breaching latency data and watches the
//! alarm widget turn ALARM for both runbook alarms under auto-refresh, runs
//! a log query in the editor and opens an alarm's graph; it lists the
//! traces, checks the service map's nodes and client edge, adds a trace
//! list to a dashboard from the Traces page and opens a trace's waterfall
//! from it. Screenshots go to
//! `target/console-screenshots/` (the CI artifact; the README's are copies).
//!
//! Needs `VIGIL_TEST_BROWSER`: the directory holding `console.mjs` with
//! its `node_modules` installed (`.ci/browser.sh` makes it with `npm ci`),
//! and Chromium at `/usr/bin/chromium` (or `VIGIL_TEST_CHROMIUM`).

mod common;

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{Serve, http, score_body, workspace};

/// Scoring requests answered 200.
const SUCCESSES: usize = 7;
/// Scoring requests answered 400 (a feature that is not a number).
const ERRORS: usize = 3;

fn browser_dir() -> PathBuf {
    let dir = std::env::var_os("VIGIL_TEST_BROWSER").unwrap_or_else(|| {
        panic!(
            "VIGIL_TEST_BROWSER is not set: it names tests/browser with its node_modules \
             installed (npm ci); .ci/run makes it with .ci/browser.sh"
        )
    });
    let dir = PathBuf::from(dir);
    assert!(
        dir.join("node_modules/playwright-core/package.json")
            .is_file(),
        "no playwright-core under {} (run npm ci there)",
        dir.display()
    );
    dir
}

fn screenshots() -> PathBuf {
    let dir = workspace().join("target/console-screenshots");
    std::fs::create_dir_all(&dir).expect("test setup");
    dir
}

fn node(dir: &std::path::Path, addr: &str, phase: &str) {
    let output = Command::new("node")
        .arg(dir.join("console.mjs"))
        .args([addr, &SUCCESSES.to_string(), &ERRORS.to_string()])
        .arg(screenshots())
        .arg(phase)
        .output()
        .expect("run node (Node.js 20 or later)");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "console.mjs {phase} failed:\n{stdout}\n{stderr}"
    );
    eprintln!("{stdout}");
}

/// The sum of `metric`'s 1-minute sums over the last hour.
fn total(addr: &str, metric: &str) -> f64 {
    let (status, body) = http(
        addr,
        "GET",
        &format!(
            "/api/metrics/InferencePipeline/{metric}?stat=Sum&period=60&start={}",
            now_ms() - 3_600_000
        ),
        None,
    );
    assert_eq!(status, 200, "{body}");
    let value: serde_json::Value = serde_json::from_str(&body).expect("json");
    value["values"]["Sum"]
        .as_array()
        .expect("values")
        .iter()
        .filter_map(serde_json::Value::as_f64)
        .sum()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

#[test]
#[ignore = "needs VIGIL_TEST_BROWSER and Chromium (installed by .ci/run)"]
fn the_seed_dashboard_shows_the_traffic_and_the_alarms_fire() {
    let dir = browser_dir();
    let data = tempfile::tempdir().expect("tempdir");
    let server = Serve::start(&["--data-dir".as_ref(), data.path().as_os_str()]);
    let addr = server.addr.clone();
    // Every request traced, so the traces page and the map count them all.
    let (status, body) = http(
        &addr,
        "PUT",
        "/api/traces/sampling-rules/Default",
        Some(r#"{"reservoir": 0, "fixed_rate": 1.0}"#),
    );
    assert_eq!(status, 200, "{body}");
    for i in 0..SUCCESSES {
        let (status, body) = http(
            &addr,
            "POST",
            "/v1/models/fraud/score",
            Some(&score_body(&format!("ok-{i}"), 120.0 + i as f64)),
        );
        assert_eq!(status, 200, "{body}");
    }
    for i in 0..ERRORS {
        let (status, body) = http(
            &addr,
            "POST",
            "/v1/models/fraud/score",
            Some(&format!(
                r#"{{"id": "bad-{i}", "features": {{"amount": "lots"}}}}"#
            )),
        );
        assert_eq!(status, 400, "{body}");
    }
    // The metric store has them once its 1 s tick ran.
    let deadline = Instant::now() + Duration::from_secs(20);
    while (total(&addr, "SuccessCount"), total(&addr, "ErrorCount"))
        != (SUCCESSES as f64, ERRORS as f64)
    {
        assert!(
            Instant::now() < deadline,
            "the metric API counts {} and {}",
            total(&addr, "SuccessCount"),
            total(&addr, "ErrorCount")
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    node(&dir, &addr, "counts");
    node(&dir, &addr, "traces");

    // Breaching data: latencies far above High-Latency-Alarm's 2,000 ms.
    let (status, body) = http(
        &addr,
        "POST",
        "/api/metrics/InferencePipeline",
        Some(
            r#"{"metrics": [{"name": "LatencyMs", "unit": "Milliseconds", "values": [5000, 6000, 7000], "resolution": 1}]}"#,
        ),
    );
    assert!(status == 200 || status == 204, "{status} {body}");
    node(&dir, &addr, "alarm");
    drop(server);

    // The README shows the current screenshots.
    let docs = workspace().join("docs/console");
    if std::env::var_os("VIGIL_UPDATE_SCREENSHOTS").is_some() {
        std::fs::create_dir_all(&docs).expect("docs dir");
        for entry in std::fs::read_dir(screenshots()).expect("screenshots") {
            let path = entry.expect("entry").path();
            std::fs::copy(&path, docs.join(path.file_name().expect("name"))).expect("copy");
        }
    }
}
