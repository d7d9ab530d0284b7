//! What a handler answers: plain data, turned into bytes on the wire by the layer.

use std::borrow::Cow;

use maud::Markup;

use super::events::{Ended, Events};

/// Sent with every response, refusals and streams included. The policy allows only the server's
/// own scripts and styles; the page needs no inline code (see the `htmx-config` meta tag in the
/// views).
pub const SECURITY_HEADERS: [(&str, &str); 3] = [
    ("X-Content-Type-Options", "nosniff"),
    (
        "Content-Security-Policy",
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
         connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
         frame-ancestors 'none'",
    ),
    ("Referrer-Policy", "no-referrer"),
];

/// An answer to one request.
pub struct Reply {
    pub status: u16,
    /// Headers besides the security headers and the framing (`Content-Length`,
    /// `Transfer-Encoding`), which the layer adds.
    pub headers: Vec<(&'static str, Cow<'static, str>)>,
    pub body: Body,
    /// The route the request was for, as a metrics label: one of a fixed set, whatever the
    /// client sent.
    pub label: &'static str,
    /// Run by the layer once the response is written (or could not be), on the same thread:
    /// work that the request caused but its answer need not wait for. Byte replies only.
    pub after: Option<Box<dyn FnOnce() + Send>>,
}

pub enum Body {
    Bytes(Cow<'static, [u8]>),
    /// An event stream: the layer writes the head, then runs this on a thread of its own.
    Events(EventStream),
}

/// The body of an event stream: a function that sends events until the client goes or the
/// server stops (see [`Events`]).
pub struct EventStream {
    /// Said in the log line when the stream opens, e.g. `at id 0`.
    pub note: String,
    pub run: RunStream,
    /// Its body sends through an outlet ([`Reply::with_outlet`]).
    pub for_outlet: bool,
}

/// A stream's body: sends events through [`Events`] until it returns why it ended.
pub type RunStream = Box<dyn FnOnce(&mut Events<'_>) -> Result<(), Ended> + Send>;

impl Reply {
    pub fn new(
        status: u16,
        content_type: &'static str,
        body: impl Into<Cow<'static, [u8]>>,
    ) -> Reply {
        Reply::with_body(status, Body::Bytes(body.into())).with_header("Content-Type", content_type)
    }

    /// A reply with no headers yet, for no route in particular.
    fn with_body(status: u16, body: Body) -> Reply {
        Reply {
            status,
            headers: Vec::new(),
            body,
            label: "other",
            after: None,
        }
    }

    pub fn html(status: u16, markup: Markup) -> Reply {
        Reply::new(
            status,
            "text/html; charset=utf-8",
            markup.into_string().into_bytes(),
        )
    }

    pub fn text(status: u16, body: impl Into<Cow<'static, str>>) -> Reply {
        let body = match body.into() {
            Cow::Borrowed(text) => Cow::Borrowed(text.as_bytes()),
            Cow::Owned(text) => Cow::Owned(text.into_bytes()),
        };
        Reply::new(status, "text/plain; charset=utf-8", body)
    }

    /// A `200` event stream (`text/event-stream`, never cached).
    pub fn events(
        note: impl Into<String>,
        run: impl FnOnce(&mut Events<'_>) -> Result<(), Ended> + Send + 'static,
    ) -> Reply {
        let stream = EventStream {
            note: note.into(),
            run: Box::new(run),
            for_outlet: false,
        };
        Reply::with_body(200, Body::Events(stream))
    }

    /// Opens an event stream for an outlet ([`Events::outlet`](super::Events::outlet)), which
    /// other threads send to: its connection then holds two descriptors rather than one. The
    /// layer numbers the second above the open-file limit while it can, and otherwise admits the
    /// stream only if the descriptor budget has room for both.
    pub fn with_outlet(mut self) -> Reply {
        if let Body::Events(stream) = &mut self.body {
            stream.for_outlet = true;
        }
        self
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<Cow<'static, str>>) -> Reply {
        self.headers.push((name, value.into()));
        self
    }

    /// Runs `work` once the response is on its way, so the client is answered first.
    pub fn then(mut self, work: impl FnOnce() + Send + 'static) -> Reply {
        self.after = Some(Box::new(work));
        self
    }

    /// Names the route, for the metrics.
    pub fn for_route(mut self, label: &'static str) -> Reply {
        self.label = label;
        self
    }

    /// The body's bytes; empty for a stream.
    pub fn bytes(&self) -> &[u8] {
        match &self.body {
            Body::Bytes(bytes) => bytes,
            Body::Events(_) => &[],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Reply {
        pub(crate) fn header(&self, name: &str) -> Option<&str> {
            self.headers
                .iter()
                .find(|(field, _)| field.eq_ignore_ascii_case(name))
                .map(|(_, value)| value.as_ref())
        }
    }

    #[test]
    fn text_and_html_set_their_content_type() {
        let text = Reply::text(200, "ok\n");
        assert_eq!(
            text.header("content-type"),
            Some("text/plain; charset=utf-8")
        );
        assert_eq!(text.bytes(), b"ok\n");
        let html = Reply::html(404, maud::html! { p { "x" } });
        assert_eq!(html.status, 404);
        assert_eq!(
            html.header("Content-Type"),
            Some("text/html; charset=utf-8")
        );
        assert_eq!(html.bytes(), b"<p>x</p>");
    }

    #[test]
    fn a_stream_reply_has_no_bytes_and_a_label_once_named() {
        let reply = Reply::events("at id 0", |_| Ok(())).for_route("/connect");
        assert!(reply.bytes().is_empty());
        assert_eq!(reply.label, "/connect");
        assert!(matches!(reply.body, Body::Events(_)));
    }
}
