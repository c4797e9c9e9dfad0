//! `vigil alarms list|get|put|delete|history|set-state|export`: the alarms
//! of a running server through its HTTP API (`/api/alarms`); `export`
//! turns the metric alarms into a Prometheus alerting-rules file.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Value, json};

use vigil_metrics::alarm::prometheus::{self, Skipped};
use vigil_metrics::alarm::{MetricAlarm, MetricAlarmSpec};

use crate::api_client::{Api, ServerArgs, encode};
use crate::metrics::read_json;
use crate::table::{self, Output};

#[derive(Debug, Args)]
#[command(
    about = "Manage the alarms of a running server (list, get, put, delete, history, set-state)",
    long_about = "Manage the alarms of a running server through its HTTP API (/api/alarms...). \
        A metric alarm watches one metric's statistic (or a metric-math expression) against a \
        threshold over N periods; a composite alarm combines other alarms' states with a rule \
        (ALARM(a) AND NOT OK(b)). States: OK, ALARM, INSUFFICIENT_DATA (a new alarm starts \
        there). The admin API needs a key with the admin role when the server has [[keys]] \
        (--api-key or VIGIL_API_KEY).\n\n\
        Examples:\n  \
        vigil alarms put high-latency --file alarm.json\n  \
        vigil alarms list --state ALARM\n  \
        vigil alarms get high-latency\n  \
        vigil alarms history high-latency\n  \
        vigil alarms set-state high-latency --state ALARM --reason 'testing the pager'\n  \
        vigil alarms delete high-latency\n  \
        vigil alarms export --format prometheus --output vigil-rules.yml"
)]
pub struct AlarmsArgs {
    #[command(flatten)]
    server: ServerArgs,

    #[command(subcommand)]
    command: AlarmsCommand,
}

#[derive(Debug, Subcommand)]
enum AlarmsCommand {
    /// List the alarms with their state.
    #[command(
        long_about = "List the alarms: name, type (metric or composite), state, \
        what it watches (metric, statistic and condition, or the composite rule) and when \
        its state last changed (RFC 3339 UTC).\n\n\
        Examples:\n  vigil alarms list\n  vigil alarms list --state ALARM\n  \
        vigil alarms list --output json"
    )]
    List(ListArgs),
    /// Show one alarm: its configuration and state, as JSON.
    #[command(
        long_about = "Show one alarm as the server returns it: its configuration \
        plus alarm_type, state_value, state_reason, state_reason_data and \
        state_updated_at, as JSON.\n\n\
        Example:\n  vigil alarms get high-latency"
    )]
    Get(NameArgs),
    /// Create or replace an alarm from a JSON file.
    #[command(
        long_about = "Create an alarm, or replace its configuration (its state is \
        kept), from a JSON file (- for stdin). A metric alarm:\n  \
        {\"namespace\": \"Vigil/Function\", \"metric_name\": \"Duration\", \
        \"dimensions\": {\"model\": \"fraud\", \"version\": \"1\"}, \"extended_statistic\": \"p99\", \"period\": 60, \
        \"evaluation_periods\": 3, \"datapoints_to_alarm\": 2, \"threshold\": 250, \
        \"comparison_operator\": \"GreaterThanThreshold\", \"treat_missing_data\": \"notBreaching\", \
        \"alarm_actions\": [{\"type\": \"webhook\", \"url\": \"https://hooks.example/pager\"}]}\n\
        A composite alarm:\n  \
        {\"alarm_rule\": \"ALARM(high-latency) AND ALARM(high-errors)\"}\n\
        The name comes from the command line; a `name` in the file must match it. The \
        server checks the whole configuration and reports every problem at once.\n\n\
        Examples:\n  vigil alarms put high-latency --file alarm.json\n  \
        cat alarm.json | vigil alarms put high-latency --file -"
    )]
    Put(PutArgs),
    /// Delete an alarm.
    #[command(long_about = "Delete an alarm (its history is kept for 30 days).\n\n\
        Example:\n  vigil alarms delete high-latency")]
    Delete(NameArgs),
    /// An alarm's history: configuration updates, state changes, actions.
    #[command(long_about = "An alarm's history, as the server keeps it (30 days): \
        ConfigurationUpdate, StateUpdate and Action items with their time (RFC 3339 UTC) \
        and summary; --output json adds each item's data.\n\n\
        Examples:\n  vigil alarms history high-latency\n  \
        vigil alarms history high-latency --output json")]
    History(HistoryArgs),
    /// Force an alarm's state (to test its actions).
    #[command(
        long_about = "Force an alarm's state, with a reason (SetAlarmState). The \
        actions of the new state run if the state changed. A metric alarm returns to its \
        computed state at its next evaluation; a composite alarm keeps the forced state \
        until a child changes.\n\n\
        Examples:\n  vigil alarms set-state high-latency --state ALARM --reason 'testing the pager'\n  \
        vigil alarms set-state high-latency --state OK --reason 'fixed' --data '{\"ticket\": 42}'"
    )]
    SetState(SetStateArgs),
    /// Export the metric alarms as a Prometheus alerting-rules file.
    #[command(long_about = "Export the server's metric alarms as a Prometheus \
        alerting-rules file (one group, `vigil-alarms`, one rule per alarm) over the \
        families Vigil exposes on GET /metrics, so a Prometheus that scrapes Vigil can \
        alert the same way. Alarms PromQL cannot express (composites, metric math, \
        custom namespaces that never reach /metrics, Minimum, trimmed means, \
        treat_missing_data = breaching, ...) are left out and listed on stderr with the \
        reason. Check the file with `promtool check rules FILE`.\n\n\
        Examples:\n  vigil alarms export --format prometheus --output vigil-rules.yml\n  \
        vigil alarms export --format prometheus > vigil-rules.yml")]
    Export(ExportArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum State {
    #[value(name = "OK")]
    Ok,
    #[value(name = "ALARM")]
    Alarm,
    #[value(name = "INSUFFICIENT_DATA")]
    InsufficientData,
}

impl State {
    fn as_str(self) -> &'static str {
        match self {
            State::Ok => "OK",
            State::Alarm => "ALARM",
            State::InsufficientData => "INSUFFICIENT_DATA",
        }
    }
}

