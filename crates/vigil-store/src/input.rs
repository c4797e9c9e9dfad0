//! A record's input features: one object of named values, kept in a
//! compact binary form and shown as canonical JSON.
//!
//! The binary form is what the backends store: a format byte, then per
//! feature, in key order, the key and a tagged value (a number is its eight
//! IEEE bytes). For a 30-feature fraud row that is 386 bytes where the
//! JSON text is 702, and writing it formats no floats.
//!
//! Canonical means keys sorted by their bytes and every number held one way
//! (`-0` as `0`; JSON integers as numbers while exactly representable), so
//! the same features always give the same bytes: two inputs are equal when
//! their bytes are. The JSON form spells whole numbers below 9e15 as
//! integers and others in shortest round-trip form; the input fingerprint is
//! the SHA-256 of that text.
//!
//! The scoring path writes an input straight from a feature row with
//! [`InputWriter`]; anything else goes through [`Input::from_map`]. Inputs
//! stored as JSON text by earlier versions are read with
//! [`Input::from_stored`] too.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use crate::error::{Result, StoreError};

/// Whole numbers with a magnitude below this print as integers.
const INTEGER_LIMIT: f64 = 9.0e15;

/// The first byte of the binary form (JSON text starts with `{`).
const FORMAT: u8 = 0x01;
/// A number: eight little-endian IEEE 754 bytes.
const TAG_NUMBER: u8 = 1;
/// A string: its length, then its UTF-8 bytes.
const TAG_STRING: u8 = 2;
/// Any other JSON value: its length, then its canonical JSON text.
const TAG_JSON: u8 = 3;

/// Input features in canonical binary form.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Input(Vec<u8>);

impl Default for Input {
    fn default() -> Self {
        Input(vec![FORMAT])
    }
}

/// One feature's value, borrowed from an [`Input`].
#[derive(Debug, Clone, Copy, PartialEq)]
enum Field<'a> {
    Number(f64),
    String(&'a str),
    Json(&'a str),
}

impl Input {
    /// The canonical form of `map` (nested values included).
    pub fn from_map(map: &Map<String, Value>) -> Input {
        let mut entries: Vec<(&String, &Value)> = map.iter().collect();
        entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
        let mut w = InputWriter::with_features(entries.len());
        for (key, value) in entries {
            match value {
                Value::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
                    // Exactly representable, so a number like any other.
                    #[allow(clippy::cast_precision_loss)]
                    (Some(i), _, _) if (i as f64).abs() < INTEGER_LIMIT => {
                        w.number(key, i as f64);
                    }
                    (Some(i), _, _) => w.json(key, itoa::Buffer::new().format(i)),
                    (None, Some(u), _) => w.json(key, itoa::Buffer::new().format(u)),
                    // serde_json numbers are finite.
                    (None, None, f) => w.number(key, f.unwrap_or(0.0)),
                },
                Value::String(text) => w.string(key, text),
                other => {
                    let mut text = String::new();
                    write_value(other, &mut text);
                    w.json(key, &text);
                }
            }
        }
        w.finish()
    }

    /// Reads what a backend stored: the binary form, or JSON object text
    /// written by an earlier version.
    pub(crate) fn from_stored(bytes: Vec<u8>) -> Result<Input> {
        match bytes.first() {
            Some(&FORMAT) => {
                let input = Input(bytes);
                let mut fields = input.fields();
                for _ in fields.by_ref() {}
                if fields.rest.is_empty() {
                    Ok(input)
                } else {
                    Err(StoreError::Corrupt(
                        "stored input: malformed binary form".into(),
                    ))
                }
            }
            _ => {
                let map: Map<String, Value> = serde_json::from_slice(&bytes)
                    .map_err(|e| StoreError::Corrupt(format!("stored input json: {e}")))?;
                Ok(Input::from_map(&map))
            }
        }
    }

    /// The binary form, as stored.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The canonical JSON text.
    pub fn to_json(&self) -> String {
        let mut out = String::with_capacity(2 * self.0.len());
        self.write_json(&mut out);
        out
    }

    /// Appends the canonical JSON text to `out`.
    pub fn write_json(&self, out: &mut String) {
        out.push('{');
        for (i, (key, field)) in self.fields().enumerate() {
            if i > 0 {
                out.push(',');
            }
            write_string(key, out);
            out.push(':');
            match field {
                Field::Number(value) => write_number(value, out),
                Field::String(text) => write_string(text, out),
                Field::Json(text) => out.push_str(text),
            }
        }
        out.push('}');
    }

    /// The features as a JSON map.
    pub fn to_map(&self) -> Result<Map<String, Value>> {
        serde_json::from_str(&self.to_json())
            .map_err(|e| StoreError::Corrupt(format!("input json: {e}")))
    }

    /// Hex SHA-256 of the canonical JSON text: two requests with the same
    /// id and different fingerprints conflict.
    pub fn fingerprint(&self) -> String {
        hex(&Sha256::digest(self.to_json().as_bytes()))
    }

    fn fields(&self) -> Fields<'_> {
        Fields {
            rest: self.0.get(1..).unwrap_or_default(),
        }
    }
}

