//! The delivery side: a sink per destination kind, and the task that
//! batches a subscription's buffer (up to a batch's size, or what came in
//! about a second), sends it with retries and exponential backoff, and
//! removes it from the buffer once delivered or given up.

use std::fmt;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;
use hyper::Uri;
use tokio::time::Instant;
use vigil_metrics::notify::{HttpClient, RetryPolicy, SendError, send_with_retry};

use super::SubscriptionOptions;
use super::buffer::{Buffer, lock};
use super::definition::Encoding;
use super::otlp;
use super::payload::{self, OutEvent};

/// One attempt's outcome, borrowed from its sink.
pub(crate) type SendFuture<'a> = Pin<Box<dyn Future<Output = Result<(), SendError>> + Send + 'a>>;

/// A destination: how a batch is written, and how it is sent.
pub(crate) trait Sink: Send + Sync + fmt::Debug {
    /// Whether one delivery may hold events of several streams (the §3.3
    /// payload has one stream).
    fn mixes_streams(&self) -> bool;
    /// The body of one delivery, built once for all its attempts.
    fn encode(&self, group: &str, filter: &str, events: &[Arc<OutEvent>]) -> Bytes;
    /// One attempt.
    fn send(&self, body: Bytes) -> SendFuture<'_>;
}

/// POSTs the §3.3 payload.
#[derive(Debug)]
pub(crate) struct HttpSink {
    pub(crate) client: HttpClient,
    pub(crate) uri: Uri,
    pub(crate) encoding: Encoding,
    pub(crate) owner: String,
}

impl Sink for HttpSink {
    fn mixes_streams(&self) -> bool {
        false
    }

    fn encode(&self, group: &str, filter: &str, events: &[Arc<OutEvent>]) -> Bytes {
        let json = payload::data_message(&self.owner, group, filter, events);
        match self.encoding {
            Encoding::Json => json.into(),
            Encoding::GzipBase64 => payload::gzip_base64_envelope(&json).into(),
        }
    }

    fn send(&self, body: Bytes) -> SendFuture<'_> {
        Box::pin(self.client.post_json(&self.uri, &[], body))
    }
}

/// POSTs an OTLP `ExportLogsServiceRequest`.
#[derive(Debug)]
pub(crate) struct OtlpSink {
    pub(crate) client: HttpClient,
    pub(crate) uri: Uri,
}

impl Sink for OtlpSink {
    fn mixes_streams(&self) -> bool {
        true
    }

    fn encode(&self, group: &str, _filter: &str, events: &[Arc<OutEvent>]) -> Bytes {
        otlp::encode(group, events).into()
    }

    fn send(&self, body: Bytes) -> SendFuture<'_> {
        Box::pin(
            self.client
                .post(&self.uri, "application/x-protobuf", &[], body),
        )
    }
}

/// Appends JSON lines to a file (opened for each delivery, so a rotated
/// file is picked up).
#[derive(Debug)]
pub(crate) struct FileSink {
    pub(crate) path: PathBuf,
}

impl Sink for FileSink {
    fn mixes_streams(&self) -> bool {
        true
    }

    fn encode(&self, group: &str, _filter: &str, events: &[Arc<OutEvent>]) -> Bytes {
        payload::json_lines(group, events).into()
    }

    fn send(&self, body: Bytes) -> SendFuture<'_> {
        let path = self.path.clone();
        Box::pin(async move {
            let append = move || -> std::io::Result<()> {
                use std::io::Write as _;
                let mut f = std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&path)?;
                // One write: lines from two deliveries never interleave.
                f.write_all(&body)?;
                f.flush()
            };
            match tokio::task::spawn_blocking(append).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(err)) => Err(SendError::Connect(format!("file sink: {err}"))),
                Err(err) => Err(SendError::Connect(format!("file sink task: {err}"))),
            }
        })
    }
}

/// What one delivery task works on.
#[derive(Debug)]
pub(crate) struct Delivery {
    pub(crate) group: String,
    pub(crate) name: String,
    pub(crate) sink: Arc<dyn Sink>,
    pub(crate) buffer: Arc<Buffer>,
    pub(crate) options: Arc<SubscriptionOptions>,
}

/// The delivery task: runs until the buffer is closed and empty (or the
/// task is aborted: what it had not delivered is then lost, as is a
/// buffer at a crash).
pub(crate) async fn run(d: Delivery) {
    let o = Arc::clone(&d.options);
    let buffer = &d.buffer;
    loop {
        while buffer.len() == 0 {
            if buffer.closing() {
                return;
            }
            buffer.wake.notified().await;
        }
        // Up to a batch, or what comes in within the linger time.
        let deadline = Instant::now() + o.linger;
        while !buffer.closing() && !buffer.batch_ready(o.batch_events, o.batch_bytes) {
            tokio::select! {
                () = buffer.wake.notified() => {}
                () = tokio::time::sleep_until(deadline) => break,
            }
        }
        let batch = buffer.peek(o.batch_events, o.batch_bytes, d.sink.mixes_streams());
        deliver(&d, &batch).await;
        buffer.remove(batch.len());
    }
}

/// Sends one batch until it is delivered or given up, and counts it.
async fn deliver(d: &Delivery, batch: &[Arc<OutEvent>]) {
    let o = &d.options;
    let c = &d.buffer.counters;
    let body = d.sink.encode(&d.group, &d.name, batch);
    // Closing (shutdown, a replaced filter): one attempt each, so stopping
    // is never held up by a dead destination's backoff.
    let policy = if d.buffer.closing() {
        RetryPolicy {
            max_attempts: 1,
            ..o.retry
        }
    } else {
        o.retry
    };
    let mut first = true;
    let (attempts, result) = send_with_retry(&policy, o.request_timeout, |_| {
        if !std::mem::replace(&mut first, false) {
            c.retries.fetch_add(1, Ordering::Relaxed);
        }
        let attempt = d.sink.send(body.clone());
        async move {
            let result = attempt.await;
            if let Err(err) = &result {
                *lock(&c.last_error) = Some(err.to_string());
            }
            result
        }
    })
    .await;
    let n = batch.len() as u64;
    match result {
        Ok(()) => {
            c.delivered.fetch_add(n, Ordering::Relaxed);
            c.last_delivery_ms
                .store(vigil_metrics::model::now_ms(), Ordering::Relaxed);
            tracing::debug!(group = %d.group, filter = %d.name, events = n, attempts, "subscription delivered");
        }
        Err(err) => {
            *lock(&c.last_error) = Some(err.to_string());
            c.failed_events.fetch_add(n, Ordering::Relaxed);
            c.failed_deliveries.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(
                group = %d.group,
                filter = %d.name,
                events = n,
                attempts,
                error = %err,
                "subscription delivery given up"
            );
        }
    }
}
