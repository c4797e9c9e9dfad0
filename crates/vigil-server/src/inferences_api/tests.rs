//! Router tests of the inference log: the write path of both scoring
//! endpoints (ids, replay, conflict, durability errors) and the read API,
//! against a real SQLite store in a temporary directory.

use std::sync::Arc;

use axum::http::StatusCode;
use vigil_store::{
    AppendOutcome, InferenceLog, InferenceRecord, ListQuery, Page, Store, StoreError,
};

use crate::config::{Config, LogConfig};
use crate::inference_log::InferenceLogHandle;
use crate::state::AppState;
use crate::test_util::{DEMO_ROW, DEMO_ROW_2, assert_error, call, demo_features, expected};

struct Logged {
    state: AppState,
    store: Arc<Store>,
    _dir: tempfile::TempDir,
}

async fn open(config: &Config, dir: &std::path::Path) -> Arc<Store> {
    let mut store_config = config.store.store.clone();
    store_config.data_dir = dir.to_path_buf();
    Store::open(&store_config).await.expect("store opens")
}

fn attach(config: &Config, store: &Arc<Store>) -> AppState {
    AppState::from_config(config)
        .expect("state")
        .with_inference_log(InferenceLogHandle::from_store(
            Arc::clone(store),
            "sqlite",
            Store::redactor(&config.store.store),
        ))
}

async fn logged_with(config: Config) -> Logged {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = open(&config, dir.path()).await;
    Logged {
        state: attach(&config, &store),
        store,
        _dir: dir,
    }
}

async fn logged() -> Logged {
    logged_with(Config::demo()).await
}

fn score_body(id: &str, row: &[f64; 8]) -> String {
    format!("{{\"id\": \"{id}\", \"features\": {}}}", demo_features(row))
}

const SCORE: &str = "/v1/models/fraud/score";

#[tokio::test]
async fn a_scored_request_is_logged_before_the_answer_and_read_back() {
    let t = logged().await;
    let answer = call(
        &t.state,
        "POST",
        SCORE,
        Some(&score_body("tx-1", &DEMO_ROW)),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.headers["vigil-inference-id"], "tx-1");
    assert!(answer.headers.get("vigil-replayed").is_none());
    let score = answer.json["score"].as_f64().expect("score");
    assert_eq!(score, expected(&t.state, "fraud", &DEMO_ROW)[0]);

    let got = call(&t.state, "GET", "/api/inferences/tx-1", None).await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.text);
    let records = got.json["records"].as_array().expect("records");
    assert_eq!(records.len(), 1);
    let record = &records[0];
    assert_eq!(record["request_id"], "tx-1");
    assert_eq!(record["model"], "fraud");
    assert_eq!(record["version"], "1");
    assert_eq!(record["scores"][0].as_f64(), Some(score));
    assert_eq!(record["label"], answer.json["label"]);
    assert_eq!(record["threshold"], 0.5);
    assert_eq!(record["cached"], false);
    assert_eq!(record["input"]["amount"], 950.0);
    assert_eq!(record["input"]["new_device"], 1.0);
    assert!(
        record["received_at"]
            .as_str()
            .expect("rfc3339")
            .ends_with('Z')
    );

    let missing = call(&t.state, "GET", "/api/inferences/tx-404", None).await;
    assert_error(&missing, StatusCode::NOT_FOUND, "not_found", &["`tx-404`"]);
}

#[tokio::test]
async fn same_id_replays_the_stored_answer_and_another_input_conflicts() {
    let t = logged().await;
    let first = call(
        &t.state,
        "POST",
        SCORE,
        Some(&score_body("tx-2", &DEMO_ROW)),
    )
    .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    let again = call(
        &t.state,
        "POST",
        SCORE,
        Some(&score_body("tx-2", &DEMO_ROW)),
    )
    .await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text);
    assert_eq!(again.headers["vigil-replayed"], "true");
    assert_eq!(again.json, first.json);

    let other = call(
        &t.state,
        "POST",
        SCORE,
        Some(&score_body("tx-2", &DEMO_ROW_2)),
    )
    .await;
    assert_error(&other, StatusCode::CONFLICT, "conflict", &["`tx-2`"]);

    // Integers and floats with the same value are the same input.
    let same = DEMO_ROW.map(|v| v as i64);
    let body = format!(
        "{{\"id\": \"tx-2\", \"features\": {}}}",
        demo_features(&same.map(|v| v as f64)).replace(".0", "")
    );
    let ints = call(&t.state, "POST", SCORE, Some(&body)).await;
    assert_eq!(ints.status, StatusCode::OK, "{}", ints.text);
    assert_eq!(ints.headers["vigil-replayed"], "true");

    let page = t.store.list(&ListQuery::default()).await.expect("list");
    assert_eq!(page.records.len(), 1, "a replay writes nothing");

    let stats = call(&t.state, "GET", "/api/store/stats", None).await;
    assert_eq!(stats.status, StatusCode::OK, "{}", stats.text);
    assert_eq!(stats.json["backend"], "sqlite");
    assert_eq!(stats.json["degraded"], false);
    let counter = |name: &str| {
        stats.json["counters"]
            .as_array()
            .and_then(|c| c.iter().find(|c| c["name"] == name))
            .and_then(|c| c["value"].as_u64())
    };
    assert_eq!(counter("vigil_store_records_written_total"), Some(1));
    assert_eq!(counter("vigil_store_write_latency_count"), Some(1));
}

