#![allow(clippy::unwrap_used)]

use std::io::Read as _;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine as _;
use bytes::Bytes;
use prost::Message as _;
use serde_json::{Value, json};
use vigil_metrics::notify::SendError;

use super::deliver::SendFuture;
use super::payload::OutEvent;
use super::*;
use crate::pipeline::{Logs, Tap};
use crate::store::{InputEvent, StoreOptions};

const NOW: i64 = 1_800_000_000_000;

fn out(
    id: &str,
    stream: &str,
    ts: i64,
    message: &str,
    extracted: Option<&[(&str, &str)]>,
) -> Arc<OutEvent> {
    Arc::new(OutEvent {
        id: id.into(),
        stream: stream.into(),
        timestamp_ms: ts,
        ingestion_ms: ts + 5,
        message: message.into(),
        extracted: extracted.map(|f| {
            f.iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect()
        }),
    })
}

#[test]
fn the_payload_has_the_cloud_shape_and_extracted_fields_only_when_given() {
    let events = [
        out(
            "1",
            "host-1",
            NOW,
            "GET / 200",
            Some(&[("$verb", "GET"), ("$status", "200")]),
        ),
        out("2", "host-1", NOW + 1, "plain", None),
    ];
    let payload: Value = serde_json::from_slice(&payload::data_message(
        "vigil", "/app/api", "errors", &events,
    ))
    .unwrap();
    assert_eq!(
        payload,
        json!({
            "messageType": "DATA_MESSAGE",
            "owner": "vigil",
            "logGroup": "/app/api",
            "logStream": "host-1",
            "subscriptionFilters": ["errors"],
            "logEvents": [
                {"id": "1", "timestamp": NOW, "message": "GET / 200",
                 "extractedFields": {"$verb": "GET", "$status": "200"}},
                {"id": "2", "timestamp": NOW + 1, "message": "plain"},
            ]
        })
    );
    // extractedFields keep the pattern's order, not the alphabet's.
    let text = String::from_utf8(payload::data_message("o", "g", "f", &events[..1])).unwrap();
    assert!(
        text.find("$verb").unwrap() < text.find("$status").unwrap(),
        "{text}"
    );
}

#[test]
fn gzip_base64_round_trips_in_the_awslogs_envelope() {
    let events = [out("1", "s", NOW, "héllo \"world\"", None)];
    let json = payload::data_message("vigil", "g", "f", &events);
    let envelope: Value = serde_json::from_slice(&payload::gzip_base64_envelope(&json)).unwrap();
    let data = envelope["awslogs"]["data"].as_str().unwrap();
    let zipped = base64::engine::general_purpose::STANDARD
        .decode(data)
        .unwrap();
    let mut unzipped = Vec::new();
    flate2::read::GzDecoder::new(&zipped[..])
        .read_to_end(&mut unzipped)
        .unwrap();
    assert_eq!(unzipped, json);
    let decoded: Value = serde_json::from_slice(&unzipped).unwrap();
    assert_eq!(decoded["logEvents"][0]["message"], "héllo \"world\"");
}

#[test]
fn json_lines_carry_group_and_stream() {
    let events = [
        out("1", "a", NOW, "x", Some(&[("$f", "x")])),
        out("2", "b", NOW + 1, "y", None),
    ];
    let text = String::from_utf8(payload::json_lines("/g", &events)).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(text.ends_with('\n'));
    assert_eq!(
        lines,
        vec![
            json!({"logGroup": "/g", "logStream": "a", "id": "1", "timestamp": NOW,
                   "message": "x", "extractedFields": {"$f": "x"}}),
            json!({"logGroup": "/g", "logStream": "b", "id": "2", "timestamp": NOW + 1,
                   "message": "y"}),
        ]
    );
}

