//! A batch of events as the ingestion API takes it, and the rules of
//! SEMANTICS §3.2: the batch's limits, and each event's time window.

use serde::{Deserialize, Serialize};

/// Most events in one batch.
pub const MAX_BATCH_EVENTS: usize = 10_000;

/// Most bytes in one batch: the messages' UTF-8 bytes plus 26 per event.
pub const MAX_BATCH_BYTES: usize = 1_048_576;

/// What each event adds to the batch size besides its message.
pub const EVENT_OVERHEAD_BYTES: usize = 26;

/// How far back an event's timestamp may be: 14 days.
pub const MAX_AGE_MS: i64 = 14 * 24 * 3600 * 1000;

/// How far ahead an event's timestamp may be: 2 hours.
pub const MAX_AHEAD_MS: i64 = 2 * 3600 * 1000;

/// One event sent to a stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InputEvent {
    /// When it happened, in Unix milliseconds.
    pub timestamp: i64,
    /// The log line (often JSON).
    pub message: String,
}

/// An event left out of an accepted batch, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rejected {
    /// Its index in the batch.
    pub index: usize,
    /// Why: `too_old`, `too_new` or `empty_message`.
    pub reason: RejectReason,
}

/// Why one event of a batch was not stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    /// More than 14 days before the time it arrived.
    TooOld,
    /// More than 2 hours after the time it arrived.
    TooNew,
    /// An empty message.
    EmptyMessage,
}

impl RejectReason {
    /// The reason as the API names it: `too_old`, `too_new`, `empty_message`.
    pub fn as_str(self) -> &'static str {
        match self {
            RejectReason::TooOld => "too_old",
            RejectReason::TooNew => "too_new",
            RejectReason::EmptyMessage => "empty_message",
        }
    }

    /// The reason in words, for people.
    pub fn describe(self) -> &'static str {
        match self {
            RejectReason::TooOld => "timestamp is more than 14 days in the past",
            RejectReason::TooNew => "timestamp is more than 2 hours in the future",
            RejectReason::EmptyMessage => "message is empty",
        }
    }
}

/// Why a whole batch is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BatchError {
    /// No events.
    #[error("the batch holds no events")]
    Empty,
    /// More than [`MAX_BATCH_EVENTS`].
    #[error("the batch holds {0} events; at most 10000 are allowed")]
    TooManyEvents(usize),
    /// More than [`MAX_BATCH_BYTES`].
    #[error(
        "the batch is {0} bytes (messages plus 26 bytes per event); at most 1048576 are allowed"
    )]
    TooLarge(usize),
}

/// Checks a batch arriving at `now_ms`: an error refuses it all; otherwise
/// the indexes of the events to store, and those left out with a reason.
pub fn check_batch(
    events: &[InputEvent],
    now_ms: i64,
) -> Result<(Vec<usize>, Vec<Rejected>), BatchError> {
    if events.is_empty() {
        return Err(BatchError::Empty);
    }
    if events.len() > MAX_BATCH_EVENTS {
        return Err(BatchError::TooManyEvents(events.len()));
    }
    let bytes: usize = events
        .iter()
        .map(|e| e.message.len() + EVENT_OVERHEAD_BYTES)
        .sum();
    if bytes > MAX_BATCH_BYTES {
        return Err(BatchError::TooLarge(bytes));
    }
    let mut accepted = Vec::with_capacity(events.len());
    let mut rejected = Vec::new();
    for (index, e) in events.iter().enumerate() {
        let reason = if e.message.is_empty() {
            Some(RejectReason::EmptyMessage)
        } else if e.timestamp < now_ms.saturating_sub(MAX_AGE_MS) {
            Some(RejectReason::TooOld)
        } else if e.timestamp > now_ms.saturating_add(MAX_AHEAD_MS) {
            Some(RejectReason::TooNew)
        } else {
            None
        };
        match reason {
            Some(reason) => rejected.push(Rejected { index, reason }),
            None => accepted.push(index),
        }
    }
    Ok((accepted, rejected))
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000_000;

    fn ev(timestamp: i64, message: &str) -> InputEvent {
        InputEvent {
            timestamp,
            message: message.to_owned(),
        }
    }

    #[test]
    fn events_outside_the_window_are_rejected_one_by_one() {
        let batch = [
            ev(NOW, "now"),
            ev(NOW - MAX_AGE_MS - 1, "old"),
            ev(NOW - MAX_AGE_MS, "oldest allowed"),
            ev(NOW + MAX_AHEAD_MS + 1, "future"),
            ev(NOW + MAX_AHEAD_MS, "latest allowed"),
            ev(NOW, ""),
        ];
        let (accepted, rejected) = check_batch(&batch, NOW).unwrap();
        assert_eq!(accepted, vec![0, 2, 4]);
        assert_eq!(
            rejected,
            vec![
                Rejected {
                    index: 1,
                    reason: RejectReason::TooOld
                },
                Rejected {
                    index: 3,
                    reason: RejectReason::TooNew
                },
                Rejected {
                    index: 5,
                    reason: RejectReason::EmptyMessage
                },
            ]
        );
    }

    #[test]
    fn reasons_are_named_as_serde_names_them() {
        for r in [
            RejectReason::TooOld,
            RejectReason::TooNew,
            RejectReason::EmptyMessage,
        ] {
            assert_eq!(serde_json::to_value(r).unwrap(), r.as_str());
        }
    }

    #[test]
    fn a_batch_over_the_limits_is_refused_whole() {
        assert_eq!(check_batch(&[], NOW), Err(BatchError::Empty));
        let many = vec![ev(NOW, "x"); MAX_BATCH_EVENTS + 1];
        assert_eq!(
            check_batch(&many, NOW),
            Err(BatchError::TooManyEvents(MAX_BATCH_EVENTS + 1))
        );
        let exact = vec![ev(NOW, &"x".repeat(1_048_576 - 26))];
        assert!(check_batch(&exact, NOW).is_ok());
        let over = vec![ev(NOW, &"x".repeat(1_048_576 - 25))];
        assert_eq!(
            check_batch(&over, NOW),
            Err(BatchError::TooLarge(1_048_577))
        );
    }
}
