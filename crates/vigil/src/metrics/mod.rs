//! `vigil metrics list|get|put|query`: the metric store of a running server
//! through its HTTP API (`/api/metrics`), with tables, JSON, and PNG charts.

mod chart;
mod parse;
mod put;

pub use put::read_json;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde::Deserialize;
use serde_json::{Value, json};
use vigil_metrics::math::MetricDataQuery;

use crate::api_client::{Api, ServerArgs, encode};
use crate::table::{self, Output};

#[derive(Debug, Args)]
#[command(
    about = "Read and write the metrics of a running server (list, get, put, query)",
    long_about = "Read and write the metric store of a running server through its HTTP API \
        (/api/metrics...): list the series, fetch one metric's statistics per period as a \
        table, JSON or a PNG chart, send custom data points, and run metric math over \
        several metrics. A series is a namespace, a metric name and an exact set of \
        dimensions (--dim NAME=VALUE). Times are RFC 3339 (2026-12-01T18:00:00Z) or Unix \
        milliseconds. The admin API needs a key with the admin role when the server has \
        [[keys]] (--api-key or VIGIL_API_KEY).\n\n\
        Examples:\n  \
        vigil metrics list --namespace Vigil/Function\n  \
        vigil metrics get InferencePipeline LatencyMs --stat p99 --stat Average\n  \
        vigil metrics get Vigil/Function Duration --dim model=fraud --dim version=1 \\\n    \
        --stat p50 --stat p99 --png latency.png\n  \
        vigil metrics put Shop --name Orders --dim region=eu --unit Count --value 3\n  \
        vigil metrics query --metric e=Shop/Errors:Sum:60 --metric o=Shop/Orders:Sum:60 \\\n    \
        --expr rate='100*e/o' --return rate"
)]
pub struct MetricsArgs {
    #[command(flatten)]
    server: ServerArgs,

    #[command(subcommand)]
    command: MetricsCommand,
}

#[derive(Debug, Subcommand)]
enum MetricsCommand {
    /// List the stored series: namespace, name, dimensions and unit.
    #[command(
        long_about = "List the stored series (namespace, metric name, dimensions, \
        unit), sorted, optionally filtered. --dim NAME=VALUE keeps series with that \
        dimension value; --dim NAME= (empty value) keeps series that have the dimension \
        at all.\n\n\
        Examples:\n  vigil metrics list\n  vigil metrics list --namespace Vigil/Function --dim model=\n  \
        vigil metrics list --name LatencyMs --output json"
    )]
    List(ListArgs),
    /// One metric's statistics per period, as a table, JSON or a PNG chart.
    #[command(
        long_about = "One metric's statistics per period (GetMetricStatistics). \
        The dimensions (--dim, repeatable) must be the series' exact set. --stat is \
        repeatable: SampleCount, Sum, Minimum, Maximum, Average (the default), percentiles \
        p50 / p99.9, trimmed means tm90 / TM(10%:90%), IQM, wm90, PR(0:100), TC(..), TS(..). \
        The default range is the last 3 hours, in 60-second periods.\n\n\
        --png FILE draws the series as a line chart (one line per statistic, the unit on \
        the y axis, a legend) instead of printing a table; add --output to print as well.\n\n\
        Examples:\n  vigil metrics get InferencePipeline LatencyMs --stat p99\n  \
        vigil metrics get Shop Orders --dim region=eu --stat Sum --stat SampleCount \\\n    \
        --period 300 --start 2026-12-01T00:00:00Z --end 2026-12-01T12:00:00Z\n  \
        vigil metrics get Vigil/Function Duration --dim model=fraud --dim version=1 --stat p50 --stat p99 \\\n    \
        --png latency.png --width 1200 --height 500 --title 'fraud latency'"
    )]
    Get(GetArgs),
    /// Send data points (PutMetricData): one from flags, or a JSON file.
    #[command(
        long_about = "Send data points to the metric store (PutMetricData). From \
        flags: one metric with exactly one of --value V, --values V1,V2,.. (optionally \
        --counts C1,C2,.. of the same length) or --stats COUNT,SUM,MIN,MAX. From a file: \
        --file data.json (or - for stdin) holding a PutMetricData body:\n  \
        {\"metrics\": [{\"name\": \"Orders\", \"dimensions\": {\"region\": \"eu\"}, \"unit\": \"Count\", \
        \"value\": 3}]}\n\
        Each metric is accepted or rejected alone; rejected ones are listed with their \
        index, field and reason. The exit code is non-zero when nothing was accepted.\n\n\
        Examples:\n  vigil metrics put Shop --name Orders --dim region=eu --unit Count --value 3\n  \
        vigil metrics put Shop --name LatencyMs --unit Milliseconds --values 12,15,40 --counts 5,3,1\n  \
        vigil metrics put Shop --name LatencyMs --unit Milliseconds --stats 10,250,12,40 \\\n    \
        --timestamp 2026-12-01T18:00:00Z --resolution 1\n  \
        vigil metrics put Shop --file data.json"
    )]
    Put(PutArgs),
    /// Metric math over several metrics (GetMetricData).
    #[command(
        long_about = "Metric math over several metrics (GetMetricData). Either a \
        query file (--file q.json, - for stdin) holding the request body, or flags: \
        --metric ID=NAMESPACE/NAME:STAT:PERIOD[:K=V,...] (repeatable; the name is after \
        the last /) and --expr ID=EXPRESSION (repeatable) over those ids. Ids start with a \
        lowercase letter. Every entry is returned unless --return lists the ones to show. \
        Quote expressions for the shell.\n\n\
        Examples:\n  vigil metrics query --metric e=Shop/Errors:Sum:60 --metric o=Shop/Orders:Sum:60 \\\n    \
        --expr rate='100*e/o' --return rate\n  \
        vigil metrics query --metric lat=Vigil/Function/Duration:p99:300:model=fraud,version=1 \\\n    \
        --start 2026-12-01T00:00:00Z\n  \
        vigil metrics query --file q.json --output json"
    )]
    Query(QueryArgs),
}

