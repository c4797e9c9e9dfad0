//! Metric alarms as a Prometheus alerting-rules file, over the families
//! Vigil exposes on `GET /metrics`.
//!
//! [`rules`] takes the alarms and the table of exposed families (the server
//! builds it from its metric names: `vigil_server::telemetry::names::families()`)
//! and writes one rule group, `vigil-alarms`, with one alerting rule per
//! alarm PromQL can express; every other alarm lands in
//! [`RulesExport::skipped`] with the reason.
//!
//! What maps, for a period of P seconds (`[P s]` below):
//!
//! | alarm | PromQL |
//! |---|---|
//! | counter, `Sum` | `sum(increase(x_total{..}[P s]))` |
//! | histogram, `SampleCount` | `sum(increase(x_count{..}[P s]))` |
//! | histogram, `Sum` | `sum(increase(x_sum{..}[P s]))` |
//! | histogram, `Average` | `sum(rate(x_sum{..}[P s])) / sum(rate(x_count{..}[P s]))` |
//! | histogram, `pNN` | `histogram_quantile(NN/100, sum by (le) (rate(x_bucket{..}[P s])))` |
//! | histogram, `Maximum` | the same with quantile 1 (approximate, see below) |
//! | `GreaterThanThreshold` … | `>`, `>=`, `<`, `<=` the threshold |
//! | M = N | the comparison, `for: (N − 1) × P s` |
//! | M < N | `sum_over_time((… > bool T)[N×P s:P s]) >= M`, `for: 0s` |
//! | `evaluate_low_sample_count_percentile: ignore` | `… and on() (sum(increase(x_count{..}[P s])) >= 10/(1−p))` |
//! | dimensions | label matchers `name="value"` |
//!
//! `/metrics` shows millisecond distributions in seconds (Prometheus's base
//! unit), so thresholds on their values are divided by 1000 (2000 ms → `2`);
//! SampleCount and counters are counts and stay as written.
//!
//! What is equivalent and what is not:
//! - Windows slide: Prometheus evaluates `[P s]` ending at each rule
//!   evaluation, Vigil evaluates completed, aligned periods. The M < N
//!   subquery evaluates at multiples of P, as Vigil's slots are; Prometheus
//!   2.x subquery ranges are closed, so an evaluation falling exactly on a
//!   period boundary sees N + 1 slots.
//! - `for:` needs the comparison true at every rule evaluation for
//!   (N − 1) × P s: N consecutive breaching periods, as M = N asks, but
//!   measured on sliding windows.
//! - `increase` extrapolates to the window's edges, so a Sum can be
//!   fractional (2 requests can read 2.4); pick thresholds between integers.
//! - Percentiles come from the histogram buckets (linear interpolation
//!   inside a bucket), where Vigil's come from a sketch within 1%. Maximum
//!   is the upper bound of the highest bucket holding a value.
//! - Missing data: an empty window gives no sample (histograms: NaN), so the
//!   rule does not fire; that matches `missing` and `notBreaching` (Vigil's
//!   INSUFFICIENT_DATA and OK are both "not firing") and approximates
//!   `ignore` (Prometheus resolves where Vigil keeps its state). A counter at
//!   rest reads 0 in Prometheus where Vigil may have no datapoint, so a
//!   `< T` alarm on a counter fires on silence in Prometheus. The premature
//!   rule (SEMANTICS.md §2.2 step 5) has no counterpart.
//! - Dimensions match series carrying those labels; `sum` adds up the series
//!   with more labels, where Vigil matches the exact dimension set only.
//!
//! Skipped, with a reason: metric-math alarms, `Minimum`, counter
//! statistics other than `Sum`, trimmed/winsorized/rank statistics,
//! `treat_missing_data: breaching` (Prometheus cannot fire on an absent
//! window the way Vigil does), metrics not in the family table (custom
//! namespaces sent with PutMetricData never reach `/metrics`), a unit other
//! than the family's (the alarm never sees data). Composite alarms have no
//! PromQL form: [`skip_composites`] lists them.
//!
//! The YAML is written by hand: every string double-quoted and escaped,
//! so no alarm name or dimension value can break the file.

