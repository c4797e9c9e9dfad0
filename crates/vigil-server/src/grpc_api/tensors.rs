//! gRPC tensors ↔ numbers: an input's values from `raw_input_contents`
//! (little-endian bytes) or from its typed `contents`, into the request's
//! shared `f64` buffer; outputs as `raw_output_contents`, which is what
//! tritonclient.grpc reads.

use bytes::Bytes;

use super::proto::InferTensorContents;
use crate::error::ApiError;
use crate::tensor_bytes::{decode_le, element_size, encode_bytes, encode_fp64};

/// Where one input tensor's values are.
#[derive(Debug, Clone, Copy)]
pub(super) enum Source<'a> {
    /// Its entry of `raw_input_contents`.
    Raw(&'a [u8]),
    /// Its typed `contents` (or none: no values).
    Typed(Option<&'a InferTensorContents>),
}

/// Append the values of tensor `name` (of `datatype`) to `out` as `f64`.
/// The count is checked against the shape by the row layout, which knows
/// the shape; here only the bytes must be whole elements.
pub(super) fn decode(
    name: &str,
    datatype: &str,
    source: Source<'_>,
    out: &mut Vec<f64>,
) -> Result<(), ApiError> {
    match source {
        Source::Raw(bytes) => decode_raw(name, datatype, bytes, out),
        Source::Typed(contents) => decode_typed(name, datatype, contents, out),
    }
}

fn unsupported(name: &str, datatype: &str) -> ApiError {
    ApiError::bad_request(format!(
        "tensor `{name}` has datatype {datatype}; expected one of {}",
        crate::infer_api::NUMERIC_DATATYPES.join(", ")
    ))
}

fn decode_raw(
    name: &str,
    datatype: &str,
    bytes: &[u8],
    out: &mut Vec<f64>,
) -> Result<(), ApiError> {
    let size = element_size(datatype).ok_or_else(|| unsupported(name, datatype))?;
    if !bytes.len().is_multiple_of(size) {
        return Err(ApiError::bad_request(format!(
            "raw_input_contents of tensor `{name}` has {} bytes, not a whole number of {datatype} elements ({size} bytes each)",
            bytes.len()
        )));
    }
    decode_le(datatype, bytes, out);
    Ok(())
}

fn decode_typed(
    name: &str,
    datatype: &str,
    contents: Option<&InferTensorContents>,
    out: &mut Vec<f64>,
) -> Result<(), ApiError> {
    let empty = InferTensorContents::default();
    let c = contents.unwrap_or(&empty);
    let field = match datatype {
        "FP64" => {
            out.extend_from_slice(&c.fp64_contents);
            "fp64_contents"
        }
        "FP32" => {
            out.extend(c.fp32_contents.iter().map(|&v| f64::from(v)));
            "fp32_contents"
        }
        "INT8" | "INT16" | "INT32" => {
            out.extend(c.int_contents.iter().map(|&v| f64::from(v)));
            "int_contents"
        }
        "INT64" => {
            out.extend(c.int64_contents.iter().map(|&v| v as f64));
            "int64_contents"
        }
        "UINT8" | "UINT16" | "UINT32" => {
            out.extend(c.uint_contents.iter().map(|&v| f64::from(v)));
            "uint_contents"
        }
        "UINT64" => {
            out.extend(c.uint64_contents.iter().map(|&v| v as f64));
            "uint64_contents"
        }
        "FP16" => {
            return Err(ApiError::bad_request(format!(
                "tensor `{name}` is FP16, which has no typed contents field: send it in raw_input_contents"
            )));
        }
        _ => return Err(unsupported(name, datatype)),
    };
    // Values in another field than the datatype's would be silently lost.
    let others = [
        ("bool_contents", c.bool_contents.len()),
        ("int_contents", c.int_contents.len()),
        ("int64_contents", c.int64_contents.len()),
        ("uint_contents", c.uint_contents.len()),
        ("uint64_contents", c.uint64_contents.len()),
        ("fp32_contents", c.fp32_contents.len()),
        ("fp64_contents", c.fp64_contents.len()),
        ("bytes_contents", c.bytes_contents.len()),
    ];
    if let Some((other, _)) = others.iter().find(|(f, n)| *f != field && *n > 0) {
        return Err(ApiError::bad_request(format!(
            "tensor `{name}` is {datatype}, whose values go in contents.{field}, but contents.{other} is set"
        )));
    }
    Ok(())
}

/// `values` as little-endian FP64 bytes.
pub(super) fn raw_fp64(values: &[f64]) -> Bytes {
    let mut out = Vec::new();
    encode_fp64(values, &mut out);
    Bytes::from(out)
}

/// `strings` as a raw BYTES tensor: each element a 4-byte little-endian
/// length, then its bytes.
pub(super) fn raw_bytes<'s>(strings: impl IntoIterator<Item = &'s str>) -> Result<Bytes, ApiError> {
    let mut out = Vec::new();
    encode_bytes(strings, &mut out)?;
    Ok(Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn raw(datatype: &str, bytes: &[u8]) -> Result<Vec<f64>, ApiError> {
        let mut out = Vec::new();
        decode("x", datatype, Source::Raw(bytes), &mut out).map(|()| out)
    }

    #[test]
    fn raw_values_are_little_endian() {
        let fp32: Vec<u8> = [1.5f32, -2.25]
            .iter()
            .flat_map(|v| v.to_le_bytes())
            .collect();
        assert_eq!(raw("FP32", &fp32).expect("fp32"), vec![1.5, -2.25]);
        let fp64: Vec<u8> = [0.1f64].iter().flat_map(|v| v.to_le_bytes()).collect();
        assert_eq!(raw("FP64", &fp64).expect("fp64"), vec![0.1]);
        assert_eq!(
            raw("INT16", &[0xff, 0xff, 2, 0]).expect("int16"),
            vec![-1.0, 2.0]
        );
        assert_eq!(raw("UINT8", &[200]).expect("uint8"), vec![200.0]);
        // 1.0, -2.0 and the smallest subnormal in half precision.
        let half = raw("FP16", &[0x00, 0x3c, 0x00, 0xc0, 0x01, 0x00]).expect("fp16");
        assert_eq!(half, vec![1.0, -2.0, 2f64.powi(-24)]);
        assert!(raw("FP16", &[0x00, 0x7e]).expect("nan")[0].is_nan());
    }

    #[test]
    fn raw_length_must_be_whole_elements() {
        let err = raw("FP32", &[0, 0, 0]).expect_err("3 bytes");
        assert!(err.message.contains("3 bytes"), "{}", err.message);
        let err = raw("BYTES", &[0]).expect_err("bytes");
        assert!(err.message.contains("datatype BYTES"), "{}", err.message);
    }

    #[test]
    fn typed_values_come_from_the_datatype_field() {
        let contents = InferTensorContents {
            int_contents: vec![3, -4],
            ..InferTensorContents::default()
        };
        let mut out = Vec::new();
        decode("x", "INT32", Source::Typed(Some(&contents)), &mut out).expect("int32");
        assert_eq!(out, vec![3.0, -4.0]);
        let err =
            decode("x", "FP32", Source::Typed(Some(&contents)), &mut out).expect_err("wrong field");
        assert!(
            err.message.contains("contents.int_contents is set"),
            "{}",
            err.message
        );
        let err = decode("x", "FP16", Source::Typed(None), &mut out).expect_err("fp16");
        assert!(
            err.message.contains("raw_input_contents"),
            "{}",
            err.message
        );
    }

    #[test]
    fn outputs_are_raw_little_endian() {
        assert_eq!(&raw_fp64(&[1.0])[..], &1.0f64.to_le_bytes());
        assert_eq!(
            &raw_bytes(["ok", ""]).expect("short labels")[..],
            &[2, 0, 0, 0, b'o', b'k', 0, 0, 0, 0]
        );
    }
}
