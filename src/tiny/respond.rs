//! Writing a reply with a byte body: the layer writes every such response itself, through
//! tiny_http's raw writer for the request.
//!
//! tiny_http's own `Response` decides the framing from the request: it answers chunked to any
//! request that sends `TE: chunked`, drops a `Connection` header, and writes a `Server` header.
//! Here every byte body is in memory, so every response says its `Content-Length` (none for
//! `204` and `304`, RFC 9110 §8.6), `HEAD` gets the head `GET` would get, and the security
//! headers are on every one.

use std::borrow::Cow;
use std::fmt::Write as _;
use std::io::{self, Write};
use std::time::SystemTime;

use super::reply::{Body, Reply, SECURITY_HEADERS};
use super::screen::Screened;

/// Writes `reply` to `writer` and flushes it. (A `dyn` writer: one copy of this code serves
/// tiny_http's writer and a socket, in a binary kept under 1 MiB.)
pub fn write(writer: &mut dyn Write, reply: &Reply, screened: Screened) -> (u16, usize) {
    let _ = wire(reply, screened).write_to(writer);
    (reply.status, body_bytes(reply, screened))
}

/// Every byte of a response: those made for it (the head, and a body made for this reply), then
/// a body that lasts as long as the program (an embedded file's), which is not copied: answers
/// that wait for a client that reads none of them (see `writers.rs`) hold little more than
/// their heads.
pub struct Wire {
    pub made: Vec<u8>,
    pub kept: &'static [u8],
}

impl Wire {
    pub fn write_to(&self, writer: &mut dyn Write) -> io::Result<()> {
        writer.write_all(&self.made)?;
        writer.write_all(self.kept)?;
        writer.flush()
    }
}

/// The response's bytes, made now.
pub fn wire(reply: &Reply, screened: Screened) -> Wire {
    encode(reply, screened, SystemTime::now())
}

/// The body bytes `reply` puts on the wire.
pub fn body_bytes(reply: &Reply, screened: Screened) -> usize {
    if screened.head_only || !has_body(reply.status) {
        0
    } else {
        reply.bytes().len()
    }
}

/// A status whose response never has a body (RFC 9110 §6.4.1).
fn has_body(status: u16) -> bool {
    !matches!(status, 100..=199 | 204 | 304)
}

/// The whole response: status line, headers and (unless `HEAD`) the body.
fn encode(reply: &Reply, screened: Screened, now: SystemTime) -> Wire {
    let status = reply.status;
    let mut head = format!(
        "HTTP/1.1 {status} {}\r\nDate: {}\r\n",
        reason(status),
        // A clock before 1970 is not a date `httpdate` writes.
        httpdate::fmt_http_date(now.max(SystemTime::UNIX_EPOCH))
    );
    // The framing is the layer's to say, whatever the reply holds.
    let framing = ["Content-Length", "Transfer-Encoding", "Connection"];
    let extra = reply
        .headers
        .iter()
        .map(|(name, value)| (*name, value.as_ref()))
        .filter(|(name, _)| !framing.iter().any(|f| f.eq_ignore_ascii_case(name)));
    for (name, value) in extra.chain(SECURITY_HEADERS) {
        let _ = write!(head, "{name}: {value}\r\n");
    }
    let body = reply.bytes();
    if has_body(status) {
        let _ = write!(head, "Content-Length: {}\r\n", body.len());
    }
    if screened.last {
        head.push_str("Connection: close\r\n");
    } else if screened.keep_alive_1_0 {
        head.push_str("Connection: keep-alive\r\n");
    }
    head.push_str("\r\n");
    let mut made = head.into_bytes();
    let shown = body_bytes(reply, screened);
    if let Body::Bytes(Cow::Borrowed(kept)) = reply.body {
        return Wire {
            made,
            kept: &kept[..shown],
        };
    }
    made.extend_from_slice(&body[..shown]);
    Wire { made, kept: &[] }
}

