use proptest::prelude::*;

use super::*;
use crate::store::codec_tests::span as any_span;

/// Spans as the codec carries them: an `http` block with no field set is
/// not carried, nor an empty cause (see the module doc), so the strategy
/// leaves them out; a body
/// size is an int64 in OTLP.
fn span() -> impl Strategy<Value = Span> {
    any_span().prop_map(|mut s| {
        if let Some(len) = s.http.as_mut().and_then(|h| h.content_length.as_mut()) {
            *len = (*len).min(i64::MAX as u64);
        }
        if s.cause.as_deref() == Some("") {
            s.cause = None;
        }
        if s.http.as_ref().is_some_and(|h| *h == Http::default()) {
            s.http = None;
        }
        s
    })
}

proptest! {
    #[test]
    fn proto_round_trips(spans in proptest::collection::vec(span(), 0..6)) {
        let body = encode_proto(&spans);
        let back = decode_proto(&body, &DecodeLimits::default()).unwrap();
        prop_assert_eq!(sorted(back), sorted(spans));
    }

    #[test]
    fn json_round_trips(spans in proptest::collection::vec(span(), 0..6)) {
        let body = encode_json(&spans);
        let back = decode_json(&body, &DecodeLimits::default()).unwrap();
        prop_assert_eq!(sorted(back), sorted(spans));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = decode_proto(&bytes, &DecodeLimits::default());
        let _ = decode_json(&bytes, &DecodeLimits::default());
    }
}

/// Encoding groups spans by service: compare as sets.
fn sorted(mut spans: Vec<Span>) -> Vec<Span> {
    spans.sort_by_key(|s| (s.service.clone(), s.trace_id, s.span_id, s.start_us));
    spans
}

/// The example of the OTLP specification (`examples/trace.json` of
/// opentelemetry-proto), with an HTTP server span's attributes added.
const SPEC_EXAMPLE: &str = r#"{
  "resourceSpans": [{
    "resource": {"attributes": [
      {"key": "service.name", "value": {"stringValue": "my.service"}}
    ]},
    "scopeSpans": [{
      "scope": {"name": "my.library", "version": "1.0.0",
                "attributes": [{"key": "my.scope.attribute", "value": {"stringValue": "some scope attribute"}}]},
      "spans": [{
        "traceId": "5B8EFFF798038103D269B633813FC60C",
        "spanId": "EEE19B7EC3C1B174",
        "parentSpanId": "EEE19B7EC3C1B173",
        "name": "I'm a server span",
        "startTimeUnixNano": "1544712660000000000",
        "endTimeUnixNano": 1544712661000000000,
        "kind": 2,
        "attributes": [
          {"key": "my.span.attr", "value": {"stringValue": "some value"}},
          {"key": "tenant", "value": {"stringValue": "acme"}},
          {"key": "rows", "value": {"intValue": "3"}},
          {"key": "http.method", "value": {"stringValue": "GET"}},
          {"key": "http.url", "value": {"stringValue": "https://example.com/a"}},
          {"key": "http.status_code", "value": {"intValue": 503}},
          {"key": "tags", "value": {"arrayValue": {"values": [{"stringValue": "a"}, {"intValue": "1"}]}}}
        ],
        "status": {"code": 2, "message": "upstream timed out"}
      }, {
        "traceId": "5b8efff798038103d269b633813fc60c",
        "spanId": "eee19b7ec3c1b175",
        "parentSpanId": "eee19b7ec3c1b174",
        "name": "redis",
        "kind": "SPAN_KIND_CLIENT",
        "startTimeUnixNano": "1544712660100000000",
        "endTimeUnixNano": "1544712660200000000",
        "attributes": [{"key": "db.system", "value": {"stringValue": "redis"}}]
      }]
    }]
  }]
}"#;

#[test]
fn the_spec_example_decodes() {
    let spans = decode_json(SPEC_EXAMPLE.as_bytes(), &DecodeLimits::default()).unwrap();
    assert_eq!(spans.len(), 2);
    let s = &spans[0];
    assert_eq!(s.trace_id.to_string(), "5b8efff798038103d269b633813fc60c");
    assert_eq!(s.span_id.to_string(), "eee19b7ec3c1b174");
    assert_eq!(
        s.parent_id.map(|p| p.to_string()).as_deref(),
        Some("eee19b7ec3c1b173")
    );
    assert_eq!(
        (s.service.as_ref(), s.name.as_ref(), s.kind),
        ("my.service", "I'm a server span", SpanKind::Server)
    );
    assert_eq!(
        (s.start_us, s.end_us),
        (1_544_712_660_000_000, 1_544_712_661_000_000)
    );
    let http = s.http.as_ref().unwrap();
    assert_eq!(
        (http.method.as_deref(), http.url.as_deref(), http.status),
        (Some("GET"), Some("https://example.com/a"), Some(503))
    );
    assert!(s.fault && !s.error);
    assert_eq!(s.cause.as_deref(), Some("upstream timed out"));
    assert_eq!(s.annotations["tenant"], AnnotationValue::from("acme"));
    assert_eq!(s.annotations["rows"], AnnotationValue::Number(3.0));
    assert_eq!(s.metadata["my.span.attr"], "some value");
    assert_eq!(s.metadata["tags"], serde_json::json!(["a", 1]));
    let redis = &spans[1];
    assert!(redis.remote, "a client span naming a db.system is remote");
    assert_eq!(
        (redis.kind, redis.end_us - redis.start_us),
        (SpanKind::Client, 100_000)
    );
    assert!(
        redis.metadata.is_empty(),
        "db.system naming the span is not kept twice"
    );
}