use std::fmt::Write as _;

use super::config::{
    ComparisonOperator, CompositeAlarm, MetricAlarm, MetricSource, min_samples_for_percentile,
};
use super::evaluate::TreatMissingData;
use crate::alarm::LowSampleCount;
use crate::model::{Dimensions, Unit};
use crate::registry::{label_name, prometheus_divisor};
use crate::statistic::Statistic;

/// The rule group's name.
pub const GROUP: &str = "vigil-alarms";

/// How a family shows on `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FamilyKind {
    /// `<prom>_total`.
    Counter,
    /// `<prom>_bucket`, `<prom>_sum`, `<prom>_count`.
    Histogram,
}

/// One metric Vigil exposes to Prometheus: its CloudWatch identity and its
/// Prometheus family.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Family {
    /// The namespace (`InferencePipeline`).
    pub namespace: String,
    /// The metric name (`LatencyMs`).
    pub metric_name: String,
    /// The unit its data carries.
    pub unit: Unit,
    /// The family name without suffixes (`inference_pipeline_latency_seconds`).
    pub prom: String,
    /// Counter or histogram.
    pub kind: FamilyKind,
}

/// An alarm left out of the rules, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    /// The alarm's name.
    pub alarm: String,
    /// Why PromQL cannot express it, lowercase.
    pub reason: String,
}

/// The rules file and the alarms it leaves out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RulesExport {
    /// A Prometheus rules file (`promtool check rules` accepts it), with one
    /// group named [`GROUP`]; its `rules` list is empty when nothing maps.
    pub yaml: String,
    /// The alarms with no rule, in input order.
    pub skipped: Vec<Skipped>,
}

/// The rules file for `alarms` over `families` (the table of what `/metrics`
/// exposes; the server's is `vigil_server::telemetry::names::families()`).
/// Alarms PromQL cannot express are listed in [`RulesExport::skipped`].
pub fn rules(alarms: &[MetricAlarm], families: &[Family]) -> RulesExport {
    let mut yaml = String::from(
        "# Prometheus alerting rules exported from Vigil's metric alarms.\n\
         # Equivalence and its limits: crates/vigil-metrics/README.md, \"Prometheus rules export\".\n\
         groups:\n",
    );
    let _ = writeln!(yaml, "  - name: {}", quote(GROUP));
    let mut skipped = Vec::new();
    let mut body = String::new();
    for alarm in alarms {
        match rule(alarm, families) {
            Ok(r) => r.write(&mut body),
            Err(reason) => skipped.push(Skipped {
                alarm: alarm.name().to_string(),
                reason,
            }),
        }
    }
    if body.is_empty() {
        yaml.push_str("    rules: []\n");
    } else {
        yaml.push_str("    rules:\n");
        yaml.push_str(&body);
    }
    RulesExport { yaml, skipped }
}

/// Composite alarms as skipped entries: their rules combine other alarms'
/// states, which Prometheus alerting rules cannot read.
pub fn skip_composites(alarms: &[CompositeAlarm]) -> Vec<Skipped> {
    alarms
        .iter()
        .map(|a| Skipped {
            alarm: a.name().to_string(),
            reason: "composite alarms combine alarm states, which prometheus rules cannot read"
                .to_string(),
        })
        .collect()
}

