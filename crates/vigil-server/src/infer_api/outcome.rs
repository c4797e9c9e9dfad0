//! Answering laid-out rows, whatever the transport: scoring (through the
//! prediction cache) and, with the inference log on, the replay check
//! before and the append after. The result is an [`Outcome`] with no HTTP
//! in it; each transport turns it into its own response.

use std::borrow::Cow;

use super::rows::Wanted;
use crate::cache::{CacheControl, CacheStatus, Scores};
use crate::error::ApiError;
use crate::inference_log::{LogContext, Prepared, RowIds};
use crate::registry::{Label, ModelEntry};
use crate::state::AppState;

/// What answering a request gave.
#[derive(Debug)]
pub(crate) struct Outcome<'e> {
    /// Number of rows.
    pub batch: usize,
    /// `batch` rows of `entry.model.num_outputs()` scores each, row-major.
    pub scores: Scores,
    /// One label per row when [`Wanted::label`] (labels of replayed rows
    /// come from the log); `None` when not wanted.
    pub labels: Option<Vec<Cow<'e, str>>>,
    /// The model version that answered (a replay's stored version).
    pub version: Cow<'e, str>,
    /// Every row was answered from the inference log.
    pub replayed: bool,
    /// What the cache did; `None` when the log answered every row (the
    /// model and the cache were not asked).
    pub cache: Option<CacheStatus>,
    /// The id the rows were logged under (`id`, or `id#i` per row); `None`
    /// when the inference log is off.
    pub inference_id: Option<String>,
}

/// Scores `rows` (`batch` rows in model order) and, when the inference log
/// is on, logs them first; `client_id` is the request's `id` (a 400 when
/// it breaks the request-id rules, log or no log).
#[allow(clippy::too_many_arguments)]
pub(crate) async fn infer_rows<'e>(
    state: &AppState,
    entry: &'e ModelEntry,
    client_id: Option<&str>,
    rows: &[f64],
    batch: usize,
    cache: CacheControl,
    ctx: &LogContext,
    wanted: Wanted,
) -> Result<Outcome<'e>, ApiError> {
    let fresh = |scores: Scores, cache_status: CacheStatus, inference_id: Option<String>| {
        let labels = wanted.label.then(|| model_labels(entry, &scores));
        Outcome {
            batch,
            scores,
            labels,
            version: Cow::Borrowed(entry.version.as_str()),
            replayed: false,
            cache: Some(cache_status),
            inference_id,
        }
    };
    // Checked here, for every transport and with the log off too, so that
    // one request is not valid on one server and invalid on another.
    super::doc::check_id(client_id, batch)?;
    let Some(log) = &state.log else {
        let (scores, cache_status) = score_rows(state, entry, rows, batch, cache).await?;
        return Ok(fresh(scores, cache_status, None));
    };
    let (base_id, prepared) = log
        .prepare(entry, ctx, client_id, rows, RowIds::Count(batch))
        .await?;
    match prepared {
        Prepared::Replay(stored) => {
            let scores: Vec<f64> = stored
                .iter()
                .flat_map(|r| r.scores.iter().copied())
                .collect();
            let version = stored
                .first()
                .map_or_else(|| entry.version.clone(), |r| r.version.clone());
            let labels = wanted.label.then(|| {
                stored
                    .into_iter()
                    .filter_map(|r| r.label.map(Cow::Owned))
                    .collect()
            });
            Ok(Outcome {
                batch,
                scores: Scores::Owned(scores),
                labels,
                version: Cow::Owned(version),
                replayed: true,
                cache: None,
                inference_id: Some(base_id),
            })
        }
        Prepared::Fresh(records) => {
            let (scores, cache_status) = score_rows(state, entry, rows, batch, cache).await?;
            let stored = log
                .commit(entry, ctx, records, &scores, cache_status.is_hit())
                .await?;
            if !stored.iter().any(Option::is_some) {
                return Ok(fresh(scores, cache_status, Some(base_id)));
            }
            // A concurrent request with the same id was logged first:
            // answer its rows with what the log holds.
            let k = entry.model.num_outputs().max(1);
            let mut merged = Vec::with_capacity(scores.len());
            let mut labels = Vec::with_capacity(if wanted.label { batch } else { 0 });
            for (row, stored) in scores.chunks(k).zip(&stored) {
                let (row, label) = match stored {
                    Some(stored) => (
                        stored.scores.as_slice(),
                        stored.label.clone().map(Cow::Owned),
                    ),
                    None => (row, entry.label(row).map(label_text)),
                };
                merged.extend_from_slice(row);
                if wanted.label {
                    labels.extend(label);
                }
            }
            Ok(Outcome {
                batch,
                scores: Scores::Owned(merged),
                labels: wanted.label.then_some(labels),
                version: Cow::Borrowed(entry.version.as_str()),
                replayed: stored.iter().all(Option::is_some),
                cache: Some(cache_status),
                inference_id: Some(base_id),
            })
        }
    }
}

/// The model's label of each row of `scores`.
fn model_labels<'e>(entry: &'e ModelEntry, scores: &[f64]) -> Vec<Cow<'e, str>> {
    scores
        .chunks(entry.model.num_outputs().max(1))
        .filter_map(|row| entry.label(row))
        .map(label_text)
        .collect()
}

fn label_text(label: Label<'_>) -> Cow<'_, str> {
    match label {
        Label::Name(name) => Cow::Borrowed(name),
        Label::Class(class) => Cow::Owned(class.to_string()),
    }
}

/// The scores of every row, from the prediction cache or the model.
async fn score_rows(
    state: &AppState,
    entry: &ModelEntry,
    rows: &[f64],
    batch: usize,
    cache: CacheControl,
) -> Result<(Scores, CacheStatus), ApiError> {
    state
        .cache()
        .get_or_score(entry, rows, cache, || entry.predict(rows, batch))
        .await
}
