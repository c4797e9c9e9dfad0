//! The webhook target: a JSON POST, HMAC-SHA256-signed when the action has a
//! secret.

use hmac::{Hmac, KeyInit, Mac};
use hyper::header::{HeaderName, HeaderValue};
use serde_json::{Value, json};
use sha2::Sha256;

use super::retry::SendError;
use super::{Notification, rfc3339};

/// Header with `sha256=<hex HMAC-SHA256 of the body, keyed by the secret>`.
pub const SIGNATURE_HEADER: &str = "x-vigil-signature";
/// Header with the send time, Unix seconds (not covered by the signature).
pub const TIMESTAMP_HEADER: &str = "x-vigil-timestamp";

/// The webhook body of `n`: every field is always present (`null` when
/// the alarm has none), so receivers see one schema.
pub fn payload(n: &Notification) -> Result<Value, SendError> {
    Ok(json!({
        "version": 1,
        "alarm_name": n.alarm_name,
        "alarm_description": n.alarm_description,
        "old_state": n.old_state,
        "new_state": n.new_state,
        "reason": n.reason,
        "reason_data": n.reason_data,
        "time": rfc3339(n.timestamp_ms)?,
        "timestamp_ms": n.timestamp_ms,
        "namespace": n.namespace,
        "metric_name": n.metric_name,
        "dimensions": n.dimensions,
    }))
}

/// `sha256=<lowercase hex>` of HMAC-SHA256(`secret`, `body`).
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    // HMAC takes keys of any length (long ones are hashed first).
    let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(secret)
        .expect("hmac accepts keys of every length");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let mut out = String::with_capacity(7 + 64);
    out.push_str("sha256=");
    for byte in digest.iter() {
        out.push(char::from(HEX[usize::from(byte >> 4)]));
        out.push(char::from(HEX[usize::from(byte & 0xf)]));
    }
    out
}

const HEX: &[u8; 16] = b"0123456789abcdef";

/// The signing headers for one attempt sent at `now_unix_s`.
pub(crate) fn signing_headers(
    secret: Option<&str>,
    body: &[u8],
    now_unix_s: i64,
) -> Vec<(HeaderName, HeaderValue)> {
    let Some(secret) = secret else {
        return Vec::new();
    };
    let mut headers = vec![(
        HeaderName::from_static(TIMESTAMP_HEADER),
        HeaderValue::from(now_unix_s),
    )];
    // A hex string is always a valid header value.
    if let Ok(value) = HeaderValue::from_str(&signature(secret.as_bytes(), body)) {
        headers.push((HeaderName::from_static(SIGNATURE_HEADER), value));
    }
    headers
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::notify::AlarmState;

    pub(crate) fn notification() -> Notification {
        Notification {
            alarm_name: "High-Latency-Alarm".into(),
            alarm_description: Some("p99 latency of the fraud model".into()),
            old_state: AlarmState::Ok,
            new_state: AlarmState::Alarm,
            reason: "Threshold Crossed: 3 out of the last 3 datapoints were greater than the threshold (250.0)".into(),
            reason_data: json!({"threshold": 250.0, "period": 60}),
            timestamp_ms: 1_700_000_000_123,
            namespace: Some("InferencePipeline".into()),
            metric_name: Some("LatencyMs".into()),
            dimensions: [("Model".to_owned(), "fraud".to_owned())].into(),
        }
    }

    #[test]
    fn payload_has_every_field() {
        let body = payload(&notification()).unwrap();
        assert_eq!(body["alarm_name"], "High-Latency-Alarm");
        assert_eq!(body["alarm_description"], "p99 latency of the fraud model");
        assert_eq!(body["old_state"], "OK");
        assert_eq!(body["new_state"], "ALARM");
        assert_eq!(body["reason_data"]["threshold"], 250.0);
        // 1_700_000_000 s is 2023-11-14T22:13:20Z.
        assert_eq!(body["time"], "2023-11-14T22:13:20.123Z");
        assert_eq!(body["timestamp_ms"], 1_700_000_000_123i64);
        assert_eq!(body["namespace"], "InferencePipeline");
        assert_eq!(body["metric_name"], "LatencyMs");
        assert_eq!(body["dimensions"], json!({"Model": "fraud"}));
    }

    #[test]
    fn absent_fields_are_null() {
        let mut n = notification();
        n.alarm_description = None;
        n.namespace = None;
        n.metric_name = None;
        n.dimensions.clear();
        n.new_state = AlarmState::InsufficientData;
        let body = payload(&n).unwrap();
        assert_eq!(body["alarm_description"], Value::Null);
        assert_eq!(body["namespace"], Value::Null);
        assert_eq!(body["metric_name"], Value::Null);
        assert_eq!(body["dimensions"], json!({}));
        assert_eq!(body["new_state"], "INSUFFICIENT_DATA");
    }

    #[test]
    fn out_of_range_time_is_invalid() {
        let mut n = notification();
        n.timestamp_ms = i64::MAX;
        assert!(matches!(payload(&n), Err(SendError::Invalid { .. })));
    }

    #[test]
    fn signature_matches_an_independent_hmac() {
        // python3 -c 'import hmac,hashlib;print(hmac.new(b"s3cr3t",
        //   b"{\"alarm_name\":\"a\"}",hashlib.sha256).hexdigest())'
        assert_eq!(
            signature(b"s3cr3t", br#"{"alarm_name":"a"}"#),
            "sha256=5f25f6167eff6df67ff0d75f2ab897f3b11ee96992bfa7b1398e732e15a30cfb"
        );
        // RFC 4231 test case 2.
        assert_eq!(
            signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn headers_only_with_a_secret() {
        assert!(signing_headers(None, b"{}", 1).is_empty());
        let headers = signing_headers(Some("Jefe"), b"what do ya want for nothing?", 1_700_000_000);
        let get = |name: &str| {
            headers
                .iter()
                .find(|(n, _)| n == name)
                .map(|(_, v)| v.to_str().unwrap().to_owned())
        };
        assert_eq!(get(TIMESTAMP_HEADER).as_deref(), Some("1700000000"));
        assert_eq!(
            get(SIGNATURE_HEADER).as_deref(),
            Some("sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        );
    }
}