#[test]
fn the_otlp_request_decodes_back_with_its_fields() {
    let events = [
        out("7", "host-1", NOW, "boom", None),
        out("8", "host-2", NOW + 1, "bang", None),
    ];
    let bytes = otlp::encode("/app/api", &events);
    let request = otlp::ExportLogsServiceRequest::decode(&bytes[..]).unwrap();
    assert_eq!(request, otlp::export_request("/app/api", &events));
    let resource = &request.resource_logs[0];
    let attr = |kvs: &[otlp::KeyValue], key: &str| {
        kvs.iter()
            .find(|kv| kv.key == key)
            .and_then(|kv| match &kv.value {
                Some(otlp::AnyValue {
                    value: Some(otlp::any_value::Value::StringValue(s)),
                }) => Some(s.clone()),
                _ => None,
            })
    };
    assert_eq!(
        attr(
            &resource.resource.as_ref().unwrap().attributes,
            "service.name"
        )
        .as_deref(),
        Some("vigil")
    );
    let records = &resource.scope_logs[0].log_records;
    assert_eq!(records.len(), 2);
    assert_eq!(records[0].time_unix_nano, 1_800_000_000_000_000_000);
    assert_eq!(
        records[0].observed_time_unix_nano,
        1_800_000_000_005_000_000
    );
    assert_eq!(
        records[1].body,
        Some(otlp::AnyValue {
            value: Some(otlp::any_value::Value::StringValue("bang".into()))
        })
    );
    assert_eq!(
        attr(&records[1].attributes, "log.group").as_deref(),
        Some("/app/api")
    );
    assert_eq!(
        attr(&records[1].attributes, "log.stream").as_deref(),
        Some("host-2")
    );
    assert_eq!(
        attr(&records[1].attributes, "log.record.uid").as_deref(),
        Some("8")
    );
    // Wire check of one field number: LogRecord.time_unix_nano is fixed64
    // field 1, so its tag byte is (1 << 3) | 1 = 0x09.
    let record = records[0].encode_to_vec();
    assert_eq!(record[0], 0x09);
    assert_eq!(
        u64::from_le_bytes(record[1..9].try_into().unwrap()),
        records[0].time_unix_nano
    );
}

#[test]
fn the_otlp_url_gets_v1_logs_once() {
    assert_eq!(
        definition::otlp_logs_url("http://h:4318"),
        "http://h:4318/v1/logs"
    );
    assert_eq!(
        definition::otlp_logs_url("http://h:4318/"),
        "http://h:4318/v1/logs"
    );
    assert_eq!(
        definition::otlp_logs_url("http://h/otlp/v1/logs"),
        "http://h/otlp/v1/logs"
    );
}

// ---- the tap and the delivery task -----------------------------------------

/// Fails its first `fail_first` attempts with a 503, then keeps every body.
#[derive(Debug, Default)]
struct Scripted {
    fail_first: usize,
    attempts: AtomicUsize,
    received: Mutex<Vec<Bytes>>,
    /// Never answers (a destination that hangs).
    hang: bool,
}

impl Sink for Scripted {
    fn mixes_streams(&self) -> bool {
        false
    }

    fn encode(&self, group: &str, _filter: &str, events: &[Arc<OutEvent>]) -> Bytes {
        payload::json_lines(group, events).into()
    }

    fn send(&self, body: Bytes) -> SendFuture<'_> {
        Box::pin(async move {
            if self.hang {
                std::future::pending::<()>().await;
            }
            let n = self.attempts.fetch_add(1, Ordering::SeqCst);
            if n < self.fail_first {
                return Err(SendError::Status {
                    status: 503,
                    body: "busy".into(),
                    retry_after: None,
                });
            }
            lock(&self.received).push(body);
            Ok(())
        })
    }
}

impl Scripted {
    fn messages(&self) -> Vec<String> {
        lock(&self.received)
            .iter()
            .flat_map(|b| {
                String::from_utf8(b.to_vec())
                    .unwrap()
                    .lines()
                    .map(|l| {
                        serde_json::from_str::<Value>(l).unwrap()["message"]
                            .as_str()
                            .unwrap()
                            .to_owned()
                    })
                    .collect::<Vec<_>>()
            })
            .collect()
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    subs: Arc<Subscriptions>,
    logs: Logs,
}

fn fixture(options: SubscriptionOptions) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(LogStore::open(dir.path(), StoreOptions::default()).unwrap());
    store.create_group("/g", None, NOW).unwrap();
    let subs = Arc::new(Subscriptions::open(dir.path(), Arc::clone(&store), options).unwrap());
    let logs = Logs::new(store).with_tap(subs.clone());
    Fixture {
        _dir: dir,
        subs,
        logs,
    }
}

fn filter(name: &str, pattern: &str) -> (SubscriptionFilter, Pattern) {
    (
        SubscriptionFilter {
            group: "/g".into(),
            name: name.into(),
            pattern: pattern.into(),
            destination: Destination::File {
                path: "/unused".into(),
            },
            created_ms: NOW,
        },
        Pattern::parse(pattern).unwrap(),
    )
}

fn events(messages: &[&str]) -> Vec<InputEvent> {
    messages
        .iter()
        .enumerate()
        .map(|(i, m)| InputEvent {
            timestamp: NOW + i as i64,
            message: (*m).to_owned(),
        })
        .collect()
}

