//! The logs pipeline end to end against a real `vigil serve`: access logs
//! ingested under load by several clients, a space-delimited metric filter
//! and a JSON one, their metrics read back with the exact sums, an alarm on
//! a log pattern that fires, and `stats count(*) by bin(1m)` with the exact
//! count of every minute.

mod common;

use std::ffi::OsStr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{Serve, http};
use serde_json::{Value, json};

/// Clients sending at once, batches each, events per batch.
const CLIENTS: usize = 4;
const BATCHES: usize = 10;
const BATCH: usize = 1_000;
/// Events spread over this many whole minutes before the current one.
const MINUTES: i64 = 3;

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// Event `i` of the run: its minute (1..=MINUTES back from `minute0`),
/// status and latency, all fixed by `i` so the test knows every count.
fn event(i: usize, minute0: i64) -> (i64, u16, u64) {
    let back = 1 + (i as i64 % MINUTES);
    let ts = minute0 - back * 60_000 + (i as i64 % 59_000);
    let status = if i.is_multiple_of(17) { 503 } else { 200 };
    let latency_us = 100 + (i as u64 * 37) % 3_000;
    (ts, status, latency_us)
}

fn put(addr: &str, path: &str, body: &Value) -> Value {
    let (status, text) = http(addr, "PUT", path, Some(&body.to_string()));
    assert_eq!(status, 200, "PUT {path}: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

fn get(addr: &str, path: &str) -> Value {
    let (status, text) = http(addr, "GET", path, None);
    assert_eq!(status, 200, "GET {path}: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"))
}

/// The sum of a metric over the test's range (period 60).
fn metric_sum(addr: &str, namespace: &str, name: &str, dims: &str, start: i64) -> f64 {
    let body = get(
        addr,
        &format!("/api/metrics/{namespace}/{name}?stat=Sum&period=60&start={start}{dims}"),
    );
    body["values"]["Sum"]
        .as_array()
        .map(|v| v.iter().filter_map(Value::as_f64).sum())
        .unwrap_or(0.0)
}

fn wait_for<T>(limit: Duration, what: &str, mut f: impl FnMut() -> Result<T, String>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        match f() {
            Ok(v) => return v,
            Err(last) if Instant::now() < deadline => {
                let _ = last;
                std::thread::sleep(Duration::from_millis(250));
            }
            Err(last) => panic!("{what} never happened within {limit:?}; last: {last}"),
        }
    }
}

