//! A dashboard as a Grafana dashboard JSON model whose panels query the same
//! figures from a Prometheus that scrapes Vigil's `GET /metrics`.
//!
//! [`export`] takes a valid dashboard body and the table of families
//! `/metrics` exposes (the server's is `vigil_server::telemetry::names::families()`)
//! and writes a dashboard for Grafana's import (schema version
//! [`SCHEMA_VERSION`]) with the Prometheus data source as the input
//! variable `${DS_PROMETHEUS}`, asked for on import.
//!
//! | widget | panel |
//! |---|---|
//! | `metric`, `view` `timeSeries` | `timeseries`, one query per visible row |
//! | `metric`, `singleValue` | `stat` (the latest value; with `setPeriodToTimeRange`, `Sum`, `SampleCount` and `Maximum` over the whole range) |
//! | `metric`, `gauge` | `gauge` with `yAxis.left` as its range |
//! | `metric`, `bar` | `barchart` of each query's latest value |
//! | `text` | `text` (markdown) |
//! | `alarm`, `log`, `trace-list`, `service-map` | `text` saying why it has no Prometheus form |
//!
//! A row's statistic becomes PromQL as the alarm rules export writes it
//! ([`statistic_query`]: counter `Sum` → `sum(increase(x_total[P s]))`,
//! histogram `pNN` → `histogram_quantile`, `Average` → `rate(_sum) /
//! rate(_count)`, …) over windows of the row's period, with the period as
//! the query's minimum step. Millisecond distributions, which `/metrics`
//! shows in seconds, are multiplied back to milliseconds, so thresholds and
//! metric math read as on the console. Metric math is translated when it
//! uses `+ - * / ^`, comparisons (PromQL's `bool` form, 1 or 0), `ABS`,
//! `CEIL`, `FLOOR`, `LOG`, `LOG10`, `SQRT` and `SUM/AVG/MIN/MAX` of one
//! series; anything else (`FILL`, `IF`, `DIFF`, `RATE`, `AND`/`OR`, lists)
//! turns the widget into a text panel with the reason, as do statistics
//! PromQL cannot compute and metrics `/metrics` does not expose (custom
//! namespaces). Each such widget is listed in [`GrafanaExport::skipped`].
//!
//! Differences that remain: Prometheus windows slide where Vigil's periods
//! are aligned, `increase` extrapolates (a Sum may read 2.4), percentiles
//! come from histogram buckets, and a division by zero gives `NaN` or
//! `+Inf` where Vigil gives no point.
//!
//! Positions: `x` and `width` are kept (both grids have 24 columns); `y`
//! and `height` are scaled by 3/2, because a console row is 48 px plus an
//! 8 px gap and a Grafana row 30 px plus 8 px, rounding the top and bottom
//! edges alike so that widgets that touched still touch.

use serde_json::{Map, Value, json};

use super::relative_seconds;
use crate::alarm::prometheus::{Family, FamilyKind, statistic_query};
use crate::math::{AggArg, AggFunc, BinOp, Expr, Func1};
use crate::model::{Dimensions, Unit};
use crate::registry::prometheus_divisor;
use crate::statistic::Statistic;

/// Grafana's dashboard schema version written.
pub const SCHEMA_VERSION: u64 = 39;
/// The import input naming the Prometheus data source.
pub const DATASOURCE_INPUT: &str = "DS_PROMETHEUS";
/// The longest uid Grafana accepts.
const MAX_UID_CHARS: usize = 40;

/// A widget exported as a text panel saying why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedWidget {
    /// Its index in `widgets`.
    pub index: usize,
    /// Its type.
    pub kind: String,
    /// Its title, when it has one.
    pub title: Option<String>,
    /// Why it has no Prometheus form, lowercase.
    pub reason: String,
}

