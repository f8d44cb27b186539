//! The access log: one JSON line per request, formatted by hand and queued on a bounded
//! channel; while lines come, a writer thread wakes every [`FLUSH_EVERY`], drains the queue and
//! writes it in one batch. Under load proxy threads never wake the writer (it sleeps rather than
//! blocking on the channel; only an idle writer waits on it), never wait on the terminal or
//! disk, and never pay for a general-purpose formatter: in the load benchmark tracing's JSON
//! layer with a per-event writer cost ~10 µs of CPU per request.
//!
//! Lines keep the shape of verge's other log lines (`timestamp`, `level`, `target`, `message`,
//! then the fields). When the queue is full the proxy thread waits: lines are never dropped.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TryRecvError, sync_channel};
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::digits::{push_ipv4, push_padded, push_uint};

/// Lines in flight between proxy threads and the writer.
const QUEUE: usize = 64 * 1024;
/// How often the writer drains the queue (also the longest a line waits to be written).
pub const FLUSH_EVERY: Duration = Duration::from_millis(10);
/// How long an idle writer waits for a line before looking at the stop flag again.
const IDLE_WAIT: Duration = Duration::from_millis(250);

/// Where access-log lines go.
#[derive(Clone)]
pub struct AccessLog {
    tx: Option<SyncSender<Vec<u8>>>,
}

impl AccessLog {
    /// No access log.
    pub fn disabled() -> Self {
        AccessLog { tx: None }
    }

    /// Lines to standard output, written by a thread of their own.
    pub fn stdout() -> std::io::Result<(Self, AccessLogWriter)> {
        Self::to_writer(std::io::stdout())
    }

    /// Lines to any writer.
    pub fn to_writer<W: Write + Send + 'static>(
        writer: W,
    ) -> std::io::Result<(Self, AccessLogWriter)> {
        let (tx, rx) = sync_channel(QUEUE);
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let handle = std::thread::Builder::new()
            .name("verge-access-log".into())
            .spawn(move || write_lines(rx, writer, &stopping))?;
        Ok((
            AccessLog { tx: Some(tx) },
            AccessLogWriter {
                stop,
                handle: Some(handle),
            },
        ))
    }

    /// Whether lines are written at all.
    pub fn enabled(&self) -> bool {
        self.tx.is_some()
    }

    /// Start a line (`None` when disabled, so callers skip the formatting).
    pub fn line(&self) -> Option<Line> {
        self.tx.as_ref().map(|_| Line::new())
    }

    /// Queue a finished line.
    pub fn send(&self, line: Line) {
        if let Some(tx) = &self.tx {
            // Only fails once the writer thread is gone (process exit): nothing left to do.
            let _ = tx.send(line.finish());
        }
    }
}

/// The writer thread of an [`AccessLog`]; [`AccessLogWriter::finish`] writes what is queued and
/// stops it.
pub struct AccessLogWriter {
    stop: Arc<AtomicBool>,
    handle: Option<JoinHandle<()>>,
}

