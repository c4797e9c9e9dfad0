//! Which replica evaluates the alarms: the holder of one PostgreSQL
//! advisory lock. Each 10 s slot a replica asks for the lock (the holder
//! checks that its session, and so the lock, is alive); a replica that
//! becomes the leader first adopts the shared alarm state, so that a
//! transition its predecessor notified is not notified again. Followers
//! mirror the shared state, so every replica serves the fleet's alarm
//! states.

use std::future::Future;

use crate::alarm::AlarmEngine;

/// What one slot decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// This replica took the lock in this slot: it evaluates from now on.
    Became,
    /// This replica held the lock and still does.
    Kept,
    /// This replica held the lock and lost it (its session broke).
    Lost,
    /// Another replica evaluates.
    Follows,
}

impl Step {
    /// Whether this replica evaluates in this slot.
    pub fn leads(self) -> bool {
        matches!(self, Step::Became | Step::Kept)
    }
}

/// The lock and the shared alarm state document.
pub(crate) trait Coordinator {
    /// Whether this replica holds the lock after this call (taking it when
    /// free); an error means it does not.
    fn hold(&mut self) -> impl Future<Output = Result<bool, String>> + Send;
    /// The shared state document, if one was saved.
    fn load(&mut self) -> impl Future<Output = Result<Option<Vec<u8>>, String>> + Send;
}

/// The leadership of this replica across slots.
#[derive(Debug, Default)]
pub(crate) struct Leadership {
    leader: bool,
}

impl Leadership {
    /// Whether this replica evaluated in its last slot.
    #[cfg(test)]
    pub(crate) fn is_leader(&self) -> bool {
        self.leader
    }

    /// One slot: asks for the lock, then adopts the shared state when this
    /// replica just became the leader or follows (a leader's own state is
    /// the newest there is).
    pub(crate) async fn slot(
        &mut self,
        coordinator: &mut impl Coordinator,
        engine: &AlarmEngine,
    ) -> Step {
        let held = match coordinator.hold().await {
            Ok(held) => held,
            Err(err) => {
                tracing::warn!(error = %err, "alarm evaluation: the shared lock cannot be reached");
                false
            }
        };
        let step = match (self.leader, held) {
            (false, true) => Step::Became,
            (true, true) => Step::Kept,
            (true, false) => Step::Lost,
            (false, false) => Step::Follows,
        };
        match step {
            Step::Became => {
                // Without the shared state a new leader could notify a
                // transition again: it evaluates only once it has it.
                match coordinator.load().await {
                    Ok(document) => {
                        if let Some(document) = document
                            && let Err(err) = engine.adopt_state(&document)
                        {
                            tracing::error!(error = %err, "alarm evaluation: the shared state is unreadable; continuing from this replica's own");
                        }
                        tracing::info!("alarm evaluation: this replica is the leader");
                    }
                    Err(err) => {
                        tracing::warn!(error = %err, "alarm evaluation: the shared state cannot be read; not evaluating");
                        return Step::Follows;
                    }
                }
            }
            Step::Lost => {
                tracing::warn!("alarm evaluation: this replica is no longer the leader");
            }
            Step::Follows => match coordinator.load().await {
                Ok(Some(document)) => {
                    if let Err(err) = engine.adopt_state(&document) {
                        tracing::warn!(error = %err, "alarm evaluation: the shared state is unreadable");
                    }
                }
                Ok(None) => {}
                Err(err) => {
                    tracing::debug!(error = %err, "alarm evaluation: the shared state cannot be read");
                }
            },
            Step::Kept => {}
        }
        self.leader = step.leads();
        step
    }
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::*;
    use crate::alarm::{AlarmData, MetricAlarm, Point};
    use crate::notify::AlarmState;

    /// A lock that answers from a script, and a fixed shared document.
    struct FakeLock {
        answers: VecDeque<Result<bool, String>>,
        document: Result<Option<Vec<u8>>, String>,
        loads: usize,
    }

    impl Coordinator for FakeLock {
        async fn hold(&mut self) -> Result<bool, String> {
            self.answers.pop_front().unwrap_or(Ok(false))
        }
        async fn load(&mut self) -> Result<Option<Vec<u8>>, String> {
            self.loads += 1;
            self.document.clone()
        }
    }

