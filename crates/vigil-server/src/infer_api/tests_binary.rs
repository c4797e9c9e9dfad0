//! Router tests of the content-type rule and the binary tensor data
//! extension, both directions.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::json;

use crate::test_util::*;

/// Status, headers and raw body of one request.
async fn raw(
    state: &crate::AppState,
    headers: &[(&str, &str)],
    body: Vec<u8>,
) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let mut builder = Request::builder()
        .method("POST")
        .uri("/v2/models/fraud/infer");
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let answer = send(state, builder.body(Body::from(body)).expect("request")).await;
    (answer.status, answer.headers, answer.bytes)
}

/// A JSON header followed by `binary`, with its header length.
fn framed(header: &serde_json::Value, binary: &[u8]) -> (Vec<u8>, String) {
    let mut body = serde_json::to_vec(header).expect("json");
    let length = body.len().to_string();
    body.extend_from_slice(binary);
    (body, length)
}

/// The JSON header and the binary section of a binary response.
fn unframe(headers: &axum::http::HeaderMap, body: &[u8]) -> (serde_json::Value, Vec<u8>) {
    assert_eq!(headers["content-type"], "application/octet-stream");
    let length: usize = headers["inference-header-content-length"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("a length");
    let json = serde_json::from_slice(&body[..length]).expect("json header");
    (json, body[length..].to_vec())
}

fn le_f64(bytes: &[u8]) -> Vec<f64> {
    bytes
        .chunks_exact(8)
        .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")))
        .collect()
}

fn le_strings(mut bytes: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let (len, rest) = bytes.split_at(4);
        let len = u32::from_le_bytes(len.try_into().expect("4 bytes")) as usize;
        out.push(String::from_utf8(rest[..len].to_vec()).expect("utf-8"));
        bytes = &rest[len..];
    }
    out
}

fn label_for(score: f64) -> &'static str {
    if score >= 0.5 { "fraud" } else { "legit" }
}

fn json_body() -> Vec<u8> {
    json!({"inputs": [{"name": "x", "shape": [1, 8], "datatype": "FP32", "data": DEMO_ROW}]})
        .to_string()
        .into_bytes()
}

#[tokio::test]
async fn infer_without_content_type_is_json_and_wrong_types_are_415() {
    let state = demo_state();
    let want = expected(&state, "fraud", &DEMO_ROW)[0];
    let (status, headers, body) = raw(&state, &[], json_body()).await;
    assert_eq!(status, StatusCode::OK, "{}", String::from_utf8_lossy(&body));
    assert_eq!(headers["content-type"], "application/json");
    let answer: serde_json::Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(numbers(&answer["outputs"][0]["data"]), vec![want]);

    for (content_type, needle) in [
        ("text/plain", "got `text/plain`"),
        (
            "application/x-www-form-urlencoded",
            "got `application/x-www-form-urlencoded`",
        ),
        (
            "application/octet-stream",
            "goes with Inference-Header-Content-Length",
        ),
    ] {
        let (status, _, body) = raw(&state, &[("content-type", content_type)], json_body()).await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE);
        let error: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(error["code"], "unsupported_media_type");
        let message = error["error"].as_str().expect("message");
        assert!(message.contains(needle), "{message}");
    }

    // /v1 keeps its rule: a body must say it is JSON.
    let request = Request::builder()
        .method("POST")
        .uri("/v1/models/fraud/score")
        .body(Body::from(demo_features(&DEMO_ROW)))
        .expect("request");
    let answer = send(&state, request).await;
    assert_error(
        &answer,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        &["missing content-type"],
    );
}

#[tokio::test]
async fn binary_inputs_and_binary_outputs() {
    let state = demo_state();
    let rows: Vec<f32> = DEMO_ROW
        .iter()
        .chain(&DEMO_ROW_2)
        .map(|&v| v as f32)
        .collect();
    let binary: Vec<u8> = rows.iter().flat_map(|v| v.to_le_bytes()).collect();
    let header = json!({
        "id": "bin-1",
        "parameters": {"binary_data_output": true},
        "inputs": [{"name": "input-0", "shape": [2, 8], "datatype": "FP32",
            "parameters": {"binary_data_size": binary.len()}}]
    });
    let (body, length) = framed(&header, &binary);
    for content_type in [None, Some("application/octet-stream")] {
        let mut headers = vec![("inference-header-content-length", length.as_str())];
        headers.extend(content_type.map(|t| ("content-type", t)));
        let (status, headers, answer) = raw(&state, &headers, body.clone()).await;
        assert_eq!(
            status,
            StatusCode::OK,
            "{}",
            String::from_utf8_lossy(&answer)
        );
        let (json, data) = unframe(&headers, &answer);
        assert_eq!(json["id"], "bin-1");
        let a = expected(&state, "fraud", &DEMO_ROW)[0];
        let b = expected(&state, "fraud", &DEMO_ROW_2)[0];
        let outputs = json["outputs"].as_array().expect("outputs");
        assert_eq!(outputs[0]["name"], "score");
        assert_eq!(outputs[0]["shape"], json!([2]));
        assert!(outputs[0].get("data").is_none(), "{json}");
        assert_eq!(outputs[0]["parameters"]["binary_data_size"], 16);
        let label_size = outputs[1]["parameters"]["binary_data_size"]
            .as_u64()
            .expect("label size") as usize;
        assert_eq!(16 + label_size, data.len());
        assert_eq!(le_f64(&data[..16]), vec![a, b]);
        assert_eq!(le_strings(&data[16..]), vec![label_for(a), label_for(b)]);
    }
}

