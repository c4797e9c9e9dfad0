//! Alarm configuration as clients write it (JSON), and its validation
//! (SEMANTICS.md §2.1) into configurations that cannot be invalid. Every
//! problem is reported at once, each naming its field.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

use super::checks::{
    check_actions, check_description, check_dimensions, check_name, required_text, valid_query_id,
};
pub use super::checks::{valid_email, valid_http_url};
pub use super::composite_config::{
    CompositeAlarm, CompositeAlarmSpec, DEFAULT_SUPPRESSOR_PERIOD_S,
};
use super::evaluate::TreatMissingData;
use crate::math::MetricDataQuery;
use crate::model::{Dimensions, Unit};
use crate::notify::{Action, AlarmState};
use crate::statistic::Statistic;

/// Most actions per target state.
pub const MAX_ACTIONS: usize = 5;
/// Longest alarm name, in characters.
pub const MAX_NAME_CHARS: usize = 255;
/// Longest description, in characters.
pub const MAX_DESCRIPTION_CHARS: usize = 1024;
/// Most entries in a `metrics` list.
pub const MAX_METRICS: usize = 10;
const DAY_S: u64 = 86_400;
const BASIC_STATISTICS: [&str; 5] = ["SampleCount", "Sum", "Minimum", "Maximum", "Average"];

/// One validation problem: the field (`period`, `metrics[1].id`) and what is wrong.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// The field, as written in the configuration.
    pub field: String,
    /// What is wrong, lowercase.
    pub message: String,
}

/// All the problems of one configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    /// At least one.
    pub problems: Vec<Problem>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.problems.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{}: {}", p.field, p.message)?;
        }
        Ok(())
    }
}

#[derive(Default)]
pub(crate) struct Problems(pub(crate) Vec<Problem>);

impl Problems {
    pub(crate) fn add(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(Problem {
            field: field.into(),
            message: message.into(),
        });
    }
    pub(crate) fn finish<T>(self, ok: impl FnOnce() -> T) -> Result<T, ConfigError> {
        if self.0.is_empty() {
            Ok(ok())
        } else {
            Err(ConfigError { problems: self.0 })
        }
    }
}

/// The comparison of a metric alarm's value with its threshold.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum ComparisonOperator {
    /// value ≥ threshold breaches.
    GreaterThanOrEqualToThreshold,
    /// value > threshold breaches.
    GreaterThanThreshold,
    /// value < threshold breaches.
    LessThanThreshold,
    /// value ≤ threshold breaches.
    LessThanOrEqualToThreshold,
}

impl ComparisonOperator {
    const ALL: [ComparisonOperator; 4] = [
        ComparisonOperator::GreaterThanOrEqualToThreshold,
        ComparisonOperator::GreaterThanThreshold,
        ComparisonOperator::LessThanThreshold,
        ComparisonOperator::LessThanOrEqualToThreshold,
    ];

    /// The name as written in a configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            ComparisonOperator::GreaterThanOrEqualToThreshold => "GreaterThanOrEqualToThreshold",
            ComparisonOperator::GreaterThanThreshold => "GreaterThanThreshold",
            ComparisonOperator::LessThanThreshold => "LessThanThreshold",
            ComparisonOperator::LessThanOrEqualToThreshold => "LessThanOrEqualToThreshold",
        }
    }

    /// The words of a reason text: "greater than or equal to".
    pub fn phrase(self) -> &'static str {
        match self {
            ComparisonOperator::GreaterThanOrEqualToThreshold => "greater than or equal to",
            ComparisonOperator::GreaterThanThreshold => "greater than",
            ComparisonOperator::LessThanThreshold => "less than",
            ComparisonOperator::LessThanOrEqualToThreshold => "less than or equal to",
        }
    }

    /// Whether `value` breaches `threshold`.
    pub fn breaches(self, value: f64, threshold: f64) -> bool {
        match self {
            ComparisonOperator::GreaterThanOrEqualToThreshold => value >= threshold,
            ComparisonOperator::GreaterThanThreshold => value > threshold,
            ComparisonOperator::LessThanThreshold => value < threshold,
            ComparisonOperator::LessThanOrEqualToThreshold => value <= threshold,
        }
    }
}

