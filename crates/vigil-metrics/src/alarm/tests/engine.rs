use serde_json::json;

use super::{MIN, Mock, T0, alarm, composite, spec};
use crate::alarm::config::CompositeAlarmSpec;
use crate::alarm::engine::{AlarmEngine, AlarmError};
use crate::alarm::history::{HISTORY_RETENTION_MS, HistoryItemType};
use crate::notify::{Action, AlarmState};

fn state(engine: &AlarmEngine, name: &str) -> AlarmState {
    engine.get(name).unwrap().state_value
}

/// Engine with alarm `a` whose last three completed minutes were 5, 4, 3.
fn alarming() -> (AlarmEngine, Mock) {
    let engine = AlarmEngine::in_memory();
    engine.put_metric_alarm(alarm("a"), T0).unwrap();
    let mock = Mock::default();
    for (i, v) in [5.0, 4.0, 3.0].into_iter().enumerate() {
        mock.push("a", T0 + i as i64 * MIN, v);
    }
    (engine, mock)
}

#[test]
fn threshold_crossing_alarms_with_the_clouds_reason_text_and_data() {
    let (engine, mock) = alarming();
    let out = engine.tick(T0 + 3 * MIN + 5_000, &mock);
    assert_eq!(state(&engine, "a"), AlarmState::Alarm);
    assert_eq!(out.len(), 1);
    let (n, actions) = &out[0];
    assert_eq!(
        (n.old_state, n.new_state),
        (AlarmState::InsufficientData, AlarmState::Alarm)
    );
    assert_eq!(n.namespace.as_deref(), Some("Vigil"));
    assert_eq!(n.dimensions.get("model").map(String::as_str), Some("fraud"));
    assert_eq!(
        actions,
        &vec![Action::Webhook {
            url: "http://127.0.0.1:9/alarm".into(),
            secret: None
        }]
    );
    assert_eq!(
        n.reason,
        "Threshold Crossed: 3 out of the last 3 datapoints [3.0 (12/01/26 10:02:00), \
         4.0 (12/01/26 10:01:00), 5.0 (12/01/26 10:00:00)] were greater than the threshold (2.0) \
         (minimum 3 datapoints for INSUFFICIENT_DATA -> ALARM transition)."
    );
    let d = &n.reason_data;
    assert_eq!(d["version"], "1.0");
    assert_eq!(d["statistic"], "Average");
    assert_eq!(d["period"], 60);
    assert_eq!(d["threshold"], 2.0);
    assert_eq!(d["queryDate"], "2026-01-12T10:03:05.000+0000");
    assert_eq!(d["startDate"], "2026-01-12T09:58:00.000+0000");
    assert_eq!(d["recentDatapoints"], json!([5.0, 4.0, 3.0]));
    assert_eq!(
        d["evaluatedDatapoints"][0]["timestamp"],
        "2026-01-12T10:02:00.000+0000"
    );
    assert_eq!(d["evaluatedDatapoints"].as_array().map(Vec::len), Some(3));
    let h = engine.history("a");
    assert_eq!(h[0].item_type, HistoryItemType::StateUpdate);
    assert_eq!(
        h[0].summary,
        "Alarm updated from INSUFFICIENT_DATA to ALARM"
    );
    assert_eq!(h[1].item_type, HistoryItemType::ConfigurationUpdate);
}

#[test]
fn the_period_in_progress_is_never_a_slot() {
    let (engine, mock) = alarming();
    // At 10:02:30 the 10:02 period is in progress: only 5 and 4 are completed.
    engine.tick(T0 + 2 * MIN + 30_000, &mock);
    assert_eq!(state(&engine, "a"), AlarmState::InsufficientData);
}