/// The Grafana dashboard and the widgets it could not express.
#[derive(Debug, Clone, PartialEq)]
pub struct GrafanaExport {
    /// The dashboard JSON model, ready for Grafana's import.
    pub dashboard: Value,
    /// The widgets drawn as a text panel instead, in order.
    pub skipped: Vec<SkippedWidget>,
}

/// `body` (a valid dashboard body) named `name` as a Grafana dashboard over
/// `families`, the table of what `/metrics` exposes.
pub fn export(name: &str, body: &Value, families: &[Family]) -> GrafanaExport {
    let mut panels = Vec::new();
    let mut skipped = Vec::new();
    let mut kinds: Vec<&'static str> = Vec::new();
    let widgets = body["widgets"].as_array().map(Vec::as_slice).unwrap_or(&[]);
    for (index, widget) in widgets.iter().enumerate() {
        let kind = widget["type"].as_str().unwrap_or("");
        let props = widget["properties"].as_object();
        let empty = Map::new();
        let props = props.unwrap_or(&empty);
        let title = props
            .get("title")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let converted = match kind {
            "metric" => metric_panel(props, families),
            "text" => Ok(text_panel(
                props.get("markdown").and_then(Value::as_str).unwrap_or(""),
                props.get("background").and_then(Value::as_str) == Some("transparent"),
            )),
            "alarm" => Err(
                "alarm states are not on /metrics; export the alarms with `vigil alarms export \
                 --format prometheus` and show them with Grafana's alert list"
                    .to_owned(),
            ),
            "log" => Err(
                "log queries run on Vigil's log store, which prometheus does not hold".to_owned(),
            ),
            "trace-list" => {
                Err("traces are in Vigil's trace store, which prometheus does not hold".to_owned())
            }
            "service-map" => Err(
                "the service map is drawn from Vigil's trace store, which prometheus does not hold"
                    .to_owned(),
            ),
            other => Err(format!("unknown widget type {other:?}")),
        };
        let mut panel = match converted {
            Ok(panel) => panel,
            Err(reason) => {
                let what = title.as_deref().unwrap_or(kind);
                let panel = text_panel(
                    &format!("**{what}** ({kind} widget) is not exported to Grafana: {reason}."),
                    false,
                );
                skipped.push(SkippedWidget {
                    index,
                    kind: kind.to_owned(),
                    title: title.clone(),
                    reason,
                });
                panel
            }
        };
        let panel_type = panel["type"].as_str().unwrap_or("text");
        let known = ["timeseries", "stat", "gauge", "barchart", "text"];
        if let Some(t) = known.iter().find(|t| **t == panel_type)
            && !kinds.contains(t)
        {
            kinds.push(t);
        }
        panel["id"] = json!(index + 1);
        panel["gridPos"] = grid_pos(widget);
        if let Some(title) = &title {
            panel["title"] = json!(title);
        } else if panel.get("title").is_none() {
            panel["title"] = json!("");
        }
        panels.push(panel);
    }
    let mut requires = vec![
        json!({"type": "grafana", "id": "grafana", "name": "Grafana", "version": "10.4.0"}),
        json!({"type": "datasource", "id": "prometheus", "name": "Prometheus", "version": "1.0.0"}),
    ];
    for kind in kinds {
        requires.push(json!({"type": "panel", "id": kind, "name": kind, "version": ""}));
    }
    let dashboard = json!({
        "__inputs": [{
            "name": DATASOURCE_INPUT, "label": "Prometheus",
            "description": "the Prometheus that scrapes Vigil's /metrics",
            "type": "datasource", "pluginId": "prometheus", "pluginName": "Prometheus",
        }],
        "__requires": requires,
        "annotations": {"list": []},
        "description": format!("Vigil dashboard {name}, exported by `vigil dashboards export`"),
        "editable": true,
        "graphTooltip": 1,
        "id": null,
        "links": [],
        "panels": panels,
        "refresh": "",
        "schemaVersion": SCHEMA_VERSION,
        "tags": ["vigil"],
        "templating": {"list": []},
        "time": {"from": time(body.get("start"), "now-3h"), "to": time(body.get("end"), "now")},
        "timepicker": {},
        "timezone": "utc",
        "title": name,
        "uid": uid(name),
        "version": 1,
    });
    GrafanaExport { dashboard, skipped }
}

