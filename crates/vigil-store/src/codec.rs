//! The binary form of an [`InferenceRecord`] in the SQLite log's journal.
//!
//! A format byte, then every field in declaration order: strings as a
//! `u32` length and UTF-8 bytes, integers and floats as little-endian
//! bytes, options as a presence byte and the value, the input in its own
//! binary form. Encoding formats no number and allocates once; decoding
//! checks every length, so a damaged payload is an error, never a panic.

use crate::error::{Result, StoreError};
use crate::input::Input;
use crate::record::InferenceRecord;

/// The first byte of the journal form.
const FORMAT: u8 = 1;

/// The record's journal form.
pub(crate) fn encode(record: &InferenceRecord) -> Vec<u8> {
    let texts = record.request_id.len()
        + record.model.len()
        + record.version.len()
        + record.label.as_ref().map_or(0, String::len)
        + record.api_key_name.as_ref().map_or(0, String::len)
        + record.trace_id.as_ref().map_or(0, String::len);
    let mut out =
        Vec::with_capacity(64 + texts + record.input.as_bytes().len() + 8 * record.scores.len());
    out.push(FORMAT);
    put_str(&mut out, &record.request_id);
    out.extend_from_slice(&record.received_at_us.to_le_bytes());
    put_str(&mut out, &record.model);
    put_str(&mut out, &record.version);
    put_bytes(&mut out, record.input.as_bytes());
    put_len(&mut out, record.scores.len());
    for score in &record.scores {
        out.extend_from_slice(&score.to_le_bytes());
    }
    put_opt_str(&mut out, record.label.as_deref());
    match record.threshold {
        Some(t) => {
            out.push(1);
            out.extend_from_slice(&t.to_le_bytes());
        }
        None => out.push(0),
    }
    out.extend_from_slice(&record.latency_us.to_le_bytes());
    out.push(u8::from(record.cached));
    put_opt_str(&mut out, record.api_key_name.as_deref());
    put_opt_str(&mut out, record.trace_id.as_deref());
    out
}

/// The record encoded by [`encode`].
pub(crate) fn decode(bytes: &[u8]) -> Result<InferenceRecord> {
    let mut r = Reader { rest: bytes };
    if r.take(1)? != [FORMAT] {
        return Err(corrupt("unknown journal record format"));
    }
    let request_id = r.string()?;
    let received_at_us = r.i64()?;
    let model = r.string()?;
    let version = r.string()?;
    let input = Input::from_stored(r.bytes()?.to_vec())?;
    let n = r.len()?;
    if n > r.rest.len() / 8 {
        return Err(corrupt("journal record: score count past the end"));
    }
    let scores = (0..n).map(|_| r.f64()).collect::<Result<Vec<_>>>()?;
    let label = r.opt_string()?;
    let threshold = if r.flag()? { Some(r.f64()?) } else { None };
    let latency_us = r.i64()?;
    let cached = r.flag()?;
    let api_key_name = r.opt_string()?;
    let trace_id = r.opt_string()?;
    if !r.rest.is_empty() {
        return Err(corrupt("journal record: trailing bytes"));
    }
    Ok(InferenceRecord {
        request_id,
        received_at_us,
        model,
        version,
        input,
        scores,
        label,
        threshold,
        latency_us,
        cached,
        api_key_name,
        trace_id,
    })
}

fn put_len(out: &mut Vec<u8>, len: usize) {
    // Records are bounded far below 4 GiB by the request body limit.
    out.extend_from_slice(&u32::try_from(len).unwrap_or(u32::MAX).to_le_bytes());
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    put_len(out, bytes.len());
    out.extend_from_slice(bytes);
}

fn put_str(out: &mut Vec<u8>, text: &str) {
    put_bytes(out, text.as_bytes());
}

fn put_opt_str(out: &mut Vec<u8>, text: Option<&str>) {
    match text {
        Some(t) => {
            out.push(1);
            put_str(out, t);
        }
        None => out.push(0),
    }
}

fn corrupt(what: &str) -> StoreError {
    StoreError::Corrupt(what.to_owned())
}

struct Reader<'a> {
    rest: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8]> {
        if n > self.rest.len() {
            return Err(corrupt("journal record: cut short"));
        }
        let (head, rest) = self.rest.split_at(n);
        self.rest = rest;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N]> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    fn len(&mut self) -> Result<usize> {
        Ok(u32::from_le_bytes(self.array()?) as usize)
    }

    fn i64(&mut self) -> Result<i64> {
        Ok(i64::from_le_bytes(self.array()?))
    }

    fn f64(&mut self) -> Result<f64> {
        Ok(f64::from_le_bytes(self.array()?))
    }

    fn flag(&mut self) -> Result<bool> {
        match self.take(1)? {
            [0] => Ok(false),
            [1] => Ok(true),
            _ => Err(corrupt("journal record: bad flag byte")),
        }
    }

    fn bytes(&mut self) -> Result<&'a [u8]> {
        let n = self.len()?;
        self.take(n)
    }

    fn string(&mut self) -> Result<String> {
        let bytes = self.bytes()?;
        String::from_utf8(bytes.to_vec()).map_err(|_| corrupt("journal record: text not utf-8"))
    }

    fn opt_string(&mut self) -> Result<Option<String>> {
        if self.flag()? {
            self.string().map(Some)
        } else {
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> InferenceRecord {
        let input = serde_json::json!({"amount": 12.5, "country": "DE", "tags": [1, 2]});
        let mut r = InferenceRecord::new(
            "req-1",
            1_700_000_000_000_000,
            "fraud",
            "3",
            input.as_object().cloned().unwrap_or_default(),
        );
        r.scores = vec![0.25, -1.5e-300];
        r.label = Some("fraud".into());
        r.threshold = Some(0.5);
        r.latency_us = 42;
        r.cached = true;
        r.api_key_name = Some("shop".into());
        r.trace_id = Some("4bf92f3577b34da6a3ce929d0e0e4736".into());
        r
    }

    #[test]
    fn records_round_trip_with_and_without_options() {
        let r = full();
        assert_eq!(decode(&encode(&r)).ok(), Some(r));
        let bare = InferenceRecord::new("x", -5, "m", "", Input::default());
        assert_eq!(decode(&encode(&bare)).ok(), Some(bare));
    }

    proptest::proptest! {
        /// Any cut or flipped byte is an error or another valid record,
        /// never a panic.
        #[test]
        fn damaged_payloads_never_panic(cut in 0usize..400, flip in 0usize..400, bit in 0u8..8) {
            let bytes = encode(&full());
            let cut = cut.min(bytes.len());
            if cut < bytes.len() {
                proptest::prop_assert!(decode(&bytes[..cut]).is_err());
            }
            let mut flipped = bytes.clone();
            if let Some(b) = flipped.get_mut(flip) {
                *b ^= 1 << bit;
            }
            let _ = decode(&flipped);
        }
    }
}