impl AccessLogWriter {
    /// Write every queued line and stop the thread.
    pub fn finish(mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

/// Every [`FLUSH_EVERY`], write what is queued in one batch. Write errors (a closed stdout) are
/// ignored so the queue keeps draining and proxy threads never block on it.
///
/// When a pass finds the queue empty the writer waits on the channel instead of sleeping (up to
/// [`IDLE_WAIT`], to notice a stop): an idle verge does not wake a thread a hundred times a
/// second, and only the first line after a quiet spell wakes the writer.
fn write_lines<W: Write>(rx: Receiver<Vec<u8>>, writer: W, stop: &AtomicBool) {
    let mut out = std::io::BufWriter::with_capacity(256 * 1024, writer);
    // A line taken by the idle wait, written but not flushed yet.
    let mut unflushed = false;
    loop {
        let stopping = stop.load(Ordering::Relaxed);
        let mut wrote = false;
        let disconnected = loop {
            match rx.try_recv() {
                Ok(line) => {
                    let _ = out.write_all(&line);
                    wrote = true;
                }
                Err(TryRecvError::Empty) => break false,
                Err(TryRecvError::Disconnected) => break true,
            }
        };
        if wrote || unflushed {
            let _ = out.flush();
            unflushed = false;
        }
        if stopping || disconnected {
            return;
        }
        if wrote {
            std::thread::sleep(FLUSH_EVERY);
            continue;
        }
        match rx.recv_timeout(IDLE_WAIT) {
            Ok(line) => {
                let _ = out.write_all(&line);
                unflushed = true;
                // Batch what follows it, as under load.
                std::thread::sleep(FLUSH_EVERY);
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => return,
        }
    }
}

/// One JSON object being written.
pub struct Line {
    buf: Vec<u8>,
}

impl Line {
    fn new() -> Self {
        let mut buf = Vec::with_capacity(512);
        buf.extend_from_slice(b"{\"timestamp\":\"");
        rfc3339_now(&mut buf);
        buf.extend_from_slice(
            b"\",\"level\":\"INFO\",\"message\":\"access\",\"target\":\"verge::access\"",
        );
        Line { buf }
    }

    // Inlined, so that each field's key (a literal at every call) is copied as a constant.
    #[inline]
    fn key(&mut self, key: &str) {
        self.buf.extend_from_slice(b",\"");
        self.buf.extend_from_slice(key.as_bytes());
        self.buf.extend_from_slice(b"\":");
    }

    /// A string field (escaped).
    #[inline]
    pub fn str(&mut self, key: &str, value: &str) -> &mut Self {
        self.key(key);
        json_string(&mut self.buf, value);
        self
    }

    /// An integer field.
    #[inline]
    pub fn uint(&mut self, key: &str, value: u64) -> &mut Self {
        self.key(key);
        push_uint(&mut self.buf, value);
        self
    }

    /// Milliseconds with microsecond precision.
    #[inline]
    pub fn millis(&mut self, key: &str, micros: u64) -> &mut Self {
        self.key(key);
        push_uint(&mut self.buf, micros / 1000);
        self.buf.push(b'.');
        push_padded(&mut self.buf, micros % 1000, 3);
        self
    }

    /// A socket address as a string field (`1.2.3.4:5`, `[::1]:5`), as std formats it.
    pub fn addr(&mut self, key: &str, addr: &std::net::SocketAddr) -> &mut Self {
        self.key(key);
        self.buf.push(b'"');
        match addr {
            std::net::SocketAddr::V4(v4) => {
                push_ipv4(&mut self.buf, *v4.ip());
                self.buf.push(b':');
                push_uint(&mut self.buf, u64::from(v4.port()));
            }
            // Rarer on the hot path; std's formatting gives the canonical compressed form.
            std::net::SocketAddr::V6(v6) => {
                let _ = write!(self.buf, "{v6}");
            }
        }
        self.buf.push(b'"');
        self
    }

    fn finish(mut self) -> Vec<u8> {
        self.buf.extend_from_slice(b"}\n");
        self.buf
    }
}

/// The bytes written escaped: `"`, `\`, and the control characters (DEL included). The one
/// list of them; [`json_string`] only picks each one's spelling.
const ESCAPED: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = true;
        b += 1;
    }
    table[b'"' as usize] = true;
    table[b'\\' as usize] = true;
    table[0x7f] = true;
    table
};

/// Append `s` as a JSON string literal. Runs of bytes that need no escaping are copied in one
/// go, so a value with nothing to escape (nearly every path and id) is one table scan and one
/// copy.
fn json_string(buf: &mut Vec<u8>, s: &str) {
    buf.push(b'"');
    let bytes = s.as_bytes();
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if !ESCAPED[usize::from(b)] {
            continue;
        }
        buf.extend_from_slice(&bytes[start..i]);
        start = i + 1;
        match b {
            b'"' => buf.extend_from_slice(b"\\\""),
            b'\\' => buf.extend_from_slice(b"\\\\"),
            b'\n' => buf.extend_from_slice(b"\\n"),
            b'\r' => buf.extend_from_slice(b"\\r"),
            b'\t' => buf.extend_from_slice(b"\\t"),
            _ => {
                let _ = write!(buf, "\\u{b:04x}");
            }
        }
    }
    buf.extend_from_slice(&bytes[start..]);
    buf.push(b'"');
}

thread_local! {
    /// The second [`rfc3339_now`] last formatted on this thread and its `YYYY-MM-DDTHH:MM:SS.`
    /// text: lines in the same second reuse it instead of redoing the calendar arithmetic.
    static SECOND: std::cell::Cell<(u64, [u8; 20])> = const { std::cell::Cell::new((u64::MAX, [0; 20])) };
}

/// Append the current UTC time as `YYYY-MM-DDTHH:MM:SS.ffffffZ`.
fn rfc3339_now(buf: &mut Vec<u8>) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs();
    let (cached, mut text) = SECOND.get();
    if cached != secs {
        text = second_text(secs);
        SECOND.set((secs, text));
    }
    buf.extend_from_slice(&text);
    push_padded(buf, u64::from(now.subsec_micros()), 6);
    buf.push(b'Z');
}

