//! Evaluation against a trace summary: comparisons on borrowed fields only,
//! so matching never allocates.

use super::{AnnotationTest, Expr, FlagKey, NumberKey, NumberOp, Predicate, TextKey, TextOp};
use crate::model::{AnnotationValue, TraceSummary};

const US_PER_S: f64 = 1e6;

impl Expr {
    /// Whether the trace satisfies this expression.
    pub fn matches(&self, trace: &TraceSummary) -> bool {
        match self {
            Expr::And(items) => items.iter().all(|e| e.matches(trace)),
            Expr::Or(items) => items.iter().any(|e| e.matches(trace)),
            Expr::Not(inner) => !inner.matches(trace),
            Expr::Pred(pred) => pred.matches(trace),
        }
    }
}

impl Predicate {
    /// Whether the trace satisfies this comparison; a missing field
    /// satisfies none.
    pub fn matches(&self, trace: &TraceSummary) -> bool {
        match self {
            Predicate::Service(name) => trace.services.iter().any(|s| s == name),
            Predicate::Number(key, op, value) => {
                number_of(*key, trace).is_some_and(|v| compare_number(*op, v, *value))
            }
            Predicate::Text(key, op, value) => {
                text_of(*key, trace).is_some_and(|v| compare_text(*op, v, value))
            }
            Predicate::Flag { key, equal, value } => (flag_of(*key, trace) == *value) == *equal,
            Predicate::Annotation(key, test) => trace
                .annotations
                .iter()
                .filter(|(k, _)| k == key)
                .any(|(_, v)| annotation_matches(test, v)),
        }
    }
}

fn number_of(key: NumberKey, trace: &TraceSummary) -> Option<f64> {
    match key {
        NumberKey::ResponseTime => Some(trace.response_time_us as f64 / US_PER_S),
        NumberKey::Duration => Some(trace.duration_us() as f64 / US_PER_S),
        NumberKey::HttpStatus => trace.http.as_ref()?.status.map(f64::from),
    }
}

fn text_of(key: TextKey, trace: &TraceSummary) -> Option<&str> {
    let http = trace.http.as_ref()?;
    match key {
        TextKey::Url => http.url.as_deref(),
        TextKey::Method => http.method.as_deref(),
        TextKey::UserAgent => http.user_agent.as_deref(),
        TextKey::ClientIp => http.client_ip.as_deref(),
    }
}

fn flag_of(key: FlagKey, trace: &TraceSummary) -> bool {
    match key {
        FlagKey::Fault => trace.fault,
        FlagKey::Error => trace.error,
        FlagKey::Throttle => trace.throttle,
        FlagKey::Ok => !(trace.fault || trace.error || trace.throttle),
    }
}

fn compare_number(op: NumberOp, left: f64, right: f64) -> bool {
    match op {
        NumberOp::Eq => left == right,
        NumberOp::Ne => left != right,
        NumberOp::Lt => left < right,
        NumberOp::Le => left <= right,
        NumberOp::Gt => left > right,
        NumberOp::Ge => left >= right,
    }
}

fn compare_text(op: TextOp, left: &str, right: &str) -> bool {
    match op {
        TextOp::Eq => left == right,
        TextOp::Ne => left != right,
        TextOp::Contains => left.contains(right),
        TextOp::BeginsWith => left.starts_with(right),
        TextOp::EndsWith => left.ends_with(right),
    }
}

/// A comparison of another type than the annotation's value is false.
fn annotation_matches(test: &AnnotationTest, value: &AnnotationValue) -> bool {
    match (test, value) {
        (AnnotationTest::Number(op, right), AnnotationValue::Number(left)) => {
            compare_number(*op, *left, *right)
        }
        (AnnotationTest::Text(op, right), AnnotationValue::String(left)) => {
            compare_text(*op, left, right)
        }
        (AnnotationTest::Bool { equal, value }, AnnotationValue::Bool(left)) => {
            (left == value) == *equal
        }
        _ => false,
    }
}
