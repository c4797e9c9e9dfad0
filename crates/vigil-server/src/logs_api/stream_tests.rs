//! Router tests of the routes that stream: the live tail (server-sent
//! events), the events route (JSON lines), and context lines in queries.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;
use vigil_logs::pipeline::Logs;
use vigil_logs::store::{InputEvent, LogStore};
use vigil_logs::tail::{Tail, TailOptions};

use crate::state::AppState;
use crate::test_util::{assert_error, demo_state, json_request, send};
use vigil_metrics::service::now_ms;

fn state_with_tail(options: TailOptions) -> (AppState, Arc<Logs>, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = LogStore::open(dir.path(), Default::default()).expect("store");
    let logs = Arc::new(Logs::new(Arc::new(store)).with_tail(Arc::new(Tail::new(options))));
    (demo_state().with_logs(Arc::clone(&logs)), logs, dir)
}

fn put(logs: &Logs, group: &str, stream: &str, messages: &[&str]) {
    let now = now_ms();
    let events: Vec<InputEvent> = messages
        .iter()
        .map(|m| InputEvent {
            timestamp: now,
            message: (*m).to_owned(),
        })
        .collect();
    logs.put(group, stream, &events, now).expect("put");
}

/// An open response body, read frame by frame.
struct Open {
    body: Body,
    text: String,
}

impl Open {
    async fn get(state: &AppState, uri: &str) -> (StatusCode, Open) {
        let request = Request::builder()
            .uri(uri)
            .body(Body::empty())
            .expect("request");
        let response = crate::app(state.clone())
            .oneshot(request)
            .await
            .expect("infallible");
        let status = response.status();
        let open = Open {
            body: response.into_body(),
            text: String::new(),
        };
        (status, open)
    }

    /// Reads until the text holds `needle` (panics after 5 s).
    async fn until(&mut self, needle: &str) -> &str {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while !self.text.contains(needle) {
            let frame = tokio::time::timeout_at(deadline, self.body.frame())
                .await
                .unwrap_or_else(|_| panic!("no {needle:?} within 5 s; read: {}", self.text));
            match frame {
                Some(Ok(frame)) => {
                    if let Ok(data) = frame.into_data() {
                        self.text.push_str(&String::from_utf8_lossy(&data));
                    }
                }
                other => panic!(
                    "the stream ended ({other:?}) before {needle:?}: {}",
                    self.text
                ),
            }
        }
        &self.text
    }

    /// The `data:` payloads read so far, as JSON.
    fn data(&self) -> Vec<serde_json::Value> {
        self.text
            .lines()
            .filter_map(|l| l.strip_prefix("data: "))
            .map(|d| serde_json::from_str(d).expect("json data"))
            .collect()
    }
}

#[tokio::test]
async fn a_tail_streams_the_events_stored_after_it_started() {
    let (state, logs, _dir) = state_with_tail(TailOptions::default());
    put(&logs, "/app/api", "h", &["before the tail"]);
    let (status, mut open) = Open::get(&state, "/api/logs/%2Fapp%2Fapi/tail").await;
    assert_eq!(status, StatusCode::OK);
    put(&logs, "/app/api", "host-1", &["one", "two"]);
    put(&logs, "/other", "h", &["not this group"]);
    put(&logs, "/app/api", "host-2", &["three"]);
    open.until("three").await;
    let data = open.data();
    let messages: Vec<&str> = data.iter().filter_map(|d| d["message"].as_str()).collect();
    assert_eq!(messages, ["one", "two", "three"]);
    assert_eq!(data[0]["log_stream"], "host-1");
    assert_eq!(data[2]["log_stream"], "host-2");
    assert!(data[0]["timestamp"].as_i64().is_some());
    assert!(data[0]["ingestion_time"].as_i64().is_some());
    drop(open);
    assert_eq!(logs.tail().expect("tail").stats().subscribers, 0);
}

#[tokio::test]
async fn a_filtered_tail_shows_only_the_matching_events_and_replays_with_start() {
    let (state, logs, _dir) = state_with_tail(TailOptions::default());
    put(&logs, "g", "s", &["old ERROR a", "old INFO", "old ERROR b"]);
    let since = now_ms() - 60_000;
    let uri = format!("/api/logs/g/tail?filter=ERROR&start={since}&limit=1");
    let (status, mut open) = Open::get(&state, &uri).await;
    assert_eq!(status, StatusCode::OK);
    put(
        &logs,
        "g",
        "s",
        &["INFO fine", "ERROR boom", "{\"level\": \"ERROR\"}"],
    );
    open.until("level").await;
    let messages: Vec<String> = open
        .data()
        .iter()
        .filter_map(|d| d["message"].as_str().map(str::to_owned))
        .collect();
    assert_eq!(
        messages,
        ["old ERROR b", "ERROR boom", "{\"level\": \"ERROR\"}"]
    );
}

