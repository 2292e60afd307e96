//! A stderr log writer that never blocks the server.
//!
//! An MCP client that starts the server over stdio may never read its
//! stderr. Once the pipe is full, a plain `write(2)` to stderr blocks, and a
//! log line written from the async runtime would stall every request. Here
//! log lines go into a bounded queue that one thread drains to stderr: when
//! the queue is full a line is dropped and counted (the count is printed
//! once stderr moves again), and no line is longer than [`MAX_LINE_BYTES`].

use std::io::{self, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::time::{Duration, Instant};

/// Longest log line written; the rest is cut and its length noted.
pub const MAX_LINE_BYTES: usize = 8 * 1024;
/// Lines held while stderr does not move (at most about 8 MiB).
pub const QUEUE_LINES: usize = 1024;
/// How long a shutdown waits for queued lines to reach stderr.
const FLUSH_WAIT: Duration = Duration::from_secs(1);

enum Message {
    Line(Vec<u8>),
    /// Write what is queued, then acknowledge; at exit (`last`), first say
    /// how many lines were dropped in all.
    Flush { ack: mpsc::Sender<()>, last: bool },
}

/// The writing end, cloned into every log call (a `MakeWriter` for
/// `tracing_subscriber`).
#[derive(Clone)]
pub struct StderrLog {
    tx: SyncSender<Message>,
    dropped: Arc<AtomicU64>,
}

/// Flushes what is queued (bounded by a second) when dropped at exit, with
/// the total of dropped lines if any were.
pub struct LogGuard {
    log: StderrLog,
}

impl StderrLog {
    /// Starts the thread that drains the queue into the process's stderr.
    pub fn start() -> io::Result<(StderrLog, LogGuard)> {
        Self::start_with(io::stderr(), QUEUE_LINES)
    }

    /// Starts the thread that drains the queue into `sink`.
    pub fn start_with(sink: impl Write + Send + 'static, capacity: usize) -> io::Result<(StderrLog, LogGuard)> {
        let (tx, rx) = mpsc::sync_channel(capacity);
        let dropped = Arc::new(AtomicU64::new(0));
        let counter = dropped.clone();
        std::thread::Builder::new()
            .name("stderr-log".into())
            .spawn(move || drain(rx, sink, &counter))?;
        let log = StderrLog { tx, dropped };
        Ok((log.clone(), LogGuard { log }))
    }

    /// Lines dropped so far because the queue was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Queues one line (cut at [`MAX_LINE_BYTES`]; `cut` more bytes were
    /// already left out); never waits.
    fn push(&self, bytes: &[u8], cut: usize) {
        match self.tx.try_send(Message::Line(cap_line(bytes, cut))) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                self.dropped.fetch_add(1, Ordering::Relaxed);
            }
            // The drain thread is gone (process exit): nowhere to write.
            Err(TrySendError::Disconnected(_)) => {}
        }
    }
}

/// The writer of one log event: collects what the formatter writes (in
/// however many pieces) and queues it as one line when dropped.
pub struct EventWriter<'a> {
    log: &'a StderrLog,
    line: Vec<u8>,
    /// Bytes written past the cap and not kept.
    cut: usize,
}

