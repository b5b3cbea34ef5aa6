//! Log lines: what `serve` and `demo` write to stderr, as text or JSON.
//!
//! Every proxied request writes a line at the default level, so a line
//! must cost little: tracing-subscriber's own formatters went through
//! `core::fmt` for every field (a `Debug` of each string, a float with
//! Grisu, the styles of its ANSI support even with colour off) and
//! cost about 20,000 instructions per request line, more than the rest
//! of a proxied GET. [`LineFormat`] writes the same layout directly:
//! numbers with `itoa` and `zmij`, strings escaped in one pass, the
//! timestamp's date and time formatted once a second. The line is then
//! handed to a writer thread ([`tracing_appender::non_blocking`]) that
//! batches writes to stderr, so no request waits on a slow terminal or
//! log pipe; nothing is dropped (it waits instead when far behind), and
//! the [`Flush`] guard writes what is queued before the process exits.
//!
//! The request line, one per request, skips even tracing's dispatch
//! ([`line`]): its fields are known, so they are written as typed values
//! in one go instead of being visited one by one through `dyn` calls
//! (5,300 instructions per line through tracing, 4,300 without). It is
//! still filtered as tracing filters (`RUST_LOG`), by its callsite, and
//! lands in the same queue in the same layout.
//!
//! The proxy opens no spans, so the lines carry no span context.

use std::cell::RefCell;
use std::fmt::{self, Write as _};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// Lines queued for the writer thread at most; past it, a logging thread
/// waits for room rather than drop a line. (The queue's slots are made at
/// start: 128 Ki of them held 4 MiB of an idle proxy's memory.)
const QUEUED_LINES: usize = 8 * 1024;

/// Writes what is queued when dropped: keep it until the process ends.
#[must_use = "dropping it ends logging"]
pub struct Flush(#[allow(dead_code)] tracing_appender::non_blocking::WorkerGuard);

/// Log to stderr at `RUST_LOG`'s levels (default `info`), as JSON objects
/// or as text, with colour only when `colour` (a person at a terminal).
pub fn init(json: bool, colour: bool) -> Flush {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // Its thread writes when it has nothing more queued.
    let stderr = std::io::BufWriter::with_capacity(64 * 1024, std::io::stderr());
    let (writer, flush) = queue(stderr, QUEUED_LINES);
    let format = LineFormat { json, colour };
    // Only the first call's queue takes direct lines, as only its
    // subscriber becomes the global one.
    let _ = DIRECT.set(Direct {
        writer: writer.clone(),
        format,
    });
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .event_format(format)
        .init();
    flush
}

/// Where direct lines go: the global subscriber's queue and layout.
struct Direct {
    writer: tracing_appender::non_blocking::NonBlocking,
    format: LineFormat,
}

static DIRECT: OnceLock<Direct> = OnceLock::new();

thread_local! {
    /// The line being written on this thread: its room is kept between lines.
    static LINE: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Writes a line of `level` for `target` straight to the log queue: the
/// message, then the fields `fields` puts. The caller has checked that
/// the line is on (`tracing::enabled!` at its own callsite, so `RUST_LOG`
/// decides as for any line). Nothing is written before [`init`] (a
/// library user with a subscriber of its own gets no request lines).
pub(crate) fn line(
    level: Level,
    target: &str,
    message: &str,
    fields: impl FnOnce(&mut Fields<'_>),
) {
    use std::io::Write as _;
    let Some(direct) = DIRECT.get() else {
        return;
    };
    with_line(|line| {
        if direct
            .format
            .write_direct(line, level, target, message, fields)
            .is_ok()
        {
            // A failed write is counted by the queue, as for any line.
            let _ = direct.writer.clone().write_all(line.as_bytes());
        }
    });
}

/// `write` with this thread's line buffer, emptied: each piece of a line
/// is then a copy into it, not a call through `dyn Write`. A line logged
/// while another is being written on the thread (by a value's
/// formatting) gets a buffer of its own.
fn with_line<R>(write: impl FnOnce(&mut String) -> R) -> R {
    LINE.with(|line| {
        let mut own = String::new();
        let mut kept = line.try_borrow_mut();
        let line = match kept.as_deref_mut() {
            Ok(line) => line,
            Err(_) => &mut own,
        };
        line.clear();
        write(line)
    })
}

/// Lines written to `out` by a thread of their own: up to `limit` wait in
/// the queue, then writers wait for room (none is dropped).
fn queue<W: std::io::Write + Send + 'static>(
    out: W,
    limit: usize,
) -> (tracing_appender::non_blocking::NonBlocking, Flush) {
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .buffered_lines_limit(limit)
        .thread_name("log-writer")
        .finish(out);
    (writer, Flush(guard))
}

/// The layout of one line (see the module documentation).
#[derive(Clone, Copy)]
pub struct LineFormat {
    pub json: bool,
    pub colour: bool,
}

impl<S, N> FormatEvent<S, N> for LineFormat
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        _: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        with_line(|line| {
            self.write_line(line, event)?;
            writer.write_str(line)
        })
    }
}