#[derive(Debug, Args)]
struct ListArgs {
    /// Only this namespace.
    #[arg(long, value_name = "NS")]
    namespace: Option<String>,
    /// Only this metric name.
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// Only series with this dimension value (NAME= for any value); repeatable.
    #[arg(long, value_name = "NAME=VALUE", value_parser = parse::dim)]
    dim: Vec<(String, String)>,
    /// Table or the server's JSON.
    #[arg(long, value_enum, default_value = "table")]
    output: Output,
}

#[derive(Debug, Args)]
struct GetArgs {
    /// The namespace (`InferencePipeline`, `Vigil/Function`, `Shop`).
    namespace: String,
    /// The metric name (`LatencyMs`).
    name: String,
    /// A dimension of the series; repeat for each (the exact set).
    #[arg(long, value_name = "NAME=VALUE", value_parser = parse::dim)]
    dim: Vec<(String, String)>,
    /// A statistic (Average, Sum, SampleCount, Minimum, Maximum, p99, tm90, ...); repeatable.
    #[arg(long, value_name = "STAT")]
    stat: Vec<String>,
    /// Seconds per point (60 for standard data; 1, 5, 10, 20, 30 also for high resolution).
    #[arg(long, value_name = "SECS")]
    period: Option<u32>,
    /// Range start, RFC 3339 or Unix ms (default: end − 3 h).
    #[arg(long, value_name = "TIME")]
    start: Option<String>,
    /// Range end, RFC 3339 or Unix ms (default: now).
    #[arg(long, value_name = "TIME")]
    end: Option<String>,
    /// Only data sent with this unit (Milliseconds, Count, ...).
    #[arg(long, value_name = "UNIT")]
    unit: Option<String>,
    /// Table or the server's JSON (default: table; nothing with --png).
    #[arg(long, value_enum)]
    output: Option<Output>,
    /// Draw a line chart into this PNG file.
    #[arg(long, value_name = "FILE")]
    png: Option<PathBuf>,
    /// Chart width in pixels.
    #[arg(long, value_name = "PX", default_value_t = 1000, requires = "png")]
    width: u32,
    /// Chart height in pixels.
    #[arg(long, value_name = "PX", default_value_t = 500, requires = "png")]
    height: u32,
    /// Chart caption (default: namespace, name and dimensions).
    #[arg(long, value_name = "TEXT", requires = "png")]
    title: Option<String>,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("data").required(true)
    .args(["value", "values", "stats", "file"])))]
