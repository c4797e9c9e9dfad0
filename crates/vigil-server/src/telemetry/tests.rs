#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use vigil_metrics::registry::Registry;

use super::events::*;
use super::*;

fn sum_of(
    drained: &[(vigil_metrics::SeriesKey, vigil_metrics::Aggregate)],
    ns: &str,
    name: &str,
) -> Option<f64> {
    drained
        .iter()
        .filter(|(k, _)| k.namespace == ns && k.name == name)
        .map(|(_, a)| a.sum)
        .reduce(|a, b| a + b)
}

#[test]
fn a_finished_scoring_request_feeds_the_gateway_and_the_pipeline() {
    let t = Telemetry::new(Arc::new(Registry::new()));
    for status in [200, 200, 400, 503] {
        t.emit(RequestFinished {
            route: Some("/v1/models/{name}/score"),
            status,
            latency: Duration::from_millis(4),
            integration: Some(Duration::from_millis(3)),
            trace: None,
        });
    }
    t.emit(RequestFinished {
        route: Some("/v2/health/live"),
        status: 200,
        latency: Duration::from_micros(50),
        integration: None,
        trace: None,
    });
    let drained = t.registry().drain();
    assert_eq!(sum_of(&drained, GATEWAY, "Count"), Some(5.0));
    assert_eq!(sum_of(&drained, GATEWAY, "4XXError"), Some(1.0));
    assert_eq!(sum_of(&drained, GATEWAY, "5XXError"), Some(1.0));
    assert_eq!(sum_of(&drained, PIPELINE, "SuccessCount"), Some(2.0));
    assert_eq!(sum_of(&drained, PIPELINE, "ErrorCount"), Some(2.0));
    let latency = drained
        .iter()
        .find(|(k, _)| k.namespace == PIPELINE && k.name == "LatencyMs")
        .map(|(_, a)| a.clone())
        .unwrap();
    assert_eq!(latency.count, 4.0);
    assert!((latency.max - 4.0).abs() < 1e-9);
}

#[test]
fn an_unknown_route_counts_as_unmatched() {
    let t = Telemetry::new(Arc::new(Registry::new()));
    t.emit(RequestFinished {
        route: None,
        status: 404,
        latency: Duration::from_micros(10),
        integration: None,
        trace: None,
    });
    let drained = t.registry().drain();
    let unmatched = drained
        .iter()
        .find(|(k, _)| k.name == "4XXError")
        .map(|(k, _)| k.dimensions.get(DIM_ROUTE).cloned())
        .unwrap();
    assert_eq!(unmatched.as_deref(), Some("unmatched"));
}

#[test]
fn decisions_count_labels_scores_and_missing_features() {
    let t = Telemetry::recording(Arc::new(Registry::new()));
    let model = t.model("fraud", "3", &["legit".into(), "fraud".into()]);
    t.emit(Decided {
        model: &model,
        scores: &[0.1, 0.9, 0.7],
        outputs: 1,
        threshold: Some(0.5),
        multiclass: false,
        rows: &[1.0, f64::NAN, f64::NAN, 2.0],
    });
    assert_eq!(model.labels[0].total(), 1);
    assert_eq!(model.labels[1].total(), 2);
    assert_eq!(model.missing.total(), 2);
    assert_eq!(model.score.count(), 3);
    assert_eq!(t.recorded(), vec!["Decided"]);
}

#[test]
fn in_flight_is_a_window_maximum() {
    let t = Telemetry::new(Arc::new(Registry::new()));
    for _ in 0..3 {
        t.emit(ScoringStarted);
    }
    t.emit(ScoringEnded);
    t.emit(ScoringEnded);
    assert_eq!(t.take_max_concurrency(), 3);
    assert_eq!(t.take_max_concurrency(), 1);
    t.emit(Throttled {
        reason: ThrottleReason::KeyRate,
    });
    let snapshot = t.snapshot();
    assert!(snapshot.contains(&("Throttles", Some("key_rate"), 1)));
    assert!(snapshot.contains(&("Throttles", Some("rate"), 0)));
}