impl LineFormat {
    fn write_line(&self, out: &mut String, event: &Event<'_>) -> fmt::Result {
        let meta = event.metadata();
        let mut fields = self.write_head(out, *meta.level(), meta.target())?;
        event.record(&mut fields);
        fields.result?;
        self.write_tail(out, meta.target())
    }

    /// A direct line (see [`line`]): the same layout, fields put by type.
    fn write_direct(
        &self,
        out: &mut String,
        level: Level,
        target: &str,
        message: &str,
        put: impl FnOnce(&mut Fields<'_>),
    ) -> fmt::Result {
        let mut fields = self.write_head(out, level, target)?;
        fields.str("message", message);
        put(&mut fields);
        fields.result?;
        self.write_tail(out, target)
    }

    /// Everything before the fields; the fields are written next.
    fn write_head<'a>(
        &self,
        out: &'a mut String,
        level: Level,
        target: &str,
    ) -> Result<Fields<'a>, fmt::Error> {
        if self.json {
            out.write_str("{\"timestamp\":\"")?;
            write_timestamp(out)?;
            out.write_str("\",\"level\":\"")?;
            out.write_str(level.as_str())?;
            out.write_str("\",\"fields\":{")?;
            Ok(Fields::new(out, Style::Json))
        } else {
            write_timestamp(out)?;
            out.write_str(level_text(&level, self.colour))?;
            out.write_str(target)?;
            out.write_char(':')?;
            Ok(Fields::new(out, Style::Text))
        }
    }

    /// Everything after the fields.
    fn write_tail(&self, out: &mut String, target: &str) -> fmt::Result {
        if self.json {
            out.write_str("},\"target\":")?;
            write_json_string(out, target)?;
            out.write_str("}\n")
        } else {
            out.write_char('\n')
        }
    }
}

/// The level as the text layout writes it: padded to five characters
/// between spaces, coloured for a terminal.
fn level_text(level: &Level, colour: bool) -> &'static str {
    match (*level, colour) {
        (Level::ERROR, false) => " ERROR ",
        (Level::WARN, false) => "  WARN ",
        (Level::INFO, false) => "  INFO ",
        (Level::DEBUG, false) => " DEBUG ",
        (Level::TRACE, false) => " TRACE ",
        (Level::ERROR, true) => " \x1b[31mERROR\x1b[0m ",
        (Level::WARN, true) => "  \x1b[33mWARN\x1b[0m ",
        (Level::INFO, true) => "  \x1b[32mINFO\x1b[0m ",
        (Level::DEBUG, true) => " \x1b[34mDEBUG\x1b[0m ",
        (Level::TRACE, true) => " \x1b[35mTRACE\x1b[0m ",
    }
}

