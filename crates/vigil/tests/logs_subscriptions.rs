//! Subscription filters, black-box: the real `vigil serve` forwards the
//! events posted to a group (a) to a local HTTP receiver as the cloud's
//! gzip+base64 payload, (b) to a real OTLP/HTTP receiver that parses the
//! protobuf with opentelemetry-proto's generated Python classes, and (c) to
//! a dead destination without holding up ingestion, counting its failures.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use common::{Serve, http};
use serde_json::{Value, json};

fn now_ms() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

/// Polls `probe` every 100 ms until it returns `Some`, or panics after
/// `limit` naming `what`.
fn poll<T>(limit: Duration, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(start.elapsed() < limit, "{what} not seen within {limit:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// `vigil serve` with its own data directory and a config file holding the
/// demo model and `extra`.
fn serve(dir: &Path, extra: &str) -> Serve {
    let model = common::workspace().join("crates/vigil-server/assets/demo-fraud.json");
    let config = dir.join("vigil.toml");
    std::fs::write(
        &config,
        format!(
            "[[models]]\nname = \"fraud\"\npath = {:?}\n\n{extra}",
            model.display().to_string()
        ),
    )
    .unwrap();
    let data = dir.join("data");
    Serve::start(&[
        "--data-dir".as_ref(),
        data.as_os_str(),
        "--config".as_ref(),
        config.as_os_str(),
    ])
}

fn post_events(addr: &str, group: &str, stream: &str, messages: &[String]) {
    let now = now_ms();
    let events: Vec<Value> = messages
        .iter()
        .enumerate()
        .map(|(i, m)| json!({"timestamp": now + i as i64, "message": m}))
        .collect();
    let path = format!("/api/logs/{}/{stream}", group.replace('/', "%2F"));
    let body = json!({ "events": events }).to_string();
    let (status, reply) = http(addr, "POST", &path, Some(&body));
    assert_eq!(status, 200, "POST {path}: {reply}");
    let reply: Value = serde_json::from_str(&reply).unwrap();
    assert_eq!(reply["accepted"], messages.len(), "{reply}");
}

fn filter_path(group: &str, name: &str) -> String {
    format!(
        "/api/logs/{}/subscription-filters/{name}",
        group.replace('/', "%2F")
    )
}

fn put_filter(addr: &str, group: &str, name: &str, body: &Value) -> Value {
    let (status, reply) = http(
        addr,
        "PUT",
        &format!("/api/logs/{}", group.replace('/', "%2F")),
        Some("{}"),
    );
    assert_eq!(status, 200, "PUT group {group}: {reply}");
    let (status, reply) = http(
        addr,
        "PUT",
        &filter_path(group, name),
        Some(&body.to_string()),
    );
    assert_eq!(status, 200, "PUT filter {name}: {reply}");
    serde_json::from_str(&reply).unwrap()
}

fn delivery(addr: &str, group: &str, name: &str) -> Value {
    let (status, reply) = http(addr, "GET", &filter_path(group, name), None);
    assert_eq!(status, 200, "GET filter {name}: {reply}");
    let view: Value = serde_json::from_str(&reply).unwrap();
    view["delivery"].clone()
}

/// The value of one Prometheus sample line of `/metrics`, if present.
fn metric(addr: &str, family: &str, subscription: &str) -> Option<f64> {
    let (status, text) = http(addr, "GET", "/metrics", None);
    assert_eq!(status, 200);
    let prefix = format!("{family}{{");
    text.lines()
        .filter(|l| {
            l.starts_with(&prefix) && l.contains(&format!("subscription=\"{subscription}\""))
        })
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
}

// ---- (a) an HTTP receiver ----------------------------------------------------

/// What the receiver got: each request's path and body.
type Received = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// An HTTP/1.1 server on a thread answering every POST `200`, keeping its
/// path and body.
fn start_receiver() -> (String, Received) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/logs/in", listener.local_addr().unwrap());
    let received = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&received);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { continue };
            let sink = Arc::clone(&sink);
            std::thread::spawn(move || serve_requests(stream, &sink));
        }
    });
    (url, received)
}

