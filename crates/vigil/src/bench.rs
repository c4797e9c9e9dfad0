//! `vigil bench`: an open-loop, fixed-rate HTTP load generator, and a
//! closed-loop mode (`--closed`) that also speaks gRPC (`--grpc`).
//!
//! A pacer thread issues one ticket per request at its *intended* send time
//! (`start + i / rate`); connection tasks take tickets from a shared queue and
//! measure each latency from the ticket's intended time, not from when the
//! request actually left. A server that stalls therefore shows its stall in
//! every request that should have been sent meanwhile, instead of hiding it
//! by slowing the generator down (coordinated omission).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::Args;
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::sync::{Mutex, mpsc};

/// Highest latency the histogram tracks: longer ones are clamped to it.
const MAX_LATENCY_NS: u64 = 60_000_000_000;

#[derive(Debug, Args)]
#[command(
    about = "Send requests at a fixed rate and report latency percentiles",
    long_about = "Send requests at a fixed rate and report latency percentiles.\n\n\
        Open loop: request i is due at start + i/rate whether or not earlier ones \
        have answered, and its latency is measured from that due time, so a server \
        stall is counted for every request it delayed (no coordinated omission). \
        Each connection is HTTP/1.1 keep-alive; a request that finds every connection \
        busy waits, and the wait counts in its latency.\n\n\
        Example:\n  \
        vigil serve &\n  \
        vigil bench --url http://127.0.0.1:8080/v1/models/fraud/score --rate 10000 --duration 10"
)]
pub struct BenchArgs {
    /// URL to POST to (http only).
    #[arg(
        long,
        value_name = "URL",
        default_value = "http://127.0.0.1:8080/v1/models/fraud/score"
    )]
    url: String,

    /// Requests per second to send.
    #[arg(long, value_name = "N", default_value_t = 1000)]
    rate: u64,

    /// Seconds of measured load.
    #[arg(long, value_name = "SECS", default_value_t = 10.0)]
    duration: f64,

    /// Seconds of load before the measured run, not counted.
    #[arg(long, value_name = "SECS", default_value_t = 0.0)]
    warmup: f64,

    /// Keep-alive connections to spread the requests over.
    #[arg(long, short = 'c', value_name = "C", default_value_t = 16)]
    connections: usize,

    /// File holding the request body.
    /// Default: one row of the bundled demo model for /v1/models/fraud/score.
    #[arg(long, value_name = "FILE", conflicts_with = "body_json")]
    body: Option<PathBuf>,

    /// The request body, inline.
    #[arg(long, value_name = "STRING")]
    body_json: Option<String>,

    /// Content-Type of the body.
    #[arg(long, value_name = "TYPE", default_value = "application/json")]
    content_type: String,

    /// Milliseconds a request may take before it counts as an error.
    #[arg(long, value_name = "MS", default_value_t = 10_000)]
    timeout_ms: u64,

    /// Threads of the generator's runtime (the server on the same machine
    /// needs the others).
    #[arg(long, value_name = "N", default_value_t = 1)]
    threads: usize,

    /// Print the result as one JSON object instead of text.
    #[arg(long)]
    json: bool,

    /// Closed loop instead of a fixed rate: `--connections` workers each
    /// send their next request as soon as the last one answered (`--rate`
    /// is ignored); latency is measured from each send.
    #[arg(long)]
    closed: bool,

    /// Send gRPC ModelInfer calls for model NAME (needs `--closed`): the
    /// body is an Open Inference Protocol JSON infer request whose FP32 or
    /// FP64 inputs become `raw_input_contents`; `--url` is the server
    /// (`http://HOST:PORT`), and the workers are concurrent streams on one
    /// HTTP/2 connection (or several: `--grpc-channels`).
    #[arg(long, value_name = "NAME", requires = "closed")]
    grpc: Option<String>,

    /// With `--grpc`: spread the workers over N HTTP/2 connections (gRPC
    /// channels), worker i on channel i mod N. One channel is what a gRPC
    /// client opens by default; more show what a client that opens several
    /// gets.
    #[arg(long, value_name = "N", default_value_t = 1, requires = "grpc",
        value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    grpc_channels: usize,
}

/// Where and what to send.
#[derive(Debug, Clone)]
struct Target {
    addr: std::net::SocketAddr,
    uri: hyper::Uri,
    host: String,
    body: Bytes,
    content_type: String,
    /// gRPC: the body is one length-prefixed message, the outcome is the
    /// `grpc-status`.
    grpc: bool,
    timeout: Duration,
}

