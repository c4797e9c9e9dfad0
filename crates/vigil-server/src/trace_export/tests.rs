#![allow(clippy::unwrap_used)]

use std::collections::VecDeque;
use std::sync::Mutex;

use vigil_trace::model::{SpanId, TraceId};
use vigil_trace::otlp::DecodeLimits;

use super::*;

/// Answers with its script (then `Ok`), and keeps every body it got with
/// the time it came.
#[derive(Debug, Default)]
struct Scripted {
    answers: Mutex<VecDeque<Result<(), SendError>>>,
    bodies: Mutex<Vec<(Duration, Bytes)>>,
    start: Mutex<Option<Instant>>,
}

impl Scripted {
    fn new(answers: Vec<Result<(), SendError>>) -> Arc<Scripted> {
        Arc::new(Scripted {
            answers: Mutex::new(answers.into()),
            bodies: Mutex::default(),
            start: Mutex::new(Some(Instant::now())),
        })
    }

    fn bodies(&self) -> Vec<(Duration, Bytes)> {
        self.bodies.lock().unwrap().clone()
    }
}

impl Transport for Scripted {
    fn post(&self, body: Bytes) -> PostFuture<'_> {
        let at = self.start.lock().unwrap().unwrap().elapsed();
        self.bodies.lock().unwrap().push((at, body));
        let answer = self.answers.lock().unwrap().pop_front().unwrap_or(Ok(()));
        Box::pin(async move { answer })
    }
}

fn status(code: u16) -> SendError {
    SendError::Status {
        status: code,
        body: String::new(),
        retry_after: None,
    }
}

fn options(protocol: OtlpProtocol) -> ExportOptions {
    ExportOptions {
        protocol,
        batch_spans: 4,
        queue_spans: 10,
        flush_interval: Duration::from_secs(1),
        timeout: Duration::from_secs(10),
    }
}

/// `n` spans of trace `t`: the first the root, the others its children.
fn trace(t: u8, n: usize) -> Vec<Span> {
    (0..n)
        .map(|i| {
            let parent = (i > 0).then_some(SpanId([t, 0, 0, 0, 0, 0, 0, 1]));
            Span::new(
                TraceId([t; 16]),
                SpanId([t, 0, 0, 0, 0, 0, 0, i as u8 + 1]),
                parent,
                if i == 0 { "vigil" } else { "score" },
                "vigil",
                1_000_000,
                1_000_500,
            )
        })
        .collect()
}

fn decode(protocol: OtlpProtocol, body: &[u8]) -> Vec<Span> {
    match protocol {
        OtlpProtocol::HttpProtobuf => {
            vigil_trace::otlp::decode_proto(body, &DecodeLimits::default()).unwrap()
        }
        OtlpProtocol::HttpJson => {
            vigil_trace::otlp::decode_json(body, &DecodeLimits::default()).unwrap()
        }
    }
}

/// Lets the export task run until it waits on a timer or the queue.
async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

#[tokio::test(start_paused = true)]
async fn a_full_batch_goes_at_once_and_the_rest_after_the_flush_interval() {
    for protocol in [OtlpProtocol::HttpProtobuf, OtlpProtocol::HttpJson] {
        let transport = Scripted::new(vec![]);
        let (exporter, task) = TraceExporter::spawn_with(transport.clone(), options(protocol));
        exporter.offer(trace(1, 3));
        exporter.offer(trace(2, 3));
        settle().await;
        // Six spans: a batch of four right away, two still waiting.
        let bodies = transport.bodies();
        assert_eq!(bodies.len(), 1, "{protocol:?}");
        assert_eq!(bodies[0].0, Duration::ZERO);
        let first = decode(protocol, &bodies[0].1);
        assert_eq!(first, [trace(1, 3), trace(2, 1)].concat(), "{protocol:?}");
        tokio::time::sleep(Duration::from_millis(1100)).await;
        settle().await;
        let bodies = transport.bodies();
        assert_eq!(bodies.len(), 2, "{protocol:?}");
        assert_eq!(bodies[1].0, Duration::from_secs(1));
        assert_eq!(decode(protocol, &bodies[1].1), trace(2, 3)[1..]);
        let stats = exporter.stats();
        assert_eq!(
            stats,
            ExportStats {
                queued_spans: 6,
                exported_spans: 6,
                exported_batches: 2,
                ..ExportStats::default()
            }
        );
        assert_eq!(exporter.counters.pending.load(Ordering::Relaxed), 0);
        drop(exporter);
        task.await.unwrap();
    }
}

