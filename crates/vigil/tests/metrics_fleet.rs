//! Fleet mode (`metrics.url`), black-box: two `vigil serve` replicas share
//! one PostgreSQL. Custom metric data split across both add up in a query
//! on either; an alarm that only the fleet's sum breaches notifies a local
//! webhook receiver exactly once per transition, whichever replica
//! evaluates; `kill -9` of the evaluating replica, and the other takes
//! over from the shared state and notifies the next transition, once.
//! Needs `VIGIL_TEST_POSTGRES_URL` (started by `.ci/run`): ignored unless
//! run with `-- --include-ignored`, and then a failure without it.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{Serve, http};
use serde_json::{Value, json};

const NAMESPACE: &str = "Shop";
const ALARM: &str = "Fleet-Orders-High";

fn now_ms() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

fn at(start: Instant) -> String {
    format!("{:5.1}s", start.elapsed().as_secs_f64())
}

fn poll<T>(limit: Duration, what: &str, mut probe: impl FnMut() -> Result<T, String>) -> T {
    let start = Instant::now();
    loop {
        match probe() {
            Ok(value) => return value,
            Err(last) => assert!(
                start.elapsed() < limit,
                "{what} not seen within {limit:?}; last: {last}"
            ),
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// A fresh database on the server of `VIGIL_TEST_POSTGRES_URL`; its URL.
fn fresh_database() -> String {
    let base = match std::env::var("VIGIL_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "VIGIL_TEST_POSTGRES_URL is not set: this test needs a PostgreSQL server \
             (`source .ci/services.sh; start_services` starts one and sets it)"
        ),
    };
    common::fresh_database(&base, "vigil_fleet_bb")
}

// ---- the webhook receiver ------------------------------------------------

/// An HTTP/1.1 server on a thread that answers every request `200` and
/// keeps each POST body.
fn start_webhook() -> (String, Arc<Mutex<Vec<Value>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hooks/fleet", listener.local_addr().unwrap());
    let received = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&received);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let sink = Arc::clone(&sink);
            std::thread::spawn(move || serve_hook(stream, &sink));
        }
    });
    (url, received)
}

fn serve_hook(stream: TcpStream, sink: &Mutex<Vec<Value>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(60)));
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.trim().eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        if request_line.starts_with("POST ") {
            sink.lock()
                .unwrap()
                .push(serde_json::from_slice(&body).unwrap_or(Value::Null));
        }
        let reply = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok";
        if writer.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

// ---- the replicas ----------------------------------------------------------

fn put(addr: &str, metric: &str, timestamp_ms: i64, value: f64) {
    let body = json!({"metrics": [{
        "name": metric,
        "dimensions": {"site": "eu"},
        "unit": "Count",
        "timestamp": timestamp_ms,
        "value": value,
        "resolution": 1,
    }]});
    let (status, reply) = http(
        addr,
        "POST",
        &format!("/api/metrics/{NAMESPACE}"),
        Some(&body.to_string()),
    );
    assert_eq!(
        status, 200,
        "POST /api/metrics/{NAMESPACE} on {addr}: {reply}"
    );
}

fn get_json(addr: &str, path: &str) -> Value {
    let (status, body) = http(addr, "GET", path, None);
    assert_eq!(status, 200, "GET {path} on {addr}: {body}");
    serde_json::from_str(&body).unwrap()
}

