#![allow(clippy::unwrap_used)]

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use tower::ServiceExt;

use crate::test_util::{demo_features, demo_state};

async fn call(app: &axum::Router, method: &str, uri: &str, body: &str) -> (StatusCode, String) {
    let request = Request::builder()
        .method(method)
        .uri(uri)
        .header("content-type", "application/json")
        .body(Body::from(body.to_owned()))
        .unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, String::from_utf8(bytes.to_vec()).unwrap())
}

#[tokio::test]
async fn prometheus_text_counts_the_requests_just_made() {
    let state = demo_state();
    let app = crate::app(state);
    let features = format!(r#"{{"features": {}}}"#, demo_features(&[1.0; 8]));
    for _ in 0..3 {
        let (status, _) = call(&app, "POST", "/v1/models/fraud/score", &features).await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, _) = call(&app, "POST", "/v1/models/fraud/score", "{").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, text) = call(&app, "GET", "/metrics", "").await;
    assert_eq!(status, StatusCode::OK);
    let route = r#"route="/v1/models/{name}/score""#;
    assert!(
        text.contains(&format!("vigil_gateway_requests_total{{{route}}} 4")),
        "{text}"
    );
    assert!(
        text.contains(&format!("vigil_gateway_4xx_errors_total{{{route}}} 1")),
        "{text}"
    );
    assert!(
        text.contains("inference_pipeline_success_total 3"),
        "{text}"
    );
    assert!(text.contains("inference_pipeline_errors_total 1"), "{text}");
    assert!(
        text.contains(r#"vigil_function_invocations_total{model="fraud",version="#),
        "{text}"
    );
    assert!(
        text.contains("# TYPE vigil_gateway_latency_seconds histogram"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            r#"vigil_gateway_latency_seconds_bucket{{{route},le="+Inf"}} 4"#
        )),
        "{text}"
    );
}