/// Decodes the features of an [`Input`]; stops at the end or at the first
/// malformed byte (leaving `rest` non-empty).
struct Fields<'a> {
    rest: &'a [u8],
}

impl<'a> Fields<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.rest.len() < n {
            return None;
        }
        let (head, tail) = self.rest.split_at(n);
        self.rest = tail;
        Some(head)
    }

    fn varint(&mut self) -> Option<usize> {
        let mut value: usize = 0;
        for shift in (0..64).step_by(7) {
            let byte = *self.take(1)?.first()?;
            value |= usize::from(byte & 0x7f).checked_shl(shift)?;
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
        None
    }

    fn text(&mut self) -> Option<&'a str> {
        let len = self.varint()?;
        std::str::from_utf8(self.take(len)?).ok()
    }

    fn field(&mut self) -> Option<(&'a str, Field<'a>)> {
        let key = self.text()?;
        let field = match *self.take(1)?.first()? {
            TAG_NUMBER => Field::Number(f64::from_le_bytes(self.take(8)?.try_into().ok()?)),
            TAG_STRING => Field::String(self.text()?),
            TAG_JSON => Field::Json(self.text()?),
            _ => return None,
        };
        Some((key, field))
    }
}

impl<'a> Iterator for Fields<'a> {
    type Item = (&'a str, Field<'a>);

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let before = self.rest;
        let field = self.field();
        if field.is_none() {
            // Leave the malformed tail for `from_stored` to see.
            self.rest = before;
        }
        field
    }
}

impl Serialize for Input {
    fn serialize<S: Serializer>(&self, serializer: S) -> std::result::Result<S::Ok, S::Error> {
        // Cold paths only (read API, export, spill file): the text is
        // validated once more on its way out.
        let raw = serde_json::value::RawValue::from_string(self.to_json())
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
    bytes: Vec<u8>,
}

impl InputWriter {
    /// A writer with room for about `features` numeric features.
    pub fn with_features(features: usize) -> InputWriter {
        let mut bytes = Vec::with_capacity(14 * features + 1);
        bytes.push(FORMAT);
        InputWriter { bytes }
    }

    /// Adds a number under `key`. Keys must come in sorted order (by their
    /// bytes); non-finite values are left out.
    pub fn number(&mut self, key: &str, value: f64) {
        if value.is_finite() {
            self.key(key, TAG_NUMBER);
            // Adding +0 turns -0 into +0 and leaves every other value be.
            self.bytes.extend_from_slice(&(value + 0.0).to_le_bytes());
        }
    }

    /// Adds a string under `key`.
    pub fn string(&mut self, key: &str, value: &str) {
        self.key(key, TAG_STRING);
        self.text(value);
    }

    /// Adds canonical JSON text (not a number or a string) under `key`.
    fn json(&mut self, key: &str, text: &str) {
        self.key(key, TAG_JSON);
        self.text(text);
    }

    fn key(&mut self, key: &str, tag: u8) {
        self.text(key);
        self.bytes.push(tag);
    }

    fn text(&mut self, text: &str) {
        let mut len = text.len();
        while len >= 0x80 {
            #[allow(clippy::cast_possible_truncation)]
            self.bytes.push((len as u8 & 0x7f) | 0x80);
            len >>= 7;
        }
        #[allow(clippy::cast_possible_truncation)]
        self.bytes.push(len as u8);
        self.bytes.extend_from_slice(text.as_bytes());
    }

    /// The finished input.
    pub fn finish(self) -> Input {
        Input(self.bytes)
    }
}

/// The canonical spelling of a finite number.
pub fn write_number(value: f64, out: &mut String) {
    if value.fract() == 0.0 && value.abs() < INTEGER_LIMIT {
        // Exact: the magnitude is below 2^53.
        #[allow(clippy::cast_possible_truncation)]
        let whole = value as i64;
        out.push_str(itoa::Buffer::new().format(whole));
    } else {
        out.push_str(zmij::Buffer::new().format_finite(value));
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
    // Feature names rarely need escaping: those go in as they are (this
    // runs for every feature of every logged row).
    if !s.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\') {
        out.reserve(s.len() + 2);
        out.push('"');
        out.push_str(s);
        out.push('"');
        return;
    }
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
            Input::from_map(&a).to_json(),
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
        w.number("amount", 129.99);
        w.number("hour", 13.0);
        w.number("missing", f64::NAN);
        w.string("zip \"code\"", "75001");
        w.number("zz", -1e-7);
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
        assert!(Input::from_stored(b"{not json".to_vec()).is_err());
        assert!(Input::from_stored(b"[1]".to_vec()).is_err());
    }

