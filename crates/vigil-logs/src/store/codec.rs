//! An event as a segment-log record: the timestamp is the record's (in
//! microseconds, so the segment log's time index finds it); the payload is
//! the ingestion time, the stream and the message.
//!
//! ```text
//! [ingestion_ms: i64 LE][stream_len: u16 LE][stream][message]
//! ```

/// A stored event, borrowed from the record it was read from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredEvent<'a> {
    /// When it happened, in Unix milliseconds.
    pub timestamp_ms: i64,
    /// When Vigil stored it, in Unix milliseconds.
    pub ingestion_ms: i64,
    /// The stream it was sent to.
    pub stream: &'a str,
    /// The log line.
    pub message: &'a str,
}

const HEAD: usize = 8 + 2;

/// The bytes [`encode`] appends for an event.
pub fn encoded_len(stream: &str, message: &str) -> usize {
    HEAD + stream.len().min(usize::from(u16::MAX)) + message.len()
}

/// Appends the payload of an event to `out`. Stream names are at most 512
/// characters, so their length fits the `u16`.
pub fn encode(out: &mut Vec<u8>, ingestion_ms: i64, stream: &str, message: &str) {
    let stream_len = u16::try_from(stream.len()).unwrap_or(u16::MAX);
    out.reserve(encoded_len(stream, message));
    out.extend_from_slice(&ingestion_ms.to_le_bytes());
    out.extend_from_slice(&stream_len.to_le_bytes());
    out.extend_from_slice(&stream.as_bytes()[..usize::from(stream_len)]);
    out.extend_from_slice(message.as_bytes());
}

/// Reads a payload back; `None` when it is not one of ours (the segment
/// log's CRC makes that a bug, not damage, but it is never a panic).
pub fn decode(timestamp_us: i64, payload: &[u8]) -> Option<StoredEvent<'_>> {
    let ingestion_ms = i64::from_le_bytes(payload.get(..8)?.try_into().ok()?);
    let stream_len = usize::from(u16::from_le_bytes(payload.get(8..10)?.try_into().ok()?));
    let stream = std::str::from_utf8(payload.get(HEAD..HEAD + stream_len)?).ok()?;
    let message = std::str::from_utf8(payload.get(HEAD + stream_len..)?).ok()?;
    Some(StoredEvent {
        timestamp_ms: timestamp_us.div_euclid(1000),
        ingestion_ms,
        stream,
        message,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn an_event_reads_back_as_written(
            ts in -1_000_000_000_000i64..4_000_000_000_000,
            ingested in any::<i64>(),
            stream in "[^:*]{0,40}",
            message in any::<String>(),
        ) {
            let mut buf = Vec::new();
            encode(&mut buf, ingested, &stream, &message);
            let e = decode(ts * 1000, &buf).unwrap();
            prop_assert_eq!(e, StoredEvent {
                timestamp_ms: ts,
                ingestion_ms: ingested,
                stream: &stream,
                message: &message,
            });
        }

        #[test]
        fn any_bytes_decode_without_panicking(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let _ = decode(0, &bytes);
        }
    }
}