struct PutArgs {
    /// The namespace (1–255 characters, not starting with `:`).
    namespace: String,
    /// A PutMetricData JSON body (`{"metrics": [...]}`); `-` for stdin.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["name", "dim", "unit", "timestamp", "resolution", "counts"])]
    file: Option<PathBuf>,
    /// The metric name.
    #[arg(long, value_name = "NAME", required_unless_present = "file")]
    name: Option<String>,
    /// A dimension; repeatable.
    #[arg(long, value_name = "NAME=VALUE", value_parser = parse::dim)]
    dim: Vec<(String, String)>,
    /// The unit (Seconds, Milliseconds, Bytes, Percent, Count, Count/Second, None, ...).
    #[arg(long, value_name = "UNIT")]
    unit: Option<String>,
    /// One value.
    #[arg(long, value_name = "V", allow_negative_numbers = true)]
    value: Option<f64>,
    /// Several values, comma-separated.
    #[arg(long, value_name = "V1,V2,..", allow_negative_numbers = true)]
    values: Option<String>,
    /// How many times each of --values occurred (default 1 each).
    #[arg(long, value_name = "C1,C2,..")]
    counts: Option<String>,
    /// A statistic set: sample count, sum, minimum, maximum.
    #[arg(long, value_name = "COUNT,SUM,MIN,MAX", allow_negative_numbers = true)]
    stats: Option<String>,
    /// When, RFC 3339 or Unix ms (default: now; up to 14 days back, 2 hours ahead).
    #[arg(long, value_name = "TIME")]
    timestamp: Option<String>,
    /// Storage resolution in seconds: 1 (high resolution) or 60.
    #[arg(long, value_name = "SECS", value_parser = ["1", "60"])]
    resolution: Option<String>,
}

#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("source").required(true).multiple(true)
    .args(["file", "metric", "expr"])))]
struct QueryArgs {
    /// The request body as JSON (`{"metrics": [...], "start", "end", "period"}`); `-` for stdin.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["metric", "expr", "return_ids"])]
    file: Option<PathBuf>,
    /// ID=NAMESPACE/NAME:STAT:PERIOD[:K=V,...]; repeatable.
    #[arg(long, value_name = "ID=NS/NAME:STAT:PERIOD", value_parser = parse::metric)]
    metric: Vec<MetricDataQuery>,
    /// ID=EXPRESSION over the ids (`rate=100*e/o`); repeatable.
    #[arg(long, value_name = "ID=EXPRESSION", value_parser = parse::expr)]
    expr: Vec<MetricDataQuery>,
    /// Only return these ids (comma-separated; default: every entry).
    #[arg(
        long = "return",
        id = "return_ids",
        value_name = "ID,..",
        value_delimiter = ','
    )]
    return_ids: Vec<String>,
    /// Range start, RFC 3339 or Unix ms (default: end − 3 h; overrides the file's).
    #[arg(long, value_name = "TIME")]
    start: Option<String>,
    /// Range end, RFC 3339 or Unix ms (default: now; overrides the file's).
    #[arg(long, value_name = "TIME")]
    end: Option<String>,
    /// Seconds per point of the result (default: the first metric's period).
    #[arg(long, value_name = "SECS")]
    period: Option<u32>,
    /// Table or the server's JSON.
    #[arg(long, value_enum, default_value = "table")]
    output: Output,
}

/// Run `vigil metrics ...`.
pub fn run(args: MetricsArgs) -> anyhow::Result<()> {
    let command = args.command;
    args.server.block_on(|api| async move {
        match command {
            MetricsCommand::List(list) => run_list(&api, &list).await,
            MetricsCommand::Get(get) => run_get(&api, &get).await,
            MetricsCommand::Put(put) => put::run_put(&api, &put).await,
            MetricsCommand::Query(query) => run_query(&api, &query).await,
        }
    })
}

/// `dim.K=V` query parameters.
fn dim_params(dims: &[(String, String)]) -> Vec<String> {
    dims.iter()
        .map(|(k, v)| format!("dim.{}={}", encode(k), encode(v)))
        .collect()
}

fn with_query(path: String, params: &[String]) -> String {
    if params.is_empty() {
        path
    } else {
        format!("{path}?{}", params.join("&"))
    }
}

/// One series of `GET /api/metrics`.
#[derive(Debug, Deserialize)]
struct Series {
    namespace: String,
    name: String,
    #[serde(default)]
    dimensions: vigil_metrics::Dimensions,
    #[serde(default)]
    unit: String,
}

#[derive(Debug, Deserialize)]
struct SeriesList {
    series: Vec<Series>,
}

fn list_path(namespace: Option<&str>, name: Option<&str>, dims: &[(String, String)]) -> String {
    let mut params = Vec::new();
    if let Some(ns) = namespace {
        params.push(format!("namespace={}", encode(ns)));
    }
    if let Some(name) = name {
        params.push(format!("name={}", encode(name)));
    }
    params.extend(dim_params(dims));
    with_query("/api/metrics".to_owned(), &params)
}

