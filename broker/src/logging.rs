//! How kubeline's servers write their log lines: formatted on the thread that logs, written to
//! standard error by a background thread in batches.
//!
//! - [`stderr_layer`]: the `tracing_subscriber` layer of `kubeline broker`, `agent` and `dev`
//!   (and of the capacity bench's broker, so that it measures what they do), plain or JSON, with
//!   its [`Flusher`].
//! - [`LineWriter`]: each log line is appended to a shared buffer; a thread named `log-writer`
//!   takes the whole buffer and writes it with one `write`, then waits [`LINGER`] so that the
//!   next lines gather. Under load, one `write` carries dozens of lines instead of one each
//!   (the broker logs four lines per execute: measured, the four `write`s were 6 % of its CPU).
//!   A line waits at most [`LINGER`] plus the write in progress before it is written.
//! - Audit records (target [`AUDIT_TARGET`]) are JSON already escaped by serde_json: in the plain
//!   format they are written as they are when they hold no byte a terminal could take for a
//!   control sequence, instead of being escaped character by character (4 % of the broker's CPU).
//!
//! **Invariant:** no line is dropped. A logging thread waits while more than [`MAX_PENDING`]
//! bytes are unwritten (standard error blocked), as it would on a blocking `write`; lines logged
//! after the [`Flusher`] has run are written directly.

use std::fmt;
use std::io::{self, Write};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::time::{FormatTime, SystemTime};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

use crate::audit::AUDIT_TARGET;

/// How long the writer thread waits after a write before taking the next lines.
pub const LINGER: Duration = Duration::from_millis(2);
/// Unwritten bytes above which logging threads wait for the writer thread.
pub const MAX_PENDING: usize = 4 << 20;
/// Buffer capacity the writer thread keeps between writes.
const KEEP_CAPACITY: usize = 256 << 10;

/// The layer that writes `tracing` events to standard error, one line each (`json`: one JSON
/// object per line), colours only when standard error is a terminal; and the [`Flusher`] that
/// writes what is still buffered when it is dropped.
pub fn stderr_layer<S>(json: bool) -> (Box<dyn Layer<S> + Send + Sync>, Flusher)
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    let (writer, flusher) = LineWriter::spawn(io::stderr());
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(move || writer.clone())
        .with_ansi(io::IsTerminal::is_terminal(&io::stderr()));
    let layer = if json {
        layer.json().boxed()
    } else {
        let format = AuditAsIs {
            format: tracing_subscriber::fmt::format(),
            timer: SystemTime,
        };
        layer.event_format(format).boxed()
    };
    (layer, flusher)
}

// === the writer ===

/// A handle that appends whole lines to the shared buffer (one `write_all` per event, as
/// `tracing_subscriber` writes them). Cheap to clone.
pub struct LineWriter<W: Write + Send + 'static> {
    shared: Arc<Shared<W>>,
}

impl<W: Write + Send + 'static> Clone for LineWriter<W> {
    fn clone(&self) -> Self {
        Self {
            shared: self.shared.clone(),
        }
    }
}

struct Shared<W> {
    state: Mutex<State>,
    /// The writer thread waits here for lines (when it found none).
    lines: Condvar,
    /// Logging threads wait here for room (when [`MAX_PENDING`] bytes are unwritten).
    room: Condvar,
    sink: Mutex<W>,
}

#[derive(Default)]
struct State {
    pending: Vec<u8>,
    /// The writer thread is waiting on `lines` (a logging thread that adds the first line
    /// wakes it; otherwise it is lingering and will look by itself).
    idle: bool,
    /// Logging threads waiting on `room`.
    waiting_for_room: usize,
    /// The [`Flusher`] ran: lines are written directly.
    closed: bool,
}

/// Writes what is still buffered and stops the writer thread, when dropped.
pub struct Flusher {
    stop: Option<Box<dyn FnOnce() + Send>>,
}

impl Drop for Flusher {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            stop();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A thread that panicked while holding the lock left whole lines or none: go on.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl<W: Write + Send + 'static> LineWriter<W> {
    /// Starts the writer thread over `sink`.
    pub fn spawn(sink: W) -> (Self, Flusher) {
        let shared = Arc::new(Shared {
            state: Mutex::new(State::default()),
            lines: Condvar::new(),
            room: Condvar::new(),
            sink: Mutex::new(sink),
        });
        let thread = {
            let shared = shared.clone();
            std::thread::Builder::new()
                .name("log-writer".into())
                .spawn(move || shared.run())
                .ok()
        };
        if thread.is_none() {
            // No thread to write for them: lines are written directly.
            lock(&shared.state).closed = true;
        }
        let flusher = {
            let shared = shared.clone();
            Flusher {
                stop: Some(Box::new(move || shared.close(thread))),
            }
        };
        (Self { shared }, flusher)
    }
}