fn datasource() -> Value {
    json!({"type": "prometheus", "uid": format!("${{{DATASOURCE_INPUT}}}")})
}

fn text_panel(markdown: &str, transparent: bool) -> Value {
    json!({
        "type": "text", "transparent": transparent,
        "options": {"mode": "markdown", "content": markdown},
    })
}

/// A console row on Grafana's grid: y and height × 3/2 (see the module doc).
fn grid_pos(widget: &Value) -> Value {
    let get = |key: &str, default: u64| widget[key].as_u64().unwrap_or(default);
    let (x, y, w, h) = (get("x", 0), get("y", 0), get("width", 6), get("height", 6));
    let scale = |v: u64| (v * 3).div_ceil(2);
    let top = scale(y);
    json!({"x": x, "y": top, "w": w, "h": (scale(y + h) - top).max(1)})
}

/// A dashboard `start`/`end` as Grafana's time: `-PT3H` → `now-3h`, an
/// RFC 3339 time as it is.
fn time(value: Option<&Value>, default: &str) -> String {
    let Some(text) = value.and_then(Value::as_str) else {
        return default.to_owned();
    };
    match relative_seconds(text) {
        Some(s) if s % 86_400 == 0 => format!("now-{}d", s / 86_400),
        Some(s) if s % 3600 == 0 => format!("now-{}h", s / 3600),
        Some(s) if s % 60 == 0 => format!("now-{}m", s / 60),
        Some(s) => format!("now-{s}s"),
        None => text.to_owned(),
    }
}

/// `vigil-<name>`, or when that is past Grafana's 40 characters, its start
/// and a hash of the whole name (names are `[A-Za-z0-9_-]`, as uids are).
fn uid(name: &str) -> String {
    let full = format!("vigil-{name}");
    if full.len() <= MAX_UID_CHARS {
        return full;
    }
    // FNV-1a: stable across builds, unlike the std hasher.
    let hash = name.bytes().fold(0x811c_9dc5_u32, |h, b| {
        (h ^ u32::from(b)).wrapping_mul(0x0100_0193)
    });
    format!("{}-{hash:08x}", &full[..MAX_UID_CHARS - 9])
}

/// One metric row, `"."` expanded.
struct Row<'a> {
    strings: Vec<String>,
    options: Option<&'a Map<String, Value>>,
}

impl Row<'_> {
    fn option(&self, key: &str) -> Option<&Value> {
        self.options.and_then(|o| o.get(key))
    }

    fn expression(&self) -> Option<&str> {
        self.option("expression").and_then(Value::as_str)
    }
}

fn expand(rows: &[Value]) -> Vec<Row<'_>> {
    let mut out = Vec::with_capacity(rows.len());
    let mut previous: Vec<String> = Vec::new();
    for row in rows {
        let items = row.as_array().map(Vec::as_slice).unwrap_or(&[]);
        let (strings, options) = match items.last() {
            Some(Value::Object(o)) => (&items[..items.len() - 1], Some(o)),
            _ => (items, None),
        };
        let expanded: Vec<String> = strings
            .iter()
            .enumerate()
            .map(|(j, s)| match s.as_str() {
                Some(".") => previous.get(j).cloned().unwrap_or_default(),
                Some(s) => s.to_owned(),
                None => String::new(),
            })
            .collect();
        if !expanded.is_empty() {
            previous.clone_from(&expanded);
        }
        out.push(Row {
            strings: expanded,
            options,
        });
    }
    out
}

