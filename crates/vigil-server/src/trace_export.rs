//! The OTLP/HTTP export of stored traces to a collector (Jaeger, Tempo, an
//! OpenTelemetry Collector): the trace writer offers each batch it stored
//! ([`TraceExporter::offer`], never blocking); a thread of its own batches
//! the spans (up to `traces.otlp_batch_spans`, or what came in within
//! [`FLUSH_INTERVAL`]), encodes them as protobuf or OTLP/JSON and POSTs them
//! with retries and exponential backoff, as the OTLP exporters do: retried
//! on connection errors, time-outs, 429, 502, 503 and 504 (with
//! `Retry-After`), within `traces.otlp_timeout_ms` per batch; any other
//! status is a rejection and is not retried. At most
//! `traces.otlp_queue_spans` spans wait; more are dropped and counted, so a
//! dead collector costs the requests nothing.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::Duration;

use axum::http::{HeaderName, HeaderValue, Uri};
use bytes::Bytes;
use serde::Serialize;
use tokio::sync::mpsc::{UnboundedReceiver, UnboundedSender};
use tokio::time::Instant;
use vigil_metrics::notify::{HttpClient, RetryPolicy, SendError, send_with_retry};
use vigil_trace::model::Span;

use crate::config::{OtlpExportConfig, OtlpProtocol};

/// How long a batch waits to fill before it is sent anyway.
pub const FLUSH_INTERVAL: Duration = Duration::from_secs(1);
/// The wait after a batch's first failed attempt (doubling after each).
const INITIAL_BACKOFF: Duration = Duration::from_millis(500);
/// The longest wait between two attempts.
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// TCP/TLS connect time-out (an attempt's own time-out may be shorter).
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The exporter's counters since start.
#[derive(Debug, Clone, Copy, Default, Serialize, PartialEq, Eq)]
pub struct ExportStats {
    /// Spans taken into the export queue.
    pub queued_spans: u64,
    /// Spans dropped because the export queue was full.
    pub dropped_spans: u64,
    /// Spans the collector accepted.
    pub exported_spans: u64,
    /// Requests the collector accepted.
    pub exported_batches: u64,
    /// Batches given up (after their retries, or rejected).
    pub failed_batches: u64,
    /// The spans of those batches.
    pub failed_spans: u64,
    /// Of the failed batches, those the collector refused with a status
    /// that is not retried (400: a malformed request).
    pub rejected_batches: u64,
    /// Attempts after a batch's first.
    pub retries: u64,
}

#[derive(Debug, Default)]
struct Counters {
    queued_spans: AtomicU64,
    dropped_spans: AtomicU64,
    exported_spans: AtomicU64,
    exported_batches: AtomicU64,
    failed_batches: AtomicU64,
    failed_spans: AtomicU64,
    rejected_batches: AtomicU64,
    retries: AtomicU64,
    /// Spans offered and not yet exported or given up: the queue's fill.
    pending: AtomicUsize,
}

/// One attempt's outcome, borrowed from its transport.
pub(crate) type PostFuture<'a> = Pin<Box<dyn Future<Output = Result<(), SendError>> + Send + 'a>>;

/// Where encoded batches go: the collector over HTTP, or a test's script.
pub(crate) trait Transport: Send + Sync + fmt::Debug {
    /// One POST of `body`; a 2xx answer is `Ok`.
    fn post(&self, body: Bytes) -> PostFuture<'_>;
}

/// POSTs to the collector with the shared notification client.
#[derive(Debug)]
struct HttpTransport {
    client: HttpClient,
    uri: Uri,
    content_type: &'static str,
    headers: Vec<(HeaderName, HeaderValue)>,
}

impl Transport for HttpTransport {
    fn post(&self, body: Bytes) -> PostFuture<'_> {
        Box::pin(
            self.client
                .post(&self.uri, self.content_type, &self.headers, body),
        )
    }
}

/// What the export loop needs besides its transport.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ExportOptions {
    pub(crate) protocol: OtlpProtocol,
    pub(crate) batch_spans: usize,
    pub(crate) queue_spans: usize,
    pub(crate) flush_interval: Duration,
    /// One batch's budget: attempts and waits.
    pub(crate) timeout: Duration,
}

