//! In-memory tests of the gRPC service: a tonic client whose transport is
//! the app itself (the router is a tower service), so every call goes
//! through the same routing, access log and gateway as over a socket.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{Request, StatusCode};
use governor::clock::FakeRelativeClock;
use tonic::Code;
use tonic::metadata::MetadataValue;

use super::proto::grpc_inference_service_client::GrpcInferenceServiceClient;
use super::proto::model_infer_request::{InferInputTensor, InferRequestedOutputTensor};
use super::proto::*;
use crate::access_log::AccessLog;
use crate::config::Config;
use crate::error::GRPC_ERROR_CODE_KEY;
use crate::gateway::tests::{SCORE_KEY, config_with, keys_toml};
use crate::gateway::throttle::GatewayClock;
use crate::gateway::{ThrottleReason, hash_key};
use crate::inference_log::InferenceLogHandle;
use crate::state::AppState;
use crate::test_util::{
    DEMO_ROW, DEMO_ROW_2, MemorySink, assert_error, demo_state, expected, send,
};

type Client = GrpcInferenceServiceClient<axum::Router>;

fn client(state: &AppState) -> Client {
    GrpcInferenceServiceClient::new(crate::app(state.clone()))
}

fn with_metadata<T>(message: T, metadata: &[(&'static str, &str)]) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    for (key, value) in metadata {
        request
            .metadata_mut()
            .insert(*key, value.parse().expect("ascii metadata"));
    }
    request
}

fn fp32_bytes(values: &[f64]) -> bytes::Bytes {
    values
        .iter()
        .flat_map(|v| (*v as f32).to_le_bytes())
        .collect::<Vec<u8>>()
        .into()
}

/// A ModelInfer message with one raw FP32 tensor `[rows, 8]` for `fraud`.
fn raw_request(id: &str, rows: &[[f64; 8]]) -> ModelInferRequest {
    let flat: Vec<f64> = rows.iter().flatten().copied().collect();
    ModelInferRequest {
        model_name: "fraud".to_owned(),
        id: id.to_owned(),
        inputs: vec![InferInputTensor {
            name: "input-0".to_owned(),
            datatype: "FP32".to_owned(),
            shape: vec![rows.len() as i64, 8],
            ..InferInputTensor::default()
        }],
        raw_input_contents: vec![fp32_bytes(&flat)],
        ..ModelInferRequest::default()
    }
}

fn f64s(raw: &[u8]) -> Vec<f64> {
    raw.chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect()
}

fn strings(raw: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = raw;
    while rest.len() >= 4 {
        let len = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
        out.push(String::from_utf8(rest[4..4 + len].to_vec()).expect("utf8"));
        rest = &rest[4 + len..];
    }
    out
}

fn error_code(status: &tonic::Status) -> Option<&str> {
    status
        .metadata()
        .get(GRPC_ERROR_CODE_KEY)
        .and_then(|v| v.to_str().ok())
}

#[tokio::test]
async fn server_health_and_metadata() {
    let state = demo_state();
    let mut client = client(&state);
    let live = client
        .server_live(ServerLiveRequest {})
        .await
        .expect("live");
    assert!(live.get_ref().live);
    let ready = client
        .server_ready(ServerReadyRequest {})
        .await
        .expect("ready");
    assert!(ready.get_ref().ready);
    let meta = client
        .server_metadata(ServerMetadataRequest {})
        .await
        .expect("metadata");
    assert_eq!(meta.get_ref().name, "vigil");
    assert_eq!(meta.get_ref().version, env!("CARGO_PKG_VERSION"));
}

#[tokio::test]
async fn model_ready_and_metadata_match_the_rest_answers() {
    let state = demo_state();
    let mut client = client(&state);
    let ready = client
        .model_ready(ModelReadyRequest {
            name: "fraud".to_owned(),
            version: String::new(),
        })
        .await
        .expect("ready");
    assert!(ready.get_ref().ready);
    let meta = client
        .model_metadata(ModelMetadataRequest {
            name: "fraud".to_owned(),
            version: String::new(),
        })
        .await
        .expect("metadata")
        .into_inner();
    let rest = crate::test_util::call(&state, "GET", "/v2/models/fraud", None).await;
    assert_eq!(rest.status, StatusCode::OK);
    assert_eq!(meta.name, "fraud");
    assert_eq!(meta.platform, rest.json["platform"]);
    assert_eq!(
        meta.versions,
        vec![rest.json["versions"][0].as_str().expect("v")]
    );
    let names: Vec<&str> = meta.inputs.iter().map(|t| t.name.as_str()).collect();
    let rest_names: Vec<&str> = rest.json["inputs"]
        .as_array()
        .expect("inputs")
        .iter()
        .map(|t| t["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, rest_names);
    let outputs: Vec<(&str, &str)> = meta
        .outputs
        .iter()
        .map(|t| (t.name.as_str(), t.datatype.as_str()))
        .collect();
    assert_eq!(outputs, vec![("score", "FP64"), ("label", "BYTES")]);

    let missing = client
        .model_metadata(ModelMetadataRequest {
            name: "nope".to_owned(),
            version: String::new(),
        })
        .await
        .expect_err("unknown model");
    assert_eq!(missing.code(), Code::NotFound);
    assert!(
        missing.message().contains("model `nope` not found"),
        "{missing:?}"
    );
    let version = client
        .model_ready(ModelReadyRequest {
            name: "fraud".to_owned(),
            version: "99".to_owned(),
        })
        .await
        .expect_err("unknown version");
    assert_eq!(version.code(), Code::NotFound);
    assert!(version.message().contains("no version `99`"), "{version:?}");
}

#[tokio::test]
async fn infer_raw_fp32_batch_returns_raw_scores_and_labels() {
    let state = demo_state();
    let response = client(&state)
        .model_infer(raw_request("", &[DEMO_ROW, DEMO_ROW_2]))
        .await
        .expect("infer");
    let answer = response.get_ref();
    assert_eq!(answer.model_name, "fraud");
    let names: Vec<&str> = answer.outputs.iter().map(|o| o.name.as_str()).collect();
    assert_eq!(names, ["score", "label"]);
    assert_eq!(answer.outputs[0].shape, vec![2]);
    assert_eq!(answer.outputs[0].datatype, "FP64");
    let scores = f64s(&answer.raw_output_contents[0]);
    let want = [
        expected(&state, "fraud", &DEMO_ROW)[0],
        expected(&state, "fraud", &DEMO_ROW_2)[0],
    ];
    assert_eq!(scores, want);
    let labels = strings(&answer.raw_output_contents[1]);
    assert_eq!(labels.len(), 2);
    assert_ne!(labels[0], labels[1], "a fraud row and an ordinary one");
    assert_eq!(
        response
            .metadata()
            .get(crate::cache::CACHE_HEADER)
            .map(|v| v.to_str().ok()),
        Some(Some("miss")),
        "{:?}",
        response.metadata()
    );
}

#[tokio::test]
async fn infer_typed_contents_per_feature_equals_the_rest_answer() {
    let state = demo_state();
    let registry = state.registry();
    let entry = registry.get("fraud").expect("fraud");
    let inputs: Vec<InferInputTensor> = entry
        .model
        .feature_names()
        .iter()
        .zip(DEMO_ROW_2)
        .map(|(name, value)| InferInputTensor {
            name: name.clone(),
            datatype: "FP64".to_owned(),
            shape: vec![1],
            contents: Some(InferTensorContents {
                fp64_contents: vec![value],
                ..InferTensorContents::default()
            }),
            ..InferInputTensor::default()
        })
        .collect();
    let message = ModelInferRequest {
        model_name: "fraud".to_owned(),
        id: "typed-1".to_owned(),
        inputs,
        outputs: vec![InferRequestedOutputTensor {
            name: "score".to_owned(),
            ..InferRequestedOutputTensor::default()
        }],
        ..ModelInferRequest::default()
    };
    let answer = client(&state)
        .model_infer(message)
        .await
        .expect("infer")
        .into_inner();
    assert_eq!(answer.id, "typed-1");
    assert_eq!(answer.outputs.len(), 1, "only the score was asked for");
    let body = serde_json::json!({"inputs": [{"name": "input-0", "datatype": "FP64",
        "shape": [1, 8], "data": DEMO_ROW_2}]});
    let rest = crate::test_util::call(
        &state,
        "POST",
        "/v2/models/fraud/infer",
        Some(&body.to_string()),
    )
    .await;
    assert_eq!(rest.status, StatusCode::OK, "{}", rest.text);
    let rest_score = rest.json["outputs"][0]["data"][0].as_f64().expect("score");
    assert_eq!(f64s(&answer.raw_output_contents[0]), vec![rest_score]);
}

#[tokio::test]
async fn bad_tensors_are_invalid_argument_naming_the_field() {
    let state = demo_state();
    let mut client = client(&state);
    let mut short = raw_request("", &[DEMO_ROW]);
    short.inputs[0].shape = vec![2, 8];
    let err = client.model_infer(short).await.expect_err("shape");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("tensor `input-0`"), "{err:?}");
    assert_eq!(error_code(&err), Some("bad_request"));

    let mut torn = raw_request("", &[DEMO_ROW]);
    torn.raw_input_contents[0].truncate(31);
    let err = client.model_infer(torn).await.expect_err("torn");
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("31 bytes"), "{err:?}");

    let mut extra = raw_request("", &[DEMO_ROW]);
    extra
        .raw_input_contents
        .push(bytes::Bytes::from_static(b"x"));
    let err = client.model_infer(extra).await.expect_err("two raw");
    assert!(
        err.message().contains("raw_input_contents has 2 entries"),
        "{err:?}"
    );

    let mut unknown = raw_request("", &[DEMO_ROW]);
    unknown.model_name = "nope".to_owned();
    let err = client.model_infer(unknown).await.expect_err("model");
    assert_eq!(err.code(), Code::NotFound);

    let mut output = raw_request("", &[DEMO_ROW]);
    output.outputs = vec![InferRequestedOutputTensor {
        name: "proba".to_owned(),
        ..InferRequestedOutputTensor::default()
    }];
    let err = client.model_infer(output).await.expect_err("output");
    assert!(err.message().contains("unknown output `proba`"), "{err:?}");
}

#[tokio::test]
async fn keys_come_from_metadata_and_map_to_grpc_codes() {
    let state = AppState::from_config(&config_with(&keys_toml())).expect("state");
    let mut client = client(&state);
    // Health stays open, as over HTTP.
    assert!(client.server_live(ServerLiveRequest {}).await.is_ok());

    let err = client
        .model_infer(raw_request("", &[DEMO_ROW]))
        .await
        .expect_err("no key");
    assert_eq!(err.code(), Code::Unauthenticated);
    assert!(err.message().contains("missing api key"), "{err:?}");
    let err = client
        .model_infer(with_metadata(
            raw_request("", &[DEMO_ROW]),
            &[("x-api-key", "vgl_nope")],
        ))
        .await
        .expect_err("unknown key");
    assert_eq!(err.code(), Code::PermissionDenied);
    let err = client
        .model_metadata(ModelMetadataRequest {
            name: "fraud".to_owned(),
            version: String::new(),
        })
        .await
        .expect_err("metadata needs a key too");
    assert_eq!(err.code(), Code::Unauthenticated);

    let bearer = format!("Bearer {SCORE_KEY}");
    for metadata in [
        [("authorization", bearer.as_str())],
        [("x-api-key", SCORE_KEY)],
    ] {
        let answer = client
            .model_infer(with_metadata(raw_request("", &[DEMO_ROW]), &metadata))
            .await
            .expect("a score key may infer");
        assert_eq!(
            f64s(&answer.get_ref().raw_output_contents[0]),
            expected(&state, "fraud", &DEMO_ROW)
        );
    }
    assert_eq!(
        state
            .gateway()
            .telemetry()
            .snapshot()
            .iter()
            .find(|r| r.0 == crate::telemetry::names::AUTH_FAILURES.name)
            .map(|r| r.2),
        Some(3)
    );
}

#[tokio::test]
async fn throttled_calls_are_resource_exhausted_with_retry_metadata() {
    let extra = format!(
        "[gateway]\nrate_per_s = 1.0\nburst = 1\n\n[[keys]]\nname = \"checkout\"\nhash = \"{}\"\n",
        hash_key(SCORE_KEY)
    );
    let clock = FakeRelativeClock::default();
    let state = AppState::with_clock(&config_with(&extra), GatewayClock::Fake(clock.clone()))
        .expect("state");
    let mut client = client(&state);
    let call = || with_metadata(raw_request("", &[DEMO_ROW]), &[("x-api-key", SCORE_KEY)]);
    client.model_infer(call()).await.expect("the burst");
    let err = client.model_infer(call()).await.expect_err("throttled");
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert_eq!(error_code(&err), Some("too_many_requests"));
    assert!(err.message().contains("rate limit"), "{err:?}");
    let metadata = err.metadata();
    assert_eq!(
        metadata.get(super::RETRY_AFTER_KEY),
        Some(&MetadataValue::from(1u64))
    );
    assert_eq!(
        metadata.get(super::RETRY_PUSHBACK_KEY),
        Some(&MetadataValue::from(1000u64))
    );
    assert_eq!(
        state.gateway().telemetry().throttles(ThrottleReason::Rate),
        1
    );
    clock.advance(std::time::Duration::from_secs(1));
    client.model_infer(call()).await.expect("refilled");
}

async fn logged_state() -> (AppState, tempfile::TempDir) {
    let config = Config::demo();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut store_config = config.store.store.clone();
    store_config.data_dir = dir.path().to_path_buf();
    let store = vigil_store::Store::open(&store_config)
        .await
        .expect("store opens");
    let state = AppState::from_config(&config)
        .expect("state")
        .with_inference_log(InferenceLogHandle::from_store(
            Arc::clone(&store),
            "sqlite",
            vigil_store::Store::redactor(&config.store.store),
        ));
    (state, dir)
}

#[tokio::test]
async fn the_message_id_replays_and_conflicts_like_rest() {
    let (state, _dir) = logged_state().await;
    let mut client = client(&state);
    let first = client
        .model_infer(raw_request("tx-grpc-1", &[DEMO_ROW]))
        .await
        .expect("first");
    assert_eq!(
        first
            .metadata()
            .get("vigil-inference-id")
            .map(|v| v.to_str().ok()),
        Some(Some("tx-grpc-1"))
    );
    assert!(first.metadata().get("vigil-replayed").is_none());
    let again = client
        .model_infer(raw_request("tx-grpc-1", &[DEMO_ROW]))
        .await
        .expect("replay");
    assert_eq!(
        again
            .metadata()
            .get("vigil-replayed")
            .map(|v| v.to_str().ok()),
        Some(Some("true"))
    );
    assert_eq!(
        f64s(&again.get_ref().raw_output_contents[0]),
        f64s(&first.get_ref().raw_output_contents[0])
    );
    assert_eq!(again.get_ref().id, "tx-grpc-1");
    let err = client
        .model_infer(raw_request("tx-grpc-1", &[DEMO_ROW_2]))
        .await
        .expect_err("same id, other input");
    assert_eq!(err.code(), Code::AlreadyExists);
    assert_eq!(error_code(&err), Some("conflict"));
    // The REST endpoint sees the same log.
    let stored = crate::test_util::call(&state, "GET", "/api/inferences/tx-grpc-1", None).await;
    assert_eq!(stored.status, StatusCode::OK, "{}", stored.text);
}

#[tokio::test]
async fn access_log_has_the_method_route_and_grpc_status() {
    let sink = Arc::new(MemorySink::default());
    let state = demo_state().with_access_log(AccessLog::to_sink(sink.clone()));
    let mut client = client(&state);
    client
        .model_infer(raw_request("", &[DEMO_ROW]))
        .await
        .expect("infer");
    let mut missing = raw_request("", &[DEMO_ROW]);
    missing.model_name = "nope".to_owned();
    client.model_infer(missing).await.expect_err("404");
    let lines = sink.0.lock().expect("not poisoned").clone();
    assert_eq!(lines.len(), 2, "{lines:?}");
    let parsed: Vec<serde_json::Value> = lines
        .iter()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    for line in &parsed {
        assert_eq!(line["route"], "/inference.GRPCInferenceService/ModelInfer");
        assert_eq!(line["method"], "POST");
    }
    assert_eq!(parsed[0]["grpc_status"], 0);
    assert_eq!(parsed[1]["grpc_status"], Code::NotFound as i32);
}

#[tokio::test]
async fn non_grpc_requests_and_unknown_methods() {
    let state = demo_state();
    let request = Request::post("/inference.GRPCInferenceService/ModelInfer")
        .header("content-type", "application/json")
        .body(Body::from("{}"))
        .expect("request");
    let answer = send(&state, request).await;
    assert_error(
        &answer,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        &["application/grpc"],
    );
    let request = Request::post("/grpc.health.v1.Health/Check")
        .header("content-type", "application/grpc")
        .body(Body::empty())
        .expect("request");
    let answer = send(&state, request).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.headers.get("grpc-status").map(|v| v.as_bytes()),
        Some(b"12".as_slice()),
        "UNIMPLEMENTED"
    );
    // A plain unknown path is still the JSON 404.
    let answer = crate::test_util::call(&state, "GET", "/nope", None).await;
    assert_error(&answer, StatusCode::NOT_FOUND, "not_found", &["/nope"]);
}
