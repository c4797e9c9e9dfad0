//! `vigil logs tail` and `vigil logs export`: the commands that read a
//! group's events as a stream — the events route's JSON lines
//! (`GET /api/logs/{group}/events`) and the live tail's server-sent events
//! (`GET /api/logs/{group}/tail`).

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::{Args, ValueEnum};
use http_body_util::BodyExt;
use serde_json::Value;

use crate::api_client::{Api, encode};
use crate::table;

/// How `tail` prints an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum TailOutput {
    /// `TIME STREAM MESSAGE`, one line per event.
    Text,
    /// The event as the server sends it: one JSON object per line.
    Json,
}

#[derive(Debug, Args)]
pub(crate) struct TailArgs {
    /// The group, e.g. /vigil/access.
    #[arg(short = 'g', long = "group", value_name = "GROUP")]
    group: String,
    /// Keep following: print each event as it is stored, until Ctrl-C.
    #[arg(short = 'f', long)]
    follow: bool,
    /// Only the events this filter pattern matches, e.g. 'ERROR' or
    /// '{ $.status >= 500 }' (the language of `vigil logs test-pattern`).
    #[arg(long, value_name = "PATTERN")]
    filter: Option<String>,
    /// Start from the events of the last DURATION (30s, 10m, 1h, 7d).
    #[arg(long, value_name = "DURATION", default_value = "10m")]
    since: String,
    /// Print at most the latest N stored events (1 to 10000) before exiting
    /// or following.
    #[arg(short = 'n', long, value_name = "N", default_value_t = 100)]
    lines: usize,
    /// Output format.
    #[arg(long, value_enum, default_value_t = TailOutput::Text)]
    output: TailOutput,
}

#[derive(Debug, Args)]
pub(crate) struct ExportArgs {
    /// The group, e.g. /vigil/access.
    #[arg(short = 'g', long = "group", value_name = "GROUP")]
    group: String,
    /// Start of the range: RFC 3339, Unix ms, or a DURATION ago (1h, 7d).
    #[arg(long, value_name = "TIME")]
    from: String,
    /// End of the range (exclusive), in the same forms; default now.
    #[arg(long, value_name = "TIME")]
    to: Option<String>,
    /// The file to write: gzip-compressed when it ends in .gz, plain JSON
    /// lines otherwise. Written as FILE.part and renamed when complete.
    #[arg(long, value_name = "FILE")]
    output: PathBuf,
    /// Only the events this filter pattern matches.
    #[arg(long, value_name = "PATTERN")]
    filter: Option<String>,
}

/// `30s`, `15m`, `1h`, `7d` in milliseconds.
pub(crate) fn duration_ms(text: &str) -> anyhow::Result<i64> {
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let n: i64 = number
        .parse()
        .with_context(|| format!("--since {text:?}: expected a number and a unit, e.g. 15m"))?;
    let unit_ms = match unit {
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => bail!("--since {text:?}: the unit must be s, m, h or d"),
    };
    Ok(n.saturating_mul(unit_ms))
}

/// A time flag as the events route takes it: RFC 3339 and Unix ms as they
/// are, a duration (`1h`) as Unix ms that long before `now_ms`.
pub(crate) fn time_arg(flag: &str, text: &str, now_ms: i64) -> anyhow::Result<String> {
    if text.parse::<i64>().is_ok() {
        return Ok(text.to_owned());
    }
    if text.ends_with(['s', 'm', 'h', 'd']) && text[..text.len() - 1].parse::<u64>().is_ok() {
        let ago = duration_ms(text)?;
        return Ok((now_ms - ago).to_string());
    }
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .with_context(|| {
            format!("{flag} {text:?}: expected RFC 3339, Unix ms or a duration such as 1h")
        })?;
    Ok(text.to_owned())
}

/// `&filter=...`, or nothing.
fn filter_query(filter: Option<&str>) -> String {
    filter.map_or_else(String::new, |f| format!("&filter={}", encode(f)))
}

/// One event line of the server (`{"timestamp", "ingestion_time",
/// "log_stream", "message"}`) as `tail` prints it.
fn print_event(out: &mut impl Write, json: &str, output: TailOutput) -> anyhow::Result<()> {
    if output == TailOutput::Json {
        writeln!(out, "{json}")?;
        return Ok(());
    }
    let event: Value =
        serde_json::from_str(json).with_context(|| format!("not an event: {json}"))?;
    writeln!(
        out,
        "{} {} {}",
        event["timestamp"]
            .as_i64()
            .map(table::rfc3339_ms)
            .unwrap_or_default(),
        event["log_stream"].as_str().unwrap_or_default(),
        event["message"].as_str().unwrap_or_default()
    )?;
    Ok(())
}