#[derive(Debug, Args)]
struct ListArgs {
    /// Only alarms in this state.
    #[arg(long, value_enum)]
    state: Option<State>,
    /// Table or the server's JSON.
    #[arg(long, value_enum, default_value = "table")]
    output: Output,
}

#[derive(Debug, Args)]
struct NameArgs {
    /// The alarm's name.
    name: String,
}

#[derive(Debug, Args)]
struct PutArgs {
    /// The alarm's name.
    name: String,
    /// The configuration as JSON; `-` for stdin.
    #[arg(long, value_name = "FILE")]
    file: PathBuf,
}

#[derive(Debug, Args)]
struct HistoryArgs {
    /// The alarm's name.
    name: String,
    /// Table or the server's JSON.
    #[arg(long, value_enum, default_value = "table")]
    output: Output,
}

#[derive(Debug, Args)]
struct SetStateArgs {
    /// The alarm's name.
    name: String,
    /// The state to set.
    #[arg(long, value_enum)]
    state: State,
    /// Why (kept as the state reason and in the history).
    #[arg(long, value_name = "TEXT")]
    reason: String,
    /// Reason data, a JSON object.
    #[arg(long, value_name = "JSON")]
    data: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ExportFormat {
    /// A Prometheus alerting-rules file (YAML).
    Prometheus,
}

#[derive(Debug, Args)]
struct ExportArgs {
    /// The file format.
    #[arg(long, value_enum)]
    format: ExportFormat,
    /// Write here instead of stdout.
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,
}

/// Run `vigil alarms ...`.
pub fn run(args: AlarmsArgs) -> anyhow::Result<()> {
    let command = args.command;
    args.server.block_on(|api| async move {
        match command {
            AlarmsCommand::List(list) => run_list(&api, &list).await,
            AlarmsCommand::Get(get) => run_get(&api, &get).await,
            AlarmsCommand::Put(put) => run_put(&api, &put).await,
            AlarmsCommand::Delete(delete) => run_delete(&api, &delete).await,
            AlarmsCommand::History(history) => run_history(&api, &history).await,
            AlarmsCommand::SetState(set) => run_set_state(&api, &set).await,
            AlarmsCommand::Export(export) => run_export(&api, &export).await,
        }
    })
}

fn alarm_path(name: &str) -> String {
    format!("/api/alarms/{}", encode(name))
}

/// `GET /api/alarms[?state=S]`: the body and its `alarms` array.
async fn fetch_alarms(
    api: &Api,
    state: Option<State>,
) -> anyhow::Result<(bytes::Bytes, Vec<Value>)> {
    let path = match state {
        Some(state) => format!("/api/alarms?state={}", state.as_str()),
        None => "/api/alarms".to_owned(),
    };
    let body = api.get(&path).await?;
    let mut value: Value =
        serde_json::from_slice(&body).context("the server's answer is not json")?;
    let Some(Value::Array(alarms)) = value.get_mut("alarms").map(Value::take) else {
        bail!("the server's answer has no `alarms` list");
    };
    Ok((body, alarms))
}

async fn run_list(api: &Api, args: &ListArgs) -> anyhow::Result<()> {
    let (body, alarms) = fetch_alarms(api, args.state).await?;
    let mut out = std::io::stdout().lock();
    if args.output == Output::Json {
        writeln!(out, "{}", table::pretty(&body)?)?;
        return Ok(());
    }
    let rows: Vec<Vec<String>> = alarms
        .iter()
        .map(|a| {
            vec![
                text(&a["name"]),
                text(&a["alarm_type"]),
                text(&a["state_value"]),
                watches(a),
                text(&a["state_updated_at"]),
            ]
        })
        .collect();
    write!(
        out,
        "{}",
        table::render(
            &["name", "type", "state", "metric or rule", "updated"],
            &rows
        )
    )?;
    Ok(())
}

fn text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => "-".to_owned(),
        other => other.to_string(),
    }
}

