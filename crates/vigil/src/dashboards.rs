//! `vigil dashboards list|get|put|delete|export`: the dashboards of a
//! running server through its HTTP API (`/api/dashboards`), the ones the
//! console at `/` draws; `export` turns one into a Grafana dashboard over
//! the series `/metrics` exposes.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::Value;
use vigil_metrics::dashboard::grafana;

use crate::api_client::{Api, ServerArgs, encode};
use crate::metrics::read_json;
use crate::table::{self, Output};

#[derive(Debug, Args)]
#[command(
    about = "Manage the console's dashboards on a running server (list, get, put, delete, export)",
    long_about = "Manage the dashboards of a running server through its HTTP API \
        (/api/dashboards...); the web console at http://HOST:PORT/ draws them. A dashboard \
        body is the cloud's dashboard-body JSON: {\"widgets\": [...]} on a 24-column grid, each \
        widget a type (metric, text, alarm, log, trace-list, service-map), a position \
        (x, y, width, height) and its properties. Two dashboards are built in \
        (Inference-Monitoring-Dashboard and Vigil-Overview); a PUT replaces one, a delete \
        brings it back. The admin API needs a key with the admin role when the server has \
        [[keys]] (--api-key or VIGIL_API_KEY).\n\n\
        Examples:\n  \
        vigil dashboards list\n  \
        vigil dashboards get Inference-Monitoring-Dashboard > seed.json\n  \
        vigil dashboards put Payments --file payments.json\n  \
        vigil dashboards delete Payments\n  \
        vigil dashboards export Vigil-Overview --format grafana --output vigil-overview.json"
)]
pub struct DashboardsArgs {
    #[command(flatten)]
    server: ServerArgs,

    #[command(subcommand)]
    command: DashboardsCommand,
}