/// `2026-12-07T09:30:00.123456Z`. The part up to the seconds changes once
/// a second: it is formatted then and kept per thread.
fn write_timestamp(out: &mut String) -> fmt::Result {
    thread_local! {
        static SECOND: RefCell<(u64, String)> = const { RefCell::new((u64::MAX, String::new())) };
    }
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let (seconds, micros) = (now.as_secs(), now.subsec_micros());
    SECOND.with_borrow_mut(|(second, text)| {
        if *second != seconds {
            *second = seconds;
            text.clear();
            let at = i64::try_from(seconds)
                .ok()
                .and_then(|s| jiff::Timestamp::from_second(s).ok())
                .unwrap_or(jiff::Timestamp::UNIX_EPOCH);
            // RFC 3339 in UTC, whole seconds: "2026-12-07T09:30:00Z".
            let _ = write!(text, "{at}");
            text.pop();
        }
        out.push_str(text);
    });
    let mut digits = itoa::Buffer::new();
    let micros = digits.format(micros + 1_000_000);
    out.write_char('.')?;
    // The leading 1 keeps the zeros in front of a small number.
    out.write_str(micros.get(1..).unwrap_or(micros))?;
    out.write_char('Z')
}

#[derive(Clone, Copy, PartialEq)]
enum Style {
    /// `message key="string" key=12 key=true`, as tracing's own text
    /// layout writes them.
    Text,
    /// `"message":"…","key":"string","key":12` inside `"fields":{…}`.
    Json,
}

/// Writes a line's fields: an event's as they are visited, a direct
/// line's as they are put.
pub(crate) struct Fields<'a> {
    out: &'a mut String,
    style: Style,
    first: bool,
    result: fmt::Result,
}

impl<'a> Fields<'a> {
    fn new(out: &'a mut String, style: Style) -> Self {
        Fields {
            out,
            style,
            first: true,
            result: Ok(()),
        }
    }

    /// The separator and the field's name; the value follows. Whether the
    /// name was left out: the text layout's message comes bare, first.
    fn name(&mut self, name: &str) -> Result<bool, fmt::Error> {
        let name = name.strip_prefix("r#").unwrap_or(name);
        let out = &mut *self.out;
        match self.style {
            Style::Text if name == "message" => out.push(' '),
            Style::Text => {
                out.push(' ');
                out.push_str(name);
                out.push('=');
                return Ok(false);
            }
            Style::Json => {
                if !std::mem::replace(&mut self.first, false) {
                    out.push(',');
                }
                write_json_string(out, name)?;
                out.push(':');
            }
        }
        Ok(self.style == Style::Text)
    }

    /// The field's name and `value`, written by `write(out, style, bare)`.
    fn put(&mut self, name: &str, write: impl FnOnce(&mut String, Style, bool) -> fmt::Result) {
        if self.result.is_ok() {
            self.result = match self.name(name) {
                Ok(bare) => write(&mut *self.out, self.style, bare),
                Err(error) => Err(error),
            };
        }
    }

    /// A string: quoted (text, except the message) and escaped.
    pub(crate) fn str(&mut self, name: &str, value: &str) {
        self.put(name, |out, style, bare| match style {
            Style::Json => write_json_string(out, value),
            Style::Text if bare => write_escaped(out, value, Quotes::Kept),
            Style::Text => {
                out.push('"');
                write_escaped(out, value, Quotes::Escaped)?;
                out.push('"');
                Ok(())
            }
        });
    }

    /// A string when there is one; no field at all for `None` (as tracing
    /// leaves out an `Option` field that is `None`).
    pub(crate) fn some_str(&mut self, name: &str, value: Option<&str>) {
        if let Some(value) = value {
            self.str(name, value);
        }
    }

    /// A string written as a `%value` field is: as [`Fields::formatted`]
    /// writes it, without going through `core::fmt`.
    pub(crate) fn shown(&mut self, name: &str, value: &str) {
        self.put(name, |out, style, _| match style {
            Style::Json => write_json_string(out, value),
            Style::Text => write_escaped(out, value, Quotes::Kept),
        });
    }

    pub(crate) fn u64(&mut self, name: &str, value: u64) {
        self.put(name, |out, _, _| {
            out.write_str(itoa::Buffer::new().format(value))
        });
    }

    fn i64(&mut self, name: &str, value: i64) {
        self.put(name, |out, _, _| {
            out.write_str(itoa::Buffer::new().format(value))
        });
    }

    pub(crate) fn f64(&mut self, name: &str, value: f64) {
        self.put(name, |out, style, _| match (value.is_finite(), style) {
            (true, _) => out.write_str(zmij::Buffer::new().format_finite(value)),
            // JSON has no NaN or infinity.
            (false, Style::Json) => out.write_str("null"),
            (false, Style::Text) => write!(out, "{value}"),
        });
    }

