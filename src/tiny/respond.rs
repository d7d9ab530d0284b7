//! Writing a reply with a byte body: through tiny_http for the requests it will go on serving,
//! or as raw bytes to a socket it never will.

use std::io::Cursor;

use super::reply::{Body, Reply, SECURITY_HEADERS};
use super::request::Method;

/// Writes a reply with a byte body; returns the status and the body bytes sent.
pub fn respond(raw: tiny_http::Request, reply: Reply, method: &Method) -> (u16, usize) {
    let status = reply.status;
    let body = match reply.body {
        Body::Bytes(bytes) => bytes,
        Body::Events(_) => Default::default(),
    };
    let length = body.len();
    let mut response = tiny_http::Response::new(
        tiny_http::StatusCode(status),
        Vec::with_capacity(reply.headers.len() + SECURITY_HEADERS.len()),
        Cursor::new(body),
        Some(length),
        None,
    )
    // Always a Content-Length, never chunked: every body here is in memory.
    .with_chunked_threshold(usize::MAX);
    let extra = reply
        .headers
        .iter()
        .map(|(name, value)| (*name, value.as_ref()));
    for (name, value) in extra.chain(SECURITY_HEADERS) {
        response.add_header(header(name, value));
    }
    // A failed write means the client left before the answer; there is no one to tell.
    let _ = raw.respond(response);
    let sent = if *method == Method::Head { 0 } else { length };
    (status, sent)
}

pub fn header(name: &str, value: &str) -> tiny_http::Header {
    // Every name and value passed here is ASCII chosen by this crate, never client input.
    tiny_http::Header::from_bytes(name.as_bytes(), value.as_bytes()).expect("ASCII header")
}

/// A whole HTTP/1.1 response with a byte body, for writing straight to a socket that tiny_http
/// will never answer on.
pub fn encode(reply: &Reply) -> Vec<u8> {
    let body = reply.bytes();
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nContent-Length: {}\r\n",
        reply.status,
        reason(reply.status),
        body.len()
    );
    let extra = reply
        .headers
        .iter()
        .map(|(name, value)| (*name, value.as_ref()));
    for (name, value) in extra.chain(SECURITY_HEADERS) {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    let mut wire = head.into_bytes();
    wire.extend_from_slice(body);
    wire
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        413 => "Payload Too Large",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_encoded_reply_counts_its_body_and_carries_the_security_headers() {
        let wire = encode(&Reply::text(413, "no\n").with_header("Connection", "close"));
        let text = String::from_utf8(wire).unwrap();
        assert!(text.starts_with("HTTP/1.1 413 Payload Too Large\r\nContent-Length: 3\r\n"));
        assert!(text.contains("\r\nConnection: close\r\n"));
        assert!(text.contains("\r\nX-Content-Type-Options: nosniff\r\n"));
        assert!(text.ends_with("\r\n\r\nno\n"));
    }
}
