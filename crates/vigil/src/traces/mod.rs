//! `vigil traces list|get|map`: the traces of a running server through its
//! HTTP API — trace summaries matching a filter expression
//! (`GET /api/traces`), one trace's spans as a text waterfall
//! (`GET /api/traces/{id}`) and the service map (`GET /api/service-map`).
//! The waterfall lives in `waterfall.rs`.

mod waterfall;

use std::io::{IsTerminal, Write};

use anyhow::Context;
use clap::{Args, Subcommand, ValueEnum};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::api_client::{Api, ServerArgs, encode};
use crate::table::{self, Output};

#[derive(Debug, Args)]
#[command(
    about = "Traces of a running server: search them (list), show one as a waterfall (get), the service map (map)",
    long_about = "Traces of a running server through its HTTP API (/api/traces, \
        /api/service-map). A trace is the tree of spans of one request: the server's \
        own span, the work inside it and the calls it made to other services. The \
        admin API needs a key with the admin role when the server has [[keys]] \
        (--api-key or VIGIL_API_KEY).\n\n\
        Examples:\n  \
        vigil traces list --since 15m\n  \
        vigil traces list --filter 'responsetime > 0.5 AND annotation.model = \"fraud\"' --all\n  \
        vigil traces get 5759e988bd862e3fe1be46a994272793\n  \
        vigil traces get 1-5759e988-bd862e3fe1be46a994272793 --output json\n  \
        vigil traces map --since 6h"
)]
pub struct TracesArgs {
    #[command(flatten)]
    server: ServerArgs,

    #[command(subcommand)]
    command: TracesCommand,
}

#[derive(Debug, Subcommand)]
enum TracesCommand {
    /// Search trace summaries in a time range, newest first.
    #[command(long_about = "Print the traces stored in a time range (default: the \
        last hour) that match an X-Ray filter expression, one line each: start time \
        (RFC 3339 UTC), trace id, HTTP method and URL, status, response time in ms, \
        flags (F fault = 5xx, E error = 4xx, T throttle = 429) and the model, version \
        and label annotations. At most --limit traces are printed; when there are more, \
        stderr says how to ask for the next page (--cursor, with the same range and \
        filter), or use --all to fetch every page.\n\n\
        Filter expressions: responsetime > 0.5, duration >= 1, http.status = 500, \
        http.url CONTAINS \"/infer\", service(\"vigil\"), fault, error, throttle, \
        annotation.model = \"fraud\", combined with AND, OR, NOT and parentheses.\n\n\
        Examples:\n  vigil traces list\n  \
        vigil traces list --since 15m --filter 'fault OR http.status = 429'\n  \
        vigil traces list --start 2026-12-01T20:00:00Z --end 2026-12-01T21:00:00Z --all --output json\n  \
        vigil traces list --filter 'annotation.model = \"fraud\"' --limit 200")]
    List(ListArgs),
    /// Show one trace's spans as a text waterfall.
    #[command(
        long_about = "Print one trace as a waterfall: a header (trace id, total \
        duration, span count, the root request's method, URL and status), then a line \
        per span, indented under its parent and ordered by start, with its start offset \
        from the trace's start and its duration in ms, a bar placing it on the trace's \
        timeline, its flags (F fault, E error, T throttle), its cause and its \
        annotations. Calls to other services are marked [remote]; a span of another \
        service than the root's shows it in parentheses. A span whose parent is not in \
        the trace is shown at the top level. The id is the 32 hex digits of the trace \
        id or its X-Ray form 1-xxxxxxxx-yyyyyyyyyyyyyyyyyyyyyyyy, as `vigil traces list` \
        prints it.\n\n\
        Examples:\n  vigil traces get 5759e988bd862e3fe1be46a994272793\n  \
        vigil traces get 1-5759e988-bd862e3fe1be46a994272793 --output json | jq '.spans[].name'"
    )]
    Get(GetArgs),
    /// Show which service called which, with counts and latencies.
    #[command(
        long_about = "Print the service map of a time range (default: the last \
        hour) as one line per edge (caller -> callee): requests in all, ok, error \
        (4xx), of which throttle (429), fault (5xx), and the median and 99th \
        percentile response times in ms. Fields the server adds that this version does \
        not know are shown raw in an OTHER column; --output json prints the whole \
        graph, nodes included.\n\n\
        Examples:\n  vigil traces map\n  vigil traces map --since 24h\n  \
        vigil traces map --start 2026-12-01T00:00:00Z --end 2026-12-02T00:00:00Z --output json"
    )]
    Map(MapArgs),
}