/// What an alarm watches, in one line: `Vigil/Gateway/LatencyMs{model=fraud}
/// p99 > 250 (2 of 3 × 60s)`, `math: 100*e/i > 5 ...` or the composite rule.
fn watches(alarm: &Value) -> String {
    if let Some(rule) = alarm["alarm_rule"].as_str() {
        return rule.to_owned();
    }
    let what = match (alarm["namespace"].as_str(), alarm["metric_name"].as_str()) {
        (Some(ns), Some(name)) => {
            let dims = alarm["dimensions"]
                .as_object()
                .filter(|d| !d.is_empty())
                .map(|d| {
                    let pairs: Vec<String> =
                        d.iter().map(|(k, v)| format!("{k}={}", text(v))).collect();
                    format!("{{{}}}", pairs.join(","))
                })
                .unwrap_or_default();
            let stat = alarm["extended_statistic"]
                .as_str()
                .or(alarm["statistic"].as_str())
                .unwrap_or("?");
            format!("{ns}/{name}{dims} {stat}")
        }
        _ => {
            let returned = alarm["metrics"].as_array().and_then(|m| {
                m.iter()
                    .find(|e| e["return_data"] != false)
                    .and_then(|e| e["expression"].as_str().map(str::to_owned))
            });
            format!("math: {}", returned.unwrap_or_else(|| "?".to_owned()))
        }
    };
    let op = match alarm["comparison_operator"].as_str() {
        Some("GreaterThanOrEqualToThreshold") => ">=",
        Some("GreaterThanThreshold") => ">",
        Some("LessThanThreshold") => "<",
        Some("LessThanOrEqualToThreshold") => "<=",
        _ => "?",
    };
    let n = alarm["evaluation_periods"].as_u64().unwrap_or(0);
    let m = alarm["datapoints_to_alarm"].as_u64().unwrap_or(n);
    let period = alarm["period"]
        .as_u64()
        .map(|p| format!(" × {p}s"))
        .unwrap_or_default();
    format!(
        "{what} {op} {} ({m} of {n}{period})",
        table::number(alarm["threshold"].as_f64())
    )
}

