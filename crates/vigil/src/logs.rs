//! `vigil logs groups|put|retention|delete|query|tail|export|test-pattern`:
//! the log groups of a running server through its HTTP API (`/api/logs`),
//! and filter patterns tried on sample lines. `tail` and `export` live in
//! `logs_stream.rs`.

use std::io::{BufRead, Write};
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::{Args, Subcommand};
use serde_json::{Value, json};
use vigil_logs::pattern::Pattern;

use crate::api_client::{Api, ServerArgs, encode};
use crate::table::{self, Output};

#[derive(Debug, Args)]
#[command(
    about = "Log groups of a running server (groups, put, retention, delete, query, tail, export) and filter patterns (test-pattern)",
    long_about = "Log groups of a running server through its HTTP API (/api/logs...). Vigil \
        keeps its access log in the group /vigil/access (a stream per process and day); \
        other services send events to their own groups. Retention is per group (never \
        expire by default). The admin API needs a key with the admin role when the server \
        has [[keys]] (--api-key or VIGIL_API_KEY).\n\n\
        Examples:\n  \
        vigil logs groups\n  \
        tail -f app.log | vigil logs put /app/api host-1\n  \
        vigil logs retention /vigil/access --days 30\n  \
        vigil logs tail -g /vigil/access -f --filter '{ $.status >= 500 }'\n  \
        vigil logs export -g /vigil/access --from 24h --output access.jsonl.gz\n  \
        vigil logs test-pattern '[ip, user, ..., status = 5*, bytes]' < access.log\n  \
        vigil logs delete /app/api"
)]
pub struct LogsArgs {
    #[command(flatten)]
    server: ServerArgs,

    #[command(subcommand)]
    command: LogsCommand,
}