/// Runs `vigil logs tail`.
pub(crate) async fn run_tail(api: &Api, args: &TailArgs) -> anyhow::Result<()> {
    if !(1..=10_000).contains(&args.lines) {
        bail!("--lines must be 1 to 10000, not {}", args.lines);
    }
    let start = vigil_server::telemetry::now_ms() - duration_ms(&args.since)?;
    let group = encode(&args.group);
    let filter = filter_query(args.filter.as_deref());
    if !args.follow {
        let path = format!(
            "/api/logs/{group}/events?start={start}&limit={}{filter}",
            args.lines
        );
        let body = api.get(&path).await?;
        let text = std::str::from_utf8(&body).context("the server's answer is not text")?;
        let mut out = std::io::stdout().lock();
        for line in text.lines().filter(|l| !l.is_empty()) {
            print_event(&mut out, line, args.output)?;
        }
        return Ok(());
    }
    let path = format!(
        "/api/logs/{group}/tail?start={start}&limit={}{filter}",
        args.lines
    );
    let (_, mut body) = api.open(&path).await?;
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut buf: Vec<u8> = Vec::new();
    loop {
        let frame = tokio::select! {
            _ = &mut ctrl_c => return Ok(()),
            frame = body.frame() => frame,
        };
        match frame {
            None => {
                eprintln!("the tail ended: the group was deleted or the server is stopping");
                return Ok(());
            }
            Some(Err(err)) => bail!("the tail broke off: {err}"),
            Some(Ok(frame)) => {
                if let Ok(data) = frame.into_data() {
                    buf.extend_from_slice(&data);
                }
            }
        }
        let mut out = std::io::stdout().lock();
        while let Some(end) = buf.windows(2).position(|w| w == b"\n\n") {
            let block: Vec<u8> = buf.drain(..end + 2).collect();
            let block = String::from_utf8_lossy(&block);
            sse_block(&mut out, &block, args.output)?;
        }
        out.flush()?;
    }
}

/// One server-sent event: an event line, a `dropped` notice, or a
/// keep-alive comment.
fn sse_block(out: &mut impl Write, block: &str, output: TailOutput) -> anyhow::Result<()> {
    let mut kind = "message";
    let mut data = String::new();
    for line in block.lines() {
        if let Some(k) = line.strip_prefix("event:") {
            kind = k.trim();
        } else if let Some(d) = line.strip_prefix("data:") {
            if !data.is_empty() {
                data.push('\n');
            }
            data.push_str(d.strip_prefix(' ').unwrap_or(d));
        }
    }
    match kind {
        _ if data.is_empty() => {}
        "dropped" => {
            let n = serde_json::from_str::<Value>(&data)
                .ok()
                .and_then(|v| v["dropped"].as_u64())
                .unwrap_or(0);
            eprintln!("... {n} events dropped: this tail read more slowly than they arrived");
        }
        _ => print_event(out, &data, output)?,
    }
    Ok(())
}

/// Where the export goes: gzip or plain, to `FILE.part` first.
enum Sink {
    Gzip(flate2::write::GzEncoder<std::io::BufWriter<std::fs::File>>),
    Plain(std::io::BufWriter<std::fs::File>),
}

impl Sink {
    fn create(path: &Path, gzip: bool) -> anyhow::Result<Sink> {
        let file = std::fs::File::create(path)
            .with_context(|| format!("cannot create {}", path.display()))?;
        let file = std::io::BufWriter::new(file);
        Ok(if gzip {
            Sink::Gzip(flate2::write::GzEncoder::new(
                file,
                flate2::Compression::default(),
            ))
        } else {
            Sink::Plain(file)
        })
    }

    fn write_all(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        match self {
            Sink::Gzip(w) => w.write_all(bytes),
            Sink::Plain(w) => w.write_all(bytes),
        }
    }

    fn finish(self) -> std::io::Result<()> {
        let file = match self {
            Sink::Gzip(w) => w.finish()?,
            Sink::Plain(w) => w,
        };
        file.into_inner()
            .map_err(std::io::IntoInnerError::into_error)?
            .sync_all()
    }
}

