//! A record's input features: one JSON object in canonical form, kept as
//! text.
//!
//! Canonical means keys sorted by their bytes and every number spelt one way
//! (whole numbers below 9e15 as integers, others in shortest round-trip
//! form), so the same features always give the same text. The text is what
//! is stored and what the input fingerprint hashes: an input is encoded once.
//!
//! The scoring path writes it straight from a feature row with
//! [`InputWriter`]; anything else goes through [`Input::from_map`].

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::error::{Result, StoreError};

/// Whole numbers with a magnitude below this print as integers.
const INTEGER_LIMIT: f64 = 9.0e15;

/// A canonical JSON object of input features.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Input(String);

impl Default for Input {
    fn default() -> Self {
        Input("{}".to_owned())
    }
}

impl Input {
    /// The canonical form of `map` (nested values included).
    pub fn from_map(map: &Map<String, Value>) -> Input {
        let mut text = String::with_capacity(16 * map.len() + 2);
        write_object(map, &mut text);
        Input(text)
    }

    /// Wraps text read back from a backend, which wrote it canonical.
    pub(crate) fn from_stored(text: String) -> Input {
        Input(text)
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The features as a JSON map.
    pub fn to_map(&self) -> Result<Map<String, Value>> {
        serde_json::from_str(&self.0).map_err(|e| StoreError::Corrupt(format!("input json: {e}")))
    }

    /// Hex SHA-256 of the text: two requests with the same id and different
    /// fingerprints conflict.
    pub fn fingerprint(&self) -> String {
        hex(&Sha256::digest(self.0.as_bytes()))
    }
}

impl Serialize for Input {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        // Cold paths only (read API, export, spill file): the text is
        // validated once more on its way out.
        let raw = serde_json::value::RawValue::from_string(self.0.clone())
            .map_err(serde::ser::Error::custom)?;
        raw.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Input {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> std::result::Result<Self, D::Error> {
        let map = Map::<String, Value>::deserialize(deserializer)?;
        Ok(Input::from_map(&map))
    }
}

impl From<Map<String, Value>> for Input {
    fn from(map: Map<String, Value>) -> Self {
        Input::from_map(&map)
    }
}

/// Builds an [`Input`] from features given in sorted key order, without an
/// intermediate map: the scoring path's encoder.
#[derive(Debug)]
pub struct InputWriter {
    text: String,
}

impl InputWriter {
    /// A writer with room for about `features` features.
    pub fn with_features(features: usize) -> InputWriter {
        let mut text = String::with_capacity(24 * features + 2);
        text.push('{');
        InputWriter { text }
    }

    /// Adds a number under `key`, a JSON string literal from [`json_key`].
    /// Keys must come in sorted order; non-finite values are left out.
    pub fn number(&mut self, key: &str, value: f64) {
        if value.is_finite() {
            self.key(key);
            write_number(value, &mut self.text);
        }
    }

    /// Adds a string under `key`, a JSON string literal from [`json_key`].
    pub fn string(&mut self, key: &str, value: &str) {
        self.key(key);
        write_string(value, &mut self.text);
    }

    fn key(&mut self, key: &str) {
        if self.text.len() > 1 {
            self.text.push(',');
        }
        self.text.push_str(key);
        self.text.push(':');
    }

    /// The finished input.
    pub fn finish(mut self) -> Input {
        self.text.push('}');
        Input(self.text)
    }
}

/// `name` as a JSON string literal, the key form [`InputWriter`] takes.
pub fn json_key(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 2);
    write_string(name, &mut out);
    out
}

/// The canonical spelling of a finite number.
pub fn write_number(value: f64, out: &mut String) {
    if value.fract() == 0.0 && value.abs() < INTEGER_LIMIT {
        // Exact: the magnitude is below 2^53.
        #[allow(clippy::cast_possible_truncation)]
        let whole = value as i64;
        out.push_str(itoa::Buffer::new().format(whole));
    } else {
        out.push_str(ryu::Buffer::new().format_finite(value));
    }
}

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    out
}

fn write_object(map: &Map<String, Value>, out: &mut String) {
    let mut entries: Vec<(&String, &Value)> = map.iter().collect();
    entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
    out.push('{');
    for (i, (key, value)) in entries.into_iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        write_string(key, out);
        out.push(':');
        write_value(value, out);
    }
    out.push('}');
}