#[tokio::test]
async fn a_replay_answers_with_the_stored_version_after_a_reload() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = Config::demo();
    let store = open(&config, dir.path()).await;
    let before = attach(&config, &store);
    let first = call(&before, "POST", SCORE, Some(&score_body("tx-v", &DEMO_ROW))).await;
    assert_eq!(first.json["version"], "1");

    let mut reloaded = Config::demo();
    reloaded.models[0].version = "2".to_owned();
    reloaded.models[0].threshold = 0.99;
    let after = attach(&reloaded, &store);
    let again = call(&after, "POST", SCORE, Some(&score_body("tx-v", &DEMO_ROW))).await;
    assert_eq!(again.headers["vigil-replayed"], "true");
    assert_eq!(again.json["version"], "1");
    assert_eq!(again.json["threshold"], 0.5);
    assert_eq!(again.json, first.json);
    let fresh = call(&after, "POST", SCORE, Some(&score_body("tx-w", &DEMO_ROW))).await;
    assert_eq!(fresh.json["version"], "2");
}

#[tokio::test]
async fn batch_rows_get_suffixed_ids_and_generated_ids_are_uuid_v7() {
    let t = logged().await;
    let body = format!(
        "{{\"id\": \"b-1\", \"instances\": [{{\"features\": {}}}, {{\"id\": \"own\", \"features\": {}}}, {{\"features\": {}}}]}}",
        demo_features(&DEMO_ROW),
        demo_features(&DEMO_ROW_2),
        demo_features(&DEMO_ROW_2)
    );
    let answer = call(&t.state, "POST", SCORE, Some(&body)).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    for (id, row) in [
        ("b-1%230", DEMO_ROW),
        ("own", DEMO_ROW_2),
        ("b-1%232", DEMO_ROW_2),
    ] {
        let got = call(&t.state, "GET", &format!("/api/inferences/{id}"), None).await;
        assert_eq!(got.status, StatusCode::OK, "{id}: {}", got.text);
        let score = got.json["records"][0]["scores"][0].as_f64();
        assert_eq!(score, Some(expected(&t.state, "fraud", &row)[0]), "{id}");
    }
    let replay = call(&t.state, "POST", SCORE, Some(&body)).await;
    assert_eq!(replay.headers["vigil-replayed"], "true");
    assert_eq!(replay.json, answer.json);

    let anonymous = format!("{{\"features\": {}}}", demo_features(&DEMO_ROW));
    let answer = call(&t.state, "POST", SCORE, Some(&anonymous)).await;
    let id = answer.headers["vigil-inference-id"]
        .to_str()
        .expect("ascii");
    let uuid = uuid_version(id);
    assert_eq!(uuid, Some('7'), "{id}");
    let got = call(&t.state, "GET", &format!("/api/inferences/{id}"), None).await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.text);
}

fn uuid_version(id: &str) -> Option<char> {
    (id.len() == 36).then(|| id.chars().nth(14)).flatten()
}

#[tokio::test]
async fn bad_ids_are_refused_before_scoring() {
    let t = logged().await;
    let long = "x".repeat(129);
    let answer = call(&t.state, "POST", SCORE, Some(&score_body(&long, &DEMO_ROW))).await;
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        "bad_request",
        &["longer than 128 bytes"],
    );
    let answer = call(
        &t.state,
        "POST",
        SCORE,
        Some(&score_body("a\\u0007b", &DEMO_ROW)),
    )
    .await;
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        "bad_request",
        &["control characters"],
    );
    // 127 bytes is fine alone; with `instances` the documented bound is
    // 120 bytes whatever the row count, so that `id#N` always fits.
    let batch = |id: &str| {
        format!(
            "{{\"id\": \"{id}\", \"instances\": [{{\"features\": {}}}]}}",
            demo_features(&DEMO_ROW)
        )
    };
    let answer = call(&t.state, "POST", SCORE, Some(&batch(&"y".repeat(121)))).await;
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        "bad_request",
        &["`id`", "at most 120 bytes", "got 121"],
    );
    let page = t.store.list(&ListQuery::default()).await.expect("list");
    assert!(page.records.is_empty());
    let answer = call(&t.state, "POST", SCORE, Some(&batch(&"y".repeat(120)))).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let page = t.store.list(&ListQuery::default()).await.expect("list");
    let ids: Vec<&str> = page.records.iter().map(|r| r.request_id.as_str()).collect();
    assert_eq!(ids, [format!("{}#0", "y".repeat(120))]);
}