async fn until(what: &str, mut done: impl FnMut() -> bool) {
    for _ in 0..10_000 {
        if done() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("{what} did not happen");
}

#[tokio::test(start_paused = true)]
async fn a_destination_failing_twice_gets_every_event_once_in_order() {
    let f = fixture(SubscriptionOptions::default());
    let sink = Arc::new(Scripted {
        fail_first: 2,
        ..Scripted::default()
    });
    let (def, pattern) = filter("errors", "ERROR");
    f.subs.install(def, pattern, sink.clone());
    f.logs
        .put("/g", "s", &events(&["ERROR a", "ok b", "ERROR c"]), NOW)
        .unwrap();
    f.logs.put("/g", "s", &events(&["ERROR d"]), NOW).unwrap();
    until("delivery", || {
        f.subs
            .get("/g", "errors")
            .unwrap()
            .delivery
            .delivered_events
            == 3
    })
    .await;
    // Later events are still delivered after the retried batch.
    f.logs.put("/g", "s", &events(&["ERROR e"]), NOW).unwrap();
    until("the second delivery", || {
        f.subs
            .get("/g", "errors")
            .unwrap()
            .delivery
            .delivered_events
            == 4
    })
    .await;
    assert_eq!(
        sink.messages(),
        ["ERROR a", "ERROR c", "ERROR d", "ERROR e"]
    );
    let stats = f.subs.get("/g", "errors").unwrap().delivery;
    assert_eq!(stats.matched_events, 4);
    assert_eq!(stats.retries, 2);
    assert_eq!(stats.failed_deliveries, 0);
    assert_eq!(stats.buffered_events, 0);
    assert!(stats.last_error.unwrap().contains("503"));
    assert_eq!(sink.attempts.load(Ordering::SeqCst), 4);
}

#[tokio::test(start_paused = true)]
async fn a_full_buffer_drops_and_counts_and_ingestion_goes_on() {
    let f = fixture(SubscriptionOptions {
        buffer_events: 3,
        ..SubscriptionOptions::default()
    });
    let sink = Arc::new(Scripted {
        hang: true,
        ..Scripted::default()
    });
    let (def, pattern) = filter("all", "");
    f.subs.install(def, pattern, sink);
    let outcome = f
        .logs
        .put("/g", "s", &events(&["1", "2", "3", "4", "5"]), NOW)
        .unwrap();
    assert_eq!(outcome.accepted, 5);
    f.logs.put("/g", "s", &events(&["6"]), NOW).unwrap();
    let stats = f.subs.get("/g", "all").unwrap().delivery;
    assert_eq!(
        (
            stats.matched_events,
            stats.dropped_events,
            stats.buffered_events
        ),
        (6, 3, 3)
    );
}

#[tokio::test(start_paused = true)]
async fn a_delivery_out_of_attempts_is_given_up_and_counted() {
    let f = fixture(SubscriptionOptions::default());
    let sink = Arc::new(Scripted {
        fail_first: usize::MAX,
        ..Scripted::default()
    });
    let (def, pattern) = filter("f", "");
    f.subs.install(def, pattern, sink.clone());
    f.logs.put("/g", "s", &events(&["a", "b"]), NOW).unwrap();
    until("giving up", || {
        f.subs.get("/g", "f").unwrap().delivery.failed_deliveries == 1
    })
    .await;
    let stats = f.subs.get("/g", "f").unwrap().delivery;
    assert_eq!(
        (stats.failed_events, stats.retries, stats.buffered_events),
        (2, 5, 0)
    );
    assert_eq!(sink.attempts.load(Ordering::SeqCst), 6);
}

#[tokio::test(start_paused = true)]
async fn one_payload_holds_one_stream_and_both_filters_share_the_id() {
    let f = fixture(SubscriptionOptions::default());
    let a = Arc::new(Scripted::default());
    let b = Arc::new(Scripted::default());
    let (def, pattern) = filter("a", "[verb, path, status]");
    f.subs.install(def, pattern, a.clone());
    let (def, pattern) = filter("b", "GET");
    f.subs.install(def, pattern, b.clone());
    f.logs
        .put("/g", "s1", &events(&["GET / 200"]), NOW)
        .unwrap();
    f.logs
        .put("/g", "s2", &events(&["GET /x 404"]), NOW)
        .unwrap();
    until("both", || {
        lock(&a.received).len() == 2 && lock(&b.received).len() == 2
    })
    .await;
    let line = |sink: &Scripted, i: usize| -> Value {
        serde_json::from_slice(&lock(&sink.received)[i]).unwrap()
    };
    assert_eq!(line(&a, 0)["logStream"], "s1");
    assert_eq!(line(&a, 1)["logStream"], "s2");
    assert_eq!(
        line(&a, 1)["extractedFields"],
        json!({"$verb": "GET", "$path": "/x", "$status": "404"})
    );
    assert!(line(&b, 0).get("extractedFields").is_none());
    assert_eq!(line(&a, 0)["id"], line(&b, 0)["id"]);
    assert_ne!(line(&a, 0)["id"], line(&a, 1)["id"]);
    assert_eq!(line(&a, 0)["id"].as_str().unwrap().len(), 56);
}

// ---- definitions ------------------------------------------------------------

fn http_spec(pattern: &str, url: &str) -> FilterSpec {
    FilterSpec {
        pattern: pattern.into(),
        destination: Destination::Http {
            url: url.into(),
            encoding: Encoding::GzipBase64,
        },
    }
}

#[tokio::test]
async fn two_per_group_then_a_clear_error_and_replacing_is_not_a_third() {
    let f = fixture(SubscriptionOptions::default());
    let url = "http://127.0.0.1:9/x";
    assert_eq!(
        f.subs.put("/g", "a", http_spec("", url), NOW),
        Ok(PutOutcome::Created)
    );
    assert_eq!(
        f.subs.put("/g", "b", http_spec("", url), NOW),
        Ok(PutOutcome::Created)
    );
    let err = f.subs.put("/g", "c", http_spec("", url), NOW).unwrap_err();
    assert_eq!(err, SubscriptionError::Limit("/g".into()));
    assert_eq!(err.code(), "conflict");
    assert!(
        err.to_string().contains("2 subscription filters already"),
        "{err}"
    );
    assert_eq!(
        f.subs.put("/g", "b", http_spec("ERROR", url), NOW + 5),
        Ok(PutOutcome::Replaced)
    );
    let b = f.subs.get("/g", "b").unwrap().filter;
    assert_eq!((b.pattern.as_str(), b.created_ms), ("ERROR", NOW));
    assert!(f.subs.delete("/g", "a").unwrap());
    assert!(!f.subs.delete("/g", "a").unwrap());
    assert_eq!(
        f.subs.put("/g", "c", http_spec("", url), NOW),
        Ok(PutOutcome::Created)
    );
    let names: Vec<String> = f
        .subs
        .list("/g")
        .into_iter()
        .map(|v| v.filter.name)
        .collect();
    assert_eq!(names, ["b", "c"]);
}

#[tokio::test]
async fn bad_definitions_name_their_field() {
    let f = fixture(SubscriptionOptions::default());
    let field = |r: Result<PutOutcome, SubscriptionError>| match r {
        Err(SubscriptionError::Invalid { field, message }) => format!("{field}: {message}"),
        other => panic!("{other:?}"),
    };
    let bad_pattern = field(f.subs.put("/g", "a", http_spec("[a, b", "http://h/"), NOW));
    assert!(bad_pattern.starts_with("pattern: column "), "{bad_pattern}");
    let bad_url = field(f.subs.put("/g", "a", http_spec("", "ftp://h/"), NOW));
    assert!(bad_url.starts_with("destination.url: "), "{bad_url}");
    let otlp = FilterSpec {
        pattern: String::new(),
        destination: Destination::Otlp {
            endpoint: "localhost:4318".into(),
        },
    };
    assert!(field(f.subs.put("/g", "a", otlp, NOW)).starts_with("destination.endpoint: "));
    let file = FilterSpec {
        pattern: String::new(),
        destination: Destination::File {
            path: "relative.jsonl".into(),
        },
    };
    assert!(field(f.subs.put("/g", "a", file, NOW)).starts_with("destination.path: "));
    assert!(field(f.subs.put("/g", "a:b", http_spec("", "http://h/"), NOW)).starts_with("name: "));
    assert!(field(f.subs.put("/g", "", http_spec("", "http://h/"), NOW)).starts_with("name: "));
    assert_eq!(
        f.subs.put("/nope", "a", http_spec("", "http://h/"), NOW),
        Err(SubscriptionError::NoGroup("/nope".into()))
    );
    assert!(f.subs.list("/g").is_empty());
}

#[test]
fn the_wire_form_of_a_spec() {
    let spec: FilterSpec = serde_json::from_value(json!({
        "pattern": "ERROR",
        "destination": {"type": "http", "url": "http://h/", "encoding": "gzip+base64"}
    }))
    .unwrap();
    assert_eq!(spec, http_spec("ERROR", "http://h/"));
    let spec: FilterSpec = serde_json::from_value(json!({
        "pattern": "", "destination": {"type": "http", "url": "http://h/"}
    }))
    .unwrap();
    assert!(matches!(
        spec.destination,
        Destination::Http {
            encoding: Encoding::Json,
            ..
        }
    ));
    for bad in [
        json!({"pattern": "", "destination": {"type": "http", "url": "u", "extra": 1}}),
        json!({"pattern": "", "destination": {"type": "kinesis"}}),
        json!({"pattern": "", "destination": {"type": "http", "url": "u", "encoding": "zstd"}}),
    ] {
        assert!(
            serde_json::from_value::<FilterSpec>(bad.clone()).is_err(),
            "{bad}"
        );
    }
}

#[tokio::test]
async fn definitions_survive_a_reopen_and_go_with_their_group() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(LogStore::open(dir.path(), StoreOptions::default()).unwrap());
    store.create_group("/g", None, NOW).unwrap();
    store.create_group("/h", None, NOW).unwrap();
    let subs = Subscriptions::open(dir.path(), Arc::clone(&store), Default::default()).unwrap();
    subs.put("/g", "a", http_spec("ERROR", "http://h/"), NOW)
        .unwrap();
    let file = FilterSpec {
        pattern: "[a, b]".into(),
        destination: Destination::File {
            path: dir.path().join("out.jsonl"),
        },
    };
    subs.put_from_config("/h", "b", file, NOW).unwrap();
    let before = subs.stats();
    drop(subs);
    let subs = Subscriptions::open(dir.path(), Arc::clone(&store), Default::default()).unwrap();
    let after = subs.stats();
    assert_eq!(
        after.iter().map(|v| &v.filter).collect::<Vec<_>>(),
        before.iter().map(|v| &v.filter).collect::<Vec<_>>()
    );
    assert_eq!(after.len(), 2);
    subs.group_deleted("/g");
    drop(subs);
    let subs = Subscriptions::open(dir.path(), store, Default::default()).unwrap();
    let names: Vec<String> = subs.stats().into_iter().map(|v| v.filter.group).collect();
    assert_eq!(names, ["/h"]);
}

