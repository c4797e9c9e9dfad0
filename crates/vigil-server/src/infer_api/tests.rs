use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::json;

use crate::config::UnknownFeatures;
use crate::test_util::*;

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
        assert_eq!(names, DEMO_FEATURES);
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
    let inputs: Vec<serde_json::Value> = DEMO_FEATURES
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

fn one_row(id: &str) -> serde_json::Value {
    json!({"id": id, "inputs": [{"name": "x", "shape": [1, 8], "datatype": "FP32", "data": DEMO_ROW}]})
}

fn two_rows(id: &str) -> serde_json::Value {
    json!({"id": id, "inputs": [{"name": "x", "shape": [2, 8], "datatype": "FP32", "data": [DEMO_ROW, DEMO_ROW_2]}]})
}

#[tokio::test]
async fn ids_follow_the_request_id_rules_with_the_log_off() {
    let state = demo_state();
    assert!(state.log.is_none(), "the rules hold without the log");
    let refused = [
        (one_row(""), vec!["invalid `id`", "must not be empty"]),
        (
            one_row("a\u{7}b"),
            vec!["invalid `id`", "control characters"],
        ),
        (one_row(&"y".repeat(129)), vec!["invalid `id`", "128"]),
        // Two rows are logged as `id#0`, `id#1`: the score route's batch
        // limit, whatever the batch size.
        (
            two_rows(&"y".repeat(121)),
            vec![
                "invalid `id`",
                "with more than one row at most 120 bytes, got 121",
            ],
        ),
    ];
    for (body, needles) in refused {
        let answer = infer(&state, &body).await;
        assert_error(&answer, StatusCode::BAD_REQUEST, "bad_request", &needles);
    }
    for body in [one_row(&"y".repeat(128)), two_rows(&"y".repeat(120))] {
        let answer = infer(&state, &body).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
        assert_eq!(answer.json["id"], body["id"]);
    }
}

#[tokio::test]
async fn parameters_are_objects_or_null() {
    let state = demo_state();
    let tensor = json!({"name": "x", "shape": [1, 8], "datatype": "FP32", "data": DEMO_ROW, "parameters": null});
    let answer = infer(
        &state,
        &json!({"parameters": null, "inputs": [tensor], "outputs": [{"name": "score", "parameters": null}]}),
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.json["outputs"][0]["name"], "score");
    let mut array_tensor = tensor.clone();
    array_tensor["parameters"] = json!([16]);
    let refused = [
        json!({"parameters": [true], "inputs": [tensor]}),
        json!({"inputs": [array_tensor]}),
        json!({"inputs": [tensor], "outputs": [["score"]]}),
        json!({"inputs": [tensor], "outputs": [{"name": "score", "parameters": [false]}]}),
    ];
    for body in refused {
        let answer = infer(&state, &body).await;
        assert_error(
            &answer,
            StatusCode::BAD_REQUEST,
            "bad_request",
            &["expected an object"],
        );
    }
}