async fn run_get(api: &Api, args: &NameArgs) -> anyhow::Result<()> {
    let body = api.get(&alarm_path(&args.name)).await?;
    writeln!(std::io::stdout().lock(), "{}", table::pretty(&body)?)?;
    Ok(())
}

/// The PUT body: the file's object, with the command line's name.
fn put_body(name: &str, mut config: Value) -> anyhow::Result<Value> {
    let Some(object) = config.as_object_mut() else {
        bail!("the alarm file must hold a json object");
    };
    match object.get("name") {
        None => {
            object.insert("name".into(), json!(name));
        }
        Some(Value::String(n)) if n == name => {}
        Some(other) => bail!(
            "the alarm file's `name` is {other}, but the command line says `{name}`: drop it \
             from the file or make them match"
        ),
    }
    Ok(config)
}

async fn run_put(api: &Api, args: &PutArgs) -> anyhow::Result<()> {
    let body = put_body(&args.name, read_json(&args.file)?)?;
    api.send(
        hyper::Method::PUT,
        &alarm_path(&args.name),
        Some(serde_json::to_vec(&body)?),
    )
    .await?;
    eprintln!("alarm {} saved", args.name);
    Ok(())
}

async fn run_delete(api: &Api, args: &NameArgs) -> anyhow::Result<()> {
    api.send(hyper::Method::DELETE, &alarm_path(&args.name), None)
        .await?;
    eprintln!("alarm {} deleted", args.name);
    Ok(())
}

async fn run_history(api: &Api, args: &HistoryArgs) -> anyhow::Result<()> {
    let body = api
        .get(&format!("{}/history", alarm_path(&args.name)))
        .await?;
    let mut out = std::io::stdout().lock();
    if args.output == Output::Json {
        writeln!(out, "{}", table::pretty(&body)?)?;
        return Ok(());
    }
    let value: Value = serde_json::from_slice(&body).context("the server's answer is not json")?;
    let items = value["items"].as_array().cloned().unwrap_or_default();
    let rows: Vec<Vec<String>> = items
        .iter()
        .map(|i| {
            vec![
                text(&i["timestamp"]),
                text(&i["item_type"]),
                text(&i["summary"]),
            ]
        })
        .collect();
    write!(
        out,
        "{}",
        table::render(&["timestamp", "type", "summary"], &rows)
    )?;
    Ok(())
}

async fn run_set_state(api: &Api, args: &SetStateArgs) -> anyhow::Result<()> {
    let data = match &args.data {
        Some(text) => {
            let data: Value = serde_json::from_str(text).context("--data is not valid json")?;
            if !data.is_object() {
                bail!("--data must be a json object, got {data}");
            }
            data
        }
        None => json!({}),
    };
    let body = json!({
        "state_value": args.state.as_str(),
        "state_reason": args.reason,
        "state_reason_data": data,
    });
    api.send(
        hyper::Method::POST,
        &format!("{}/state", alarm_path(&args.name)),
        Some(serde_json::to_vec(&body)?),
    )
    .await?;
    eprintln!("alarm {} set to {}", args.name, args.state.as_str());
    Ok(())
}

/// Keys of an alarm view that are state, not configuration.
const READ_ONLY: [&str; 6] = [
    "alarm_type",
    "state_value",
    "state_reason",
    "state_reason_data",
    "state_updated_at",
    "evaluation_error",
];

/// A view of `GET /api/alarms` back to a validated metric alarm; `Err` is
/// why it cannot be exported.
fn metric_alarm(view: &Value) -> Result<MetricAlarm, String> {
    let mut config = view.clone();
    let Some(object) = config.as_object_mut() else {
        return Err("the server sent an alarm that is not a json object".to_owned());
    };
    if object.get("alarm_type").and_then(Value::as_str) == Some("composite") {
        return Err(
            "composite alarms combine alarm states, which prometheus rules cannot read".to_owned(),
        );
    }
    for key in READ_ONLY {
        object.remove(key);
    }
    let spec: MetricAlarmSpec = serde_json::from_value(config)
        .map_err(|err| format!("the configuration does not read as a metric alarm: {err}"))?;
    spec.validate()
        .map_err(|err| format!("the configuration does not validate: {err}"))
}