impl ExportOptions {
    fn retry(&self) -> RetryPolicy {
        RetryPolicy {
            // The time budget, not the count, ends a batch's retries.
            max_attempts: u32::MAX,
            initial_backoff: INITIAL_BACKOFF,
            max_backoff: MAX_BACKOFF,
            deadline: self.timeout,
        }
    }
}

/// The export queue's sending side and the counters.
#[derive(Debug)]
pub struct TraceExporter {
    tx: UnboundedSender<Vec<Span>>,
    counters: Arc<Counters>,
    queue_spans: usize,
}

impl TraceExporter {
    /// Starts the export thread for `config`.
    pub fn start(config: &OtlpExportConfig) -> anyhow::Result<TraceExporter> {
        let options = ExportOptions {
            protocol: config.protocol,
            batch_spans: config.batch_spans,
            queue_spans: config.queue_spans,
            flush_interval: FLUSH_INTERVAL,
            timeout: Duration::from_millis(config.timeout_ms),
        };
        let uri = config.endpoint.clone();
        let headers = config.headers.clone();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let counters = Arc::new(Counters::default());
        let thread_counters = Arc::clone(&counters);
        // A runtime of its own: a collector that hangs never takes a worker
        // of the one serving requests.
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|err| anyhow::anyhow!("cannot start the trace export runtime: {err}"))?;
        std::thread::Builder::new()
            .name("vigil-trace-export".to_owned())
            .spawn(move || {
                runtime.block_on(async move {
                    let transport = HttpTransport {
                        client: HttpClient::new(CONNECT_TIMEOUT),
                        uri,
                        content_type: options.protocol.content_type(),
                        headers,
                    };
                    run(rx, &transport, options, &thread_counters).await;
                });
            })?;
        tracing::info!(
            protocol = config.protocol.name(),
            host = config.endpoint.host().unwrap_or_default(),
            "trace export to an otlp collector on"
        );
        Ok(TraceExporter {
            tx,
            counters,
            queue_spans: options.queue_spans,
        })
    }

    /// A test's exporter: the loop runs on the caller's runtime.
    #[cfg(test)]
    pub(crate) fn spawn_with(
        transport: Arc<dyn Transport>,
        options: ExportOptions,
    ) -> (TraceExporter, tokio::task::JoinHandle<()>) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let counters = Arc::new(Counters::default());
        let task_counters = Arc::clone(&counters);
        let task = tokio::spawn(async move {
            run(rx, &*transport, options, &task_counters).await;
        });
        let exporter = TraceExporter {
            tx,
            counters,
            queue_spans: options.queue_spans,
        };
        (exporter, task)
    }

    /// Hands `spans` to the export thread, or drops them (counted) when
    /// the queue cannot take them all. Never blocks.
    pub fn offer(&self, spans: Vec<Span>) {
        let n = spans.len();
        if n == 0 {
            return;
        }
        let c = &self.counters;
        let before = c.pending.fetch_add(n, Ordering::Relaxed);
        if before + n > self.queue_spans {
            c.pending.fetch_sub(n, Ordering::Relaxed);
            c.dropped_spans.fetch_add(n as u64, Ordering::Relaxed);
            return;
        }
        match self.tx.send(spans) {
            Ok(()) => {
                c.queued_spans.fetch_add(n as u64, Ordering::Relaxed);
            }
            Err(_) => {
                // The export thread is gone (its runtime failed).
                c.pending.fetch_sub(n, Ordering::Relaxed);
                c.dropped_spans.fetch_add(n as u64, Ordering::Relaxed);
            }
        }
    }

    /// Spans offered and not yet sent or given up.
    pub fn pending(&self) -> usize {
        self.counters.pending.load(Ordering::Relaxed)
    }

    /// The counters since start.
    pub fn stats(&self) -> ExportStats {
        let c = &self.counters;
        ExportStats {
            queued_spans: c.queued_spans.load(Ordering::Relaxed),
            dropped_spans: c.dropped_spans.load(Ordering::Relaxed),
            exported_spans: c.exported_spans.load(Ordering::Relaxed),
            exported_batches: c.exported_batches.load(Ordering::Relaxed),
            failed_batches: c.failed_batches.load(Ordering::Relaxed),
            failed_spans: c.failed_spans.load(Ordering::Relaxed),
            rejected_batches: c.rejected_batches.load(Ordering::Relaxed),
            retries: c.retries.load(Ordering::Relaxed),
        }
    }
}