/// `evaluate_low_sample_count_percentile`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LowSampleCount {
    /// Every point is evaluated (the default).
    #[default]
    Evaluate,
    /// Points with too few samples for their percentile are treated as missing.
    Ignore,
}

pub(crate) fn default_true() -> bool {
    true
}

/// A metric alarm as written by a client; [`MetricAlarmSpec::validate`]
/// turns it into a [`MetricAlarm`].
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricAlarmSpec {
    /// Unique among all alarms.
    pub name: String,
    /// Free text, ≤ 1024 characters.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The metric's namespace (single-metric alarms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
    /// The metric's name (single-metric alarms).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metric_name: Option<String>,
    /// The metric's exact dimension set.
    #[serde(default, skip_serializing_if = "Dimensions::is_empty")]
    pub dimensions: Dimensions,
    /// `SampleCount`, `Sum`, `Minimum`, `Maximum` or `Average`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub statistic: Option<String>,
    /// A percentile or other extended statistic (`p99`, `tm90`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extended_statistic: Option<String>,
    /// Only data sent with this unit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<Unit>,
    /// Seconds: 10, 20, 30 or a multiple of 60 (from the metric stats when `metrics` is set).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub period: Option<u32>,
    /// N.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluation_periods: Option<u32>,
    /// M (default N).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datapoints_to_alarm: Option<u32>,
    /// The threshold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// One of the four comparison operators.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comparison_operator: Option<String>,
    /// `missing` (default), `notBreaching`, `breaching` or `ignore`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub treat_missing_data: Option<String>,
    /// `evaluate` (default) or `ignore`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evaluate_low_sample_count_percentile: Option<String>,
    /// Metric math instead of the single metric; exactly one entry returns data.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub metrics: Vec<MetricDataQuery>,
    /// Run on a transition to ALARM.
    #[serde(default)]
    pub alarm_actions: Vec<Action>,
    /// Run on a transition to OK.
    #[serde(default)]
    pub ok_actions: Vec<Action>,
    /// Run on a transition to INSUFFICIENT_DATA.
    #[serde(default)]
    pub insufficient_data_actions: Vec<Action>,
    /// `false` suppresses every action (default `true`).
    #[serde(default = "default_true")]
    pub actions_enabled: bool,
}

/// What a metric alarm evaluates.
#[derive(Debug, Clone, PartialEq)]
pub enum MetricSource {
    /// One metric and a statistic.
    Single {
        /// Namespace.
        namespace: String,
        /// Metric name.
        metric_name: String,
        /// Exact dimension set.
        dimensions: Dimensions,
        /// Statistic or extended statistic.
        statistic: Statistic,
        /// Unit filter.
        unit: Option<Unit>,
    },
    /// Metric math; the data source evaluates the entry with `return_data`.
    Math(Vec<MetricDataQuery>),
}

/// A validated metric alarm.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "MetricAlarmSpec", into = "MetricAlarmSpec")]
pub struct MetricAlarm {
    spec: MetricAlarmSpec,
    source: MetricSource,
    period_s: u32,
    evaluation_periods: u32,
    datapoints_to_alarm: u32,
    threshold: f64,
    comparison: ComparisonOperator,
    treat_missing_data: TreatMissingData,
    low_sample_count: LowSampleCount,
    percentile: Option<f64>,
}

impl TryFrom<MetricAlarmSpec> for MetricAlarm {
    type Error = ConfigError;
    fn try_from(spec: MetricAlarmSpec) -> Result<Self, ConfigError> {
        spec.validate()
    }
}

impl From<MetricAlarm> for MetricAlarmSpec {
    fn from(alarm: MetricAlarm) -> Self {
        alarm.spec
    }
}

