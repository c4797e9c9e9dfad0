use proptest::prelude::*;
use serde_json::json;

use crate::error::ErrorCode;
use crate::infer_api::parse_request;
use crate::tensor_bytes::f16_to_f64;

/// One generated tensor: datatype, shape, little-endian bytes and the
/// values the server must read from them.
#[derive(Debug, Clone)]
struct Case {
    datatype: &'static str,
    dims: Vec<u64>,
    bytes: Vec<u8>,
    values: Vec<f64>,
    /// Sent as JSON `data` instead of binary.
    json: bool,
}

fn values_of(datatype: &'static str, n: usize) -> BoxedStrategy<(Vec<u8>, Vec<f64>)> {
    macro_rules! ints {
        ($ty:ty) => {
            prop::collection::vec(any::<$ty>(), n)
                .prop_map(|v| {
                    let bytes = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                    (bytes, v.iter().map(|&x| x as f64).collect())
                })
                .boxed()
        };
    }
    match datatype {
        "INT8" => ints!(i8),
        "INT16" => ints!(i16),
        "INT32" => ints!(i32),
        "INT64" => ints!(i64),
        "UINT8" => ints!(u8),
        "UINT16" => ints!(u16),
        "UINT32" => ints!(u32),
        "UINT64" => ints!(u64),
        "FP16" => prop::collection::vec(any::<u16>(), n)
            .prop_map(|v| {
                let bytes = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                (bytes, v.iter().map(|&x| f16_to_f64(x)).collect())
            })
            .boxed(),
        "FP32" => prop::collection::vec(any::<f32>(), n)
            .prop_map(|v| {
                let bytes = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                (bytes, v.iter().map(|&x| f64::from(x)).collect())
            })
            .boxed(),
        _ => prop::collection::vec(any::<f64>(), n)
            .prop_map(|v| {
                let bytes = v.iter().flat_map(|x| x.to_le_bytes()).collect();
                (bytes, v)
            })
            .boxed(),
    }
}

fn case() -> impl Strategy<Value = Case> {
    const DATATYPES: [&str; 11] = [
        "FP16", "FP32", "FP64", "INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32",
        "UINT64",
    ];
    (
        prop::sample::select(&DATATYPES[..]),
        prop::collection::vec(0u64..4, 1..3),
        any::<bool>(),
    )
        .prop_flat_map(|(datatype, dims, json)| {
            let n = dims.iter().product::<u64>() as usize;
            values_of(datatype, n).prop_map(move |(bytes, values)| Case {
                datatype,
                dims: dims.clone(),
                bytes,
                values,
                json,
            })
        })
}

/// The body and header length for `cases`; JSON tensors carry their
/// values as FP64 numbers (NaN and infinities as null).
fn encode(cases: &[Case]) -> (Vec<u8>, usize) {
    let inputs: Vec<serde_json::Value> = cases
        .iter()
        .enumerate()
        .map(|(i, c)| {
            if c.json {
                let data: Vec<serde_json::Value> = c
                    .values
                    .iter()
                    .map(|v| if v.is_finite() { json!(v) } else { json!(null) })
                    .collect();
                json!({"name": format!("t{i}"), "datatype": "FP64", "shape": c.dims, "data": data})
            } else {
                json!({"name": format!("t{i}"), "datatype": c.datatype, "shape": c.dims,
                    "parameters": {"binary_data_size": c.bytes.len()}})
            }
        })
        .collect();
    let mut body = serde_json::to_vec(&json!({ "inputs": inputs })).expect("json");
    let header = body.len();
    for c in cases.iter().filter(|c| !c.json) {
        body.extend_from_slice(&c.bytes);
    }
    (body, header)
}

fn same(a: f64, b: f64) -> bool {
    a.to_bits() == b.to_bits() || (a.is_nan() && b.is_nan())
}

proptest! {
    #[test]
    fn encoded_tensors_decode_to_the_same_values(cases in prop::collection::vec(case(), 1..5)) {
        let (body, header) = encode(&cases);
        let request = parse_request(&body, Some(header)).expect("valid body");
        prop_assert_eq!(request.inputs.len(), cases.len());
        for (tensor, case) in request.inputs.iter().zip(&cases) {
            let range = tensor.data.clone().expect("values");
            let got = &request.data[range];
            prop_assert_eq!(got.len(), case.values.len());
            for (g, want) in got.iter().zip(&case.values) {
                let want = if case.json && !want.is_finite() { f64::NAN } else { *want };
                prop_assert!(same(*g, want), "{} {:?}: got {} want {}", case.datatype, case.dims, g, want);
            }
        }
    }

    #[test]
    fn truncated_bodies_are_400s(cases in prop::collection::vec(case(), 1..5), cut in any::<prop::sample::Index>()) {
        let (body, header) = encode(&cases);
        let cut = cut.index(body.len());
        let err = parse_request(&body[..cut], Some(header)).expect_err("truncated");
        prop_assert_eq!(err.code, ErrorCode::BadRequest);
    }

    #[test]
    fn any_header_length_is_an_answer_not_a_panic(cases in prop::collection::vec(case(), 1..5), length in 0usize..4096) {
        let (body, header) = encode(&cases);
        match parse_request(&body, Some(length)) {
            Ok(_) => prop_assert_eq!(length, header),
            Err(err) => prop_assert_eq!(err.code, ErrorCode::BadRequest),
        }
    }
}

