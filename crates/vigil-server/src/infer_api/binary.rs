//! The binary tensor data extension (Triton's `binary_tensor_data`): with
//! `Inference-Header-Content-Length: N` the body's first N bytes are the
//! JSON request and the rest holds, in input order, the raw little-endian
//! values of every input with `parameters.binary_data_size`. Outputs asked
//! for as binary travel the same way in the response.

use super::rows::{NUMERIC_DATATYPES, Shape};
use super::wire::InferRequest;
use crate::error::ApiError;
use crate::tensor_bytes::{decode_le, element_size};

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
        decode_le(datatype, bytes, &mut request.data);
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

#[cfg(test)]
mod tests;