impl MetricAlarm {
    /// The configuration as written (with `datapoints_to_alarm` filled in).
    pub fn spec(&self) -> &MetricAlarmSpec {
        &self.spec
    }
    /// The alarm's name.
    pub fn name(&self) -> &str {
        &self.spec.name
    }
    /// What the alarm evaluates.
    pub fn source(&self) -> &MetricSource {
        &self.source
    }
    /// Period in seconds.
    pub fn period_s(&self) -> u32 {
        self.period_s
    }
    /// N.
    pub fn evaluation_periods(&self) -> u32 {
        self.evaluation_periods
    }
    /// M.
    pub fn datapoints_to_alarm(&self) -> u32 {
        self.datapoints_to_alarm
    }
    /// The threshold.
    pub fn threshold(&self) -> f64 {
        self.threshold
    }
    /// The comparison.
    pub fn comparison_operator(&self) -> ComparisonOperator {
        self.comparison
    }
    /// Treatment of missing data.
    pub fn treat_missing_data(&self) -> TreatMissingData {
        self.treat_missing_data
    }
    /// Treatment of low-sample percentile points.
    pub fn low_sample_count(&self) -> LowSampleCount {
        self.low_sample_count
    }
    /// The percentile evaluated (`99.0` for `p99`), when the statistic is one.
    pub fn percentile(&self) -> Option<f64> {
        self.percentile
    }
    /// The statistic's name for reason data (`Average`, `p99`), single-metric alarms only.
    pub fn statistic_name(&self) -> Option<String> {
        match &self.source {
            MetricSource::Single { statistic, .. } => Some(statistic.to_string()),
            MetricSource::Math(_) => None,
        }
    }
    /// The actions for a target state.
    pub fn actions(&self, state: AlarmState) -> &[Action] {
        actions_for(
            state,
            &self.spec.alarm_actions,
            &self.spec.ok_actions,
            &self.spec.insufficient_data_actions,
        )
    }
    /// Whether actions run.
    pub fn actions_enabled(&self) -> bool {
        self.spec.actions_enabled
    }
}

pub(crate) fn actions_for<'a>(
    state: AlarmState,
    alarm: &'a [Action],
    ok: &'a [Action],
    insufficient: &'a [Action],
) -> &'a [Action] {
    match state {
        AlarmState::Alarm => alarm,
        AlarmState::Ok => ok,
        AlarmState::InsufficientData => insufficient,
    }
}

/// Whether `period_s` is an alarm period: 10, 20, 30 or a multiple of 60.
pub fn valid_period(period_s: u32) -> bool {
    matches!(period_s, 10 | 20 | 30) || (period_s > 0 && period_s.is_multiple_of(60))
}

/// The fewest samples a percentile point needs not to be "low sample"
/// (SEMANTICS.md §2.1): 10/(1−p) for p ≥ 0.5, 10/p below; `p` in percent.
pub fn min_samples_for_percentile(percentile: f64) -> f64 {
    let p = percentile / 100.0;
    let raw = if p >= 0.5 { 10.0 / (1.0 - p) } else { 10.0 / p };
    // 10 / (1 − 0.99) is 1000.0000000000009 in binary; p99 means 1000.
    (raw * 1e6).round() / 1e6
}

