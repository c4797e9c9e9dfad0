//! Plain-text tables for the API commands (`vigil metrics`, `vigil alarms`):
//! columns padded to their widest cell, times in RFC 3339 UTC.

use std::fmt::Write as _;

use clap::ValueEnum;

/// `--output table|json` of the read commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Output {
    /// Aligned columns.
    Table,
    /// The server's JSON answer, pretty-printed.
    Json,
}

/// Renders `header` and `rows` as left-aligned columns separated by two
/// spaces; the last column is not padded, so lines carry no trailing blanks.
pub fn render(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, cell) in row.iter().enumerate() {
            let len = cell.chars().count();
            match widths.get_mut(i) {
                Some(w) => *w = (*w).max(len),
                None => widths.push(len),
            }
        }
    }
    let mut out = String::new();
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    for row in std::iter::once(&header).chain(rows) {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 == row.len() {
                line.push_str(cell);
            } else {
                let pad = widths.get(i).copied().unwrap_or(0);
                let _ = write!(line, "{cell:<pad$}  ");
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// Unix milliseconds as RFC 3339 UTC (`2026-12-01T18:00:00Z`, with
/// milliseconds only when there are some).
pub fn rfc3339_ms(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| ms.to_string())
}

/// A value cell: the number rounded to 12 significant digits, so float
/// noise (`0.12407100000000001`) does not widen the table, `-` for none.
/// `--output json` keeps the exact values.
pub fn number(value: Option<f64>) -> String {
    match value {
        Some(v) if v.is_finite() => format!("{v:.11e}").parse::<f64>().unwrap_or(v).to_string(),
        Some(v) => v.to_string(),
        None => "-".to_owned(),
    }
}

/// Pretty JSON of a server answer, for `--output json`.
pub fn pretty(body: &[u8]) -> anyhow::Result<String> {
    use anyhow::Context;
    let value: serde_json::Value =
        serde_json::from_slice(body).context("the server's answer is not json")?;
    Ok(serde_json::to_string_pretty(&value)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_align_to_the_widest_cell() {
        let rows = vec![
            vec!["a".to_owned(), "long value".to_owned(), "x".to_owned()],
            vec!["longer".to_owned(), "b".to_owned(), "y".to_owned()],
        ];
        let text = render(&["h1", "h2", "h3"], &rows);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "h1      h2          h3");
        assert_eq!(lines[1], "a       long value  x");
        assert_eq!(lines[2], "longer  b           y");
    }

    #[test]
    fn times_are_utc_rfc3339() {
        assert_eq!(rfc3339_ms(1_768_212_000_000), "2026-01-12T10:00:00Z");
        assert_eq!(rfc3339_ms(1_768_212_000_250), "2026-01-12T10:00:00.25Z");
        assert_eq!(number(None), "-");
        assert_eq!(number(Some(0.1)), "0.1");
        assert_eq!(number(Some(0.12407100000000001)), "0.124071");
        assert_eq!(number(Some(17.5)), "17.5");
        assert_eq!(number(Some(1e300)), 1e300.to_string());
    }
}
