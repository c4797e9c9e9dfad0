//! `[[dashboards]]`: dashboards defined in the file, each a name and the
//! dashboard body's fields (`widgets`, `start`, `end`, `periodOverride`)
//! written in TOML. Validated like `PUT /api/dashboards/{name}` bodies,
//! every problem prefixed with `dashboards[i]`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// One dashboard of the file.
#[derive(Debug, Clone, PartialEq)]
pub struct DashboardDef {
    /// Its name.
    pub name: String,
    /// The dashboard body (`{"widgets": [...], ...}`).
    pub body: Value,
}

/// One `[[dashboards]]` entry as written.
#[derive(Debug, Default, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub(super) struct DashboardBuilder {
    name: Option<String>,
    #[serde(default)]
    widgets: Vec<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    start: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    end: Option<String>,
    #[serde(
        default,
        rename = "periodOverride",
        skip_serializing_if = "Option::is_none"
    )]
    period_override: Option<String>,
}

impl DashboardBuilder {
    /// An entry with every key set (for the documented-keys test).
    #[cfg(test)]
    pub(super) fn every_key() -> DashboardBuilder {
        DashboardBuilder {
            name: Some("d".into()),
            widgets: vec![Value::Null],
            start: Some("-PT3H".into()),
            end: Some("2026-12-01T00:00:00Z".into()),
            period_override: Some("auto".into()),
        }
    }
}

/// `[[dashboards]]`, validated.
pub(super) fn validate_dashboards(
    raw: Vec<DashboardBuilder>,
    problems: &mut Vec<String>,
) -> Vec<DashboardDef> {
    let mut out = Vec::with_capacity(raw.len());
    let mut names = std::collections::HashSet::new();
    for (i, entry) in raw.into_iter().enumerate() {
        let Some(name) = entry.name else {
            problems.push(format!("dashboards[{i}].name: required"));
            continue;
        };
        let mut body = serde_json::Map::new();
        body.insert("widgets".into(), Value::Array(entry.widgets));
        for (key, value) in [
            ("start", entry.start),
            ("end", entry.end),
            ("periodOverride", entry.period_override),
        ] {
            if let Some(value) = value {
                body.insert(key.into(), Value::String(value));
            }
        }
        let body = Value::Object(body);
        let found = vigil_metrics::dashboard::store::check(&name, &body);
        problems.extend(
            found
                .iter()
                .map(|p| format!("dashboards[{i}].{}: {}", p.field, p.message)),
        );
        if !names.insert(name.clone()) {
            problems.push(format!(
                "dashboards[{i}].name: duplicate dashboard name `{name}`"
            ));
        }
        if found.is_empty() {
            out.push(DashboardDef { name, body });
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::config::Config;

    const MODEL: &str = "[[models]]\nname = \"fraud\"\npath = \"m.json\"\n";

    #[test]
    fn dashboards_are_written_in_toml_and_validated() {
        let text = format!(
            r#"{MODEL}
[[dashboards]]
name = "Payments"
start = "-PT12H"

[[dashboards.widgets]]
type = "metric"
x = 0
y = 0
width = 12
height = 6
properties = {{ view = "timeSeries", stat = "p99", period = 60, metrics = [["InferencePipeline", "LatencyMs", {{ label = "p99" }}]] }}

[[dashboards.widgets]]
type = "text"
properties = {{ markdown = "hello" }}
"#
        );
        let config = Config::from_toml(&text).expect("valid");
        assert_eq!(config.dashboards.len(), 1);
        let body = &config.dashboards[0].body;
        assert_eq!(body["start"], "-PT12H");
        assert_eq!(
            body["widgets"][0]["properties"]["metrics"][0][2]["label"],
            "p99"
        );
        assert_eq!(body["widgets"][1]["type"], "text");

        let bad = format!(
            "{MODEL}\n[[dashboards]]\nname = \"a b\"\n\n[[dashboards.widgets]]\ntype = \"text\"\nx = 30\nproperties = {{}}\n\n[[dashboards]]\nwidgets = []\n"
        );
        let err = Config::from_toml(&bad).expect_err("invalid").to_string();
        for needle in [
            "dashboards[0].name: only letters, digits",
            "dashboards[0].widgets[0].x: expected a whole number from 0 to 23, got 30",
            "dashboards[0].widgets[0].properties.markdown: required",
            "dashboards[1].name: required",
        ] {
            assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
        }
    }
}
