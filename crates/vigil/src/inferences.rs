//! `vigil inferences get|list|export`: read the inference log of a running
//! server through its HTTP API (`/api/inferences`), so it works against a
//! remote Vigil as well as a local one.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use serde::Deserialize;
use vigil_store::InferenceRecord;
use vigil_store::export::{ExportFormat, Exporter};

use crate::api_client::{Api, ServerArgs, encode};

/// Records fetched per request (the server's largest page).
const PAGE: usize = 1000;

#[derive(Debug, Args)]
#[command(
    about = "Read the inference log of a running server (get, list, export)",
    long_about = "Read the inference log of a running server through its HTTP API \
        (GET /api/inferences...), so it works against a remote Vigil too. The admin API \
        needs a key with the admin role when the server has [[keys]] (--api-key or \
        VIGIL_API_KEY); without keys it answers only on a loopback address.\n\n\
        Examples:\n  \
        vigil inferences get tx-1042\n  \
        vigil inferences list --model fraud --label fraud --from 2026-11-23T00:00:00Z --limit 50\n  \
        vigil inferences export --from 2026-11-01T00:00:00Z --to 2026-12-01T00:00:00Z \\\n    \
        --format csv --output november.csv\n  \
        vigil inferences --url https://vigil.internal:8443 --api-key \"$KEY\" list --json\n  \
        vigil inferences --url https://localhost:8443 --ca-cert server.pem get tx-1042"
)]
pub struct InferencesArgs {
    #[command(flatten)]
    server: ServerArgs,

    #[command(subcommand)]
    command: InferencesCommand,
}

#[derive(Debug, Subcommand)]
enum InferencesCommand {
    /// Show the record(s) of one request id (one per model that logged it).
    #[command(
        long_about = "Show the record(s) of one request id, as JSON: one per model \
        that logged it. Batch rows are logged as ID#0, ID#1...\n\n\
        Example:\n  vigil inferences get tx-1042\n  vigil inferences get 'batch-7#3' --model fraud"
    )]
    Get(GetArgs),
    /// List records, newest first, as a table or JSON lines.
    #[command(
        long_about = "List records, newest first, as a table (or one JSON object per \
        line with --json). --from and --to take RFC 3339 or Unix milliseconds; --from is \
        inclusive, --to exclusive.\n\n\
        Example:\n  vigil inferences list --model fraud --label fraud --limit 20"
    )]
    List(ListArgs),
    /// Write every record of a time range to a file (JSON Lines, CSV or Parquet).
    #[command(
        long_about = "Write every record of a time range to a file, newest first: \
        JSON Lines (one record per line, as the API returns it), CSV (input and scores \
        as JSON text) or Parquet (typed columns named as the CSV header: received_at_us \
        a UTC microsecond timestamp, scores a list of doubles, input JSON text; \
        Snappy-compressed). Pages through the API with its cursor; a \
        progress counter shows on stderr when it is a terminal.\n\n\
        Example:\n  vigil inferences export --from 2026-11-01T00:00:00Z --to 1764547200000 \\\n    \
        --format parquet --output november.parquet"
    )]
    Export(ExportArgs),
}

#[derive(Debug, Args)]
struct GetArgs {
    /// The request id.
    id: String,
    /// Only the record of this model.
    #[arg(long, value_name = "NAME")]
    model: Option<String>,
}

/// Filters shared by `list` and `export`.
#[derive(Debug, Args)]
struct Filters {
    /// Only this model.
    #[arg(long, value_name = "NAME")]
    model: Option<String>,
    /// Only this model version.
    #[arg(long, value_name = "VERSION")]
    version: Option<String>,
    /// Only this label (e.g. `fraud`).
    #[arg(long, value_name = "LABEL")]
    label: Option<String>,
}

#[derive(Debug, Args)]
struct ListArgs {
    #[command(flatten)]
    filters: Filters,
    /// Received at or after (RFC 3339 or Unix milliseconds).
    #[arg(long, value_name = "TIME")]
    from: Option<String>,
    /// Received before (RFC 3339 or Unix milliseconds).
    #[arg(long, value_name = "TIME")]
    to: Option<String>,
    /// Most records to show.
    #[arg(long, value_name = "N", default_value_t = 20)]
    limit: usize,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Args)]
struct ExportArgs {
    #[command(flatten)]
    filters: Filters,
    /// Received at or after (RFC 3339 or Unix milliseconds).
    #[arg(long, value_name = "TIME")]
    from: Option<String>,
    /// Received before (RFC 3339 or Unix milliseconds).
    #[arg(long, value_name = "TIME")]
    to: Option<String>,
    /// File format.
    #[arg(long, value_enum, default_value = "jsonl")]
    format: Format,
    /// Output file; `-` for stdout.
    #[arg(long, value_name = "FILE")]
    output: PathBuf,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Format {
    Jsonl,
    Csv,
    Parquet,
}

/// One page as the server sends it.
#[derive(Debug, Deserialize)]
struct PageBody {
    records: Vec<InferenceRecord>,
    next_cursor: Option<String>,
}

/// Run `vigil inferences ...`.
pub fn run(args: InferencesArgs) -> anyhow::Result<()> {
    let command = args.command;
    args.server.block_on(|api| async move {
        match command {
            InferencesCommand::Get(get) => run_get(&api, &get).await,
            InferencesCommand::List(list) => run_list(&api, &list).await,
            InferencesCommand::Export(export) => run_export(&api, &export).await,
        }
    })
}

async fn run_get(api: &Api, args: &GetArgs) -> anyhow::Result<()> {
    let mut path = format!("/api/inferences/{}", encode(&args.id));
    if let Some(model) = &args.model {
        path.push_str(&format!("?model={}", encode(model)));
    }
    let body = api.get(&path).await?;
    let value: serde_json::Value =
        serde_json::from_slice(&body).context("the server's answer is not json")?;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
    Ok(())
}

async fn run_list(api: &Api, args: &ListArgs) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    if !args.json {
        writeln!(out, "{}", table_header())?;
    }
    let mut shown = 0;
    let mut cursor = None;
    while shown < args.limit {
        let limit = (args.limit - shown).min(PAGE);
        let query = query(
            &args.filters,
            &args.from,
            &args.to,
            limit,
            cursor.as_deref(),
        );
        let page = page(api, &query).await?;
        for record in &page.records {
            if args.json {
                writeln!(out, "{}", serde_json::to_string(record)?)?;
            } else {
                writeln!(out, "{}", table_row(record))?;
            }
        }
        shown += page.records.len();
        match page.next_cursor {
            Some(next) if !page.records.is_empty() => cursor = Some(next),
            _ => break,
        }
    }
    Ok(())
}

