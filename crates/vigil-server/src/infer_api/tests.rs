use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::json;

use crate::config::UnknownFeatures;
use crate::test_util::*;

const FEATURES: [&str; 8] = [
    "amount",
    "merchant_category",
    "hour",
    "card_age_days",
    "tx_last_hour",
    "distance_from_home_km",
    "foreign",
    "new_device",
];

async fn infer(state: &crate::AppState, body: &serde_json::Value) -> Answer {
    call(
        state,
        "POST",
        "/v2/models/fraud/infer",
        Some(&body.to_string()),
    )
    .await
}

fn label_for(score: f64) -> &'static str {
    if score >= 0.5 { "fraud" } else { "legit" }
}

#[tokio::test]
async fn model_metadata_describes_features_and_outputs() {
    let state = demo_state();
    for uri in ["/v2/models/fraud", "/v2/models/fraud/versions/1"] {
        let answer = call(&state, "GET", uri, None).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
        let meta = &answer.json;
        assert_eq!(meta["name"], "fraud");
        assert_eq!(meta["versions"], json!(["1"]));
        assert_eq!(meta["platform"], "xgboost");
        let inputs = meta["inputs"].as_array().expect("inputs");
        let names: Vec<&str> = inputs
            .iter()
            .map(|t| t["name"].as_str().expect("name"))
            .collect();
        assert_eq!(names, FEATURES);
        assert_eq!(inputs[0]["datatype"], "FP32");
        assert_eq!(inputs[0]["shape"], json!([-1]));
        assert_eq!(
            meta["outputs"],
            json!([
                {"name": "score", "datatype": "FP64", "shape": [-1]},
                {"name": "label", "datatype": "BYTES", "shape": [-1]}
            ])
        );
        assert_eq!(meta["parameters"]["batch_input"]["shape"], json!([-1, 8]));
        assert_eq!(meta["parameters"]["threshold"], 0.5);
        assert_eq!(meta["parameters"]["labels"], json!(["legit", "fraud"]));
        assert!(meta["parameters"]["num_trees"].as_u64().expect("trees") > 0);
    }
}

#[tokio::test]
async fn metadata_of_other_model_kinds() {
    let state = state_with(
        &[("multi", SOFTPROB), ("lgb", LGB_REG)],
        UnknownFeatures::Reject,
        1 << 20,
    );
    let multi = call(&state, "GET", "/v2/models/multi", None).await;
    assert_eq!(
        multi.json["outputs"],
        json!([{"name": "score", "datatype": "FP64", "shape": [-1, 4]}])
    );
    assert!(multi.json["parameters"].get("threshold").is_none());
    let lgb = call(&state, "GET", "/v2/models/lgb", None).await;
    assert_eq!(lgb.json["platform"], "lightgbm");
    assert_eq!(lgb.json["inputs"].as_array().expect("inputs").len(), 10);
}

#[tokio::test]
async fn unknown_model_and_version_are_404() {
    let state = demo_state();
    for (method, uri) in [
        ("GET", "/v2/models/nope"),
        ("GET", "/v2/models/nope/ready"),
        ("POST", "/v2/models/nope/infer"),
    ] {
        let body = (method == "POST").then_some("{\"inputs\": []}");
        let answer = call(&state, method, uri, body).await;
        assert_error(
            &answer,
            StatusCode::NOT_FOUND,
            "not_found",
            &["model `nope` not found"],
        );
    }
    for (method, uri) in [
        ("GET", "/v2/models/fraud/versions/2"),
        ("GET", "/v2/models/fraud/versions/2/ready"),
        ("POST", "/v2/models/fraud/versions/2/infer"),
    ] {
        let body = (method == "POST").then_some("{\"inputs\": []}");
        let answer = call(&state, method, uri, body).await;
        assert_error(
            &answer,
            StatusCode::NOT_FOUND,
            "not_found",
            &["model `fraud` has no version `2`", "served version: `1`"],
        );
    }
}

