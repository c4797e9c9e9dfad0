//! The binary tensor data extension (Triton's `binary_tensor_data`): with
//! `Inference-Header-Content-Length: N` the body's first N bytes are the
//! JSON request and the rest holds, in input order, the raw little-endian
//! values of every input with `parameters.binary_data_size`. Outputs asked
//! for as binary travel the same way in the response.

use std::borrow::Cow;

use super::rows::{NUMERIC_DATATYPES, Shape};
use super::wire::InferRequest;
use crate::error::ApiError;

/// Splits a body into its JSON header and binary section (`None` without
/// a header length: the whole body is JSON).
pub(crate) fn split_body(
    body: &[u8],
    header_length: Option<usize>,
) -> Result<(&[u8], Option<&[u8]>), ApiError> {
    let Some(length) = header_length else {
        return Ok((body, None));
    };
    match (body.get(..length), body.get(length..)) {
        (Some(json), Some(binary)) => Ok((json, Some(binary))),
        _ => Err(ApiError::bad_request(format!(
            "Inference-Header-Content-Length is {length} but the body has {} bytes",
            body.len()
        ))),
    }
}

/// Size in bytes of one element of a numeric datatype.
fn element_size(datatype: &str) -> Option<usize> {
    Some(match datatype {
        "INT8" | "UINT8" => 1,
        "FP16" | "INT16" | "UINT16" => 2,
        "FP32" | "INT32" | "UINT32" => 4,
        "FP64" | "INT64" | "UINT64" => 8,
        _ => return None,
    })
}

/// Decodes the binary inputs of `request` from `binary` (the bytes after
/// the JSON header) into its value buffer, so that they reach the rows like
/// JSON `data` does. Every size is checked against the tensor's shape and
/// datatype and against the section's length; errors name the input.
pub(crate) fn decode_inputs(
    request: &mut InferRequest<'_>,
    binary: Option<&[u8]>,
) -> Result<(), ApiError> {
    let Some(mut rest) = binary else {
        return match request.binary_inputs.first() {
            None => Ok(()),
            Some(&(index, _)) => Err(ApiError::bad_request(format!(
                "{} has parameters.binary_data_size but the request has no Inference-Header-Content-Length header",
                describe(request, index)
            ))),
        };
    };
    let mut total: u64 = 0;
    for &(index, size) in &request.binary_inputs {
        let tensor = &request.inputs[index];
        let what = describe(request, index);
        if tensor.data.is_some() {
            return Err(ApiError::bad_request(format!(
                "{what} has both `data` and parameters.binary_data_size; send one of them"
            )));
        }
        let datatype = tensor
            .datatype
            .as_deref()
            .ok_or_else(|| ApiError::bad_request(format!("{what}: missing `datatype`")))?;
        let Some(width) = element_size(datatype) else {
            return Err(ApiError::bad_request(format!(
                "{what} has datatype {datatype}; expected one of {}",
                NUMERIC_DATATYPES.join(", ")
            )));
        };
        let shape: Shape = tensor
            .shape
            .ok_or_else(|| ApiError::bad_request(format!("{what}: missing `shape`")))?;
        let expected = shape.elements().and_then(|n| n.checked_mul(width as u64));
        if expected != Some(size) {
            let expected = expected.map_or_else(|| "too many".to_owned(), |e| e.to_string());
            return Err(ApiError::bad_request(format!(
                "{what} has shape {shape} and datatype {datatype} ({expected} bytes) but binary_data_size {size}"
            )));
        }
        let Some((bytes, tail)) = usize::try_from(size)
            .ok()
            .and_then(|size| rest.split_at_checked(size))
        else {
            return Err(ApiError::bad_request(format!(
                "{what} has binary_data_size {size} but only {} bytes of binary data are left in the body",
                rest.len()
            )));
        };
        rest = tail;
        total += size;
        let start = request.data.len();
        decode_values(datatype, bytes, &mut request.data);
        request.inputs[index].data = Some(start..request.data.len());
    }
    if !rest.is_empty() {
        return Err(ApiError::bad_request(format!(
            "the body has {} bytes of binary data after the last binary input (binary_data_size values add up to {total})",
            rest.len()
        )));
    }
    Ok(())
}

/// `tensor `name``, or `inputs[i]` when it has no name.
fn describe(request: &InferRequest<'_>, index: usize) -> String {
    match request.inputs[index].name.as_deref() {
        Some(name) => format!("tensor `{name}`"),
        None => format!("inputs[{index}]"),
    }
}

/// Appends the little-endian values of `bytes` (a whole number of elements
/// of `datatype`, checked by the caller) to `out` as f64.
fn decode_values(datatype: &str, bytes: &[u8], out: &mut Vec<f64>) {
    macro_rules! each {
        ($ty:ty, $to:expr) => {{
            const W: usize = std::mem::size_of::<$ty>();
            out.extend(bytes.chunks_exact(W).map(|chunk| {
                let mut raw = [0u8; W];
                raw.copy_from_slice(chunk);
                $to(<$ty>::from_le_bytes(raw))
            }))
        }};
    }
    out.reserve(bytes.len() / element_size(datatype).unwrap_or(1));
    match datatype {
        "FP16" => each!(u16, f16_to_f64),
        "FP32" => each!(f32, f64::from),
        "FP64" => each!(f64, |v| v),
        "INT8" => each!(i8, f64::from),
        "INT16" => each!(i16, f64::from),
        "INT32" => each!(i32, f64::from),
        // Wider integers become the nearest f64, as JSON numbers do.
        "INT64" => each!(i64, |v| v as f64),
        "UINT8" => each!(u8, f64::from),
        "UINT16" => each!(u16, f64::from),
        "UINT32" => each!(u32, f64::from),
        "UINT64" => each!(u64, |v| v as f64),
        _ => {}
    }
}

/// An IEEE 754 half-precision value.
fn f16_to_f64(bits: u16) -> f64 {
    let sign = if bits & 0x8000 == 0 { 1.0 } else { -1.0 };
    let exponent = i32::from((bits >> 10) & 0x1f);
    let fraction = f64::from(bits & 0x3ff);
    match exponent {
        0 => sign * fraction * 2f64.powi(-24),
        0x1f if fraction == 0.0 => sign * f64::INFINITY,
        0x1f => f64::NAN,
        _ => sign * (1.0 + fraction / 1024.0) * 2f64.powi(exponent - 15),
    }
}

/// Appends `scores` as FP64 little-endian.
pub(crate) fn encode_scores(scores: &[f64], out: &mut Vec<u8>) {
    out.reserve(scores.len() * 8);
    for score in scores {
        out.extend_from_slice(&score.to_le_bytes());
    }
}

/// Appends `labels` as BYTES elements: a 4-byte little-endian length, then
/// the bytes.
pub(crate) fn encode_labels(labels: &[Cow<'_, str>], out: &mut Vec<u8>) -> Result<(), ApiError> {
    for label in labels {
        let length = u32::try_from(label.len())
            .map_err(|_| ApiError::internal("a label is longer than 4 GiB"))?;
        out.extend_from_slice(&length.to_le_bytes());
        out.extend_from_slice(label.as_bytes());
    }
    Ok(())
}

#[cfg(test)]
mod tests;