/// The time range of `list` and `map`.
#[derive(Debug, Args)]
struct RangeArgs {
    /// The range is the last DURATION (30s, 15m, 1h, 7d); default 1h.
    #[arg(long, value_name = "DURATION", conflicts_with_all = ["start", "end"])]
    since: Option<String>,
    /// Start of the range: RFC 3339, Unix ms, or a DURATION ago (2h).
    #[arg(long, value_name = "TIME")]
    start: Option<String>,
    /// End of the range, in the same forms; default now.
    #[arg(long, value_name = "TIME", requires = "start")]
    end: Option<String>,
}

#[derive(Debug, Args)]
struct ListArgs {
    /// Only the traces this X-Ray filter expression matches, e.g.
    /// 'responsetime > 0.5 AND http.status = 200' (quote it for the shell).
    #[arg(long, value_name = "EXPR")]
    filter: Option<String>,
    #[command(flatten)]
    range: RangeArgs,
    /// Traces per page, 1 to 1000; default 50 (1000 with --all).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1000))]
    limit: Option<u16>,
    /// Fetch every page, following the server's cursor until the end.
    #[arg(long, conflicts_with = "cursor")]
    all: bool,
    /// Continue from this page cursor, as a previous list printed it (give the
    /// same --filter, --start and --end).
    #[arg(long, value_name = "CURSOR")]
    cursor: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Output::Table)]
    output: Output,
}

/// `--output` of `get`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum GetOutput {
    /// The span tree with a timeline bar per span.
    Waterfall,
    /// The server's JSON answer, pretty-printed.
    Json,
}

#[derive(Debug, Args)]
struct GetArgs {
    /// The trace id: 32 hex digits, or the X-Ray form 1-xxxxxxxx-yyyy….
    id: String,
    /// Output format.
    #[arg(long, value_enum, default_value_t = GetOutput::Waterfall)]
    output: GetOutput,
}

#[derive(Debug, Args)]
struct MapArgs {
    #[command(flatten)]
    range: RangeArgs,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Output::Table)]
    output: Output,
}

/// Runs `vigil traces ...`.
pub fn run(args: TracesArgs) -> anyhow::Result<()> {
    let command = args.command;
    args.server.block_on(|api| async move {
        match command {
            TracesCommand::List(list) => run_list(&api, &list).await,
            TracesCommand::Get(get) => run_get(&api, &get).await,
            TracesCommand::Map(map) => run_map(&api, &map).await,
        }
    })
}

/// The `http` block of a summary or a span (the fields the CLI prints).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Http {
    method: Option<String>,
    url: Option<String>,
    status: Option<u16>,
}

/// A trace summary of `GET /api/traces`, read leniently: a missing field is
/// empty, an unknown one ignored.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Summary {
    trace_id: String,
    start_us: i64,
    response_time_us: i64,
    name: String,
    http: Option<Http>,
    error: bool,
    throttle: bool,
    fault: bool,
    annotations: Vec<(String, Value)>,
}

/// A page of `GET /api/traces`.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Page {
    traces: Vec<Value>,
    next_cursor: Option<String>,
}

/// The start and (optional) end of a range as the API takes them. `--since`
/// pins the end to now, so that a `--cursor` hint names the same window.
fn range(args: &RangeArgs, now_ms: i64) -> anyhow::Result<(String, Option<String>)> {
    use crate::logs_stream::time_arg;
    match &args.start {
        Some(start) => Ok((
            time_arg("--start", start, now_ms)?,
            args.end
                .as_deref()
                .map(|end| time_arg("--end", end, now_ms))
                .transpose()?,
        )),
        None => {
            let since = crate::logs_stream::duration_ms(args.since.as_deref().unwrap_or("1h"))?;
            Ok((
                now_ms.saturating_sub(since).to_string(),
                Some(now_ms.to_string()),
            ))
        }
    }
}

/// `start=...&end=...` of a request.
fn range_query(start: &str, end: Option<&str>) -> String {
    let mut query = format!("start={}", encode(start));
    if let Some(end) = end {
        query.push_str(&format!("&end={}", encode(end)));
    }
    query
}

/// The path of one page of `list`.
fn list_path(query: &str, limit: u16, filter: Option<&str>, cursor: Option<&str>) -> String {
    let mut path = format!("/api/traces?{query}&limit={limit}");
    if let Some(filter) = filter {
        path.push_str(&format!("&filter={}", encode(filter)));
    }
    if let Some(cursor) = cursor {
        path.push_str(&format!("&cursor={}", encode(cursor)));
    }
    path
}