/// Reads requests from one kept-alive connection until the peer closes it.
fn serve_requests(stream: TcpStream, sink: &Mutex<Vec<(String, Vec<u8>)>>) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
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
        reader.read_exact(&mut body).unwrap();
        let path = request_line
            .split_whitespace()
            .nth(1)
            .unwrap_or_default()
            .to_owned();
        sink.lock().unwrap().push((path, body));
        let reply = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
        if writer.write_all(reply.as_bytes()).is_err() {
            return;
        }
    }
}

#[test]
fn an_http_receiver_gets_the_gzip_base64_payload_of_a_config_filter() {
    let dir = tempfile::tempdir().unwrap();
    let (url, received) = start_receiver();
    let server = serve(
        dir.path(),
        &format!(
            r#"[[logs.subscriptions]]
group = "/app/api"
name = "server-errors"
pattern = "[verb, path, status = 5*, bytes]"
destination = {{ type = "http", url = "{url}", encoding = "gzip+base64" }}
"#
        ),
    );
    let addr = server.addr.clone();
    post_events(
        &addr,
        "/app/api",
        "host-1",
        &[
            "GET /a 503 17".to_owned(),
            "GET /b 200 12".to_owned(),
            "POST /c 500 9".to_owned(),
        ],
    );

    let (path, body) = poll(Duration::from_secs(20), "a delivery", || {
        received.lock().unwrap().first().cloned()
    });
    assert_eq!(path, "/logs/in");
    // Decoded here, independently of Vigil's code: the function envelope,
    // base64, gzip, then the §3.3 JSON.
    let envelope: Value = serde_json::from_slice(&body).unwrap();
    let data = envelope["awslogs"]["data"].as_str().unwrap();
    let zipped = base64::engine::general_purpose::STANDARD
        .decode(data)
        .unwrap();
    let mut text = String::new();
    flate2::read::GzDecoder::new(&zipped[..])
        .read_to_string(&mut text)
        .unwrap();
    let payload: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(payload["messageType"], "DATA_MESSAGE");
    assert_eq!(payload["owner"], "vigil");
    assert_eq!(payload["logGroup"], "/app/api");
    assert_eq!(payload["logStream"], "host-1");
    assert_eq!(payload["subscriptionFilters"], json!(["server-errors"]));
    let events = payload["logEvents"].as_array().unwrap();
    let messages: Vec<&str> = events
        .iter()
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert_eq!(messages, ["GET /a 503 17", "POST /c 500 9"]);
    assert_eq!(
        events[1]["extractedFields"],
        json!({"$verb": "POST", "$path": "/c", "$status": "500", "$bytes": "9"})
    );
    for e in events {
        let id = e["id"].as_str().unwrap();
        assert!(
            id.len() == 56 && id.bytes().all(|b| b.is_ascii_digit()),
            "{id}"
        );
        assert!(e["timestamp"].as_i64().unwrap() > 1_700_000_000_000);
        let keys: Vec<&String> = e.as_object().unwrap().keys().collect();
        assert_eq!(keys.len(), 4, "{e}");
    }
    assert_ne!(events[0]["id"], events[1]["id"]);

    let counters = delivery(&addr, "/app/api", "server-errors");
    assert_eq!(counters["matched_events"], 2, "{counters}");
    assert_eq!(counters["delivered_events"], 2, "{counters}");
    assert_eq!(counters["failed_deliveries"], 0, "{counters}");
    // The counters become metrics within the next second's reading.
    let forwarded = poll(
        Duration::from_secs(10),
        "ForwardedLogEvents on /metrics",
        || {
            metric(
                &addr,
                "vigil_logs_subscription_forwarded_events_total",
                "/app/api:server-errors",
            )
            .filter(|v| *v >= 2.0)
        },
    );
    assert_eq!(forwarded, 2.0);
    assert_eq!(
        received.lock().unwrap().len(),
        1,
        "one payload for one stream"
    );
}

// ---- (b) a real OTLP receiver --------------------------------------------------