    /// A duration in milliseconds, to the microsecond (`12.345`, `0.5`,
    /// `3.0`): a number, as an `f64` field writes it, without a float's
    /// shortest-digits search.
    pub(crate) fn millis(&mut self, name: &str, value: std::time::Duration) {
        // In u64 (580,000 years): u128 arithmetic is a call per operation.
        let micros = value.as_secs().saturating_mul(1_000_000) + u64::from(value.subsec_micros());
        self.put(name, |out, _, _| {
            out.write_str(itoa::Buffer::new().format(micros / 1000))?;
            // The leading 1 keeps the fraction's leading zeros.
            let mut digits = itoa::Buffer::new();
            let fraction = digits.format(micros % 1000 + 1000);
            let fraction = fraction.get(1..).unwrap_or_default().trim_end_matches('0');
            out.push('.');
            out.write_str(if fraction.is_empty() { "0" } else { fraction })
        });
    }

    pub(crate) fn bool(&mut self, name: &str, value: bool) {
        self.put(name, |out, _, _| {
            out.write_str(if value { "true" } else { "false" })
        });
    }

    /// A value as it formats (`%value` and `?value` fields, errors, the
    /// message of an event), then escaped like a string (as text, without
    /// quotes: tracing's own layout shows them as they format).
    pub(crate) fn formatted(&mut self, name: &str, value: impl fmt::Debug) {
        self.put(name, |out, style, _| match style {
            Style::Json => {
                out.write_char('"')?;
                write!(Escaping(out, Quotes::Escaped), "{value:?}")?;
                out.write_char('"')
            }
            Style::Text => write!(Escaping(out, Quotes::Kept), "{value:?}"),
        });
    }
}

impl Visit for Fields<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.str(field.name(), value);
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.u64(field.name(), value);
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.i64(field.name(), value);
    }

    fn record_f64(&mut self, field: &Field, value: f64) {
        self.f64(field.name(), value);
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.bool(field.name(), value);
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.formatted(field.name(), value);
    }
}

/// Whether `"` is escaped (inside quotes) or written as it is.
#[derive(Clone, Copy)]
enum Quotes {
    Escaped,
    Kept,
}

/// A JSON string, quoted.
fn write_json_string(out: &mut String, value: &str) -> fmt::Result {
    out.write_char('"')?;
    write_escaped(out, value, Quotes::Escaped)?;
    out.write_char('"')
}

/// The bytes always written escaped: control characters (ANSI escapes
/// among them: a logged value cannot drive the reader's terminal), `\`
/// and DEL.
const ALWAYS_ESCAPED: [bool; 256] = {
    let mut table = [false; 256];
    let mut byte = 0;
    while byte < 0x20 {
        table[byte] = true;
        byte += 1;
    }
    table[b'\\' as usize] = true;
    table[0x7f] = true;
    table
};

/// `value` escaped as JSON escapes it (`"` too with `Quotes::Escaped`).
/// Nearly every value has nothing to escape: it is checked eight bytes at
/// a time and copied whole. Otherwise runs of plain characters are copied
/// at once between the escapes.
fn write_escaped(out: &mut String, value: &str, quotes: Quotes) -> fmt::Result {
    let quote_escaped = matches!(quotes, Quotes::Escaped);
    let bytes = value.as_bytes();
    if !may_need_any_escaping(bytes, quote_escaped) {
        out.push_str(value);
        return Ok(());
    }
    let mut plain_from = 0;
    let mut at = 0;
    while at < bytes.len() {
        if let Some(word) = bytes.get(at..at + 8) {
            let word = u64::from_le_bytes(word.try_into().unwrap_or_default());
            if !may_need_escaping(word, quote_escaped) {
                at += 8;
                continue;
            }
        }
        let byte = bytes[at];
        if ALWAYS_ESCAPED[usize::from(byte)] || (byte == b'"' && quote_escaped) {
            // `at` is at an ASCII byte: a character boundary.
            out.push_str(value.get(plain_from..at).unwrap_or_default());
            match byte {
                b'"' => out.push_str("\\\""),
                b'\\' => out.push_str("\\\\"),
                b'\n' => out.push_str("\\n"),
                b'\r' => out.push_str("\\r"),
                b'\t' => out.push_str("\\t"),
                other => write!(out, "\\u{other:04x}")?,
            }
            plain_from = at + 1;
        }
        at += 1;
    }
    out.push_str(value.get(plain_from..).unwrap_or_default());
    Ok(())
}