/// What one phase measured.
#[derive(Debug)]
struct Stats {
    histogram: Histogram<u64>,
    ok: u64,
    non_2xx: u64,
    errors: u64,
    dropped: u64,
    elapsed: Duration,
}

impl Stats {
    fn new() -> anyhow::Result<Stats> {
        Ok(Stats {
            histogram: Histogram::new_with_bounds(1_000, MAX_LATENCY_NS, 3)
                .context("cannot create the latency histogram")?,
            ok: 0,
            non_2xx: 0,
            errors: 0,
            dropped: 0,
            elapsed: Duration::ZERO,
        })
    }

    fn merge(&mut self, other: &Stats) -> anyhow::Result<()> {
        self.histogram
            .add(&other.histogram)
            .context("cannot merge latency histograms")?;
        self.ok += other.ok;
        self.non_2xx += other.non_2xx;
        self.errors += other.errors;
        self.dropped += other.dropped;
        Ok(())
    }
}

pub fn run(args: BenchArgs) -> anyhow::Result<()> {
    if (args.rate == 0 && !args.closed) || args.connections == 0 {
        bail!("--rate and --connections must be at least 1");
    }
    let valid = |secs: f64| secs.is_finite() && secs >= 0.0;
    if !valid(args.duration) || args.duration == 0.0 || !valid(args.warmup) {
        bail!("--duration must be positive and --warmup not negative");
    }
    let target = Arc::new(target(&args)?);
    let runtime = if args.threads <= 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(args.threads)
            .enable_all()
            .build()
    }
    .context("cannot start the runtime")?;

    let stats = runtime.block_on(async {
        if args.closed {
            if args.warmup > 0.0 {
                closed_phase(&target, args.warmup, args.connections, args.grpc_channels).await?;
            }
            return closed_phase(&target, args.duration, args.connections, args.grpc_channels)
                .await;
        }
        if args.warmup > 0.0 {
            phase(&target, args.rate, args.warmup, args.connections).await?;
        }
        phase(&target, args.rate, args.duration, args.connections).await
    })?;
    if stats.ok + stats.non_2xx == 0 {
        bail!(
            "no request got an answer from {} ({} errors)",
            args.url,
            stats.errors
        );
    }
    if args.json {
        println!("{}", report_json(&args, &stats));
    } else {
        print!("{}", report_text(&args, &stats));
    }
    Ok(())
}

fn target(args: &BenchArgs) -> anyhow::Result<Target> {
    let mut uri: hyper::Uri = args
        .url
        .parse()
        .with_context(|| format!("invalid --url {:?}", args.url))?;
    if args.grpc.is_some() {
        uri = format!(
            "{}://{}{}ModelInfer",
            uri.scheme_str().unwrap_or("http"),
            uri.authority().map_or("", |a| a.as_str()),
            vigil_server::grpc_api::ROUTE_PREFIX
        )
        .parse()
        .context("gRPC method uri")?;
    }
    if uri.scheme_str() != Some("http") {
        bail!("--url must start with http:// (https is not supported)");
    }
    let host = uri.host().context("--url has no host")?.to_string();
    let port = uri.port_u16().unwrap_or(80);
    let addr = std::net::ToSocketAddrs::to_socket_addrs(&(host.as_str(), port))
        .with_context(|| format!("cannot resolve {host}"))?
        .next()
        .with_context(|| format!("{host} resolves to no address"))?;
    let body = match (&args.body, &args.body_json) {
        (Some(path), _) => std::fs::read(path)
            .with_context(|| format!("cannot read --body {}", path.display()))?
            .into(),
        (None, Some(json)) => Bytes::from(json.clone()),
        (None, None) => Bytes::from(default_body()),
    };
    let (body, content_type) = match &args.grpc {
        Some(model) => (grpc_frame(model, &body)?, "application/grpc".to_owned()),
        None => (body, args.content_type.clone()),
    };
    let host_header = match uri.port_u16() {
        Some(p) => format!("{host}:{p}"),
        None => host,
    };
    Ok(Target {
        addr,
        uri,
        host: host_header,
        body,
        content_type,
        grpc: args.grpc.is_some(),
        timeout: Duration::from_millis(args.timeout_ms),
    })
}