#[derive(Debug, Subcommand)]
enum LogsCommand {
    /// List the log groups: retention, events, bytes on disk.
    #[command(long_about = "List the log groups: name, retention (days, or never), \
        events stored, bytes on disk (sealed segments are compressed) and creation time \
        (RFC 3339 UTC).\n\n\
        Examples:\n  vigil logs groups\n  vigil logs groups --output json")]
    Groups(GroupsArgs),
    /// Send lines (stdin or a file) to a stream of a group, one event each.
    #[command(long_about = "Send log lines to STREAM of GROUP (both created on \
        first use), one event per non-empty line, timestamped when read. Lines go in \
        batches of up to 1,000 events (a batch is sent at least every second while \
        lines keep coming, so `tail -f` works); events the server refuses are reported \
        on stderr with their reason.\n\n\
        Examples:\n  vigil logs put /app/api host-1 < app.log\n  \
        tail -f app.log | vigil logs put /app/api host-1\n  \
        vigil logs put /app/api host-1 --file app.log")]
    Put(PutArgs),
    /// Set how long a group keeps its events.
    #[command(
        long_about = "Set a group's retention (creating the group if needed): \
        --days one of 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, \
        1096, 1827, 2192, 2557, 2922, 3288, 3653, or --never. Expired events go a \
        whole segment (about an hour) at a time.\n\n\
        Examples:\n  vigil logs retention /vigil/access --days 30\n  \
        vigil logs retention /app/api --never"
    )]
    Retention(RetentionArgs),
    /// Delete a group and every event in it.
    #[command(long_about = "Delete a log group and every event in it.\n\n\
        Example:\n  vigil logs delete /app/api")]
    Delete(GroupArg),
    /// Run a query (the Insights-style language) over stored events.
    #[command(long_about = "Run a query over the events of one or more groups in a \
        time range (default: the last hour) and print the rows as a table or JSON. \
        Commands are separated by |: fields, filter, stats ... by ..., sort, limit, parse, \
        display, dedup; JSON messages are searchable by field (status, a.b). Every page \
        of a long result is fetched. An error names the query's column.\n\n\
        Examples:\n  vigil logs query -g /vigil/access --since 1h 'filter status >= 500 | stats count(*) by bin(1m)'\n  \
        vigil logs query -g /vigil/access --since 15m 'fields @timestamp, route, latency_ms | sort latency_ms desc | limit 10'\n  \
        vigil logs query -g /app/api --start 2026-12-01T20:00:00Z --end 2026-12-01T21:00:00Z 'filter @message like \"ERROR\"' --output json\n  \
        vigil logs query -g /app/api --context 3 'filter @message like \"panic\" | limit 5'\n\n\
        --context N shows, around each row, up to N events of its stream stored just before \
        it (marked -) and after it (marked +), grep -C style.")]
    Query(QueryArgs),
    /// Show a group's latest events, or follow it live (-f).
    #[command(long_about = "Print the latest events of a group stored in the last \
        --since (default 10m), at most --lines of them (default 100), oldest first, as \
        TIME STREAM MESSAGE lines (or --output json: one JSON object per line). With -f, \
        keep following: each event stored from then on is printed as it arrives, until \
        Ctrl-C (the server streams them as server-sent events; nothing is polled). \
        --filter takes a filter pattern, the language of test-pattern and metric filters. \
        A follower that reads more slowly than events arrive is told on stderr how many it \
        lost; ingestion never waits for it. The tail ends when the group is deleted or \
        the server stops.\n\n\
        Examples:\n  vigil logs tail -g /vigil/access\n  \
        vigil logs tail -g /vigil/access -f --filter '{ $.status >= 500 }'\n  \
        vigil logs tail -g /app/api -f --since 1h --lines 20 --filter '?ERROR ?WARN'\n  \
        vigil logs tail -g /app/api -f --output json | jq .message")]
    Tail(crate::logs_stream::TailArgs),
    /// Export a group's events in a time range to a (gzip) JSON-lines file.
    #[command(long_about = "Write every event of a group in --from..--to (default: \
        until now) to --output, one JSON object per line: {\"timestamp\", \
        \"ingestion_time\", \"log_stream\", \"message\"} (times in Unix ms), \
        gzip-compressed when the file name ends in .gz. Times are RFC 3339, Unix ms, or \
        a duration ago (30m, 24h, 7d). The events stream from the server as the store \
        reads them (memory stays flat however large the range); a progress bar shows \
        events and bytes on a terminal. The file is written as FILE.part and renamed \
        once complete, so a failed export leaves no file that looks whole. --filter \
        keeps only the events a filter pattern matches.\n\n\
        Examples:\n  vigil logs export -g /vigil/access --from 24h --output access.jsonl.gz\n  \
        vigil logs export -g /app/api --from 2026-12-01T00:00:00Z --to 2026-12-02T00:00:00Z --output day.jsonl\n  \
        vigil logs export -g /app/api --from 7d --filter ERROR --output errors.jsonl.gz")]
    Export(crate::logs_stream::ExportArgs),
    /// Try a filter pattern on sample lines: which match, what each extracted.
    #[command(
        long_about = "Try a filter pattern (the language of metric filters and \
        subscriptions) on sample lines from stdin or --file, one event per line, like \
        the console's \"Test pattern\" button: prints each matching line's number and \
        what the pattern extracted ($name and $1... of a space-delimited pattern, $.path \
        of a JSON one), then the count. Runs locally: no server needed. A pattern that \
        does not parse is reported with its column.\n\n\
        Patterns:\n  ERROR                      lines holding ERROR\n  \
        \"Failed to process\" -retry  a phrase, without retry\n  \
        ?ERROR ?WARN                either term\n  \
        { $.latency_us > 2000 }     JSON lines by field\n  \
        [ip, user, ..., status = 5*, bytes]   space-delimited fields\n\n\
        Examples:\n  vigil logs test-pattern '[ip, user, ..., status = 5*, bytes]' < access.log\n  \
        vigil logs test-pattern '{ $.status >= 500 }' --file access.jsonl --output json"
    )]
    TestPattern(TestPatternArgs),
}

#[derive(Debug, Args)]
struct GroupsArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Output::Table)]
    output: Output,
}

#[derive(Debug, Args)]
struct GroupArg {
    /// The group's name, e.g. /app/api.
    group: String,
}

#[derive(Debug, Args)]
struct PutArgs {
    /// The group's name, e.g. /app/api.
    group: String,
    /// The stream's name, e.g. the host.
    stream: String,
    /// Read lines from this file instead of stdin.
    #[arg(long, value_name = "FILE")]
    file: Option<PathBuf>,
}

#[derive(Debug, Args)]
struct RetentionArgs {
    /// The group's name.
    group: String,
    /// Days to keep events.
    #[arg(
        long,
        value_name = "DAYS",
        conflicts_with = "never",
        required_unless_present = "never"
    )]
    days: Option<u32>,
    /// Keep events forever.
    #[arg(long)]
    never: bool,
}

