//! Names and settings users choose (SEMANTICS §3.2): group and stream
//! names, retention periods.

use std::fmt::Write as _;

/// The retention periods a group may have, in days (`None`: never expire).
pub const RETENTION_DAYS: &[u32] = &[
    1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922,
    3288, 3653,
];

/// The longest group or stream name.
pub const MAX_NAME_CHARS: usize = 512;

/// A group name: 1–512 characters from `[A-Za-z0-9_\-/.#]`.
pub fn check_group_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(format!(
            "log group name must be 1 to {MAX_NAME_CHARS} characters, got {}",
            name.chars().count()
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '/' | '.' | '#')))
    {
        return Err(format!(
            "log group name {name:?} holds {bad:?}: only letters, digits and _ - / . # are allowed"
        ));
    }
    Ok(())
}

/// A stream name: 1–512 characters, none of them `:` or `*`.
pub fn check_stream_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(format!(
            "log stream name must be 1 to {MAX_NAME_CHARS} characters, got {}",
            name.chars().count()
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| matches!(c, ':' | '*') || c.is_control())
    {
        return Err(format!(
            "log stream name {name:?} holds {bad:?}, which is not allowed (: * and control characters)"
        ));
    }
    Ok(())
}

/// A retention period: one of [`RETENTION_DAYS`].
pub fn check_retention(days: u32) -> Result<(), String> {
    if RETENTION_DAYS.contains(&days) {
        Ok(())
    } else {
        let allowed: Vec<String> = RETENTION_DAYS.iter().map(u32::to_string).collect();
        Err(format!(
            "retention of {days} days is not allowed; use one of {}",
            allowed.join(", ")
        ))
    }
}

/// The directory a group's segments live in: the name with everything but
/// letters, digits, `_` and `-` written as `%XX`, so `/vigil/access` is
/// `%2Fvigil%2Faccess` (and no name is `.` or `..`).
pub fn group_dir_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 8);
    for b in name.bytes() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_names_follow_the_cloud_rules() {
        for ok in ["/vigil/access", "a", "my-app_1.prod#x", &"a".repeat(512)] {
            assert!(check_group_name(ok).is_ok(), "{ok}");
        }
        assert!(check_group_name("").is_err());
        assert!(check_group_name(&"a".repeat(513)).is_err());
        let err = check_group_name("bad name").unwrap_err();
        assert!(err.contains("' '"), "{err}");
    }

    #[test]
    fn stream_names_refuse_colons_and_stars() {
        assert!(check_stream_name("host-1/2026-12-01").is_ok());
        assert!(check_stream_name("a:b").is_err());
        assert!(check_stream_name("a*").is_err());
        assert!(check_stream_name("").is_err());
    }

    #[test]
    fn retention_takes_only_the_listed_periods() {
        assert!(check_retention(14).is_ok());
        let err = check_retention(10).unwrap_err();
        assert!(err.contains("1, 3, 5, 7, 14"), "{err}");
    }

    #[test]
    fn directory_names_are_safe_and_distinct() {
        assert_eq!(group_dir_name("/vigil/access"), "%2Fvigil%2Faccess");
        assert_eq!(group_dir_name(".."), "%2E%2E");
        assert_ne!(group_dir_name("a.b"), group_dir_name("a#b"));
    }
}
