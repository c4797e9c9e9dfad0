//! ModelInfer: decode the message's tensors into the infer core's neutral
//! [`Tensor`]s, lay out rows and answer them with [`infer_rows`] (cache,
//! inference log, replay by the message's `id`), then encode the outcome as
//! `raw_output_contents`.

use tonic::metadata::{MetadataMap, MetadataValue};

use super::proto::model_infer_response::InferOutputTensor;
use super::proto::{ModelInferRequest, ModelInferResponse};
use super::tensors::{self, Source};
use crate::cache::{CACHE_HEADER, CacheControl};
use crate::error::ApiError;
use crate::gateway::Admitted;
use crate::infer_api::{Outcome, Shape, Tensor, build_rows, infer_rows, wanted_outputs};
use crate::inference_log::{INFERENCE_ID_HEADER, LogContext, REPLAYED_HEADER};
use crate::state::AppState;
use crate::telemetry::events::{BodyParsed, ResponseEncoded};

/// Answer one ModelInfer message (the gateway has admitted it).
pub(super) async fn infer(
    state: &AppState,
    admitted: &Admitted<'_>,
    metadata: &MetadataMap,
    message: ModelInferRequest,
) -> Result<tonic::Response<ModelInferResponse>, ApiError> {
    let headers = metadata.as_ref();
    let ctx = LogContext::new(admitted.key_name());
    let cache = CacheControl::from_headers(headers);
    let entry = state.registry.find(&message.model_name)?;
    if !message.model_version.is_empty() {
        entry.check_version(&message.model_version)?;
    }
    let started = std::time::Instant::now();
    let (inputs, mut values) = decode_inputs(&message)?;
    let (rows, batch) = build_rows(&entry, &inputs, &mut values)?;
    let telemetry = state.gateway.telemetry();
    telemetry.emit(BodyParsed {
        duration: started.elapsed(),
        rows: batch,
    });
    let requested = (!message.outputs.is_empty())
        .then(|| message.outputs.iter().map(|output| output.name.as_str()));
    let wanted = wanted_outputs(&entry, requested)?;
    let client_id = (!message.id.is_empty()).then_some(message.id.as_str());
    let outcome = infer_rows(state, &entry, client_id, &rows, batch, cache, &ctx, wanted).await?;
    let k = entry.model.num_outputs();
    let score_shape = if entry.is_multiclass() {
        vec![outcome.batch as i64, k as i64]
    } else {
        vec![outcome.batch as i64]
    };
    ResponseEncoded::timed(telemetry, || {
        respond(&message, &entry.name, outcome, wanted.score, score_shape)
    })
}

/// The message's inputs as neutral tensors over one value buffer. Values
/// come from `raw_input_contents` (one entry per input, in order) when it
/// is set, else from each input's `contents`.
fn decode_inputs(message: &ModelInferRequest) -> Result<(Vec<Tensor<'_>>, Vec<f64>), ApiError> {
    let raw = &message.raw_input_contents;
    if !raw.is_empty() && raw.len() != message.inputs.len() {
        return Err(ApiError::bad_request(format!(
            "raw_input_contents has {} entries but there are {} inputs; send one per input, in order, or none",
            raw.len(),
            message.inputs.len()
        )));
    }
    let mut values = Vec::new();
    let mut inputs = Vec::with_capacity(message.inputs.len());
    for (index, input) in message.inputs.iter().enumerate() {
        let name = input.name.as_str();
        if name.is_empty() {
            return Err(ApiError::bad_request(format!(
                "inputs[{index}]: missing `name`"
            )));
        }
        let source = match raw.get(index) {
            Some(bytes) => {
                if input.contents.is_some() {
                    return Err(ApiError::bad_request(format!(
                        "tensor `{name}` has both contents and raw_input_contents; send one"
                    )));
                }
                Source::Raw(bytes)
            }
            None => Source::Typed(input.contents.as_ref()),
        };
        let start = values.len();
        tensors::decode(name, &input.datatype, source, &mut values)?;
        let shape = Shape::from_signed(name, &input.shape)?;
        inputs.push(Tensor::new(
            name,
            input.datatype.as_str(),
            shape,
            start..values.len(),
        ));
    }
    Ok((inputs, values))
}

/// The response: one output per wanted tensor, values in
/// `raw_output_contents` (scores FP64, labels BYTES), and the HTTP
/// answer's headers as metadata.
fn respond(
    message: &ModelInferRequest,
    model_name: &str,
    outcome: Outcome<'_>,
    want_score: bool,
    score_shape: Vec<i64>,
) -> Result<tonic::Response<ModelInferResponse>, ApiError> {
    let batch = outcome.batch as i64;
    let mut outputs = Vec::with_capacity(2);
    let mut raw = Vec::with_capacity(2);
    if want_score {
        outputs.push(output_tensor("score", "FP64", score_shape));
        raw.push(tensors::raw_fp64(&outcome.scores));
    }
    if let Some(labels) = &outcome.labels {
        outputs.push(output_tensor("label", "BYTES", vec![batch]));
        raw.push(tensors::raw_bytes(labels.iter().map(|l| l.as_ref()))?);
    }
    let mut response = tonic::Response::new(ModelInferResponse {
        model_name: model_name.to_owned(),
        model_version: outcome.version.into_owned(),
        id: message.id.clone(),
        parameters: Default::default(),
        outputs,
        raw_output_contents: raw,
    });
    let metadata = response.metadata_mut();
    if let Some(cache) = outcome.cache {
        metadata.insert(CACHE_HEADER, ascii(cache.header_value()));
    }
    if outcome.replayed {
        metadata.insert(REPLAYED_HEADER, MetadataValue::from_static("true"));
    }
    if let Some(id) = outcome
        .inference_id
        .as_deref()
        .and_then(|id| id.parse().ok())
    {
        metadata.insert(INFERENCE_ID_HEADER, id);
    }
    Ok(response)
}

fn ascii(value: axum::http::HeaderValue) -> MetadataValue<tonic::metadata::Ascii> {
    // A HeaderValue is valid ASCII metadata as is.
    MetadataValue::try_from(value.as_bytes()).unwrap_or_else(|_| MetadataValue::from_static(""))
}

fn output_tensor(name: &str, datatype: &str, shape: Vec<i64>) -> InferOutputTensor {
    InferOutputTensor {
        name: name.to_owned(),
        datatype: datatype.to_owned(),
        shape,
        parameters: Default::default(),
        contents: None,
    }
}