fn alarm_state(addr: &str) -> String {
    get_json(addr, &format!("/api/alarms/{ALARM}"))["state_value"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

fn is_leader(addr: &str) -> bool {
    let evaluator = &get_json(addr, "/api/alarms")["evaluator"];
    assert_eq!(evaluator["mode"], "fleet", "{evaluator}");
    evaluator["leader"] == true
}

fn transitions(hooks: &Mutex<Vec<Value>>) -> Vec<(String, String)> {
    hooks
        .lock()
        .unwrap()
        .iter()
        .map(|h| {
            (
                h["old_state"].as_str().unwrap_or_default().to_owned(),
                h["new_state"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// Pushes `per_replica` to each address once a second until the alarm is
/// `state` on `watch`.
fn push_until(addrs: &[&str], watch: &str, per_replica: f64, state: &str, start: Instant) {
    let since = Instant::now();
    let limit = Duration::from_secs(40);
    let mut pushes = 0;
    loop {
        let current = alarm_state(watch);
        if current == state {
            eprintln!(
                "[{}] {ALARM} is {state} after {pushes} rounds of {per_replica} per replica",
                at(start)
            );
            return;
        }
        assert!(
            since.elapsed() < limit,
            "{ALARM} did not reach {state} within {limit:?} (it is {current})"
        );
        for addr in addrs {
            put(addr, "Orders", now_ms(), per_replica);
        }
        pushes += 1;
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[test]
#[ignore = "needs VIGIL_TEST_POSTGRES_URL (started by .ci/run)"]
fn two_replicas_share_figures_and_one_notifies_each_transition_once_even_across_a_kill_9() {
    let start = Instant::now();
    let url = fresh_database();
    let (webhook, hooks) = start_webhook();
    let dir = tempfile::tempdir().unwrap();
    let model = common::workspace().join("crates/vigil-server/assets/demo-fraud.json");
    let config = dir.path().join("vigil.toml");
    // Sum over 10 s > 40: each replica receives 3 a second (~30 a period),
    // so only the fleet's sum breaches.
    std::fs::write(
        &config,
        format!(
            r#"[server]
access_log = false

[[models]]
name = "fraud"
path = {model:?}

[metrics]
url = "{url}"

[[alarms]]
name = "{ALARM}"
namespace = "{NAMESPACE}"
metric_name = "Orders"
dimensions = {{ site = "eu" }}
statistic = "Sum"
period = 10
evaluation_periods = 1
threshold = 40.0
comparison_operator = "GreaterThanThreshold"
treat_missing_data = "notBreaching"
alarm_actions = [{{ type = "webhook", url = "{webhook}" }}]
ok_actions = [{{ type = "webhook", url = "{webhook}" }}]
"#,
            model = model.display().to_string(),
        ),
    )
    .unwrap();
    let replica = |n: &str| {
        let data = dir.path().join(n);
        Serve::start(&[
            "--data-dir".as_ref(),
            data.as_os_str(),
            "--config".as_ref(),
            config.as_os_str(),
        ])
    };
    let a = replica("a");
    let b = replica("b");
    eprintln!(
        "[{}] replicas on {} and {}, webhook at {webhook}",
        at(start),
        a.addr,
        b.addr
    );

    // Traffic split across both: 2 on a, 5 on b, in one minute 10 min ago.
    let minute = (now_ms() - 600_000).div_euclid(60_000) * 60_000;
    put(&a.addr, "Basket", minute + 1_000, 2.0);
    put(&b.addr, "Basket", minute + 30_000, 5.0);
    let query = format!(
        "/api/metrics/{NAMESPACE}/Basket?dim.site=eu&stat=Sum&stat=SampleCount&stat=Maximum&period=60&start={minute}&end={}",
        minute + 60_000
    );
    for addr in [&a.addr, &b.addr] {
        let data = poll(Duration::from_secs(10), "the fleet's sum", || {
            let data = get_json(addr, &query);
            if data["values"]["Sum"] == json!([7.0]) {
                Ok(data)
            } else {
                Err(data.to_string())
            }
        });
        assert_eq!(data["timestamps"], json!([minute]), "{data}");
        assert_eq!(data["values"]["SampleCount"], json!([2.0]), "{data}");
        assert_eq!(data["values"]["Maximum"], json!([5.0]), "{data}");
    }
    let listed = get_json(
        &a.addr,
        &format!("/api/metrics?namespace={NAMESPACE}&name=Basket"),
    );
    assert_eq!(
        listed["series"].as_array().map(Vec::len),
        Some(1),
        "{listed}"
    );
    eprintln!("[{}] both replicas answer the fleet's sum", at(start));

    // No data, notBreaching: OK at the first evaluation, notified once.
    poll(
        Duration::from_secs(25),
        "the initial OK on both",
        || match (alarm_state(&a.addr).as_str(), alarm_state(&b.addr).as_str()) {
            ("OK", "OK") => Ok(()),
            other => Err(format!("{other:?}")),
        },
    );
    let leaders: Vec<bool> = [&a.addr, &b.addr]
        .iter()
        .map(|addr| is_leader(addr))
        .collect();
    assert_eq!(
        leaders.iter().filter(|l| **l).count(),
        1,
        "exactly one replica evaluates: {leaders:?}"
    );
    eprintln!(
        "[{}] {ALARM} is OK; leader: {}",
        at(start),
        if leaders[0] { "a" } else { "b" }
    );

    push_until(&[&a.addr, &b.addr], &a.addr, 3.0, "ALARM", start);
    poll(Duration::from_secs(10), "the ALARM webhook", || {
        let seen = transitions(&hooks);
        if seen.len() >= 2 {
            Ok(())
        } else {
            Err(format!("{seen:?}"))
        }
    });
    assert_eq!(
        transitions(&hooks),
        [
            ("INSUFFICIENT_DATA".to_owned(), "OK".to_owned()),
            ("OK".to_owned(), "ALARM".to_owned())
        ],
        "one webhook per transition so far"
    );

    // kill -9 the evaluating replica; the survivor takes over within two
    // evaluation intervals.
    let (leader, survivor) = if is_leader(&a.addr) { (a, b) } else { (b, a) };
    let survivor_addr = survivor.addr.clone();
    eprintln!("[{}] kill -9 the leader on {}", at(start), leader.addr);
    let killed = Instant::now();
    leader.kill_9();
    // Non-breaching data to the survivor meanwhile (~1 a period).
    loop {
        if is_leader(&survivor_addr) {
            break;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(21),
            "the survivor did not take over within two evaluation intervals"
        );
        put(&survivor_addr, "Orders", now_ms(), 0.1);
        std::thread::sleep(Duration::from_millis(500));
    }
    let takeover = killed.elapsed();
    eprintln!(
        "[{}] the survivor leads after {:.1}s",
        at(start),
        takeover.as_secs_f64()
    );
    push_until(&[&survivor_addr], &survivor_addr, 1.0, "OK", start);
    poll(Duration::from_secs(10), "the OK webhook", || {
        let seen = transitions(&hooks);
        if seen.len() >= 3 {
            Ok(())
        } else {
            Err(format!("{seen:?}"))
        }
    });
    // A slot later nothing more has come.
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(
        transitions(&hooks),
        [
            ("INSUFFICIENT_DATA".to_owned(), "OK".to_owned()),
            ("OK".to_owned(), "ALARM".to_owned()),
            ("ALARM".to_owned(), "OK".to_owned()),
        ],
        "exactly one webhook per transition, none repeated by the new leader"
    );
    let history = get_json(&survivor_addr, &format!("/api/alarms/{ALARM}/history"));
    let updates: Vec<&str> = history["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["item_type"] == "StateUpdate")
        .filter_map(|i| i["summary"].as_str())
        .rev()
        .collect();
    assert_eq!(
        updates,
        [
            "Alarm updated from INSUFFICIENT_DATA to OK",
            "Alarm updated from OK to ALARM",
            "Alarm updated from ALARM to OK",
        ],
        "the survivor's history holds the predecessor's transitions once"
    );
    eprintln!(
        "[{}] done: takeover {:.1}s after kill -9",
        at(start),
        takeover.as_secs_f64()
    );
    survivor.terminate();
}