#[derive(Debug, Args)]
struct QueryArgs {
    /// A group to read (repeat for several).
    #[arg(short = 'g', long = "group", value_name = "GROUP", required = true)]
    groups: Vec<String>,
    /// The range is the last DURATION (e.g. 30s, 15m, 1h, 7d); default 1h.
    #[arg(long, value_name = "DURATION", conflicts_with = "start")]
    since: Option<String>,
    /// Start of the range: RFC 3339 or Unix ms.
    #[arg(long, value_name = "TIME")]
    start: Option<String>,
    /// End of the range: RFC 3339 or Unix ms; default now.
    #[arg(long, value_name = "TIME")]
    end: Option<String>,
    /// The query, e.g. 'filter status >= 500 | stats count(*) by bin(1m)'.
    query: String,
    /// Also show up to N events (0 to 100) of each row's stream stored just
    /// before (-) and after (+) it; not for stats queries.
    #[arg(short = 'C', long, value_name = "N")]
    context: Option<usize>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Output::Table)]
    output: Output,
}

#[derive(Debug, Args)]
struct TestPatternArgs {
    /// The filter pattern (quote it for the shell).
    pattern: String,
    /// Read lines from this file instead of stdin.
    #[arg(long, value_name = "FILE")]
    file: Option<PathBuf>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = Output::Table)]
    output: Output,
}

/// Runs `vigil logs ...`.
pub fn run(args: LogsArgs) -> anyhow::Result<()> {
    if let LogsCommand::TestPattern(test) = &args.command {
        return run_test_pattern(test);
    }
    let command = args.command;
    args.server.block_on(|api| async move {
        match command {
            LogsCommand::Groups(groups) => run_groups(&api, &groups).await,
            LogsCommand::Put(put) => run_put(&api, &put).await,
            LogsCommand::Retention(retention) => run_retention(&api, &retention).await,
            LogsCommand::Delete(delete) => run_delete(&api, &delete).await,
            LogsCommand::Query(query) => run_query(&api, &query).await,
            LogsCommand::Tail(tail) => crate::logs_stream::run_tail(&api, &tail).await,
            LogsCommand::Export(export) => crate::logs_stream::run_export(&api, &export).await,
            LogsCommand::TestPattern(_) => Ok(()),
        }
    })
}

fn input(file: Option<&PathBuf>) -> anyhow::Result<Box<dyn BufRead>> {
    Ok(match file {
        Some(path) => Box::new(std::io::BufReader::new(
            std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?,
        )),
        None => Box::new(std::io::stdin().lock()),
    })
}

