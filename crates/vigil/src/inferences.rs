//! `vigil inferences get|list|export`: read the inference log of a running
//! server through its HTTP API (`/api/inferences`), so it works against a
//! remote Vigil as well as a local one.

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::{Args, Subcommand, ValueEnum};
use http_body_util::{BodyExt, Empty};
use hyper_rustls::{HttpsConnector, HttpsConnectorBuilder};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;
use tokio_rustls::rustls::pki_types::CertificateDer;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};
use vigil_store::InferenceRecord;
use vigil_store::export::{ExportFormat, Exporter};

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
    /// The server's base URL, `http://` or `https://`.
    #[arg(
        long,
        global = true,
        value_name = "URL",
        default_value = "http://127.0.0.1:8080"
    )]
    url: String,

    /// API key with the admin role (sent as `Authorization: Bearer KEY`).
    #[arg(
        long,
        global = true,
        value_name = "KEY",
        env = "VIGIL_API_KEY",
        hide_env_values = true
    )]
    api_key: Option<String>,

    /// PEM certificate(s) to trust for an `https://` URL, besides the
    /// system's trusted roots: the server's own certificate when it is
    /// self-signed, or the private CA that signed it.
    #[arg(long, global = true, value_name = "FILE", env = "VIGIL_CA_CERT")]
    ca_cert: Option<PathBuf>,

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
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    let api = Api::new(&args.url, args.api_key.clone(), args.ca_cert.as_deref())?;
    runtime.block_on(async move {
        match args.command {
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
        let page = api.page(&query).await?;
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
        let page = api.page(&query).await?;
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

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn encode(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// The server's admin API.
struct Api {
    client: Client<HttpsConnector<HttpConnector>, Empty<Bytes>>,
    base: String,
    api_key: Option<String>,
}

impl Api {
    fn new(url: &str, api_key: Option<String>, ca_cert: Option<&Path>) -> anyhow::Result<Api> {
        let uri: hyper::Uri = url
            .parse()
            .with_context(|| format!("invalid --url {url:?}"))?;
        let roots = match uri.scheme_str() {
            Some("https") => trusted_roots(ca_cert)?,
            // An http:// URL never makes a handshake; the connector still
            // takes a TLS config.
            Some("http") => RootCertStore::empty(),
            _ => bail!("--url must start with http:// or https://, not {url:?}"),
        };
        let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
        let tls = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .context("tls protocol versions")?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let connector = HttpsConnectorBuilder::new()
            .with_tls_config(tls)
            .https_or_http()
            .enable_http1()
            .build();
        Ok(Api {
            client: Client::builder(TokioExecutor::new()).build(connector),
            base: url.trim_end_matches('/').to_owned(),
            api_key,
        })
    }

    async fn page(&self, query: &str) -> anyhow::Result<PageBody> {
        let body = self.get(&format!("/api/inferences?{query}")).await?;
        serde_json::from_slice(&body).context("the server's answer is not a page of records")
    }

    async fn get(&self, path: &str) -> anyhow::Result<Bytes> {
        let uri: hyper::Uri = format!("{}{path}", self.base)
            .parse()
            .context("invalid request url")?;
        let mut request = hyper::Request::get(uri);
        if let Some(key) = &self.api_key {
            request = request.header(hyper::header::AUTHORIZATION, format!("Bearer {key}"));
        }
        let request = request.body(Empty::new())?;
        let response = self
            .client
            .request(request)
            .await
            .with_context(|| format!("cannot reach {}", self.base))?;
        let status = response.status();
        let body = response.into_body().collect().await?.to_bytes();
        if !status.is_success() {
            let message = serde_json::from_slice::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v["error"].as_str().map(str::to_owned))
                .unwrap_or_else(|| String::from_utf8_lossy(&body).into_owned());
            bail!("the server answered {status}: {message}");
        }
        Ok(body)
    }
}

/// The certificates an `https://` URL is checked against: the system's
/// trusted roots plus `--ca-cert`.
fn trusted_roots(ca_cert: Option<&Path>) -> anyhow::Result<RootCertStore> {
    let mut roots = RootCertStore::empty();
    // A system certificate that does not parse is skipped, as browsers do.
    roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
    if let Some(path) = ca_cert {
        let certs = CertificateDer::pem_file_iter(path)
            .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
            .map_err(|err| anyhow::anyhow!("{err}"))
            .with_context(|| format!("--ca-cert: cannot read {}", path.display()))?;
        if certs.is_empty() {
            bail!("--ca-cert: no PEM certificate in {}", path.display());
        }
        for cert in certs {
            roots
                .add(cert)
                .with_context(|| format!("--ca-cert: a certificate in {}", path.display()))?;
        }
    }
    if roots.is_empty() {
        bail!(
            "no trusted certificates for https: the system has none (install the \
             ca-certificates package) and no --ca-cert was given"
        );
    }
    Ok(roots)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_values_are_percent_encoded() {
        assert_eq!(encode("batch-7#3"), "batch-7%233");
        assert_eq!(
            encode("2026-11-23T00:00:00+01:00"),
            "2026-11-23T00%3A00%3A00%2B01%3A00"
        );
        assert_eq!(encode("é"), "%C3%A9");
    }

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