async fn run_export(api: &Api, args: &ExportArgs) -> anyhow::Result<()> {
    let format = match args.format {
        Format::Jsonl => ExportFormat::Jsonl,
        Format::Csv => ExportFormat::Csv,
        Format::Parquet => ExportFormat::Parquet,
    };
    let out: Box<dyn Write + Send> = if args.output.as_os_str() == "-" {
        if format == ExportFormat::Parquet && std::io::stdout().is_terminal() {
            bail!(
                "parquet is binary: not written to a terminal; redirect stdout or use --output FILE"
            );
        }
        // Unlocked: the Parquet writer needs a `Send` sink, and the
        // `BufWriter` below takes the lock once per buffer anyway.
        Box::new(std::io::stdout())
    } else {
        let file = std::fs::File::create(&args.output)
            .with_context(|| format!("cannot create {}", args.output.display()))?;
        Box::new(file)
    };
    let mut exporter = Exporter::new(format, std::io::BufWriter::new(out))
        .map_err(|err| anyhow::anyhow!("cannot start the export: {err}"))?;
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new_spinner();
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("{spinner} {pos} records {per_sec} {elapsed}")
        {
            bar.set_style(style);
        }
        bar.enable_steady_tick(std::time::Duration::from_millis(100));
        bar
    });
    let mut cursor = None;
    loop {
        let query = query(&args.filters, &args.from, &args.to, PAGE, cursor.as_deref());
        let page = page(api, &query).await?;
        for record in &page.records {
            exporter
                .write(record)
                .map_err(|err| anyhow::anyhow!("cannot write the export: {err}"))?;
        }
        if let Some(bar) = &bar {
            bar.set_position(exporter.written());
        }
        match page.next_cursor {
            Some(next) if !page.records.is_empty() => cursor = Some(next),
            _ => break,
        }
    }
    let written = exporter.written();
    exporter
        .finish()
        .map_err(|err| anyhow::anyhow!("cannot finish the export: {err}"))?;
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    if std::io::stderr().is_terminal() && args.output.as_os_str() != "-" {
        eprintln!("exported {written} records to {}", args.output.display());
    }
    Ok(())
}

/// The query string of a list request.
fn query(
    filters: &Filters,
    from: &Option<String>,
    to: &Option<String>,
    limit: usize,
    cursor: Option<&str>,
) -> String {
    let mut parts = vec![format!("limit={limit}")];
    let named = [
        ("model", &filters.model),
        ("version", &filters.version),
        ("label", &filters.label),
        ("from", from),
        ("to", to),
    ];
    for (name, value) in named {
        if let Some(value) = value {
            parts.push(format!("{name}={}", encode(value)));
        }
    }
    if let Some(cursor) = cursor {
        parts.push(format!("cursor={}", encode(cursor)));
    }
    parts.join("&")
}

fn table_header() -> String {
    format!(
        "{:<27} {:<38} {:<12} {:<8} {:>10} {:<8} {:>9} {:<6} {}",
        "received_at",
        "request_id",
        "model",
        "version",
        "score",
        "label",
        "latency",
        "cached",
        "key"
    )
}

fn table_row(r: &InferenceRecord) -> String {
    let score = match r.scores.as_slice() {
        [one] => format!("{one:.6}"),
        many => format!("[{}]", many.len()),
    };
    format!(
        "{:<27} {:<38} {:<12} {:<8} {:>10} {:<8} {:>7}µs {:<6} {}",
        rfc3339_us(r.received_at_us),
        r.request_id,
        r.model,
        r.version,
        score,
        r.label.as_deref().unwrap_or("-"),
        r.latency_us,
        r.cached,
        r.api_key_name.as_deref().unwrap_or("-"),
    )
}

/// Microseconds since the epoch as RFC 3339 UTC.
fn rfc3339_us(micros: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_else(|| micros.to_string())
}

async fn page(api: &Api, query: &str) -> anyhow::Result<PageBody> {
    let body = api.get(&format!("/api/inferences?{query}")).await?;
    serde_json::from_slice(&body).context("the server's answer is not a page of records")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn list_query_carries_every_filter() {
        let filters = Filters {
            model: Some("fraud".into()),
            version: None,
            label: Some("fraud".into()),
        };
        let q = query(&filters, &Some("0".into()), &None, 5, Some("abc"));
        assert_eq!(q, "limit=5&model=fraud&label=fraud&from=0&cursor=abc");
    }
}