struct Rule {
    alert: String,
    expr: String,
    for_s: u64,
    labels: Vec<(&'static str, String)>,
    summary: String,
    description: String,
}

impl Rule {
    fn write(&self, out: &mut String) {
        let _ = writeln!(out, "      - alert: {}", quote(&self.alert));
        let _ = writeln!(out, "        expr: {}", quote(&self.expr));
        let _ = writeln!(out, "        for: {}", quote(&format!("{}s", self.for_s)));
        out.push_str("        labels:\n");
        for (name, value) in &self.labels {
            let _ = writeln!(out, "          {name}: {}", quote(value));
        }
        out.push_str("        annotations:\n");
        let _ = writeln!(out, "          summary: {}", quote(&self.summary));
        let _ = writeln!(out, "          description: {}", quote(&self.description));
    }
}

fn rule(alarm: &MetricAlarm, families: &[Family]) -> Result<Rule, String> {
    let MetricSource::Single {
        namespace,
        metric_name,
        dimensions,
        statistic,
        unit,
    } = alarm.source()
    else {
        return Err("metric-math alarms have no promql form".to_string());
    };
    if alarm.treat_missing_data() == TreatMissingData::Breaching {
        return Err(
            "treat_missing_data breaching: prometheus rules do not fire on an empty window"
                .to_string(),
        );
    }
    let family = families
        .iter()
        .find(|f| f.namespace == *namespace && f.metric_name == *metric_name)
        .ok_or_else(|| {
            format!("{namespace}/{metric_name} is not exposed on /metrics (custom metrics are not)")
        })?;
    if let Some(unit) = unit
        && *unit != family.unit
    {
        return Err(format!(
            "unit {} differs from the metric's unit {}, so the alarm never sees data",
            unit.as_str(),
            family.unit.as_str()
        ));
    }
    let period = u64::from(alarm.period_s());
    let matchers = matchers(dimensions);
    let prom = &family.prom;
    let window = format!("{matchers}[{period}s]");
    let value = statistic_query(family, statistic, dimensions, &format!("{period}s"))?;
    // Low-sample points count as missing: no sample, so not breaching.
    let enough = match (alarm.low_sample_count(), alarm.percentile()) {
        (LowSampleCount::Ignore, Some(p)) if family.kind == FamilyKind::Histogram => Some(format!(
            " and on() (sum(increase({prom}_count{window})) >= {})",
            number(min_samples_for_percentile(p))
        )),
        _ => None,
    };
    let op = operator(alarm.comparison_operator());
    // `/metrics` shows millisecond values in seconds; counts stay counts.
    let divisor = match (family.kind, statistic) {
        (FamilyKind::Histogram, Statistic::SampleCount) | (FamilyKind::Counter, _) => 1.0,
        _ => prometheus_divisor(family.unit),
    };
    let threshold = number(alarm.threshold());
    let prom_threshold = number(alarm.threshold() / divisor);
    let (n, m) = (
        u64::from(alarm.evaluation_periods()),
        u64::from(alarm.datapoints_to_alarm()),
    );
    let enough = enough.unwrap_or_default();
    let (expr, for_s) = if m == n {
        (
            format!("({value}) {op} {prom_threshold}{enough}"),
            (n - 1) * period,
        )
    } else {
        (
            format!(
                "sum_over_time((({value}) {op} bool {prom_threshold}{enough})[{}s:{period}s]) >= {m}",
                n * period
            ),
            0,
        )
    };
    let what = format!("{statistic} of {namespace}/{metric_name}");
    let summary = alarm.spec().description.clone().unwrap_or_else(|| {
        format!(
            "{what} {} {threshold}",
            alarm.comparison_operator().phrase()
        )
    });
    let description = format!(
        "Vigil alarm {:?}: {what}{} over {period} s {} {threshold} for {m} of the last {n} period(s)",
        alarm.name(),
        dimensions_text(dimensions),
        alarm.comparison_operator().phrase(),
    );
    let description = if divisor == 1.0 {
        description
    } else {
        format!("{description} (/metrics has seconds: {prom_threshold})")
    };
    let summary = template_text(&summary);
    let description = format!("{}; value {{{{ $value }}}}", template_text(&description));
    Ok(Rule {
        alert: alert_name(alarm.name()),
        expr,
        for_s,
        labels: vec![
            ("vigil_alarm", alarm.name().to_string()),
            ("vigil_namespace", namespace.clone()),
            ("vigil_metric", metric_name.clone()),
        ],
        summary,
        description,
    })
}

/// The PromQL of `statistic` of `family`'s series carrying `dimensions`,
/// per window of `range` (`60s`, or a Grafana variable such as
/// `$__range`), in the units `/metrics` shows (seconds for a millisecond
/// distribution). The table in this module's documentation says what maps;
/// `Err` is why a statistic does not, lowercase.
pub fn statistic_query(
    family: &Family,
    statistic: &Statistic,
    dimensions: &Dimensions,
    range: &str,
) -> Result<String, String> {
    let prom = &family.prom;
    let window = format!("{}[{range}]", matchers(dimensions));
    Ok(match (family.kind, statistic) {
        (FamilyKind::Counter, Statistic::Sum) => format!("sum(increase({prom}_total{window}))"),
        (FamilyKind::Counter, s) => {
            return Err(format!(
                "{s} of a counter: prometheus keeps its total, so only Sum maps"
            ));
        }
        (FamilyKind::Histogram, Statistic::SampleCount) => {
            format!("sum(increase({prom}_count{window}))")
        }
        (FamilyKind::Histogram, Statistic::Sum) => format!("sum(increase({prom}_sum{window}))"),
        (FamilyKind::Histogram, Statistic::Average) => {
            format!("sum(rate({prom}_sum{window})) / sum(rate({prom}_count{window}))")
        }
        (FamilyKind::Histogram, Statistic::Maximum) => quantile(prom, &window, 1.0),
        (FamilyKind::Histogram, Statistic::Percentile(p)) => quantile(prom, &window, *p / 100.0),
        (FamilyKind::Histogram, Statistic::Minimum) => {
            return Err("Minimum: prometheus histograms keep no minimum".to_string());
        }
        (FamilyKind::Histogram, s) => {
            return Err(format!("{s}: prometheus histograms cannot compute it"));
        }
    })
}

fn quantile(prom: &str, window: &str, q: f64) -> String {
    format!(
        "histogram_quantile({}, sum by (le) (rate({prom}_bucket{window})))",
        fraction(q)
    )
}

fn operator(op: ComparisonOperator) -> &'static str {
    match op {
        ComparisonOperator::GreaterThanOrEqualToThreshold => ">=",
        ComparisonOperator::GreaterThanThreshold => ">",
        ComparisonOperator::LessThanThreshold => "<",
        ComparisonOperator::LessThanOrEqualToThreshold => "<=",
    }
}

