//! Cost of an Open Inference Protocol infer request through the in-memory
//! router (no sockets), scoring every time (`Cache-Control: no-cache`):
//! one demo row as JSON, and 1,000 real ULB rows (200 trees) as JSON and
//! with the binary tensor data extension both ways.

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use http_body_util::BodyExt;
use tower::ServiceExt;
use vigil_server::{AppState, Config, ModelConfig, ModelSource, app};

const ULB: &[u8] = include_bytes!("../../vigil-model/tests/fixtures/ulb_xgb_200.json");
const GOLDEN: &str = include_str!("../../vigil-model/tests/fixtures/ulb_xgb_200.golden1000.csv");
const DEMO_ROW: [f64; 8] = [950.0, 5.0, 3.0, 12.0, 4.0, 800.0, 1.0, 1.0];

fn router() -> Router {
    let mut config = Config::demo();
    config.server.access_log = false;
    // The gateway open: no throttling.
    config.gateway.rate_per_s = 0.0;
    config.server.max_body_bytes = 4 << 20;
    config
        .models
        .push(ModelConfig::new("ulb".to_owned(), ModelSource::Bytes(ULB)));
    app(AppState::from_config(&config).expect("state"))
}

/// The golden file's 1,000 rows of 30 features.
fn ulb_rows() -> Vec<f64> {
    GOLDEN
        .lines()
        .skip(1)
        .flat_map(|line| {
            let cells: Vec<&str> = line.split(',').collect();
            cells[..cells.len() - 1]
                .iter()
                .map(|v| v.parse::<f64>().expect("a number"))
                .collect::<Vec<_>>()
        })
        .collect()
}

fn json_body(rows: &[f64], width: usize) -> Vec<u8> {
    serde_json::json!({"inputs": [{"name": "input-0", "datatype": "FP64",
        "shape": [rows.len() / width, width], "data": rows}]})
    .to_string()
    .into_bytes()
}

/// FP32 binary input, score asked for as binary; with its header length.
fn binary_body(rows: &[f64], width: usize) -> (Vec<u8>, String) {
    let values: Vec<u8> = rows
        .iter()
        .flat_map(|&v| (v as f32).to_le_bytes())
        .collect();
    let mut body = serde_json::to_vec(&serde_json::json!({"inputs": [{"name": "input-0",
        "datatype": "FP32", "shape": [rows.len() / width, width],
        "parameters": {"binary_data_size": values.len()}}],
        "outputs": [{"name": "score", "parameters": {"binary_data": true}}]}))
    .expect("json");
    let length = body.len().to_string();
    body.extend_from_slice(&values);
    (body, length)
}

fn run(
    c: &mut Criterion,
    rt: &tokio::runtime::Runtime,
    name: &str,
    rows: u64,
    app: &Router,
    make: impl Fn() -> Request<Body>,
) {
    let mut group = c.benchmark_group("oip_infer");
    group.throughput(Throughput::Elements(rows));
    group.bench_function(name, |b| {
        b.iter(|| {
            rt.block_on(async {
                let response = app.clone().oneshot(make()).await.expect("infallible");
                assert_eq!(response.status(), StatusCode::OK);
                response.into_body().collect().await.expect("body")
            })
        })
    });
    group.finish();
}

fn bench(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let app = router();
    let post = |model: &str, body: Vec<u8>, length: Option<&str>| {
        let mut builder =
            Request::post(format!("/v2/models/{model}/infer")).header("cache-control", "no-cache");
        builder = match length {
            Some(length) => builder.header("inference-header-content-length", length),
            None => builder.header("content-type", "application/json"),
        };
        builder.body(Body::from(body)).expect("request")
    };
    let demo = json_body(&DEMO_ROW, 8);
    run(c, &rt, "json_1_row", 1, &app, || {
        post("fraud", demo.clone(), None)
    });
    let rows = ulb_rows();
    let json = json_body(&rows, 30);
    run(c, &rt, "json_1000_rows", 1000, &app, || {
        post("ulb", json.clone(), None)
    });
    let (binary, length) = binary_body(&rows, 30);
    run(c, &rt, "binary_1000_rows", 1000, &app, || {
        post("ulb", binary.clone(), Some(&length))
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