impl Write for EventWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // Collect a little past the cap, so the cut line can say how much was cut.
        if self.line.len() <= MAX_LINE_BYTES {
            self.line.extend_from_slice(buf);
        } else {
            self.cut += buf.len();
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for EventWriter<'_> {
    fn drop(&mut self) {
        if !self.line.is_empty() {
            self.log.push(&self.line, self.cut);
        }
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for StderrLog {
    type Writer = EventWriter<'a>;

    fn make_writer(&'a self) -> Self::Writer {
        EventWriter { log: self, line: Vec::new(), cut: 0 }
    }
}

impl LogGuard {
    /// Waits (at most [`FLUSH_WAIT`]) until every queued line is written.
    pub fn flush(&self) {
        self.flush_and(false);
    }

    fn flush_and(&self, last: bool) {
        let deadline = Instant::now() + FLUSH_WAIT;
        let (ack, ack_rx) = mpsc::channel();
        let mut message = Message::Flush { ack, last };
        loop {
            match self.log.tx.try_send(message) {
                Ok(()) => break,
                Err(TrySendError::Full(back)) if Instant::now() < deadline => {
                    message = back;
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(_) => return,
            }
        }
        let _ = ack_rx.recv_timeout(deadline.saturating_duration_since(Instant::now()));
    }
}

impl Drop for LogGuard {
    fn drop(&mut self) {
        self.flush_and(true);
    }
}

/// The drain thread: writes lines in order; after stderr moves again, says
/// how many lines were dropped meanwhile.
fn drain(rx: Receiver<Message>, mut sink: impl Write, dropped: &AtomicU64) {
    let mut reported = 0;
    for message in rx {
        match message {
            Message::Line(line) => {
                let _ = sink.write_all(&line);
            }
            Message::Flush { ack, last } => {
                let total = dropped.load(Ordering::Relaxed);
                if last && total > 0 {
                    let summary = format!("omniroute-mcp: {total} log line(s) dropped in all because stderr was not being read\n");
                    let _ = sink.write_all(summary.as_bytes());
                }
                let _ = sink.flush();
                let _ = ack.send(());
                continue;
            }
        }
        let total = dropped.load(Ordering::Relaxed);
        if total > reported {
            let notice = format!(
                "omniroute-mcp: {} log line(s) dropped because stderr was not being read\n",
                total - reported
            );
            let _ = sink.write_all(notice.as_bytes());
            reported = total;
        }
        let _ = sink.flush();
    }
}

/// `bytes` as one line of at most [`MAX_LINE_BYTES`] (cut on a character
/// boundary, with how much was cut, `cut` bytes before it included), ending
/// in a newline.
fn cap_line(bytes: &[u8], cut: usize) -> Vec<u8> {
    if bytes.len() <= MAX_LINE_BYTES && cut == 0 {
        return bytes.to_vec();
    }
    if bytes.len() <= MAX_LINE_BYTES {
        let mut line = bytes.strip_suffix(b"\n").unwrap_or(bytes).to_vec();
        line.extend_from_slice(format!("… [{cut} more bytes cut]\n").as_bytes());
        return line;
    }
    let mut end = MAX_LINE_BYTES;
    while end > 0 && (bytes[end] & 0xC0) == 0x80 {
        end -= 1;
    }
    let mut line = bytes[..end].to_vec();
    line.extend_from_slice(format!("… [{} more bytes cut]\n", bytes.len() - end + cut).as_bytes());
    line
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Mutex;

    /// A sink that blocks while `gate` is held, like a full pipe.
    #[derive(Clone, Default)]
    struct Gated {
        gate: Arc<Mutex<()>>,
        written: Arc<Mutex<Vec<u8>>>,
    }

    impl Write for Gated {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            let _open = self.gate.lock().unwrap();
            self.written.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_stalled_stderr_drops_and_counts_lines_instead_of_blocking() {
        let sink = Gated::default();
        let closed = sink.gate.lock().unwrap();
        let (log, guard) = StderrLog::start_with(sink.clone(), 4).unwrap();
        let event = |text: &str| {
            let mut writer = tracing_subscriber::fmt::MakeWriter::make_writer(&log);
            // In pieces, as a formatter writes: still one line.
            write!(writer, "{text}").unwrap();
            writer.write_all(b"\n").unwrap();
        };
        // The drain thread takes at most one line and then blocks in write;
        // 4 more fill the queue; the remaining 95 must be dropped at once.
        for i in 0..100 {
            event(&format!("line {i}"));
        }
        assert!(log.dropped() >= 95, "dropped {}", log.dropped());
        drop(closed);
        guard.flush();
        event("after");
        guard.flush();
        let text = String::from_utf8(sink.written.lock().unwrap().clone()).unwrap();
        assert!(text.starts_with("line 0\n"), "{text}");
        assert!(text.contains("log line(s) dropped because stderr was not being read"), "{text}");
        assert!(text.contains("\nafter\n"), "{text}");
        assert!(text.lines().count() <= 7, "at most 5 lines, the notice and the last one: {text}");
        let dropped = log.dropped();
        drop(guard);
        let text = String::from_utf8(sink.written.lock().unwrap().clone()).unwrap();
        let summary = format!("omniroute-mcp: {dropped} log line(s) dropped in all because stderr was not being read\n");
        assert!(text.ends_with(&summary), "{text}");
    }

    #[test]
    fn long_lines_are_cut() {
        let line = format!("{}é{}\n", "x".repeat(MAX_LINE_BYTES - 1), "y".repeat(5 * 1024 * 1024));
        let capped = cap_line(line.as_bytes(), 0);
        assert!(capped.len() < MAX_LINE_BYTES + 64, "{}", capped.len());
        let text = String::from_utf8(capped).expect("cut on a character boundary");
        assert!(text.ends_with(" more bytes cut]\n"), "{}", &text[text.len() - 40..]);
        assert_eq!(cap_line(b"short\n", 0), b"short\n");
        assert_eq!(cap_line(b"short\n", 7), "short… [7 more bytes cut]\n".as_bytes());
        // A formatter writing a huge event in pieces keeps at most the cap.
        let (log, guard) = StderrLog::start_with(std::io::sink(), 4).unwrap();
        let mut writer = tracing_subscriber::fmt::MakeWriter::make_writer(&log);
        for _ in 0..1000 {
            writer.write_all(&[b'z'; 1024]).unwrap();
        }
        assert!(writer.line.len() <= MAX_LINE_BYTES + 1024 && writer.cut > 900 * 1024);
        drop(writer);
        drop(guard);
    }
}
