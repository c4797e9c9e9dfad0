//! `models.features` and `models.features_file`: names for the features of
//! a model saved without them.

use std::collections::HashSet;
use std::path::Path;

use super::resolve;

/// Feature names given by the config, in model order: non-empty and
/// unique (checked here); their count and whether the model may take them
/// are checked when the model is loaded.
#[derive(Debug, Clone, PartialEq)]
pub struct FeatureNames {
    /// The names, in model order.
    pub names: Vec<String>,
    /// Where they come from, for messages: `features` or `features_file (PATH)`.
    pub origin: String,
}

/// `features` or `features_file` (the first line of a CSV, relative to the
/// config file's directory) as checked names. Problems go to `problems`.
pub(super) fn feature_names(
    label: &str,
    base: Option<&Path>,
    inline: Option<Vec<String>>,
    file: Option<String>,
    problems: &mut Vec<String>,
) -> Option<FeatureNames> {
    let (names, origin) = match (inline, file) {
        (None, None) => return None,
        (Some(_), Some(_)) => {
            problems.push(format!(
                "{label}: give `features` or `features_file`, not both"
            ));
            return None;
        }
        (Some(names), None) => (names, "`features`".to_owned()),
        (None, Some(file)) if file.is_empty() => {
            problems.push(format!("{label}: `features_file` is empty"));
            return None;
        }
        (None, Some(file)) => {
            let path = resolve(base, &file);
            let origin = format!("`features_file` ({})", path.display());
            match read_header(&path) {
                Ok(names) => (names, origin),
                Err(err) => {
                    problems.push(format!("{label}: {origin}: {err}"));
                    return None;
                }
            }
        }
    };
    let before = problems.len();
    if names.is_empty() {
        problems.push(format!("{label}: {origin} names no feature"));
    }
    let mut seen = HashSet::new();
    for (i, name) in names.iter().enumerate() {
        if name.trim().is_empty() {
            problems.push(format!("{label}: {origin}: name {i} is empty"));
        } else if !seen.insert(name.as_str()) {
            problems.push(format!("{label}: {origin}: `{name}` is given twice"));
        }
    }
    (problems.len() == before).then_some(FeatureNames { names, origin })
}

/// The cells of a CSV file's first line, trimmed (a header such as
/// `Time,V1,…,Amount` copied from the training data).
fn read_header(path: &Path) -> Result<Vec<String>, String> {
    let bytes = std::fs::read(path).map_err(|err| format!("cannot read it: {err}"))?;
    let bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(&bytes);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .from_reader(bytes);
    let mut record = csv::StringRecord::new();
    match reader.read_record(&mut record) {
        Ok(true) => Ok(record.iter().map(|cell| cell.trim().to_owned()).collect()),
        Ok(false) => Err("the file is empty: expected a CSV header line".to_owned()),
        Err(err) => Err(format!("not a CSV header line: {err}")),
    }
}
