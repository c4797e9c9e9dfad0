//! [`AlarmEngine`]: the alarms, their state and history behind one lock,
//! evaluated by [`AlarmEngine::tick`] at a time the caller gives (the clock
//! is injected), persisted to `alarms.json` in the directory given at open.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::config::{CompositeAlarm, ConfigError, MetricAlarm, MetricSource, Problem};
use super::history::{HISTORY_RETENTION_MS, HistoryItem, HistoryItemType, format_rfc3339_ms};
use super::metric::{AlarmData, cadence_ms, evaluate, reason_data, reason_text};
use super::view::{AlarmConfig, AlarmView};
use crate::notify::{Action, AlarmState, Notification};

/// What to send after a transition: the notification and the actions to send it to.
pub type Dispatch = (Notification, Vec<Action>);

/// The file the engine persists to, inside its directory.
pub const STATE_FILE: &str = "alarms.json";
/// Longest `state_reason` of SetAlarmState, in characters.
pub const MAX_STATE_REASON_CHARS: usize = 1023;

/// Errors of the alarm engine.
#[derive(Debug, thiserror::Error)]
pub enum AlarmError {
    /// The configuration is invalid (every problem, each naming its field).
    #[error("invalid alarm: {0}")]
    Invalid(#[from] ConfigError),
    /// No alarm by that name.
    #[error("alarm `{0}` not found")]
    NotFound(String),
    /// The operation conflicts with another alarm (a reference, a kind).
    #[error("{0}")]
    Conflict(String),
    /// The state file could not be read or written.
    #[error("alarm state file {path}: {message}")]
    Storage {
        /// The file.
        path: String,
        /// What failed.
        message: String,
    },
}

impl AlarmError {
    /// The error's code (`bad_request`, `not_found`, `conflict`, `internal`).
    pub fn code(&self) -> &'static str {
        match self {
            AlarmError::Invalid(_) => "bad_request",
            AlarmError::NotFound(_) => "not_found",
            AlarmError::Conflict(_) => "conflict",
            AlarmError::Storage { .. } => "internal",
        }
    }

