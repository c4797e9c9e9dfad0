//! One metric alarm's evaluation at one tick: the data source, the period
//! slots, the decision and its reason text and data in the cloud's style.

use serde_json::{Value, json};

use super::config::{LowSampleCount, MetricAlarm, min_samples_for_percentile};
use super::evaluate::{Basis, Decision, Slot, TreatMissingData, decide, range_len};
use super::history::{format_reason_data_time, format_reason_text_time};
use crate::notify::AlarmState;

/// One period's value of the alarm's metric (or of its returned expression).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// Start of the period, Unix milliseconds.
    pub timestamp_ms: i64,
    /// The statistic's value.
    pub value: f64,
    /// Samples behind the value, when known (for the low-sample percentile rule).
    pub sample_count: Option<f64>,
}

/// Where alarms get their data; the server implements it over the store and
/// metric math. Implementations evaluate `metrics` expressions themselves.
pub trait AlarmData {
    /// The alarm's per-period values for periods starting in
    /// `[start_ms, end_ms)`, each period `period_s` long. An error leaves the
    /// alarm's state unchanged.
    fn fetch(
        &self,
        alarm: &MetricAlarm,
        start_ms: i64,
        end_ms: i64,
        period_s: u32,
    ) -> Result<Vec<Point>, String>;
}

/// How often an alarm with this period is evaluated: every 10 s below one
/// minute, every minute otherwise.
pub fn cadence_ms(period_s: u32) -> i64 {
    if period_s < 60 { 10_000 } else { 60_000 }
}

/// A slot's point after classification.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct SlotPoint {
    pub timestamp_ms: i64,
    pub value: f64,
    pub sample_count: Option<f64>,
    pub breaching: bool,
}

/// A computed evaluation of one metric alarm.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Evaluation {
    /// `None`: keep the current state.
    pub state: Option<AlarmState>,
    pub decision: Decision,
    pub slots: Vec<Option<SlotPoint>>,
    pub start_ms: i64,
    pub query_ms: i64,
}

/// Fetches the last R completed periods before `now_ms` and decides.
pub(crate) fn evaluate(
    alarm: &MetricAlarm,
    data: &dyn AlarmData,
    now_ms: i64,
) -> Result<Evaluation, String> {
    let period_ms = i64::from(alarm.period_s()) * 1000;
    let n = alarm.evaluation_periods() as usize;
    let r = range_len(n);
    // Only completed periods count: the range ends where the current one starts.
    let end_ms = now_ms.div_euclid(period_ms) * period_ms;
    let start_ms = end_ms - period_ms * r as i64;
    let points = data.fetch(alarm, start_ms, end_ms, alarm.period_s())?;
    let low_sample_min = match (alarm.low_sample_count(), alarm.percentile()) {
        (LowSampleCount::Ignore, Some(p)) => Some(min_samples_for_percentile(p)),
        _ => None,
    };
    let mut slots: Vec<Option<SlotPoint>> = vec![None; r];
    let mut dropped = 0usize;
    for pt in points {
        if pt.timestamp_ms < start_ms || pt.timestamp_ms >= end_ms || !pt.value.is_finite() {
            continue;
        }
        let idx = ((pt.timestamp_ms - start_ms) / period_ms) as usize;
        if let (Some(min), Some(count)) = (low_sample_min, pt.sample_count)
            && count < min
        {
            dropped += 1;
            continue;
        }
        // A later point for the same period replaces an earlier one.
        slots[idx] = Some(SlotPoint {
            timestamp_ms: start_ms + idx as i64 * period_ms,
            value: pt.value,
            sample_count: pt.sample_count,
            breaching: alarm
                .comparison_operator()
                .breaches(pt.value, alarm.threshold()),
        });
    }
    let classified: Vec<Slot> = slots.iter().map(|s| s.map(|p| p.breaching)).collect();
    let decision = decide(
        &classified,
        n,
        alarm.datapoints_to_alarm() as usize,
        alarm.treat_missing_data(),
    );
    let real = slots.iter().filter(|s| s.is_some()).count();
    let state = if dropped > 0 && real == 0 {
        // Every point in range had too few samples: the state does not change.
        None
    } else {
        match decision.outcome {
            super::evaluate::Outcome::State(s) => Some(s),
            super::evaluate::Outcome::Keep => None,
        }
    };
    Ok(Evaluation {
        state,
        decision,
        slots,
        start_ms,
        query_ms: now_ms,
    })
}