async fn run_list(api: &Api, args: &ListArgs) -> anyhow::Result<()> {
    let (start, end) = range(&args.range, vigil_server::telemetry::now_ms())?;
    let query = range_query(&start, end.as_deref());
    let limit = args.limit.unwrap_or(if args.all { 1000 } else { 50 });
    let spinner = (args.all && std::io::stderr().is_terminal()).then(|| {
        let bar = indicatif::ProgressBar::new_spinner();
        if let Ok(style) = indicatif::ProgressStyle::with_template("{spinner} {pos} traces {msg}") {
            bar.set_style(style);
        }
        bar.enable_steady_tick(std::time::Duration::from_millis(100));
        bar
    });
    let mut traces = Vec::new();
    let mut cursor = args.cursor.clone();
    let mut pages = 0u64;
    let next = loop {
        let path = list_path(&query, limit, args.filter.as_deref(), cursor.as_deref());
        let body = api.get(&path).await?;
        let page: Page =
            serde_json::from_slice(&body).context("the server's answer is not a page of traces")?;
        pages += 1;
        if let Some(bar) = &spinner {
            bar.inc(page.traces.len() as u64);
            bar.set_message(format!("({pages} pages)"));
        }
        traces.extend(page.traces);
        match page.next_cursor {
            Some(next) if args.all => cursor = Some(next),
            next => break next,
        }
    };
    if let Some(bar) = spinner {
        bar.finish_and_clear();
    }
    let mut out = std::io::stdout().lock();
    if args.output == Output::Json {
        let value = json!({"traces": traces, "next_cursor": next});
        writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
    } else {
        let summaries = traces
            .iter()
            .map(Summary::deserialize)
            .collect::<Result<Vec<_>, _>>()
            .context("the server sent a trace summary this version cannot read")?;
        write!(out, "{}", list_table(&summaries))?;
    }
    out.flush()?;
    if let Some(next) = next {
        eprintln!("{}", more_hint(&start, end.as_deref(), &next));
    }
    Ok(())
}

/// The stderr line telling how to fetch the next page.
fn more_hint(start: &str, end: Option<&str>, cursor: &str) -> String {
    let end = end.map_or_else(String::new, |end| format!(" --end {end}"));
    format!("more: --start {start}{end} --cursor {cursor} (with the same --filter), or use --all")
}

/// Microseconds as milliseconds with three decimals.
fn ms(us: i64) -> String {
    format!("{:.3}", us as f64 / 1000.0)
}

/// Microseconds since the epoch as RFC 3339 UTC with milliseconds.
fn utc_ms(us: i64) -> String {
    let Ok(t) = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(us) * 1000) else {
        return us.to_string();
    };
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// `F` fault, `E` error, `T` throttle, `-` for none.
fn flags(fault: bool, error: bool, throttle: bool) -> String {
    let text: String = [(fault, 'F'), (error, 'E'), (throttle, 'T')]
        .iter()
        .filter_map(|&(set, c)| set.then_some(c))
        .collect();
    if text.is_empty() {
        "-".to_owned()
    } else {
        text
    }
}

/// An annotation's value as text: strings without quotes.
fn value_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        // Annotations are doubles: a whole one (a row count) reads as such.
        Value::Number(n) => match n.as_f64() {
            Some(v) if v.fract() == 0.0 && v.abs() < 1e15 => format!("{v:.0}"),
            _ => n.to_string(),
        },
        other => other.to_string(),
    }
}

/// `method url`, or the summary's name without an `http` block.
fn request(http: Option<&Http>, name: &str) -> String {
    let parts: Vec<&str> = http
        .into_iter()
        .flat_map(|h| [h.method.as_deref(), h.url.as_deref()])
        .flatten()
        .collect();
    if parts.is_empty() {
        name.to_owned()
    } else {
        parts.join(" ")
    }
}

/// The annotations `list` shows.
const LIST_ANNOTATIONS: [&str; 3] = ["model", "version", "label"];

fn list_table(summaries: &[Summary]) -> String {
    let rows: Vec<Vec<String>> = summaries
        .iter()
        .map(|s| {
            let annotations: Vec<String> = LIST_ANNOTATIONS
                .iter()
                .filter_map(|key| {
                    let (_, value) = s.annotations.iter().find(|(k, _)| k == key)?;
                    Some(format!("{key}={}", value_text(value)))
                })
                .collect();
            vec![
                utc_ms(s.start_us),
                s.trace_id.clone(),
                request(s.http.as_ref(), &s.name),
                s.http
                    .as_ref()
                    .and_then(|h| h.status)
                    .map_or_else(|| "-".to_owned(), |status| status.to_string()),
                ms(s.response_time_us),
                flags(s.fault, s.error, s.throttle),
                annotations.join(" "),
            ]
        })
        .collect();
    table::render(
        &[
            "START",
            "TRACE ID",
            "REQUEST",
            "STATUS",
            "MS",
            "FLAGS",
            "ANNOTATIONS",
        ],
        &rows,
    )
}

