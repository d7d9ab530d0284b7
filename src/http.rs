//! Response building shared by every route: the headers every response carries, HTML and asset
//! responses for tiny_http, and the raw head of a streamed response.

use std::io::{self, Cursor, Write};

use maud::Markup;
use tiny_http::{Header, Response, StatusCode};

use crate::chunked::Framing;

/// Sent with every response. The policy allows only the server's own scripts and styles; the
/// page needs no inline code (see the `htmx-config` meta tag in the views).
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

pub type Body = Cursor<Vec<u8>>;

pub fn header(name: &str, value: &str) -> Header {
    // Every name and value passed here is ASCII chosen by this crate, never client input.
    Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("ASCII header")
}

/// A response with the common headers and the given body.
pub fn response(status: u16, content_type: &str, body: Vec<u8>) -> Response<Body> {
    let mut response = Response::from_data(body).with_status_code(StatusCode(status));
    response.add_header(header("Content-Type", content_type));
    for (name, value) in SECURITY_HEADERS {
        response.add_header(header(name, value));
    }
    response
}

pub fn html(status: u16, markup: Markup) -> Response<Body> {
    response(
        status,
        "text/html; charset=utf-8",
        markup.into_string().into_bytes(),
    )
}

pub fn text(status: u16, body: &str) -> Response<Body> {
    response(
        status,
        "text/plain; charset=utf-8",
        body.as_bytes().to_vec(),
    )
}

/// Writes the status line and headers of a streamed `text/event-stream` response. tiny_http's own
/// `Response` cannot be used for a stream: it buffers the body 8 KiB at a time and never flushes.
pub fn write_stream_head(w: &mut impl Write, framing: Framing) -> io::Result<usize> {
    let mut head = String::with_capacity(512);
    head.push_str(match framing {
        Framing::Chunked => "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n",
        Framing::CloseDelimited => "HTTP/1.0 200 OK\r\n",
    });
    head.push_str(
        "Content-Type: text/event-stream\r\n\
         Cache-Control: no-cache\r\n\
         X-Accel-Buffering: no\r\n\
         Connection: close\r\n",
    );
    for (name, value) in SECURITY_HEADERS {
        head.push_str(name);
        head.push_str(": ");
        head.push_str(value);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    w.write_all(head.as_bytes())?;
    w.flush()?;
    Ok(head.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_head_for_http_1_1_is_chunked() {
        let mut wire = Vec::new();
        let written = write_stream_head(&mut wire, Framing::Chunked).unwrap();
        let head = String::from_utf8(wire).unwrap();
        assert_eq!(written, head.len());
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(head.contains("\r\nTransfer-Encoding: chunked\r\n"));
        assert!(head.contains("\r\nContent-Type: text/event-stream\r\n"));
        assert!(head.ends_with("\r\n\r\n"));
    }

    #[test]
    fn stream_head_for_http_1_0_has_no_chunking() {
        let mut wire = Vec::new();
        write_stream_head(&mut wire, Framing::CloseDelimited).unwrap();
        let head = String::from_utf8(wire).unwrap();
        assert!(head.starts_with("HTTP/1.0 200 OK\r\n"));
        assert!(!head.contains("Transfer-Encoding"));
    }
}
