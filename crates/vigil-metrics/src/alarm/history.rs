//! Alarm history items (SEMANTICS.md §2.3), kept 30 days, and the time
//! formats the alarm engine writes: RFC 3339 in UTC with milliseconds
//! (`2026-01-12T10:00:00.000Z`) for every timestamp Vigil serves, and the
//! cloud's own formats inside reason texts and reason data.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// How long history items are kept.
pub const HISTORY_RETENTION_MS: i64 = 30 * 86_400_000;

/// The kind of a history item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum HistoryItemType {
    /// The alarm was created, updated or deleted.
    ConfigurationUpdate,
    /// The alarm changed state.
    StateUpdate,
    /// An action ran, failed or was suppressed.
    Action,
}

/// One history item.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryItem {
    /// The alarm's name.
    pub alarm_name: String,
    /// When, serialized as RFC 3339.
    #[serde(rename = "timestamp", with = "rfc3339_ms")]
    pub timestamp_ms: i64,
    /// The kind.
    pub item_type: HistoryItemType,
    /// One line ("Alarm updated from OK to ALARM").
    pub summary: String,
    /// Details (JSON).
    pub data: serde_json::Value,
}

fn datetime(ms: i64) -> OffsetDateTime {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH)
}

/// `2026-01-12T10:00:00.000Z`.
pub fn format_rfc3339_ms(ms: i64) -> String {
    let t = datetime(ms);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// Parses an RFC 3339 time into Unix milliseconds.
pub fn parse_rfc3339_ms(s: &str) -> Result<i64, String> {
    let t = OffsetDateTime::parse(s, &Rfc3339).map_err(|e| format!("bad timestamp `{s}`: {e}"))?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000)
        .map_err(|_| format!("timestamp `{s}` out of range"))
}

/// The cloud's reason-data format: `2026-01-12T10:00:00.000+0000`.
pub fn format_reason_data_time(ms: i64) -> String {
    let s = format_rfc3339_ms(ms);
    format!("{}+0000", s.trim_end_matches('Z'))
}

/// The cloud's reason-text format: `12/01/26 10:00:00` (dd/MM/yy HH:mm:ss, UTC).
pub fn format_reason_text_time(ms: i64) -> String {
    let t = datetime(ms);
    format!(
        "{:02}/{:02}/{:02} {:02}:{:02}:{:02}",
        t.day(),
        u8::from(t.month()),
        t.year().rem_euclid(100),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// Serde for Unix milliseconds as RFC 3339 text.
pub mod rfc3339_ms {
    use serde::{Deserialize, Deserializer, Serializer};

    /// Serializes as RFC 3339.
    pub fn serialize<S: Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_rfc3339_ms(*ms))
    }

    /// Deserializes from RFC 3339.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        let s = String::deserialize(d)?;
        super::parse_rfc3339_ms(&s).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_format_in_each_style_and_round_trip() {
        // 2026-01-12T10:00:00.250Z
        let ms = 1_768_212_000_250;
        assert_eq!(format_rfc3339_ms(ms), "2026-01-12T10:00:00.250Z");
        assert_eq!(format_reason_data_time(ms), "2026-01-12T10:00:00.250+0000");
        assert_eq!(format_reason_text_time(ms), "12/01/26 10:00:00");
        assert_eq!(parse_rfc3339_ms("2026-01-12T10:00:00.250Z"), Ok(ms));
        assert_eq!(parse_rfc3339_ms("2026-01-12T11:00:00.250+01:00"), Ok(ms));
        assert!(parse_rfc3339_ms("yesterday").is_err());
    }
}