    struct Breaching;
    impl AlarmData for Breaching {
        fn fetch(
            &self,
            _: &MetricAlarm,
            start: i64,
            end: i64,
            p: u32,
        ) -> Result<Vec<Point>, String> {
            let step = i64::from(p) * 1000;
            Ok((start..end)
                .step_by(usize::try_from(step).unwrap_or(1000))
                .map(|t| Point {
                    timestamp_ms: t,
                    value: 100.0,
                    sample_count: Some(1.0),
                })
                .collect())
        }
    }

    fn alarm() -> MetricAlarm {
        let spec: crate::alarm::MetricAlarmSpec = serde_json::from_value(serde_json::json!({
            "name": "High", "namespace": "Ns", "metric_name": "M", "statistic": "Sum",
            "period": 10, "evaluation_periods": 1, "threshold": 50.0,
            "comparison_operator": "GreaterThanThreshold",
            "alarm_actions": [{"type": "webhook", "url": "http://127.0.0.1:9/alarm"}],
        }))
        .unwrap_or_else(|e| panic!("{e}"));
        spec.validate().unwrap_or_else(|e| panic!("{e}"))
    }

    const T0: i64 = 1_764_547_200_000;

    #[tokio::test]
    async fn a_replica_leads_while_it_holds_the_lock_and_follows_otherwise() {
        let engine = AlarmEngine::in_memory();
        let mut lock = FakeLock {
            answers: VecDeque::from([
                Ok(false),
                Ok(true),
                Ok(true),
                Err("gone".into()),
                Ok(false),
                Ok(true),
            ]),
            document: Ok(None),
            loads: 0,
        };
        let mut leadership = Leadership::default();
        let mut steps = Vec::new();
        for _ in 0..6 {
            steps.push(leadership.slot(&mut lock, &engine).await);
        }
        assert_eq!(
            steps,
            [
                Step::Follows,
                Step::Became,
                Step::Kept,
                Step::Lost,
                Step::Follows,
                Step::Became
            ]
        );
        assert!(leadership.is_leader());
        // Loaded when following (mirror) and when becoming the leader; never
        // while keeping or right after losing.
        assert_eq!(lock.loads, 4);
    }

    #[tokio::test]
    async fn a_new_leader_continues_from_the_shared_state_and_does_not_notify_again() {
        // The first leader takes the alarm to ALARM and shares its state.
        let first = AlarmEngine::in_memory();
        first
            .put_metric_alarm(alarm(), T0)
            .unwrap_or_else(|e| panic!("{e}"));
        let sent = first.tick(T0 + 20_000, &Breaching);
        assert_eq!(sent.len(), 1, "the first leader notifies the transition");
        assert_eq!(
            first.get("High").map(|a| a.state_value),
            Some(AlarmState::Alarm)
        );
        let shared = first.export_state();

        // The second replica had the same alarm (same config file), never
        // evaluated, then takes over.
        let second = AlarmEngine::in_memory();
        second
            .put_metric_alarm(alarm(), T0)
            .unwrap_or_else(|e| panic!("{e}"));
        let mut lock = FakeLock {
            answers: VecDeque::from([Ok(true)]),
            document: Ok(Some(shared)),
            loads: 0,
        };
        let mut leadership = Leadership::default();
        assert_eq!(leadership.slot(&mut lock, &second).await, Step::Became);
        assert_eq!(
            second.get("High").map(|a| a.state_value),
            Some(AlarmState::Alarm)
        );
        let again = second.tick(T0 + 30_000, &Breaching);
        assert!(
            again.is_empty(),
            "still ALARM: nothing to notify, got {again:?}"
        );
        let transitions = second
            .history("High")
            .into_iter()
            .filter(|h| h.item_type == crate::alarm::HistoryItemType::StateUpdate)
            .count();
        assert_eq!(
            transitions, 1,
            "the predecessor's transition is in the history once"
        );
    }

    #[tokio::test]
    async fn without_the_shared_state_a_new_leader_does_not_evaluate() {
        let engine = AlarmEngine::in_memory();
        let mut lock = FakeLock {
            answers: VecDeque::from([Ok(true), Ok(true)]),
            document: Err("connection reset".into()),
            loads: 0,
        };
        let mut leadership = Leadership::default();
        assert_eq!(leadership.slot(&mut lock, &engine).await, Step::Follows);
        assert!(!leadership.is_leader());
        lock.document = Ok(None);
        assert_eq!(leadership.slot(&mut lock, &engine).await, Step::Became);
    }
}