/// An OTLP/HTTP logs receiver: parses each POST to /v1/logs with the
/// official generated classes and appends what it got, as JSON, to a file.
const OTLP_RECEIVER: &str = r#"
import json, sys
from http.server import BaseHTTPRequestHandler, HTTPServer
from google.protobuf.json_format import MessageToDict
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import (
    ExportLogsServiceRequest, ExportLogsServiceResponse)

out_path = sys.argv[1]

class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        request = ExportLogsServiceRequest()
        request.ParseFromString(body)
        record = {
            "path": self.path,
            "content_type": self.headers.get("Content-Type"),
            "request": MessageToDict(request),
        }
        with open(out_path, "a") as f:
            f.write(json.dumps(record) + "\n")
        answer = ExportLogsServiceResponse().SerializeToString()
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *args):
        pass

server = HTTPServer(("127.0.0.1", 0), Handler)
print(server.server_address[1], flush=True)
server.serve_forever()
"#;

struct Receiver(Child);

impl Drop for Receiver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_otlp_receiver(python: &str, dir: &Path, out: &Path) -> (Receiver, u16) {
    let script = dir.join("otlp_receiver.py");
    std::fs::write(&script, OTLP_RECEIVER).unwrap();
    let mut child = Command::new(python)
        .arg(&script)
        .arg(out)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {python}: {e}"));
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let receiver = Receiver(child);
    let port = line.trim().parse().unwrap_or_else(|_| {
        panic!("the OTLP receiver printed no port ({line:?}); is opentelemetry-proto installed in {python}?")
    });
    (receiver, port)
}