/// `YYYY-MM-DDTHH:MM:SS.` for a Unix time in seconds.
fn second_text(secs: u64) -> [u8; 20] {
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = verge_functions::calendar::civil_from_days(days as i64);
    let mut text = Vec::with_capacity(20);
    push_padded(&mut text, u64::try_from(y).unwrap_or(0), 4);
    text.push(b'-');
    push_padded(&mut text, u64::from(m), 2);
    text.push(b'-');
    push_padded(&mut text, u64::from(d), 2);
    text.push(b'T');
    push_padded(&mut text, rem / 3600, 2);
    text.push(b':');
    push_padded(&mut text, rem / 60 % 60, 2);
    text.push(b':');
    push_padded(&mut text, rem % 60, 2);
    text.push(b'.');
    let mut out = [0u8; 20];
    out.copy_from_slice(&text);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_valid_json_with_escaping() {
        let mut line = Line::new();
        line.str("path", "/a\"b\\c\n\u{1}")
            .uint("status", 200)
            .uint("zero", 0)
            .millis("duration_ms", 1234)
            .millis("tiny_ms", 7)
            .addr("v4", &"203.0.113.9:40000".parse().unwrap())
            .addr("v6", &"[2001:db8::1]:443".parse().unwrap())
            .str("plain", "/no/escapes/at/all");
        let bytes = line.finish();
        assert_eq!(bytes.last(), Some(&b'\n'));
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["path"], "/a\"b\\c\n\u{1}");
        assert_eq!(v["status"], 200);
        assert_eq!(v["zero"], 0);
        assert_eq!(v["duration_ms"], 1.234);
        assert_eq!(v["tiny_ms"], 0.007);
        assert_eq!(v["v4"], "203.0.113.9:40000");
        assert_eq!(v["v6"], "[2001:db8::1]:443");
        assert_eq!(v["plain"], "/no/escapes/at/all");
        // The timestamp's shape; its calendar arithmetic is checked in timestamps_are_rfc3339_utc.
        let ts = v["timestamp"].as_str().unwrap();
        assert_eq!(ts.len(), "2026-11-22T05:29:01.123456Z".len(), "{ts}");
        assert_eq!(v["target"], "verge::access");
        assert!(ts.ends_with('Z'), "{ts}");
    }

    #[test]
    fn every_character_reads_back_as_written() {
        // Each ASCII character alone, in a run of plain text, and a non-ASCII one.
        for c in (0u8..=0x7f).map(char::from).chain(['é', '\u{2028}']) {
            for value in [c.to_string(), format!("ab{c}cd{c}")] {
                let mut line = Line::new();
                line.str("v", &value);
                let v: serde_json::Value =
                    serde_json::from_slice(&line.finish()).unwrap_or_else(|e| panic!("{c:?}: {e}"));
                assert_eq!(v["v"], value.as_str(), "{c:?}");
            }
        }
    }

    #[test]
    fn timestamps_are_rfc3339_utc() {
        assert_eq!(&second_text(0), b"1970-01-01T00:00:00.");
        // 2024-02-29T23:59:59Z, a leap day.
        assert_eq!(&second_text(1_709_251_199), b"2024-02-29T23:59:59.");
        let mut buf = Vec::new();
        rfc3339_now(&mut buf);
        rfc3339_now(&mut buf);
        let text = String::from_utf8(buf).unwrap();
        assert_eq!(text.len(), 2 * 27, "{text}");
        assert!(text.starts_with("20") && text.ends_with('Z'), "{text}");
    }

    #[derive(Clone, Default)]
    struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
    impl Write for Shared {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn a_line_after_an_idle_spell_is_written_without_waiting_for_a_stop() {
        let sink = Shared::default();
        let (log, writer) = AccessLog::to_writer(sink.clone()).unwrap();
        // Past one idle wait: the writer is waiting on the channel, not sleeping.
        std::thread::sleep(IDLE_WAIT + IDLE_WAIT / 2);
        let mut line = log.line().unwrap();
        line.uint("after_idle", 1);
        log.send(line);
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while sink.0.lock().unwrap().is_empty() && std::time::Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let written = String::from_utf8(sink.0.lock().unwrap().clone()).unwrap();
        assert!(written.contains("\"after_idle\":1"), "{written:?}");
        writer.finish();
    }

    #[test]
    fn queued_lines_reach_the_writer() {
        let sink = Shared::default();
        let (log, writer) = AccessLog::to_writer(sink.clone()).unwrap();
        for i in 0..100 {
            let mut line = log.line().unwrap();
            line.uint("i", i);
            log.send(line);
        }
        // `finish` writes everything still queued before it returns.
        writer.finish();
        let lines = sink
            .0
            .lock()
            .unwrap()
            .iter()
            .filter(|&&b| b == b'\n')
            .count();
        assert_eq!(lines, 100);
        assert!(AccessLog::disabled().line().is_none());
    }
}
