//! Plain JSON scoring for application developers:
//! `POST /v1/models/{name}/score` with named features in, a score and a
//! label out.

mod wire;

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::{RawPathParams, State};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::cache::{CACHE_HEADER, CacheControl};
use crate::error::{ApiError, ErrorBody};
use crate::extract::{JsonBody, parse_with};
use crate::infer_api::path_params;
use crate::state::{AppState, Label, ModelEntry};
use wire::RequestSeed;

/// One row's features (documentation of the wire form; parsing is streaming).
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct Instance {
    /// Echoed in the prediction.
    id: Option<String>,
    /// Feature name → number, or null for missing; absent features are missing.
    #[schema(value_type = Object)]
    features: BTreeMap<String, Option<f64>>,
}

/// `POST /v1/models/{name}/score` body: `features` (one row) or `instances` (many).
#[derive(Debug, ToSchema)]
#[allow(dead_code)]
pub struct ScoreRequest {
    /// Echoed in the response.
    id: Option<String>,
    /// Feature name → number, or null for missing; absent features are missing.
    #[schema(value_type = Option<Object>)]
    features: Option<BTreeMap<String, Option<f64>>>,
    /// Many rows at once.
    instances: Option<Vec<Instance>>,
}

/// One row's result.
#[derive(Debug, Serialize, ToSchema)]
pub struct Prediction<'a> {
    /// The instance's `id`, if it had one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<&'a str>,
    /// The score: a probability for binary models, the value for regression.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    /// One probability per class (multiclass models).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scores: Option<&'a [f64]>,
    /// `labels[1]` when `score >= threshold` else `labels[0]` (binary
    /// probability models), or the most probable class index as a string
    /// (multiclass); absent for regression and margin models.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub label: Option<Label<'a>>,
}

/// Answer to a `features` request.
#[derive(Debug, Serialize, ToSchema)]
pub struct ScoreResponse<'a> {
    /// The request's `id`, if it had one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<&'a str>,
    /// Model name.
    pub model: &'a str,
    /// Model version.
    pub version: &'a str,
    /// See [`Prediction::score`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    /// See [`Prediction::scores`].
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scores: Option<&'a [f64]>,
    /// See [`Prediction::label`].
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    pub label: Option<Label<'a>>,
    /// The model's threshold (binary probability models).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// Whether the scores came from the prediction cache.
    pub cached: bool,
}

/// Answer to an `instances` request.
#[derive(Debug, Serialize, ToSchema)]
pub struct BatchScoreResponse<'a> {
    /// The request's `id`, if it had one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<&'a str>,
    /// Model name.
    pub model: &'a str,
    /// Model version.
    pub version: &'a str,
    /// The model's threshold (binary probability models).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// One per instance, in order.
    pub predictions: Vec<Prediction<'a>>,
    /// Whether the scores came from the prediction cache.
    pub cached: bool,
}

/// Score named features.
#[utoipa::path(post, path = "/v1/models/{name}/score", tag = "scoring",
    params(("name" = String, Path, description = "model name")),
    request_body(content = ScoreRequest, content_type = "application/json"),
    responses(
        (status = 200, description = "`ScoreResponse` for `features`, `BatchScoreResponse` for `instances`", body = ScoreResponse),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody)))]
pub async fn score(
    State(state): State<AppState>,
    params: RawPathParams,
    cache: CacheControl,
    body: JsonBody,
) -> Result<Response, ApiError> {
    let (name, _) = path_params(&params);
    let entry = state.registry.find(name)?;
    let request = parse_with(&body.0, RequestSeed { entry: &entry })?;
    let (scores, status) = state
        .cache()
        .get_or_score(&entry, &request.rows, cache, || {
            predict(&entry, &request.rows, request.ids.len())
        })
        .await?;
    let mut response = respond(&entry, &request, &scores, status.is_hit())?;
    response
        .headers_mut()
        .insert(CACHE_HEADER, status.header_value());
    Ok(response)
}

/// Score `batch` rows with the model.
fn predict(entry: &ModelEntry, rows: &[f64], batch: usize) -> Result<Vec<f64>, ApiError> {
    let mut scores = vec![0.0; batch * entry.model.num_outputs()];
    entry
        .model
        .predict_batch(rows, &mut scores)
        .map_err(|err| {
            ApiError::internal(format!("model `{}` failed to score: {err}", entry.name))
        })?;
    Ok(scores)
}

fn respond(
    entry: &ModelEntry,
    request: &wire::ScoreRequest<'_>,
    scores: &[f64],
    cached: bool,
) -> Result<Response, ApiError> {
    let k = entry.model.num_outputs();
    let multiclass = entry.is_multiclass();
    let threshold = entry.has_threshold().then_some(entry.threshold);
    let predictions = scores
        .chunks(k.max(1))
        .zip(&request.ids)
        .map(|(row, id)| Prediction {
            id: id.as_deref(),
            score: (!multiclass).then(|| row[0]),
            scores: multiclass.then_some(row),
            label: entry.label(row),
        });
    if request.batch {
        Ok(Json(BatchScoreResponse {
            id: request.id.as_deref(),
            model: &entry.name,
            version: &entry.version,
            threshold,
            predictions: predictions.collect(),
            cached,
        })
        .into_response())
    } else {
        let prediction = predictions
            .into_iter()
            .next()
            .ok_or_else(|| ApiError::internal("a features request produced no prediction"))?;
        Ok(Json(ScoreResponse {
            id: request.id.as_deref(),
            model: &entry.name,
            version: &entry.version,
            score: prediction.score,
            scores: prediction.scores,
            label: prediction.label,
            threshold,
            cached,
        })
        .into_response())
    }
}

#[cfg(test)]
mod tests;