/// `5.0`, `2.5`, `1.0E20`-free: integers get one decimal, as the cloud prints doubles.
pub(crate) fn fmt_num(v: f64) -> String {
    if v.is_finite() && v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.1}")
    } else {
        format!("{v}")
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

fn evaluated(basis: &Basis) -> &[usize] {
    match basis {
        Basis::RealPoints { evaluated }
        | Basis::Filled { evaluated, .. }
        | Basis::Breaching { evaluated }
        | Basis::Premature { evaluated }
        | Basis::SomeOk { evaluated }
        | Basis::Undecided { evaluated } => evaluated,
    }
}

/// The reason text of a transition from `old` to `new`.
pub(crate) fn reason_text(
    alarm: &MetricAlarm,
    ev: &Evaluation,
    old: AlarmState,
    new: AlarmState,
) -> String {
    let n = alarm.evaluation_periods() as usize;
    let m = alarm.datapoints_to_alarm() as usize;
    let idx = evaluated(&ev.decision.basis);
    if new == AlarmState::InsufficientData {
        let unknown = ev.slots.iter().filter(|s| s.is_none()).count();
        return format!(
            "Insufficient Data: {} unknown.",
            plural(unknown, "datapoint was", "datapoints were")
        );
    }
    let alarming = new == AlarmState::Alarm;
    let counted: Vec<SlotPoint> = idx
        .iter()
        .rev()
        .filter_map(|&i| ev.slots[i])
        .filter(|p| p.breaching == alarming)
        .collect();
    let synthetic = match ev.decision.basis {
        Basis::Filled { synthetic, .. } => synthetic,
        _ => 0,
    };
    let filled_as = match alarm.treat_missing_data() {
        TreatMissingData::Breaching => "Breaching",
        _ => "NonBreaching",
    };
    let synthetic_counts =
        synthetic > 0 && (alarm.treat_missing_data() == TreatMissingData::Breaching) == alarming;
    let minimum = if alarming { m } else { n - m + 1 };
    let transition = format!(
        "(minimum {} for {} -> {} transition)",
        plural(minimum, "datapoint", "datapoints"),
        old.as_str(),
        new.as_str()
    );
    let treated = format!(
        "{} treated as [{filled_as}]",
        plural(
            synthetic,
            "missing datapoint was",
            "missing datapoints were"
        )
    );
    if counted.is_empty() && synthetic_counts {
        return format!(
            "Threshold Crossed: no datapoints were received for {} and {treated}.",
            plural(synthetic, "period", "periods")
        );
    }
    let list: Vec<String> = counted
        .iter()
        .map(|p| {
            format!(
                "{} ({})",
                fmt_num(p.value),
                format_reason_text_time(p.timestamp_ms)
            )
        })
        .collect();
    let k = counted.len() + if synthetic_counts { synthetic } else { 0 };
    let verb = if k == 1 { "was" } else { "were" };
    let not = if alarming { "" } else { "not " };
    let and_treated = if synthetic_counts {
        format!(" and {treated}")
    } else {
        String::new()
    };
    format!(
        "Threshold Crossed: {k} out of the last {} [{}] {verb} {not}{} the threshold ({}){and_treated} {transition}.",
        plural(n, "datapoint", "datapoints"),
        list.join(", "),
        alarm.comparison_operator().phrase(),
        fmt_num(alarm.threshold()),
    )
}

/// The reason data (JSON) of a computed state, in the cloud's shape.
pub(crate) fn reason_data(alarm: &MetricAlarm, ev: &Evaluation) -> Value {
    let recent: Vec<f64> = ev.slots.iter().flatten().map(|p| p.value).collect();
    let evaluated: Vec<Value> = evaluated(&ev.decision.basis)
        .iter()
        .rev()
        .filter_map(|&i| ev.slots[i])
        .map(|p| {
            let mut v = json!({
                "timestamp": format_reason_data_time(p.timestamp_ms),
                "value": p.value,
            });
            if let Some(c) = p.sample_count {
                v["sampleCount"] = json!(c);
            }
            v
        })
        .collect();
    let mut data = json!({
        "version": "1.0",
        "queryDate": format_reason_data_time(ev.query_ms),
        "startDate": format_reason_data_time(ev.start_ms),
        "period": alarm.period_s(),
        "recentDatapoints": recent,
        "threshold": alarm.threshold(),
        "evaluatedDatapoints": evaluated,
    });
    if let Some(s) = alarm.statistic_name() {
        data["statistic"] = json!(s);
    }
    if let Some(u) = alarm.spec().unit {
        data["unit"] = json!(u.as_str());
    }
    data
}
