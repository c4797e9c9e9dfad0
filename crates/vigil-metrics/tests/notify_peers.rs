//! The Alertmanager and email targets against the real peers: a Prometheus
//! Alertmanager and an aiosmtpd SMTP server, both started by `.ci/run`
//! (`.ci/services.sh`, `.ci/python.sh`).
#![allow(clippy::unwrap_used)]

use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde_json::Value;
use vigil_metrics::notify::{
    Action, AlarmState, Notification, Notifier, NotifierSettings, payload,
};

fn env(var: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| {
        panic!("{var} is not set: run this test through .ci/run, or start the peer as .ci/services.sh does and export {var}")
    })
}

/// A name no earlier run used, so old alerts and mails do not count.
fn unique(prefix: &str) -> String {
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    format!("{prefix}-{}-{nanos}", std::process::id())
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

fn notification(name: &str, old: AlarmState, new: AlarmState) -> Notification {
    Notification {
        alarm_name: name.to_owned(),
        alarm_description: Some("p99 latency of the fraud model".into()),
        old_state: old,
        new_state: new,
        reason: format!("Threshold Crossed: state {}", new.as_str()),
        reason_data: serde_json::json!({
            "threshold": 250.0,
            "comparisonOperator": "GreaterThanThreshold",
            "evaluationPeriods": 3,
            "period": 60,
            "statistic": "p99",
        }),
        timestamp_ms: now_ms(),
        namespace: Some("InferencePipeline".into()),
        metric_name: Some("LatencyMs".into()),
        dimensions: [
            ("Model".to_owned(), "fraud".to_owned()),
            ("model.version".to_owned(), "3".to_owned()),
        ]
        .into(),
    }
}

/// The alerts Alertmanager reports with `alertname` = `name`.
async fn alerts_named(base: &str, name: &str) -> Vec<Value> {
    let client = Client::builder(TokioExecutor::new()).build_http::<Empty<Bytes>>();
    let uri = format!("{}/api/v2/alerts", base.trim_end_matches('/'))
        .parse()
        .unwrap();
    let response = client.get(uri).await.unwrap();
    assert_eq!(response.status(), 200);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    let alerts: Vec<Value> = serde_json::from_slice(&body).unwrap();
    alerts
        .into_iter()
        .filter(|a| a["labels"]["alertname"] == name)
        .collect()
}

/// Polls until `check` holds for the alerts named `name` (10 s at most).
async fn wait_for(
    base: &str,
    name: &str,
    what: &str,
    check: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let start = Instant::now();
    loop {
        let alerts = alerts_named(base, name).await;
        if check(&alerts) {
            return alerts;
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "alertmanager at {base}: {what} not seen within 10 s; alerts named {name}: {alerts:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
#[ignore = "needs VIGIL_TEST_ALERTMANAGER_URL (started by .ci/run)"]
async fn alertmanager_fires_on_alarm_and_resolves_on_ok() {
    let base = env("VIGIL_TEST_ALERTMANAGER_URL");
    let settings: NotifierSettings =
        serde_json::from_value(serde_json::json!({"alertmanager": {"severity": "page"}})).unwrap();
    let notifier = Notifier::new(settings.validate().unwrap());
    let action = Action::Alertmanager { url: base.clone() };
    let name = unique("vigil-test-alarm");

    let alarm = notification(&name, AlarmState::Ok, AlarmState::Alarm);
    let delivery = notifier.send(&alarm, &action).await.unwrap();
    assert_eq!(delivery.attempts, 1);
    let alerts = wait_for(&base, &name, "the firing alert", |a| {
        a.len() == 1 && a[0]["status"]["state"] == "active"
    })
    .await;
    let alert = &alerts[0];
    assert_eq!(alert["labels"]["namespace"], "InferencePipeline");
    assert_eq!(alert["labels"]["metric_name"], "LatencyMs");
    assert_eq!(alert["labels"]["Model"], "fraud");
    assert_eq!(alert["labels"]["model_version"], "3");
    assert_eq!(alert["labels"]["severity"], "page");
    assert_eq!(
        alert["annotations"]["summary"],
        "Threshold Crossed: state ALARM"
    );
    assert_eq!(
        alert["annotations"]["description"],
        "p99 latency of the fraud model"
    );
    // Alertmanager keeps the labels this crate derives, unchanged.
    let expected_labels = payload::alertmanager_labels(&alarm, Some("page"));
    assert_eq!(
        alert["labels"],
        serde_json::to_value(expected_labels).unwrap()
    );

    let ok = notification(&name, AlarmState::Alarm, AlarmState::Ok);
    notifier.send(&ok, &action).await.unwrap();
    // A resolved alert drops out of `GET /api/v2/alerts`.
    wait_for(&base, &name, "the alert resolved", <[Value]>::is_empty).await;

    let stats = notifier.stats().alertmanager;
    assert_eq!((stats.delivered, stats.failed), (2, 0));
}

#[tokio::test]
#[ignore = "needs VIGIL_TEST_ALERTMANAGER_URL (started by .ci/run)"]
async fn alertmanager_refuses_a_bad_path_without_retry() {
    let base = env("VIGIL_TEST_ALERTMANAGER_URL");
    let notifier = Notifier::new(Default::default());
    // `/nope/api/v2/alerts` is not an Alertmanager route: a 404, not retried.
    let action = Action::Alertmanager {
        url: format!("{}/nope", base.trim_end_matches('/')),
    };
    let n = notification(&unique("vigil-test-404"), AlarmState::Ok, AlarmState::Alarm);
    let err = notifier.send(&n, &action).await.unwrap_err();
    assert_eq!(err.attempts, 1, "{err}");
    assert!(
        matches!(
            err.last_error,
            vigil_metrics::notify::SendError::Status { status: 404, .. }
        ),
        "{err}"
    );
}

/// The handler aiosmtpd loads with `-c vigil_sink.Sink <dir>`: each message
/// becomes `<dir>/<n>.json` with the envelope and the parsed headers and body.
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
            "from": str(msg["From"]),
            "to": str(msg["To"]),
            "subject": str(msg["Subject"]),
            "content_type": msg.get_content_type(),
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
    let port = std::net::TcpListener::bind("127.0.0.1:0")
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
            panic!(
                "aiosmtpd exited with {status}; is aiosmtpd from .ci/requirements.txt installed?"
            );
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "aiosmtpd not listening after 15 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    (server, port)
}

fn read_mails(out: &Path, count: usize) -> Vec<Value> {
    let start = Instant::now();
    loop {
        let mut files: Vec<_> = std::fs::read_dir(out)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "json"))
            .collect();
        if files.len() >= count {
            files.sort();
            return files
                .iter()
                .map(|p| serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap())
                .collect();
        }
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "{count} mails not received within 10 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[tokio::test]
#[ignore = "needs VIGIL_TEST_PYTHON (started by .ci/run)"]
async fn email_reaches_a_real_smtp_server() {
    let python = env("VIGIL_TEST_PYTHON");
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("mail");
    std::fs::create_dir(&out).unwrap();
    let (_server, port) = start_smtpd(&python, dir.path(), &out);

    let settings: NotifierSettings = serde_json::from_value(serde_json::json!({
        "smtp": {"host": "127.0.0.1", "port": port, "tls": "none", "from": "Vigil <alarms@vigil.test>"}
    }))
    .unwrap();
    let notifier = Notifier::new(settings.validate().unwrap());
    let action = Action::Email {
        to: vec![
            "ops@example.com".into(),
            "Oncall <oncall@example.com>".into(),
        ],
    };
    let name = "High-Latency-Alarm";
    let alarm = notification(name, AlarmState::Ok, AlarmState::Alarm);
    let ok = notification(name, AlarmState::Alarm, AlarmState::Ok);
    assert_eq!(notifier.send(&alarm, &action).await.unwrap().attempts, 1);
    assert_eq!(notifier.send(&ok, &action).await.unwrap().attempts, 1);

    let mails = read_mails(&out, 2);
    assert_eq!(mails.len(), 2);
    for (mail, n) in mails.iter().zip([&alarm, &ok]) {
        let state = n.new_state.as_str();
        assert_eq!(mail["mail_from"], "alarms@vigil.test");
        assert_eq!(
            mail["rcpt_tos"],
            serde_json::json!(["ops@example.com", "oncall@example.com"])
        );
        assert_eq!(mail["from"], "Vigil <alarms@vigil.test>");
        assert_eq!(
            mail["subject"],
            format!("{state}: \"High-Latency-Alarm\" in Vigil")
        );
        assert_eq!(mail["content_type"], "text/plain");
        let body = mail["body"].as_str().unwrap();
        // The server's decoded body is the one this crate built (SMTP's
        // DATA framing may add a final line break).
        assert_eq!(
            body.replace("\r\n", "\n").trim_end(),
            payload::email_body(n).unwrap().trim_end()
        );
        assert!(
            body.contains(&format!(
                "your Vigil alarm \"High-Latency-Alarm\" has entered the {state} state, because \"Threshold Crossed: state {state}\""
            )),
            "{body}"
        );
        assert!(
            body.contains("- MetricName:                 LatencyMs"),
            "{body}"
        );
    }
    assert!(mails[0]["body"].as_str().unwrap().contains("OK -> ALARM"));
    assert!(mails[1]["body"].as_str().unwrap().contains("ALARM -> OK"));

    let stats = notifier.stats().email;
    assert_eq!((stats.delivered, stats.failed, stats.attempts), (2, 0, 2));
}