/// One everyday transaction for the bundled demo model (a feature this
/// table does not know gets 0).
fn default_body() -> String {
    const TYPICAL: &[(&str, f64)] = &[
        ("amount", 42.5),
        ("merchant_category", 5411.0),
        ("hour", 14.0),
        ("card_age_days", 730.0),
        ("tx_last_hour", 1.0),
        ("distance_from_home_km", 3.2),
    ];
    let value = |name: &str| {
        TYPICAL
            .iter()
            .find(|(n, _)| *n == name)
            .map_or(0.0, |(_, v)| *v)
    };
    let features: serde_json::Map<String, serde_json::Value> =
        vigil_model::Model::from_bytes(vigil_server::DEMO_MODEL, None)
            .map(|m| {
                m.feature_names()
                    .iter()
                    .map(|n| (n.clone(), serde_json::Value::from(value(n))))
                    .collect()
            })
            .unwrap_or_default();
    serde_json::json!({ "id": "bench", "features": features }).to_string()
}

/// Run the schedule for `secs` seconds and gather what the connections saw.
async fn phase(
    target: &Arc<Target>,
    rate: u64,
    secs: f64,
    connections: usize,
) -> anyhow::Result<Stats> {
    let (tx, rx) = mpsc::unbounded_channel::<Instant>();
    let rx = Arc::new(Mutex::new(rx));
    let total = (rate as f64 * secs).round() as u64;
    let start = Instant::now();
    let pacer = std::thread::spawn(move || pace(start, rate, total, tx));

    // Tickets still queued this long after the last one was due are dropped.
    let drain_deadline = start + Duration::from_secs_f64(secs) + target.timeout;
    let mut workers = Vec::with_capacity(connections);
    for _ in 0..connections {
        let target = Arc::clone(target);
        let rx = Arc::clone(&rx);
        workers.push(tokio::spawn(connection(target, rx, drain_deadline)));
    }
    let mut stats = Stats::new()?;
    for worker in workers {
        let worker_stats = worker.await.context("a connection task failed")??;
        stats.merge(&worker_stats)?;
    }
    stats.elapsed = start.elapsed();
    if pacer.join().is_err() {
        bail!("the pacer thread panicked");
    }
    Ok(stats)
}

/// Issue `total` tickets at `rate` per second, each carrying its due time.
/// A blocking thread sleeps with sub-millisecond precision, unlike the
/// runtime's millisecond timer wheel.
fn pace(start: Instant, rate: u64, total: u64, tx: mpsc::UnboundedSender<Instant>) {
    let due = |i: u64| start + Duration::from_secs_f64(i as f64 / rate as f64);
    let mut i = 0;
    while i < total {
        let next = due(i);
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        }
        let now = Instant::now();
        while i < total {
            let d = due(i);
            if d > now {
                break;
            }
            if tx.send(d).is_err() {
                return;
            }
            i += 1;
        }
    }
}

/// One keep-alive connection: take tickets, send, measure from the due time.
async fn connection(
    target: Arc<Target>,
    tickets: Arc<Mutex<mpsc::UnboundedReceiver<Instant>>>,
    drain_deadline: Instant,
) -> anyhow::Result<Stats> {
    let mut stats = Stats::new()?;
    let mut sender: Option<SendRequest<Full<Bytes>>> = None;
    loop {
        let due = match tickets.lock().await.recv().await {
            Some(due) => due,
            None => break,
        };
        if Instant::now() > drain_deadline {
            stats.dropped += 1;
            continue;
        }
        if sender.is_none() {
            match connect(&target).await {
                Ok(s) => sender = Some(s),
                Err(_) => {
                    stats.errors += 1;
                    continue;
                }
            }
        }
        let Some(s) = sender.as_mut() else { continue };
        match tokio::time::timeout(target.timeout, send(s, &target)).await {
            Ok(Ok(status)) => {
                let ns = u64::try_from(due.elapsed().as_nanos()).unwrap_or(u64::MAX);
                stats.histogram.saturating_record(ns.max(1_000));
                if status.is_success() {
                    stats.ok += 1;
                } else {
                    stats.non_2xx += 1;
                }
            }
            Ok(Err(_)) | Err(_) => {
                stats.errors += 1;
                sender = None;
            }
        }
    }
    Ok(stats)
}

async fn connect(target: &Target) -> anyhow::Result<SendRequest<Full<Bytes>>> {
    let stream = tokio::net::TcpStream::connect(target.addr).await?;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    tokio::spawn(async move {
        // The connection ends when the sender is dropped or the peer closes.
        let _ = conn.await;
    });
    Ok(sender)
}

