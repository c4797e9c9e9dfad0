//! Where Vigil's own log lines go: nowhere, a test's sink, or the log
//! writer — a dedicated thread behind a bounded channel (a full channel
//! drops the line and counts it, so a slow stdout never slows scoring)
//! that writes access lines to stdout and copies every line, once
//! formatted, into its group of the log store (`/vigil/access`,
//! `/vigil/inference`, `/vigil/system`).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError};
use std::time::Duration;

use vigil_logs::pipeline::Logs;
use vigil_logs::store::InputEvent;

use crate::telemetry::{GroupLines, OwnGroup};

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
    /// An access line (stdout, and `/vigil/access` when copying).
    Line(String),
    /// A line of another own group, with its time (copied only).
    Event(OwnGroup, i64, String),
    Flush(std::sync::mpsc::Sender<()>),
}

/// Lines buffered on their way to stdout; beyond it lines are dropped and counted.
const CHANNEL_CAPACITY: usize = 16_384;

/// The log writer: a thread draining a bounded channel into a buffered
/// stdout and the own groups.
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
        StdoutLog::start_with_copy(None)
    }

    /// Start the writer thread; with `copy`, every line also goes to its
    /// log group as an event (the same line: formatted once).
    pub fn start_with_copy(copy: Option<StoreCopy>) -> anyhow::Result<Arc<StdoutLog>> {
        StdoutLog::start_writer(true, copy)
    }

    /// Start the writer thread: access lines to stdout when `stdout` is
    /// set, every line to its group when `copy` is given.
    pub fn start_writer(stdout: bool, copy: Option<StoreCopy>) -> anyhow::Result<Arc<StdoutLog>> {
        let (tx, rx) = std::sync::mpsc::sync_channel(CHANNEL_CAPACITY);
        std::thread::Builder::new()
            .name("vigil-log-writer".to_owned())
            .spawn(move || write_lines(&rx, stdout, copy))?;
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

impl StdoutLog {
    fn send(&self, message: Message) {
        match self.tx.try_send(message) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

impl LineSink for StdoutLog {
    fn write_line(&self, line: String) {
        self.send(Message::Line(line));
    }
}

impl GroupLines for StdoutLog {
    fn write(&self, group: OwnGroup, timestamp_ms: i64, line: String) {
        match group {
            OwnGroup::Access => self.send(Message::Line(line)),
            other => self.send(Message::Event(other, timestamp_ms, line)),
        }
    }
}

/// How often the writer drains the queue while lines keep coming. A writer
/// blocked on the channel would be woken by every request (a futex wake and
/// a context switch on both sides, several µs of CPU each at tens of
/// thousands of requests per second); polling costs one wake per interval,
/// and a burst becomes one write. Once a poll finds the queue empty the
/// writer blocks on it again, so an idle server's writer never wakes.
const DRAIN_INTERVAL: Duration = Duration::from_millis(10);

fn write_lines(rx: &Receiver<Message>, stdout: bool, copy: Option<StoreCopy>) {
    // `Stdout` takes its lock per write, and the buffer writes only when it
    // flushes, so other writers (startup lines, panics) are never shut out.
    let mut out = Outputs {
        out: std::io::BufWriter::with_capacity(64 * 1024, std::io::stdout()),
        stdout,
        copy,
    };
    drain(rx, &mut out, DRAIN_INTERVAL, &AtomicU64::new(0));
}

/// Where the own lines are copied to: their groups of the log store, in a
/// stream per process and day (`2026/12/01/host-1234`).
#[derive(Debug)]
pub struct StoreCopy {
    logs: Arc<Logs>,
    instance: String,
    /// Per [`OwnGroup::index`].
    pending: [Vec<InputEvent>; 3],
}

impl StoreCopy {
    /// Copies into the own groups of `logs`; `instance` names this process
    /// in the stream names.
    pub fn new(logs: Arc<Logs>, instance: String) -> StoreCopy {
        StoreCopy {
            logs,
            instance,
            pending: Default::default(),
        }
    }

    fn push(&mut self, group: OwnGroup, timestamp: i64, message: String) {
        self.pending[group.index()].push(InputEvent { timestamp, message });
    }

    /// Stores what is pending, in one append per batch the limits allow.
    fn flush(&mut self) {
        let now = vigil_metrics::model::now_ms();
        let stream = stream_name(now, &self.instance);
        for group in OwnGroup::ALL {
            let pending = &mut self.pending[group.index()];
            if pending.is_empty() {
                continue;
            }
            if let Err(err) = self.logs.put_all(group.name(), &stream, pending, now) {
                tracing::warn!(error = %err, group = group.name(), events = pending.len(),
                    "own log events not stored in their log group");
            }
            pending.clear();
        }
    }
}

/// A stream per process and UTC day: `YYYY/MM/DD/instance`.
pub(crate) fn stream_name(now_ms: i64, instance: &str) -> String {
    let day = time::OffsetDateTime::from_unix_timestamp(now_ms.div_euclid(1000))
        .map(|t| t.date())
        .unwrap_or(time::Date::MIN);
    format!(
        "{:04}/{:02}/{:02}/{instance}",
        day.year(),
        u8::from(day.month()),
        day.day()
    )
}

/// Stdout (or a test's writer) and the optional copy to a log group.
struct Outputs<W: std::io::Write> {
    out: W,
    /// Whether access lines go to `out`.
    stdout: bool,
    copy: Option<StoreCopy>,
}

impl<W: std::io::Write> Outputs<W> {
    fn line(&mut self, line: String) {
        if self.stdout {
            let _ = self.out.write_all(line.as_bytes());
            let _ = self.out.write_all(b"\n");
        }
        if let Some(copy) = &mut self.copy {
            copy.push(OwnGroup::Access, vigil_metrics::model::now_ms(), line);
        }
    }

    fn event(&mut self, group: OwnGroup, timestamp: i64, line: String) {
        if let Some(copy) = &mut self.copy {
            copy.push(group, timestamp, line);
        }
    }

    fn flush(&mut self) {
        let _ = self.out.flush();
        if let Some(copy) = &mut self.copy {
            copy.flush();
        }
    }
}

/// Writes what arrives on `rx` to `out` until every sender is gone: blocks
/// while the queue is empty, polls it every `interval` while it is not.
/// `polls` counts the timed wakes (the idle test reads it).
fn drain<W: std::io::Write>(
    rx: &Receiver<Message>,
    out: &mut Outputs<W>,
    interval: Duration,
    polls: &AtomicU64,
) {
    // Idle: wait for the first line of a burst.
    while let Ok(first) = rx.recv() {
        write(out, first);
        // Busy: drain, flush, sleep; until a poll finds nothing.
        loop {
            loop {
                match rx.try_recv() {
                    Ok(message) => write(out, message),
                    Err(TryRecvError::Empty) => break,
                    Err(TryRecvError::Disconnected) => {
                        out.flush();
                        return;
                    }
                }
            }
            out.flush();
            std::thread::sleep(interval);
            polls.fetch_add(1, Ordering::Relaxed);
            match rx.try_recv() {
                Ok(message) => write(out, message),
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Disconnected) => {
                    out.flush();
                    return;
                }
            }
        }
    }
    out.flush();
}

fn write<W: std::io::Write>(out: &mut Outputs<W>, message: Message) {
    match message {
        Message::Line(line) => out.line(line),
        Message::Event(group, timestamp, line) => out.event(group, timestamp, line),
        Message::Flush(done) => {
            out.flush();
            let _ = done.send(());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `Write` whose bytes a test can read while the writer runs.
    #[derive(Clone, Default)]
    struct Shared(Arc<std::sync::Mutex<Vec<u8>>>);

    impl std::io::Write for Shared {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .map_err(|_| std::io::Error::other("poisoned"))?
                .extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Every line is written, and once the queue is empty the writer stops
    /// polling: no more timed wakes however long it stays idle.
    #[test]
    fn writes_every_line_then_blocks_while_idle() {
        let (tx, rx) = std::sync::mpsc::sync_channel(CHANNEL_CAPACITY);
        let out = Shared::default();
        let polls = Arc::new(AtomicU64::new(0));
        let writer = {
            let (out, polls) = (out.clone(), Arc::clone(&polls));
            let mut out = Outputs {
                out,
                stdout: true,
                copy: None,
            };
            std::thread::spawn(move || drain(&rx, &mut out, Duration::from_millis(1), &polls))
        };
        for i in 0..100 {
            tx.send(Message::Line(format!("line {i}"))).expect("send");
        }
        let (done_tx, done_rx) = std::sync::mpsc::channel();
        tx.send(Message::Flush(done_tx)).expect("send");
        done_rx.recv().expect("flushed");
        let text = String::from_utf8(out.0.lock().expect("lock").clone()).expect("utf8");
        let expected: String = (0..100).map(|i| format!("line {i}\n")).collect();
        assert_eq!(text, expected);

        // Wait until the writer has gone back to blocking: two equal
        // readings 50 polling intervals apart (a polling writer never gives
        // them, and fails below).
        let mut before = polls.load(Ordering::Relaxed);
        for _ in 0..20 {
            std::thread::sleep(Duration::from_millis(50));
            let now = polls.load(Ordering::Relaxed);
            if now == before {
                break;
            }
            before = now;
        }
        assert!(before >= 1, "the burst was never polled");
        std::thread::sleep(Duration::from_millis(100));
        assert_eq!(
            polls.load(Ordering::Relaxed),
            before,
            "an idle writer kept waking"
        );

        // A new burst is written too, and the writer ends with its senders.
        tx.send(Message::Line("late".to_owned())).expect("send");
        drop(tx);
        writer.join().expect("writer thread");
        let text = String::from_utf8(out.0.lock().expect("lock").clone()).expect("utf8");
        assert!(text.ends_with("line 99\nlate\n"), "{text}");
    }

    #[test]
    fn lines_are_copied_to_the_log_group_as_events() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = Arc::new(
            vigil_logs::store::LogStore::open(dir.path(), Default::default()).expect("store"),
        );
        let logs = Arc::new(vigil_logs::pipeline::Logs::new(Arc::clone(&store)));
        let (tx, rx) = std::sync::mpsc::sync_channel(CHANNEL_CAPACITY);
        let copy = StoreCopy::new(logs, "host-1".to_owned());
        let writer = std::thread::spawn(move || {
            let mut out = Outputs {
                out: Vec::new(),
                stdout: true,
                copy: Some(copy),
            };
            drain(&rx, &mut out, Duration::from_millis(1), &AtomicU64::new(0));
            out.out
        });
        for i in 0..50 {
            tx.send(Message::Line(format!("{{\"n\":{i}}}")))
                .expect("send");
        }
        drop(tx);
        let stdout = String::from_utf8(writer.join().expect("writer")).expect("utf8");
        assert_eq!(stdout.lines().count(), 50);
        let mut events = Vec::new();
        store
            .scan("/vigil/access", 0, i64::MAX / 1000, |e| {
                events.push((e.stream.to_owned(), e.message.to_owned()));
                std::ops::ControlFlow::Continue(())
            })
            .expect("scan");
        assert_eq!(events.len(), 50);
        assert_eq!(events[7].1, "{\"n\":7}");
        assert!(events[0].0.ends_with("/host-1"), "{}", events[0].0);
    }

    #[test]
    fn streams_are_per_day() {
        assert_eq!(stream_name(1_764_633_600_000, "h-1"), "2025/12/02/h-1");
    }
}
