//! Dashboards in the cloud's dashboard-body JSON: a `widgets` array on a
//! 24-column grid, each widget a `type`, a position (`x`, `y`, `width`,
//! `height`) and its `properties`. This module validates a body and names
//! every problem by its path (`widgets[2].properties.metrics[0][1]: ...`);
//! [`store`] keeps the dashboards (built-in, config file, API).
//!
//! A body is kept as the JSON it was sent as (the console and the CLI read
//! it back unchanged); validation only decides whether it is accepted.
//!
//! Widget types: the cloud's `metric`, `text`, `alarm` and `log`, and
//! Vigil's own `trace-list` and `service-map`.

pub mod grafana;
pub mod store;

use serde_json::{Map, Value};

use crate::alarm::Problem;

/// Columns of the grid.
pub const GRID_COLUMNS: u64 = 24;
/// Most widgets on one dashboard (the cloud's limit).
pub const MAX_WIDGETS: usize = 500;
/// Most metric rows in one metric widget (the cloud's limit).
pub const MAX_METRICS_PER_WIDGET: usize = 500;
/// Most alarms in one alarm widget (the cloud's limit).
pub const MAX_ALARMS_PER_WIDGET: usize = 100;
/// Most dimensions on one metric (SEMANTICS §1.1).
const MAX_DIMENSIONS: usize = 30;
/// Longest dashboard name.
pub const MAX_NAME_CHARS: usize = 255;

/// A dashboard name: 1 to 255 characters, letters, digits, `-` and `_`
/// (the cloud's rule; the name is a URL path segment as it is).
pub fn validate_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.chars().count() > MAX_NAME_CHARS {
        return Err(format!(
            "expected 1 to {MAX_NAME_CHARS} characters, got {}",
            name.chars().count()
        ));
    }
    if let Some(bad) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-' || *c == '_'))
    {
        return Err(format!(
            "only letters, digits, `-` and `_` are allowed, found {bad:?}"
        ));
    }
    Ok(())
}

/// Every problem of a dashboard body; empty when the body is valid.
pub fn validate_body(body: &Value) -> Vec<Problem> {
    let mut out = Problems::default();
    let Some(object) = body.as_object() else {
        out.push("", "the dashboard body must be a JSON object");
        return out.0;
    };
    for key in object.keys() {
        if !["widgets", "start", "end", "periodOverride"].contains(&key.as_str()) {
            out.push(
                key,
                "unknown field, expected widgets, start, end or periodOverride",
            );
        }
    }
    if let Some(start) = object.get("start") {
        check_time(&mut out, "start", start);
    }
    if let Some(end) = object.get("end") {
        check_time(&mut out, "end", end);
    }
    if let Some(p) = object.get("periodOverride")
        && !matches!(p.as_str(), Some("auto" | "inherit"))
    {
        out.push(
            "periodOverride",
            format!("expected `auto` or `inherit`, got {p}"),
        );
    }
    match object.get("widgets") {
        None => out.push("widgets", "required: an array of widgets"),
        Some(Value::Array(widgets)) => {
            if widgets.len() > MAX_WIDGETS {
                out.push(
                    "widgets",
                    format!("at most {MAX_WIDGETS} widgets, got {}", widgets.len()),
                );
            }
            for (i, widget) in widgets.iter().enumerate() {
                check_widget(&mut out, &format!("widgets[{i}]"), widget);
            }
        }
        Some(other) => out.push("widgets", format!("expected an array, got {}", kind(other))),
    }
    out.0
}

#[derive(Default)]
struct Problems(Vec<Problem>);