fn attributes(value: &Value) -> Vec<(String, String)> {
    value
        .as_array()
        .map(|list| {
            list.iter()
                .map(|kv| {
                    (
                        kv["key"].as_str().unwrap_or_default().to_owned(),
                        kv["value"]["stringValue"]
                            .as_str()
                            .unwrap_or_default()
                            .to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
#[ignore = "needs VIGIL_TEST_PYTHON (started by .ci/run)"]
fn a_real_otlp_receiver_decodes_the_export_with_the_official_classes() {
    let python = std::env::var("VIGIL_TEST_PYTHON").unwrap_or_else(|_| {
        panic!(
            "VIGIL_TEST_PYTHON must name a python with opentelemetry-proto \
             (.ci/python.sh makes one from .ci/requirements.txt)"
        )
    });
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("otlp.jsonl");
    let (_receiver, port) = start_otlp_receiver(&python, dir.path(), &out);
    let server = serve(dir.path(), "");
    let addr = server.addr.clone();
    let view = put_filter(
        &addr,
        "/app/worker",
        "to-collector",
        &json!({"pattern": "?ERROR ?WARN",
                "destination": {"type": "otlp", "endpoint": format!("http://127.0.0.1:{port}")}}),
    );
    assert_eq!(view["destination"]["type"], "otlp");

    let before = now_ms();
    post_events(
        &addr,
        "/app/worker",
        "worker-1",
        &["ERROR disk full".to_owned(), "INFO fine".to_owned()],
    );
    post_events(
        &addr,
        "/app/worker",
        "worker-2",
        &["WARN slow \u{e9}t\u{e9}".to_owned()],
    );

    let records: Vec<Value> = poll(Duration::from_secs(20), "2 records at the receiver", || {
        let text = std::fs::read_to_string(&out).ok()?;
        let exports: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let records: Vec<Value> = exports
            .iter()
            .flat_map(|e| {
                assert_eq!(e["path"], "/v1/logs", "{e}");
                assert_eq!(e["content_type"], "application/x-protobuf", "{e}");
                let resource = &e["request"]["resourceLogs"][0];
                assert_eq!(
                    attributes(&resource["resource"]["attributes"]),
                    [("service.name".to_owned(), "vigil".to_owned())]
                );
                resource["scopeLogs"][0]["logRecords"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .collect();
        (records.len() >= 2).then_some(records)
    });
    assert_eq!(records.len(), 2);
    let bodies: Vec<&str> = records
        .iter()
        .map(|r| r["body"]["stringValue"].as_str().unwrap())
        .collect();
    // In the order stored, whatever the stream (one export may hold both).
    assert_eq!(bodies, ["ERROR disk full", "WARN slow \u{e9}t\u{e9}"]);
    for r in &records {
        let attrs = attributes(&r["attributes"]);
        let get = |k: &str| {
            attrs
                .iter()
                .find(|(key, _)| key == k)
                .map(|(_, v)| v.as_str())
        };
        assert_eq!(get("log.group"), Some("/app/worker"), "{r}");
        let expected_stream = if r["body"]["stringValue"] == "ERROR disk full" {
            "worker-1"
        } else {
            "worker-2"
        };
        assert_eq!(get("log.stream"), Some(expected_stream), "{r}");
        assert_eq!(get("log.record.uid").map(str::len), Some(56), "{r}");
        // 64-bit integers are strings in protobuf's JSON form.
        let time: i64 = r["timeUnixNano"].as_str().unwrap().parse().unwrap();
        let observed: i64 = r["observedTimeUnixNano"].as_str().unwrap().parse().unwrap();
        assert!(time / 1_000_000 >= before && time % 1_000_000 == 0, "{r}");
        assert!(observed >= before * 1_000_000, "{r}");
    }
    let counters = delivery(&addr, "/app/worker", "to-collector");
    // INFO matched neither `?` term.
    assert_eq!(counters["matched_events"], 2, "{counters}");
    assert_eq!(counters["delivered_events"], 2, "{counters}");
}

// ---- (c) a dead destination ------------------------------------------------------

#[test]
fn a_dead_destination_does_not_hold_up_ingestion_and_its_failures_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let server = serve(dir.path(), "");
    let addr = server.addr.clone();
    // A port nobody listens on.
    let dead = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    put_filter(
        &addr,
        "/app/dead",
        "nowhere",
        &json!({"pattern": "", "destination": {"type": "http", "url": format!("http://{dead}/x")}}),
    );

    // 12 batches of 1,000: more than the filter's buffer holds.
    let batch: Vec<String> = (0..1000).map(|i| format!("event {i} of a batch")).collect();
    let start = Instant::now();
    for _ in 0..12 {
        post_events(&addr, "/app/dead", "s", &batch);
    }
    let took = start.elapsed();
    eprintln!("12,000 events posted to a group with a dead subscription in {took:?}");

    let counters = delivery(&addr, "/app/dead", "nowhere");
    assert_eq!(counters["matched_events"], 12_000, "{counters}");
    // Every batch was answered while the first delivery was still being
    // retried: the buffer filled and the rest was dropped, not waited for.
    let dropped = counters["dropped_events"].as_u64().unwrap();
    let buffered = counters["buffered_events"].as_u64().unwrap();
    assert!(dropped >= 1_500, "{counters}");
    assert!(buffered <= 10_000, "{counters}");
    assert_eq!(counters["delivered_events"], 0, "{counters}");

    let counters = poll(Duration::from_secs(10), "a retry", || {
        let c = delivery(&addr, "/app/dead", "nowhere");
        (c["retries"].as_u64().unwrap() >= 1).then_some(c)
    });
    let error = counters["last_error"].as_str().unwrap();
    assert!(error.contains("connection"), "{error}");
    // The first batch runs out of attempts (0.5 s doubling: about 15 s).
    let counters = poll(Duration::from_secs(60), "a delivery given up", || {
        let c = delivery(&addr, "/app/dead", "nowhere");
        (c["failed_deliveries"].as_u64().unwrap() >= 1).then_some(c)
    });
    assert!(
        counters["failed_events"].as_u64().unwrap() >= 1,
        "{counters}"
    );
    poll(
        Duration::from_secs(10),
        "DeliveryErrors on /metrics",
        || {
            metric(
                &addr,
                "vigil_logs_subscription_delivery_errors_total",
                "/app/dead:nowhere",
            )
            .filter(|v| *v >= 1.0)
        },
    );
    let dropped_metric = metric(
        &addr,
        "vigil_logs_subscription_dropped_events_total",
        "/app/dead:nowhere",
    )
    .unwrap_or(0.0);
    assert!(dropped_metric >= 1_500.0, "{dropped_metric}");
    // Ingestion still works, and the access log group has no filter.
    post_events(&addr, "/app/dead", "s", &["one more".to_owned()]);
}