async fn run_get(api: &Api, args: &GetArgs) -> anyhow::Result<()> {
    let body = api
        .get(&format!("/api/traces/{}", encode(args.id.trim())))
        .await?;
    let text = match args.output {
        GetOutput::Json => format!("{}\n", table::pretty(&body)?),
        GetOutput::Waterfall => {
            let trace: waterfall::Trace = serde_json::from_slice(&body)
                .context("the server's answer is not a trace this version can read")?;
            waterfall::render(&trace, waterfall::WIDTH)
        }
    };
    let mut out = std::io::stdout().lock();
    write!(out, "{text}")?;
    out.flush()?;
    Ok(())
}

async fn run_map(api: &Api, args: &MapArgs) -> anyhow::Result<()> {
    let (start, end) = range(&args.range, vigil_server::telemetry::now_ms())?;
    let body = api
        .get(&format!(
            "/api/service-map?{}",
            range_query(&start, end.as_deref())
        ))
        .await?;
    let mut out = std::io::stdout().lock();
    if args.output == Output::Json {
        writeln!(out, "{}", table::pretty(&body)?)?;
        return Ok(());
    }
    let graph: Value = serde_json::from_slice(&body).context("the server's answer is not json")?;
    write!(out, "{}", map_table(&graph))?;
    out.flush()?;
    let count = |key: &str| graph[key].as_array().map_or(0, Vec::len);
    eprintln!(
        "{} services, {} edges, {} .. {}",
        count("nodes"),
        count("edges"),
        graph["start_ms"]
            .as_i64()
            .map_or_else(|| "?".to_owned(), table::rfc3339_ms),
        graph["end_ms"]
            .as_i64()
            .map_or_else(|| "?".to_owned(), table::rfc3339_ms),
    );
    Ok(())
}

/// The edge fields `map` has a column for (read from the edge or from a
/// nested `stats` object).
const EDGE_FIELDS: [&str; 11] = [
    "caller",
    "callee",
    "count",
    "histogram",
    "ok",
    "error",
    "throttle",
    "fault",
    "p50_s",
    "p99_s",
    "total_response_time_s",
];

/// A count or a number as a cell, `-` when missing, anything else raw.
fn stat_cell(value: Option<&Value>, scale: f64) -> String {
    match value {
        None | Some(Value::Null) => "-".to_owned(),
        Some(Value::Number(n)) if scale == 1.0 && (n.is_u64() || n.is_i64()) => n.to_string(),
        // Latencies come from histogram buckets (±9 %): 3 decimals of a ms.
        Some(Value::Number(n)) if scale == 1000.0 => match n.as_f64() {
            Some(v) => {
                let text = format!("{:.3}", v * scale);
                text.trim_end_matches('0').trim_end_matches('.').to_owned()
            }
            None => n.to_string(),
        },
        Some(Value::Number(n)) => table::number(n.as_f64().map(|v| v * scale)),
        Some(other) => other.to_string(),
    }
}

/// A node id as its name when the graph has that node.
fn node_name(nodes: &[Value], id: Option<&Value>) -> String {
    let Some(id) = id else {
        return "?".to_owned();
    };
    nodes
        .iter()
        .find(|n| n.get("id") == Some(id))
        .and_then(|n| n.get("name").and_then(Value::as_str))
        .map_or_else(|| value_text(id), str::to_owned)
}

fn map_table(graph: &Value) -> String {
    let nodes = graph["nodes"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let edges = graph["edges"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut header = vec![
        "CALLER", "CALLEE", "TOTAL", "OK", "ERROR", "THROTTLE", "FAULT", "P50 MS", "P99 MS",
    ];
    let mut others = false;
    let mut rows: Vec<Vec<String>> = edges
        .iter()
        .map(|edge| {
            let field = |key: &str| edge.get(key).or_else(|| edge.get("stats")?.get(key));
            let mut row = vec![
                node_name(nodes, field("caller")),
                node_name(nodes, field("callee")),
            ];
            for key in ["count", "ok", "error", "throttle", "fault"] {
                row.push(stat_cell(field(key), 1.0));
            }
            row.push(stat_cell(field("p50_s"), 1000.0));
            row.push(stat_cell(field("p99_s"), 1000.0));
            let stats = edge.get("stats").and_then(Value::as_object);
            let unknown: Vec<String> = edge
                .as_object()
                .into_iter()
                .chain(stats)
                .flatten()
                .filter(|(k, _)| k.as_str() != "stats" && !EDGE_FIELDS.contains(&k.as_str()))
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            others |= !unknown.is_empty();
            row.push(unknown.join(" "));
            row
        })
        .collect();
    if others {
        header.push("OTHER");
    } else {
        for row in &mut rows {
            row.pop();
        }
    }
    table::render(&header, &rows)
}

#[cfg(test)]
mod tests;