#[tokio::test]
async fn a_lagging_tail_is_told_how_many_events_it_lost() {
    let (state, logs, _dir) = state_with_tail(TailOptions {
        buffer_batches: 1,
        max_subscribers: 10,
    });
    put(&logs, "g", "s", &["the group exists"]);
    let (_, mut open) = Open::get(&state, "/api/logs/g/tail").await;
    // Nothing reads while three batches arrive: the first two are lost.
    put(&logs, "g", "s", &["a", "b"]);
    put(&logs, "g", "s", &["c"]);
    put(&logs, "g", "s", &["d"]);
    let text = open.until("\"d\"").await;
    assert!(
        text.contains("event: dropped\ndata: {\"dropped\":3}"),
        "{text}"
    );
}

#[tokio::test]
async fn tails_are_refused_with_the_reason() {
    let (state, logs, _dir) = state_with_tail(TailOptions {
        buffer_batches: 4,
        max_subscribers: 1,
    });
    let answer = send(&state, json_request("GET", "/api/logs/nope/tail", "")).await;
    assert_error(&answer, StatusCode::NOT_FOUND, "not_found", &["nope"]);
    put(&logs, "g", "s", &["x"]);
    let answer = send(
        &state,
        json_request("GET", "/api/logs/g/tail?filter=%7B%20%24.a%20%3D%20%7D", ""),
    )
    .await;
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        "bad_request",
        &["filter", "column 9"],
    );
    let (status, open) = Open::get(&state, "/api/logs/g/tail").await;
    assert_eq!(status, StatusCode::OK);
    let answer = send(&state, json_request("GET", "/api/logs/g/tail", "")).await;
    assert_error(
        &answer,
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        &["1 live tails"],
    );
    drop(open);
    logs.tail().expect("tail").close();
    let answer = send(&state, json_request("GET", "/api/logs/g/tail", "")).await;
    assert_error(
        &answer,
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        &["shutting down"],
    );
}

#[tokio::test]
async fn a_tail_ends_when_its_group_is_deleted() {
    let (state, logs, _dir) = state_with_tail(TailOptions::default());
    put(&logs, "g", "s", &["x"]);
    let (_, mut open) = Open::get(&state, "/api/logs/g/tail").await;
    let answer = send(&state, json_request("DELETE", "/api/logs/g", "")).await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT);
    let end = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match open.body.frame().await {
                None => break,
                Some(Ok(_)) => {}
                Some(Err(err)) => panic!("{err}"),
            }
        }
    })
    .await;
    assert!(end.is_ok(), "the stream did not end");
}

#[tokio::test]
async fn the_events_route_streams_every_event_of_the_range_as_json_lines() {
    let (state, logs, _dir) = state_with_tail(TailOptions::default());
    let now = now_ms();
    // 3,000 events of ~100 bytes: several chunks.
    let events: Vec<InputEvent> = (0..3000)
        .map(|i| InputEvent {
            timestamp: now - 60_000 + i,
            message: format!("{i:06} {}", "x".repeat(90)),
        })
        .collect();
    logs.put("g", "s", &events, now).expect("put");
    logs.put(
        "g",
        "s",
        &[InputEvent {
            timestamp: now - 7_200_000,
            message: "out of range".into(),
        }],
        now,
    )
    .expect("put");
    let uri = format!(
        "/api/logs/g/events?start={}&end={}",
        now - 3_600_000,
        now + 1
    );
    let answer = send(&state, json_request("GET", &uri, "")).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.headers["content-type"], "application/x-ndjson");
    let estimate: u64 = answer.headers["x-vigil-estimated-events"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("number");
    assert!(estimate >= 3000, "{estimate}");
    let lines: Vec<serde_json::Value> = answer
        .text
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    assert_eq!(lines.len(), 3000);
    for (i, line) in lines.iter().enumerate() {
        assert_eq!(line["timestamp"], now - 60_000 + i as i64);
        assert_eq!(line["ingestion_time"], now);
        assert_eq!(line["log_stream"], "s");
        assert_eq!(line["message"], events[i].message);
    }

    let start = now - 3_600_000;
    let answer = send(
        &state,
        json_request(
            "GET",
            &format!("/api/logs/g/events?start={start}&limit=2"),
            "",
        ),
    )
    .await;
    let tail: Vec<&str> = answer.text.lines().collect();
    assert_eq!(tail.len(), 2, "{}", answer.text);
    assert!(tail[0].contains("002998 "), "{}", tail[0]);
    assert!(tail[1].contains("002999 "), "{}", tail[1]);
    let uri = format!("/api/logs/g/events?start={start}&filter=%2200100%22");
    let answer = send(&state, json_request("GET", &uri, "")).await;
    // 000100, and 001000 to 001009.
    assert_eq!(answer.text.lines().count(), 11, "{}", answer.text);

    let answer = send(&state, json_request("GET", "/api/logs/nope/events", "")).await;
    assert_error(&answer, StatusCode::NOT_FOUND, "not_found", &["nope"]);
    let answer = send(&state, json_request("GET", "/api/logs/g/events?end=x", "")).await;
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        "bad_request",
        &["end", "RFC 3339"],
    );
    let answer = send(
        &state,
        json_request("GET", "/api/logs/g/events?limit=0", ""),
    )
    .await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "bad_request", &["limit"]);
    let answer = send(&state, json_request("GET", "/api/logs/g/events?from=1", "")).await;
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        "bad_request",
        &["\"from\"", "start"],
    );
}

