//! Open Inference Protocol (V2) model endpoints: metadata, readiness and
//! inference.
//!
//! An infer request carries either one tensor of shape `[batch, n_features]`
//! (any name, features in model order) or one tensor per named feature of
//! shape `[batch]` or `[batch, 1]` (absent features are missing). Tensor
//! values come as JSON `data` or, with the binary tensor data extension, as
//! raw bytes after the JSON (see [`binary`]).

mod answer;
mod binary;
mod doc;
mod outcome;
mod rows;
mod wire;

use std::borrow::Cow;
use std::cell::Cell;
use std::sync::Arc;

use axum::Json;
use axum::extract::{RawPathParams, State};
use serde::Serialize;
use utoipa::ToSchema;

use crate::cache::CacheControl;
use crate::error::ApiError;
use crate::extract::{InferBody, path_params};
use crate::inference_log::LogContext;
use crate::registry::ModelEntry;
use crate::state::AppState;
use crate::telemetry::events::{BodyParsed, ResponseEncoded};
use answer::{BinaryOutputs, http_response};
pub use doc::{InferRequestDoc, RequestOutput, RequestTensor, TensorValue};
use wire::{InferRequest, RequestSeed};

// The transport-neutral core, also used by the gRPC transport (some of it
// only by that one, hence the allow).
#[allow(unused_imports)]
pub(crate) use answer::{json_response, set_headers};
#[allow(unused_imports)]
pub(crate) use outcome::{Outcome, infer_rows};
#[allow(unused_imports)]
pub(crate) use rows::{
    MAX_DIMS, NUMERIC_DATATYPES, Shape, Tensor, Wanted, build_rows, wanted_outputs,
};

/// A tensor's description in model metadata.
#[derive(Debug, Serialize, ToSchema)]
pub struct TensorMetadata {
    /// Tensor name.
    pub name: String,
    /// OIP datatype, e.g. `FP32`.
    pub datatype: &'static str,
    /// Shape; `-1` is a variable dimension (the batch).
    pub shape: Vec<i64>,
}

/// Extra model metadata beyond the protocol's fields.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelParameters {
    /// The alternative input form: one tensor `[batch, n_features]` with the
    /// features in `inputs` order (any tensor name is accepted).
    pub batch_input: TensorMetadata,
    /// Positive label at or above this score (binary probability models).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// `[negative, positive]` labels (binary probability models).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<[String; 2]>,
    /// Number of trees in the model.
    pub num_trees: usize,
}

/// `GET /v2/models/{name}` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelMetadata {
    /// Model name.
    pub name: String,
    /// Served versions (one).
    pub versions: Vec<String>,
    /// `xgboost` or `lightgbm`.
    pub platform: &'static str,
    /// One tensor per feature, in model order.
    pub inputs: Vec<TensorMetadata>,
    /// `score`, and `label` for binary probability models.
    pub outputs: Vec<TensorMetadata>,
    /// Vigil extras: the batch input form, threshold, labels.
    pub parameters: ModelParameters,
}

/// `GET /v2/models/{name}/ready` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct ModelReady {
    /// Model name.
    pub name: String,
    /// Always true: a served model is loaded.
    pub ready: bool,
}

/// An output tensor.
#[derive(Debug, Serialize, ToSchema)]
pub struct OutputTensor<'a> {
    /// `score` or `label`.
    pub name: &'static str,
    /// `FP64` or `BYTES`.
    pub datatype: &'static str,
    /// `[batch]` or `[batch, classes]`.
    pub shape: Vec<usize>,
    /// `binary_data_size` when the output is sent as binary data.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub parameters: Option<OutputParameters>,
    /// Row-major values; absent when the output is sent as binary data.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<Object>>)]
    pub data: Option<OutputData<'a>>,
}

/// Parameters of an output sent as binary data.
#[derive(Debug, Serialize, ToSchema)]
pub struct OutputParameters {
    /// Bytes of this output after the JSON header: FP64 scores as 8-byte
    /// little-endian, BYTES labels as a 4-byte little-endian length then
    /// the bytes.
    pub binary_data_size: usize,
}

/// The values of an output tensor.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum OutputData<'a> {
    /// Scores.
    Numbers(&'a [f64]),
    /// Labels.
    Labels(&'a [Cow<'a, str>]),
}

/// `POST /v2/models/{name}/infer` answer.
#[derive(Debug, Serialize, ToSchema)]
pub struct InferResponse<'a> {
    /// Model name.
    pub model_name: &'a str,
    /// Model version.
    pub model_version: &'a str,
    /// The request's `id`, if it had one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<&'a str>,
    /// `score` and, for binary probability models, `label`.
    pub outputs: Vec<OutputTensor<'a>>,
}

fn find_model(state: &AppState, params: &RawPathParams) -> Result<Arc<ModelEntry>, ApiError> {
    let (name, version) = path_params(params);
    let entry = state.registry.find(name)?;
    if let Some(version) = version {
        entry.check_version(version)?;
    }
    Ok(entry)
}