/// Whether a byte of `bytes` may need escaping (see [`may_need_escaping`]):
/// eight bytes at a time, never byte by byte. The last word overlaps the
/// one before it; a value shorter than a word is read as two overlapping
/// halves, or (under four bytes) padded with a plain byte.
fn may_need_any_escaping(bytes: &[u8], quote: bool) -> bool {
    let word_at = |at: usize| {
        let word = bytes.get(at..at + 8).and_then(|w| w.try_into().ok());
        word.map(u64::from_le_bytes)
    };
    let half_at = |at: usize| {
        let half = bytes.get(at..at + 4).and_then(|h| h.try_into().ok());
        half.map_or(0, |h| u64::from(u32::from_le_bytes(h)))
    };
    let len = bytes.len();
    let Some(last) = len.checked_sub(8) else {
        let word = match len.checked_sub(4) {
            Some(last_half) => half_at(0) | half_at(last_half) << 32,
            None => (bytes.iter().enumerate())
                .fold(u64::from_le_bytes(*b"aaaaaaaa"), |w, (i, &b)| {
                    (w & !(0xff << (8 * i))) | u64::from(b) << (8 * i)
                }),
        };
        return may_need_escaping(word, quote);
    };
    let mut at = 0;
    while at < last {
        if word_at(at).is_some_and(|word| may_need_escaping(word, quote)) {
            return true;
        }
        at += 8;
    }
    word_at(last).is_some_and(|word| may_need_escaping(word, quote))
}

/// Whether one of the eight bytes of `word` may need escaping: a control
/// byte, `\`, DEL, or (`quote`) `"`. Exact for bytes below 0x80; a word
/// with UTF-8 bytes in it may be looked at byte by byte for nothing.
fn may_need_escaping(word: u64, quote: bool) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let zero_byte = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
    let below_space = word.wrapping_sub(ONES * 0x20) & !word & HIGHS;
    let backslash = zero_byte(word ^ (ONES * u64::from(b'\\')));
    let delete = zero_byte(word ^ (ONES * 0x7f));
    let quotes = zero_byte(word ^ (ONES * u64::from(b'"'))) * u64::from(quote);
    (below_space | backslash | delete | quotes) != 0
}

/// A `fmt::Write` that escapes what passes through it.
struct Escaping<'a>(&'a mut String, Quotes);