#[test]
fn half_precision_values() {
    assert_eq!(f16_to_f64(0x3c00), 1.0);
    assert_eq!(f16_to_f64(0xc000), -2.0);
    assert_eq!(f16_to_f64(0x7bff), 65504.0);
    assert_eq!(f16_to_f64(0x0001), 2f64.powi(-24));
    assert_eq!(f16_to_f64(0x3555), 0.333_251_953_125);
    assert_eq!(f16_to_f64(0x7c00), f64::INFINITY);
    assert_eq!(f16_to_f64(0xfc00), f64::NEG_INFINITY);
    assert!(f16_to_f64(0x7e00).is_nan());
    assert_eq!(f16_to_f64(0x8000).to_bits(), (-0.0f64).to_bits());
}

fn message(body: &[u8], header: Option<usize>) -> String {
    parse_request(body, header).expect_err("a 400").message
}

#[test]
fn framing_errors_name_the_input() {
    let head =
        |inputs: serde_json::Value| serde_json::to_vec(&json!({ "inputs": inputs })).expect("json");
    let fp32 = |name: &str, size: u64| json!({"name": name, "datatype": "FP32", "shape": [2], "parameters": {"binary_data_size": size}});

    let header = head(json!([fp32("a", 8)]));
    let mut body = header.clone();
    body.extend_from_slice(&[0; 8]);
    let text = message(&body, Some(body.len() + 1));
    assert!(
        text.contains(&format!(
            "Inference-Header-Content-Length is {} but the body has {}",
            body.len() + 1,
            body.len()
        )),
        "{text}"
    );

    let text = message(&header, None);
    assert!(text.contains("tensor `a` has parameters.binary_data_size but the request has no Inference-Header-Content-Length"), "{text}");

    let header = head(json!([fp32("a", 8), fp32("b", 8)]));
    let mut body = header.clone();
    body.extend_from_slice(&[0; 12]);
    let text = message(&body, Some(header.len()));
    assert!(
        text.contains("tensor `b` has binary_data_size 8 but only 4 bytes of binary data are left"),
        "{text}"
    );

    let header = head(json!([fp32("a", 8)]));
    let mut body = header.clone();
    body.extend_from_slice(&[0; 11]);
    let text = message(&body, Some(header.len()));
    assert!(text.contains("3 bytes of binary data after the last binary input (binary_data_size values add up to 8)"), "{text}");

    let header = head(json!([fp32("a", 6)]));
    let mut body = header.clone();
    body.extend_from_slice(&[0; 6]);
    let text = message(&body, Some(header.len()));
    assert!(
        text.contains(
            "tensor `a` has shape [2] and datatype FP32 (8 bytes) but binary_data_size 6"
        ),
        "{text}"
    );

    let header = head(
        json!([{"name": "a", "datatype": "FP32", "shape": [2], "data": [1, 2], "parameters": {"binary_data_size": 8}}]),
    );
    let mut body = header.clone();
    body.extend_from_slice(&[0; 8]);
    let text = message(&body, Some(header.len()));
    assert!(
        text.contains("tensor `a` has both `data` and parameters.binary_data_size"),
        "{text}"
    );

    let header = head(
        json!([{"name": "s", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": 5}}]),
    );
    let mut body = header.clone();
    body.extend_from_slice(&[1, 0, 0, 0, b'x']);
    let text = message(&body, Some(header.len()));
    assert!(
        text.contains("tensor `s` has datatype BYTES; expected one of FP16"),
        "{text}"
    );

    let header =
        head(json!([{"datatype": "FP32", "shape": [1], "parameters": {"binary_data_size": 4}}]));
    let mut body = header.clone();
    body.extend_from_slice(&[0; 4]);
    // Decoded fine; laying out the rows says the name is missing.
    let request = parse_request(&body, Some(header.len())).expect("decodes");
    assert_eq!(request.inputs[0].data, Some(0..1));
}
