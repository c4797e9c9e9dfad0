//! Raw tensor bytes as the Open Inference Protocol lays them out, shared by
//! the REST binary tensor extension (`infer_api`) and gRPC's
//! `raw_input_contents` / `raw_output_contents` (`grpc_api`): numeric
//! elements little-endian, back to back; a BYTES element a 4-byte
//! little-endian length, then its bytes.

use crate::error::ApiError;

/// Bytes per element of a numeric datatype, `None` for any other.
pub(crate) fn element_size(datatype: &str) -> Option<usize> {
    Some(match datatype {
        "INT8" | "UINT8" => 1,
        "FP16" | "INT16" | "UINT16" => 2,
        "FP32" | "INT32" | "UINT32" => 4,
        "FP64" | "INT64" | "UINT64" => 8,
        _ => return None,
    })
}

/// Appends the little-endian values of `bytes` to `out` as f64. The caller
/// has checked that `datatype` is numeric and that `bytes` holds a whole
/// number of its elements (a trailing partial element is ignored).
pub(crate) fn decode_le(datatype: &str, bytes: &[u8], out: &mut Vec<f64>) {
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

/// IEEE 754 half precision to double (exact: every half is a double).
pub(crate) fn f16_to_f64(bits: u16) -> f64 {
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

/// Appends `values` as FP64 little-endian.
pub(crate) fn encode_fp64(values: &[f64], out: &mut Vec<u8>) {
    out.reserve(values.len() * 8);
    for value in values {
        out.extend_from_slice(&value.to_le_bytes());
    }
}

/// Appends `strings` as BYTES elements: a 4-byte little-endian length, then
/// the bytes.
pub(crate) fn encode_bytes<'s>(
    strings: impl IntoIterator<Item = &'s str>,
    out: &mut Vec<u8>,
) -> Result<(), ApiError> {
    for s in strings {
        let length = u32::try_from(s.len())
            .map_err(|_| ApiError::internal("a label is longer than 4 GiB"))?;
        out.extend_from_slice(&length.to_le_bytes());
        out.extend_from_slice(s.as_bytes());
    }
    Ok(())
}