impl fmt::Write for Escaping<'_> {
    fn write_str(&mut self, text: &str) -> fmt::Result {
        write_escaped(self.0, text, self.1)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tracing_subscriber::fmt::MakeWriter;

    /// Lines written to memory.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            self.0
                .lock()
                .expect("not poisoned")
                .extend_from_slice(bytes);
            Ok(bytes.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl<'a> MakeWriter<'a> for Captured {
        type Writer = Captured;
        fn make_writer(&'a self) -> Captured {
            self.clone()
        }
    }

    /// What `log` writes in the `json` or text layout.
    fn captured(json: bool, log: impl FnOnce()) -> String {
        let lines = Captured::default();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(lines.clone())
            .event_format(LineFormat {
                json,
                colour: false,
            })
            .finish();
        tracing::subscriber::with_default(subscriber, log);
        let bytes = lines.0.lock().expect("not poisoned").clone();
        String::from_utf8(bytes).expect("UTF-8")
    }

    fn request_line() {
        let reason = "a \"quoted\"\nreason\x1b[31m";
        tracing::info!(
            request_id = "req-1",
            status = 200u16,
            bytes = 1234u64,
            offset = -3i64,
            duration_ms = 1.25f64,
            slow = f64::NAN,
            truncated = false,
            method = %http::Method::GET,
            reason = tracing::field::display(reason),
            path = "/compute/a\\b",
            absent = Option::<&str>::None,
            "request"
        );
    }

    /// A direct line with the fields `put` puts.
    fn direct_line(json: bool, put: impl FnOnce(&mut Fields<'_>)) -> String {
        let mut line = String::new();
        let format = LineFormat {
            json,
            colour: false,
        };
        let target = "keystone_proxy::logging::tests";
        format
            .write_direct(&mut line, Level::INFO, target, "request", put)
            .expect("written");
        line
    }

    /// The fields of [`request_line`], put as a direct line.
    fn direct_request_line(json: bool) -> String {
        direct_line(json, |fields| {
            fields.str("request_id", "req-1");
            fields.u64("status", 200);
            fields.u64("bytes", 1234);
            fields.i64("offset", -3);
            fields.f64("duration_ms", 1.25);
            fields.f64("slow", f64::NAN);
            fields.bool("truncated", false);
            fields.shown("method", http::Method::GET.as_str());
            fields.shown("reason", "a \"quoted\"\nreason\x1b[31m");
            fields.str("path", "/compute/a\\b");
            fields.some_str("absent", None);
        })
    }

    /// A direct line is byte for byte the line tracing's event gives, in
    /// both layouts (but for the time it was written).
    #[test]
    fn a_direct_line_is_the_line_an_event_gives() {
        for json in [true, false] {
            let event = captured(json, request_line);
            let direct = direct_request_line(json);
            // The timestamp ends at the line's first Z.
            let after_time = |line: &str| line.split_once('Z').map(|(_, rest)| rest.to_owned());
            assert!(
                after_time(&direct).is_some_and(|rest| rest.len() > 100),
                "{direct}"
            );
            assert_eq!(after_time(&direct), after_time(&event), "json: {json}");
        }
    }

    /// The JSON layout is tracing's own (timestamp, level, fields with the
    /// message, target), every value with its JSON type, strings escaped.
    #[test]
    fn json_lines_parse_with_typed_fields() {
        let text = captured(true, request_line);
        let line: serde_json::Value = serde_json::from_str(&text).expect("one JSON object");
        assert_eq!(line["level"], "INFO");
        assert_eq!(line["target"], "keystone_proxy::logging::tests");
        let fields = &line["fields"];
        assert_eq!(fields["message"], "request");
        assert_eq!(fields["request_id"], "req-1");
        assert_eq!(fields["status"], 200);
        assert_eq!(fields["bytes"], 1234);
        assert_eq!(fields["offset"], -3);
        assert_eq!(fields["duration_ms"], 1.25);
        assert!(fields["slow"].is_null());
        assert_eq!(fields["truncated"], false);
        assert_eq!(fields["method"], "GET");
        assert_eq!(fields["reason"], "a \"quoted\"\nreason\x1b[31m");
        assert_eq!(fields["path"], "/compute/a\\b");
        let stamp = line["timestamp"].as_str().expect("a string");
        let parsed: jiff::Timestamp = stamp.parse().expect("RFC 3339");
        let age = jiff::Timestamp::now().duration_since(parsed);
        assert!(age.as_secs() < 60, "{stamp}");
        assert_eq!(stamp.len(), "2026-12-07T09:30:00.123456Z".len(), "{stamp}");
    }

    /// The text layout: timestamp, level, target, the bare message, then
    /// `key=value`; strings quoted, no control character written raw.
    #[test]
    fn text_lines_read_like_tracing_s_own() {
        let text = captured(false, request_line);
        let (stamp, rest) = text.split_once(' ').expect("a timestamp");
        stamp.parse::<jiff::Timestamp>().expect("RFC 3339");
        assert_eq!(
            rest,
            " INFO keystone_proxy::logging::tests: request request_id=\"req-1\" status=200 \
             bytes=1234 offset=-3 duration_ms=1.25 slow=NaN truncated=false method=GET \
             reason=a \"quoted\"\\nreason\\u001b[31m path=\"/compute/a\\\\b\"\n"
        );
        assert!(!text.trim_end().contains(|c: char| c.is_control()));
    }

    /// A writer that takes a millisecond per write, as a slow log pipe.
    struct Slow(Captured);

    impl std::io::Write for Slow {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            std::thread::sleep(std::time::Duration::from_millis(1));
            self.0.write(bytes)
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// Lines beyond the queue's room wait instead of being dropped, and
    /// the guard writes every queued line before it lets the process end.
    #[test]
    fn a_slow_reader_loses_no_line() {
        use std::io::Write as _;
        let lines = Captured::default();
        let (mut writer, flush) = queue(Slow(lines.clone()), 4);
        for n in 0..100 {
            writer
                .write_all(format!("{n}\n").as_bytes())
                .expect("queued");
        }
        drop(flush);
        let written = lines.0.lock().expect("not poisoned").clone();
        let expected: String = (0..100).map(|n| format!("{n}\n")).collect();
        assert_eq!(String::from_utf8_lossy(&written), expected);
    }

    /// The eight-byte check never misses a byte to escape, wherever it is
    /// in the word, and flags no plain ASCII word; a long value with an
    /// escape in each of its words comes out right.
    #[test]
    fn words_with_a_byte_to_escape_are_never_missed() {
        for byte in 0..=255u8 {
            for position in 0..8 {
                let mut word = [b'a'; 8];
                word[position] = byte;
                let word = u64::from_le_bytes(word);
                for quote in [false, true] {
                    let escaped = ALWAYS_ESCAPED[usize::from(byte)] || (quote && byte == b'"');
                    let flagged = may_need_escaping(word, quote);
                    if escaped || byte.is_ascii() {
                        assert_eq!(flagged, escaped, "{byte:#x} at {position}, quote {quote}");
                    }
                }
            }
        }
        let value = "abcdefg\u{1}abcdefgh\\bcdefgh\"é-é-é-\x7fz";
        let mut out = String::new();
        write_escaped(&mut out, value, Quotes::Escaped).expect("written");
        assert_eq!(out, "abcdefg\\u0001abcdefgh\\\\bcdefgh\\\"é-é-é-\\u007fz");
    }

    /// The whole-value check finds a byte to escape at every position of
    /// values of every length around the word size, and passes plain ones.
    #[test]
    fn a_value_with_a_byte_to_escape_is_never_copied_whole() {
        for len in 0..=25 {
            let plain = vec![b'a'; len];
            assert!(!may_need_any_escaping(&plain, true), "plain, {len} bytes");
            for position in 0..len {
                for byte in [0x00, 0x1f, b'\\', 0x7f, b'"'] {
                    let mut value = plain.clone();
                    value[position] = byte;
                    assert!(
                        may_need_any_escaping(&value, true),
                        "{byte:#x} at {position}/{len}"
                    );
                    let quote = byte == b'"';
                    assert_eq!(may_need_any_escaping(&value, false), !quote);
                    let value = String::from_utf8(value).expect("ASCII");
                    let mut out = String::new();
                    write_escaped(&mut out, &value, Quotes::Escaped).expect("written");
                    assert_eq!(
                        out.len(),
                        len + if byte < 0x20 || byte == 0x7f { 5 } else { 1 }
                    );
                }
            }
        }
    }

    #[test]
    fn milliseconds_are_written_to_the_microsecond() {
        use std::time::Duration;
        for (duration, written) in [
            (Duration::from_micros(12_345), "12.345"),
            (Duration::from_micros(500), "0.5"),
            (Duration::from_micros(7), "0.007"),
            (Duration::from_millis(3), "3.0"),
            (Duration::from_nanos(999), "0.0"),
            (Duration::from_secs(90), "90000.0"),
        ] {
            let line = direct_line(true, |fields| fields.millis("ms", duration));
            let fields = &serde_json::from_str::<serde_json::Value>(&line).expect("JSON")["fields"];
            assert_eq!(fields["ms"].to_string(), written, "{duration:?}");
        }
    }

    #[test]
    fn a_timestamp_keeps_the_zeros_of_its_fraction() {
        let mut out = String::new();
        write_timestamp(&mut out).expect("written");
        let fraction = out.split_once('.').expect("a fraction").1;
        assert_eq!(fraction.len(), "123456Z".len(), "{out}");
        assert!(fraction.ends_with('Z'));
    }
}