    #[test]
    fn stored_forms_are_read_back_and_checked() {
        let input = Input::from_map(&obj(
            json!({"a": 1.5, "b": "x", "c": [null, true], "d": 1e300}),
        ));
        let stored =
            Input::from_stored(input.as_bytes().to_vec()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(stored, input);
        // JSON text from an earlier version is read into the same form.
        let legacy =
            Input::from_stored(input.to_json().into_bytes()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(legacy, input);
        // A truncation is refused unless it falls between two features (the
        // four such cuts, the empty input included, read as fewer features).
        let bytes = input.as_bytes();
        let whole_cuts = (1..bytes.len())
            .filter_map(|cut| Input::from_stored(bytes[..cut].to_vec()).ok())
            .map(|shorter| shorter.to_map().map(|m| m.len()).unwrap_or(usize::MAX))
            .collect::<Vec<_>>();
        assert_eq!(whole_cuts, vec![0, 1, 2, 3]);
        assert!(Input::from_stored(vec![FORMAT, 1, b'k', 9]).is_err());
        assert_eq!(
            Input::from_stored(vec![FORMAT]).ok(),
            Some(Input::default())
        );
    }

    /// The size claim of the README: a real fraud row (the 30 ULB features
    /// of the first golden case) in binary and as JSON text.
    #[test]
    fn a_fraud_row_is_about_half_its_json_size() {
        let csv = include_str!("../../vigil-model/tests/fixtures/ulb_xgb_200.cases.csv");
        let mut lines = csv.lines();
        let names = lines.next().unwrap_or_default().split(',');
        let values = lines.next().unwrap_or_default().split(',');
        let row: Map<String, Value> = names
            .zip(values)
            .filter(|(name, _)| !name.starts_with("out_"))
            .map(|(name, value)| {
                (
                    name.to_owned(),
                    json!(value.parse::<f64>().unwrap_or(f64::NAN)),
                )
            })
            .collect();
        assert_eq!(row.len(), 30);
        let input = Input::from_map(&row);
        let (binary, text) = (input.as_bytes().len(), input.to_json().len());
        assert!((380..=400).contains(&binary), "binary form: {binary} bytes");
        assert!((700..=800).contains(&text), "JSON text: {text} bytes");
    }

    #[test]
    fn numbers_are_held_one_way() {
        let zero = Input::from_map(&obj(json!({"z": 0})));
        let mut w = InputWriter::with_features(1);
        w.number("z", -0.0);
        assert_eq!(w.finish(), zero);
        assert_eq!(zero.to_json(), r#"{"z":0}"#);
        // Integers past f64's exact range keep their digits.
        let big = Input::from_map(&obj(json!({"n": 9_007_199_254_740_993_i64, "u": u64::MAX})));
        assert_eq!(
            big.to_json(),
            r#"{"n":9007199254740993,"u":18446744073709551615}"#
        );
        // A long key takes a multi-byte length.
        let long = "k".repeat(300);
        let input = Input::from_map(&obj(json!({ long.clone(): "v".repeat(200) })));
        assert_eq!(
            input.to_map().ok().and_then(|m| m.get(&long).cloned()),
            Some(json!("v".repeat(200)))
        );
    }

    proptest::proptest! {
        #[test]
        fn strings_are_spelt_as_serde_json_spells_them(s in "(\\PC|[\"\\\\\n\t\u{1}])*") {
            let mut text = String::new();
            write_string(&s, &mut text);
            proptest::prop_assert_eq!(text, serde_json::to_string(&s).unwrap());
        }

        #[test]
        fn numbers_round_trip_and_match_by_value(v in proptest::num::f64::NORMAL | proptest::num::f64::SUBNORMAL | proptest::num::f64::ZERO) {
            let mut text = String::new();
            write_number(v, &mut text);
            let back: f64 = text.parse().unwrap_or(f64::NAN);
            proptest::prop_assert_eq!(back, v);
            // The same value spelt as a JSON integer or float gives one text.
            let as_value = obj(json!({"v": v}));
            let mut w = InputWriter::with_features(1);
            w.number("v", v);
            proptest::prop_assert_eq!(w.finish(), Input::from_map(&as_value));
        }

        #[test]
        fn writer_agrees_with_from_map(
            pairs in proptest::collection::btree_map("[a-zA-Z_\"\\\\é]{1,6}", -1.0e17f64..1.0e17, 0..12)
        ) {
            let mut w = InputWriter::with_features(pairs.len());
            for (k, v) in &pairs {
                w.number(k, *v);
            }
            let map: Map<String, Value> =
                pairs.iter().rev().map(|(k, v)| (k.clone(), json!(v))).collect();
            let written = w.finish();
            proptest::prop_assert_eq!(&written, &Input::from_map(&map));
            // Through JSON text and back (the spill file, the read API):
            // the same input, so a replay is judged equal.
            let text = serde_json::to_string(&written).unwrap_or_default();
            let back: Option<Input> = serde_json::from_str(&text).ok();
            proptest::prop_assert_eq!(back.as_ref(), Some(&written));
        }
    }
}
