//! Server-Sent Events: one [`Event`] written to any [`io::Write`], byte for byte as the WHATWG HTML
//! standard ("Server-sent events", section 9.2) reads it.
//!
//! ```
//! use sse_htmx::sse::Event;
//!
//! let event = Event::new().id("7")?.data("<p>This is 7.</p>");
//! let mut wire = Vec::new();
//! event.write_to(&mut wire)?;
//! assert_eq!(wire, b"id: 7\ndata: <p>This is 7.</p>\n\n");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! This module knows nothing of HTTP: framing the bytes for the connection (chunked or not) is the
//! caller's business, see [`crate::chunked`].

use std::fmt;
use std::io;
use std::time::Duration;

/// One event (or a comment-only keep-alive) as it goes on the wire.
///
/// Fields are written in a fixed order: comments, `event`, `id`, `retry`, `data`, then the blank
/// line that dispatches the event. A field that was never set is not written.
#[must_use]
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Event {
    comments: Vec<String>,
    event: Option<String>,
    id: Option<String>,
    retry: Option<Duration>,
    data: Option<String>,
}

/// Why a field was refused. Nothing is written for a refused field: a line break would end the field
/// early and let the rest be read as other fields.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FieldError {
    /// The `event` name contains CR or LF.
    LineBreakInEvent,
    /// The `id` contains CR or LF.
    LineBreakInId,
    /// The `id` contains NUL, which makes browsers ignore the field.
    NulInId,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FieldError::LineBreakInEvent => "sse event name contains a line break",
            FieldError::LineBreakInId => "sse id contains a line break",
            FieldError::NulInId => "sse id contains a NUL character",
        })
    }
}

impl std::error::Error for FieldError {}

impl From<FieldError> for io::Error {
    fn from(error: FieldError) -> Self {
        io::Error::new(io::ErrorKind::InvalidInput, error)
    }
}

fn has_line_break(text: &str) -> bool {
    text.contains(['\n', '\r'])
}

impl Event {
    /// An event with no fields yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the `data:` field. Text with line breaks (LF, CR or CRLF) becomes one `data:` line per
    /// line, which the client joins back with LF.
    ///
    /// ```
    /// # use sse_htmx::sse::Event;
    /// let mut wire = Vec::new();
    /// Event::new().data("a\r\nb\rc").write_to(&mut wire)?;
    /// assert_eq!(wire, b"data: a\ndata: b\ndata: c\n\n");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn data(mut self, data: impl Into<String>) -> Self {
        self.data = Some(data.into());
        self
    }

    /// Sets the `event:` field, the event's type. Unnamed events (the default) reach
    /// `onmessage` and htmx's `sse-swap="message"`.
    ///
    /// Refuses a name with a line break:
    /// ```
    /// # use sse_htmx::sse::{Event, FieldError};
    /// assert_eq!(Event::new().event("a\nb"), Err(FieldError::LineBreakInEvent));
    /// ```
    pub fn event(mut self, event: impl Into<String>) -> Result<Self, FieldError> {
        let event = event.into();
        if has_line_break(&event) {
            return Err(FieldError::LineBreakInEvent);
        }
        self.event = Some(event);
        Ok(self)
    }

    /// Sets the `id:` field, which the client sends back as `Last-Event-ID` when it reconnects.
    ///
    /// Refuses an id with a line break or a NUL:
    /// ```
    /// # use sse_htmx::sse::{Event, FieldError};
    /// assert_eq!(Event::new().id("1\r"), Err(FieldError::LineBreakInId));
    /// assert_eq!(Event::new().id("1\0"), Err(FieldError::NulInId));
    /// ```
    pub fn id(mut self, id: impl Into<String>) -> Result<Self, FieldError> {
        let id = id.into();
        if has_line_break(&id) {
            return Err(FieldError::LineBreakInId);
        }
        if id.contains('\0') {
            return Err(FieldError::NulInId);
        }
        self.id = Some(id);
        Ok(self)
    }

    /// Sets the `id:` field to a number, which needs no check.
    ///
    /// ```
    /// # use sse_htmx::sse::Event;
    /// let mut wire = Vec::new();
    /// Event::new().id_number(42).data("x").write_to(&mut wire)?;
    /// assert_eq!(wire, b"id: 42\ndata: x\n\n");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn id_number(mut self, id: u64) -> Self {
        self.id = Some(id.to_string());
        self
    }

    /// Sets the `retry:` field: how long the client waits before reconnecting, in whole
    /// milliseconds.
    ///
    /// ```
    /// # use sse_htmx::sse::Event;
    /// # use std::time::Duration;
    /// let mut wire = Vec::new();
    /// Event::new().retry(Duration::from_secs(2)).write_to(&mut wire)?;
    /// assert_eq!(wire, b"retry: 2000\n\n");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn retry(mut self, retry: Duration) -> Self {
        self.retry = Some(retry);
        self
    }

    /// Adds a comment: a line starting with `:` that clients ignore, used to keep idle
    /// connections alive. Line breaks split it into several comment lines, so it can never end up
    /// as a field.
    ///
    /// ```
    /// # use sse_htmx::sse::Event;
    /// let mut wire = Vec::new();
    /// Event::new().comment("keep-alive").write_to(&mut wire)?;
    /// assert_eq!(wire, b": keep-alive\n\n");
    /// # Ok::<(), std::io::Error>(())
    /// ```
    pub fn comment(mut self, comment: impl Into<String>) -> Self {
        self.comments.push(comment.into());
        self
    }

    /// Writes the event, ending with the blank line that dispatches it, in one `write_all`.
    pub fn write_to(&self, w: &mut impl io::Write) -> io::Result<()> {
        let mut buf = Vec::with_capacity(64);
        self.encode_into(&mut buf);
        w.write_all(&buf)
    }

    /// Appends the event's bytes to `buf`. Fields were checked when they were set, so this cannot
    /// fail.
    pub fn encode_into(&self, buf: &mut Vec<u8>) {
        for comment in &self.comments {
            write_lines(buf, b":", comment);
        }
        if let Some(event) = &self.event {
            write_field(buf, b"event", event.as_bytes());
        }
        if let Some(id) = &self.id {
            write_field(buf, b"id", id.as_bytes());
        }
        if let Some(retry) = self.retry {
            write_field(buf, b"retry", retry.as_millis().to_string().as_bytes());
        }
        if let Some(data) = &self.data {
            write_lines(buf, b"data", data);
        }
        buf.push(b'\n');
    }
}