async fn send(
    sender: &mut SendRequest<Full<Bytes>>,
    target: &Target,
) -> anyhow::Result<hyper::StatusCode> {
    sender.ready().await?;
    let request = Request::post(target.uri.clone())
        .header(hyper::header::HOST, target.host.as_str())
        .header(hyper::header::CONTENT_TYPE, target.content_type.as_str())
        .body(Full::new(target.body.clone()))?;
    let response = sender.send_request(request).await?;
    let status = response.status();
    // Read the whole body so the connection can carry the next request.
    response.into_body().collect().await?;
    Ok(status)
}

fn percentile_us(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1_000.0
}

fn report_json(args: &BenchArgs, s: &Stats) -> serde_json::Value {
    let h = &s.histogram;
    serde_json::json!({
        "url": args.url,
        "mode": mode(args),
        "rate": (!args.closed).then_some(args.rate),
        "duration_s": args.duration,
        "connections": args.connections,
        "requests": s.ok + s.non_2xx + s.errors + s.dropped,
        "ok": s.ok,
        "non_2xx": s.non_2xx,
        "errors": s.errors,
        "dropped": s.dropped,
        "achieved_rps": achieved_rps(s),
        "latency_us": {
            "p50": percentile_us(h, 0.5),
            "p90": percentile_us(h, 0.9),
            "p99": percentile_us(h, 0.99),
            "p99_9": percentile_us(h, 0.999),
            "max": h.max() as f64 / 1_000.0,
            "mean": h.mean() / 1_000.0,
        },
    })
}

fn achieved_rps(s: &Stats) -> f64 {
    (s.ok + s.non_2xx) as f64 / s.elapsed.as_secs_f64().max(1e-9)
}

fn report_text(args: &BenchArgs, s: &Stats) -> String {
    let h = &s.histogram;
    format!(
        "target    {url}\n\
         schedule  {schedule} for {dur} s over {conns} {what}\n\
         achieved  {achieved:.1} req/s\n\
         answers   {ok} 2xx, {non} non-2xx, {err} errors, {dropped} dropped\n\
         latency   {from}, in µs\n  \
         p50 {p50:.1}  p90 {p90:.1}  p99 {p99:.1}  p99.9 {p999:.1}  max {max:.1}  mean {mean:.1}\n",
        url = args.url,
        schedule = if args.closed {
            format!("closed loop ({})", mode(args))
        } else {
            format!("{} req/s", args.rate)
        },
        what = if args.grpc.is_some() {
            "streams"
        } else {
            "connections"
        },
        from = if args.closed {
            "from each send"
        } else {
            "from each request's intended send time"
        },
        dur = args.duration,
        conns = args.connections,
        achieved = achieved_rps(s),
        ok = s.ok,
        non = s.non_2xx,
        err = s.errors,
        dropped = s.dropped,
        p50 = percentile_us(h, 0.5),
        p90 = percentile_us(h, 0.9),
        p99 = percentile_us(h, 0.99),
        p999 = percentile_us(h, 0.999),
        max = h.max() as f64 / 1_000.0,
        mean = h.mean() / 1_000.0,
    )
}

fn mode(args: &BenchArgs) -> &'static str {
    match (args.closed, args.grpc.is_some()) {
        (false, _) => "fixed-rate http/1.1",
        (true, false) => "closed http/1.1",
        (true, true) => "closed grpc",
    }
}

/// The gRPC frame of a ModelInfer call for `model`, from an OIP JSON infer
/// request: the uncompressed flag, the big-endian length, the message.
fn grpc_frame(model: &str, json: &[u8]) -> anyhow::Result<Bytes> {
    use vigil_server::grpc_api::proto::ModelInferRequest;
    use vigil_server::grpc_api::proto::model_infer_request::InferInputTensor;
    let request: serde_json::Value = serde_json::from_slice(json)
        .context("the --grpc body must be an OIP JSON infer request")?;
    let mut message = ModelInferRequest {
        model_name: model.to_owned(),
        id: request["id"].as_str().unwrap_or_default().to_owned(),
        ..ModelInferRequest::default()
    };
    let inputs = request["inputs"]
        .as_array()
        .context("the --grpc body has no `inputs` array")?;
    for input in inputs {
        let name = input["name"].as_str().context("an input has no `name`")?;
        let datatype = input["datatype"].as_str().unwrap_or("FP64");
        let shape: Vec<i64> = input["shape"]
            .as_array()
            .with_context(|| format!("input `{name}` has no `shape`"))?
            .iter()
            .filter_map(serde_json::Value::as_i64)
            .collect();
        let mut values = Vec::new();
        flatten(&input["data"], &mut values);
        let raw: Vec<u8> = match datatype {
            "FP32" => values
                .iter()
                .flat_map(|v| (*v as f32).to_le_bytes())
                .collect(),
            "FP64" => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            other => bail!("input `{name}` is {other}; the --grpc body takes FP32 or FP64"),
        };
        message.inputs.push(InferInputTensor {
            name: name.to_owned(),
            datatype: datatype.to_owned(),
            shape,
            ..InferInputTensor::default()
        });
        message.raw_input_contents.push(raw.into());
    }
    let encoded = prost::Message::encode_to_vec(&message);
    let mut frame = Vec::with_capacity(5 + encoded.len());
    frame.push(0);
    frame.extend_from_slice(&u32::try_from(encoded.len())?.to_be_bytes());
    frame.extend_from_slice(&encoded);
    Ok(frame.into())
}