/// The document states the rules the two tests above and
/// `bad_requests_name_the_field` hold the server to.
#[tokio::test]
async fn the_infer_request_schema_states_the_rules() {
    let state = demo_state();
    let doc = call(&state, "GET", "/openapi.json", None).await.json;
    let schemas = &doc["components"]["schemas"];
    for path in [
        "/v2/models/{name}/infer",
        "/v2/models/{name}/versions/{version}/infer",
    ] {
        assert_eq!(
            doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"],
            "#/components/schemas/InferRequestDoc",
            "{path}"
        );
    }
    let request = &schemas["InferRequestDoc"];
    assert_eq!(request["required"], json!(["inputs"]));
    assert_eq!(request["additionalProperties"], false);
    assert_eq!(request["properties"]["inputs"]["minItems"], 1);
    assert_eq!(request["properties"]["id"]["minLength"], 1);
    assert_eq!(request["properties"]["id"]["maxLength"], 128);
    assert!(
        request["properties"]["id"]["description"]
            .as_str()
            .expect("description")
            .contains("With more than one row at most 120 bytes")
    );
    assert_eq!(
        request["properties"]["parameters"]["type"],
        json!(["object", "null"])
    );
    let forms = schemas["RequestTensor"]["oneOf"].as_array().expect("oneOf");
    assert_eq!(forms.len(), 2);
    let (json_form, binary_form) = (&forms[0], &forms[1]);
    assert_eq!(
        json_form["required"],
        json!(["name", "datatype", "shape", "data"])
    );
    assert_eq!(
        binary_form["required"],
        json!(["name", "datatype", "shape", "parameters"])
    );
    assert!(binary_form["properties"].get("data").is_none());
    for form in forms {
        assert_eq!(form["additionalProperties"], false);
        assert_eq!(
            form["properties"]["datatype"]["enum"],
            json!(crate::infer_api::NUMERIC_DATATYPES)
        );
        let shape = &form["properties"]["shape"];
        assert_eq!(
            (&shape["minItems"], &shape["maxItems"]),
            (&json!(1), &json!(2))
        );
        assert_eq!(shape["items"]["minimum"], 0);
    }
    assert_eq!(
        binary_form["properties"]["parameters"]["required"],
        json!(["binary_data_size"])
    );
    assert_eq!(
        json_form["properties"]["parameters"]["properties"]["binary_data_size"]["type"],
        "null"
    );
    assert_eq!(
        schemas["TensorValue"]["type"],
        json!(["number", "null", "array"])
    );
    assert_eq!(
        schemas["TensorValue"]["items"]["$ref"],
        "#/components/schemas/TensorValue"
    );
    let output = &schemas["RequestOutput"];
    assert_eq!(output["required"], json!(["name"]));
    assert_eq!(
        output["properties"]["name"]["enum"],
        json!(["score", "label"])
    );
}

#[tokio::test]
async fn schema_valid_tensors_are_accepted_in_both_forms() {
    // The shapes the document allows reach the model: `[batch]` per
    // feature, `[batch, 1]` per feature, `[batch, n_features]`, and a batch
    // of zero rows.
    let state = demo_state();
    let per_feature = |shape: serde_json::Value| json!({"inputs": [{"name": "amount", "shape": shape, "datatype": "FP64", "data": [DEMO_ROW[0]]}]});
    for body in [
        per_feature(json!([1])),
        per_feature(json!([1, 1])),
        one_row("r"),
    ] {
        let answer = infer(&state, &body).await;
        assert_eq!(answer.status, StatusCode::OK, "{body}: {}", answer.text);
        assert_eq!(answer.json["outputs"][0]["shape"], json!([1]));
    }
    let empty = json!({"inputs": [{"name": "x", "shape": [0, 8], "datatype": "FP32", "data": []}]});
    let answer = infer(&state, &empty).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.json["outputs"][0]["shape"], json!([0]));
    let three = json!({"inputs": [{"name": "x", "shape": [1, 8, 1], "datatype": "FP32", "data": DEMO_ROW}]});
    let answer = infer(&state, &three).await;
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        "bad_request",
        &["shape [1, 8, 1]"],
    );
}

#[tokio::test]
async fn the_header_length_parameter_is_an_optional_byte_count() {
    let state = demo_state();
    let doc = call(&state, "GET", "/openapi.json", None).await.json;
    let params = doc["paths"]["/v2/models/{name}/infer"]["post"]["parameters"]
        .as_array()
        .expect("parameters");
    let header = params
        .iter()
        .find(|p| p["name"] == "Inference-Header-Content-Length")
        .expect("the header is documented");
    assert_eq!(header["in"], "header");
    assert_eq!(header["required"], false);
    // Not nullable: a header has no null, and `null` is a 400.
    assert_eq!(header["schema"]["type"], "integer");
    assert_eq!(header["schema"]["minimum"], 0);
}