/// `name: value\n`. The space after the colon is the one a parser strips, so a value that starts
/// with a space keeps it.
fn write_field(buf: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    buf.extend_from_slice(name);
    if name != b":" {
        buf.push(b':');
    }
    buf.push(b' ');
    buf.extend_from_slice(value);
    buf.push(b'\n');
}

/// One `name: line` per line of `text`, splitting on CRLF, CR and LF alike.
fn write_lines(buf: &mut Vec<u8>, name: &[u8], text: &str) {
    let mut rest = text;
    loop {
        match rest.find(['\r', '\n']) {
            Some(at) => {
                write_field(buf, name, &rest.as_bytes()[..at]);
                let skip = if rest[at..].starts_with("\r\n") { 2 } else { 1 };
                rest = &rest[at + skip..];
            }
            None => {
                write_field(buf, name, rest.as_bytes());
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wire(event: &Event) -> String {
        let mut buf = Vec::new();
        event.write_to(&mut buf).unwrap();
        String::from_utf8(buf).unwrap()
    }

    #[test]
    fn unnamed_event_has_only_id_and_data() {
        let event = Event::new().id("0").unwrap().data("<p>This is 0.</p>");
        assert_eq!(wire(&event), "id: 0\ndata: <p>This is 0.</p>\n\n");
    }

    #[test]
    fn fields_come_in_a_fixed_order() {
        let event = Event::new()
            .data("d")
            .retry(Duration::from_millis(1500))
            .id("9")
            .unwrap()
            .event("tick")
            .unwrap()
            .comment("hi");
        assert_eq!(
            wire(&event),
            ": hi\nevent: tick\nid: 9\nretry: 1500\ndata: d\n\n"
        );
    }

    #[test]
    fn every_line_ending_splits_data() {
        for text in ["a\nb", "a\rb", "a\r\nb"] {
            assert_eq!(wire(&Event::new().data(text)), "data: a\ndata: b\n\n");
        }
    }

    #[test]
    fn empty_lines_in_data_survive() {
        assert_eq!(wire(&Event::new().data("")), "data: \n\n");
        assert_eq!(
            wire(&Event::new().data("a\n\nb\n")),
            "data: a\ndata: \ndata: b\ndata: \n\n"
        );
    }

    #[test]
    fn leading_space_in_a_value_is_kept() {
        assert_eq!(wire(&Event::new().data(" x")), "data:  x\n\n");
    }

    #[test]
    fn multi_line_comment_stays_a_comment() {
        assert_eq!(
            wire(&Event::new().comment("a\ndata: b")),
            ": a\n: data: b\n\n"
        );
    }

    #[test]
    fn bad_names_and_ids_are_refused() {
        assert_eq!(
            Event::new().event("a\rb"),
            Err(FieldError::LineBreakInEvent)
        );
        assert_eq!(Event::new().id("a\nb"), Err(FieldError::LineBreakInId));
        assert_eq!(Event::new().id("a\0b"), Err(FieldError::NulInId));
        let error = io::Error::from(FieldError::NulInId);
        assert_eq!(error.kind(), io::ErrorKind::InvalidInput);
        assert_eq!(error.to_string(), "sse id contains a NUL character");
    }

    #[test]
    fn empty_event_is_a_blank_line() {
        assert_eq!(wire(&Event::new()), "\n");
    }
}
