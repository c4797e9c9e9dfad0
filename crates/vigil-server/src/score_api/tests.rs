use axum::body::Body;
use axum::http::{Request, StatusCode};
use serde_json::json;

use crate::config::{Config, ModelConfig, ModelSource, UnknownFeatures};
use crate::state::AppState;
use crate::test_util::*;

async fn score(state: &AppState, model: &str, body: &str) -> Answer {
    call(
        state,
        "POST",
        &format!("/v1/models/{model}/score"),
        Some(body),
    )
    .await
}

#[tokio::test]
async fn one_row_gets_score_label_and_threshold() {
    let state = demo_state();
    for row in [DEMO_ROW, DEMO_ROW_2] {
        let body = format!(
            "{{\"id\": \"tx-1\", \"features\": {}}}",
            demo_features(&row)
        );
        let answer = score(&state, "fraud", &body).await;
        assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
        let want = expected(&state, "fraud", &row)[0];
        assert_eq!(answer.json["score"].as_f64(), Some(want));
        assert_eq!(answer.json["id"], "tx-1");
        assert_eq!(answer.json["model"], "fraud");
        assert_eq!(answer.json["version"], "1");
        assert_eq!(answer.json["threshold"], 0.5);
        assert_eq!(
            answer.json["label"],
            if want >= 0.5 { "fraud" } else { "legit" }
        );
    }
    // The two demo rows sit on both sides of the threshold.
    let a = expected(&state, "fraud", &DEMO_ROW)[0];
    let b = expected(&state, "fraud", &DEMO_ROW_2)[0];
    assert!(a >= 0.5 && b < 0.5, "{a} {b}");
}

#[tokio::test]
async fn missing_and_null_features_are_missing_values() {
    let state = demo_state();
    let answer = score(
        &state,
        "fraud",
        r#"{"features": {"hour": 3, "amount": 950.5, "foreign": null}}"#,
    )
    .await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let mut row = [f64::NAN; 8];
    row[0] = 950.5;
    row[2] = 3.0;
    assert_eq!(
        answer.json["score"].as_f64(),
        Some(expected(&state, "fraud", &row)[0])
    );
    assert!(answer.json.get("id").is_none());
}

#[tokio::test]
async fn threshold_and_labels_come_from_config() {
    let demo = demo_state();
    let score_a = expected(&demo, "fraud", &DEMO_ROW)[0];
    let mut config = Config::demo();
    let mut model = ModelConfig::new("fraud".into(), ModelSource::Bytes(crate::DEMO_MODEL));
    model.threshold = score_a; // score >= threshold → positive
    model.labels = ["ok".into(), "block".into()];
    model.version = "2024-06".into();
    config.models = vec![model];
    let state = AppState::from_config(&config).expect("loads");
    let body = format!("{{\"features\": {}}}", demo_features(&DEMO_ROW));
    let answer = score(&state, "fraud", &body).await;
    assert_eq!(answer.json["label"], "block");
    assert_eq!(answer.json["threshold"].as_f64(), Some(score_a));
    assert_eq!(answer.json["version"], "2024-06");
    config.models[0].threshold = f64::from_bits(score_a.to_bits() + 1);
    let state = AppState::from_config(&config).expect("loads");
    let answer = score(&state, "fraud", &body).await;
    assert_eq!(answer.json["label"], "ok");
}

#[tokio::test]
async fn instances_keep_order_and_ids() {
    let state = demo_state();
    let body = format!(
        "{{\"id\": \"batch-9\", \"instances\": [{{\"id\": \"a\", \"features\": {}}}, {{\"features\": {}}}, {{\"id\": \"c\", \"features\": {{}}}}]}}",
        demo_features(&DEMO_ROW),
        demo_features(&DEMO_ROW_2)
    );
    let answer = score(&state, "fraud", &body).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.json["id"], "batch-9");
    assert_eq!(answer.json["model"], "fraud");
    assert_eq!(answer.json["threshold"], 0.5);
    let predictions = answer.json["predictions"].as_array().expect("predictions");
    assert_eq!(predictions.len(), 3);
    let rows = [DEMO_ROW, DEMO_ROW_2, [f64::NAN; 8]];
    for (prediction, row) in predictions.iter().zip(rows) {
        let want = expected(&state, "fraud", &row)[0];
        assert_eq!(prediction["score"].as_f64(), Some(want));
        assert_eq!(
            prediction["label"],
            if want >= 0.5 { "fraud" } else { "legit" }
        );
    }
    assert_eq!(predictions[0]["id"], "a");
    assert!(predictions[1].get("id").is_none());
    assert_eq!(predictions[2]["id"], "c");

    let answer = score(&state, "fraud", r#"{"instances": []}"#).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(answer.json["predictions"], json!([]));
}

#[tokio::test]
async fn multiclass_and_regression_models() {
    let state = state_with(
        &[("multi", SOFTPROB), ("reg", XGB_REG)],
        UnknownFeatures::Reject,
        1 << 20,
    );
    let body = r#"{"features": {"amount": 3.5, "count": 2, "x2": -1.25, "x9": 7}}"#;
    let mut row = [f64::NAN; 10];
    row[0] = 3.5;
    row[1] = 2.0;
    row[2] = -1.25;
    row[9] = 7.0;

    let answer = score(&state, "multi", body).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let want = expected(&state, "multi", &row);
    assert_eq!(numbers(&answer.json["scores"]), want);
    let argmax = (0..want.len()).fold(0, |best, i| if want[i] > want[best] { i } else { best });
    assert_eq!(answer.json["label"], argmax.to_string());
    assert!(answer.json.get("score").is_none());
    assert!(answer.json.get("threshold").is_none());

    let answer = score(&state, "reg", body).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(
        answer.json["score"].as_f64(),
        Some(expected(&state, "reg", &row)[0])
    );
    assert!(answer.json.get("label").is_none());
    assert!(answer.json.get("threshold").is_none());
}