#[test]
fn log_patterns_become_metrics_an_alarm_and_exact_minute_counts() {
    let data = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let args = [OsStr::new("--data-dir"), data.path().as_os_str()];
    let server = Serve::start(&args);
    let addr = server.addr.clone();

    for group in ["%2Fapp%2Fnginx", "%2Fapp%2Fapi"] {
        put(&addr, &format!("/api/logs/{group}"), &json!({}));
    }
    // A space-delimited filter on the web servers' common-log lines ...
    put(
        &addr,
        "/api/logs/%2Fapp%2Fnginx/metric-filters/errors-5xx",
        &json!({"pattern": "[ip, user, ..., status = 5*, bytes]",
            "metric": {"name": "Errors5xx", "namespace": "App", "value": "1", "default": 0, "unit": "Count"}}),
    );
    put(
        &addr,
        "/api/logs/%2Fapp%2Fnginx/metric-filters/bytes-by-status",
        &json!({"pattern": "[ip, user, ..., status, bytes]",
            "metric": {"name": "Bytes", "namespace": "App", "value": "$bytes",
                "dimensions": {"Status": "$status"}, "unit": "Bytes"}}),
    );
    // ... and a JSON one on the API's structured lines.
    put(
        &addr,
        "/api/logs/%2Fapp%2Fapi/metric-filters/slow",
        &json!({"pattern": "{ $.latency_us > 2000 }",
            "metric": {"name": "SlowRequests", "namespace": "App", "value": "1"}}),
    );
    let listed = get(&addr, "/api/logs/%2Fapp%2Fnginx/metric-filters");
    assert_eq!(
        listed["metric_filters"].as_array().map(Vec::len),
        Some(2),
        "{listed}"
    );

    // An alarm on the log pattern's metric.
    put(
        &addr,
        "/api/alarms/nginx-5xx",
        &json!({"namespace": "App", "metric_name": "Errors5xx", "statistic": "Sum",
            "period": 60, "evaluation_periods": MINUTES + 1, "datapoints_to_alarm": 1,
            "threshold": 10.0, "comparison_operator": "GreaterThanThreshold",
            "treat_missing_data": "notBreaching"}),
    );

    // Load: CLIENTS clients at once, each BATCHES batches of BATCH events,
    // to both groups, timestamps spread over the last MINUTES minutes.
    let minute0 = now_ms() / 60_000 * 60_000;
    let started = Instant::now();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|c| {
            let addr = addr.clone();
            std::thread::spawn(move || {
                for b in 0..BATCHES {
                    let first = (c * BATCHES + b) * BATCH;
                    let (mut nginx, mut api) = (Vec::new(), Vec::new());
                    for i in first..first + BATCH {
                        let (ts, status, latency_us) = event(i, minute0);
                        nginx.push(json!({"timestamp": ts, "message": format!(
                            "10.0.{}.{} - - [02/Dec/2026:01:00:00 +0000] \"POST /pay HTTP/1.1\" {status} {}",
                            i % 200, i % 250, 100 + i % 400)}));
                        api.push(json!({"timestamp": ts, "message": json!({
                            "path": "/v1/pay", "status": status, "latency_us": latency_us,
                            "request_id": format!("r-{i}")}).to_string()}));
                    }
                    for (group, events) in [("%2Fapp%2Fnginx", nginx), ("%2Fapp%2Fapi", api)] {
                        let body = json!({ "events": events }).to_string();
                        let (status, text) =
                            http(&addr, "POST", &format!("/api/logs/{group}/client-{c}"), Some(&body));
                        assert_eq!(status, 200, "{text}");
                        let answer: Value = serde_json::from_str(&text).unwrap_or_default();
                        assert_eq!(answer["accepted"], BATCH, "{text}");
                    }
                }
            })
        })
        .collect();
    for client in clients {
        client.join().unwrap_or_else(|_| panic!("a client failed"));
    }
    let total = CLIENTS * BATCHES * BATCH;
    eprintln!(
        "{} events in {:.2} s ({:.0} events/s, both groups)",
        2 * total,
        started.elapsed().as_secs_f64(),
        2.0 * total as f64 / started.elapsed().as_secs_f64()
    );

    // What the test expects, from the events themselves.
    let mut per_minute = std::collections::BTreeMap::<i64, u64>::new();
    let (mut errors, mut slow, mut bytes_503) = (0u64, 0u64, 0u64);
    for i in 0..total {
        let (ts, status, latency_us) = event(i, minute0);
        *per_minute.entry(ts / 60_000 * 60_000).or_default() += 1;
        if status == 503 {
            errors += 1;
            bytes_503 += 100 + (i as u64 % 400);
        }
        if latency_us > 2000 {
            slow += 1;
        }
    }

    // The metrics appear with the exact sums (flushed every few seconds).
    let start = minute0 - (MINUTES + 1) * 60_000;
    wait_for(Duration::from_secs(30), "the filters' metrics", || {
        let got = (
            metric_sum(&addr, "App", "Errors5xx", "", start),
            metric_sum(&addr, "App", "SlowRequests", "", start),
            metric_sum(&addr, "App", "Bytes", "&dim.Status=503", start),
        );
        if got == (errors as f64, slow as f64, bytes_503 as f64) {
            Ok(())
        } else {
            Err(format!("{got:?}, want ({errors}, {slow}, {bytes_503})"))
        }
    });

    // The alarm on the pattern fires. A 60 s alarm is evaluated once a
    // period: if its first evaluation came before the filters' flush, the
    // next is up to a minute later (a loaded CI machine hits that).
    wait_for(Duration::from_secs(100), "the alarm's ALARM", || {
        let alarm = get(&addr, "/api/alarms/nginx-5xx");
        match alarm["state_value"].as_str() {
            Some("ALARM") => Ok(()),
            other => Err(format!("{other:?}: {alarm}")),
        }
    });

    // `stats count(*) by bin(1m)` counts every minute exactly.
    let query = json!({"groups": ["/app/api"], "start": start, "end": minute0,
        "query": "stats count(*) by bin(1m)"});
    let (status, text) = http(&addr, "POST", "/api/logs/query", Some(&query.to_string()));
    assert_eq!(status, 200, "{text}");
    let answer: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    let mut got = std::collections::BTreeMap::<i64, u64>::new();
    for row in answer["rows"].as_array().cloned().unwrap_or_default() {
        let bin = row["bin(1m)"].as_str().unwrap_or_default();
        let ts = time_ms(bin);
        got.insert(ts, row["count(*)"].as_u64().unwrap_or(0));
    }
    assert_eq!(got, per_minute, "{text}");
    assert_eq!(answer["scanned"], total, "{text}");

    // A JSON filter query agrees with the metric.
    let query = json!({"groups": ["/app/api"], "start": start, "end": minute0,
        "query": "filter latency_us > 2000 | stats count(*) as slow"});
    let (status, text) = http(&addr, "POST", "/api/logs/query", Some(&query.to_string()));
    assert_eq!(status, 200, "{text}");
    let answer: Value = serde_json::from_str(&text).unwrap_or_default();
    assert_eq!(answer["rows"][0]["slow"], slow, "{text}");
}

/// RFC 3339 (as `bin(...)` columns hold it) to Unix ms.
fn time_ms(text: &str) -> i64 {
    let t = time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|e| panic!("{e}: {text}"));
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}