#[test]
fn bad_ids_name_their_field() {
    let doc = SPEC_EXAMPLE.replace("EEE19B7EC3C1B174\"", "00000000\"");
    let err = decode_json(doc.as_bytes(), &DecodeLimits::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "resourceSpans[0].scopeSpans[0].spans[0].spanId: expected 8 bytes, found 4"
    );
    let doc = SPEC_EXAMPLE.replace(
        "5b8efff798038103d269b633813fc60c",
        "00000000000000000000000000000000",
    );
    let err = decode_json(doc.as_bytes(), &DecodeLimits::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "resourceSpans[0].scopeSpans[0].spans[1].traceId: an all-zero id is not valid"
    );
    let doc = SPEC_EXAMPLE.replace(
        "5B8EFFF798038103D269B633813FC60C",
        "5B8EFFF79803810zD269B633813FC60C",
    );
    let err = decode_json(doc.as_bytes(), &DecodeLimits::default()).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("resourceSpans[0].scopeSpans[0].spans[0].traceId: "),
        "{err}"
    );

    let mut request = to_request(&[Span::new(
        TraceId([1; 16]),
        SpanId([2; 8]),
        None,
        "a",
        "b",
        1,
        2,
    )]);
    request.resource_spans[0].scope_spans[0].spans[0]
        .trace_id
        .pop();
    let err = decode_proto(&request.encode_to_vec(), &DecodeLimits::default()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "resourceSpans[0].scopeSpans[0].spans[0].traceId: expected 16 bytes, found 15"
    );
}

#[test]
fn other_errors_say_what_is_wrong() {
    let limits = DecodeLimits { max_spans: 1 };
    assert_eq!(
        decode_json(SPEC_EXAMPLE.as_bytes(), &limits),
        Err(DecodeError::TooManySpans { max: 1 })
    );
    let two = [
        Span::new(TraceId([1; 16]), SpanId([2; 8]), None, "a", "b", 1, 2),
        Span::new(TraceId([1; 16]), SpanId([3; 8]), None, "a", "b", 1, 2),
    ];
    assert_eq!(
        decode_proto(&encode_proto(&two), &limits),
        Err(DecodeError::TooManySpans { max: 1 })
    );
    let doc = SPEC_EXAMPLE.replace("\"kind\": 2", "\"kind\": 9");
    assert_eq!(
        decode_json(doc.as_bytes(), &DecodeLimits::default())
            .unwrap_err()
            .to_string(),
        "resourceSpans[0].scopeSpans[0].spans[0].kind: 9 is not a SpanKind (0–5)"
    );
    let doc = SPEC_EXAMPLE.replace("\"1544712660000000000\"", "\"soon\"");
    assert_eq!(
        decode_json(doc.as_bytes(), &DecodeLimits::default())
            .unwrap_err()
            .to_string(),
        "resourceSpans[0].scopeSpans[0].spans[0].startTimeUnixNano: expected an integer (a string or a number)"
    );
    assert!(matches!(
        decode_json(b"[1]", &DecodeLimits::default()),
        Err(DecodeError::Syntax(_))
    ));
    assert!(matches!(
        decode_proto(b"\xff\xff\xff", &DecodeLimits::default()),
        Err(DecodeError::Syntax(_))
    ));
}

#[test]
fn json_uses_hex_ids_and_string_int64s() {
    let mut span = Span::new(
        TraceId([0xab; 16]),
        SpanId([0xcd; 8]),
        None,
        "vigil",
        "vigil",
        1_000,
        2_000,
    );
    span.set_status(429);
    let v: serde_json::Value = serde_json::from_slice(&encode_json(&[span])).unwrap();
    let s = &v["resourceSpans"][0]["scopeSpans"][0]["spans"][0];
    assert_eq!(s["traceId"], "abababababababababababababababab");
    assert_eq!(s["startTimeUnixNano"], "1000000");
    assert_eq!(s["kind"], 1);
    assert!(s.get("parentSpanId").is_none());
    let attrs = s["attributes"].as_array().unwrap();
    let status = attrs
        .iter()
        .find(|a| a["key"] == "http.response.status_code")
        .unwrap();
    assert_eq!(status["value"]["intValue"], "429");
    let throttle = attrs.iter().find(|a| a["key"] == "vigil.throttle").unwrap();
    assert_eq!(throttle["value"]["boolValue"], true);
    assert_eq!(
        v["resourceSpans"][0]["resource"]["attributes"][0]["key"],
        "service.name"
    );
}