#[test]
fn every_metric_has_a_unique_prometheus_family() {
    let mut seen = std::collections::HashSet::new();
    for def in names::ALL {
        assert!(seen.insert(def.prom), "{} is used twice", def.prom);
        assert!(
            def.prom
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        );
    }
}

#[test]
fn time_families_are_named_in_the_base_unit_metrics_shows() {
    for def in names::ALL {
        let divided = vigil_metrics::registry::prometheus_divisor(def.unit) != 1.0;
        assert_eq!(
            divided,
            def.prom.ends_with("_seconds"),
            "{}: unit {:?}",
            def.prom,
            def.unit
        );
    }
}

#[test]
fn every_family_shows_on_metrics_as_the_kind_the_rules_export_assumes() {
    use vigil_metrics::alarm::prometheus::FamilyKind;
    let t = Telemetry::new(Arc::new(Registry::new()));
    let _model = ModelHandles::resolve(t.registry(), "m", "1", &["no".into(), "yes".into()]);
    let _subscription = SubscriptionHandles::resolve(t.registry(), "/g:f");
    let text = t.registry().render_prometheus();
    for family in names::families() {
        let type_line = match family.kind {
            FamilyKind::Counter => format!("# TYPE {}_total counter", family.prom),
            FamilyKind::Histogram => format!("# TYPE {} histogram", family.prom),
        };
        assert!(
            text.lines().any(|l| l == type_line),
            "{}/{}: no `{type_line}` in\n{text}",
            family.namespace,
            family.metric_name
        );
    }
}

#[test]
fn the_readme_lists_every_metric() {
    const README: &str = include_str!("../../../../README.md");
    for def in names::ALL {
        let row = format!("| `{}` | `{}` |", def.namespace, def.name);
        assert!(
            README.contains(&row),
            "README.md's metric table misses {}",
            def.name
        );
        assert!(
            README.contains(&format!("`{}", def.prom)),
            "README.md misses {}",
            def.prom
        );
    }
}

#[derive(Debug, Default)]
struct Lines(Mutex<Vec<(OwnGroup, i64, String)>>);

impl GroupLines for Lines {
    fn write(&self, group: OwnGroup, timestamp_ms: i64, line: String) {
        self.0.lock().unwrap().push((group, timestamp_ms, line));
    }
}

/// A logged row becomes one `/vigil/inference` line at its receive time,
/// even with metrics off; with `logs.inference_input` it carries the input
/// as logged (a hashed feature stays hashed), without it none.
#[test]
fn a_logged_row_is_one_inference_line() {
    let head = serde_json::json!({"request_id": "r-1", "model": "fraud", "version": "3",
        "score": 0.75, "label": "fraud", "threshold": 0.5, "latency_us": 420,
        "cached": false});
    let mut with_input = head.clone();
    with_input["input"] = serde_json::json!({"amount": 120.5, "card": "h:5e2b"});
    for (inference_input, want) in [(true, with_input), (false, head)] {
        let telemetry = Telemetry::disabled(Arc::new(Registry::new()));
        let lines = Arc::new(Lines::default());
        telemetry.set_lines(lines.clone(), inference_input);
        let mut input = vigil_store::InputWriter::with_features(2);
        input.number("amount", 120.5);
        input.string("card", "h:5e2b");
        let mut record = vigil_store::InferenceRecord::new(
            "r-1",
            1_700_000_000_123_456,
            "fraud",
            "3",
            input.finish(),
        );
        record.scores = vec![0.75];
        record.label = Some("fraud".into());
        record.threshold = Some(0.5);
        record.latency_us = 420;
        telemetry
            .emit(InferenceLogged::prepare(&telemetry, std::slice::from_ref(&record)).unwrap());
        let lines = lines.0.lock().unwrap();
        assert_eq!(lines.len(), 1);
        let (group, ts, line) = &lines[0];
        assert_eq!((*group, *ts), (OwnGroup::Inference, 1_700_000_000_123));
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(v, want, "inference_input = {inference_input}");
    }
}

