//! The HTTP answer to an infer request, built from its [`Outcome`]: the
//! JSON body (or JSON header plus binary outputs) and the Vigil headers
//! (cache, replay, inference id).

use axum::Json;
use axum::http::HeaderValue;
use axum::http::header::CONTENT_TYPE;
use axum::response::{IntoResponse, Response};

use super::outcome::Outcome;
use super::rows::Wanted;
use super::{InferResponse, OutputData, OutputParameters, OutputTensor};
use crate::cache::CACHE_HEADER;
use crate::error::ApiError;
use crate::extract::INFERENCE_HEADER_LENGTH;
use crate::inference_log::{mark_replayed, set_inference_id};
use crate::registry::ModelEntry;
use crate::tensor_bytes::{encode_bytes, encode_fp64};

/// Which outputs go as binary data after the JSON header.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct BinaryOutputs {
    pub score: bool,
    pub label: bool,
}

/// The JSON infer response for `outcome`, with its headers; `id` is the
/// request's `id`, echoed.
pub(crate) fn json_response(
    entry: &ModelEntry,
    id: Option<&str>,
    outcome: &Outcome<'_>,
    wanted: Wanted,
) -> Response {
    // Without a binary output nothing is encoded, so this cannot fail.
    let outputs =
        output_tensors(entry, outcome, wanted, BinaryOutputs::default(), None).unwrap_or_default();
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

/// The infer response with the outputs in `binary` sent as binary data
/// (JSON header, then their bytes in output order, the header's length in
/// `Inference-Header-Content-Length`); plain JSON when none is.
pub(crate) fn http_response(
    entry: &ModelEntry,
    id: Option<&str>,
    outcome: &Outcome<'_>,
    wanted: Wanted,
    binary: BinaryOutputs,
) -> Result<Response, ApiError> {
    let binary = BinaryOutputs {
        score: binary.score && wanted.score,
        label: binary.label && wanted.label && outcome.labels.is_some(),
    };
    if binary == BinaryOutputs::default() {
        return Ok(json_response(entry, id, outcome, wanted));
    }
    let mut data = Vec::new();
    let body = InferResponse {
        model_name: &entry.name,
        model_version: &outcome.version,
        id,
        outputs: output_tensors(entry, outcome, wanted, binary, Some(&mut data))?,
    };
    let mut bytes = serde_json::to_vec(&body)
        .map_err(|err| ApiError::internal(format!("cannot serialise an infer response: {err}")))?;
    let header_length = HeaderValue::from(bytes.len());
    bytes.reserve(data.len());
    bytes.extend_from_slice(&data);
    drop(data);
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("application/octet-stream"),
    );
    headers.insert(INFERENCE_HEADER_LENGTH, header_length);
    set_headers(&mut response, outcome);
    Ok(response)
}

/// The output tensors; those in `binary` get their bytes appended to
/// `data` and a `binary_data_size` instead of `data`.
fn output_tensors<'o>(
    entry: &ModelEntry,
    outcome: &'o Outcome<'_>,
    wanted: Wanted,
    binary: BinaryOutputs,
    mut data: Option<&mut Vec<u8>>,
) -> Result<Vec<OutputTensor<'o>>, ApiError> {
    let k = entry.model.num_outputs();
    let batch = outcome.batch;
    let mut outputs = Vec::with_capacity(2);
    if wanted.score {
        let (parameters, values) = match (&mut data, binary.score) {
            (Some(data), true) => {
                let before = data.len();
                encode_fp64(&outcome.scores, data);
                (
                    Some(OutputParameters {
                        binary_data_size: data.len() - before,
                    }),
                    None,
                )
            }
            _ => (None, Some(OutputData::Numbers(&outcome.scores))),
        };
        outputs.push(OutputTensor {
            name: "score",
            datatype: "FP64",
            shape: if entry.is_multiclass() {
                vec![batch, k]
            } else {
                vec![batch]
            },
            parameters,
            data: values,
        });
    }
    if let (true, Some(labels)) = (wanted.label, &outcome.labels) {
        let (parameters, values) = match (&mut data, binary.label) {
            (Some(data), true) => {
                let before = data.len();
                encode_bytes(labels.iter().map(|l| l.as_ref()), data)?;
                (
                    Some(OutputParameters {
                        binary_data_size: data.len() - before,
                    }),
                    None,
                )
            }
            _ => (None, Some(OutputData::Labels(labels))),
        };
        outputs.push(OutputTensor {
            name: "label",
            datatype: "BYTES",
            shape: vec![batch],
            parameters,
            data: values,
        });
    }
    Ok(outputs)
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
