//! Answering an infer request: scoring (through the prediction cache) and,
//! with the inference log on, the replay check before and the append after,
//! before the response is built.

use axum::Json;

use super::{InferRequest, InferResponse, OutputData, OutputTensor};
use crate::cache::{CACHE_HEADER, CacheControl};
use crate::error::ApiError;
use crate::inference_log::{
    LogContext, Prepared, RowAnswer, RowIds, mark_replayed, set_inference_id,
};
use crate::registry::ModelEntry;
use crate::state::AppState;

/// Scores `rows` (`batch` rows in model order) and answers, logging first
/// when the log is on.
#[allow(clippy::too_many_arguments)]
pub(super) async fn answer(
    state: &AppState,
    entry: &ModelEntry,
    request: &InferRequest<'_>,
    rows: &[f64],
    batch: usize,
    cache: CacheControl,
    ctx: &LogContext,
    (want_score, want_label): (bool, bool),
) -> Result<axum::response::Response, ApiError> {
    let Some(log) = &state.log else {
        let (scores, cache_status) = score_rows(state, entry, rows, batch, cache).await?;
        let mut response = respond(
            entry,
            request,
            &scores,
            None,
            &entry.version,
            (want_score, want_label),
        );
        response
            .headers_mut()
            .insert(CACHE_HEADER, cache_status.header_value());
        return Ok(response);
    };
    let (base_id, prepared) = log
        .prepare(
            entry,
            ctx,
            request.id.as_deref(),
            rows,
            RowIds::Count(batch),
        )
        .await?;
    let mut response = match prepared {
        Prepared::Replay(stored) => {
            let scores: Vec<f64> = stored
                .iter()
                .flat_map(|r| r.scores.iter().copied())
                .collect();
            let answers: Vec<RowAnswer<'_>> = stored.iter().map(RowAnswer::stored).collect();
            let version = stored
                .first()
                .map_or(entry.version.as_str(), |r| &r.version);
            let mut response = respond(
                entry,
                request,
                &scores,
                Some(&answers),
                version,
                (want_score, want_label),
            );
            mark_replayed(&mut response);
            response
        }
        Prepared::Fresh(records) => {
            let (scores, cache_status) = score_rows(state, entry, rows, batch, cache).await?;
            let stored = log
                .commit(entry, ctx, records, &scores, cache_status.is_hit())
                .await?;
            let mut response = if stored.iter().any(Option::is_some) {
                // A concurrent request with the same id was logged first:
                // answer its rows with what the log holds.
                let k = entry.model.num_outputs().max(1);
                let mut answers = Vec::with_capacity(batch);
                for (row, stored) in scores.chunks(k).zip(&stored) {
                    answers.push(match stored {
                        Some(stored) => RowAnswer::stored(stored),
                        None => RowAnswer {
                            scores: row,
                            label: entry.label(row),
                        },
                    });
                }
                let merged: Vec<f64> = answers
                    .iter()
                    .flat_map(|a| a.scores.iter().copied())
                    .collect();
                let mut response = respond(
                    entry,
                    request,
                    &merged,
                    Some(&answers),
                    &entry.version,
                    (want_score, want_label),
                );
                if stored.iter().all(Option::is_some) {
                    mark_replayed(&mut response);
                }
                response
            } else {
                respond(
                    entry,
                    request,
                    &scores,
                    None,
                    &entry.version,
                    (want_score, want_label),
                )
            };
            response
                .headers_mut()
                .insert(CACHE_HEADER, cache_status.header_value());
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
    rows: &[f64],
    batch: usize,
    cache: CacheControl,
) -> Result<(crate::cache::Scores, crate::cache::CacheStatus), ApiError> {
    let k = entry.model.num_outputs();
    state
        .cache()
        .get_or_score(entry, rows, cache, || {
            let mut scores = vec![0.0; batch * k];
            entry
                .model
                .predict_batch(rows, &mut scores)
                .map_err(|err| {
                    ApiError::internal(format!("model `{}` failed to score: {err}", entry.name))
                })?;
            Ok(scores)
        })
        .await
}

/// The infer response for `scores` (`batch` rows of `num_outputs` each);
/// `stored` gives the labels when the answer comes from the log.
fn respond(
    entry: &ModelEntry,
    request: &InferRequest<'_>,
    scores: &[f64],
    stored: Option<&[RowAnswer<'_>]>,
    version: &str,
    (want_score, want_label): (bool, bool),
) -> axum::response::Response {
    let k = entry.model.num_outputs();
    let batch = scores.len() / k.max(1);
    let mut outputs = Vec::with_capacity(2);
    if want_score {
        outputs.push(OutputTensor {
            name: "score",
            datatype: "FP64",
            shape: if entry.is_multiclass() {
                vec![batch, k]
            } else {
                vec![batch]
            },
            data: OutputData::Numbers(scores),
        });
    }
    if want_label {
        let labels = match stored {
            Some(answers) => answers.iter().filter_map(|a| a.label).collect(),
            None => scores
                .chunks(k.max(1))
                .filter_map(|row| entry.label(row))
                .collect(),
        };
        outputs.push(OutputTensor {
            name: "label",
            datatype: "BYTES",
            shape: vec![batch],
            data: OutputData::Labels(labels),
        });
    }
    let response = InferResponse {
        model_name: &entry.name,
        model_version: version,
        id: request.id.as_deref(),
        outputs,
    };
    axum::response::IntoResponse::into_response(Json(response))
}