    fn invalid(field: &str, message: String) -> Self {
        AlarmError::Invalid(ConfigError {
            problems: vec![Problem {
                field: field.into(),
                message,
            }],
        })
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct StateInfo {
    value: AlarmState,
    reason: String,
    reason_data: Value,
    #[serde(with = "super::history::rfc3339_ms")]
    updated_at: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Pending {
    notification: Notification,
    actions: Vec<Action>,
    deadline_ms: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Record {
    config: AlarmConfig,
    state: StateInfo,
    /// When the alarm last left ALARM (for suppressors' extension period).
    #[serde(default)]
    left_alarm_at_ms: Option<i64>,
    /// A composite in a state forced by SetAlarmState.
    #[serde(default)]
    forced: bool,
    /// A composite to evaluate at the next tick (created or updated).
    #[serde(default)]
    needs_eval: bool,
    /// A composite transition waiting for its suppressor.
    #[serde(default)]
    pending: Option<Pending>,
    #[serde(default)]
    last_error: Option<String>,
    /// The cadence window last evaluated in (not persisted: a reopened
    /// engine evaluates at its first tick).
    #[serde(skip)]
    last_window: Option<i64>,
    #[serde(skip)]
    generation: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct Inner {
    version: u32,
    alarms: BTreeMap<String, Record>,
    history: VecDeque<HistoryItem>,
    #[serde(skip)]
    generation: u64,
}

/// The alarm engine.
#[derive(Debug)]
pub struct AlarmEngine {
    inner: Mutex<Inner>,
    file: Option<PathBuf>,
}

impl AlarmEngine {
    /// An engine that persists nothing (tests, benches).
    pub fn in_memory() -> Self {
        AlarmEngine {
            inner: Mutex::new(Inner {
                version: 1,
                ..Inner::default()
            }),
            file: None,
        }
    }

    /// Opens (creating) `dir` and reloads `alarms.json` if present.
    pub fn open(dir: &Path) -> Result<Self, AlarmError> {
        let file = dir.join(STATE_FILE);
        let storage = |e: &dyn std::fmt::Display| AlarmError::Storage {
            path: file.display().to_string(),
            message: e.to_string(),
        };
        std::fs::create_dir_all(dir).map_err(|e| storage(&e))?;
        let inner = match std::fs::read(&file) {
            Ok(bytes) => serde_json::from_slice::<Inner>(&bytes).map_err(|e| storage(&e))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Inner {
                version: 1,
                ..Inner::default()
            },
            Err(e) => return Err(storage(&e)),
        };
        Ok(AlarmEngine {
            inner: Mutex::new(inner),
            file: Some(file),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // A panic elsewhere cannot leave the map half-updated in a way a
        // later reader would misinterpret: every update is a whole record.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn save(&self, inner: &Inner) -> Result<(), AlarmError> {
        let Some(file) = &self.file else {
            return Ok(());
        };
        let storage = |e: &dyn std::fmt::Display| AlarmError::Storage {
            path: file.display().to_string(),
            message: e.to_string(),
        };
        let bytes = serde_json::to_vec(inner).map_err(|e| storage(&e))?;
        let tmp = file.with_extension("json.tmp");
        std::fs::write(&tmp, bytes).map_err(|e| storage(&e))?;
        std::fs::rename(&tmp, file).map_err(|e| storage(&e))
    }

    fn save_logged(&self, inner: &Inner) {
        if let Err(err) = self.save(inner) {
            tracing::error!(error = %err, "alarm state not persisted");
        }
    }

    /// Creates or updates a metric alarm. An update keeps the state and
    /// replaces the configuration; the alarm is evaluated at the next tick.
    pub fn put_metric_alarm(&self, alarm: MetricAlarm, now_ms: i64) -> Result<(), AlarmError> {
        let mut inner = self.lock();
        let name = alarm.name().to_string();
        let spec = serde_json::to_value(alarm.spec()).unwrap_or(Value::Null);
        inner.generation += 1;
        let generation = inner.generation;
        let created = match inner.alarms.get_mut(&name) {
            Some(Record {
                config: AlarmConfig::Composite(_),
                ..
            }) => {
                return Err(AlarmError::Conflict(format!(
                    "alarm `{name}` is a composite alarm"
                )));
            }
            Some(rec) => {
                rec.config = AlarmConfig::Metric(Box::new(alarm));
                rec.last_window = None;
                rec.generation = generation;
                false
            }
            None => {
                let mut rec = Record::new(AlarmConfig::Metric(Box::new(alarm)), now_ms);
                rec.generation = generation;
                inner.alarms.insert(name.clone(), rec);
                true
            }
        };
        inner.config_history(&name, created, spec, now_ms);
        self.save(&inner)
    }

    /// Creates or updates a composite alarm. Its children and suppressor
    /// must exist and the rule must not close a cycle. An update keeps the
    /// state (ending a forced one); the rule is evaluated at the next tick.
    pub fn put_composite_alarm(
        &self,
        alarm: CompositeAlarm,
        now_ms: i64,
    ) -> Result<(), AlarmError> {
        let mut inner = self.lock();
        let name = alarm.name().to_string();
        if let Some(Record {
            config: AlarmConfig::Metric(_),
            ..
        }) = inner.alarms.get(&name)
        {
            return Err(AlarmError::Conflict(format!(
                "alarm `{name}` is a metric alarm"
            )));
        }
        let mut problems = Vec::new();
        for child in alarm.rule().children() {
            if !inner.alarms.contains_key(child) {
                problems.push(Problem {
                    field: "alarm_rule".into(),
                    message: format!("alarm `{child}` does not exist"),
                });
            }
        }
        if let Some(s) = alarm.suppressor()
            && !inner.alarms.contains_key(s)
        {
            problems.push(Problem {
                field: "actions_suppressor".into(),
                message: format!("alarm `{s}` does not exist"),
            });
        }
        if problems.is_empty()
            && let Some(cycle) = inner.find_cycle(&alarm)
        {
            problems.push(Problem {
                field: "alarm_rule".into(),
                message: format!("cycle: {}", cycle.join(" -> ")),
            });
        }
        if !problems.is_empty() {
            return Err(AlarmError::Invalid(ConfigError { problems }));
        }
        let spec = serde_json::to_value(alarm.spec()).unwrap_or(Value::Null);
        let created = match inner.alarms.get_mut(&name) {
            Some(rec) => {
                rec.config = AlarmConfig::Composite(Box::new(alarm));
                rec.forced = false;
                rec.needs_eval = true;
                false
            }
            None => {
                let mut rec = Record::new(AlarmConfig::Composite(Box::new(alarm)), now_ms);
                rec.needs_eval = true;
                inner.alarms.insert(name.clone(), rec);
                true
            }
        };
        inner.config_history(&name, created, spec, now_ms);
        self.save(&inner)
    }

    /// Deletes an alarm; refused while a composite refers to it.
    pub fn delete(&self, name: &str, now_ms: i64) -> Result<(), AlarmError> {
        let mut inner = self.lock();
        if !inner.alarms.contains_key(name) {
            return Err(AlarmError::NotFound(name.to_string()));
        }
        let users: Vec<&str> = inner
            .alarms
            .values()
            .filter_map(|r| match &r.config {
                AlarmConfig::Composite(c)
                    if c.rule().children().contains(name) || c.suppressor() == Some(name) =>
                {
                    Some(c.name())
                }
                _ => None,
            })
            .collect();
        if !users.is_empty() {
            return Err(AlarmError::Conflict(format!(
                "alarm `{name}` is referenced by composite alarm {}",
                users
                    .iter()
                    .map(|u| format!("`{u}`"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        if let Some(rec) = inner.alarms.remove(name) {
            let spec = match &rec.config {
                AlarmConfig::Metric(a) => serde_json::to_value(a.spec()),
                AlarmConfig::Composite(a) => serde_json::to_value(a.spec()),
            }
            .unwrap_or(Value::Null);
            inner.push_history(
                name,
                now_ms,
                HistoryItemType::ConfigurationUpdate,
                format!("Alarm \"{name}\" deleted"),
                json!({"version": "1.0", "type": "Delete", "deletedAlarm": spec}),
            );
        }
        self.save(&inner)
    }

    /// One alarm's configuration and state.
    pub fn get(&self, name: &str) -> Option<AlarmView> {
        self.lock().alarms.get(name).map(Record::view)
    }

    /// Every alarm, by name.
    pub fn list(&self) -> Vec<AlarmView> {
        self.lock().alarms.values().map(Record::view).collect()
    }

    /// An alarm's history, newest first (also after the alarm was deleted).
    pub fn history(&self, name: &str) -> Vec<HistoryItem> {
        self.lock()
            .history
            .iter()
            .rev()
            .filter(|h| h.alarm_name == name)
            .cloned()
            .collect()
    }

    /// SetAlarmState: forces a state. Actions run if the state changed; a
    /// metric alarm returns to its computed state at its next evaluation, a
    /// composite keeps this one until a child changes or it is updated.
    pub fn set_state(
        &self,
        name: &str,
        state: AlarmState,
        reason: &str,
        reason_data: Option<Value>,
        now_ms: i64,
    ) -> Result<Vec<Dispatch>, AlarmError> {
        let chars = reason.chars().count();
        if chars > MAX_STATE_REASON_CHARS {
            return Err(AlarmError::invalid(
                "state_reason",
                format!("at most {MAX_STATE_REASON_CHARS} characters, got {chars}"),
            ));
        }
        if let Some(d) = &reason_data
            && !d.is_object()
        {
            return Err(AlarmError::invalid(
                "state_reason_data",
                "must be a JSON object".into(),
            ));
        }
        let mut inner = self.lock();
        let Some(rec) = inner.alarms.get_mut(name) else {
            return Err(AlarmError::NotFound(name.to_string()));
        };
        if matches!(rec.config, AlarmConfig::Composite(_)) {
            rec.forced = true;
            rec.needs_eval = false;
        }
        let mut out = Vec::new();
        let data = reason_data.unwrap_or_else(|| json!({}));
        if inner.transition(name, state, reason.to_string(), data, now_ms, &mut out) {
            inner.propagate(BTreeSet::from([name.to_string()]), now_ms, &mut out);
        }
        self.save(&inner)?;
        Ok(out)
    }

    /// Evaluates every metric alarm due at `now_ms` (every 10 s for periods
    /// under a minute, every minute otherwise), then the composites whose
    /// children changed, then suppressed composites' waits. Returns what to
    /// send: transitions only, with actions enabled and not suppressed.
    ///
    /// The data source is called without the lock held.
    pub fn tick(&self, now_ms: i64, data: &dyn AlarmData) -> Vec<Dispatch> {
        let due: Vec<(u64, MetricAlarm)> = {
            let mut inner = self.lock();
            inner
                .alarms
                .values_mut()
                .filter_map(|rec| match &rec.config {
                    AlarmConfig::Metric(a) => {
                        let window = now_ms.div_euclid(cadence_ms(a.period_s()));
                        (rec.last_window != Some(window)).then(|| {
                            rec.last_window = Some(window);
                            (rec.generation, (**a).clone())
                        })
                    }
                    AlarmConfig::Composite(_) => None,
                })
                .collect()
        };
        let results: Vec<_> = due
            .into_iter()
            .map(|(generation, alarm)| {
                let result = evaluate(&alarm, data, now_ms);
                (generation, alarm, result)
            })
            .collect();

        let mut inner = self.lock();
        let history_len = inner.history.len();
        let mut out = Vec::new();
        let mut changed = BTreeSet::new();
        let mut dirty = false;
        for (generation, alarm, result) in results {
            let name = alarm.name();
            let Some(rec) = inner.alarms.get_mut(name) else {
                continue;
            };
            if rec.generation != generation {
                continue; // updated meanwhile; the next tick evaluates the new config
            }
            let ev = match result {
                Ok(ev) => ev,
                Err(err) => {
                    if rec.last_error.as_deref() != Some(err.as_str()) {
                        tracing::warn!(alarm = %name, error = %err, "alarm data fetch failed; state unchanged");
                        rec.last_error = Some(err);
                        dirty = true;
                    }
                    continue;
                }
            };
            if rec.last_error.take().is_some() {
                dirty = true;
            }
            let old = rec.state.value;
            if let Some(new) = ev.state
                && new != old
            {
                let text = reason_text(&alarm, &ev, old, new);
                let data = reason_data(&alarm, &ev);
                inner.transition(name, new, text, data, now_ms, &mut out);
                changed.insert(name.to_string());
            }
        }
        inner.propagate(changed, now_ms, &mut out);
        inner.release_pending(now_ms, &mut out);
        inner.prune(now_ms);
        if dirty || inner.history.len() != history_len || !out.is_empty() {
            self.save_logged(&inner);
        }
        out
    }

    /// The engine's state document (alarms, states, history) as JSON: what
    /// a fleet's evaluating replica shares so that the next one continues
    /// from it ([`AlarmEngine::adopt_state`]).
    pub fn export_state(&self) -> Vec<u8> {
        let inner = self.lock();
        serde_json::to_vec(&*inner).unwrap_or_default()
    }

    /// Continues from another replica's [`AlarmEngine::export_state`]: each
    /// alarm this engine also has takes that document's state (value,
    /// reason, suppression wait, forced flag); the histories are merged.
    /// The set of alarms and their configurations stay this engine's own
    /// (every replica reads the same config file), and the alarms are
    /// evaluated at the next tick.
    pub fn adopt_state(&self, document: &[u8]) -> Result<(), AlarmError> {
        let theirs: Inner =
            serde_json::from_slice(document).map_err(|err| AlarmError::Storage {
                path: "the shared alarm state".to_owned(),
                message: err.to_string(),
            })?;
        let mut inner = self.lock();
        let mut changed = false;
        for (name, rec) in theirs.alarms {
            let Some(mine) = inner.alarms.get_mut(&name) else {
                continue;
            };
            if mine.state != rec.state
                || mine.left_alarm_at_ms != rec.left_alarm_at_ms
                || mine.forced != rec.forced
                || mine.pending != rec.pending
            {
                mine.state = rec.state;
                mine.left_alarm_at_ms = rec.left_alarm_at_ms;
                mine.forced = rec.forced;
                mine.pending = rec.pending;
                mine.last_error = rec.last_error;
                changed = true;
            }
        }
        let before = inner.history.len();
        let mut history: Vec<HistoryItem> = inner.history.drain(..).chain(theirs.history).collect();
        history.sort_by(|a, b| {
            (a.timestamp_ms, &a.alarm_name, &a.summary).cmp(&(
                b.timestamp_ms,
                &b.alarm_name,
                &b.summary,
            ))
        });
        history.dedup();
        changed |= history.len() != before;
        inner.history = history.into();
        if changed {
            self.save_logged(&inner);
        }
        Ok(())
    }

    /// Records the outcome of one action (called by the notifier): `state`
    /// picks the action list, `action_index` the action in it.
    pub fn record_action_result(
        &self,
        name: &str,
        state: AlarmState,
        action_index: usize,
        result: Result<(), String>,
        now_ms: i64,
    ) {
        let mut inner = self.lock();
        let action = inner.alarms.get(name).and_then(|r| {
            let list = match &r.config {
                AlarmConfig::Metric(a) => a.actions(state),
                AlarmConfig::Composite(a) => a.actions(state),
            };
            list.get(action_index).map(describe_action)
        });
        let action = action.unwrap_or_else(|| format!("{} action {action_index}", state.as_str()));
        let (summary, data) = match &result {
            Ok(()) => (
                format!("Successfully executed action {action}"),
                json!({"actionState": "Succeeded", "notificationResource": action, "stateValue": state}),
            ),
            Err(e) => (
                format!("Failed to execute action {action}. Received error: \"{e}\""),
                json!({"actionState": "Failed", "notificationResource": action, "stateValue": state, "error": e}),
            ),
        };
        inner.push_history(name, now_ms, HistoryItemType::Action, summary, data);
        self.save_logged(&inner);
    }
}

fn describe_action(a: &Action) -> String {
    match a {
        Action::Webhook { url, .. } => format!("webhook {url}"),
        Action::Alertmanager { url } => format!("alertmanager {url}"),
        Action::Email { to } => format!("email {}", to.join(", ")),
    }
}

impl Record {
    fn new(config: AlarmConfig, now_ms: i64) -> Self {
        Record {
            config,
            state: StateInfo {
                value: AlarmState::InsufficientData,
                reason: "Unchecked: Initial alarm creation".into(),
                reason_data: json!({}),
                updated_at: now_ms,
            },
            left_alarm_at_ms: None,
            forced: false,
            needs_eval: false,
            pending: None,
            last_error: None,
            last_window: None,
            generation: 0,
        }
    }

    fn view(&self) -> AlarmView {
        AlarmView {
            config: self.config.clone(),
            state_value: self.state.value,
            state_reason: self.state.reason.clone(),
            state_reason_data: self.state.reason_data.clone(),
            state_updated_at_ms: self.state.updated_at,
            evaluation_error: self.last_error.clone(),
        }
    }
}

impl Inner {
    fn push_history(
        &mut self,
        name: &str,
        now_ms: i64,
        item_type: HistoryItemType,
        summary: String,
        data: Value,
    ) {
        self.history.push_back(HistoryItem {
            alarm_name: name.to_string(),
            timestamp_ms: now_ms,
            item_type,
            summary,
            data,
        });
    }

    fn prune(&mut self, now_ms: i64) {
        let oldest = now_ms - HISTORY_RETENTION_MS;
        self.history.retain(|h| h.timestamp_ms >= oldest);
    }

    fn config_history(&mut self, name: &str, created: bool, spec: Value, now_ms: i64) {
        let (summary, data) = if created {
            (
                format!("Alarm \"{name}\" created"),
                json!({"version": "1.0", "type": "Create", "createdAlarm": spec}),
            )
        } else {
            (
                format!("Alarm \"{name}\" updated"),
                json!({"version": "1.0", "type": "Update", "updatedAlarm": spec}),
            )
        };
        self.push_history(
            name,
            now_ms,
            HistoryItemType::ConfigurationUpdate,
            summary,
            data,
        );
        self.prune(now_ms);
    }

    /// Moves `name` to `new` if that is a change: history, and the dispatch
    /// (or the wait for a suppressor). Returns whether the state changed.
    fn transition(
        &mut self,
        name: &str,
        new: AlarmState,
        reason: String,
        reason_data: Value,
        now_ms: i64,
        out: &mut Vec<Dispatch>,
    ) -> bool {
        let Some(rec) = self.alarms.get_mut(name) else {
            return false;
        };
        let old = rec.state.clone();
        if old.value == new {
            return false;
        }
        if old.value == AlarmState::Alarm {
            rec.left_alarm_at_ms = Some(now_ms);
        }
        rec.state = StateInfo {
            value: new,
            reason: reason.clone(),
            reason_data: reason_data.clone(),
            updated_at: now_ms,
        };
        let (description, actions, enabled, source, suppressor) = match &rec.config {
            AlarmConfig::Metric(a) => (
                a.spec().description.clone(),
                a.actions(new).to_vec(),
                a.actions_enabled(),
                Some(a.source().clone()),
                None,
            ),
            AlarmConfig::Composite(a) => (
                a.spec().description.clone(),
                a.actions(new).to_vec(),
                a.actions_enabled(),
                None,
                a.suppressor()
                    .map(|s| (s.to_string(), a.wait_period_ms(), a.extension_period_ms())),
            ),
        };
        tracing::info!(alarm = %name, from = old.value.as_str(), to = new.as_str(),
            reason = %reason, "alarm state changed");
        let history_data = json!({
            "version": "1.0",
            "oldState": {"stateValue": old.value, "stateReason": old.reason},
            "newState": {"stateValue": new, "stateReason": reason, "stateReasonData": reason_data},
        });
        self.push_history(
            name,
            now_ms,
            HistoryItemType::StateUpdate,
            format!(
                "Alarm updated from {} to {}",
                old.value.as_str(),
                new.as_str()
            ),
            history_data,
        );
        if !enabled || actions.is_empty() {
            return true;
        }
        let (namespace, metric_name, dimensions) = match source {
            Some(MetricSource::Single {
                namespace,
                metric_name,
                dimensions,
                ..
            }) => (Some(namespace), Some(metric_name), dimensions),
            _ => (None, None, Default::default()),
        };
        let notification = Notification {
            alarm_name: name.to_string(),
            alarm_description: description,
            old_state: old.value,
            new_state: new,
            reason,
            reason_data,
            timestamp_ms: now_ms,
            namespace,
            metric_name,
            dimensions,
        };
        match suppressor {
            None => out.push((notification, actions)),
            Some((sup, wait_ms, extension_ms)) => {
                let (sup_state, sup_left) = self
                    .alarms
                    .get(&sup)
                    .map(|r| (r.state.value, r.left_alarm_at_ms))
                    .unwrap_or((AlarmState::InsufficientData, None));
                if sup_state == AlarmState::Alarm
                    || sup_left.is_some_and(|t| now_ms < t + extension_ms)
                {
                    self.suppressed(name, &sup, now_ms);
                } else if wait_ms > 0 {
                    if let Some(rec) = self.alarms.get_mut(name) {
                        rec.pending = Some(Pending {
                            notification,
                            actions,
                            deadline_ms: now_ms + wait_ms,
                        });
                    }
                } else {
                    out.push((notification, actions));
                }
            }
        }
        true
    }

    fn suppressed(&mut self, name: &str, suppressor: &str, now_ms: i64) {
        self.push_history(
            name,
            now_ms,
            HistoryItemType::Action,
            format!("Actions suppressed by alarm \"{suppressor}\""),
            json!({"actionState": "Suppressed", "suppressor": suppressor}),
        );
    }

    /// Composites waiting for their suppressor: suppressed if it went to
    /// ALARM (or is in its extension), sent once the wait is over.
    fn release_pending(&mut self, now_ms: i64, out: &mut Vec<Dispatch>) {
        let waiting: Vec<String> = self
            .alarms
            .iter()
            .filter(|(_, r)| r.pending.is_some())
            .map(|(n, _)| n.clone())
            .collect();
        for name in waiting {
            let Some(rec) = self.alarms.get(&name) else {
                continue;
            };
            let AlarmConfig::Composite(c) = &rec.config else {
                continue;
            };
            let sup = c.suppressor().unwrap_or_default().to_string();
            let extension_ms = c.extension_period_ms();
            let deadline = rec.pending.as_ref().map_or(i64::MIN, |p| p.deadline_ms);
            let (sup_state, sup_left) = self
                .alarms
                .get(&sup)
                .map(|r| (r.state.value, r.left_alarm_at_ms))
                .unwrap_or((AlarmState::InsufficientData, None));
            if sup_state == AlarmState::Alarm || sup_left.is_some_and(|t| now_ms < t + extension_ms)
            {
                if let Some(rec) = self.alarms.get_mut(&name) {
                    rec.pending = None;
                }
                self.suppressed(&name, &sup, now_ms);
            } else if now_ms >= deadline
                && let Some(p) = self.alarms.get_mut(&name).and_then(|r| r.pending.take())
            {
                out.push((p.notification, p.actions));
            }
        }
    }

    /// Re-evaluates, in dependency order, the composites created or updated
    /// since the last tick and those with a changed child.
    fn propagate(&mut self, mut changed: BTreeSet<String>, now_ms: i64, out: &mut Vec<Dispatch>) {
        for name in self.composite_order() {
            let Some(rec) = self.alarms.get(&name) else {
                continue;
            };
            let AlarmConfig::Composite(c) = &rec.config else {
                continue;
            };
            let children = c.rule().children();
            let trigger: Vec<&str> = children
                .iter()
                .copied()
                .filter(|ch| changed.contains(*ch))
                .collect();
            if !rec.needs_eval && trigger.is_empty() {
                continue;
            }
            let state_of = |n: &str| self.alarms.get(n).map(|r| r.state.value);
            let value = c.rule().eval(&state_of);
            let new = if value {
                AlarmState::Alarm
            } else {
                AlarmState::Ok
            };
            let reason = match trigger
                .first()
                .and_then(|t| self.alarms.get(*t).map(|r| (t, r)))
            {
                Some((t, r)) => format!(
                    "{t} transitioned to {} at {}",
                    r.state.value.as_str(),
                    format_rfc3339_ms(r.state.updated_at)
                ),
                None => format!(
                    "alarm rule evaluated to {}",
                    if value { "TRUE" } else { "FALSE" }
                ),
            };
            let triggering: Vec<Value> = children
                .iter()
                .filter_map(|ch| {
                    self.alarms.get(*ch).map(|r| {
                        json!({"name": ch, "state": {"value": r.state.value,
                            "timestamp": format_rfc3339_ms(r.state.updated_at)}})
                    })
                })
                .collect();
            let data = json!({"triggeringAlarms": triggering});
            if let Some(rec) = self.alarms.get_mut(&name) {
                rec.needs_eval = false;
                rec.forced = false;
            }
            if self.transition(&name, new, reason, data, now_ms, out) {
                changed.insert(name);
            }
        }
    }

    /// Composites ordered so that each comes after the composites it refers to.
    fn composite_order(&self) -> Vec<String> {
        fn visit<'a>(
            inner: &'a Inner,
            name: &'a str,
            seen: &mut BTreeSet<&'a str>,
            out: &mut Vec<String>,
        ) {
            if !seen.insert(name) {
                return;
            }
            if let Some(Record {
                config: AlarmConfig::Composite(c),
                ..
            }) = inner.alarms.get(name)
            {
                for ch in c.rule().children() {
                    visit(inner, ch, seen, out);
                }
                out.push(name.to_string());
            }
        }
        let mut seen = BTreeSet::new();
        let mut out = Vec::new();
        for name in self.alarms.keys() {
            visit(self, name, &mut seen, &mut out);
        }
        out
    }

    /// A path `new -> ... -> new` through composite rules if `new` closes one.
    fn find_cycle(&self, new: &CompositeAlarm) -> Option<Vec<String>> {
        fn dfs(
            inner: &Inner,
            new: &CompositeAlarm,
            at: &str,
            path: &mut Vec<String>,
            done: &mut BTreeSet<String>,
        ) -> bool {
            if at == new.name() && !path.is_empty() {
                path.push(at.to_string());
                return true;
            }
            if done.contains(at) {
                return false;
            }
            let children: Vec<String> = if at == new.name() {
                new.rule()
                    .children()
                    .into_iter()
                    .map(String::from)
                    .collect()
            } else {
                match inner.alarms.get(at) {
                    Some(Record {
                        config: AlarmConfig::Composite(c),
                        ..
                    }) => c.rule().children().into_iter().map(String::from).collect(),
                    _ => Vec::new(),
                }
            };
            path.push(at.to_string());
            for ch in children {
                if dfs(inner, new, &ch, path, done) {
                    return true;
                }
            }
            path.pop();
            done.insert(at.to_string());
            false
        }
        let mut path = Vec::new();
        let mut done = BTreeSet::new();
        dfs(self, new, new.name(), &mut path, &mut done).then_some(path)
    }
}