#[test]
fn only_transitions_notify_and_alarms_tick_once_per_cadence() {
    let (engine, mock) = alarming();
    assert_eq!(engine.tick(T0 + 3 * MIN, &mock).len(), 1);
    assert_eq!(mock.fetches.get(), 1);
    assert!(engine.tick(T0 + 3 * MIN + 30_000, &mock).is_empty());
    assert_eq!(mock.fetches.get(), 1, "same minute: not evaluated again");
    assert!(engine.tick(T0 + 4 * MIN, &mock).is_empty());
    assert_eq!(mock.fetches.get(), 2);

    let mut s = spec("fast");
    s.period = Some(10);
    engine.put_metric_alarm(s.validate().unwrap(), T0).unwrap();
    let before = mock.fetches.get();
    engine.tick(T0 + 4 * MIN + 10_000, &mock);
    engine.tick(T0 + 4 * MIN + 15_000, &mock);
    engine.tick(T0 + 4 * MIN + 20_000, &mock);
    // `fast` at 10 s and 20 s; `a` not again within the minute.
    assert_eq!(mock.fetches.get() - before, 2);
}

#[test]
fn ok_after_alarm_names_the_not_breaching_points() {
    let (engine, mock) = alarming();
    engine.tick(T0 + 3 * MIN, &mock);
    mock.push("a", T0 + 3 * MIN, 1.0);
    let out = engine.tick(T0 + 4 * MIN, &mock);
    assert_eq!(state(&engine, "a"), AlarmState::Ok);
    assert_eq!(
        out[0].0.reason,
        "Threshold Crossed: 1 out of the last 3 datapoints [1.0 (12/01/26 10:03:00)] was not \
         greater than the threshold (2.0) (minimum 1 datapoint for ALARM -> OK transition)."
    );
    assert_eq!(
        out[0].1,
        vec![Action::Email {
            to: vec!["ops@example.com".into()]
        }]
    );
}

#[test]
fn a_fetch_error_leaves_the_state_and_is_recorded() {
    let (engine, mock) = alarming();
    engine.tick(T0 + 3 * MIN, &mock);
    *mock.error.borrow_mut() = Some("store unavailable".into());
    mock.push("a", T0 + 3 * MIN, 0.0);
    mock.push("a", T0 + 4 * MIN, 0.0);
    mock.push("a", T0 + 5 * MIN, 0.0);
    assert!(engine.tick(T0 + 6 * MIN, &mock).is_empty());
    let view = engine.get("a").unwrap();
    assert_eq!(view.state_value, AlarmState::Alarm);
    assert_eq!(view.evaluation_error.as_deref(), Some("store unavailable"));
    *mock.error.borrow_mut() = None;
    engine.tick(T0 + 7 * MIN, &mock);
    let view = engine.get("a").unwrap();
    assert_eq!(
        (view.state_value, view.evaluation_error),
        (AlarmState::Ok, None)
    );
}

#[test]
fn disabled_actions_send_nothing_but_the_state_changes() {
    let engine = AlarmEngine::in_memory();
    let mut s = spec("a");
    s.actions_enabled = false;
    engine.put_metric_alarm(s.validate().unwrap(), T0).unwrap();
    let mock = Mock::default();
    for i in 0..3 {
        mock.push("a", T0 + i * MIN, 9.0);
    }
    assert!(engine.tick(T0 + 3 * MIN, &mock).is_empty());
    assert_eq!(state(&engine, "a"), AlarmState::Alarm);
}

#[test]
fn treat_missing_data_breaching_alarms_without_data() {
    let engine = AlarmEngine::in_memory();
    let mut s = spec("a");
    s.treat_missing_data = Some("breaching".into());
    engine.put_metric_alarm(s.validate().unwrap(), T0).unwrap();
    let out = engine.tick(T0, &Mock::default());
    assert_eq!(state(&engine, "a"), AlarmState::Alarm);
    assert_eq!(
        out[0].0.reason,
        "Threshold Crossed: no datapoints were received for 3 periods and 3 missing datapoints \
         were treated as [Breaching]."
    );
}

#[test]
fn missing_data_goes_to_insufficient_data_with_its_reason() {
    let (engine, mock) = alarming();
    engine.tick(T0 + 3 * MIN, &mock);
    // Long after the data stopped, nothing is in range.
    engine.tick(T0 + 30 * MIN, &mock);
    let view = engine.get("a").unwrap();
    assert_eq!(view.state_value, AlarmState::InsufficientData);
    assert_eq!(
        view.state_reason,
        "Insufficient Data: 5 datapoints were unknown."
    );
}