/// `{name="value",..}` with the names as `/metrics` writes them, or nothing.
fn matchers(dimensions: &Dimensions) -> String {
    if dimensions.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = dimensions
        .iter()
        .map(|(name, value)| format!("{}=\"{}\"", label_name(name), promql_escape(value)))
        .collect();
    format!("{{{}}}", inner.join(","))
}

fn dimensions_text(dimensions: &Dimensions) -> String {
    if dimensions.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = dimensions.iter().map(|(k, v)| format!("{k}={v}")).collect();
    format!(" ({})", inner.join(", "))
}

/// A PromQL double-quoted string's content.
fn promql_escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c => out.push(c),
        }
    }
    out
}

/// The alarm name as an alert name: `[A-Za-z0-9_]`, not starting with a
/// digit (the original stays in the `vigil_alarm` label).
fn alert_name(name: &str) -> String {
    let mut out: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert(0, '_');
    }
    out
}

/// A finite number as PromQL reads it (Rust writes no exponent).
fn number(v: f64) -> String {
    format!("{v}")
}

/// A quantile in `[0, 1]`: p99.9 / 100 is 0.9990000000000001 in binary,
/// and 12 digits are plenty.
fn fraction(q: f64) -> String {
    number((q * 1e12).round() / 1e12)
}

/// User text inside an annotation, which Prometheus expands as a Go
/// template: a literal `{{` becomes an action printing `{{`.
fn template_text(s: &str) -> String {
    s.replace("{{", "{{ \"{{\" }}")
}

/// A YAML double-quoted scalar.
fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() || c == '\u{feff}' || c == '\u{2028}' || c == '\u{2029}' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests;
