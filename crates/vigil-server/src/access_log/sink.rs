//! Where access-log lines go: nowhere, a test's sink, or stdout through a
//! dedicated writer thread behind a bounded channel (a full channel drops
//! the line and counts it, so a slow stdout never slows scoring).

use std::io::Write as _;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError};
use std::time::Duration;

/// Where access-log lines go: nowhere, stdout, or a test's sink.
#[derive(Debug, Clone)]
pub struct AccessLog {
    sink: Option<Arc<dyn LineSink>>,
}

/// Receives finished access-log lines (without the trailing newline).
pub trait LineSink: Send + Sync + std::fmt::Debug {
    /// Take one line; must not block.
    fn write_line(&self, line: String);
}

impl AccessLog {
    /// No access log.
    pub fn off() -> AccessLog {
        AccessLog { sink: None }
    }

    /// Send lines to `sink`.
    pub fn to_sink(sink: Arc<dyn LineSink>) -> AccessLog {
        AccessLog { sink: Some(sink) }
    }

    /// Where lines go, if anywhere.
    pub(crate) fn sink(&self) -> Option<&Arc<dyn LineSink>> {
        self.sink.as_ref()
    }
}

enum Message {
    Line(String),
    Flush(std::sync::mpsc::Sender<()>),
}

/// Lines buffered on their way to stdout; beyond it lines are dropped and counted.
const CHANNEL_CAPACITY: usize = 16_384;

/// The stdout writer: a thread draining a bounded channel into a buffered stdout.
#[derive(Debug)]
pub struct StdoutLog {
    tx: SyncSender<Message>,
    dropped: AtomicU64,
}

impl std::fmt::Debug for Message {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Message")
    }
}

impl StdoutLog {
    /// Start the writer thread.
    pub fn start() -> anyhow::Result<Arc<StdoutLog>> {
        let (tx, rx) = std::sync::mpsc::sync_channel(CHANNEL_CAPACITY);
        std::thread::Builder::new()
            .name("vigil-access-log".to_owned())
            .spawn(move || write_lines(&rx))?;
        Ok(Arc::new(StdoutLog {
            tx,
            dropped: AtomicU64::new(0),
        }))
    }

    /// Lines dropped because the writer could not keep up.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Wait (at most `timeout`) until every line sent so far is on stdout.
    pub fn flush(&self, timeout: Duration) {
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        if self.tx.send(Message::Flush(done_tx)).is_ok() {
            let _ = done_rx.recv_timeout(timeout);
        }
    }
}

impl LineSink for StdoutLog {
    fn write_line(&self, line: String) {
        match self.tx.try_send(Message::Line(line)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// How often the writer drains the queue. A writer blocked on the channel
/// would be woken by every request (a futex wake and a context switch on
/// both sides, several µs of CPU each at tens of thousands of requests per
/// second); polling costs one wake per interval, and a burst becomes one write.
const DRAIN_INTERVAL: Duration = Duration::from_millis(10);

fn write_lines(rx: &Receiver<Message>) {
    // `Stdout` takes its lock per write, and the buffer writes only when it
    // flushes, so other writers (startup lines, panics) are never shut out.
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout());
    loop {
        loop {
            match rx.try_recv() {
                Ok(Message::Line(line)) => {
                    let _ = out.write_all(line.as_bytes());
                    let _ = out.write_all(b"\n");
                }
                Ok(Message::Flush(done)) => {
                    let _ = out.flush();
                    let _ = done.send(());
                }
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    let _ = out.flush();
                    return;
                }
            }
        }
        let _ = out.flush();
        std::thread::sleep(DRAIN_INTERVAL);
    }
}