impl<W: Write + Send + 'static> Shared<W> {
    fn run(&self) {
        let mut batch = Vec::new();
        loop {
            {
                let mut state = lock(&self.state);
                while state.pending.is_empty() && !state.closed {
                    state.idle = true;
                    state = self
                        .lines
                        .wait(state)
                        .unwrap_or_else(PoisonError::into_inner);
                }
                state.idle = false;
                if state.pending.is_empty() {
                    return; // closed, and nothing left
                }
                std::mem::swap(&mut state.pending, &mut batch);
                if state.waiting_for_room > 0 {
                    self.room.notify_all();
                }
            }
            // Errors are dropped, as `tracing_subscriber` drops those of a plain stderr writer:
            // there is nowhere else to report them.
            let mut sink = lock(&self.sink);
            let _ = sink.write_all(&batch);
            let _ = sink.flush();
            drop(sink);
            batch.clear();
            batch.shrink_to(KEEP_CAPACITY);
            std::thread::sleep(LINGER);
        }
    }

    fn close(&self, thread: Option<JoinHandle<()>>) {
        {
            let mut state = lock(&self.state);
            state.closed = true;
            self.lines.notify_all();
            self.room.notify_all();
        }
        if let Some(thread) = thread {
            let _ = thread.join();
        }
    }

    fn append(&self, line: &[u8]) {
        let mut state = lock(&self.state);
        while state.pending.len() >= MAX_PENDING && !state.closed {
            state.waiting_for_room += 1;
            state = self
                .room
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
            state.waiting_for_room -= 1;
        }
        if state.closed {
            drop(state);
            let mut sink = lock(&self.sink);
            let _ = sink.write_all(line);
            let _ = sink.flush();
            return;
        }
        state.pending.extend_from_slice(line);
        if state.idle {
            state.idle = false;
            self.lines.notify_one();
        }
    }
}

impl<W: Write + Send + 'static> Write for LineWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.shared.append(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

// === the audit lines ===

/// The plain format, except that an audit record (a JSON line) is written as it is when no byte
/// of it could start a terminal control sequence: serde_json escaped the C0 controls already,
/// and anything else (DEL, the C1 controls) goes through the default format's escaping.
/// `timer` must be the one `format` has (the fast path writes the line's prefix itself).
struct AuditAsIs<F, T> {
    format: F,
    timer: T,
}

impl<S, N, F, T> FormatEvent<S, N> for AuditAsIs<F, T>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
    T: FormatTime,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let meta = event.metadata();
        if meta.target() == AUDIT_TARGET
            && !writer.has_ansi_escapes()
            && ctx.lookup_current().is_none()
        {
            let mut message = Message::default();
            event.record(&mut message);
            if let Some(text) = message.text.filter(|t| !message.other && terminal_safe(t)) {
                self.timer.format_time(&mut writer)?;
                return writeln!(writer, " {:>5} {}: {text}", meta.level(), meta.target());
            }
        }
        self.format.format_event(ctx, writer, event)
    }
}

/// The `message` of an event, and whether it has other fields.
#[derive(Default)]
struct Message {
    text: Option<String>,
    other: bool,
}

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        if field.name() == "message" {
            self.text = Some(format!("{value:?}"));
        } else {
            self.other = true;
        }
    }
}

