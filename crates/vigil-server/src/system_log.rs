//! Vigil's diagnostics (start-up, reloads, alarm transitions, warnings,
//! errors) as events of `/vigil/system`: the binary's tracing subscriber
//! writes each formatted JSON line through [`writer`], which puts it on
//! stderr and hands the same bytes to the log writer — formatted once.
//!
//! Lines written before the log store is open (start-up) wait, up to
//! [`EARLY_LINES`], and are stored once [`install`] runs.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use crate::telemetry::{GroupLines, OwnGroup};

/// Start-up lines kept until the log writer runs; later ones are dropped.
pub const EARLY_LINES: usize = 1_000;

static SINK: OnceLock<Arc<dyn GroupLines>> = OnceLock::new();
static EARLY: Mutex<Vec<(i64, String)>> = Mutex::new(Vec::new());

/// From now on, every diagnostic line also goes to `/vigil/system`
/// through `sink`; the start-up lines written so far go first.
pub fn install(sink: Arc<dyn GroupLines>) {
    let mut early = EARLY.lock().unwrap_or_else(PoisonError::into_inner);
    if SINK.set(Arc::clone(&sink)).is_ok() {
        for (timestamp, line) in early.drain(..) {
            sink.write(OwnGroup::System, timestamp, line);
        }
    }
    early.shrink_to_fit();
}

/// A writer for one diagnostic line: what it is given goes to stderr as
/// it comes, and, once dropped, to `/vigil/system` as one event. The
/// binary's subscriber calls this for each event it writes.
pub fn writer() -> SystemLine {
    SystemLine { buf: Vec::new() }
}

/// One diagnostic line on its way to stderr and `/vigil/system`.
#[derive(Debug)]
pub struct SystemLine {
    buf: Vec<u8>,
}

impl Write for SystemLine {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.buf.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for SystemLine {
    fn drop(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        // A closed stderr must not stop the server.
        let _ = std::io::stderr().write_all(&self.buf);
        let text = String::from_utf8_lossy(&self.buf);
        let line = text.trim_end_matches('\n');
        if line.is_empty() {
            return;
        }
        let now = vigil_metrics::model::now_ms();
        match SINK.get() {
            Some(sink) => sink.write(OwnGroup::System, now, line.to_owned()),
            None => {
                let mut early = EARLY.lock().unwrap_or_else(PoisonError::into_inner);
                // Re-checked under the lock: `install` may have just run.
                if let Some(sink) = SINK.get() {
                    sink.write(OwnGroup::System, now, line.to_owned());
                } else if early.len() < EARLY_LINES {
                    early.push((now, line.to_owned()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default)]
    struct Seen(Mutex<Vec<(OwnGroup, String)>>);

    impl GroupLines for Seen {
        fn write(&self, group: OwnGroup, _: i64, line: String) {
            self.0.lock().unwrap().push((group, line));
        }
    }

    /// The one test that touches the process-wide sink: lines before
    /// `install` wait, lines after go straight through, each whole.
    #[test]
    fn early_lines_wait_for_the_writer_then_lines_go_straight_through() {
        {
            let mut w = writer();
            w.write_all(br#"{"level":"INFO","#).unwrap();
            w.write_all(b"\"fields\":{\"message\":\"starting\"}}\n")
                .unwrap();
        }
        let seen = Arc::new(Seen::default());
        install(seen.clone());
        writeln!(writer(), r#"{{"message":"serving"}}"#).unwrap();
        let seen = seen.0.lock().unwrap();
        assert_eq!(
            *seen,
            vec![
                (
                    OwnGroup::System,
                    r#"{"level":"INFO","fields":{"message":"starting"}}"#.to_owned()
                ),
                (OwnGroup::System, r#"{"message":"serving"}"#.to_owned()),
            ]
        );
    }
}
