//! A small Universal Binary JSON reader, enough for the files
//! `xgboost.Booster.save_model("m.ubj")` writes.
//!
//! The document is turned into a `serde_json::Value` so the XGBoost loader has
//! one code path for both encodings. Every count read from the input is checked
//! against the bytes that remain before anything is allocated, and nesting is
//! limited, so hostile input can neither exhaust memory nor the stack.

use serde_json::{Map, Number, Value};

/// Deepest nesting of arrays and objects accepted (xgboost uses about 8).
const MAX_DEPTH: usize = 128;

/// Parse one UBJSON value that must span the whole input.
pub(crate) fn parse(bytes: &[u8]) -> Result<Value, String> {
    let mut reader = Reader { bytes, pos: 0 };
    let value = reader.value(0)?;
    // Trailing no-op markers are harmless; anything else is not.
    while reader.pos < bytes.len() && bytes[reader.pos] == b'N' {
        reader.pos += 1;
    }
    if reader.pos != bytes.len() {
        return Err(format!(
            "ubjson: {} trailing bytes after the document",
            bytes.len() - reader.pos
        ));
    }
    Ok(value)
}

struct Reader<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl Reader<'_> {
    fn remaining(&self) -> usize {
        self.bytes.len() - self.pos
    }

    fn take(&mut self, n: usize) -> Result<&[u8], String> {
        if n > self.remaining() {
            return Err(format!(
                "ubjson: unexpected end of input at byte {} (needed {n} more bytes)",
                self.pos
            ));
        }
        let start = self.pos;
        self.pos += n;
        Ok(&self.bytes[start..start + n])
    }

    fn byte(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    /// The next marker, skipping no-op markers.
    fn marker(&mut self) -> Result<u8, String> {
        loop {
            let m = self.byte()?;
            if m != b'N' {
                return Ok(m);
            }
        }
    }

    /// An integer payload (used for lengths and counts) after its marker.
    fn int_payload(&mut self, marker: u8) -> Result<i64, String> {
        Ok(match marker {
            b'i' => i64::from(i8::from_be_bytes(self.array()?)),
            b'U' => i64::from(self.byte()?),
            b'I' => i64::from(i16::from_be_bytes(self.array()?)),
            b'l' => i64::from(i32::from_be_bytes(self.array()?)),
            b'L' => i64::from_be_bytes(self.array()?),
            other => {
                return Err(format!(
                    "ubjson: expected an integer marker at byte {}, found {}",
                    self.pos.saturating_sub(1),
                    describe(other)
                ));
            }
        })
    }

    /// A length or count: an integer that must be non-negative and no larger
    /// than `per_item` times the bytes left.
    fn length(&mut self, per_item: usize) -> Result<usize, String> {
        let at = self.pos;
        let marker = self.marker()?;
        let n = self.int_payload(marker)?;
        let n =
            usize::try_from(n).map_err(|_| format!("ubjson: negative length {n} at byte {at}"))?;
        // Zero-sized items (typed null/bool arrays) still cost one byte here so
        // a tiny file cannot claim billions of them.
        let cost = n.checked_mul(per_item.max(1));
        match cost {
            Some(c) if c <= self.remaining() => Ok(n),
            _ => Err(format!(
                "ubjson: length {n} at byte {at} exceeds the {} bytes left",
                self.remaining()
            )),
        }
    }

    fn string_payload(&mut self) -> Result<String, String> {
        let at = self.pos;
        let n = self.length(1)?;
        let raw = self.take(n)?;
        String::from_utf8(raw.to_vec())
            .map_err(|_| format!("ubjson: string at byte {at} is not valid utf-8"))
    }

    fn value(&mut self, depth: usize) -> Result<Value, String> {
        let marker = self.marker()?;
        self.value_with_marker(marker, depth)
    }

    fn value_with_marker(&mut self, marker: u8, depth: usize) -> Result<Value, String> {
        Ok(match marker {
            b'Z' => Value::Null,
            b'T' => Value::Bool(true),
            b'F' => Value::Bool(false),
            b'i' | b'U' | b'I' | b'l' | b'L' => {
                Value::Number(Number::from(self.int_payload(marker)?))
            }
            b'd' => float(f64::from(f32::from_be_bytes(self.array()?))),
            b'D' => float(f64::from_be_bytes(self.array()?)),
            b'H' => {
                let text = self.string_payload()?;
                let n: f64 = text
                    .parse()
                    .map_err(|_| format!("ubjson: bad high-precision number {text:?}"))?;
                float(n)
            }
            b'C' => Value::String(char::from(self.byte()?).to_string()),
            b'S' => Value::String(self.string_payload()?),
            b'[' => self.container(false, depth)?,
            b'{' => self.container(true, depth)?,
            other => {
                return Err(format!(
                    "ubjson: unexpected {} at byte {}",
                    describe(other),
                    self.pos.saturating_sub(1)
                ));
            }
        })
    }

    fn container(&mut self, object: bool, depth: usize) -> Result<Value, String> {
        if depth >= MAX_DEPTH {
            return Err(format!("ubjson: nesting deeper than {MAX_DEPTH} levels"));
        }
        let mut item_type = None;
        let mut count = None;
        if self.peek() == Some(b'$') {
            self.pos += 1;
            let t = self.byte()?;
            if matches!(t, b'N' | b'$' | b'#' | b']' | b'}') {
                return Err(format!("ubjson: invalid container type {}", describe(t)));
            }
            item_type = Some(t);
            if self.peek() != Some(b'#') {
                return Err(format!(
                    "ubjson: typed container without a count at byte {}",
                    self.pos
                ));
            }
        }
        if self.peek() == Some(b'#') {
            self.pos += 1;
            // Each item needs at least its payload (typed) or a marker; keys
            // of an object need at least a length byte as well.
            let per_item = item_type.map_or(1, payload_size) + usize::from(object);
            count = Some(self.length(per_item)?);
        }
        let next = |r: &mut Self| -> Result<Value, String> {
            match item_type {
                Some(t) => r.value_with_marker(t, depth + 1),
                None => r.value(depth + 1),
            }
        };
        let close = if object { b'}' } else { b']' };
        if object {
            let mut map = Map::new();
            let mut i = 0usize;
            loop {
                match count {
                    Some(n) if i == n => break,
                    None => {
                        while self.peek() == Some(b'N') {
                            self.pos += 1;
                        }
                        if self.peek() == Some(close) {
                            self.pos += 1;
                            break;
                        }
                    }
                    _ => {}
                }
                let key = self.string_payload()?;
                let v = next(self)?;
                map.insert(key, v);
                i += 1;
            }
            Ok(Value::Object(map))
        } else {
            let mut items = Vec::with_capacity(count.unwrap_or(0));
            loop {
                match count {
                    Some(n) if items.len() == n => break,
                    None if self.peek() == Some(close) => {
                        self.pos += 1;
                        break;
                    }
                    _ => {}
                }
                items.push(next(self)?);
            }
            Ok(Value::Array(items))
        }
    }
}