impl MetricAlarmSpec {
    /// Validates into a [`MetricAlarm`], reporting every problem.
    pub fn validate(mut self) -> Result<MetricAlarm, ConfigError> {
        let mut p = Problems::default();
        check_name(&mut p, "name", &self.name);
        check_description(&mut p, self.description.as_deref());
        check_actions(&mut p, "alarm_actions", &self.alarm_actions);
        check_actions(&mut p, "ok_actions", &self.ok_actions);
        check_actions(
            &mut p,
            "insufficient_data_actions",
            &self.insufficient_data_actions,
        );

        let mut percentile = None;
        let source = if self.metrics.is_empty() {
            self.single_source(&mut p, &mut percentile)
        } else {
            self.math_source(&mut p, &mut percentile)
        };

        let period = source.as_ref().map(|(_, per)| *per).or(self.period);
        if let Some(period) = self.period
            && self.metrics.is_empty()
            && !valid_period(period)
        {
            p.add(
                "period",
                format!("must be 10, 20, 30 or a multiple of 60, got {period}"),
            );
        }
        let n = match self.evaluation_periods {
            None => {
                p.add("evaluation_periods", "is required");
                1
            }
            Some(0) => {
                p.add("evaluation_periods", "must be at least 1, got 0");
                1
            }
            Some(n) => n,
        };
        let m = self.datapoints_to_alarm.unwrap_or(n);
        if m == 0 || m > n {
            p.add(
                "datapoints_to_alarm",
                format!("must be between 1 and evaluation_periods ({n}), got {m}"),
            );
        }
        if let Some(period) = period {
            let limit = if period >= 3600 { 7 * DAY_S } else { DAY_S };
            let span = u64::from(period) * u64::from(n);
            if span > limit {
                p.add(
                    "evaluation_periods",
                    format!(
                        "period × evaluation_periods must be at most {limit} s, got {period} × {n} = {span} s"
                    ),
                );
            }
        }
        let threshold = match self.threshold {
            None => {
                p.add("threshold", "is required");
                0.0
            }
            Some(t) if !t.is_finite() => {
                p.add("threshold", "must be a finite number");
                0.0
            }
            Some(t) => t,
        };
        let comparison = match self.comparison_operator.as_deref() {
            None => {
                p.add("comparison_operator", "is required");
                None
            }
            Some(s) => match ComparisonOperator::ALL
                .into_iter()
                .find(|c| c.as_str() == s)
            {
                Some(c) => Some(c),
                None => {
                    p.add(
                        "comparison_operator",
                        format!(
                            "must be one of GreaterThanOrEqualToThreshold, GreaterThanThreshold, LessThanThreshold, LessThanOrEqualToThreshold, got `{s}`"
                        ),
                    );
                    None
                }
            },
        };
        let treat = match self.treat_missing_data.as_deref() {
            None => TreatMissingData::Missing,
            Some(s) => match [
                TreatMissingData::Missing,
                TreatMissingData::NotBreaching,
                TreatMissingData::Breaching,
                TreatMissingData::Ignore,
            ]
            .into_iter()
            .find(|t| t.as_str() == s)
            {
                Some(t) => t,
                None => {
                    p.add(
                        "treat_missing_data",
                        format!(
                            "must be one of missing, notBreaching, breaching, ignore, got `{s}`"
                        ),
                    );
                    TreatMissingData::Missing
                }
            },
        };
        let low = match self.evaluate_low_sample_count_percentile.as_deref() {
            None | Some("evaluate") => LowSampleCount::Evaluate,
            Some("ignore") => LowSampleCount::Ignore,
            Some(s) => {
                p.add(
                    "evaluate_low_sample_count_percentile",
                    format!("must be evaluate or ignore, got `{s}`"),
                );
                LowSampleCount::Evaluate
            }
        };
        self.datapoints_to_alarm = Some(m);
        match (source, comparison) {
            (Some((source, period_s)), Some(comparison)) if p.0.is_empty() => {
                p.finish(|| MetricAlarm {
                    spec: self,
                    source,
                    period_s,
                    evaluation_periods: n,
                    datapoints_to_alarm: m,
                    threshold,
                    comparison,
                    treat_missing_data: treat,
                    low_sample_count: low,
                    percentile,
                })
            }
            _ => Err(ConfigError { problems: p.0 }),
        }
    }

    fn single_source(
        &self,
        p: &mut Problems,
        percentile: &mut Option<f64>,
    ) -> Option<(MetricSource, u32)> {
        let namespace = required_text(p, "namespace", self.namespace.as_deref());
        let metric_name = required_text(p, "metric_name", self.metric_name.as_deref());
        check_dimensions(p, "dimensions", &self.dimensions);
        if self.period.is_none() {
            p.add("period", "is required");
        }
        let statistic = match (&self.statistic, &self.extended_statistic) {
            (Some(_), Some(_)) => {
                p.add(
                    "extended_statistic",
                    "statistic and extended_statistic are exclusive",
                );
                None
            }
            (None, None) => {
                p.add("statistic", "statistic or extended_statistic is required");
                None
            }
            (Some(s), None) => {
                if BASIC_STATISTICS.contains(&s.as_str()) {
                    s.parse::<Statistic>().ok()
                } else {
                    p.add(
                        "statistic",
                        format!(
                            "must be one of SampleCount, Sum, Minimum, Maximum, Average, got `{s}` (extended statistics go in extended_statistic)"
                        ),
                    );
                    None
                }
            }
            (None, Some(s)) if BASIC_STATISTICS.contains(&s.as_str()) => {
                p.add(
                    "extended_statistic",
                    format!("`{s}` is a basic statistic: use statistic"),
                );
                None
            }
            (None, Some(s)) => match s.parse::<Statistic>() {
                Ok(st) => Some(st),
                Err(e) => {
                    p.add("extended_statistic", e);
                    None
                }
            },
        };
        *percentile = statistic.and_then(|s| s.percentile());
        let source = MetricSource::Single {
            namespace: namespace?,
            metric_name: metric_name?,
            dimensions: self.dimensions.clone(),
            statistic: statistic?,
            unit: self.unit,
        };
        Some((source, self.period?))
    }