fn metadata(entry: &ModelEntry) -> ModelMetadata {
    let inputs = entry
        .model
        .feature_names()
        .iter()
        .map(|name| TensorMetadata {
            name: name.clone(),
            datatype: "FP32",
            shape: vec![-1],
        })
        .collect();
    let score_shape = if entry.is_multiclass() {
        vec![-1, entry.model.num_outputs() as i64]
    } else {
        vec![-1]
    };
    let mut outputs = vec![TensorMetadata {
        name: "score".to_owned(),
        datatype: "FP64",
        shape: score_shape,
    }];
    if entry.has_threshold() {
        outputs.push(TensorMetadata {
            name: "label".to_owned(),
            datatype: "BYTES",
            shape: vec![-1],
        });
    }
    ModelMetadata {
        name: entry.name.to_string(),
        versions: vec![entry.version.clone()],
        platform: entry.platform(),
        inputs,
        outputs,
        parameters: ModelParameters {
            batch_input: TensorMetadata {
                name: "input-0".to_owned(),
                datatype: "FP32",
                shape: vec![-1, entry.model.num_features() as i64],
            },
            threshold: entry.has_threshold().then_some(entry.threshold),
            labels: entry.has_threshold().then(|| entry.labels.clone()),
            num_trees: entry.model.num_trees(),
        },
    }
}

/// Model metadata.
#[utoipa::path(get, path = "/v2/models/{name}", tag = "inference",
    params(("name" = String, Path, description = "model name")),
    responses((status = 200, body = ModelMetadata), (status = 404, body = crate::error::ErrorBody)))]
pub async fn model_metadata(
    State(state): State<AppState>,
    params: RawPathParams,
) -> Result<Json<ModelMetadata>, ApiError> {
    Ok(Json(metadata(&*find_model(&state, &params)?)))
}

/// Model metadata for one version.
#[utoipa::path(get, path = "/v2/models/{name}/versions/{version}", tag = "inference",
    params(("name" = String, Path, description = "model name"), ("version" = String, Path, description = "model version")),
    responses((status = 200, body = ModelMetadata), (status = 404, body = crate::error::ErrorBody)))]
pub async fn model_version_metadata(
    State(state): State<AppState>,
    params: RawPathParams,
) -> Result<Json<ModelMetadata>, ApiError> {
    Ok(Json(metadata(&*find_model(&state, &params)?)))
}

/// Model readiness.
#[utoipa::path(get, path = "/v2/models/{name}/ready", tag = "inference",
    params(("name" = String, Path, description = "model name")),
    responses((status = 200, body = ModelReady), (status = 404, body = crate::error::ErrorBody)))]
pub async fn model_ready(
    State(state): State<AppState>,
    params: RawPathParams,
) -> Result<Json<ModelReady>, ApiError> {
    let entry = find_model(&state, &params)?;
    Ok(Json(ModelReady {
        name: entry.name.to_string(),
        ready: true,
    }))
}

/// Model readiness for one version.
#[utoipa::path(get, path = "/v2/models/{name}/versions/{version}/ready", tag = "inference",
    params(("name" = String, Path, description = "model name"), ("version" = String, Path, description = "model version")),
    responses((status = 200, body = ModelReady), (status = 404, body = crate::error::ErrorBody)))]
pub async fn model_version_ready(
    State(state): State<AppState>,
    params: RawPathParams,
) -> Result<Json<ModelReady>, ApiError> {
    model_ready(State(state), params).await
}

/// Score tensors.
///
/// The body is JSON, or (binary tensor data extension) a JSON header of
/// `Inference-Header-Content-Length` bytes followed by the raw
/// little-endian values of every input with `parameters.binary_data_size`,
/// in input order. Outputs asked for with `parameters.binary_data` (or the
/// request's `parameters.binary_data_output`) come back the same way: an
/// `application/octet-stream` body whose first
/// `Inference-Header-Content-Length` bytes are the JSON response.
#[utoipa::path(post, path = "/v2/models/{name}/infer", tag = "inference",
    params(("name" = String, Path, description = "model name"), ("Inference-Header-Content-Length" = Option<u64>, Header, nullable = false, minimum = 0, description = "binary tensor data extension: the body's first N bytes are the JSON request, binary input data follows")),
    request_body(description = "JSON (content type `application/json` or none), or JSON header + binary tensor data (`application/octet-stream` or none, with `Inference-Header-Content-Length`)",
        content((InferRequestDoc = "application/json"), (Vec<u8> = "application/octet-stream"))),
    responses((status = 200, description = "scores; binary outputs after a JSON header of `Inference-Header-Content-Length` bytes",
            content((InferResponse = "application/json"), (Vec<u8> = "application/octet-stream")),
            headers(("Inference-Header-Content-Length" = u64, description = "length of the JSON header; only with binary outputs"))),
        (status = 400, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody), (status = 413, body = crate::error::ErrorBody),
        (status = 415, body = crate::error::ErrorBody)))]