/// Runs `vigil logs export`.
pub(crate) async fn run_export(api: &Api, args: &ExportArgs) -> anyhow::Result<()> {
    let now = vigil_server::telemetry::now_ms();
    let from = time_arg("--from", &args.from, now)?;
    let to = match &args.to {
        Some(to) => time_arg("--to", to, now)?,
        None => now.to_string(),
    };
    let path = format!(
        "/api/logs/{}/events?start={}&end={}{}",
        encode(&args.group),
        encode(&from),
        encode(&to),
        filter_query(args.filter.as_deref())
    );
    let (headers, mut body) = api.open(&path).await?;
    let estimate = headers
        .get("x-vigil-estimated-events")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let gzip = args.output.extension().is_some_and(|e| e == "gz");
    let mut part = args.output.clone().into_os_string();
    part.push(".part");
    let part = PathBuf::from(part);
    let mut sink = Sink::create(&part, gzip)?;
    let bar = progress(estimate);
    let (mut events, mut bytes) = (0u64, 0u64);
    let mut last = b'\n';
    let result: anyhow::Result<()> = async {
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|err| {
                anyhow::anyhow!("the export was cut short (the server failed mid-stream): {err}")
            })?;
            let Ok(data) = frame.into_data() else {
                continue;
            };
            sink.write_all(&data)
                .with_context(|| format!("cannot write {}", part.display()))?;
            events += count_lines(&data);
            bytes += data.len() as u64;
            if let Some(&b) = data.last() {
                last = b;
            }
            if let Some(bar) = &bar {
                if bar.length().is_some_and(|len| events > len) {
                    bar.set_length(events);
                }
                bar.set_position(events);
                bar.set_message(indicatif::HumanBytes(bytes).to_string());
            }
        }
        if last != b'\n' {
            bail!("the export was cut short: the last line is incomplete");
        }
        Ok(())
    }
    .await;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    if let Err(err) = result {
        drop(sink);
        let _ = std::fs::remove_file(&part);
        return Err(err);
    }
    sink.finish()
        .with_context(|| format!("cannot write {}", part.display()))?;
    std::fs::rename(&part, &args.output).with_context(|| {
        format!(
            "cannot rename {} to {}",
            part.display(),
            args.output.display()
        )
    })?;
    let written = std::fs::metadata(&args.output).map_or(0, |m| m.len());
    eprintln!(
        "{events} events ({} of JSON lines, {} on disk) exported from {} to {}",
        indicatif::HumanBytes(bytes),
        indicatif::HumanBytes(written),
        args.group,
        args.output.display()
    );
    Ok(())
}

fn count_lines(data: &[u8]) -> u64 {
    data.iter().filter(|&&b| b == b'\n').count() as u64
}

/// A bar over the server's estimate of the events in the range (an upper
/// bound), on a terminal only.
fn progress(estimate: Option<u64>) -> Option<indicatif::ProgressBar> {
    use std::io::IsTerminal;
    if !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = match estimate {
        Some(n) if n > 0 => indicatif::ProgressBar::new(n),
        _ => indicatif::ProgressBar::new_spinner(),
    };
    let style = indicatif::ProgressStyle::with_template(
        "{spinner} {bar:30} {pos}/{len} events, {msg}, {per_sec}, eta {eta}",
    )
    .ok()?;
    bar.set_style(style);
    bar.enable_steady_tick(std::time::Duration::from_millis(100));
    Some(bar)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_passed_on_or_resolved_from_now() {
        let now = 1_800_000_000_000;
        assert_eq!(
            time_arg("--from", "1700000000000", now).unwrap(),
            "1700000000000"
        );
        assert_eq!(
            time_arg("--from", "1h", now).unwrap(),
            (now - 3_600_000).to_string()
        );
        assert_eq!(
            time_arg("--from", "2026-12-01T20:00:00Z", now).unwrap(),
            "2026-12-01T20:00:00Z"
        );
        let err = time_arg("--from", "yesterday", now)
            .unwrap_err()
            .to_string();
        assert!(err.contains("--from") && err.contains("RFC 3339"), "{err}");
    }

    #[test]
    fn server_sent_events_become_lines_and_notices() {
        let mut out = Vec::new();
        let line = r#"{"timestamp":60000,"ingestion_time":60001,"log_stream":"h","message":"hi"}"#;
        sse_block(&mut out, &format!("data: {line}\n\n"), TailOutput::Text).unwrap();
        sse_block(&mut out, ":\n\n", TailOutput::Text).unwrap();
        sse_block(
            &mut out,
            "event: dropped\ndata: {\"dropped\":3}\n\n",
            TailOutput::Text,
        )
        .unwrap();
        sse_block(&mut out, &format!("data: {line}\n\n"), TailOutput::Json).unwrap();
        let text = String::from_utf8(out).unwrap();
        assert_eq!(text, format!("1970-01-01T00:01:00Z h hi\n{line}\n"));
    }
}