#[tokio::test]
async fn model_ready() {
    let state = demo_state();
    for uri in [
        "/v2/models/fraud/ready",
        "/v2/models/fraud/versions/1/ready",
    ] {
        let answer = call(&state, "GET", uri, None).await;
        assert_eq!(answer.status, StatusCode::OK);
        assert_eq!(answer.json, json!({"name": "fraud", "ready": true}));
    }
}

#[tokio::test]
async fn batch_tensor_nested_fp32() {
    let state = demo_state();
    let answer = infer(
        &state,
        &json!({
            "id": "req-1",
            "parameters": {"anything": true},
            "inputs": [{"name": "input-0", "shape": [2, 8], "datatype": "FP32", "data": [DEMO_ROW, DEMO_ROW_2]}]
        }),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let a = expected(&state, "fraud", &DEMO_ROW)[0];
    let b = expected(&state, "fraud", &DEMO_ROW_2)[0];
    assert_ne!(a, b, "the two rows should score differently");
    assert_eq!(answer.json["model_name"], "fraud");
    assert_eq!(answer.json["model_version"], "1");
    assert_eq!(answer.json["id"], "req-1");
    let outputs = answer.json["outputs"].as_array().expect("outputs");
    assert_eq!(outputs[0]["name"], "score");
    assert_eq!(outputs[0]["datatype"], "FP64");
    assert_eq!(outputs[0]["shape"], json!([2]));
    assert_eq!(numbers(&outputs[0]["data"]), vec![a, b]);
    assert_eq!(outputs[1]["name"], "label");
    assert_eq!(outputs[1]["datatype"], "BYTES");
    assert_eq!(outputs[1]["data"], json!([label_for(a), label_for(b)]));
}

#[tokio::test]
async fn batch_tensor_flat_int_with_nulls_and_version() {
    let state = demo_state();
    let mut data: Vec<serde_json::Value> = DEMO_ROW.iter().map(|v| json!(*v as i64)).collect();
    data[3] = serde_json::Value::Null;
    let answer = call(
        &state,
        "POST",
        "/v2/models/fraud/versions/1/infer",
        Some(
            &json!({"inputs": [{"name": "x", "shape": [1, 8], "datatype": "INT64", "data": data}]})
                .to_string(),
        ),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let mut row = DEMO_ROW;
    row[3] = f64::NAN;
    let want = expected(&state, "fraud", &row)[0];
    assert_eq!(numbers(&answer.json["outputs"][0]["data"]), vec![want]);
    assert!(answer.json.get("id").is_none());
}

#[tokio::test]
async fn one_tensor_per_feature_with_missing_ones() {
    let state = demo_state();
    // Every feature but `card_age_days`, two rows, mixed shapes and datatypes.
    let inputs: Vec<serde_json::Value> = FEATURES
        .iter()
        .enumerate()
        .filter(|(i, _)| *i != 3)
        .map(|(i, name)| {
            let shape = if i % 2 == 0 {
                json!([2])
            } else {
                json!([2, 1])
            };
            let data = if i % 2 == 0 {
                json!([DEMO_ROW[i], DEMO_ROW_2[i]])
            } else {
                json!([[DEMO_ROW[i]], [DEMO_ROW_2[i]]])
            };
            json!({"name": name, "shape": shape, "datatype": "FP64", "data": data})
        })
        .collect();
    let answer = infer(&state, &json!({ "inputs": inputs })).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let (mut a, mut b) = (DEMO_ROW, DEMO_ROW_2);
    a[3] = f64::NAN;
    b[3] = f64::NAN;
    let want = vec![
        expected(&state, "fraud", &a)[0],
        expected(&state, "fraud", &b)[0],
    ];
    assert_eq!(numbers(&answer.json["outputs"][0]["data"]), want);
}

#[tokio::test]
async fn single_feature_tensor_of_shape_batch_by_one() {
    let state = demo_state();
    let answer = infer(
        &state,
        &json!({"inputs": [{"name": "amount", "shape": [1, 1], "datatype": "FP32", "data": [5000.0]}]}),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let mut row = [f64::NAN; 8];
    row[0] = 5000.0;
    assert_eq!(
        numbers(&answer.json["outputs"][0]["data"]),
        expected(&state, "fraud", &row)
    );
}

#[tokio::test]
async fn multiclass_scores_have_shape_batch_by_classes() {
    let state = state_with(&[("multi", SOFTPROB)], UnknownFeatures::Reject, 1 << 20);
    let rows = [
        [1.0, 2.0, 0.5, -1.0, 0.0, 3.0, 1.0, 0.2, 0.1, 9.0],
        [0.0; 10],
    ];
    let body =
        json!({"inputs": [{"name": "in", "shape": [2, 10], "datatype": "FP64", "data": rows}]});
    let answer = call(
        &state,
        "POST",
        "/v2/models/multi/infer",
        Some(&body.to_string()),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let outputs = answer.json["outputs"].as_array().expect("outputs");
    assert_eq!(outputs.len(), 1);
    assert_eq!(outputs[0]["shape"], json!([2, 4]));
    let mut want = expected(&state, "multi", &rows[0]);
    want.extend(expected(&state, "multi", &rows[1]));
    assert_eq!(numbers(&outputs[0]["data"]), want);
}

#[tokio::test]
async fn requested_outputs_only() {
    let state = demo_state();
    let body = json!({
        "inputs": [{"name": "x", "shape": [1, 8], "datatype": "FP32", "data": DEMO_ROW}],
        "outputs": [{"name": "label", "parameters": {}}]
    });
    let answer = infer(&state, &body).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let outputs = answer.json["outputs"].as_array().expect("outputs");
    assert_eq!(outputs.len(), 1);
    assert_eq!(outputs[0]["name"], "label");
    let want = label_for(expected(&state, "fraud", &DEMO_ROW)[0]);
    assert_eq!(outputs[0]["data"], json!([want]));

    let body = json!({
        "inputs": [{"name": "x", "shape": [1, 8], "datatype": "FP32", "data": DEMO_ROW}],
        "outputs": [{"name": "proba"}]
    });
    let answer = infer(&state, &body).await;
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        "bad_request",
        &["unknown output `proba`"],
    );
}

#[tokio::test]
async fn unknown_feature_rejected_or_ignored() {
    let tensor =
        |name: &str| json!({"name": name, "shape": [1], "datatype": "FP32", "data": [1.0]});
    let body = json!({"inputs": [tensor("amount"), tensor("colour")]});
    let state = demo_state();
    let answer = infer(&state, &body).await;
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        "bad_request",
        &["unknown feature `colour`", "model `fraud`"],
    );

    let state = state_with(
        &[("fraud", crate::DEMO_MODEL)],
        UnknownFeatures::Ignore,
        1 << 20,
    );
    let answer = infer(&state, &body).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let mut row = [f64::NAN; 8];
    row[0] = 1.0;
    assert_eq!(
        numbers(&answer.json["outputs"][0]["data"]),
        expected(&state, "fraud", &row)
    );
}

#[tokio::test]
async fn shape_and_datatype_errors_name_the_tensor() {
    let state = demo_state();
    let cases = [
        (
            json!({"inputs": [{"name": "x", "shape": [2, 8], "datatype": "FP32", "data": DEMO_ROW}]}),
            vec!["tensor `x` has shape [2, 8] but 8 data value(s)"],
        ),
        (
            json!({"inputs": [{"name": "x", "shape": [1, 5], "datatype": "FP32", "data": [1, 2, 3, 4, 5]}]}),
            vec!["tensor `x` has shape [1, 5]", "expected [batch, 8]"],
        ),
        (
            json!({"inputs": [{"name": "x", "shape": [1, 8], "datatype": "BYTES", "data": DEMO_ROW}]}),
            vec![
                "tensor `x` has datatype BYTES",
                "expected one of FP16, FP32, FP64",
            ],
        ),
        (
            json!({"inputs": [{"name": "x", "shape": [1, 8], "datatype": "INT32", "data": [1.5, 0, 0, 0, 0, 0, 0, 0]}]}),
            vec!["tensor `x` has datatype INT32 but holds 1.5"],
        ),
        (
            json!({"inputs": [{"name": "x", "shape": [1, 8], "datatype": "UINT8", "data": [-1, 0, 0, 0, 0, 0, 0, 0]}]}),
            vec!["tensor `x` has datatype UINT8 but holds -1"],
        ),
        (
            json!({"inputs": [{"name": "amount", "shape": [2, 2, 2], "datatype": "FP32", "data": [1, 2, 3, 4, 5, 6, 7, 8]}]}),
            vec![
                "tensor `amount` has shape [2, 2, 2]",
                "[batch] or [batch, 1]",
            ],
        ),
        (
            json!({"inputs": [
                {"name": "amount", "shape": [2], "datatype": "FP32", "data": [1, 2]},
                {"name": "hour", "shape": [1], "datatype": "FP32", "data": [1]}
            ]}),
            vec!["tensor `hour` has 1 row(s) but tensor `amount` has 2"],
        ),
        (
            json!({"inputs": [
                {"name": "amount", "shape": [1], "datatype": "FP32", "data": [1]},
                {"name": "amount", "shape": [1], "datatype": "FP32", "data": [2]}
            ]}),
            vec!["feature `amount` is given twice"],
        ),
        (json!({"inputs": []}), vec!["`inputs` is empty"]),
        (
            json!({"inputs": [{"shape": [1], "datatype": "FP32", "data": [1]}]}),
            vec!["inputs[0]: missing `name`"],
        ),
        (
            json!({"inputs": [{"name": "x", "shape": [1, 8], "data": DEMO_ROW}]}),
            vec!["tensor `x`: missing `datatype`"],
        ),
        (json!({"id": "a"}), vec!["missing field `inputs`"]),
        (
            json!({"inputs": [{"name": "x", "shape": [1, 2], "datatype": "FP32", "data": [1, "high"]}]}),
            vec![
                "inputs[0]",
                "invalid type: string \"high\"",
                "a number, null or a nested array",
            ],
        ),
    ];
    for (body, needles) in cases {
        let answer = infer(&state, &body).await;
        assert_error(&answer, StatusCode::BAD_REQUEST, "bad_request", &needles);
    }
}

#[tokio::test]
async fn malformed_json_reports_line_and_column() {
    let state = demo_state();
    let answer = call(
        &state,
        "POST",
        "/v2/models/fraud/infer",
        Some("{\"inputs\": [\n  {\"name\": }]}"),
    )
    .await;
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        "bad_request",
        &["malformed json", "line 2 column"],
    );
}

#[tokio::test]
async fn content_type_and_size_limits() {
    let state = demo_state();
    let request = Request::builder()
        .method("POST")
        .uri("/v2/models/fraud/infer")
        .header("content-type", "text/plain")
        .body(Body::from("{}"))
        .expect("request");
    let answer = send(&state, request).await;
    assert_error(
        &answer,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        &["content-type must be application/json, got `text/plain`"],
    );
    let request = Request::builder()
        .method("POST")
        .uri("/v2/models/fraud/infer")
        .header("content-type", "application/json; charset=utf-8")
        .body(Body::from(
            json!({"inputs": [{"name": "x", "shape": [1, 8], "datatype": "FP32", "data": DEMO_ROW}]}).to_string(),
        ))
        .expect("request");
    assert_eq!(send(&state, request).await.status, StatusCode::OK);

    let small = state_with(&[("fraud", crate::DEMO_MODEL)], UnknownFeatures::Reject, 64);
    let body =
        json!({"inputs": [{"name": "x", "shape": [1, 8], "datatype": "FP32", "data": DEMO_ROW}]});
    let answer = infer(&small, &body).await;
    assert_error(
        &answer,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        &["larger than max_body_bytes (64 bytes)"],
    );
}