/// How a metric widget's rows are turned into PromQL.
struct Context<'a> {
    rows: Vec<Row<'a>>,
    ids: Vec<String>,
    families: &'a [Family],
    stat: &'a str,
    period: u64,
    /// `Sum`, `SampleCount` and `Maximum` rows over `$__range` (a single
    /// value over the whole range).
    whole_range: bool,
}

impl Context<'_> {
    /// The PromQL of row `i` and whether it is in milliseconds.
    fn row(&self, i: usize, depth: usize) -> Result<(String, bool), String> {
        let row = &self.rows[i];
        if let Some(text) = row.expression() {
            if depth > crate::math::MAX_DEPTH {
                return Err(format!("expression {:?} refers to itself", self.ids[i]));
            }
            let parsed = crate::math::parse(text).map_err(|e| e.to_string())?;
            let mut ms = false;
            let expr = self.expr(&parsed.expr, depth + 1, &mut ms)?;
            return Ok((expr, ms));
        }
        let (namespace, name) = match row.strings.as_slice() {
            [namespace, name, ..] => (namespace, name),
            _ => return Err("a metric row without namespace and name".to_owned()),
        };
        let family = self
            .families
            .iter()
            .find(|f| f.namespace == *namespace && f.metric_name == *name)
            .ok_or_else(|| {
                format!("{namespace}/{name} is not exposed on /metrics (custom metrics are not)")
            })?;
        let stat_text = row
            .option("stat")
            .and_then(Value::as_str)
            .unwrap_or(self.stat);
        let statistic: Statistic = stat_text.parse()?;
        let period = row
            .option("period")
            .and_then(Value::as_u64)
            .unwrap_or(self.period);
        let dimensions: Dimensions = row.strings[2..]
            .chunks_exact(2)
            .map(|pair| (pair[0].clone(), pair[1].clone()))
            .collect();
        let range = if self.whole_range
            && matches!(
                statistic,
                Statistic::Sum | Statistic::SampleCount | Statistic::Maximum
            ) {
            "$__range".to_owned()
        } else {
            format!("{period}s")
        };
        let query = statistic_query(family, &statistic, &dimensions, &range)
            .map_err(|reason| format!("{namespace}/{name}: {reason}"))?;
        let counts = family.kind == FamilyKind::Counter || statistic == Statistic::SampleCount;
        let divisor = prometheus_divisor(family.unit);
        if counts || divisor == 1.0 {
            return Ok((query, false));
        }
        Ok((
            format!("({query}) * {divisor}"),
            family.unit == Unit::Milliseconds || family.unit == Unit::Microseconds,
        ))
    }

    fn expr(&self, expr: &Expr, depth: usize, ms: &mut bool) -> Result<String, String> {
        Ok(match expr {
            Expr::Number(n) => format!("{n}"),
            Expr::Id(id) => {
                let i = self
                    .ids
                    .iter()
                    .position(|x| x == id)
                    .ok_or_else(|| format!("no row has the id {id:?}"))?;
                let (query, row_ms) = self.row(i, depth)?;
                *ms |= row_ms;
                format!("({query})")
            }
            Expr::Neg(x) => format!("-({})", self.expr(x, depth, ms)?),
            Expr::Binary { op, lhs, rhs } => {
                let op = match op {
                    BinOp::Add => "+",
                    BinOp::Sub => "-",
                    BinOp::Mul => "*",
                    BinOp::Div => "/",
                    BinOp::Pow => "^",
                    BinOp::Eq => "== bool",
                    BinOp::Ne => "!= bool",
                    BinOp::Lt => "< bool",
                    BinOp::Le => "<= bool",
                    BinOp::Gt => "> bool",
                    BinOp::Ge => ">= bool",
                    BinOp::And | BinOp::Or => {
                        return Err(format!(
                            "{} in metric math: promql's and/or are set operations",
                            op.as_str()
                        ));
                    }
                };
                format!(
                    "({}) {op} ({})",
                    self.expr(lhs, depth, ms)?,
                    self.expr(rhs, depth, ms)?
                )
            }
            Expr::Call { func, arg } => {
                let name = match func {
                    Func1::Abs => "abs",
                    Func1::Ceil => "ceil",
                    Func1::Floor => "floor",
                    Func1::Log => "ln",
                    Func1::Log10 => "log10",
                    Func1::Sqrt => "sqrt",
                    Func1::Diff | Func1::Rate => {
                        return Err(format!(
                            "{} in metric math has no promql form here",
                            func.as_str()
                        ));
                    }
                };
                format!("{name}({})", self.expr(arg, depth, ms)?)
            }
            Expr::Agg {
                func: AggFunc::Sum | AggFunc::Avg | AggFunc::Min | AggFunc::Max,
                arg: AggArg::One(x),
            } => self.expr(x, depth, ms)?,
            Expr::Agg { .. } => {
                return Err(
                    "SUM/AVG/MIN/MAX/STDDEV over a list combine the series that have a point, \
                     which promql arithmetic does not"
                        .to_owned(),
                );
            }
            Expr::Not(_) | Expr::Fill { .. } | Expr::If { .. } => {
                return Err(format!(
                    "{expr} in metric math has no promql form here (NOT, FILL and IF do not map)"
                ));
            }
        })
    }
}