#[test]
fn low_sample_percentile_points_count_as_missing_when_ignored() {
    let engine = AlarmEngine::in_memory();
    let mut s = spec("p");
    s.statistic = None;
    s.extended_statistic = Some("p99".into());
    s.evaluate_low_sample_count_percentile = Some("ignore".into());
    engine
        .put_metric_alarm(s.clone().validate().unwrap(), T0)
        .unwrap();
    let mut e = s;
    e.name = "e".into();
    e.evaluate_low_sample_count_percentile = Some("evaluate".into());
    engine.put_metric_alarm(e.validate().unwrap(), T0).unwrap();
    let mock = Mock::default();
    for name in ["p", "e"] {
        mock.push_counted(name, T0, 9.0, Some(1000.0));
        mock.push_counted(name, T0 + MIN, 9.0, Some(999.0));
        mock.push_counted(name, T0 + 2 * MIN, 9.0, Some(1000.0));
    }
    engine.tick(T0 + 3 * MIN, &mock);
    assert_eq!(state(&engine, "e"), AlarmState::Alarm);
    // Two real breaching points out of M = 3, the low-sample one missing,
    // the oldest breaching point 3 slots old: the premature rule alarms.
    assert_eq!(state(&engine, "p"), AlarmState::Alarm);
    let reason = engine.get("p").unwrap().state_reason;
    assert!(
        reason.starts_with("Threshold Crossed: 2 out of the last 3"),
        "{reason}"
    );

    // Only low-sample points: the state does not change.
    let engine = AlarmEngine::in_memory();
    let mut s = spec("p");
    s.statistic = None;
    s.extended_statistic = Some("p99".into());
    s.evaluate_low_sample_count_percentile = Some("ignore".into());
    s.treat_missing_data = Some("breaching".into());
    engine.put_metric_alarm(s.validate().unwrap(), T0).unwrap();
    let mock = Mock::default();
    mock.push_counted("p", T0 + 2 * MIN, 0.0, Some(10.0));
    engine.tick(T0 + 3 * MIN, &mock);
    assert_eq!(state(&engine, "p"), AlarmState::InsufficientData);
}

#[test]
fn forced_state_notifies_and_a_metric_alarm_returns_at_its_next_evaluation() {
    let (engine, mock) = alarming();
    engine.tick(T0 + 3 * MIN, &mock);
    let out = engine
        .set_state(
            "a",
            AlarmState::Ok,
            "testing",
            Some(json!({"by": "me"})),
            T0 + 3 * MIN + 1,
        )
        .unwrap();
    assert_eq!(out.len(), 1);
    assert_eq!(out[0].0.reason, "testing");
    assert_eq!(state(&engine, "a"), AlarmState::Ok);
    assert!(
        engine
            .set_state("a", AlarmState::Ok, "again", None, T0 + 3 * MIN + 2)
            .unwrap()
            .is_empty()
    );
    engine.tick(T0 + 3 * MIN + 30_000, &mock);
    assert_eq!(
        state(&engine, "a"),
        AlarmState::Ok,
        "not re-evaluated within the minute"
    );
    let out = engine.tick(T0 + 4 * MIN, &mock);
    assert_eq!(state(&engine, "a"), AlarmState::Alarm);
    assert_eq!(out.len(), 1);
    let err = engine
        .set_state("nope", AlarmState::Ok, "x", None, T0)
        .unwrap_err();
    assert!(matches!(err, AlarmError::NotFound(ref n) if n == "nope"));
    let err = engine
        .set_state("a", AlarmState::Ok, &"x".repeat(1024), None, T0)
        .unwrap_err();
    assert_eq!(err.code(), "bad_request");
}

