//! The alarms issue's "done means", black-box: the real `vigil serve`
//! evaluates an alarm on custom metrics with 10 s periods, goes OK → ALARM
//! → OK, and a local webhook receiver, a real Prometheus Alertmanager and a
//! real SMTP server (aiosmtpd) each get both notifications, once.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::{Serve, http};
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

// A slash, as in the cloud's namespaces: `%2F` in the URL path.
const NAMESPACE: &str = "Vigil/E2E";
const METRIC: &str = "QueueDepth";
const SECRET: &str = "e2e-webhook-secret";
const RECIPIENT: &str = "ops@example.com";

fn env(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!(
            "{var} is not set: run this test through .ci/run, or start the peers as \
             .ci/services.sh does and export VIGIL_TEST_ALERTMANAGER_URL and VIGIL_TEST_PYTHON"
        )
    })
}

fn now_ms() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

/// Seconds since `start`, for the progress lines.
fn at(start: Instant) -> String {
    format!("{:5.1}s", start.elapsed().as_secs_f64())
}

/// Polls `probe` every 250 ms until it returns `Ok`, or panics after
/// `limit` with `what` and the last `Err` (what it saw instead).
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

// ---- the webhook receiver ------------------------------------------------

/// One POST the receiver got.
#[derive(Debug, Clone)]
struct Hook {
    signature: Option<String>,
    body: Vec<u8>,
}

