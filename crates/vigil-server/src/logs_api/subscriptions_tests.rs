use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use serde_json::{Value, json};
use vigil_logs::subscription::{SubscriptionOptions, Subscriptions};

use crate::state::AppState;
use crate::test_util::{assert_error, demo_state, json_request, send};
use vigil_metrics::service::now_ms;

fn state_with_subscriptions() -> (AppState, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store =
        Arc::new(vigil_logs::store::LogStore::open(dir.path(), Default::default()).expect("store"));
    let subs = Arc::new(
        Subscriptions::open(
            dir.path(),
            Arc::clone(&store),
            SubscriptionOptions {
                linger: Duration::from_millis(20),
                files_dir: Some(dir.path().join("files")),
                ..SubscriptionOptions::default()
            },
        )
        .expect("subscriptions"),
    );
    let logs = vigil_logs::pipeline::Logs::new(store).with_tap(subs.clone());
    let state = demo_state()
        .with_logs(Arc::new(logs))
        .with_subscriptions(subs);
    (state, dir)
}

/// An HTTP receiver keeping every POSTed body.
async fn receiver() -> (String, Arc<Mutex<Vec<Value>>>) {
    let got: Arc<Mutex<Vec<Value>>> = Arc::default();
    let sink = Arc::clone(&got);
    let app = axum::Router::new().route(
        "/hook",
        axum::routing::post(move |body: axum::body::Bytes| {
            let sink = Arc::clone(&sink);
            async move {
                let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                sink.lock().expect("not poisoned").push(value);
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}/hook", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, got)
}

const FILTERS: &str = "/api/logs/%2Fapp%2Fapi/subscription-filters";

#[tokio::test]
async fn a_filter_is_put_delivers_and_shows_its_counters() {
    let (state, _dir) = state_with_subscriptions();
    let (url, got) = receiver().await;
    let answer = send(&state, json_request("PUT", "/api/logs/%2Fapp%2Fapi", "{}")).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let body = json!({"pattern": "[verb, path, status = 5*]",
        "destination": {"type": "http", "url": url}});
    let answer = send(
        &state,
        json_request("PUT", &format!("{FILTERS}/errors"), &body.to_string()),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.json["group"], "/app/api");
    assert_eq!(answer.json["name"], "errors");
    assert_eq!(
        answer.json["destination"],
        json!({"type": "http", "url": url, "encoding": "json"})
    );
    assert_eq!(answer.json["delivery"]["delivered_events"], 0);

    let now = now_ms();
    let events = json!({"events": [
        {"timestamp": now, "message": "GET /a 503"},
        {"timestamp": now, "message": "GET /b 200"},
    ]});
    let answer = send(
        &state,
        json_request("POST", "/api/logs/%2Fapp%2Fapi/host-1", &events.to_string()),
    )
    .await;
    assert_eq!(answer.json["accepted"], 2, "{}", answer.text);
    let mut view = Value::Null;
    for _ in 0..200 {
        view = send(
            &state,
            json_request("GET", &format!("{FILTERS}/errors"), ""),
        )
        .await
        .json;
        if view["delivery"]["delivered_events"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(view["delivery"]["matched_events"], 1, "{view}");
    assert_eq!(view["delivery"]["delivered_events"], 1, "{view}");
    assert!(view["delivery"]["last_delivery_ms"].is_i64(), "{view}");
    let payload = got.lock().expect("not poisoned")[0].clone();
    assert_eq!(payload["messageType"], "DATA_MESSAGE");
    assert_eq!(payload["logGroup"], "/app/api");
    assert_eq!(payload["logStream"], "host-1");
    assert_eq!(payload["subscriptionFilters"], json!(["errors"]));
    assert_eq!(payload["logEvents"][0]["message"], "GET /a 503");
    assert_eq!(
        payload["logEvents"][0]["extractedFields"],
        json!({"$verb": "GET", "$path": "/a", "$status": "503"})
    );

    let list = send(&state, json_request("GET", FILTERS, "")).await;
    assert_eq!(list.status, StatusCode::OK, "{}", list.text);
    assert_eq!(list.json["subscription_filters"][0]["name"], "errors");
    let answer = send(
        &state,
        json_request("DELETE", &format!("{FILTERS}/errors"), ""),
    )
    .await;
    assert_eq!(answer.status, StatusCode::NO_CONTENT, "{}", answer.text);
    let answer = send(
        &state,
        json_request("GET", &format!("{FILTERS}/errors"), ""),
    )
    .await;
    assert_error(&answer, StatusCode::NOT_FOUND, "not_found", &["\"errors\""]);
    let answer = send(
        &state,
        json_request("DELETE", &format!("{FILTERS}/errors"), ""),
    )
    .await;
    assert_error(&answer, StatusCode::NOT_FOUND, "not_found", &["\"errors\""]);
}

#[tokio::test]
async fn bad_filters_are_4xx_naming_the_field() {
    let (state, _dir) = state_with_subscriptions();
    send(&state, json_request("PUT", "/api/logs/%2Fapp%2Fapi", "{}")).await;
    let put = |name: &str, body: Value| {
        json_request("PUT", &format!("{FILTERS}/{name}"), &body.to_string())
    };
    let http = json!({"type": "http", "url": "http://127.0.0.1:9/x"});
    let answer = send(
        &state,
        put("a", json!({"pattern": "[a, b", "destination": http})),
    )
    .await;
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        "bad_request",
        &["pattern: column "],
    );
    let answer = send(
        &state,
        put(
            "a",
            json!({"pattern": "", "destination": {"type": "http", "url": "ftp://h/"}}),
        ),
    )
    .await;
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        "bad_request",
        &["destination.url: "],
    );
    let answer = send(
        &state,
        put(
            "a",
            json!({"destination": {"type": "otlp", "endpoint": "nope"}}),
        ),
    )
    .await;
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        "bad_request",
        &["destination.endpoint: "],
    );
    let answer = send(
        &state,
        put(
            "a",
            json!({"destination": {"type": "file", "path": "/etc/passwd"}}),
        ),
    )
    .await;
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        "bad_request",
        &["destination.path: "],
    );
    let answer = send(
        &state,
        put("a", json!({"destination": {"type": "kinesis"}})),
    )
    .await;
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        "bad_request",
        &["kinesis"],
    );
    let answer = send(&state, put("a:b", json!({"destination": http}))).await;
    assert_error(&answer, StatusCode::BAD_REQUEST, "bad_request", &["name: "]);
    let answer = send(
        &state,
        json_request(
            "PUT",
            "/api/logs/%2Fnope/subscription-filters/a",
            &json!({"destination": http}).to_string(),
        ),
    )
    .await;
    assert_error(&answer, StatusCode::NOT_FOUND, "not_found", &["\"/nope\""]);
    let answer = send(
        &state,
        json_request("GET", "/api/logs/%2Fnope/subscription-filters", ""),
    )
    .await;
    assert_error(&answer, StatusCode::NOT_FOUND, "not_found", &["\"/nope\""]);
    for name in ["a", "b"] {
        let answer = send(&state, put(name, json!({"destination": http}))).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    }
    let answer = send(&state, put("c", json!({"destination": http}))).await;
    assert_error(
        &answer,
        StatusCode::CONFLICT,
        "conflict",
        &["2 subscription filters already"],
    );
    let file = json!({"destination": {"type": "file", "path": "errors.jsonl"}});
    let answer = send(&state, put("b", file)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let path = answer.json["destination"]["path"].as_str().expect("path");
    assert!(path.ends_with("files/errors.jsonl"), "{path}");
}

#[tokio::test]
async fn with_logs_off_the_routes_answer_503() {
    let state = demo_state();
    let answer = send(&state, json_request("GET", FILTERS, "")).await;
    assert_error(
        &answer,
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        &["logs are off"],
    );
}