#[tokio::test]
async fn the_file_sink_appends_json_lines_inside_its_directory() {
    let files = tempfile::tempdir().unwrap();
    let f = fixture(SubscriptionOptions {
        linger: Duration::from_millis(10),
        files_dir: Some(files.path().to_owned()),
        ..SubscriptionOptions::default()
    });
    let file = |path: &str| FilterSpec {
        pattern: "ERROR".into(),
        destination: Destination::File { path: path.into() },
    };
    for bad in ["../x.jsonl", "/etc/x.jsonl", "a/../../x.jsonl", ""] {
        let err = f.subs.put("/g", "to-file", file(bad), NOW).unwrap_err();
        assert!(
            err.to_string().starts_with("destination.path: "),
            "{bad}: {err}"
        );
    }
    f.subs
        .put("/g", "to-file", file("app/errors.jsonl"), NOW)
        .unwrap();
    let path = files.path().join("app/errors.jsonl");
    assert_eq!(
        f.subs.get("/g", "to-file").unwrap().filter.destination,
        Destination::File { path: path.clone() }
    );
    f.logs
        .put("/g", "s", &events(&["ERROR one", "fine", "ERROR two"]), NOW)
        .unwrap();
    until("the file", || {
        f.subs
            .get("/g", "to-file")
            .unwrap()
            .delivery
            .delivered_events
            == 2
    })
    .await;
    let text = std::fs::read_to_string(&path).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    assert_eq!(lines[1]["message"], "ERROR two");
    assert_eq!(lines[1]["logGroup"], "/g");
    assert_eq!(lines[1]["logStream"], "s");
}

#[tokio::test]
async fn shutdown_flushes_what_is_buffered() {
    let f = fixture(SubscriptionOptions {
        linger: Duration::from_secs(3600),
        ..SubscriptionOptions::default()
    });
    let sink = Arc::new(Scripted::default());
    let (def, pattern) = filter("f", "");
    f.subs.install(def, pattern, sink.clone());
    f.logs.put("/g", "s", &events(&["x", "y"]), NOW).unwrap();
    f.subs.shutdown(Duration::from_secs(5)).await;
    assert_eq!(sink.messages(), ["x", "y"]);
}