#[test]
fn an_update_keeps_the_state_and_replaces_the_config() {
    let (engine, mock) = alarming();
    engine.tick(T0 + 3 * MIN, &mock);
    let mut s = spec("a");
    s.threshold = Some(100.0);
    engine
        .put_metric_alarm(s.validate().unwrap(), T0 + 3 * MIN + 1)
        .unwrap();
    let view = engine.get("a").unwrap();
    assert_eq!(view.state_value, AlarmState::Alarm);
    match &view.config {
        crate::alarm::AlarmConfig::Metric(a) => assert_eq!(a.threshold(), 100.0),
        other => panic!("{other:?}"),
    }
    assert_eq!(engine.history("a")[0].summary, "Alarm \"a\" updated");
    // Re-evaluated at the next tick, even within the same minute.
    engine.tick(T0 + 3 * MIN + 2, &mock);
    assert_eq!(state(&engine, "a"), AlarmState::Ok);
    let json = serde_json::to_value(engine.get("a").unwrap()).unwrap();
    assert_eq!(json["state_value"], "OK");
    assert_eq!(json["alarm_type"], "metric");
    assert_eq!(json["threshold"], 100.0);
    assert_eq!(json["state_updated_at"], "2026-01-12T10:03:00.002Z");
}

#[test]
fn composites_follow_their_children_and_start_insufficient() {
    let (engine, mock) = alarming();
    engine.put_metric_alarm(alarm("b"), T0).unwrap();
    engine
        .put_composite_alarm(composite("c", "ALARM(a) AND NOT ALARM(b)"), T0)
        .unwrap();
    engine
        .put_composite_alarm(composite("top", "ALARM(c)"), T0)
        .unwrap();
    assert_eq!(state(&engine, "c"), AlarmState::InsufficientData);
    let out = engine.tick(T0 + 3 * MIN, &mock);
    assert_eq!(state(&engine, "a"), AlarmState::Alarm);
    assert_eq!(state(&engine, "c"), AlarmState::Alarm);
    assert_eq!(state(&engine, "top"), AlarmState::Alarm);
    let names: Vec<&str> = out.iter().map(|(n, _)| n.alarm_name.as_str()).collect();
    assert_eq!(names, vec!["a", "c", "top"]);
    assert!(
        out[1]
            .0
            .reason
            .starts_with("a transitioned to ALARM at 2026-01-12T10:03:00")
    );
    // Forcing b to ALARM flips c (and top) at once.
    let out = engine
        .set_state("b", AlarmState::Alarm, "test", None, T0 + 3 * MIN + 1)
        .unwrap();
    assert_eq!(state(&engine, "c"), AlarmState::Ok);
    assert_eq!(state(&engine, "top"), AlarmState::Ok);
    // Only b has actions for this transition (c and top have ALARM actions only).
    let names: Vec<&str> = out.iter().map(|(n, _)| n.alarm_name.as_str()).collect();
    assert_eq!(names, vec!["b"]);
}

#[test]
fn a_forced_composite_keeps_its_state_until_a_child_changes() {
    let (engine, mock) = alarming();
    engine
        .put_composite_alarm(composite("c", "ALARM(a)"), T0)
        .unwrap();
    engine.tick(T0, &mock);
    assert_eq!(state(&engine, "c"), AlarmState::Ok);
    engine
        .set_state("c", AlarmState::Alarm, "forced", None, T0 + 1)
        .unwrap();
    engine.tick(T0 + MIN, &mock);
    assert_eq!(state(&engine, "c"), AlarmState::Alarm, "a did not change");
    engine
        .set_state("c", AlarmState::Ok, "forced", None, T0 + MIN + 1)
        .unwrap();
    engine.tick(T0 + 3 * MIN, &mock);
    assert_eq!(state(&engine, "c"), AlarmState::Alarm, "a changed to ALARM");
    engine
        .set_state("c", AlarmState::Ok, "forced", None, T0 + 3 * MIN + 1)
        .unwrap();
    engine
        .put_composite_alarm(composite("c", "ALARM(a)"), T0 + 3 * MIN + 2)
        .unwrap();
    engine.tick(T0 + 3 * MIN + 3, &mock);
    assert_eq!(state(&engine, "c"), AlarmState::Alarm, "config updated");
}