fn metric_panel(props: &Map<String, Value>, families: &[Family]) -> Result<Value, String> {
    let view = props
        .get("view")
        .and_then(Value::as_str)
        .unwrap_or("timeSeries");
    let rows = expand(
        props
            .get("metrics")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[]),
    );
    let ids: Vec<String> = rows
        .iter()
        .enumerate()
        .map(|(i, row)| {
            row.option("id")
                .and_then(Value::as_str)
                .map_or_else(|| format!("m{i}"), str::to_owned)
        })
        .collect();
    let context = Context {
        ids,
        families,
        stat: props
            .get("stat")
            .and_then(Value::as_str)
            .unwrap_or("Average"),
        period: props.get("period").and_then(Value::as_u64).unwrap_or(300),
        whole_range: view != "timeSeries"
            && props.get("setPeriodToTimeRange").and_then(Value::as_bool) == Some(true),
        rows,
    };
    let mut targets = Vec::new();
    let mut overrides = Vec::new();
    let mut problems = Vec::new();
    let mut all_ms = true;
    for (i, row) in context.rows.iter().enumerate() {
        if row.option("visible").and_then(Value::as_bool) == Some(false) {
            continue;
        }
        let (expr, ms) = match context.row(i, 0) {
            Ok(q) => q,
            Err(reason) => {
                problems.push(format!("metrics[{i}]: {reason}"));
                continue;
            }
        };
        all_ms &= ms;
        let ref_id = ref_id(targets.len());
        let legend = match (
            row.option("label").and_then(Value::as_str),
            row.expression(),
        ) {
            (Some(label), _) => label.to_owned(),
            (None, Some(text)) => text.to_owned(),
            (None, None) => {
                let name = row.strings.get(1).cloned().unwrap_or_default();
                match row.option("stat").and_then(Value::as_str) {
                    Some(stat) => format!("{name} {stat}"),
                    None => name,
                }
            }
        };
        let instant = expr.contains("$__range");
        let period = row
            .option("period")
            .and_then(Value::as_u64)
            .unwrap_or(context.period);
        targets.push(json!({
            "refId": ref_id, "datasource": datasource(), "expr": expr,
            "legendFormat": legend, "range": !instant, "instant": instant,
            "interval": format!("{period}s"), "editorMode": "code",
        }));
        let mut properties = Vec::new();
        if let Some(color) = row.option("color").and_then(Value::as_str) {
            properties
                .push(json!({"id": "color", "value": {"mode": "fixed", "fixedColor": color}}));
        }
        if row.option("yAxis").and_then(Value::as_str) == Some("right") {
            properties.push(json!({"id": "custom.axisPlacement", "value": "right"}));
        }
        if !properties.is_empty() {
            overrides.push(json!({
                "matcher": {"id": "byFrameRefID", "options": ref_id}, "properties": properties,
            }));
        }
    }
    if !problems.is_empty() {
        return Err(problems.join("; "));
    }
    if targets.is_empty() {
        return Err("no visible metric row".to_owned());
    }
    let left = props.get("yAxis").and_then(|a| a.get("left"));
    let mut defaults = json!({"unit": if all_ms { "ms" } else { "short" }});
    for key in ["min", "max"] {
        if let Some(v) = left.and_then(|l| l.get(key)).filter(|v| v.is_number()) {
            defaults[key] = v.clone();
        }
    }
    let mut steps = vec![json!({"color": "green", "value": null})];
    let horizontal = props
        .get("annotations")
        .and_then(|a| a.get("horizontal"))
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or(&[]);
    for h in horizontal {
        if h["visible"] == json!(false) {
            continue;
        }
        if let Some(v) = h["value"].as_f64() {
            let color = h["color"].as_str().unwrap_or("#D55E00");
            steps.push(json!({"color": color, "value": v}));
        }
    }
    let has_thresholds = steps.len() > 1;
    defaults["thresholds"] = json!({"mode": "absolute", "steps": steps});
    let reduce = json!({"calcs": ["lastNotNull"], "fields": "", "values": false});
    let (kind, options, transformations) = match view {
        "singleValue" => {
            let sparkline = props.get("sparkline").and_then(Value::as_bool) == Some(true);
            (
                "stat",
                json!({"reduceOptions": reduce, "colorMode": "none",
                    "graphMode": if sparkline { "area" } else { "none" },
                    "textMode": "value_and_name", "justifyMode": "auto", "orientation": "auto"}),
                json!([]),
            )
        }
        "gauge" => (
            "gauge",
            json!({"reduceOptions": reduce, "showThresholdMarkers": has_thresholds,
                "showThresholdLabels": false, "orientation": "auto"}),
            json!([]),
        ),
        "bar" => (
            "barchart",
            json!({"xField": "Field", "orientation": "horizontal", "showValue": "auto",
                "legend": {"showLegend": false, "displayMode": "list", "placement": "bottom"}}),
            json!([{"id": "reduce", "options": {"reducers": ["lastNotNull"]}}]),
        ),
        _ => {
            let mut custom = json!({"drawStyle": "line", "lineWidth": 2, "showPoints": "auto",
                "spanNulls": false, "fillOpacity": 0,
                "thresholdsStyle": {"mode": if has_thresholds { "dashed" } else { "off" }}});
            if let Some(label) = left.and_then(|l| l.get("label")).and_then(Value::as_str) {
                custom["axisLabel"] = json!(label);
            }
            if props.get("stacked").and_then(Value::as_bool) == Some(true) {
                custom["stacking"] = json!({"mode": "normal", "group": "A"});
                custom["fillOpacity"] = json!(30);
            }
            defaults["custom"] = custom;
            (
                "timeseries",
                json!({"legend": {"showLegend": true, "displayMode": "list", "placement": "bottom"},
                    "tooltip": {"mode": "multi", "sort": "none"}}),
                json!([]),
            )
        }
    };
    Ok(json!({
        "type": kind, "datasource": datasource(), "targets": targets,
        "fieldConfig": {"defaults": defaults, "overrides": overrides},
        "options": options, "transformations": transformations,
    }))
}

/// `A`, `B`, … `Z`, `AA`, `AB`, … (Grafana's refIds).
fn ref_id(mut n: usize) -> String {
    let mut out = Vec::new();
    loop {
        out.push(b'A' + (n % 26) as u8);
        if n < 26 {
            break;
        }
        n = n / 26 - 1;
    }
    out.reverse();
    String::from_utf8(out).unwrap_or_default()
}

#[cfg(test)]
mod tests;