/// An HTTP/1.1 server on a thread that answers every request `200` and
/// keeps each request's body and `X-Vigil-Signature` header.
fn start_webhook() -> (String, Arc<Mutex<Vec<Hook>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hooks/vigil", listener.local_addr().unwrap());
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

/// Reads requests from one connection (the notifier may keep it alive)
/// until the peer closes it.
fn serve_hook(stream: TcpStream, sink: &Mutex<Vec<Hook>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    loop {
        let mut request_line = String::new();
        if reader.read_line(&mut request_line).unwrap_or(0) == 0 {
            return;
        }
        let mut length = 0usize;
        let mut chunked = false;
        let mut signature = None;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            let Some((name, value)) = line.split_once(':') else {
                continue;
            };
            let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
            match name.as_str() {
                "content-length" => length = value.parse().unwrap(),
                "transfer-encoding" => chunked = value.eq_ignore_ascii_case("chunked"),
                "x-vigil-signature" => signature = Some(value.to_owned()),
                _ => {}
            }
        }
        let body = if chunked {
            read_chunked(&mut reader)
        } else {
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            body
        };
        if request_line.starts_with("POST ") {
            sink.lock().unwrap().push(Hook { signature, body });
        }
        let reply = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok";
        if writer.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

fn read_chunked(reader: &mut impl BufRead) -> Vec<u8> {
    let mut body = Vec::new();
    loop {
        let mut size = String::new();
        reader.read_line(&mut size).unwrap();
        let size = usize::from_str_radix(size.trim(), 16).unwrap();
        let mut chunk = vec![0; size + 2];
        reader.read_exact(&mut chunk).unwrap();
        if size == 0 {
            return body;
        }
        body.extend_from_slice(&chunk[..size]);
    }
}

/// `sha256=<hex HMAC-SHA256(secret, body)>`, computed here independently of
/// the notifier's code.
fn expected_signature(body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

// ---- the SMTP server -----------------------------------------------------

/// The handler aiosmtpd loads with `-c vigil_sink.Sink <dir>`: each message
/// becomes `<dir>/<n>.json` with the envelope and the parsed headers.
const SINK: &str = r#"
import email, email.policy, json, os

class Sink:
    def __init__(self, out_dir):
        self.out_dir = out_dir
        self.count = 0

    @classmethod
    def from_cli(cls, parser, *args):
        if len(args) != 1:
            parser.error("vigil_sink.Sink takes one argument, the output directory")
        return cls(args[0])

    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.original_content, policy=email.policy.default)
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "to": str(msg["To"]),
            "subject": str(msg["Subject"]),
            "body": msg.get_content(),
        }
        self.count += 1
        tmp = os.path.join(self.out_dir, "%04d.tmp" % self.count)
        with open(tmp, "w") as f:
            json.dump(record, f)
        os.rename(tmp, os.path.join(self.out_dir, "%04d.json" % self.count))
        return "250 OK"
"#;

struct Smtpd(Child);

impl Drop for Smtpd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_smtpd(python: &str, dir: &Path, out: &Path) -> (Smtpd, u16) {
    std::fs::write(dir.join("vigil_sink.py"), SINK).unwrap();
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let child = Command::new(python)
        .args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
        .args(["-c", "vigil_sink.Sink"])
        .arg(out)
        .env("PYTHONPATH", dir)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {python} -m aiosmtpd: {e}"));
    let mut server = Smtpd(child);
    let start = Instant::now();
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if let Some(status) = server.0.try_wait().unwrap() {
            panic!("aiosmtpd exited with {status}; is aiosmtpd installed in {python}?");
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "aiosmtpd not listening after 15 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    (server, port)
}

fn mails(out: &Path) -> Vec<Value> {
    let mut files: Vec<_> = std::fs::read_dir(out)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
        .iter()
        .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
        .collect()
}

// ---- Alertmanager and Vigil ----------------------------------------------

/// The alerts Alertmanager lists (active ones, by default) named `name`.
fn alerts_named(alertmanager: &str, name: &str) -> Vec<Value> {
    let (status, body) = http(alertmanager, "GET", "/api/v2/alerts", None);
    assert_eq!(status, 200, "alertmanager GET /api/v2/alerts: {body}");
    let alerts: Vec<Value> = serde_json::from_str(&body).unwrap();
    alerts
        .into_iter()
        .filter(|a| a["labels"]["alertname"] == name)
        .collect()
}

fn alarm_state(addr: &str, name: &str) -> String {
    let (status, body) = http(addr, "GET", &format!("/api/alarms/{name}"), None);
    assert_eq!(status, 200, "GET /api/alarms/{name}: {body}");
    let alarm: Value = serde_json::from_str(&body).unwrap();
    alarm["state_value"].as_str().unwrap_or_default().to_owned()
}

fn history(addr: &str, name: &str) -> Vec<Value> {
    let (status, body) = http(addr, "GET", &format!("/api/alarms/{name}/history"), None);
    assert_eq!(status, 200, "GET /api/alarms/{name}/history: {body}");
    let history: Value = serde_json::from_str(&body).unwrap();
    history["items"].as_array().cloned().unwrap_or_default()
}

fn put_value(addr: &str, value: f64) {
    let body = json!({"metrics": [{
        "name": METRIC,
        "dimensions": {"Queue": "scoring"},
        "unit": "Count",
        "timestamp": now_ms(),
        "value": value,
        "resolution": 1,
    }]});
    let (status, reply) = http(
        addr,
        "POST",
        &format!("/api/metrics/{}", NAMESPACE.replace('/', "%2F")),
        Some(&body.to_string()),
    );
    assert_eq!(status, 200, "POST /api/metrics/{NAMESPACE}: {reply}");
    let reply: Value = serde_json::from_str(&reply).unwrap();
    assert_eq!(reply["accepted"], 1, "{reply}");
}

/// Pushes `value` once a second until the alarm is in `state`; returns the
/// number of pushes.
fn push_until(addr: &str, name: &str, value: f64, state: &str, start: Instant) -> usize {
    let mut pushes = 0;
    let limit = Duration::from_secs(40);
    let since = Instant::now();
    loop {
        let current = alarm_state(addr, name);
        if current == state {
            eprintln!(
                "[{}] {name} is {state} after {pushes} pushes of {value}",
                at(start)
            );
            return pushes;
        }
        assert!(
            since.elapsed() < limit,
            "the alarm did not reach {state} within {limit:?} of pushing {value} (it is {current})"
        );
        put_value(addr, value);
        pushes += 1;
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[test]
#[ignore = "needs VIGIL_TEST_ALERTMANAGER_URL and VIGIL_TEST_PYTHON (started by .ci/run)"]
fn alarm_goes_ok_alarm_ok_and_every_target_gets_both_notifications() {
    let alertmanager_url = env("VIGIL_TEST_ALERTMANAGER_URL");
    let python = env("VIGIL_TEST_PYTHON");
    let alertmanager = alertmanager_url
        .trim_end_matches('/')
        .trim_start_matches("http://")
        .to_owned();
    let start = Instant::now();
    // Alertmanager is shared across tests and runs: a name no run used.
    let name = format!("vigil-e2e-{}-{}", std::process::id(), now_ms());

    let dir = tempfile::tempdir().unwrap();
    let mail_dir = dir.path().join("mail");
    std::fs::create_dir(&mail_dir).unwrap();
    let (_smtpd, smtp_port) = start_smtpd(&python, dir.path(), &mail_dir);
    let (webhook_url, hooks) = start_webhook();
    eprintln!(
        "[{}] aiosmtpd on 127.0.0.1:{smtp_port}, webhook at {webhook_url}, alertmanager at {alertmanager_url}",
        at(start)
    );

    // The alarm starts from the config file without actions (a new alarm's
    // INSUFFICIENT_DATA → OK would otherwise run the OK actions too); the
    // API then adds them, keeping the state.
    let model = common::workspace().join("crates/vigil-server/assets/demo-fraud.json");
    let config = dir.path().join("vigil.toml");
    std::fs::write(
        &config,
        format!(
            r#"[[models]]
name = "fraud"
path = {model:?}

[[alarms]]
name = "{name}"
description = "e2e: scoring queue too deep"
namespace = "{NAMESPACE}"
metric_name = "{METRIC}"
dimensions = {{ Queue = "scoring" }}
statistic = "Maximum"
period = 10
evaluation_periods = 1
threshold = 5.0
comparison_operator = "GreaterThanThreshold"
treat_missing_data = "notBreaching"

[notify.smtp]
host = "127.0.0.1"
port = {smtp_port}
tls = "none"
from = "Vigil <alarms@vigil.test>"

[notify.alertmanager]
severity = "page"
"#,
            model = model.display().to_string(),
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let server = Serve::start(&[
        "--data-dir".as_ref(),
        data.as_os_str(),
        "--config".as_ref(),
        config.as_os_str(),
    ]);
    let addr = server.addr.clone();
    eprintln!("[{}] vigil serve on {addr}", at(start));

    // No data and notBreaching: OK at the first evaluation (the first tick
    // after start-up).
    poll(
        Duration::from_secs(15),
        "the initial OK",
        || match alarm_state(&addr, &name).as_str() {
            "OK" => Ok(()),
            other => Err(other.to_owned()),
        },
    );
    eprintln!("[{}] {name} is OK (no data)", at(start));

    let targets = json!([
        {"type": "webhook", "url": webhook_url, "secret": SECRET},
        {"type": "alertmanager", "url": alertmanager_url},
        {"type": "email", "to": [RECIPIENT]},
    ]);
    let alarm = json!({
        "description": "e2e: scoring queue too deep",
        "namespace": NAMESPACE,
        "metric_name": METRIC,
        "dimensions": {"Queue": "scoring"},
        "statistic": "Maximum",
        "period": 10,
        "evaluation_periods": 1,
        "datapoints_to_alarm": 1,
        "threshold": 5.0,
        "comparison_operator": "GreaterThanThreshold",
        "treat_missing_data": "notBreaching",
        "alarm_actions": targets,
        "ok_actions": targets,
    });
    let (status, body) = http(
        &addr,
        "PUT",
        &format!("/api/alarms/{name}"),
        Some(&alarm.to_string()),
    );
    assert_eq!(status, 200, "PUT /api/alarms/{name}: {body}");
    let stored: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        stored["state_value"], "OK",
        "an update keeps the state: {stored}"
    );

    // Breach: 50 > 5 in every period until a completed one is evaluated.
    let became_alarm = Instant::now();
    push_until(&addr, &name, 50.0, "ALARM", start);
    let to_alarm = became_alarm.elapsed();

    // While ALARM, Alertmanager shows the alert firing.
    let firing = poll(
        Duration::from_secs(20),
        "the firing alert in alertmanager",
        || {
            let alerts = alerts_named(&alertmanager, &name);
            if alerts.len() == 1 && alerts[0]["status"]["state"] == "active" {
                Ok(alerts)
            } else {
                Err(format!("{alerts:?}"))
            }
        },
    );
    eprintln!("[{}] alertmanager lists {name} active", at(start));
    let alert = &firing[0];
    assert_eq!(alert["labels"]["namespace"], NAMESPACE);
    assert_eq!(alert["labels"]["metric_name"], METRIC);
    assert_eq!(alert["labels"]["Queue"], "scoring");
    assert_eq!(alert["labels"]["severity"], "page");
    assert!(
        alert["annotations"]["summary"]
            .as_str()
            .is_some_and(|s| s.starts_with("Threshold Crossed")),
        "{alert}"
    );

    // Recover: 1 is not breaching; the period that held the 50s may still
    // be evaluated once more, the next one has only 1s.
    let became_ok = Instant::now();
    push_until(&addr, &name, 1.0, "OK", start);
    let to_ok = became_ok.elapsed();

    // Alertmanager: the OK notification resolves the alert, which drops out
    // of the active list.
    poll(
        Duration::from_secs(20),
        "the alert resolved in alertmanager",
        || {
            let alerts = alerts_named(&alertmanager, &name);
            if alerts.is_empty() || alerts.iter().all(|a| a["status"]["state"] != "active") {
                Ok(())
            } else {
                Err(format!("{alerts:?}"))
            }
        },
    );
    eprintln!("[{}] alertmanager no longer lists {name} active", at(start));

    // Every delivery is in the history as a successful Action: 3 targets ×
    // 2 transitions.
    let actions = poll(
        Duration::from_secs(20),
        "6 Action items in the history",
        || {
            let actions: Vec<Value> = history(&addr, &name)
                .into_iter()
                .filter(|i| i["item_type"] == "Action")
                .collect();
            if actions.len() >= 6 {
                Ok(actions)
            } else {
                Err(format!("{actions:?}"))
            }
        },
    );
    eprintln!("[{}] history has {} Action items", at(start), actions.len());
    assert_eq!(actions.len(), 6, "{actions:#?}");
    for state in ["ALARM", "OK"] {
        let mut resources: Vec<String> = actions
            .iter()
            .filter(|a| a["data"]["stateValue"] == state)
            .map(|a| {
                assert_eq!(a["data"]["actionState"], "Succeeded", "{a}");
                a["data"]["notificationResource"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .collect();
        resources.sort();
        let mut expected = vec![
            format!("alertmanager {alertmanager_url}"),
            format!("email {RECIPIENT}"),
            format!("webhook {webhook_url}"),
        ];
        expected.sort();
        assert_eq!(resources, expected, "{state} actions: {actions:#?}");
    }
    let transitions: Vec<String> = history(&addr, &name)
        .iter()
        .filter(|i| i["item_type"] == "StateUpdate")
        .map(|i| i["summary"].as_str().unwrap_or_default().to_owned())
        .rev()
        .collect();
    assert_eq!(
        transitions,
        [
            "Alarm updated from INSUFFICIENT_DATA to OK",
            "Alarm updated from OK to ALARM",
            "Alarm updated from ALARM to OK",
        ],
        "the state updates, oldest first"
    );

    // The webhook: one signed body per transition.
    let hooks = hooks.lock().unwrap().clone();
    assert_eq!(hooks.len(), 2, "webhook bodies: {hooks:?}");
    let bodies: Vec<Value> = hooks
        .iter()
        .map(|h| {
            assert_eq!(
                h.signature.as_deref(),
                Some(expected_signature(&h.body).as_str()),
                "the X-Vigil-Signature of {}",
                String::from_utf8_lossy(&h.body)
            );
            serde_json::from_slice(&h.body).unwrap()
        })
        .collect();
    for (body, (old, new)) in bodies.iter().zip([("OK", "ALARM"), ("ALARM", "OK")]) {
        assert_eq!(body["alarm_name"], name.as_str(), "{body}");
        assert_eq!(body["old_state"], old, "{body}");
        assert_eq!(body["new_state"], new, "{body}");
        assert_eq!(body["namespace"], NAMESPACE, "{body}");
        assert_eq!(body["metric_name"], METRIC, "{body}");
        assert_eq!(body["dimensions"], json!({"Queue": "scoring"}), "{body}");
        assert_eq!(body["alarm_description"], "e2e: scoring queue too deep");
        assert!(
            body["reason"]
                .as_str()
                .is_some_and(|r| r.starts_with("Threshold Crossed")),
            "{body}"
        );
    }
    assert!(
        bodies[0]["reason"]
            .as_str()
            .unwrap()
            .contains("greater than the threshold (5.0)"),
        "{}",
        bodies[0]
    );

    // The SMTP server: one mail per transition, to the recipient.
    let mails = mails(&mail_dir);
    assert_eq!(mails.len(), 2, "mails: {mails:#?}");
    for (mail, state) in mails.iter().zip(["ALARM", "OK"]) {
        assert_eq!(mail["rcpt_tos"], json!([RECIPIENT]), "{mail}");
        assert_eq!(mail["mail_from"], "alarms@vigil.test", "{mail}");
        assert_eq!(
            mail["subject"],
            format!("{state}: \"{name}\" in Vigil"),
            "{mail}"
        );
    }
    assert!(
        mails[0]["body"].as_str().unwrap().contains("OK -> ALARM"),
        "{}",
        mails[0]
    );
    assert!(
        mails[1]["body"].as_str().unwrap().contains("ALARM -> OK"),
        "{}",
        mails[1]
    );

    eprintln!(
        "[{}] done: OK → ALARM took {:.1}s of pushing, ALARM → OK {:.1}s",
        at(start),
        to_alarm.as_secs_f64(),
        to_ok.as_secs_f64()
    );
    server.terminate();
}