pub async fn infer(
    State(state): State<AppState>,
    params: RawPathParams,
    cache: CacheControl,
    ctx: LogContext,
    body: InferBody,
) -> Result<axum::response::Response, ApiError> {
    let entry = find_model(&state, &params)?;
    infer_bytes(&state, &entry, cache, &ctx, &body).await
}

/// Score tensors with one version (body and answer as for `/v2/models/{name}/infer`).
///
/// The body is JSON, or (binary tensor data extension) a JSON header of
/// `Inference-Header-Content-Length` bytes followed by the raw
/// little-endian values of every input with `parameters.binary_data_size`,
/// in input order. Outputs asked for with `parameters.binary_data` (or the
/// request's `parameters.binary_data_output`) come back the same way: an
/// `application/octet-stream` body whose first
/// `Inference-Header-Content-Length` bytes are the JSON response.
#[utoipa::path(post, path = "/v2/models/{name}/versions/{version}/infer", tag = "inference",
    params(("name" = String, Path, description = "model name"), ("version" = String, Path, description = "model version"), ("Inference-Header-Content-Length" = Option<u64>, Header, nullable = false, minimum = 0, description = "binary tensor data extension: the body's first N bytes are the JSON request, binary input data follows")),
    request_body(description = "JSON (content type `application/json` or none), or JSON header + binary tensor data (`application/octet-stream` or none, with `Inference-Header-Content-Length`)",
        content((InferRequestDoc = "application/json"), (Vec<u8> = "application/octet-stream"))),
    responses((status = 200, description = "scores; binary outputs after a JSON header of `Inference-Header-Content-Length` bytes",
            content((InferResponse = "application/json"), (Vec<u8> = "application/octet-stream")),
            headers(("Inference-Header-Content-Length" = u64, description = "length of the JSON header; only with binary outputs"))),
        (status = 400, body = crate::error::ErrorBody),
        (status = 404, body = crate::error::ErrorBody), (status = 413, body = crate::error::ErrorBody),
        (status = 415, body = crate::error::ErrorBody)))]
pub async fn infer_version(
    State(state): State<AppState>,
    params: RawPathParams,
    cache: CacheControl,
    ctx: LogContext,
    body: InferBody,
) -> Result<axum::response::Response, ApiError> {
    infer(State(state), params, cache, ctx, body).await
}

async fn infer_bytes(
    state: &AppState,
    entry: &ModelEntry,
    cache: CacheControl,
    ctx: &LogContext,
    body: &InferBody,
) -> Result<axum::response::Response, ApiError> {
    let started = std::time::Instant::now();
    let mut request = parse_request(&body.bytes, body.header_length)?;
    let (rows, batch) = build_rows(entry, &request.inputs, &mut request.data)?;
    state.gateway.telemetry().emit(BodyParsed {
        duration: started.elapsed(),
        rows: rows.len() / entry.model.num_features().max(1),
    });
    let wanted = wanted_outputs(
        entry,
        request
            .outputs
            .as_ref()
            .map(|outputs| outputs.iter().map(|o| o.name.as_ref())),
    )?;
    let binary = binary_outputs(&request);
    let outcome = infer_rows(
        state,
        entry,
        request.id.as_deref(),
        &rows,
        batch,
        cache,
        ctx,
        wanted,
    )
    .await?;
    ResponseEncoded::timed(state.gateway.telemetry(), || {
        http_response(entry, request.id.as_deref(), &outcome, wanted, binary)
    })
}

/// Parses an infer body: JSON, then with a header length the binary input
/// data after it. Errors are 400s naming the input.
fn parse_request(body: &[u8], header_length: Option<usize>) -> Result<InferRequest<'_>, ApiError> {
    let (json, binary) = binary::split_body(body, header_length)?;
    let current = Cell::new(None);
    let request = crate::extract::parse_with(
        json,
        RequestSeed {
            current_input: &current,
        },
    )
    .map_err(|mut err| {
        if let Some(index) = current.get() {
            err.message = err
                .message
                .replacen(": ", &format!(": inputs[{index}]: "), 1);
        }
        err
    });
    let mut request = request?;
    binary::decode_inputs(&mut request, binary)?;
    Ok(request)
}

/// Which outputs the request wants as binary data: an output's own
/// `binary_data`, else the request's `binary_data_output`.
fn binary_outputs(request: &InferRequest<'_>) -> BinaryOutputs {
    let default = request.binary_output;
    let Some(outputs) = &request.outputs else {
        return BinaryOutputs {
            score: default,
            label: default,
        };
    };
    let mut binary = BinaryOutputs::default();
    for output in outputs {
        let wanted = output.binary.unwrap_or(default);
        match output.name.as_ref() {
            "score" => binary.score = wanted,
            "label" => binary.label = wanted,
            _ => {}
        }
    }
    binary
}

#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_binary;