impl Problems {
    fn push(&mut self, field: &str, message: impl Into<String>) {
        self.0.push(Problem {
            field: field.to_owned(),
            message: message.into(),
        });
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// `start`/`end`: a relative ISO 8601 duration back from now (`-PT3H`,
/// `-P1D`, `-PT15M`, `-P2W`) or an RFC 3339 time.
fn check_time(out: &mut Problems, field: &str, value: &Value) {
    let Some(text) = value.as_str() else {
        out.push(field, format!("expected a string, got {}", kind(value)));
        return;
    };
    if relative_seconds(text).is_some()
        || time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).is_ok()
    {
        return;
    }
    out.push(
        field,
        format!("expected a relative duration such as `-PT3H` or `-P1D`, or an RFC 3339 time, got {text:?}"),
    );
}

/// Seconds back from now of a relative `start` (`-PT3H` → 10,800).
pub fn relative_seconds(text: &str) -> Option<u64> {
    let rest = text.strip_prefix("-P")?;
    let (time_part, rest) = match rest.strip_prefix('T') {
        Some(rest) => (true, rest),
        None => (false, rest),
    };
    let unit = rest.chars().last()?;
    let number: u64 = rest[..rest.len() - unit.len_utf8()].parse().ok()?;
    let seconds = match (time_part, unit) {
        (true, 'S') => 1,
        (true, 'M') => 60,
        (true, 'H') => 3600,
        (false, 'D') => 86_400,
        (false, 'W') => 7 * 86_400,
        _ => return None,
    };
    (number > 0).then(|| number.saturating_mul(seconds))
}

const WIDGET_KEYS: [&str; 6] = ["type", "x", "y", "width", "height", "properties"];

fn check_widget(out: &mut Problems, at: &str, widget: &Value) {
    let Some(object) = widget.as_object() else {
        out.push(
            at,
            format!("expected a widget object, got {}", kind(widget)),
        );
        return;
    };
    for key in object.keys() {
        if !WIDGET_KEYS.contains(&key.as_str()) {
            out.push(
                &format!("{at}.{key}"),
                "unknown field, expected type, x, y, width, height or properties",
            );
        }
    }
    let x = uint(out, at, object, "x", 0, GRID_COLUMNS - 1);
    uint(out, at, object, "y", 0, 10_000);
    let width = uint(out, at, object, "width", 1, GRID_COLUMNS).unwrap_or(6);
    uint(out, at, object, "height", 1, 1000);
    if let Some(x) = x
        && x + width > GRID_COLUMNS
    {
        out.push(
            &format!("{at}.width"),
            format!("x ({x}) + width ({width}) is past the grid's {GRID_COLUMNS} columns"),
        );
    }
    let properties = match object.get("properties") {
        Some(Value::Object(p)) => p,
        Some(other) => {
            out.push(
                &format!("{at}.properties"),
                format!("expected an object, got {}", kind(other)),
            );
            return;
        }
        None => {
            out.push(&format!("{at}.properties"), "required");
            return;
        }
    };
    let at_props = format!("{at}.properties");
    match object.get("type").and_then(Value::as_str) {
        Some("metric") => check_metric(out, &at_props, properties),
        Some("text") => check_text(out, &at_props, properties),
        Some("alarm") => check_alarm(out, &at_props, properties),
        Some("log") => check_log(out, &at_props, properties),
        Some("trace-list") => check_trace_list(out, &at_props, properties),
        Some("service-map") => known_keys(out, &at_props, properties, &["title"]),
        Some(other) => out.push(
            &format!("{at}.type"),
            format!(
                "unknown widget type {other:?}, expected metric, text, alarm, log, trace-list or service-map"
            ),
        ),
        None => out.push(
            &format!("{at}.type"),
            "required: metric, text, alarm, log, trace-list or service-map",
        ),
    }
}

/// An optional whole number in `min..=max`.
fn uint(
    out: &mut Problems,
    at: &str,
    object: &Map<String, Value>,
    key: &str,
    min: u64,
    max: u64,
) -> Option<u64> {
    let value = object.get(key)?;
    match value.as_u64() {
        Some(n) if (min..=max).contains(&n) => Some(n),
        _ => {
            out.push(
                &format!("{at}.{key}"),
                format!("expected a whole number from {min} to {max}, got {value}"),
            );
            None
        }
    }
}

fn known_keys(out: &mut Problems, at: &str, object: &Map<String, Value>, keys: &[&str]) {
    for key in object.keys() {
        if !keys.contains(&key.as_str()) {
            out.push(
                &format!("{at}.{key}"),
                format!("unknown field, expected one of {}", keys.join(", ")),
            );
        }
    }
}

fn string(out: &mut Problems, at: &str, object: &Map<String, Value>, key: &str, required: bool) {
    match object.get(key) {
        Some(Value::String(s)) if !(required && s.trim().is_empty()) => {}
        Some(Value::String(_)) => out.push(&format!("{at}.{key}"), "must not be empty"),
        Some(other) => out.push(
            &format!("{at}.{key}"),
            format!("expected a string, got {}", kind(other)),
        ),
        None if required => out.push(&format!("{at}.{key}"), "required"),
        None => {}
    }
}

fn boolean(out: &mut Problems, at: &str, object: &Map<String, Value>, key: &str) {
    if let Some(value) = object.get(key)
        && !value.is_boolean()
    {
        out.push(
            &format!("{at}.{key}"),
            format!("expected true or false, got {value}"),
        );
    }
}

fn one_of(out: &mut Problems, at: &str, object: &Map<String, Value>, key: &str, allowed: &[&str]) {
    if let Some(value) = object.get(key)
        && !value.as_str().is_some_and(|v| allowed.contains(&v))
    {
        out.push(
            &format!("{at}.{key}"),
            format!("expected one of {}, got {value}", allowed.join(", ")),
        );
    }
}

/// A period the metric store answers: 1, 5, 10, 20, 30 or a multiple of 60
/// seconds (SEMANTICS §1.3).
fn check_period(out: &mut Problems, field: &str, value: &Value) {
    match value.as_u64() {
        Some(p) if [1, 5, 10, 20, 30].contains(&p) || (p > 0 && p % 60 == 0) => {}
        _ => out.push(
            field,
            format!("expected 1, 5, 10, 20, 30 or a multiple of 60 seconds, got {value}"),
        ),
    }
}

fn check_stat(out: &mut Problems, field: &str, value: &Value) {
    match value.as_str() {
        Some(s) => {
            if let Err(err) = s.parse::<crate::Statistic>() {
                out.push(field, err);
            }
        }
        None => out.push(field, format!("expected a statistic name, got {value}")),
    }
}

const METRIC_KEYS: [&str; 15] = [
    "metrics",
    "view",
    "stat",
    "period",
    "title",
    "region",
    "stacked",
    "yAxis",
    "annotations",
    "setPeriodToTimeRange",
    "liveData",
    "legend",
    "sparkline",
    "timezone",
    "start",
];

fn check_metric(out: &mut Problems, at: &str, p: &Map<String, Value>) {
    known_keys(out, at, p, &METRIC_KEYS);
    one_of(
        out,
        at,
        p,
        "view",
        &["timeSeries", "singleValue", "gauge", "bar"],
    );
    string(out, at, p, "title", false);
    string(out, at, p, "region", false);
    boolean(out, at, p, "stacked");
    boolean(out, at, p, "setPeriodToTimeRange");
    boolean(out, at, p, "liveData");
    boolean(out, at, p, "sparkline");
    if let Some(stat) = p.get("stat") {
        check_stat(out, &format!("{at}.stat"), stat);
    }
    if let Some(period) = p.get("period") {
        check_period(out, &format!("{at}.period"), period);
    }
    if let Some(start) = p.get("start") {
        check_time(out, &format!("{at}.start"), start);
    }
    if let Some(axis) = p.get("yAxis") {
        check_y_axis(out, &format!("{at}.yAxis"), axis);
    }
    if p.get("view").and_then(Value::as_str) == Some("gauge") {
        let left = p.get("yAxis").and_then(|a| a.get("left"));
        let has = |k: &str| left.and_then(|l| l.get(k)).is_some_and(Value::is_number);
        if !(has("min") && has("max")) {
            out.push(
                &format!("{at}.yAxis.left"),
                "a gauge needs the range as yAxis.left.min and yAxis.left.max",
            );
        }
    }
    if let Some(annotations) = p.get("annotations") {
        check_annotations(out, &format!("{at}.annotations"), annotations);
    }
    match p.get("metrics") {
        Some(Value::Array(rows)) if rows.is_empty() => {
            out.push(&format!("{at}.metrics"), "needs at least one metric row");
        }
        Some(Value::Array(rows)) => {
            if rows.len() > MAX_METRICS_PER_WIDGET {
                out.push(
                    &format!("{at}.metrics"),
                    format!("at most {MAX_METRICS_PER_WIDGET} rows, got {}", rows.len()),
                );
            }
            let mut previous: Vec<String> = Vec::new();
            for (i, row) in rows.iter().enumerate() {
                let field = format!("{at}.metrics[{i}]");
                if let Some(expanded) = check_metric_row(out, &field, row, &previous) {
                    previous = expanded;
                }
            }
        }
        Some(other) => out.push(
            &format!("{at}.metrics"),
            format!("expected an array of metric rows, got {}", kind(other)),
        ),
        None => out.push(
            &format!("{at}.metrics"),
            "required: an array of metric rows",
        ),
    }
}

const ROW_OPTION_KEYS: [&str; 9] = [
    "stat",
    "period",
    "label",
    "id",
    "expression",
    "color",
    "yAxis",
    "visible",
    "region",
];

/// One metric row: `[namespace, name, dim, value, ..., {options}]`, where
/// `"."` repeats the string at the same position of the previous row, or
/// `[{"expression": ..., "id": ..., "label": ...}]`. Returns the expanded
/// strings for the next row's `"."`.
fn check_metric_row(
    out: &mut Problems,
    at: &str,
    row: &Value,
    previous: &[String],
) -> Option<Vec<String>> {
    let Some(items) = row.as_array() else {
        out.push(at, format!("expected an array, got {}", kind(row)));
        return None;
    };
    let (strings, options) = match items.last() {
        Some(Value::Object(options)) => (&items[..items.len() - 1], Some(options)),
        _ => (&items[..], None),
    };
    if let Some(options) = options {
        let field = format!("{at}[{}]", items.len() - 1);
        known_keys(out, &field, options, &ROW_OPTION_KEYS);
        if let Some(stat) = options.get("stat") {
            check_stat(out, &format!("{field}.stat"), stat);
        }
        if let Some(period) = options.get("period") {
            check_period(out, &format!("{field}.period"), period);
        }
        string(out, &field, options, "label", false);
        string(out, &field, options, "color", false);
        boolean(out, &field, options, "visible");
        one_of(out, &field, options, "yAxis", &["left", "right"]);
        if let Some(id) = options.get("id")
            && !id.as_str().is_some_and(crate::math::is_valid_id)
        {
            out.push(
                &format!("{field}.id"),
                format!("expected an id that starts with a lowercase letter (letters, digits and _), got {id}"),
            );
        }
        if let Some(expression) = options.get("expression") {
            match expression.as_str() {
                Some(text) => {
                    if let Err(err) = crate::math::parse(text) {
                        out.push(&format!("{field}.expression"), err.to_string());
                    }
                }
                None => out.push(
                    &format!("{field}.expression"),
                    format!("expected a string, got {}", kind(expression)),
                ),
            }
            if !strings.is_empty() {
                out.push(
                    at,
                    "an expression row holds only its options object ([{\"expression\": ...}])",
                );
            }
            return None;
        }
    }
    let mut expanded = Vec::with_capacity(strings.len());
    for (j, item) in strings.iter().enumerate() {
        match item.as_str() {
            Some(".") => match previous.get(j) {
                Some(value) => expanded.push(value.clone()),
                None => {
                    out.push(
                        &format!("{at}[{j}]"),
                        "`.` repeats the previous row's value here, but it has none",
                    );
                    return None;
                }
            },
            Some("") => {
                out.push(&format!("{at}[{j}]"), "must not be empty");
                return None;
            }
            Some(s) => expanded.push(s.to_owned()),
            None => {
                out.push(
                    &format!("{at}[{j}]"),
                    format!("expected a string (namespace, metric name, dimension name or value, or \".\"), got {}", kind(item)),
                );
                return None;
            }
        }
    }
    if expanded.len() < 2 {
        out.push(
            at,
            "expected [namespace, metric name, dimension name, value, ..., {options}] or [{\"expression\": ...}]",
        );
        // The strings still are what a following row's "." repeats.
        return Some(expanded);
    }
    if expanded.len() % 2 != 0 {
        out.push(
            &format!("{at}[{}]", expanded.len() - 1),
            "a dimension name without its value (dimensions come in name, value pairs)",
        );
        return Some(expanded);
    }
    let dimensions = (expanded.len() - 2) / 2;
    if dimensions > MAX_DIMENSIONS {
        out.push(
            at,
            format!("at most {MAX_DIMENSIONS} dimensions, got {dimensions}"),
        );
    }
    Some(expanded)
}

fn check_y_axis(out: &mut Problems, at: &str, axis: &Value) {
    let Some(axis) = axis.as_object() else {
        out.push(at, format!("expected an object, got {}", kind(axis)));
        return;
    };
    known_keys(out, at, axis, &["left", "right"]);
    for side in ["left", "right"] {
        let Some(value) = axis.get(side) else {
            continue;
        };
        let field = format!("{at}.{side}");
        let Some(side) = value.as_object() else {
            out.push(&field, format!("expected an object, got {}", kind(value)));
            continue;
        };
        known_keys(out, &field, side, &["min", "max", "label", "showUnits"]);
        for key in ["min", "max"] {
            if let Some(v) = side.get(key)
                && !v.is_number()
            {
                out.push(
                    &format!("{field}.{key}"),
                    format!("expected a number, got {v}"),
                );
            }
        }
        if let (Some(min), Some(max)) = (
            side.get("min").and_then(Value::as_f64),
            side.get("max").and_then(Value::as_f64),
        ) && min >= max
        {
            out.push(
                &format!("{field}.max"),
                format!("must be above min ({min}), got {max}"),
            );
        }
        string(out, &field, side, "label", false);
        boolean(out, &field, side, "showUnits");
    }
}

fn check_annotations(out: &mut Problems, at: &str, annotations: &Value) {
    let Some(object) = annotations.as_object() else {
        out.push(at, format!("expected an object, got {}", kind(annotations)));
        return;
    };
    known_keys(out, at, object, &["horizontal", "vertical"]);
    for side in ["horizontal", "vertical"] {
        let Some(list) = object.get(side) else {
            continue;
        };
        let Some(list) = list.as_array() else {
            out.push(
                &format!("{at}.{side}"),
                format!("expected an array, got {}", kind(list)),
            );
            continue;
        };
        for (i, item) in list.iter().enumerate() {
            let field = format!("{at}.{side}[{i}]");
            let Some(item) = item.as_object() else {
                out.push(&field, format!("expected an object, got {}", kind(item)));
                continue;
            };
            known_keys(
                out,
                &field,
                item,
                &["value", "label", "color", "fill", "visible", "yAxis"],
            );
            match (side, item.get("value")) {
                ("horizontal", Some(v)) if v.is_number() => {}
                ("vertical", Some(Value::String(t)))
                    if time::OffsetDateTime::parse(
                        t,
                        &time::format_description::well_known::Rfc3339,
                    )
                    .is_ok() => {}
                (_, v) => out.push(
                    &format!("{field}.value"),
                    format!(
                        "required: {} (got {})",
                        if side == "horizontal" {
                            "a number"
                        } else {
                            "an RFC 3339 time"
                        },
                        v.map_or("nothing".to_owned(), ToString::to_string)
                    ),
                ),
            }
            string(out, &field, item, "label", false);
            string(out, &field, item, "color", false);
            boolean(out, &field, item, "visible");
            one_of(
                out,
                &field,
                item,
                "fill",
                &["above", "below", "between", "before", "after"],
            );
        }
    }
}

fn check_text(out: &mut Problems, at: &str, p: &Map<String, Value>) {
    known_keys(out, at, p, &["markdown", "background", "title"]);
    string(out, at, p, "markdown", true);
    one_of(out, at, p, "background", &["solid", "transparent"]);
}

/// An alarm widget's entry: an alarm name or an alarm ARN
/// (`arn:aws:cloudwatch:REGION:ACCOUNT:alarm:NAME`); the name.
pub fn alarm_name(entry: &str) -> &str {
    match entry.strip_prefix("arn:") {
        Some(rest) => rest.split_once(":alarm:").map_or(entry, |(_, name)| name),
        None => entry,
    }
}

fn check_alarm(out: &mut Problems, at: &str, p: &Map<String, Value>) {
    known_keys(
        out,
        at,
        p,
        &["alarms", "title", "sortBy", "states", "region"],
    );
    string(out, at, p, "title", false);
    one_of(
        out,
        at,
        p,
        "sortBy",
        &["default", "stateUpdatedTimestamp", "timestamp"],
    );
    match p.get("alarms") {
        Some(Value::Array(list)) if !list.is_empty() => {
            if list.len() > MAX_ALARMS_PER_WIDGET {
                out.push(
                    &format!("{at}.alarms"),
                    format!("at most {MAX_ALARMS_PER_WIDGET} alarms, got {}", list.len()),
                );
            }
            for (i, entry) in list.iter().enumerate() {
                match entry.as_str() {
                    Some(s) if !alarm_name(s).is_empty() => {}
                    _ => out.push(
                        &format!("{at}.alarms[{i}]"),
                        format!("expected an alarm name or ARN, got {entry}"),
                    ),
                }
            }
        }
        Some(Value::Array(_)) => out.push(&format!("{at}.alarms"), "needs at least one alarm"),
        Some(other) => out.push(
            &format!("{at}.alarms"),
            format!("expected an array of alarm names, got {}", kind(other)),
        ),
        None => out.push(
            &format!("{at}.alarms"),
            "required: an array of alarm names or ARNs",
        ),
    }
    if let Some(states) = p.get("states") {
        let ok = states.as_array().is_some_and(|list| {
            list.iter()
                .all(|s| matches!(s.as_str(), Some("OK" | "ALARM" | "INSUFFICIENT_DATA")))
        });
        if !ok {
            out.push(
                &format!("{at}.states"),
                format!("expected an array of OK, ALARM, INSUFFICIENT_DATA, got {states}"),
            );
        }
    }
}

/// The log groups named by a log widget's query (`SOURCE '/vigil/access' |
/// SOURCE 'b' | fields ...`) and the query after them. `None` when the
/// query names no group.
pub fn split_log_query(query: &str) -> Option<(Vec<String>, String)> {
    let mut groups = Vec::new();
    let mut rest = query.trim_start();
    while let Some(after) = rest.strip_prefix("SOURCE") {
        let after = after.trim_start();
        let quote = after.chars().next().filter(|c| *c == '\'' || *c == '"')?;
        let body = &after[1..];
        let end = body.find(quote)?;
        groups.push(body[..end].to_owned());
        rest = body[end + 1..].trim_start();
        rest = rest.strip_prefix('|').unwrap_or(rest).trim_start();
    }
    (!groups.is_empty()).then(|| (groups, rest.to_owned()))
}

fn check_log(out: &mut Problems, at: &str, p: &Map<String, Value>) {
    known_keys(out, at, p, &["query", "view", "title", "region", "stacked"]);
    string(out, at, p, "query", true);
    string(out, at, p, "title", false);
    one_of(out, at, p, "view", &["table", "timeSeries", "bar"]);
    if let Some(query) = p.get("query").and_then(Value::as_str)
        && !query.trim().is_empty()
        && split_log_query(query).is_none()
    {
        out.push(
            &format!("{at}.query"),
            "expected the log groups first: SOURCE '/vigil/access' | fields ...",
        );
    }
}

fn check_trace_list(out: &mut Problems, at: &str, p: &Map<String, Value>) {
    known_keys(out, at, p, &["filter", "limit", "title"]);
    string(out, at, p, "filter", false);
    string(out, at, p, "title", false);
    uint(out, at, p, "limit", 1, 1000);
}

#[cfg(test)]
mod tests;