#[tokio::test(start_paused = true)]
async fn retryable_answers_are_retried_with_backoff_and_exported_once() {
    let transport = Scripted::new(vec![
        Err(SendError::Connect("refused".into())),
        Err(status(503)),
        Err(status(429)),
        Err(status(502)),
        Err(status(504)),
    ]);
    let (exporter, _task) =
        TraceExporter::spawn_with(transport.clone(), options(OtlpProtocol::HttpProtobuf));
    exporter.offer(trace(1, 4));
    tokio::time::sleep(Duration::from_secs(9)).await;
    settle().await;
    let bodies = transport.bodies();
    let starts: Vec<u64> = bodies.iter().map(|(at, _)| at.as_millis() as u64).collect();
    // Waits of 0.5 s doubling; a sixth attempt would start at 7.5 s + 5 s
    // (the longest wait), past the batch's 10 s budget, so it is not made.
    assert_eq!(starts, [0, 500, 1500, 3500, 7500]);
    let stats = exporter.stats();
    assert_eq!(stats.failed_batches, 1, "{stats:?}");
    assert_eq!(stats.failed_spans, 4);
    assert_eq!(stats.rejected_batches, 0);
    assert_eq!(stats.retries, 4);
    assert_eq!(stats.exported_spans, 0);
    // Every attempt carried the same spans.
    for (_, body) in &bodies {
        assert_eq!(decode(OtlpProtocol::HttpProtobuf, body), trace(1, 4));
    }
}

#[tokio::test(start_paused = true)]
async fn a_retried_batch_that_gets_through_is_counted_exported() {
    let transport = Scripted::new(vec![Err(status(503)), Err(status(429))]);
    let (exporter, _task) =
        TraceExporter::spawn_with(transport.clone(), options(OtlpProtocol::HttpJson));
    exporter.offer(trace(7, 4));
    tokio::time::sleep(Duration::from_secs(3)).await;
    settle().await;
    assert_eq!(transport.bodies().len(), 3);
    let stats = exporter.stats();
    assert_eq!(stats.exported_spans, 4, "{stats:?}");
    assert_eq!(stats.exported_batches, 1);
    assert_eq!(stats.retries, 2);
    assert_eq!(stats.failed_batches, 0);
}

#[tokio::test(start_paused = true)]
async fn a_400_or_a_500_is_a_rejection_and_not_retried() {
    for code in [400, 500, 401, 413] {
        let transport = Scripted::new(vec![Err(status(code))]);
        let (exporter, _task) =
            TraceExporter::spawn_with(transport.clone(), options(OtlpProtocol::HttpProtobuf));
        exporter.offer(trace(1, 4));
        tokio::time::sleep(Duration::from_secs(30)).await;
        settle().await;
        assert_eq!(transport.bodies().len(), 1, "{code}");
        let stats = exporter.stats();
        assert_eq!(
            stats,
            ExportStats {
                queued_spans: 4,
                failed_batches: 1,
                failed_spans: 4,
                rejected_batches: 1,
                ..ExportStats::default()
            },
            "{code}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_full_queue_drops_and_counts_and_frees_up_once_sent() {
    // The collector hangs on: every attempt fails until the time budget.
    let answers = (0..100)
        .map(|_| Err(SendError::Connect("refused".into())))
        .collect();
    let transport = Scripted::new(answers);
    let (exporter, _task) =
        TraceExporter::spawn_with(transport.clone(), options(OtlpProtocol::HttpProtobuf));
    // 4 + 4 fit the queue of 10, the third 4 does not, the 2 then do.
    exporter.offer(trace(1, 4));
    exporter.offer(trace(2, 4));
    exporter.offer(trace(3, 4));
    exporter.offer(trace(4, 2));
    let stats = exporter.stats();
    assert_eq!(stats.queued_spans, 10, "{stats:?}");
    assert_eq!(stats.dropped_spans, 4);
    // Nothing fits now, while the first batch is being retried.
    settle().await;
    exporter.offer(trace(5, 1));
    assert_eq!(exporter.stats().dropped_spans, 5);
    // The first batch given up (at 7.5 s: no retry fits its 10 s budget
    // after that) frees its four places.
    tokio::time::sleep(Duration::from_millis(10_100)).await;
    settle().await;
    assert_eq!(exporter.stats().failed_batches, 1);
    exporter.offer(trace(6, 4));
    let stats = exporter.stats();
    assert_eq!(stats.queued_spans, 14, "{stats:?}");
    assert_eq!(stats.dropped_spans, 5);
}

#[tokio::test(start_paused = true)]
async fn on_close_what_is_left_is_sent_once_without_waiting() {
    let transport = Scripted::new(vec![Err(status(503)), Err(status(503))]);
    let (exporter, task) =
        TraceExporter::spawn_with(transport.clone(), options(OtlpProtocol::HttpProtobuf));
    exporter.offer(trace(1, 2));
    drop(exporter);
    let started = Instant::now();
    task.await.unwrap();
    // No flush interval, no backoff: one attempt, at once.
    assert_eq!(started.elapsed(), Duration::ZERO);
    assert_eq!(transport.bodies().len(), 1);
}

#[test]
fn only_the_spec_s_statuses_are_retried() {
    for code in [429, 502, 503, 504] {
        assert!(retryable_status(code), "{code}");
    }
    for code in [400, 401, 403, 404, 413, 500, 501] {
        assert!(!retryable_status(code), "{code}");
    }
}