#[tokio::test]
async fn unknown_features_rejected_with_position_or_ignored() {
    let body = r#"{"features": {"amount": 10, "colour": "red"}}"#;
    let answer = score(&demo_state(), "fraud", body).await;
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        "bad_request",
        &["unknown feature `colour`", "model `fraud`", "line 1 column"],
    );
    let state = state_with(
        &[("fraud", crate::DEMO_MODEL)],
        UnknownFeatures::Ignore,
        1 << 20,
    );
    let answer = score(&state, "fraud", body).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let mut row = [f64::NAN; 8];
    row[0] = 10.0;
    assert_eq!(
        answer.json["score"].as_f64(),
        Some(expected(&state, "fraud", &row)[0])
    );
}

#[tokio::test]
async fn bad_requests_are_precise() {
    let state = demo_state();
    // `demo_state` has no inference log: ids follow the same rules anyway.
    let cases: [(&str, &[&str]); 12] = [
        (
            r#"{"features": {"amount": "12.5"}}"#,
            &[
                "invalid type: string \"12.5\"",
                "a number or null for feature `amount`",
            ],
        ),
        (
            r#"{"features": {"foreign": true}}"#,
            &["invalid type: boolean `true`", "feature `foreign`"],
        ),
        (
            r#"{"id": "x"}"#,
            &["needs `features` (one row) or `instances`"],
        ),
        (
            r#"{"features": {}, "instances": []}"#,
            &["`instances` given after `features`"],
        ),
        (
            r#"{"feature": {}}"#,
            &[
                "unknown field `feature`",
                "expected one of `id`, `features`, `instances`",
            ],
        ),
        (
            r#"{"features": [1, 2]}"#,
            &[
                "invalid type: sequence",
                "an object of feature name to number or null",
            ],
        ),
        (
            r#"{"instances": [{"id": "a"}]}"#,
            &["missing field `features`"],
        ),
        (
            r#"{"instances": [{"features": {}, "extra": 1}]}"#,
            &["unknown field `extra`"],
        ),
        (
            r#"{"id": 7, "features": {}}"#,
            &["invalid type: integer `7`, expected a string"],
        ),
        (
            r#"{"id": "", "features": {}}"#,
            &["invalid `id`", "must not be empty"],
        ),
        (
            r#"{"instances": [{"id": "a\u0001", "features": {}}]}"#,
            &["invalid `instances[0].id`", "control characters"],
        ),
        (
            r#"[1, 2]"#,
            &[
                "invalid type: sequence",
                "`features` (one row) or `instances`",
            ],
        ),
    ];
    for (body, needles) in cases {
        let answer = score(&state, "fraud", body).await;
        assert_error(&answer, StatusCode::BAD_REQUEST, "bad_request", needles);
    }
}

#[tokio::test]
async fn malformed_json_has_line_and_column() {
    let state = demo_state();
    let answer = score(
        &state,
        "fraud",
        "{\"features\": {\n  \"amount\": 12,\n  \"hour\" 3}}",
    )
    .await;
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        "bad_request",
        &["malformed json", "expected `:` at line 3 column"],
    );
    let answer = score(&state, "fraud", "{\"features\": {}} trailing").await;
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        "bad_request",
        &["malformed json", "trailing characters"],
    );
    let answer = score(&state, "fraud", "").await;
    assert_error(
        &answer,
        StatusCode::BAD_REQUEST,
        "bad_request",
        &["malformed json", "EOF"],
    );
}

#[tokio::test]
async fn unknown_model_content_type_and_size() {
    let state = demo_state();
    let answer = score(&state, "nope", r#"{"features": {}}"#).await;
    assert_error(
        &answer,
        StatusCode::NOT_FOUND,
        "not_found",
        &["model `nope` not found"],
    );

    let request = Request::builder()
        .method("POST")
        .uri("/v1/models/fraud/score")
        .body(Body::from(r#"{"features": {}}"#))
        .expect("request");
    let answer = send(&state, request).await;
    assert_error(
        &answer,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        &["missing content-type"],
    );
    let request = Request::builder()
        .method("POST")
        .uri("/v1/models/fraud/score")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(Body::from("a=1"))
        .expect("request");
    let answer = send(&state, request).await;
    assert_error(
        &answer,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
        &["got `application/x-www-form-urlencoded`"],
    );

    let small = state_with(
        &[("fraud", crate::DEMO_MODEL)],
        UnknownFeatures::Reject,
        100,
    );
    let body = format!("{{\"features\": {}}}", demo_features(&DEMO_ROW));
    assert!(body.len() > 100);
    let answer = score(&small, "fraud", &body).await;
    assert_error(
        &answer,
        StatusCode::PAYLOAD_TOO_LARGE,
        "payload_too_large",
        &["max_body_bytes (100 bytes)"],
    );
    let answer = score(&small, "fraud", r#"{"features": {"amount": 1}}"#).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
}