async fn run_export(api: &Api, args: &ExportArgs) -> anyhow::Result<()> {
    let ExportFormat::Prometheus = args.format;
    let (_, views) = fetch_alarms(api, None).await?;
    let mut alarms = Vec::new();
    let mut skipped = Vec::new();
    for view in &views {
        match metric_alarm(view) {
            Ok(alarm) => alarms.push(alarm),
            Err(reason) => skipped.push(Skipped {
                alarm: text(&view["name"]),
                reason,
            }),
        }
    }
    let export = prometheus::rules(&alarms, &vigil_server::telemetry::names::families());
    skipped.extend(export.skipped);
    match &args.output {
        Some(path) => std::fs::write(path, &export.yaml)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => std::io::stdout().lock().write_all(export.yaml.as_bytes())?,
    }
    for s in &skipped {
        eprintln!("skipped {}: {}", s.alarm, s.reason);
    }
    let exported = views.len().saturating_sub(skipped.len());
    eprintln!(
        "exported {exported} of {} alarm(s){}",
        views.len(),
        args.output
            .as_ref()
            .map(|p| format!(" to {}", p.display()))
            .unwrap_or_default()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_put_body_carries_the_command_line_name() {
        let body = put_body("lat", json!({"threshold": 1})).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(body["name"], json!("lat"));
        assert!(put_body("lat", json!({"name": "lat"})).is_ok());
        assert!(put_body("lat", json!({"name": "other"})).is_err());
        assert!(put_body("lat", json!([1])).is_err());
    }

    #[test]
    fn a_metric_alarm_reads_as_metric_stat_and_condition() {
        let alarm = json!({"namespace": "Vigil/Gateway", "metric_name": "LatencyMs",
            "dimensions": {"model": "fraud"}, "extended_statistic": "p99", "period": 60,
            "evaluation_periods": 3, "datapoints_to_alarm": 2, "threshold": 250.0,
            "comparison_operator": "GreaterThanThreshold"});
        assert_eq!(
            watches(&alarm),
            "Vigil/Gateway/LatencyMs{model=fraud} p99 > 250 (2 of 3 × 60s)"
        );
        let math = json!({"metrics": [{"id": "e", "return_data": false},
            {"id": "r", "expression": "100*e/i"}], "evaluation_periods": 1, "threshold": 5,
            "comparison_operator": "GreaterThanOrEqualToThreshold"});
        assert_eq!(watches(&math), "math: 100*e/i >= 5 (1 of 1)");
        assert_eq!(watches(&json!({"alarm_rule": "ALARM(a)"})), "ALARM(a)");
    }

    #[test]
    fn a_view_without_its_state_keys_is_a_metric_alarm_again() {
        let view = json!({"name": "lat", "namespace": "InferencePipeline",
            "metric_name": "LatencyMs", "extended_statistic": "p99", "period": 60,
            "evaluation_periods": 3, "datapoints_to_alarm": 2, "threshold": 250.0,
            "comparison_operator": "GreaterThanThreshold", "alarm_actions": [],
            "ok_actions": [], "insufficient_data_actions": [], "actions_enabled": true,
            "alarm_type": "metric", "state_value": "OK", "state_reason": "x",
            "state_reason_data": {}, "state_updated_at": "2026-01-01T00:00:00.000Z",
            "evaluation_error": "boom"});
        let alarm = metric_alarm(&view).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(alarm.name(), "lat");
        assert_eq!(alarm.datapoints_to_alarm(), 2);
        let composite = json!({"name": "c", "alarm_rule": "ALARM(lat)", "alarm_type": "composite"});
        assert!(metric_alarm(&composite).unwrap_err().contains("composite"));
        let broken = json!({"name": "b", "alarm_type": "metric", "period": 7});
        assert!(
            metric_alarm(&broken)
                .unwrap_err()
                .contains("does not validate")
        );
    }
}