#[tokio::test]
async fn mixed_json_and_binary_inputs_and_outputs() {
    let state = demo_state();
    // Two rows; `amount` and `hour` binary (FP64, INT32), the rest JSON.
    let mut binary = Vec::new();
    let mut inputs = Vec::new();
    for (i, name) in DEMO_FEATURES.iter().enumerate() {
        let values = [DEMO_ROW[i], DEMO_ROW_2[i]];
        match i {
            0 => {
                binary.extend(values.iter().flat_map(|v| v.to_le_bytes()));
                inputs.push(json!({"name": name, "shape": [2], "datatype": "FP64",
                    "parameters": {"binary_data_size": 16}}));
            }
            2 => {
                binary.extend(values.iter().flat_map(|v| (*v as i32).to_le_bytes()));
                inputs.push(json!({"name": name, "shape": [2, 1], "datatype": "INT32",
                    "parameters": {"binary_data_size": 8}}));
            }
            _ => {
                inputs.push(json!({"name": name, "shape": [2], "datatype": "FP64", "data": values}))
            }
        }
    }
    let header = json!({
        "inputs": inputs,
        "outputs": [{"name": "score", "parameters": {"binary_data": true}}, {"name": "label"}]
    });
    let (body, length) = framed(&header, &binary);
    let (status, headers, answer) = raw(
        &state,
        &[("inference-header-content-length", &length)],
        body,
    )
    .await;
    assert_eq!(
        status,
        StatusCode::OK,
        "{}",
        String::from_utf8_lossy(&answer)
    );
    let (json, data) = unframe(&headers, &answer);
    let want = vec![
        expected(&state, "fraud", &DEMO_ROW)[0],
        expected(&state, "fraud", &DEMO_ROW_2)[0],
    ];
    assert_eq!(le_f64(&data), want);
    let outputs = json["outputs"].as_array().expect("outputs");
    assert_eq!(outputs[1]["name"], "label");
    assert!(outputs[1].get("parameters").is_none());
    assert_eq!(
        outputs[1]["data"],
        json!([label_for(want[0]), label_for(want[1])])
    );

    // Every output asked for as JSON: a plain JSON answer, no header.
    let header = json!({
        "parameters": {"binary_data_output": true},
        "inputs": [{"name": "x", "shape": [1, 8], "datatype": "FP32", "data": DEMO_ROW}],
        "outputs": [{"name": "score", "parameters": {"binary_data": false}}]
    });
    let (status, headers, answer) = raw(&state, &[], header.to_string().into_bytes()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(headers.get("inference-header-content-length").is_none());
    let json: serde_json::Value = serde_json::from_slice(&answer).expect("json");
    assert_eq!(numbers(&json["outputs"][0]["data"]), vec![want[0]]);
}

#[tokio::test]
async fn binary_framing_errors_are_400s_naming_the_input() {
    let state = demo_state();
    let header = json!({"inputs": [{"name": "input-0", "shape": [1, 8], "datatype": "FP32",
        "parameters": {"binary_data_size": 30}}]});
    let (body, length) = framed(&header, &[0; 30]);
    let past = (body.len() + 1).to_string();
    for (length, needle) in [
        (
            length.as_str(),
            "tensor `input-0` has shape [1, 8] and datatype FP32 (32 bytes) but binary_data_size 30",
        ),
        (past.as_str(), "but the body has"),
        (
            "abc",
            "Inference-Header-Content-Length must be a byte count, got `abc`",
        ),
    ] {
        let (status, _, answer) = raw(
            &state,
            &[("inference-header-content-length", length)],
            body.clone(),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        let error: serde_json::Value = serde_json::from_slice(&answer).expect("json");
        assert_eq!(error["code"], "bad_request");
        let message = error["error"].as_str().expect("message");
        assert!(message.contains(needle), "{needle:?} not in {message:?}");
    }
}

#[test]
fn openapi_states_the_binary_form() {
    let doc: serde_json::Value =
        serde_json::from_str(&crate::openapi().to_json().expect("json")).expect("json");
    for path in [
        "/v2/models/{name}/infer",
        "/v2/models/{name}/versions/{version}/infer",
    ] {
        let post = &doc["paths"][path]["post"];
        let request = &post["requestBody"]["content"];
        assert!(request.get("application/json").is_some(), "{post}");
        assert!(request.get("application/octet-stream").is_some(), "{post}");
        let params = post["parameters"].as_array().expect("parameters");
        assert!(
            params
                .iter()
                .any(|p| p["name"] == "Inference-Header-Content-Length" && p["in"] == "header"),
            "{post}"
        );
        let ok = &post["responses"]["200"];
        assert!(
            ok["content"].get("application/octet-stream").is_some(),
            "{ok}"
        );
        assert!(
            ok["headers"]
                .get("Inference-Header-Content-Length")
                .is_some(),
            "{ok}"
        );
    }
    let tensor = &doc["components"]["schemas"]["OutputTensor"]["properties"];
    assert!(tensor.get("parameters").is_some(), "{tensor}");
}
