//! The HTTP answer to an infer request, built from its [`Outcome`]: the
//! JSON body and the Vigil headers (cache, replay, inference id).

use axum::Json;
use axum::response::{IntoResponse, Response};

use super::outcome::Outcome;
use super::rows::Wanted;
use super::{InferResponse, OutputData, OutputTensor};
use crate::cache::CACHE_HEADER;
use crate::inference_log::{mark_replayed, set_inference_id};
use crate::registry::ModelEntry;

/// The JSON infer response for `outcome`, with its headers; `id` is the
/// request's `id`, echoed.
pub(crate) fn json_response(
    entry: &ModelEntry,
    id: Option<&str>,
    outcome: &Outcome<'_>,
    wanted: Wanted,
) -> Response {
    let k = entry.model.num_outputs();
    let batch = outcome.batch;
    let mut outputs = Vec::with_capacity(2);
    if wanted.score {
        outputs.push(OutputTensor {
            name: "score",
            datatype: "FP64",
            shape: if entry.is_multiclass() {
                vec![batch, k]
            } else {
                vec![batch]
            },
            data: OutputData::Numbers(&outcome.scores),
        });
    }
    if let (true, Some(labels)) = (wanted.label, &outcome.labels) {
        outputs.push(OutputTensor {
            name: "label",
            datatype: "BYTES",
            shape: vec![batch],
            data: OutputData::Labels(labels),
        });
    }
    let body = InferResponse {
        model_name: &entry.name,
        model_version: &outcome.version,
        id,
        outputs,
    };
    let mut response = Json(body).into_response();
    set_headers(&mut response, outcome);
    response
}

/// The Vigil headers saying how `outcome` was answered.
pub(crate) fn set_headers(response: &mut Response, outcome: &Outcome<'_>) {
    if let Some(status) = outcome.cache {
        response
            .headers_mut()
            .insert(CACHE_HEADER, status.header_value());
    }
    if outcome.replayed {
        mark_replayed(response);
    }
    if let Some(id) = &outcome.inference_id {
        set_inference_id(response, id);
    }
}