#[tokio::test]
async fn open_inference_protocol_requests_are_logged_and_replayed() {
    let t = logged().await;
    let rows: Vec<String> = DEMO_ROW
        .iter()
        .chain(&DEMO_ROW_2)
        .map(|v| v.to_string())
        .collect();
    let body = format!(
        "{{\"id\": \"oip-1\", \"inputs\": [{{\"name\": \"x\", \"shape\": [2, 8], \"datatype\": \"FP64\", \"data\": [{}]}}]}}",
        rows.join(",")
    );
    let uri = "/v2/models/fraud/infer";
    let first = call(&t.state, "POST", uri, Some(&body)).await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.text);
    let got = call(&t.state, "GET", "/api/inferences/oip-1%231", None).await;
    assert_eq!(got.status, StatusCode::OK, "{}", got.text);
    assert_eq!(
        got.json["records"][0]["scores"][0].as_f64(),
        Some(expected(&t.state, "fraud", &DEMO_ROW_2)[0])
    );
    assert_eq!(got.json["records"][0]["input"]["amount"], 12.5);
    let again = call(&t.state, "POST", uri, Some(&body)).await;
    assert_eq!(again.headers["vigil-replayed"], "true");
    assert_eq!(again.json, first.json);
    let changed = body.replace("[2, 8]", "[1, 8]").replace(
        &format!(",{}", DEMO_ROW_2.map(|v| v.to_string()).join(",")),
        "",
    );
    let conflict = call(&t.state, "POST", uri, Some(&changed)).await;
    // One row: the id is logged as is, a new key: no conflict with `oip-1#0`.
    assert_eq!(conflict.status, StatusCode::OK, "{}", conflict.text);
    let reused = call(
        &t.state,
        "POST",
        uri,
        Some(&changed.replace("[950", "[951")),
    )
    .await;
    assert_error(&reused, StatusCode::CONFLICT, "conflict", &["`oip-1`"]);
}

#[tokio::test]
async fn redaction_rules_apply_before_the_write() {
    let mut config = Config::demo();
    let mut store = LogConfig::default();
    store
        .store
        .redact
        .insert("amount".into(), vigil_store::RedactRule::Drop);
    store
        .store
        .redact
        .insert("hour".into(), vigil_store::RedactRule::Hash);
    store.store.redact_hash_key = Some("k".into());
    config.store = store;
    let t = logged_with(config).await;
    let answer = call(&t.state, "POST", SCORE, Some(&score_body("r-1", &DEMO_ROW))).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let got = call(&t.state, "GET", "/api/inferences/r-1", None).await;
    let input = &got.json["records"][0]["input"];
    assert!(input.get("amount").is_none(), "{input}");
    assert!(input["hour"].is_string(), "{input}");
    assert_eq!(input["foreign"], 1.0);
}

