//! Open Inference Protocol server endpoints: liveness, readiness and server
//! metadata.

use axum::Json;
use serde::Serialize;
use utoipa::ToSchema;

/// `GET /v2/health/live` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct LiveResponse {
    /// Always true while the process answers.
    pub live: bool,
}

/// `GET /v2/health/ready` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReadyResponse {
    /// True once every configured model is loaded (models load before serving).
    pub ready: bool,
}

/// `GET /v2` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ServerMetadata {
    /// `vigil`.
    pub name: &'static str,
    /// The server version.
    pub version: &'static str,
    /// Supported protocol extensions, by Triton's names: `binary_tensor_data`
    /// (raw tensor bytes after a JSON header, on `/infer`).
    pub extensions: &'static [&'static str],
}

/// The protocol extensions Vigil implements. Not listed, because Vigil does
/// not do what they promise: `classification` (the output parameter is
/// ignored), `sequence`, `model_repository`, `statistics`, `trace`,
/// `logging`, `schedule_policy`, the shared-memory extensions, and
/// `parameters` (request parameters other than the binary ones are ignored).
const EXTENSIONS: &[&str] = &["binary_tensor_data"];

/// Liveness.
#[utoipa::path(get, path = "/v2/health/live", tag = "health",
    responses((status = 200, description = "the server is live", body = LiveResponse)))]
pub async fn live() -> Json<LiveResponse> {
    Json(LiveResponse { live: true })
}

/// Readiness: models are loaded before the server accepts connections.
#[utoipa::path(get, path = "/v2/health/ready", tag = "health",
    responses((status = 200, description = "the server is ready", body = ReadyResponse)))]
pub async fn ready() -> Json<ReadyResponse> {
    Json(ReadyResponse { ready: true })
}

/// Server metadata.
#[utoipa::path(get, path = "/v2", tag = "health",
    responses((status = 200, description = "server metadata", body = ServerMetadata)))]
pub async fn server_metadata() -> Json<ServerMetadata> {
    Json(ServerMetadata {
        name: "vigil",
        version: env!("CARGO_PKG_VERSION"),
        extensions: EXTENSIONS,
    })
}

#[cfg(test)]
mod tests;