/// Whether `text` holds none of what the default format escapes: ESC, BEL, BS, FF, DEL and the
/// C1 controls (U+0080–U+009F, encoded `C2 80`–`C2 9F`).
fn terminal_safe(text: &str) -> bool {
    let bytes = text.as_bytes();
    // Most records hold none of these bytes at all: one plain pass, then a closer look.
    if !bytes
        .iter()
        .any(|&b| matches!(b, 0x1b | 0x07 | 0x08 | 0x0c | 0x7f | 0xc2))
    {
        return true;
    }
    !bytes.iter().enumerate().any(|(i, &b)| match b {
        0x1b | 0x07 | 0x08 | 0x0c | 0x7f => true,
        0xc2 => bytes
            .get(i + 1)
            .is_some_and(|next| (0x80..=0x9f).contains(next)),
        _ => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// A sink that records what it was given and can be held shut.
    #[derive(Clone, Default)]
    struct Sink {
        written: Arc<Mutex<Vec<u8>>>,
        writes: Arc<Mutex<usize>>,
        shut: Arc<AtomicBool>,
    }

    impl Write for Sink {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            while self.shut.load(Ordering::SeqCst) {
                std::thread::sleep(Duration::from_millis(1));
            }
            lock(&self.written).extend_from_slice(buf);
            *lock(&self.writes) += 1;
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn every_line_is_written_in_order_once_flushed() {
        let sink = Sink::default();
        let (writer, flusher) = LineWriter::spawn(sink.clone());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let mut writer = writer.clone();
                std::thread::spawn(move || {
                    for i in 0..1000 {
                        writer.write_all(format!("{t} {i}\n").as_bytes()).unwrap();
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().unwrap();
        }
        drop(flusher);
        let written = String::from_utf8(lock(&sink.written).clone()).unwrap();
        let mut next = [0; 4];
        for line in written.lines() {
            let (t, i) = line.split_once(' ').unwrap();
            let (t, i): (usize, usize) = (t.parse().unwrap(), i.parse().unwrap());
            assert_eq!(i, next[t], "thread {t}'s lines in order, none lost: {line}");
            next[t] += 1;
        }
        assert_eq!(next, [1000; 4]);
        assert!(
            *lock(&sink.writes) < 4000,
            "lines are batched: {} writes",
            lock(&sink.writes)
        );
    }

    #[test]
    fn a_blocked_sink_holds_the_logging_threads_instead_of_dropping_lines() {
        let sink = Sink::default();
        sink.shut.store(true, Ordering::SeqCst);
        let (writer, flusher) = LineWriter::spawn(sink.clone());
        let line = vec![b'x'; 64 << 10];
        // Three times the room: the batch stuck in the sink and the pending buffer hold at most
        // two (plus a line each), so the logging thread can only finish once the sink takes some.
        let lines = 3 * MAX_PENDING / line.len();
        let logger = {
            let mut writer = writer.clone();
            let line = line.clone();
            std::thread::spawn(move || {
                for _ in 0..lines {
                    writer.write_all(&line).unwrap();
                }
            })
        };
        std::thread::sleep(Duration::from_millis(200));
        let waited = !logger.is_finished();
        let pending = lock(&writer.shared.state).pending.len();
        // Opened before asserting: a failed assertion must not leave the writer thread stuck.
        sink.shut.store(false, Ordering::SeqCst);
        assert!(waited, "the logging thread waits for room");
        assert!(
            pending <= MAX_PENDING + line.len(),
            "{pending} bytes pending"
        );
        logger.join().unwrap();
        drop(flusher);
        assert_eq!(lock(&sink.written).len(), lines * line.len());
    }

    #[test]
    fn lines_after_the_flusher_are_written_directly() {
        let sink = Sink::default();
        let (mut writer, flusher) = LineWriter::spawn(sink.clone());
        writer.write_all(b"before\n").unwrap();
        drop(flusher);
        writer.write_all(b"after\n").unwrap();
        assert_eq!(&*lock(&sink.written), b"before\nafter\n");
    }

    #[test]
    fn only_text_a_terminal_cannot_take_for_a_control_sequence_is_safe() {
        assert!(terminal_safe(r#"{"args":["pods","é","\u001b[2J"]}"#));
        for unsafe_text in ["\u{1b}[2J", "a\u{7f}", "\u{9b}31m", "\u{85}", "\u{7}"] {
            assert!(!terminal_safe(unsafe_text), "{unsafe_text:?}");
        }
        // U+00A0..: `C2 A0`.. are printable.
        assert!(terminal_safe("\u{a0}\u{bf}"));
    }

    /// An audit line comes out byte for byte as the default format prints it (nothing in it
    /// needs escaping); anything unsafe goes through the default format.
    #[test]
    fn an_audit_line_reads_as_the_default_format_writes_it() {
        use tracing_subscriber::layer::SubscriberExt;

        fn at_noon(w: &mut Writer<'_>) -> fmt::Result {
            w.write_str("2026-12-02T12:00:00.000000Z")
        }
        fn capture(as_is: bool, log: impl FnOnce()) -> String {
            let sink = Sink::default();
            let (writer, flusher) = LineWriter::spawn(sink.clone());
            let timer = at_noon as fn(&mut Writer<'_>) -> fmt::Result;
            let format = tracing_subscriber::fmt::format().with_timer(timer);
            let layer = tracing_subscriber::fmt::layer()
                .with_writer(move || writer.clone())
                .with_ansi(false);
            let layer = if as_is {
                layer.event_format(AuditAsIs { format, timer }).boxed()
            } else {
                layer.event_format(format).boxed()
            };
            let subscriber = tracing_subscriber::registry().with(layer);
            tracing::subscriber::with_default(subscriber, log);
            drop(flusher);
            String::from_utf8(lock(&sink.written).clone()).unwrap()
        }
        let safe = r#"{"action":"execute","args":["pods","é","\u001b"]}"#;
        let log = || tracing::info!(target: AUDIT_TARGET, "{safe}");
        let out = capture(true, log);
        assert_eq!(out, capture(false, log));
        assert_eq!(
            out,
            format!("2026-12-02T12:00:00.000000Z  INFO {AUDIT_TARGET}: {safe}\n")
        );
        let unsafe_line = "{\"args\":[\"\u{9b}31m\"]}";
        let out = capture(
            true,
            || tracing::info!(target: AUDIT_TARGET, "{unsafe_line}"),
        );
        assert!(
            out.contains("\\u{9b}31m"),
            "escaped by the default format: {out}"
        );
        let other = capture(
            true,
            || tracing::info!(target: "kubeline_broker::link", "x\u{1b}"),
        );
        assert!(other.contains("x\\x1b"), "{other}");
    }
}