#[tokio::test]
async fn query_rows_carry_the_context_of_their_stream() {
    let (state, logs, _dir) = state_with_tail(TailOptions::default());
    let now = now_ms();
    let event = |ts: i64, m: &str| InputEvent {
        timestamp: ts,
        message: m.to_owned(),
    };
    logs.put(
        "g",
        "a",
        &[
            event(now - 5000, "a1"),
            event(now - 4000, "a2 ERROR"),
            event(now - 3000, "a3"),
            event(now - 2000, "a4"),
        ],
        now,
    )
    .expect("put");
    logs.put(
        "g",
        "b",
        &[event(now - 3500, "b1"), event(now - 2500, "b2 ERROR")],
        now,
    )
    .expect("put");
    let body = r#"{"groups": ["g"], "start": 0, "context": 1,
        "query": "filter @message like \"ERROR\" | fields @logStream | sort @timestamp asc"}"#;
    let answer = send(&state, json_request("POST", "/api/logs/query", body)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let rows = answer.json["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 2, "{}", answer.text);
    let a = &rows[0]["@context"];
    assert_eq!(rows[0]["@logStream"], "a");
    assert_eq!(a["before"][0]["@message"], "a1");
    assert_eq!(a["after"][0]["@message"], "a3");
    assert_eq!(a["after"].as_array().map(Vec::len), Some(1));
    assert!(
        a["before"][0]["@timestamp"]
            .as_str()
            .expect("time")
            .ends_with('Z')
    );
    let b = &rows[1]["@context"];
    assert_eq!(b["before"][0]["@message"], "b1");
    assert_eq!(b["after"], serde_json::json!([]));

    let stats = r#"{"groups": ["g"], "context": 2, "query": "stats count(*)"}"#;
    let answer = send(&state, json_request("POST", "/api/logs/query", stats)).await;
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        "bad_request",
        &["context", "stats"],
    );
    let big = r#"{"groups": ["g"], "context": 101, "query": "limit 1"}"#;
    let answer = send(&state, json_request("POST", "/api/logs/query", big)).await;
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        "bad_request",
        &["context", "100"],
    );
    let page = r#"{"groups": ["g"], "context": 1, "page_size": 5000, "query": "limit 1"}"#;
    let answer = send(&state, json_request("POST", "/api/logs/query", page)).await;
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        "bad_request",
        &["page_size", "1000"],
    );
}

#[tokio::test]
async fn the_stream_names_tail_and_events_are_written_percent_encoded() {
    let (state, logs, _dir) = state_with_tail(TailOptions::default());
    let body = format!(
        r#"{{"events": [{{"timestamp": {}, "message": "m"}}]}}"#,
        now_ms()
    );
    let answer = send(&state, json_request("POST", "/api/logs/g/tail", &body)).await;
    assert_eq!(
        answer.status,
        StatusCode::METHOD_NOT_ALLOWED,
        "{}",
        answer.text
    );
    let answer = send(&state, json_request("POST", "/api/logs/g/%74ail", &body)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let mut streams = Vec::new();
    logs.store()
        .scan("g", 0, i64::MAX / 1000, |e| {
            streams.push(e.stream.to_owned());
            std::ops::ControlFlow::Continue(())
        })
        .expect("scan");
    assert_eq!(streams, ["tail"]);
}
