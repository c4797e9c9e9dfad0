//! The Open Inference Protocol over gRPC: `inference.GRPCInferenceService`
//! (ServerLive, ServerReady, ModelReady, ServerMetadata, ModelMetadata,
//! ModelInfer), served by tonic on the HTTP port.
//!
//! Each method is a route of the one axum router
//! (`/inference.GRPCInferenceService/ModelInfer`, ...), so a gRPC call goes
//! through the same access log as an HTTP request, over the same listener,
//! TLS and graceful shutdown. The model name is in the message, so the
//! handlers call the gateway's [`admit`] themselves (the HTTP middleware
//! calls the same function); scoring, the cache and the inference log are
//! the HTTP infer path's transport-neutral core.

mod tensors;
#[cfg(test)]
mod tests;

use std::sync::Arc;

use axum::extract::Request;
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use tonic::metadata::{MetadataMap, MetadataValue};
use tonic::{Status, async_trait};

use crate::access_log::RequestId;
use crate::error::{ApiError, ErrorCode};
use crate::gateway::{Admitted, Refused, RouteClass, admit};
use crate::registry::ModelEntry;
use crate::state::AppState;
use proto::grpc_inference_service_server::{GrpcInferenceService, GrpcInferenceServiceServer};
use proto::*;

/// The code generated from `proto/grpc_service.proto`.
#[allow(
    missing_docs,
    missing_debug_implementations,
    clippy::all,
    clippy::pedantic
)]
pub mod proto {
    tonic::include_proto!("inference");
}

/// The gRPC service's full name.
pub const SERVICE: &str = "inference.GRPCInferenceService";

/// The path prefix of every method (`/<service>/<method>`).
pub const ROUTE_PREFIX: &str = "/inference.GRPCInferenceService/";

/// The methods served, each one route.
pub const METHODS: [&str; 6] = [
    "ServerLive",
    "ServerReady",
    "ModelReady",
    "ServerMetadata",
    "ModelMetadata",
    "ModelInfer",
];

/// Each method's route (`ROUTE_PREFIX` + method), in `METHODS` order.
pub const ROUTES: [&str; 6] = [
    "/inference.GRPCInferenceService/ServerLive",
    "/inference.GRPCInferenceService/ServerReady",
    "/inference.GRPCInferenceService/ModelReady",
    "/inference.GRPCInferenceService/ServerMetadata",
    "/inference.GRPCInferenceService/ModelMetadata",
    "/inference.GRPCInferenceService/ModelInfer",
];

/// Metadata key of the Retry-After seconds of a throttled call (the HTTP
/// header's name and value).
pub const RETRY_AFTER_KEY: &str = "retry-after";

/// gRPC's own retry pushback (gRFC A6), in milliseconds.
pub const RETRY_PUSHBACK_KEY: &str = "grpc-retry-pushback-ms";

/// Add one route per method to `router`. A request on them that is not
/// gRPC gets a 415; the decoding limit is `server.max_body_bytes`.
pub(crate) fn routes(
    mut router: axum::Router<AppState>,
    state: &AppState,
) -> axum::Router<AppState> {
    let server = GrpcInferenceServiceServer::new(Inference {
        state: state.clone(),
    })
    .max_decoding_message_size(state.max_body_bytes);
    let service = tower::Layer::layer(&axum::middleware::from_fn(grpc_only), server);
    for route in ROUTES {
        router = router.route_service(route, service.clone());
    }
    router
}

/// Whether `content_type` is gRPC's (`application/grpc`, `+proto`, ...).
pub(crate) fn is_grpc(content_type: Option<&axum::http::HeaderValue>) -> bool {
    content_type.is_some_and(|value| value.as_bytes().starts_with(b"application/grpc"))
}

async fn grpc_only(request: Request, next: Next) -> Response {
    if !is_grpc(request.headers().get(CONTENT_TYPE)) {
        return ApiError::new(
            ErrorCode::UnsupportedMediaType,
            format!("{SERVICE} methods take gRPC: content-type must be application/grpc"),
        )
        .into_response();
    }
    next.run(request).await
}

/// The answer for a gRPC request on a path that is not one of ours.
pub(crate) fn unimplemented(path: &str) -> Response {
    let status = Status::unimplemented(format!("no gRPC method {path} here"));
    status.into_http::<axum::body::Body>()
}

/// The service: the router state, like every HTTP handler.
#[derive(Debug, Clone)]
struct Inference {
    state: AppState,
}

impl Inference {
    /// The gateway's admission for a model call, as a gRPC status when
    /// refused.
    fn admit<'g>(&'g self, metadata: &MetadataMap, model: &str) -> Result<Admitted<'g>, Status> {
        admit(
            &self.state.gateway,
            metadata.as_ref(),
            RouteClass::Model(model),
        )
        .map_err(refused_status)
    }

    fn find(&self, name: &str, version: &str) -> Result<Arc<ModelEntry>, ApiError> {
        let entry = self.state.registry.find(name)?;
        if !version.is_empty() {
            entry.check_version(version)?;
        }
        Ok(entry)
    }
}