async fn run_groups(api: &Api, args: &GroupsArgs) -> anyhow::Result<()> {
    let body = api.get("/api/logs/groups").await?;
    let mut out = std::io::stdout().lock();
    if args.output == Output::Json {
        writeln!(out, "{}", table::pretty(&body)?)?;
        return Ok(());
    }
    let value: Value = serde_json::from_slice(&body).context("the server's answer is not json")?;
    let rows: Vec<Vec<String>> = value["groups"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default()
        .iter()
        .map(|g| {
            vec![
                g["name"].as_str().unwrap_or_default().to_owned(),
                g["retention_days"]
                    .as_u64()
                    .map_or_else(|| "never".to_owned(), |d| format!("{d} days")),
                g["events"].as_u64().unwrap_or(0).to_string(),
                g["stored_bytes"].as_u64().unwrap_or(0).to_string(),
                g["created_ms"]
                    .as_i64()
                    .map(table::rfc3339_ms)
                    .unwrap_or_default(),
            ]
        })
        .collect();
    write!(
        out,
        "{}",
        table::render(&["GROUP", "RETENTION", "EVENTS", "BYTES", "CREATED"], &rows)
    )?;
    Ok(())
}

/// Most events per request of `put`.
const PUT_BATCH: usize = 1_000;

async fn run_put(api: &Api, args: &PutArgs) -> anyhow::Result<()> {
    let path = format!("/api/logs/{}/{}", encode(&args.group), encode(&args.stream));
    let (tx, mut rx) = tokio::sync::mpsc::channel::<String>(PUT_BATCH * 4);
    let file = args.file.clone();
    // Lines are read on a thread of their own, so a batch goes out every
    // second even while stdin waits (`tail -f`).
    let reader = std::thread::spawn(move || -> anyhow::Result<()> {
        for line in input(file.as_ref())?.lines() {
            let line = line.context("cannot read a line")?;
            if !line.trim().is_empty() && tx.blocking_send(line).is_err() {
                break;
            }
        }
        Ok(())
    });
    let (mut sent, mut refused) = (0usize, 0usize);
    let mut batch: Vec<Value> = Vec::new();
    let mut open = true;
    while open || !batch.is_empty() {
        if open {
            match tokio::time::timeout(std::time::Duration::from_secs(1), rx.recv()).await {
                Ok(Some(line)) => {
                    let now = vigil_server::telemetry::now_ms();
                    batch.push(json!({"timestamp": now, "message": line}));
                    if batch.len() < PUT_BATCH {
                        continue;
                    }
                }
                Ok(None) => open = false,
                Err(_) => {}
            }
        }
        if batch.is_empty() {
            continue;
        }
        let body = serde_json::to_vec(&json!({ "events": std::mem::take(&mut batch) }))?;
        let answer = api.send(hyper::Method::POST, &path, Some(body)).await?;
        let value: Value =
            serde_json::from_slice(&answer).context("the server's answer is not json")?;
        sent += usize::try_from(value["accepted"].as_u64().unwrap_or(0)).unwrap_or(0);
        for r in value["rejected"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
        {
            refused += 1;
            eprintln!(
                "event {} refused: {}",
                r["index"],
                r["message"].as_str().unwrap_or_default()
            );
        }
    }
    reader
        .join()
        .map_err(|_| anyhow::anyhow!("the line reader panicked"))??;
    eprintln!(
        "{sent} events stored in {} / {}{}",
        args.group,
        args.stream,
        if refused > 0 {
            format!(", {refused} refused")
        } else {
            String::new()
        }
    );
    Ok(())
}

async fn run_retention(api: &Api, args: &RetentionArgs) -> anyhow::Result<()> {
    let days = if args.never { None } else { args.days };
    let body = serde_json::to_vec(&json!({ "retention_days": days }))?;
    let path = format!("/api/logs/{}", encode(&args.group));
    api.send(hyper::Method::PUT, &path, Some(body)).await?;
    match days {
        Some(d) => println!("{}: events kept {d} days", args.group),
        None => println!("{}: events kept forever", args.group),
    }
    Ok(())
}

async fn run_delete(api: &Api, args: &GroupArg) -> anyhow::Result<()> {
    let path = format!("/api/logs/{}", encode(&args.group));
    api.send(hyper::Method::DELETE, &path, None).await?;
    println!("deleted log group {}", args.group);
    Ok(())
}

/// A time flag as the API takes it: Unix ms stay a number.
fn time_value(text: &str) -> Value {
    text.parse::<i64>()
        .map_or_else(|_| json!(text), |ms| json!(ms))
}

async fn run_query(api: &Api, args: &QueryArgs) -> anyhow::Result<()> {
    let end = args.end.as_deref().map(time_value);
    let start = match (&args.start, &args.since) {
        (Some(start), _) => Some(time_value(start)),
        (None, Some(since)) => {
            let end_ms = match &end {
                Some(Value::Number(n)) => n.as_i64().unwrap_or_default(),
                Some(_) => bail!("--since needs --end in Unix ms, or use --start"),
                None => vigil_server::telemetry::now_ms(),
            };
            Some(json!(end_ms - crate::logs_stream::duration_ms(since)?))
        }
        (None, None) => None,
    };
    let mut request = json!({"groups": args.groups, "query": args.query});
    if let Some(n) = args.context {
        request["context"] = json!(n);
    }
    if let Some(start) = start {
        request["start"] = start;
    }
    if let Some(end) = end {
        request["end"] = end;
    }
    let mut rows = Vec::new();
    let mut took = 0;
    let last = loop {
        let body = api
            .send(
                hyper::Method::POST,
                "/api/logs/query",
                Some(serde_json::to_vec(&request)?),
            )
            .await?;
        let page: Value =
            serde_json::from_slice(&body).context("the server's answer is not json")?;
        rows.extend(page["rows"].as_array().cloned().unwrap_or_default());
        took += page["took_ms"].as_u64().unwrap_or(0);
        match page["next_cursor"].as_str() {
            Some(cursor) => request["cursor"] = json!(cursor),
            None => break page,
        }
    };
    let columns = last["columns"].as_array().cloned().unwrap_or_default();
    let scanned = last["scanned"].as_u64().unwrap_or(0);
    let matched = last["matched"].as_u64().unwrap_or(0);
    let warning = last["warning"].as_str().map(str::to_owned);
    let mut out = std::io::stdout().lock();
    if args.output == Output::Json {
        let value = json!({"columns": columns, "rows": rows, "scanned": scanned, "matched": matched, "took_ms": took, "warning": warning});
        writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
    } else {
        let names: Vec<&str> = columns.iter().filter_map(Value::as_str).collect();
        let cells: Vec<Vec<String>> = rows
            .iter()
            .map(|row| {
                names
                    .iter()
                    .map(|c| match &row[*c] {
                        Value::Null => String::new(),
                        Value::String(s) => s.clone(),
                        other => other.to_string(),
                    })
                    .collect()
            })
            .collect();
        let rendered = table::render(&names, &cells);
        if args.context.is_some_and(|n| n > 0) {
            write_with_context(&mut out, &rendered, &rows)?;
        } else {
            write!(out, "{rendered}")?;
        }
        out.flush()?;
        eprintln!(
            "{} rows, {matched} of {scanned} events matched, {took} ms",
            rows.len()
        );
    }
    if let Some(warning) = warning {
        eprintln!("warning: {warning}");
    }
    Ok(())
}

/// The table with each row's context lines around it, grep-style: the
/// events before it marked `-`, after it `+`, rows apart by `--`.
fn write_with_context(out: &mut impl Write, table: &str, rows: &[Value]) -> anyhow::Result<()> {
    let mut lines = table.lines();
    if let Some(header) = lines.next() {
        writeln!(out, "{header}")?;
    }
    let side = |row: &Value, name: &str| -> Vec<String> {
        row["@context"][name]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default()
            .iter()
            .map(|e| {
                format!(
                    "{}  {}",
                    e["@timestamp"].as_str().unwrap_or_default(),
                    e["@message"].as_str().unwrap_or_default()
                )
            })
            .collect()
    };
    for (i, (line, row)) in lines.zip(rows).enumerate() {
        if i > 0 {
            writeln!(out, "--")?;
        }
        for before in side(row, "before") {
            writeln!(out, "  - {before}")?;
        }
        writeln!(out, "{line}")?;
        for after in side(row, "after") {
            writeln!(out, "  + {after}")?;
        }
    }
    Ok(())
}

fn run_test_pattern(args: &TestPatternArgs) -> anyhow::Result<()> {
    let pattern = match Pattern::parse(&args.pattern) {
        Ok(p) => p,
        Err(err) => bail!("the pattern does not parse: {err}"),
    };
    let mut matches = Vec::new();
    let mut total = 0usize;
    for (i, line) in input(args.file.as_ref())?.lines().enumerate() {
        let line = line.context("cannot read a line")?;
        total += 1;
        if let Some(m) = pattern.matches(&line) {
            let extracted: serde_json::Map<String, Value> = m.extracted().into_iter().collect();
            matches.push((i + 1, line.clone(), extracted));
        }
    }
    let mut out = std::io::stdout().lock();
    if args.output == Output::Json {
        let value = json!({
            "matched": matches.len(),
            "total": total,
            "matches": matches.iter().map(|(line, _, extracted)| json!({"line": line, "extracted": extracted})).collect::<Vec<_>>(),
        });
        writeln!(out, "{}", serde_json::to_string_pretty(&value)?)?;
        return Ok(());
    }
    let rows: Vec<Vec<String>> = matches
        .iter()
        .map(|(line, text, extracted)| {
            let fields: Vec<String> = extracted
                .iter()
                .map(|(k, v)| match v {
                    Value::String(s) => format!("{k}={s}"),
                    other => format!("{k}={other}"),
                })
                .collect();
            vec![line.to_string(), fields.join(" "), text.clone()]
        })
        .collect();
    write!(
        out,
        "{}",
        table::render(&["LINE", "EXTRACTED", "EVENT"], &rows)
    )?;
    writeln!(out, "{} of {total} events matched", matches.len())?;
    Ok(())
}