#[derive(Debug, Subcommand)]
enum DashboardsCommand {
    /// List the dashboards: name, where each comes from, its widget count.
    #[command(
        long_about = "List the dashboards: name, source (builtin, config for the \
        config file's [[dashboards]], api for those put through the API) and widget count.\n\n\
        Examples:\n  vigil dashboards list\n  vigil dashboards list --output json"
    )]
    List(ListArgs),
    /// Print one dashboard's body as JSON (ready for `put --file`).
    #[command(
        long_about = "Print one dashboard's body, {\"widgets\": [...]}, as JSON: \
        the file `put --file` takes, so a dashboard is copied or edited with\n  \
        vigil dashboards get Vigil-Overview > mine.json   # edit it\n  \
        vigil dashboards put Mine --file mine.json\n\
        --output json prints the server's whole answer (name, source, body)."
    )]
    Get(GetArgs),
    /// Create or replace a dashboard from a JSON file of its body.
    #[command(
        long_about = "Create or replace a dashboard from a JSON file (- for stdin) \
        holding its body, e.g.\n  \
        {\"widgets\": [{\"type\": \"metric\", \"x\": 0, \"y\": 0, \"width\": 12, \"height\": 6,\n    \
        \"properties\": {\"metrics\": [[\"InferencePipeline\", \"LatencyMs\", {\"stat\": \"p99\"}]],\n    \
        \"view\": \"timeSeries\", \"period\": 60, \"title\": \"p99 latency\"}}]}\n\
        Names are 1-255 letters, digits, - and _. The server checks the whole body and names \
        every problem by widget index and field (widgets[2].properties.metrics[0][2]: ...).\n\n\
        Examples:\n  vigil dashboards put Payments --file payments.json\n  \
        cat payments.json | vigil dashboards put Payments --file -"
    )]
    Put(PutArgs),
    /// Delete a dashboard.
    #[command(
        long_about = "Delete a dashboard. A dashboard put through the API goes (a \
        built-in one of the same name shows again); one from the config file stays deleted \
        until it is put again; a built-in one cannot be deleted.\n\n\
        Example:\n  vigil dashboards delete Payments"
    )]
    Delete(NameArgs),
    /// Export a dashboard as a Grafana dashboard over Prometheus.
    #[command(
        long_about = "Export a dashboard as a Grafana dashboard JSON model (schema \
        version 39) whose panels query the same figures from a Prometheus that scrapes \
        Vigil's GET /metrics. Import it in Grafana (Dashboards > New > Import) and pick the \
        Prometheus data source for its DS_PROMETHEUS input.\n\n\
        Metric widgets become timeseries (timeSeries), stat (singleValue), gauge and \
        barchart (bar) panels: a counter's Sum is sum(increase(NAME_total[PERIOD])), a \
        distribution's pNN histogram_quantile over its buckets, Average rate(_sum) / \
        rate(_count), SampleCount increase(_count); millisecond distributions are shown in \
        ms as on the console; metric math with + - * / ^, comparisons, ABS, CEIL, FLOOR, LOG, \
        LOG10 and SQRT is translated. Text widgets become markdown text panels. Positions \
        keep their columns (both grids are 24 wide); rows are 1.5 times as many Grafana \
        rows. What Prometheus cannot show (alarm, log, trace-list and service-map widgets, \
        other metric math, Minimum, counter statistics other than Sum, custom metrics that \
        never reach /metrics) becomes a text panel saying why, and a warning per widget on \
        stderr.\n\n\
        Examples:\n  vigil dashboards export Vigil-Overview --format grafana --output vigil-overview.json\n  \
        vigil dashboards export Inference-Monitoring-Dashboard --format grafana > seed.json"
    )]
    Export(ExportArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ExportFormat {
    /// A Grafana dashboard JSON model over Prometheus.
    Grafana,
}

#[derive(Debug, Args)]
struct ExportArgs {
    /// The dashboard's name.
    name: String,
    /// What to write.
    #[arg(long, value_enum)]
    format: ExportFormat,
    /// Where to write it (default: stdout).
    #[arg(long, value_name = "FILE")]
    output: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct ListArgs {
    /// Table or the server's JSON.
    #[arg(long, value_enum, default_value = "table")]
    output: Output,
}

#[derive(Debug, Args)]
struct GetArgs {
    /// The dashboard's name.
    name: String,
    /// `table` prints the body alone (for `put --file`); `json` the whole answer.
    #[arg(long, value_enum, default_value = "table")]
    output: Output,
}

#[derive(Debug, Args)]
struct NameArgs {
    /// The dashboard's name.
    name: String,
}

#[derive(Debug, Args)]
struct PutArgs {
    /// The dashboard's name.
    name: String,
    /// The dashboard body as JSON; `-` for stdin.
    #[arg(long, value_name = "FILE")]
    file: PathBuf,
}

/// Run `vigil dashboards ...`.
pub fn run(args: DashboardsArgs) -> anyhow::Result<()> {
    let command = args.command;
    args.server.block_on(|api| async move {
        match command {
            DashboardsCommand::List(list) => run_list(&api, &list).await,
            DashboardsCommand::Get(get) => run_get(&api, &get).await,
            DashboardsCommand::Put(put) => run_put(&api, &put).await,
            DashboardsCommand::Delete(delete) => run_delete(&api, &delete).await,
            DashboardsCommand::Export(export) => run_export(&api, &export).await,
        }
    })
}

fn dashboard_path(name: &str) -> String {
    format!("/api/dashboards/{}", encode(name))
}

async fn run_list(api: &Api, args: &ListArgs) -> anyhow::Result<()> {
    let body = api.get("/api/dashboards").await?;
    let mut out = std::io::stdout().lock();
    if args.output == Output::Json {
        writeln!(out, "{}", table::pretty(&body)?)?;
        return Ok(());
    }
    let value: Value = serde_json::from_slice(&body).context("the server's answer is not json")?;
    let Some(list) = value["dashboards"].as_array() else {
        bail!("the server's answer has no `dashboards` list");
    };
    let rows: Vec<Vec<String>> = list
        .iter()
        .map(|d| {
            vec![
                d["name"].as_str().unwrap_or("-").to_owned(),
                d["source"].as_str().unwrap_or("-").to_owned(),
                d["widgets"].to_string(),
            ]
        })
        .collect();
    write!(
        out,
        "{}",
        table::render(&["name", "source", "widgets"], &rows)
    )?;
    Ok(())
}

async fn run_get(api: &Api, args: &GetArgs) -> anyhow::Result<()> {
    let body = api.get(&dashboard_path(&args.name)).await?;
    let mut out = std::io::stdout().lock();
    if args.output == Output::Json {
        writeln!(out, "{}", table::pretty(&body)?)?;
        return Ok(());
    }
    let value: Value = serde_json::from_slice(&body).context("the server's answer is not json")?;
    writeln!(out, "{}", serde_json::to_string_pretty(&value["body"])?)?;
    Ok(())
}

async fn run_put(api: &Api, args: &PutArgs) -> anyhow::Result<()> {
    let body = read_json(&args.file)?;
    if !body.is_object() {
        bail!("the dashboard file must hold a json object: {{\"widgets\": [...]}}");
    }
    api.send(
        hyper::Method::PUT,
        &dashboard_path(&args.name),
        Some(serde_json::to_vec(&body)?),
    )
    .await?;
    eprintln!("dashboard {} saved", args.name);
    Ok(())
}

async fn run_delete(api: &Api, args: &NameArgs) -> anyhow::Result<()> {
    api.send(hyper::Method::DELETE, &dashboard_path(&args.name), None)
        .await?;
    eprintln!("dashboard {} deleted", args.name);
    Ok(())
}

async fn run_export(api: &Api, args: &ExportArgs) -> anyhow::Result<()> {
    let ExportFormat::Grafana = args.format;
    let body = api.get(&dashboard_path(&args.name)).await?;
    let value: Value = serde_json::from_slice(&body).context("the server's answer is not json")?;
    if !value["body"].is_object() {
        bail!("the server's answer has no dashboard `body`");
    }
    let export = grafana::export(
        &args.name,
        &value["body"],
        &vigil_server::telemetry::names::families(),
    );
    let mut text = serde_json::to_string_pretty(&export.dashboard)?;
    text.push('\n');
    match &args.output {
        Some(path) => std::fs::write(path, &text)
            .with_context(|| format!("cannot write {}", path.display()))?,
        None => std::io::stdout().lock().write_all(text.as_bytes())?,
    }
    for s in &export.skipped {
        let title = s
            .title
            .as_ref()
            .map(|t| format!(" {t:?}"))
            .unwrap_or_default();
        eprintln!(
            "warning: widgets[{}] ({}{title}) is a text panel: {}",
            s.index, s.kind, s.reason
        );
    }
    let panels = export.dashboard["panels"].as_array().map_or(0, Vec::len);
    eprintln!(
        "exported {} of {panels} widget(s) as Prometheus panels{}",
        panels.saturating_sub(export.skipped.len()),
        args.output
            .as_ref()
            .map(|p| format!(" to {}", p.display()))
            .unwrap_or_default()
    );
    Ok(())
}