fn dims_text(dims: &vigil_metrics::Dimensions) -> String {
    if dims.is_empty() {
        return "-".to_owned();
    }
    dims.iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

async fn run_list(api: &Api, args: &ListArgs) -> anyhow::Result<()> {
    let path = list_path(args.namespace.as_deref(), args.name.as_deref(), &args.dim);
    let body = api.get(&path).await?;
    let mut out = std::io::stdout().lock();
    if args.output == Output::Json {
        writeln!(out, "{}", table::pretty(&body)?)?;
        return Ok(());
    }
    let list: SeriesList =
        serde_json::from_slice(&body).context("the server's answer is not a series list")?;
    let rows: Vec<Vec<String>> = list
        .series
        .iter()
        .map(|s| {
            vec![
                s.namespace.clone(),
                s.name.clone(),
                s.unit.clone(),
                dims_text(&s.dimensions),
            ]
        })
        .collect();
    write!(
        out,
        "{}",
        table::render(&["namespace", "name", "unit", "dimensions"], &rows)
    )?;
    Ok(())
}

/// `GET /api/metrics/{namespace}/{name}` answer.
#[derive(Debug, Deserialize)]
struct MetricData {
    period: u32,
    timestamps: Vec<i64>,
    values: serde_json::Map<String, Value>,
}

impl MetricData {
    /// The statistics in the order asked (the server's map is sorted),
    /// then any others it sent.
    fn columns(&self, asked: &[String]) -> Vec<(String, Vec<Option<f64>>)> {
        let mut names: Vec<String> = Vec::new();
        for name in asked.iter().chain(self.values.keys()) {
            if self.values.contains_key(name) && !names.contains(name) {
                names.push(name.clone());
            }
        }
        names
            .into_iter()
            .map(|name| {
                let values = self.values[&name]
                    .as_array()
                    .map(|a| a.iter().map(Value::as_f64).collect())
                    .unwrap_or_default();
                (name, values)
            })
            .collect()
    }
}

fn get_path(args: &GetArgs) -> String {
    let mut params = dim_params(&args.dim);
    for stat in &args.stat {
        params.push(format!("stat={}", encode(stat)));
    }
    let named = [
        ("period", args.period.map(|p| p.to_string())),
        ("start", args.start.clone()),
        ("end", args.end.clone()),
        ("unit", args.unit.clone()),
    ];
    for (name, value) in named {
        if let Some(value) = value {
            params.push(format!("{name}={}", encode(&value)));
        }
    }
    with_query(
        format!(
            "/api/metrics/{}/{}",
            encode(&args.namespace),
            encode(&args.name)
        ),
        &params,
    )
}

async fn run_get(api: &Api, args: &GetArgs) -> anyhow::Result<()> {
    parse::dimensions(&args.dim).map_err(anyhow::Error::msg)?;
    let body = api.get(&get_path(args)).await?;
    let data: MetricData =
        serde_json::from_slice(&body).context("the server's answer is not metric data")?;
    let columns = data.columns(&args.stat);
    if let Some(png) = &args.png {
        let unit = match &args.unit {
            Some(unit) => unit.clone(),
            None => series_unit(api, args).await,
        };
        draw_png(args, png, &data, &columns, &unit)?;
    }
    let output = match (args.output, &args.png) {
        (Some(output), _) => output,
        (None, Some(_)) => return Ok(()),
        (None, None) => Output::Table,
    };
    let mut out = std::io::stdout().lock();
    if output == Output::Json {
        writeln!(out, "{}", table::pretty(&body)?)?;
        return Ok(());
    }
    let mut header = vec!["timestamp"];
    header.extend(columns.iter().map(|(name, _)| name.as_str()));
    let rows: Vec<Vec<String>> = data
        .timestamps
        .iter()
        .enumerate()
        .map(|(i, ts)| {
            let mut row = vec![table::rfc3339_ms(*ts)];
            row.extend(
                columns
                    .iter()
                    .map(|(_, v)| table::number(v.get(i).copied().flatten())),
            );
            row
        })
        .collect();
    write!(out, "{}", table::render(&header, &rows))?;
    Ok(())
}

/// The unit of the series `args` names, for the chart's y axis: the one
/// unit its data were sent with, else `value`.
async fn series_unit(api: &Api, args: &GetArgs) -> String {
    let path = list_path(Some(&args.namespace), Some(&args.name), &args.dim);
    let Ok(body) = api.get(&path).await else {
        return "value".to_owned();
    };
    let Ok(list) = serde_json::from_slice::<SeriesList>(&body) else {
        return "value".to_owned();
    };
    let wanted = parse::dimensions(&args.dim).unwrap_or_default();
    let units: BTreeSet<String> = list
        .series
        .into_iter()
        .filter(|s| s.namespace == args.namespace && s.name == args.name && s.dimensions == wanted)
        .map(|s| s.unit)
        .collect();
    match units.into_iter().collect::<Vec<_>>().as_slice() {
        [one] => one.clone(),
        _ => "value".to_owned(),
    }
}

fn draw_png(
    args: &GetArgs,
    png: &Path,
    data: &MetricData,
    columns: &[(String, Vec<Option<f64>>)],
    unit: &str,
) -> anyhow::Result<()> {
    let title = args.title.clone().unwrap_or_else(|| {
        let dims = parse::dimensions(&args.dim).unwrap_or_default();
        let mut title = format!("{} {}", args.namespace, args.name);
        if !dims.is_empty() {
            title.push_str(&format!(" ({})", dims_text(&dims)));
        }
        title
    });
    let lines: Vec<chart::Line<'_>> = columns
        .iter()
        .map(|(name, values)| chart::Line { name, values })
        .collect();
    chart::draw(
        &chart::Chart {
            title: &title,
            y_label: unit,
            period_s: data.period,
            timestamps: &data.timestamps,
            lines: &lines,
            width: args.width,
            height: args.height,
        },
        png,
    )?;
    let points: usize = columns
        .iter()
        .map(|(_, v)| v.iter().flatten().count())
        .sum();
    eprintln!(
        "wrote {} ({} × {} px, {} line(s), {points} point(s))",
        png.display(),
        args.width,
        args.height,
        lines.len()
    );
    Ok(())
}

/// The GetMetricData body: the file's, or built from the flags; the range
/// flags override the file's.
fn query_body(args: &QueryArgs) -> anyhow::Result<Value> {
    let mut body = match &args.file {
        Some(file) => {
            let body = read_json(file)?;
            if !body.is_object() {
                bail!("{}: expected a json object with `metrics`", file.display());
            }
            body
        }
        None => {
            let mut entries: Vec<MetricDataQuery> =
                args.metric.iter().chain(&args.expr).cloned().collect();
            let ids: BTreeSet<&str> = entries.iter().map(|e| e.id.as_str()).collect();
            if ids.len() != entries.len() {
                bail!("an id is given to two --metric/--expr entries: each needs its own");
            }
            for id in &args.return_ids {
                if !ids.contains(id.as_str()) {
                    bail!("--return: no --metric or --expr has the id `{id}`");
                }
            }
            if !args.return_ids.is_empty() {
                for entry in &mut entries {
                    entry.return_data = args.return_ids.contains(&entry.id);
                }
            }
            json!({ "metrics": entries })
        }
    };
    if let Some(start) = &args.start {
        body["start"] = parse::time(start);
    }
    if let Some(end) = &args.end {
        body["end"] = parse::time(end);
    }
    if let Some(period) = args.period {
        body["period"] = json!(period);
    }
    Ok(body)
}

#[derive(Debug, Deserialize)]
struct QueryAnswer {
    results: Vec<QueryResult>,
}

#[derive(Debug, Deserialize)]
struct QueryResult {
    id: String,
    label: String,
    timestamps: Vec<i64>,
    values: Vec<Option<f64>>,
}

async fn run_query(api: &Api, args: &QueryArgs) -> anyhow::Result<()> {
    let body = query_body(args)?;
    let answer = api
        .send(
            hyper::Method::POST,
            "/api/metrics/query",
            Some(serde_json::to_vec(&body)?),
        )
        .await?;
    let mut out = std::io::stdout().lock();
    if args.output == Output::Json {
        writeln!(out, "{}", table::pretty(&answer)?)?;
        return Ok(());
    }
    let answer: QueryAnswer =
        serde_json::from_slice(&answer).context("the server's answer is not query results")?;
    write!(out, "{}", query_table(&answer.results))?;
    Ok(())
}

/// One row per timestamp of any result, one column per result (its label).
fn query_table(results: &[QueryResult]) -> String {
    let times: BTreeSet<i64> = results
        .iter()
        .flat_map(|r| r.timestamps.iter().copied())
        .collect();
    let names: Vec<String> = results
        .iter()
        .map(|r| {
            if r.label == r.id || r.label.is_empty() {
                r.id.clone()
            } else {
                format!("{} ({})", r.id, r.label)
            }
        })
        .collect();
    let mut header = vec!["timestamp"];
    header.extend(names.iter().map(String::as_str));
    let rows: Vec<Vec<String>> = times
        .iter()
        .map(|t| {
            let mut row = vec![table::rfc3339_ms(*t)];
            for r in results {
                let value = r
                    .timestamps
                    .iter()
                    .position(|x| x == t)
                    .and_then(|i| r.values.get(i).copied().flatten());
                row.push(table::number(value));
            }
            row
        })
        .collect();
    table::render(&header, &rows)
}

#[cfg(test)]
mod tests;