/// The reason phrase: tiny_http's table, with RFC 9110's names where they changed.
fn reason(status: u16) -> &'static str {
    match status {
        413 => "Content Too Large",
        422 => "Unprocessable Content",
        _ => tiny_http::StatusCode(status).default_reason_phrase(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EPOCH: SystemTime = SystemTime::UNIX_EPOCH;

    fn text(reply: &Reply, screened: Screened) -> String {
        let Wire { mut made, kept } = encode(reply, screened, EPOCH);
        made.extend_from_slice(kept);
        String::from_utf8(made).unwrap()
    }

    #[test]
    fn an_embedded_file_is_written_from_where_it_is_not_copied() {
        static FILE: &[u8] = b"body of a file";
        let reply = Reply::new(200, "text/plain", FILE);
        let wire = encode(&reply, Screened::default(), EPOCH);
        assert_eq!(wire.kept.as_ptr(), FILE.as_ptr());
        assert!(wire.made.ends_with(b"\r\n\r\n"), "the head only");
        let head_only = Screened {
            head_only: true,
            ..Screened::default()
        };
        assert!(encode(&reply, head_only, EPOCH).kept.is_empty());
        let made = Reply::new(200, "text/plain", FILE.to_vec());
        assert!(encode(&made, Screened::default(), EPOCH).kept.is_empty());
    }

    #[test]
    fn a_reply_has_its_length_the_security_headers_and_its_body() {
        let wire = text(&Reply::text(200, "ok\n"), Screened::default());
        assert!(wire.starts_with(
            "HTTP/1.1 200 OK\r\nDate: Thu, 01 Jan 1970 00:00:00 GMT\r\n\
             Content-Type: text/plain; charset=utf-8\r\n"
        ));
        assert!(wire.contains("\r\nX-Content-Type-Options: nosniff\r\n"));
        assert!(
            wire.ends_with("\r\nContent-Length: 3\r\n\r\nok\n"),
            "{wire}"
        );
    }

    #[test]
    fn head_says_the_length_and_sends_no_body() {
        let wire = Screened {
            head_only: true,
            ..Screened::default()
        };
        let head = text(&Reply::text(200, "ok\n"), wire);
        assert!(head.ends_with("\r\nContent-Length: 3\r\n\r\n"), "{head}");
    }

    #[test]
    fn no_length_and_no_body_for_204_and_304() {
        for status in [204, 304] {
            let wire = text(&Reply::text(status, "x"), Screened::default());
            assert!(!wire.contains("Content-Length"), "{wire}");
            assert!(wire.ends_with("\r\n\r\n"), "{wire}");
        }
    }

    #[test]
    fn the_connection_header_says_what_happens_next() {
        let last = Screened {
            last: true,
            ..Screened::default()
        };
        assert!(text(&Reply::text(400, "no\n"), last).contains("\r\nConnection: close\r\n"));
        let kept = Screened {
            keep_alive_1_0: true,
            ..Screened::default()
        };
        assert!(text(&Reply::text(200, ""), kept).contains("\r\nConnection: keep-alive\r\n"));
        assert!(!text(&Reply::text(200, ""), Screened::default()).contains("Connection"));
    }

    #[test]
    fn framing_headers_of_a_reply_are_dropped() {
        let reply = Reply::text(200, "ok\n")
            .with_header("Content-Length", "99")
            .with_header("transfer-encoding", "chunked")
            .with_header("Connection", "keep-alive");
        let wire = text(&reply, Screened::default());
        assert!(!wire.contains("99") && !wire.contains("chunked"), "{wire}");
        assert!(!wire.contains("keep-alive"), "{wire}");
    }

    #[test]
    fn reason_phrases_are_rfc_9110s() {
        assert_eq!(reason(200), "OK");
        assert_eq!(reason(413), "Content Too Large");
        assert_eq!(reason(503), "Service Unavailable");
    }
}