/// Batches and sends until every sender is gone; what is left then is
/// sent once, without retries, so stopping is never held up by a dead
/// collector's backoff.
async fn run(
    mut rx: UnboundedReceiver<Vec<Span>>,
    transport: &dyn Transport,
    options: ExportOptions,
    counters: &Counters,
) {
    let mut buffer: Vec<Span> = Vec::new();
    let mut open = true;
    while open || !buffer.is_empty() {
        if buffer.is_empty() {
            match rx.recv().await {
                Some(spans) => buffer.extend(spans),
                None => break,
            }
        }
        let deadline = Instant::now() + options.flush_interval;
        while open && buffer.len() < options.batch_spans {
            tokio::select! {
                received = rx.recv() => match received {
                    Some(spans) => buffer.extend(spans),
                    None => open = false,
                },
                () = tokio::time::sleep_until(deadline) => break,
            }
        }
        let take = buffer.len().min(options.batch_spans);
        let batch: Vec<Span> = buffer.drain(..take).collect();
        export(transport, &options, &batch, !open, counters).await;
        counters.pending.fetch_sub(batch.len(), Ordering::Relaxed);
    }
}

/// How one attempt ended, as the retry loop sees it.
enum Answer {
    Accepted,
    /// A status the OTLP spec does not retry: the batch is given up.
    Rejected(SendError),
}

/// The statuses an OTLP/HTTP exporter retries (the spec's list).
fn retryable_status(status: u16) -> bool {
    matches!(status, 429 | 502 | 503 | 504)
}

/// Sends one batch until it is accepted or given up, and counts it.
async fn export(
    transport: &dyn Transport,
    options: &ExportOptions,
    batch: &[Span],
    closing: bool,
    counters: &Counters,
) {
    let body: Bytes = match options.protocol {
        OtlpProtocol::HttpProtobuf => vigil_trace::otlp::encode_proto(batch),
        OtlpProtocol::HttpJson => vigil_trace::otlp::encode_json(batch),
    }
    .into();
    let policy = if closing {
        RetryPolicy {
            max_attempts: 1,
            ..options.retry()
        }
    } else {
        options.retry()
    };
    let mut first = true;
    let (attempts, result) = send_with_retry(&policy, options.timeout, |_| {
        if !std::mem::replace(&mut first, false) {
            counters.retries.fetch_add(1, Ordering::Relaxed);
        }
        let attempt = transport.post(body.clone());
        async move {
            match attempt.await {
                Ok(()) => Ok(Answer::Accepted),
                // Ended here: the shared loop would retry every 5xx.
                Err(err @ SendError::Status { status, .. }) if !retryable_status(status) => {
                    Ok(Answer::Rejected(err))
                }
                Err(err) => Err(err),
            }
        }
    })
    .await;
    let n = batch.len() as u64;
    match result {
        Ok(Answer::Accepted) => {
            counters.exported_spans.fetch_add(n, Ordering::Relaxed);
            counters.exported_batches.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(spans = n, attempts, "spans exported to the otlp collector");
        }
        Ok(Answer::Rejected(err)) => {
            counters.rejected_batches.fetch_add(1, Ordering::Relaxed);
            counters.failed_batches.fetch_add(1, Ordering::Relaxed);
            counters.failed_spans.fetch_add(n, Ordering::Relaxed);
            tracing::warn!(spans = n, attempts, error = %err, "the otlp collector rejected spans");
        }
        Err(err) => {
            counters.failed_batches.fetch_add(1, Ordering::Relaxed);
            counters.failed_spans.fetch_add(n, Ordering::Relaxed);
            tracing::warn!(spans = n, attempts, error = %err, "spans not exported to the otlp collector");
        }
    }
}

#[cfg(test)]
mod tests;
