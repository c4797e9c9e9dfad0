//! Plain JSON scoring for application developers:
//! `POST /v1/models/{name}/score` with named features in, a score and a
//! label out.

mod doc;
mod wire;

use axum::Json;
use axum::extract::{RawPathParams, State};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use crate::cache::{CACHE_HEADER, CacheControl, CacheStatus, Scores};
use crate::error::{ApiError, ErrorBody};
use crate::extract::path_params;
use crate::extract::{JsonBody, parse_with};
use crate::inference_log::{
    LogContext, Prepared, RowAnswer, RowIds, mark_replayed, set_inference_id,
};
use crate::registry::{Label, ModelEntry};
use crate::state::AppState;
use crate::telemetry::events::{BodyParsed, ResponseEncoded};
pub use doc::{Instance, ScoreRequest};
use wire::RequestSeed;

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
        (status = 200, description = "`ScoreResponse` for `features`, `BatchScoreResponse` for `instances`. \
            With the inference log on, the answer is logged before it is sent; a repeated `id` gets the stored \
            answer with `Vigil-Replayed: true`; `Vigil-Inference-Id` holds the id logged (batch rows: `id#0`, `id#1`…)",
            body = ScoreResponse),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, description = "the `id` was used before with a different input", body = ErrorBody),
        (status = 413, body = ErrorBody), (status = 415, body = ErrorBody),
        (status = 503, description = "the inference log cannot take the record", body = ErrorBody)))]
pub async fn score(
    State(state): State<AppState>,
    params: RawPathParams,
    cache: CacheControl,
    ctx: LogContext,
    body: JsonBody,
) -> Result<Response, ApiError> {
    let (name, _) = path_params(&params);
    let entry = state.registry.find(name)?;
    let started = std::time::Instant::now();
    let request = parse_with(&body.0, RequestSeed { entry: &entry })?;
    let telemetry = state.gateway.telemetry();
    telemetry.emit(BodyParsed {
        duration: started.elapsed(),
        rows: request.ids.len(),
    });
    doc::check_ids(&request)?;
    let Some(log) = &state.log else {
        let (scores, status) = score_rows(&state, &entry, &request, cache).await?;
        let answers = fresh_answers(&entry, &scores);
        let mut response = ResponseEncoded::timed(telemetry, || {
            respond(&entry, &request, &answers, status.is_hit(), &entry.version)
        })?;
        response
            .headers_mut()
            .insert(CACHE_HEADER, status.header_value());
        return Ok(response);
    };
    let ids = if request.batch {
        RowIds::Batch(&request.ids)
    } else {
        RowIds::Single
    };
    let (base_id, prepared) = log
        .prepare(&entry, &ctx, request.id.as_deref(), &request.rows, ids)
        .await?;
    let mut response = match prepared {
        Prepared::Replay(stored) => {
            let answers: Vec<RowAnswer<'_>> = stored.iter().map(RowAnswer::stored).collect();
            let mut response = ResponseEncoded::timed(telemetry, || {
                respond_stored(&entry, &request, &answers, &stored)
            })?;
            mark_replayed(&mut response);
            response
        }
        Prepared::Fresh(records) => {
            let (scores, status) = score_rows(&state, &entry, &request, cache).await?;
            let stored = log
                .commit(&entry, &ctx, records, &scores, status.is_hit())
                .await?;
            let mut answers = fresh_answers(&entry, &scores);
            let mut replayed = 0;
            for (answer, stored) in answers.iter_mut().zip(&stored) {
                if let Some(stored) = stored {
                    *answer = RowAnswer::stored(stored);
                    replayed += 1;
                }
            }
            let mut response = ResponseEncoded::timed(telemetry, || {
                respond(&entry, &request, &answers, status.is_hit(), &entry.version)
            })?;
            response
                .headers_mut()
                .insert(CACHE_HEADER, status.header_value());
            if replayed > 0 && replayed == answers.len() {
                mark_replayed(&mut response);
            }
            response
        }
    };
    set_inference_id(&mut response, &base_id);
    Ok(response)
}

/// The scores of every row, from the prediction cache or the model.
async fn score_rows(
    state: &AppState,
    entry: &ModelEntry,
    request: &wire::ScoreRequest<'_>,
    cache: CacheControl,
) -> Result<(Scores, CacheStatus), ApiError> {
    state
        .cache()
        .get_or_score(entry, &request.rows, cache, || {
            entry.predict(&request.rows, request.ids.len())
        })
        .await
}

/// Each row's answer from freshly computed scores.
fn fresh_answers<'a>(entry: &'a ModelEntry, scores: &'a [f64]) -> Vec<RowAnswer<'a>> {
    scores
        .chunks(entry.model.num_outputs().max(1))
        .map(|row| RowAnswer {
            scores: row,
            label: entry.label(row),
        })
        .collect()
}

/// The answer stored in the log, with the stored version and threshold.
fn respond_stored(
    entry: &ModelEntry,
    request: &wire::ScoreRequest<'_>,
    answers: &[RowAnswer<'_>],
    stored: &[vigil_store::InferenceRecord],
) -> Result<Response, ApiError> {
    let first = stored
        .first()
        .ok_or_else(|| ApiError::internal("a replay without stored records"))?;
    let cached = stored.iter().all(|r| r.cached);
    let threshold = first.threshold;
    respond_with(entry, request, answers, cached, &first.version, threshold)
}

fn respond(
    entry: &ModelEntry,
    request: &wire::ScoreRequest<'_>,
    answers: &[RowAnswer<'_>],
    cached: bool,
    version: &str,
) -> Result<Response, ApiError> {
    let threshold = entry.has_threshold().then_some(entry.threshold);
    respond_with(entry, request, answers, cached, version, threshold)
}

fn respond_with(
    entry: &ModelEntry,
    request: &wire::ScoreRequest<'_>,
    answers: &[RowAnswer<'_>],
    cached: bool,
    version: &str,
    threshold: Option<f64>,
) -> Result<Response, ApiError> {
    let predictions = answers.iter().zip(&request.ids).map(|(answer, id)| {
        let multiclass = answer.scores.len() > 1;
        Prediction {
            id: id.as_deref(),
            score: if multiclass {
                None
            } else {
                answer.scores.first().copied()
            },
            scores: multiclass.then_some(answer.scores),
            label: answer.label,
        }
    });
    if request.batch {
        Ok(Json(BatchScoreResponse {
            id: request.id.as_deref(),
            model: &entry.name,
            version,
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
            version,
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