#[tokio::test]
async fn list_pages_newest_first_with_filters_and_precise_errors() {
    let t = logged().await;
    for i in 0..5 {
        let row = if i % 2 == 0 { DEMO_ROW } else { DEMO_ROW_2 };
        let body = score_body(&format!("l-{i}"), &row);
        let answer = call(&t.state, "POST", SCORE, Some(&body)).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    }
    let mut seen = Vec::new();
    let mut uri = "/api/inferences?model=fraud&limit=2".to_owned();
    loop {
        let page = call(&t.state, "GET", &uri, None).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.text);
        for r in page.json["records"].as_array().expect("records") {
            seen.push(r["request_id"].as_str().expect("id").to_owned());
        }
        match page.json["next_cursor"].as_str() {
            Some(cursor) => uri = format!("/api/inferences?model=fraud&limit=2&cursor={cursor}"),
            None => break,
        }
    }
    assert_eq!(seen, ["l-4", "l-3", "l-2", "l-1", "l-0"]);

    let fraud = call(&t.state, "GET", "/api/inferences?label=fraud", None).await;
    let fraud_ids: Vec<&str> = fraud.json["records"]
        .as_array()
        .expect("records")
        .iter()
        .filter_map(|r| r["request_id"].as_str())
        .collect();
    assert_eq!(fraud_ids, ["l-4", "l-2", "l-0"]);
    let none = call(
        &t.state,
        "GET",
        "/api/inferences?from=2999-01-01T00:00:00Z",
        None,
    )
    .await;
    assert_eq!(none.json["records"].as_array().map(Vec::len), Some(0));
    let all = call(
        &t.state,
        "GET",
        "/api/inferences?from=0&to=32503680000000",
        None,
    )
    .await;
    assert_eq!(all.json["records"].as_array().map(Vec::len), Some(5));
    for window in ["from=2000&to=1000", "from=1000&to=1000"] {
        let empty = call(&t.state, "GET", &format!("/api/inferences?{window}"), None).await;
        assert_eq!(empty.status, StatusCode::OK, "{window}");
        assert_eq!(
            empty.json["records"].as_array().map(Vec::len),
            Some(0),
            "{window}"
        );
    }

    for (query, needle) in [
        ("limit=0", "`limit`"),
        ("limit=1001", "`limit`"),
        ("limit=ten", "`limit`"),
        ("from=yesterday", "`from`"),
        ("to=2026-13-01T00:00:00Z", "`to`"),
        ("cursor=%21%21", "`cursor`"),
        ("colour=red", "`colour`"),
        ("model=", "`model`"),
    ] {
        let answer = call(&t.state, "GET", &format!("/api/inferences?{query}"), None).await;
        assert_error(&answer, StatusCode::BAD_REQUEST, "bad_request", &[needle]);
    }
}

#[tokio::test]
async fn read_api_says_when_the_log_is_off() {
    let state = crate::test_util::demo_state();
    let answer = call(&state, "GET", "/api/inferences", None).await;
    assert_error(
        &answer,
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        &["store.enabled"],
    );
    let scored = call(&state, "POST", SCORE, Some(&score_body("off", &DEMO_ROW))).await;
    assert_eq!(scored.status, StatusCode::OK);
    assert!(scored.headers.get("vigil-inference-id").is_none());
}

/// A log whose writes fail: the request must fail with a generic 503.
#[derive(Debug)]
struct Down;

#[async_trait::async_trait]
impl InferenceLog for Down {
    async fn lookup(&self, _: &str, _: &str) -> vigil_store::Result<Option<InferenceRecord>> {
        Ok(None)
    }
    async fn append_batch(
        &self,
        _: Vec<InferenceRecord>,
    ) -> vigil_store::Result<Vec<AppendOutcome>> {
        Err(StoreError::SpillFull)
    }
    async fn get(&self, _: &str) -> vigil_store::Result<Vec<InferenceRecord>> {
        Err(StoreError::Unavailable(
            "connection refused at 10.0.0.7".into(),
        ))
    }
    async fn list(&self, _: &ListQuery) -> vigil_store::Result<Page> {
        Err(StoreError::Unavailable(
            "connection refused at 10.0.0.7".into(),
        ))
    }
    async fn delete_expired(&self, _: i64, _: usize) -> vigil_store::Result<u64> {
        Ok(0)
    }
}

#[tokio::test]
async fn an_unavailable_log_fails_the_request_with_a_generic_503() {
    let config = Config::demo();
    let state = AppState::from_config(&config)
        .expect("state")
        .with_inference_log(InferenceLogHandle::new(
            Arc::new(Down),
            vigil_store::Redactor::default(),
        ));
    let answer = call(&state, "POST", SCORE, Some(&score_body("d-1", &DEMO_ROW))).await;
    assert_error(
        &answer,
        StatusCode::SERVICE_UNAVAILABLE,
        "unavailable",
        &["retry later"],
    );
    assert!(!answer.text.contains("spill"), "{}", answer.text);
    let read = call(&state, "GET", "/api/inferences/d-1", None).await;
    assert_error(&read, StatusCode::SERVICE_UNAVAILABLE, "unavailable", &[]);
    assert!(!read.text.contains("10.0.0.7"), "{}", read.text);
}

#[test]
fn times_parse_as_rfc3339_or_unix_milliseconds() {
    use super::parse_time;
    assert_eq!(
        parse_time("from", "1700000000123").ok(),
        Some(1_700_000_000_123_000)
    );
    assert_eq!(
        parse_time("from", "2023-11-14T22:13:20.5Z").ok(),
        Some(1_700_000_000_500_000)
    );
    assert_eq!(
        parse_time("from", "2023-11-15T00:13:20+02:00").ok(),
        Some(1_700_000_000_000_000)
    );
    assert!(parse_time("from", "2023-11-14").is_err());
    assert!(parse_time("from", "99999999999999999999").is_err());
}