fn flatten(value: &serde_json::Value, out: &mut Vec<f64>) {
    match value {
        serde_json::Value::Array(items) => items.iter().for_each(|v| flatten(v, out)),
        other => out.push(other.as_f64().unwrap_or(f64::NAN)),
    }
}

/// Closed loop for `secs`: `workers` tasks, each sending its next request
/// when the last one answered. HTTP: one keep-alive connection per worker;
/// gRPC: one HTTP/2 connection, one stream at a time per worker.
async fn closed_phase(
    target: &Arc<Target>,
    secs: f64,
    workers: usize,
    channels: usize,
) -> anyhow::Result<Stats> {
    let mut h2s = Vec::new();
    if target.grpc {
        for _ in 0..channels {
            h2s.push(connect_h2(target).await?);
        }
    }
    let start = Instant::now();
    let deadline = start + Duration::from_secs_f64(secs);
    let mut tasks = Vec::with_capacity(workers);
    for worker in 0..workers {
        let target = Arc::clone(target);
        let h2 = (!h2s.is_empty()).then(|| h2s[worker % h2s.len()].clone());
        tasks.push(tokio::spawn(async move {
            let mut stats = Stats::new()?;
            let mut h1 = None;
            while Instant::now() < deadline {
                let sent = Instant::now();
                let outcome = match &h2 {
                    Some(h2) => {
                        tokio::time::timeout(target.timeout, send_grpc(h2.clone(), &target)).await
                    }
                    None => {
                        if h1.is_none() {
                            h1 = connect(&target).await.ok();
                        }
                        let Some(sender) = h1.as_mut() else {
                            stats.errors += 1;
                            continue;
                        };
                        tokio::time::timeout(target.timeout, async {
                            send(sender, &target).await.map(|s| s.is_success())
                        })
                        .await
                    }
                };
                match outcome {
                    Ok(Ok(ok)) => {
                        let ns = u64::try_from(sent.elapsed().as_nanos()).unwrap_or(u64::MAX);
                        stats.histogram.saturating_record(ns.max(1_000));
                        if ok {
                            stats.ok += 1;
                        } else {
                            stats.non_2xx += 1;
                        }
                    }
                    Ok(Err(_)) | Err(_) => {
                        stats.errors += 1;
                        h1 = None;
                    }
                }
            }
            anyhow::Ok(stats)
        }));
    }
    let mut stats = Stats::new()?;
    for task in tasks {
        stats.merge(&task.await.context("a worker failed")??)?;
    }
    stats.elapsed = start.elapsed();
    Ok(stats)
}

type H2Sender = hyper::client::conn::http2::SendRequest<Full<Bytes>>;

async fn connect_h2(target: &Target) -> anyhow::Result<H2Sender> {
    let stream = tokio::net::TcpStream::connect(target.addr)
        .await
        .with_context(|| format!("cannot connect to {}", target.addr))?;
    stream.set_nodelay(true)?;
    let (sender, conn) =
        hyper::client::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
            .handshake(TokioIo::new(stream))
            .await
            .context("HTTP/2 handshake (prior knowledge)")?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// One gRPC call; `Ok(true)` when its `grpc-status` is 0.
async fn send_grpc(mut sender: H2Sender, target: &Target) -> anyhow::Result<bool> {
    sender.ready().await?;
    let request = Request::post(target.uri.clone())
        .header(hyper::header::CONTENT_TYPE, "application/grpc")
        .header(hyper::header::TE, "trailers")
        .body(Full::new(target.body.clone()))?;
    let response = sender.send_request(request).await?;
    let in_headers = response.headers().get("grpc-status").cloned();
    let collected = response.into_body().collect().await?;
    let status = in_headers.or_else(|| {
        collected
            .trailers()
            .and_then(|t| t.get("grpc-status").cloned())
    });
    Ok(status.is_some_and(|s| s.as_bytes() == b"0"))
}