fn write_value(value: &Value, out: &mut String) {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => {
            if let Some(i) = n.as_i64() {
                out.push_str(itoa::Buffer::new().format(i));
            } else if let Some(u) = n.as_u64() {
                out.push_str(itoa::Buffer::new().format(u));
            } else {
                // serde_json numbers are finite.
                write_number(n.as_f64().unwrap_or(0.0), out);
            }
        }
        Value::String(s) => write_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                write_value(item, out);
            }
            out.push(']');
        }
        Value::Object(map) => write_object(map, out),
    }
}

fn write_string(s: &str, out: &mut String) {
    // serde_json's escaping is deterministic; writing a &str cannot fail.
    if let Ok(quoted) = serde_json::to_string(s) {
        out.push_str(&quoted);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn obj(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    #[test]
    fn canonical_text_sorts_keys_and_spells_numbers_once() {
        let a = obj(json!({"b": 1.0, "a": 2.5, "c": {"z": 1, "y": [1.0, "x"]}, "d": null}));
        assert_eq!(
            Input::from_map(&a).as_str(),
            r#"{"a":2.5,"b":1,"c":{"y":[1,"x"],"z":1},"d":null}"#
        );
        let b = obj(json!({"c": {"y": [1, "x"], "z": 1.0}, "d": null, "a": 2.5, "b": 1}));
        assert_eq!(Input::from_map(&a), Input::from_map(&b));
        assert_eq!(Input::from_map(&a).fingerprint().len(), 64);
        let c = obj(json!({"b": 1.5, "a": 2.5}));
        assert_ne!(
            Input::from_map(&a).fingerprint(),
            Input::from_map(&c).fingerprint()
        );
    }

    #[test]
    fn writer_matches_the_map_form() {
        let mut w = InputWriter::with_features(4);
        w.number(&json_key("amount"), 129.99);
        w.number(&json_key("hour"), 13.0);
        w.number(&json_key("missing"), f64::NAN);
        w.string(&json_key("zip \"code\""), "75001");
        w.number(&json_key("zz"), -1e-7);
        let written = w.finish();
        let map = obj(json!({"zz": -1e-7, "hour": 13, "amount": 129.99, "zip \"code\"": "75001"}));
        assert_eq!(written, Input::from_map(&map));
        assert_eq!(written.to_map().ok(), Some(map));
        assert_eq!(InputWriter::with_features(0).finish(), Input::default());
    }

    #[test]
    fn serde_round_trip_is_a_json_object() {
        let input = Input::from_map(&obj(json!({"x": 0.1, "y": "é"})));
        let text = serde_json::to_string(&input).unwrap_or_default();
        assert_eq!(text, r#"{"x":0.1,"y":"é"}"#);
        let back: Input =
            serde_json::from_str(r#"{"y": "é", "x": 0.10}"#).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(back, input);
        assert!(serde_json::from_str::<Input>("[1]").is_err());
        let broken = Input::from_stored("{not json".to_owned());
        assert!(serde_json::to_string(&broken).is_err());
        assert!(broken.to_map().is_err());
    }

    proptest::proptest! {
        #[test]
        fn numbers_round_trip_and_match_by_value(v in proptest::num::f64::NORMAL | proptest::num::f64::SUBNORMAL | proptest::num::f64::ZERO) {
            let mut text = String::new();
            write_number(v, &mut text);
            let back: f64 = text.parse().unwrap_or(f64::NAN);
            proptest::prop_assert_eq!(back, v);
            // The same value spelt as a JSON integer or float gives one text.
            let as_value = obj(json!({"v": v}));
            let mut w = InputWriter::with_features(1);
            w.number(&json_key("v"), v);
            proptest::prop_assert_eq!(w.finish(), Input::from_map(&as_value));
        }

        #[test]
        fn writer_agrees_with_from_map(
            pairs in proptest::collection::btree_map("[a-zA-Z_\"\\\\é]{1,6}", -1.0e17f64..1.0e17, 0..12)
        ) {
            let mut w = InputWriter::with_features(pairs.len());
            for (k, v) in &pairs {
                w.number(&json_key(k), *v);
            }
            let map: Map<String, Value> =
                pairs.iter().rev().map(|(k, v)| (k.clone(), json!(v))).collect();
            let written = w.finish();
            proptest::prop_assert_eq!(&written, &Input::from_map(&map));
            proptest::prop_assert!(written.to_map().is_ok());
        }
    }
}
