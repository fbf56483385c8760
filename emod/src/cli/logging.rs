//! The text log's writer: one event is one line. Control characters inside an event (a newline
//! in a client-supplied value used to forge a whole `INFO … admin root granted` line, an ESC
//! could drive the terminal of whoever tails the log) are written escaped, as `\n`, `\u{1b}`.

use std::io::{self, Write};

/// Escapes control characters in every event written through it, except the event's final
/// newline (and, when `ansi` is on, the ESC of the formatter's own colour codes).
#[derive(Clone, Copy)]
pub struct OneLinePerEvent {
    pub ansi: bool,
}

pub struct EscapingWriter<W: Write> {
    inner: W,
    ansi: bool,
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for OneLinePerEvent {
    type Writer = EscapingWriter<io::Stderr>;

    fn make_writer(&'a self) -> Self::Writer {
        EscapingWriter {
            inner: io::stderr(),
            ansi: self.ansi,
        }
    }
}

/// `text` with its control characters escaped, but a final `\n` kept.
pub fn escape_event(text: &str, keep_esc: bool) -> std::borrow::Cow<'_, str> {
    let body = text.strip_suffix('\n').unwrap_or(text);
    let needs = body
        .chars()
        .any(|c| c.is_control() && !(keep_esc && c == '\u{1b}'));
    if !needs {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in body.chars() {
        if c.is_control() && !(keep_esc && c == '\u{1b}') {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    if body.len() < text.len() {
        out.push('\n');
    }
    std::borrow::Cow::Owned(out)
}

impl<W: Write> Write for EscapingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        self.inner
            .write_all(escape_event(&text, self.ansi).as_bytes())?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use super::escape_event;

    #[test]
    fn an_event_stays_one_line() {
        assert_eq!(escape_event("INFO ok\n", false), "INFO ok\n");
        assert_eq!(
            escape_event(
                "INFO failed login username=x\nINFO admin root granted\n",
                false
            ),
            "INFO failed login username=x\\nINFO admin root granted\n"
        );
        assert_eq!(
            escape_event("a\u{1b}]2;t\u{7}\n", false),
            "a\\u{1b}]2;t\\u{7}\n"
        );
        assert_eq!(
            escape_event("\u{1b}[32mINFO\u{1b}[0m\n", true),
            "\u{1b}[32mINFO\u{1b}[0m\n"
        );
        assert_eq!(escape_event("a\rb", true), "a\\rb");
    }
}