#[test]
fn composite_definitions_need_existing_children_and_no_cycle() {
    let engine = AlarmEngine::in_memory();
    engine.put_metric_alarm(alarm("m"), T0).unwrap();
    let err = engine
        .put_composite_alarm(composite("c", "ALARM(m) OR ALARM(ghost)"), T0)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid alarm: alarm_rule: alarm `ghost` does not exist"
    );
    engine
        .put_composite_alarm(composite("x", "ALARM(m)"), T0)
        .unwrap();
    engine
        .put_composite_alarm(composite("y", "ALARM(x)"), T0)
        .unwrap();
    engine
        .put_composite_alarm(composite("z", "OK(y)"), T0)
        .unwrap();
    let err = engine
        .put_composite_alarm(composite("x", "ALARM(m) AND ALARM(z)"), T0)
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "invalid alarm: alarm_rule: cycle: x -> z -> y -> x"
    );
    let err = engine.put_metric_alarm(alarm("x"), T0).unwrap_err();
    assert_eq!(err.code(), "conflict");
    let err = engine.delete("x", T0).unwrap_err();
    assert_eq!(
        err.to_string(),
        "alarm `x` is referenced by composite alarm `y`"
    );
    engine.delete("z", T0).unwrap();
    engine.delete("y", T0).unwrap();
    engine.delete("x", T0).unwrap();
    assert!(engine.get("x").is_none());
    assert!(matches!(
        engine.delete("x", T0),
        Err(AlarmError::NotFound(_))
    ));
    assert_eq!(engine.history("x")[0].summary, "Alarm \"x\" deleted");
}

fn suppressed_setup(wait_s: u32, extension_s: u32) -> (AlarmEngine, Mock) {
    let (engine, mock) = alarming();
    // A composite suppressor keeps a forced state (a metric alarm would
    // return to its computed state at its next evaluation).
    engine
        .put_composite_alarm(composite("maintenance", "FALSE"), T0)
        .unwrap();
    let c = CompositeAlarmSpec {
        name: "c".into(),
        alarm_rule: "ALARM(a)".into(),
        alarm_actions: vec![Action::Alertmanager {
            url: "http://127.0.0.1:9093".into(),
        }],
        actions_enabled: true,
        actions_suppressor: Some("maintenance".into()),
        actions_suppressor_wait_period: Some(wait_s),
        actions_suppressor_extension_period: Some(extension_s),
        ..CompositeAlarmSpec::default()
    }
    .validate()
    .unwrap();
    engine.put_composite_alarm(c, T0).unwrap();
    (engine, mock)
}

fn sent_by(out: &[crate::alarm::Dispatch], name: &str) -> usize {
    out.iter().filter(|(n, _)| n.alarm_name == name).count()
}

#[test]
fn a_suppressor_in_alarm_suppresses_actions() {
    let (engine, mock) = suppressed_setup(0, 0);
    engine
        .set_state("maintenance", AlarmState::Alarm, "window", None, T0)
        .unwrap();
    let out = engine.tick(T0 + 3 * MIN, &mock);
    assert_eq!(state(&engine, "c"), AlarmState::Alarm);
    assert_eq!(sent_by(&out, "c"), 0);
    let h = engine.history("c");
    assert_eq!(h[0].item_type, HistoryItemType::Action);
    assert_eq!(h[0].summary, "Actions suppressed by alarm \"maintenance\"");
}

#[test]
fn the_wait_period_holds_actions_until_it_ends_or_the_suppressor_alarms() {
    let (engine, mock) = suppressed_setup(120, 0);
    let out = engine.tick(T0 + 3 * MIN, &mock);
    assert_eq!(sent_by(&out, "c"), 0, "waiting for the suppressor");
    let out = engine.tick(T0 + 4 * MIN, &mock);
    assert_eq!(sent_by(&out, "c"), 0);
    let out = engine.tick(T0 + 5 * MIN, &mock);
    assert_eq!(sent_by(&out, "c"), 1, "wait over, suppressor never alarmed");

    let (engine, mock) = suppressed_setup(120, 0);
    engine.tick(T0 + 3 * MIN, &mock);
    engine
        .set_state(
            "maintenance",
            AlarmState::Alarm,
            "window",
            None,
            T0 + 4 * MIN,
        )
        .unwrap();
    let out = engine.tick(T0 + 5 * MIN, &mock);
    assert_eq!(sent_by(&out, "c"), 0, "suppressor alarmed within the wait");
}

