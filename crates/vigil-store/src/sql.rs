//! SQL shared by the SQLite and PostgreSQL backends.

use crate::error::Result;
use crate::record::{InferenceRecord, ListQuery};

/// The columns of `inferences`, in the order rows are read and written.
pub(crate) const COLUMNS: &str = "request_id, received_at_us, model, version, input, \
     scores, label, threshold, latency_us, cached, api_key_name, trace_id";

/// A bound parameter of a generated query.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Param {
    /// An integer.
    Int(i64),
    /// A text value.
    Text(String),
}

/// A generated `SELECT` for [`crate::InferenceLog::list`]: fetches up to
/// `limit + 1` rows so the caller knows whether a next page exists.
pub(crate) fn list_sql(
    query: &ListQuery,
    limit: usize,
    placeholder: fn(usize) -> String,
) -> Result<(String, Vec<Param>)> {
    let cursor = query.decoded_cursor()?;
    let mut clauses: Vec<String> = Vec::new();
    let mut params: Vec<Param> = Vec::new();
    let mut push = |clause: &str, values: Vec<Param>| {
        let mut text = String::new();
        let mut rest = clause;
        for value in values {
            let Some(pos) = rest.find('?') else { break };
            text.push_str(&rest[..pos]);
            params.push(value);
            text.push_str(&placeholder(params.len()));
            rest = &rest[pos + 1..];
        }
        text.push_str(rest);
        clauses.push(text);
    };
    if let Some(model) = &query.model {
        push("model = ?", vec![Param::Text(model.clone())]);
    }
    if let Some(version) = &query.version {
        push("version = ?", vec![Param::Text(version.clone())]);
    }
    if let Some(label) = &query.label {
        push("label = ?", vec![Param::Text(label.clone())]);
    }
    if let Some(from) = query.from_us {
        push("received_at_us >= ?", vec![Param::Int(from)]);
    }
    if let Some(to) = query.to_us {
        push("received_at_us < ?", vec![Param::Int(to)]);
    }
    if let Some(c) = cursor {
        push(
            "(received_at_us, request_id, model) < (?, ?, ?)",
            vec![
                Param::Int(c.received_at_us),
                Param::Text(c.request_id),
                Param::Text(c.model),
            ],
        );
    }
    let where_clause = if clauses.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", clauses.join(" AND "))
    };
    let fetch = i64::try_from(limit).unwrap_or(i64::MAX).saturating_add(1);
    let sql = format!(
        "SELECT {COLUMNS} FROM inferences{where_clause} \
         ORDER BY received_at_us DESC, request_id DESC, model DESC LIMIT {fetch}"
    );
    Ok((sql, params))
}

/// Splits a batch into records to insert (first occurrence of each key) and,
/// for every record, the index of the first record with its key.
pub(crate) fn first_occurrences(records: &[InferenceRecord]) -> Vec<usize> {
    let mut seen: std::collections::HashMap<(&str, &str), usize> =
        std::collections::HashMap::with_capacity(records.len());
    records
        .iter()
        .enumerate()
        .map(|(i, r)| *seen.entry((&r.model, &r.request_id)).or_insert(i))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::Cursor;

    fn dollar(n: usize) -> String {
        format!("${n}")
    }

    #[test]
    fn builds_filters_in_order() {
        let q = ListQuery {
            model: Some("fraud".into()),
            label: Some("fraud".into()),
            from_us: Some(5),
            cursor: Some(
                Cursor {
                    received_at_us: 9,
                    request_id: "a".into(),
                    model: "m".into(),
                }
                .encode(),
            ),
            ..ListQuery::default()
        };
        let (sql, params) = list_sql(&q, 10, dollar).unwrap_or_else(|e| panic!("{e}"));
        assert!(sql.contains("model = $1 AND label = $2 AND received_at_us >= $3"));
        assert!(sql.contains("(received_at_us, request_id, model) < ($4, $5, $6)"));
        assert!(sql.ends_with("LIMIT 11"));
        assert_eq!(params.len(), 6);
        assert_eq!(params[3], Param::Int(9));
    }

    #[test]
    fn duplicates_point_to_first() {
        let r = |id: &str, m: &str| InferenceRecord::new(id, 0, m, "1", crate::Input::default());
        let batch = vec![r("a", "m"), r("b", "m"), r("a", "m"), r("a", "n")];
        assert_eq!(first_occurrences(&batch), vec![0, 1, 0, 3]);
    }
}