    fn math_source(
        &self,
        p: &mut Problems,
        percentile: &mut Option<f64>,
    ) -> Option<(MetricSource, u32)> {
        for (field, set) in [
            ("namespace", self.namespace.is_some()),
            ("metric_name", self.metric_name.is_some()),
            ("dimensions", !self.dimensions.is_empty()),
            ("statistic", self.statistic.is_some()),
            ("extended_statistic", self.extended_statistic.is_some()),
            ("unit", self.unit.is_some()),
            ("period", self.period.is_some()),
        ] {
            if set {
                p.add(
                    field,
                    "not allowed with metrics (it belongs in each metric_stat)",
                );
            }
        }
        if self.metrics.len() > MAX_METRICS {
            p.add(
                "metrics",
                format!("at most {MAX_METRICS} entries, got {}", self.metrics.len()),
            );
        }
        let returning: Vec<usize> = (0..self.metrics.len())
            .filter(|&i| self.metrics[i].return_data)
            .collect();
        if returning.len() != 1 {
            p.add(
                "metrics",
                format!(
                    "exactly one entry must have return_data true, got {}",
                    returning.len()
                ),
            );
        }
        let mut ids = BTreeSet::new();
        let mut period = None;
        for (i, q) in self.metrics.iter().enumerate() {
            let at = format!("metrics[{i}]");
            if !valid_query_id(&q.id) {
                p.add(
                    format!("{at}.id"),
                    format!(
                        "must start with a lowercase letter and hold only letters, digits and _, got `{}`",
                        q.id
                    ),
                );
            } else if !ids.insert(q.id.as_str()) {
                p.add(format!("{at}.id"), format!("duplicate id `{}`", q.id));
            }
            match (&q.expression, &q.metric_stat) {
                (Some(_), Some(_)) | (None, None) => p.add(
                    at.clone(),
                    "exactly one of expression and metric_stat is required",
                ),
                (Some(e), None) if e.trim().is_empty() => {
                    p.add(format!("{at}.expression"), "must not be empty")
                }
                (Some(_), None) => {}
                (None, Some(ms)) => {
                    required_text(
                        p,
                        &format!("{at}.metric_stat.namespace"),
                        Some(&ms.namespace),
                    );
                    required_text(
                        p,
                        &format!("{at}.metric_stat.metric_name"),
                        Some(&ms.metric_name),
                    );
                    check_dimensions(p, &format!("{at}.metric_stat.dimensions"), &ms.dimensions);
                    match ms.stat.parse::<Statistic>() {
                        Ok(st) if q.return_data => *percentile = st.percentile(),
                        Ok(_) => {}
                        Err(e) => p.add(format!("{at}.metric_stat.stat"), e),
                    }
                    if !valid_period(ms.period) {
                        p.add(
                            format!("{at}.metric_stat.period"),
                            format!("must be 10, 20, 30 or a multiple of 60, got {}", ms.period),
                        );
                    } else if let Some(first) = period
                        && first != ms.period
                    {
                        p.add(
                            format!("{at}.metric_stat.period"),
                            format!(
                                "every metric_stat of an alarm needs the same period, got {} and {first}",
                                ms.period
                            ),
                        );
                    } else {
                        period = Some(ms.period);
                    }
                }
            }
        }
        if period.is_none() && !self.metrics.is_empty() && p.0.is_empty() {
            p.add(
                "metrics",
                "at least one entry needs a metric_stat (the alarm's period comes from it)",
            );
        }
        // The period travels in the metric stats; the spec keeps none.
        period.map(|per| (MetricSource::Math(self.metrics.clone()), per))
    }
}