#[test]
fn subscription_counters_become_increases_per_subscription() {
    use vigil_logs::subscription::{
        DeliveryStats, Destination, Encoding, FilterView, SubscriptionFilter,
    };
    let t = Telemetry::recording(Arc::new(Registry::new()));
    let view = |delivered, failed, retries, dropped| FilterView {
        filter: SubscriptionFilter {
            group: "/app/api".into(),
            name: "errors".into(),
            pattern: String::new(),
            destination: Destination::Http {
                url: "http://h/".into(),
                encoding: Encoding::Json,
            },
            created_ms: 0,
        },
        delivery: DeliveryStats {
            delivered_events: delivered,
            failed_deliveries: failed,
            retries,
            dropped_events: dropped,
            ..DeliveryStats::default()
        },
    };
    t.emit(SubscriptionStatsRead {
        filters: &[view(5, 0, 2, 1)],
    });
    t.emit(SubscriptionStatsRead {
        filters: &[view(12, 1, 2, 1)],
    });
    let drained = t.registry().drain();
    assert_eq!(sum_of(&drained, LOGS, "ForwardedLogEvents"), Some(12.0));
    assert_eq!(sum_of(&drained, LOGS, "DeliveryErrors"), Some(1.0));
    assert_eq!(sum_of(&drained, LOGS, "DeliveryRetries"), Some(2.0));
    assert_eq!(sum_of(&drained, LOGS, "DroppedLogEvents"), Some(1.0));
    let dims = drained
        .iter()
        .find(|(k, _)| k.name == "ForwardedLogEvents")
        .map(|(k, _)| k.dimensions.get(DIM_SUBSCRIPTION).cloned())
        .unwrap();
    assert_eq!(dims.as_deref(), Some("/app/api:errors"));
    // Made again: counts from 0.
    t.emit(SubscriptionStatsRead {
        filters: &[view(3, 0, 0, 0)],
    });
    let drained = t.registry().drain();
    assert_eq!(sum_of(&drained, LOGS, "ForwardedLogEvents"), Some(3.0));
    assert_eq!(
        t.recorded(),
        [
            "SubscriptionStatsRead",
            "SubscriptionStatsRead",
            "SubscriptionStatsRead"
        ]
    );
}

/// Takes `room` traces, then refuses.
#[derive(Debug)]
struct Queue {
    room: Mutex<usize>,
    taken: Mutex<Vec<usize>>,
}

impl trace::TraceSink for Queue {
    fn write(&self, _: trace::SpanOrigin, spans: Vec<vigil_trace::model::Span>) -> bool {
        let mut room = self.room.lock().unwrap();
        if *room == 0 {
            return false;
        }
        *room -= 1;
        self.taken.lock().unwrap().push(spans.len());
        true
    }
}

/// Received spans reach the writer a trace at a time, with metrics off
/// too; what the writer refused is reported back and counted.
#[test]
fn received_spans_go_to_the_writer_and_refusals_are_counted() {
    use vigil_trace::model::{Span, SpanId, TraceId};
    let span = |t: u8, s: u8| Span::new(TraceId([t; 16]), SpanId([s; 8]), None, "x", "a", 0, 1);
    for enabled in [true, false] {
        let registry = Arc::new(Registry::new());
        let t = if enabled {
            Telemetry::new(Arc::clone(&registry))
        } else {
            Telemetry::disabled(Arc::clone(&registry))
        };
        let queue = Arc::new(Queue {
            room: Mutex::new(1),
            taken: Mutex::new(Vec::new()),
        });
        t.set_traces(queue.clone());
        let mut rejected = 0;
        t.emit(SpansReceived {
            traces: vec![vec![span(1, 1), span(1, 2)], vec![span(2, 3)]],
            rejected: &mut rejected,
        });
        assert_eq!(rejected, 1);
        assert_eq!(*queue.taken.lock().unwrap(), [2]);
        let drained = registry.drain();
        let received = sum_of(&drained, names::TRACES, "ReceivedSpans");
        let refused = sum_of(&drained, names::TRACES, "RejectedSpans");
        if enabled {
            assert_eq!((received, refused), (Some(3.0), Some(1.0)));
        } else {
            assert_eq!((received, refused), (None, None));
        }
    }
}
