//! Helpers for the in-memory router tests.

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

use crate::access_log::{AccessLog, LineSink};
use crate::config::{Config, ModelConfig, ModelSource, UnknownFeatures};
use crate::state::AppState;

/// An answer: status, headers and the body as JSON (`Null` when empty or not JSON).
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub json: serde_json::Value,
    pub text: String,
    /// The body as sent (binary answers are not text).
    pub bytes: Vec<u8>,
}

/// Collects access-log lines.
#[derive(Debug, Default)]
pub struct MemorySink(pub Mutex<Vec<String>>);

impl LineSink for MemorySink {
    fn write_line(&self, line: String) {
        self.0.lock().expect("not poisoned").push(line);
    }
}

/// The demo config's state.
pub fn demo_state() -> AppState {
    AppState::from_config(&Config::demo()).expect("demo model loads")
}

/// A state serving `models` (name, bytes) with `unknown` for unknown features.
pub fn state_with(
    models: &[(&str, &'static [u8])],
    unknown: UnknownFeatures,
    max_body_bytes: usize,
) -> AppState {
    let mut config = Config::demo();
    config.server.max_body_bytes = max_body_bytes;
    config.models = models
        .iter()
        .map(|(name, bytes)| {
            let mut model = ModelConfig::new((*name).to_owned(), ModelSource::Bytes(bytes));
            model.unknown_features = unknown;
            model
        })
        .collect();
    AppState::from_config(&config).expect("models load")
}

/// A state with a memory access log.
pub fn logged_state() -> (AppState, Arc<MemorySink>) {
    let sink = Arc::new(MemorySink::default());
    let state = demo_state().with_access_log(AccessLog::to_sink(sink.clone()));
    (state, sink)
}

/// Send one request to a fresh router over `state`.
pub async fn call(state: &AppState, method: &str, uri: &str, body: Option<&str>) -> Answer {
    let mut builder = Request::builder().method(method).uri(uri);
    if body.is_some() {
        builder = builder.header("content-type", "application/json");
    }
    let request = builder
        .body(body.map_or_else(Body::empty, |b| Body::from(b.to_owned())))
        .expect("valid request");
    send(state, request).await
}

/// Send a prepared request.
pub async fn send(state: &AppState, request: Request<Body>) -> Answer {
    let response = crate::app(state.clone())
        .oneshot(request)
        .await
        .expect("infallible");
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let json = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
    Answer {
        status,
        headers,
        json,
        text,
        bytes: bytes.to_vec(),
    }
}

/// A request with a JSON body (`""`: none).
pub fn json_request(method: &str, uri: &str, body: &str) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(Body::from(body.to_owned()))
        .expect("request")
}

/// The demo state with an in-memory metric store (and alarm engine) on the
/// same registry as its telemetry.
pub fn state_with_metrics() -> AppState {
    let state = demo_state();
    let registry = std::sync::Arc::clone(state.gateway().telemetry().registry());
    let service = vigil_metrics::service::MetricsService::in_memory(
        vigil_metrics::tsdb::TsdbConfig::default(),
        registry,
    )
    .expect("in-memory metric store");
    state.with_metrics(std::sync::Arc::new(service))
}

/// Assert an error answer: status, code, and a message containing every needle.
pub fn assert_error(answer: &Answer, status: StatusCode, code: &str, needles: &[&str]) {
    assert_eq!(answer.status, status, "{}", answer.text);
    assert_eq!(answer.json["code"], code, "{}", answer.text);
    let message = answer.json["error"].as_str().expect("error message");
    for needle in needles {
        assert!(message.contains(needle), "{needle:?} not in {message:?}");
    }
    let request_id = answer.json["request_id"].as_str().expect("request id");
    assert_eq!(
        answer
            .headers
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
        Some(request_id)
    );
}

/// The demo model's features, in model order.
pub const DEMO_FEATURES: [&str; 8] = [
    "amount",
    "merchant_category",
    "hour",
    "card_age_days",
    "tx_last_hour",
    "distance_from_home_km",
    "foreign",
    "new_device",
];

/// A fraud-looking row for the demo model, in model order.
pub const DEMO_ROW: [f64; 8] = [950.0, 5.0, 3.0, 12.0, 4.0, 800.0, 1.0, 1.0];
/// An ordinary row for the demo model.
pub const DEMO_ROW_2: [f64; 8] = [12.5, 2.0, 14.0, 900.0, 0.0, 3.0, 0.0, 0.0];

/// The multiclass (4 classes, softprob) fixture of the model crate.
pub const SOFTPROB: &[u8] = include_bytes!("../../vigil-model/tests/fixtures/xgb_softprob.json");
/// The XGBoost regression fixture.
pub const XGB_REG: &[u8] = include_bytes!("../../vigil-model/tests/fixtures/xgb_reg.json");
/// The LightGBM regression fixture.
pub const LGB_REG: &[u8] = include_bytes!("../../vigil-model/tests/fixtures/lgb_reg.txt");

/// What the model itself says for `row`.
pub fn expected(state: &AppState, model: &str, row: &[f64]) -> Vec<f64> {
    let registry = state.registry();
    let entry = registry.get(model).expect("model exists");
    let mut out = vec![0.0; entry.model.num_outputs()];
    entry.model.predict_row(row, &mut out).expect("scores");
    out
}

/// The numbers of a JSON array.
pub fn numbers(value: &serde_json::Value) -> Vec<f64> {
    value
        .as_array()
        .expect("array")
        .iter()
        .map(|v| v.as_f64().expect("number"))
        .collect()
}

/// The demo row as a `features` object.
pub fn demo_features(row: &[f64; 8]) -> String {
    let fields: Vec<String> = DEMO_FEATURES
        .iter()
        .zip(row)
        .map(|(n, v)| format!("\"{n}\": {v}"))
        .collect();
    format!("{{{}}}", fields.join(", "))
}
