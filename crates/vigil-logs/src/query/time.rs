//! Calendar arithmetic in UTC for `bin`, `datefloor`, `dateceil` and the
//! RFC 3339 text of timestamps, on milliseconds since the Unix epoch.

use super::ast::{Span, TimeUnit};

const MS_PER_DAY: i64 = 86_400_000;
/// 0000-01-01T00:00:00Z and 9999-12-31T23:59:59.999Z: timestamps are
/// clamped to the years RFC 3339 can write.
const MIN_MS: i64 = -62_167_219_200_000;
const MAX_MS: i64 = 253_402_300_799_999;

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day since 1970-01-01: (year, month 1–12, day 1–31).
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// `2026-12-01T21:05:00.000Z`.
pub(crate) fn format_rfc3339(ms: i64) -> String {
    let ms = ms.clamp(MIN_MS, MAX_MS);
    let days = ms.div_euclid(MS_PER_DAY);
    let in_day = ms.rem_euclid(MS_PER_DAY);
    let (y, mo, d) = civil_from_days(days);
    let (h, mi, s, milli) = (
        in_day / 3_600_000,
        in_day / 60_000 % 60,
        in_day / 1000 % 60,
        in_day % 1000,
    );
    format!("{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{milli:03}Z")
}

/// The length of a fixed-size span in ms; `None` for calendar units.
fn fixed_ms(span: Span) -> Option<i64> {
    let unit = match span.unit {
        TimeUnit::Millisecond => 1,
        TimeUnit::Second => 1000,
        TimeUnit::Minute => 60_000,
        TimeUnit::Hour => 3_600_000,
        TimeUnit::Day => MS_PER_DAY,
        TimeUnit::Week | TimeUnit::Month | TimeUnit::Quarter | TimeUnit::Year => return None,
    };
    Some(unit * i64::from(span.count))
}

fn months_per_unit(unit: TimeUnit) -> i64 {
    match unit {
        TimeUnit::Quarter => 3,
        TimeUnit::Year => 12,
        _ => 1,
    }
}

/// Monday 1969-12-29, the start of the week of the epoch.
const WEEK_ORIGIN_DAYS: i64 = -3;

/// The start of the span containing `ms` (weeks start on Monday).
pub(crate) fn floor(ms: i64, span: Span) -> i64 {
    let ms = ms.clamp(MIN_MS, MAX_MS);
    if let Some(size) = fixed_ms(span) {
        return ms.div_euclid(size) * size;
    }
    let days = ms.div_euclid(MS_PER_DAY);
    if span.unit == TimeUnit::Week {
        let size = 7 * i64::from(span.count);
        let start = (days - WEEK_ORIGIN_DAYS).div_euclid(size) * size + WEEK_ORIGIN_DAYS;
        return start.saturating_mul(MS_PER_DAY);
    }
    let (y, m, _) = civil_from_days(days);
    let n = months_per_unit(span.unit) * i64::from(span.count);
    let months = (y * 12 + m - 1).div_euclid(n) * n;
    days_from_civil(months.div_euclid(12), months.rem_euclid(12) + 1, 1).saturating_mul(MS_PER_DAY)
}

/// The end of the span containing `ms` (`ms` itself when it is a boundary).
pub(crate) fn ceil(ms: i64, span: Span) -> i64 {
    let start = floor(ms, span);
    if start == ms.clamp(MIN_MS, MAX_MS) {
        return start;
    }
    if let Some(size) = fixed_ms(span) {
        return start.saturating_add(size);
    }
    if span.unit == TimeUnit::Week {
        return start.saturating_add(7 * i64::from(span.count) * MS_PER_DAY);
    }
    let (y, m, _) = civil_from_days(start.div_euclid(MS_PER_DAY));
    let months = y * 12 + m - 1 + months_per_unit(span.unit) * i64::from(span.count);
    days_from_civil(months.div_euclid(12), months.rem_euclid(12) + 1, 1).saturating_mul(MS_PER_DAY)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(count: u32, unit: TimeUnit) -> Span {
        Span { count, unit }
    }

    #[test]
    fn formats_rfc3339_in_utc() {
        assert_eq!(format_rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(
            format_rfc3339(1_796_159_100_123),
            "2026-12-01T21:05:00.123Z"
        );
        assert_eq!(format_rfc3339(-1), "1969-12-31T23:59:59.999Z");
        assert_eq!(format_rfc3339(i64::MAX), "9999-12-31T23:59:59.999Z");
        assert_eq!(format_rfc3339(i64::MIN), "0000-01-01T00:00:00.000Z");
    }

    #[test]
    fn floors_and_ceils_every_unit() {
        // 2026-12-01T21:07:33.250Z, a Tuesday.
        let t = 1_796_159_253_250;
        let f = |s| format_rfc3339(floor(t, s));
        assert_eq!(
            f(span(250, TimeUnit::Millisecond)),
            "2026-12-01T21:07:33.250Z"
        );
        assert_eq!(f(span(10, TimeUnit::Second)), "2026-12-01T21:07:30.000Z");
        assert_eq!(f(span(5, TimeUnit::Minute)), "2026-12-01T21:05:00.000Z");
        assert_eq!(f(span(1, TimeUnit::Hour)), "2026-12-01T21:00:00.000Z");
        assert_eq!(f(span(1, TimeUnit::Day)), "2026-12-01T00:00:00.000Z");
        assert_eq!(f(span(1, TimeUnit::Week)), "2026-11-30T00:00:00.000Z");
        assert_eq!(f(span(1, TimeUnit::Month)), "2026-12-01T00:00:00.000Z");
        assert_eq!(f(span(1, TimeUnit::Quarter)), "2026-10-01T00:00:00.000Z");
        assert_eq!(f(span(1, TimeUnit::Year)), "2026-01-01T00:00:00.000Z");
        let c = |s| format_rfc3339(ceil(t, s));
        assert_eq!(c(span(5, TimeUnit::Minute)), "2026-12-01T21:10:00.000Z");
        assert_eq!(c(span(1, TimeUnit::Month)), "2027-01-01T00:00:00.000Z");
        assert_eq!(c(span(1, TimeUnit::Quarter)), "2027-01-01T00:00:00.000Z");
        assert_eq!(c(span(1, TimeUnit::Week)), "2026-12-07T00:00:00.000Z");
        let boundary = floor(t, span(1, TimeUnit::Hour));
        assert_eq!(ceil(boundary, span(1, TimeUnit::Hour)), boundary);
    }

    #[test]
    fn extreme_times_do_not_overflow() {
        for t in [i64::MIN, i64::MAX, 0, -1] {
            for unit in [
                TimeUnit::Millisecond,
                TimeUnit::Day,
                TimeUnit::Week,
                TimeUnit::Year,
            ] {
                let s = span(u32::MAX, unit);
                let _ = (floor(t, s), ceil(t, s));
            }
        }
    }
}
