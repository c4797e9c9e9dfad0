//! Bare axum endpoint: the machine's HTTP floor for `bench/run.sh`.
//!
//! It does what every scoring server must do at least — accept the
//! connection, read the body, parse it as JSON, answer JSON — and nothing
//! else, so a server's req/s as a fraction of the floor's shows what its own
//! work costs. Same runtime shape as `vigil serve` (multi-thread, 2 workers).
//!
//! Usage: `vigil-floor [ADDR]` (default 127.0.0.1:8090; port 0 picks one).
//! Prints `{"msg":"listening","addr":"..."}` on stdout once bound.

use std::io::Write;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::post;

const ANSWER: &str =
    r#"{"id":"floor","model":"floor","version":"1","score":0.5,"label":"legit","threshold":0.5}"#;

/// Parse the body like a real handler would, then answer a constant.
async fn score(body: axum::body::Bytes) -> impl IntoResponse {
    match serde_json::from_slice::<serde_json::Value>(&body) {
        Ok(value) => {
            // Keep the parse from being optimised away.
            std::hint::black_box(value);
            (
                StatusCode::OK,
                [(header::CONTENT_TYPE, "application/json")],
                ANSWER,
            )
        }
        Err(_) => (
            StatusCode::BAD_REQUEST,
            [(header::CONTENT_TYPE, "application/json")],
            r#"{"error":"malformed json"}"#,
        ),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8090".to_string());
    let workers = std::env::var("VIGIL_WORKER_THREADS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let app = Router::new()
            .route("/v1/models/{name}/score", post(score))
            .route("/v2/models/{name}/infer", post(score))
            .route("/", post(score));
        let listener = tokio::net::TcpListener::bind(&addr).await?;
        let bound = listener.local_addr()?;
        let mut out = std::io::stdout().lock();
        writeln!(out, r#"{{"msg":"listening","addr":"{bound}"}}"#)?;
        out.flush()?;
        drop(out);
        axum::serve(listener, app)
            .with_graceful_shutdown(async {
                let _ = tokio::signal::ctrl_c().await;
            })
            .await?;
        Ok(())
    })
}