/// The smallest number of payload bytes an item of a typed container needs.
fn payload_size(marker: u8) -> usize {
    match marker {
        b'Z' | b'T' | b'F' => 0,
        b'i' | b'U' | b'C' => 1,
        b'I' => 2,
        b'l' | b'd' => 4,
        b'L' | b'D' => 8,
        // Strings, high-precision numbers, containers: at least one byte.
        _ => 1,
    }
}

/// A JSON number, or null for NaN and infinities (JSON cannot hold them; the
/// loader reports a null where it needs a number).
fn float(x: f64) -> Value {
    Number::from_f64(x).map_or(Value::Null, Value::Number)
}

fn describe(marker: u8) -> String {
    if marker.is_ascii_graphic() {
        format!("marker '{}'", char::from(marker))
    } else {
        format!("byte 0x{marker:02x}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn scalars_and_containers() {
        let doc = b"{i\x01aSi\x02hii\x01bl\x00\x00\x01\x00i\x01c[$d#i\x02\x3f\x80\x00\x00\x40\x00\x00\x00i\x01d[TFZ]}";
        let v = parse(doc).expect("valid document");
        assert_eq!(
            v,
            json!({"a": "hi", "b": 256, "c": [1.0, 2.0], "d": [true, false, null]})
        );
    }

    #[test]
    fn counted_object_and_uint8_array() {
        let doc = b"{#i\x01i\x01k[$U#i\x03\x00\x01\xff";
        let v = parse(doc).expect("valid document");
        assert_eq!(v, json!({"k": [0, 1, 255]}));
    }

    #[test]
    fn absurd_count_is_rejected_without_allocating() {
        let doc = b"[$d#L\x7f\xff\xff\xff\xff\xff\xff\xff";
        let err = parse(doc).expect_err("count larger than input");
        assert!(err.contains("exceeds"), "{err}");
        let doc = b"[$T#L\x00\x00\x00\x00\xff\xff\xff\xff";
        assert!(parse(doc).is_err());
    }

    #[test]
    fn deep_nesting_is_rejected() {
        let doc = vec![b'['; 10_000];
        let err = parse(&doc).expect_err("too deep");
        assert!(err.contains("nesting"), "{err}");
    }

    #[test]
    fn truncation_is_an_error() {
        let doc = b"{i\x01aSi\x02hii\x01bl\x00\x00\x01\x00}";
        for cut in 0..doc.len() - 1 {
            assert!(parse(&doc[..cut]).is_err(), "cut at {cut}");
        }
        assert!(parse(doc).is_ok());
    }
}