/// A refusal as a status; a throttled call carries when to retry.
fn refused_status(refused: Refused) -> Status {
    let mut status = refused.error.to_grpc_status();
    if let Some(secs) = refused.retry_after_secs {
        let metadata = status.metadata_mut();
        metadata.insert(RETRY_AFTER_KEY, MetadataValue::from(secs));
        metadata.insert(
            RETRY_PUSHBACK_KEY,
            MetadataValue::from(secs.saturating_mul(1000)),
        );
    }
    status
}

/// `error` as a status; an internal one is logged with the request id
/// first (its detail never reaches the client).
fn error_status(error: &ApiError, extensions: &tonic::Extensions) -> Status {
    if error.code.status().is_server_error() && !error.public {
        let request_id = extensions.get::<RequestId>().map_or("", |id| id.0.as_str());
        tracing::error!(request_id, error = %error.message, "internal error");
    }
    error.to_grpc_status()
}

fn metadata_tensor(
    name: &str,
    datatype: &str,
    shape: Vec<i64>,
) -> model_metadata_response::TensorMetadata {
    model_metadata_response::TensorMetadata {
        name: name.to_owned(),
        datatype: datatype.to_owned(),
        shape,
    }
}

/// The model's metadata, as `GET /v2/models/{name}` gives it.
fn model_metadata(entry: &ModelEntry) -> ModelMetadataResponse {
    let inputs = entry
        .model
        .feature_names()
        .iter()
        .map(|name| metadata_tensor(name, "FP32", vec![-1]))
        .collect();
    let score_shape = if entry.is_multiclass() {
        vec![-1, entry.model.num_outputs() as i64]
    } else {
        vec![-1]
    };
    let mut outputs = vec![metadata_tensor("score", "FP64", score_shape)];
    if entry.has_threshold() {
        outputs.push(metadata_tensor("label", "BYTES", vec![-1]));
    }
    ModelMetadataResponse {
        name: entry.name.to_string(),
        versions: vec![entry.version.clone()],
        platform: entry.platform().to_owned(),
        inputs,
        outputs,
    }
}

#[async_trait]
impl GrpcInferenceService for Inference {
    async fn server_live(
        &self,
        _: tonic::Request<ServerLiveRequest>,
    ) -> Result<tonic::Response<ServerLiveResponse>, Status> {
        Ok(tonic::Response::new(ServerLiveResponse { live: true }))
    }

    async fn server_ready(
        &self,
        _: tonic::Request<ServerReadyRequest>,
    ) -> Result<tonic::Response<ServerReadyResponse>, Status> {
        // Models load before the listener accepts: serving means ready.
        Ok(tonic::Response::new(ServerReadyResponse { ready: true }))
    }

    async fn server_metadata(
        &self,
        _: tonic::Request<ServerMetadataRequest>,
    ) -> Result<tonic::Response<ServerMetadataResponse>, Status> {
        Ok(tonic::Response::new(ServerMetadataResponse {
            name: "vigil".to_owned(),
            version: env!("CARGO_PKG_VERSION").to_owned(),
            extensions: Vec::new(),
        }))
    }

    async fn model_ready(
        &self,
        request: tonic::Request<ModelReadyRequest>,
    ) -> Result<tonic::Response<ModelReadyResponse>, Status> {
        let message = request.get_ref();
        let _admitted = self.admit(request.metadata(), &message.name)?;
        self.find(&message.name, &message.version)
            .map_err(|err| error_status(&err, request.extensions()))?;
        Ok(tonic::Response::new(ModelReadyResponse { ready: true }))
    }

    async fn model_metadata(
        &self,
        request: tonic::Request<ModelMetadataRequest>,
    ) -> Result<tonic::Response<ModelMetadataResponse>, Status> {
        let message = request.get_ref();
        let _admitted = self.admit(request.metadata(), &message.name)?;
        let entry = self
            .find(&message.name, &message.version)
            .map_err(|err| error_status(&err, request.extensions()))?;
        Ok(tonic::Response::new(model_metadata(&entry)))
    }

    async fn model_infer(
        &self,
        request: tonic::Request<ModelInferRequest>,
    ) -> Result<tonic::Response<ModelInferResponse>, Status> {
        let (metadata, extensions, message) = request.into_parts();
        let admitted = self.admit(&metadata, &message.model_name)?;
        let work = infer::infer(&self.state, &admitted, &metadata, message);
        match admitted.run(work).await {
            Ok(Ok(mut response)) => {
                // For the access log's `key`, as an HTTP response has it.
                if let Some(key) = admitted.key_name() {
                    response.extensions_mut().insert(key.clone());
                }
                Ok(response)
            }
            Ok(Err(err)) | Err(err) => Err(error_status(&err, &extensions)),
        }
    }
}

mod infer;
