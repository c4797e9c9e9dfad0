use axum::body::Body;
use axum::http::{Request, StatusCode};

use crate::test_util::*;

#[tokio::test]
async fn live_ready_and_server_metadata() {
    let state = demo_state();
    let live = call(&state, "GET", "/v2/health/live", None).await;
    assert_eq!(live.status, StatusCode::OK);
    assert_eq!(live.json, serde_json::json!({"live": true}));
    let ready = call(&state, "GET", "/v2/health/ready", None).await;
    assert_eq!(ready.status, StatusCode::OK);
    assert_eq!(ready.json, serde_json::json!({"ready": true}));
    let meta = call(&state, "GET", "/v2", None).await;
    assert_eq!(meta.status, StatusCode::OK);
    assert_eq!(meta.json["name"], "vigil");
    assert_eq!(meta.json["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(
        meta.json["extensions"],
        serde_json::json!(["binary_tensor_data"])
    );
}

#[tokio::test]
async fn unknown_route_is_a_json_404() {
    let state = demo_state();
    let answer = call(&state, "GET", "/v3/nothing", None).await;
    assert_error(
        &answer,
        StatusCode::NOT_FOUND,
        "not_found",
        &["no route for /v3/nothing"],
    );
}

#[tokio::test]
async fn wrong_method_is_a_json_405() {
    let state = demo_state();
    let answer = call(&state, "GET", "/v1/models/fraud/score", None).await;
    assert_error(
        &answer,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        &["method GET is not allowed", "POST"],
    );
    let answer = call(&state, "DELETE", "/v2/health/live", None).await;
    assert_error(
        &answer,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        &["DELETE"],
    );
}

#[tokio::test]
async fn request_id_is_echoed_or_generated() {
    let state = demo_state();
    let request = Request::builder()
        .uri("/v2/health/live")
        .header("x-request-id", "client-id-7")
        .body(Body::empty())
        .expect("request");
    let answer = send(&state, request).await;
    assert_eq!(answer.headers["x-request-id"], "client-id-7");
    let request = Request::builder()
        .uri("/v2/nope")
        .header("x-request-id", "bad id with spaces")
        .body(Body::empty())
        .expect("request");
    let answer = send(&state, request).await;
    let generated = answer.headers["x-request-id"].to_str().expect("ascii");
    assert_ne!(generated, "bad id with spaces");
    assert_eq!(answer.json["request_id"], generated);
}

#[tokio::test]
async fn openapi_document_is_served() {
    let state = demo_state();
    let answer = call(&state, "GET", "/openapi.json", None).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.headers["content-type"], "application/json");
    assert!(
        answer.json["openapi"]
            .as_str()
            .expect("version")
            .starts_with("3.")
    );
    assert!(answer.json["paths"]["/v1/models/{name}/score"]["post"].is_object());
}

#[tokio::test]
async fn every_documented_route_is_routed() {
    // A request to each documented path must reach a handler, not the fallback.
    let state = demo_state();
    let doc = serde_json::to_value(crate::openapi()).expect("doc");
    for (path, item) in doc["paths"].as_object().expect("paths") {
        let uri = path.replace("{name}", "fraud").replace("{version}", "1");
        for method in item.as_object().expect("item").keys() {
            let body = (method == "post").then_some("{}");
            let answer = call(&state, &method.to_uppercase(), &uri, body).await;
            assert!(
                !answer.text.contains("no route for"),
                "{method} {uri} is not routed: {}",
                answer.text
            );
            assert_ne!(
                answer.status,
                StatusCode::METHOD_NOT_ALLOWED,
                "{method} {uri}"
            );
        }
    }
}

#[tokio::test]
async fn access_log_has_one_line_per_request_with_the_route_template() {
    let (state, sink) = logged_state();
    let body = format!("{{\"features\": {}}}", demo_features(&DEMO_ROW));
    let request = Request::builder()
        .method("POST")
        .uri("/v1/models/fraud/score")
        .header("content-type", "application/json")
        .header("x-request-id", "log-test-1")
        .body(Body::from(body))
        .expect("request");
    let answer = send(&state, request).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    call(&state, "GET", "/v2/missing", None).await;
    let lines = sink.0.lock().expect("lock").clone();
    assert_eq!(lines.len(), 2, "{lines:?}");
    let first: serde_json::Value = serde_json::from_str(&lines[0]).expect("json line");
    assert_eq!(first["msg"], "request");
    assert_eq!(first["level"], "info");
    assert_eq!(first["method"], "POST");
    assert_eq!(first["route"], "/v1/models/{name}/score");
    assert_eq!(first["status"], 200);
    assert_eq!(first["model"], "fraud");
    assert_eq!(first["request_id"], "log-test-1");
    assert!(first["latency_us"].is_u64());
    assert!(first["ts"].as_str().expect("ts").ends_with('Z'));
    let second: serde_json::Value = serde_json::from_str(&lines[1]).expect("json line");
    assert_eq!(second["status"], 404);
    assert_eq!(second["route"], "unmatched");
    assert_eq!(second["model"], serde_json::Value::Null);
}