#[test]
fn suppression_lasts_the_extension_period_after_the_suppressor_leaves_alarm() {
    for (left_at, sent) in [(T0 + 2 * MIN, 0), (T0, 1)] {
        let (engine, mock) = suppressed_setup(0, 90);
        engine
            .set_state("maintenance", AlarmState::Alarm, "w", None, T0 - MIN)
            .unwrap();
        engine
            .set_state("maintenance", AlarmState::Ok, "w", None, left_at)
            .unwrap();
        // c goes to ALARM at 10:03: 60 s after 10:02 (suppressed), 180 s after 10:00 (sent).
        let out = engine.tick(T0 + 3 * MIN, &mock);
        assert_eq!(sent_by(&out, "c"), sent, "left ALARM at {left_at}");
    }
}

#[test]
fn action_results_are_recorded_in_history() {
    let (engine, mock) = alarming();
    engine.tick(T0 + 3 * MIN, &mock);
    engine.record_action_result(
        "a",
        AlarmState::Alarm,
        0,
        Err("connection refused".into()),
        T0 + 4 * MIN,
    );
    let h = &engine.history("a")[0];
    assert_eq!(h.item_type, HistoryItemType::Action);
    assert_eq!(
        h.summary,
        "Failed to execute action webhook http://127.0.0.1:9/alarm. Received error: \"connection refused\""
    );
    assert_eq!(h.data["actionState"], "Failed");
}

#[test]
fn history_is_kept_30_days() {
    let (engine, mock) = alarming();
    engine.tick(T0 + 3 * MIN, &mock);
    assert_eq!(engine.history("a").len(), 2);
    engine
        .put_metric_alarm(alarm("b"), T0 + HISTORY_RETENTION_MS + 3 * MIN)
        .unwrap();
    assert_eq!(engine.history("a").len(), 1, "the creation item aged out");
    engine.tick(T0 + HISTORY_RETENTION_MS + 4 * MIN, &mock);
    assert!(
        engine
            .history("a")
            .iter()
            .all(|h| h.timestamp_ms >= T0 + 4 * MIN)
    );
}

#[test]
fn a_reopened_engine_has_the_same_alarms_state_and_history() {
    let dir = tempfile::tempdir().unwrap();
    let (view, history) = {
        let engine = AlarmEngine::open(dir.path()).unwrap();
        engine.put_metric_alarm(alarm("a"), T0).unwrap();
        engine
            .put_composite_alarm(composite("c", "ALARM(a)"), T0)
            .unwrap();
        let mock = Mock::default();
        for i in 0..3 {
            mock.push("a", T0 + i * MIN, 9.0);
        }
        engine.tick(T0 + 3 * MIN, &mock);
        engine
            .set_state("c", AlarmState::Ok, "forced", None, T0 + 3 * MIN + 1)
            .unwrap();
        (engine.list(), engine.history("a"))
    };
    let engine = AlarmEngine::open(dir.path()).unwrap();
    assert_eq!(engine.list(), view);
    assert_eq!(engine.history("a"), history);
    assert_eq!(state(&engine, "a"), AlarmState::Alarm);
    assert_eq!(state(&engine, "c"), AlarmState::Ok);
    // The forced composite stays forced across the reopen.
    engine.tick(T0 + 3 * MIN + 2, &Mock::default());
    assert_eq!(state(&engine, "c"), AlarmState::Ok);
    std::fs::write(dir.path().join("alarms.json"), b"{not json").unwrap();
    let err = AlarmEngine::open(dir.path()).unwrap_err();
    assert!(err.to_string().contains("alarms.json"), "{err}");
}
