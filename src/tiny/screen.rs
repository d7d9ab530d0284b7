//! Requests refused before they reach the handler: headers larger than any browser sends, a
//! `Content-Length` tiny_http cannot parse, and bodies larger than a route takes.
//!
//! tiny_http has read a request's headers before the server sees them (it has no limit of its
//! own), but not its body when that is over 1 KiB. Such a body needs care: tiny_http discards it
//! when the request is dropped by reading it all, on the thread that drops it (the request loop)
//! and into one buffer of the declared size. A slow client would stall the server, and a
//! declared size beyond memory aborts the process.

use std::io::Write;
use std::mem;
use std::net::Shutdown;
use std::sync::atomic::Ordering;

use super::reply::Reply;
use super::request::Method;
use super::respond::{encode, respond};
use super::shared::Shared;

pub const MAX_HEADERS: usize = 100;
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// tiny_http reads bodies up to this size itself, before the request reaches the server.
const READ_BY_TINY_HTTP: usize = 1024;

/// Passes a request on, or answers it and returns the status.
pub fn screen(request: tiny_http::Request, shared: &Shared) -> Result<tiny_http::Request, u16> {
    let headers = request.headers();
    let header_bytes: usize = headers
        .iter()
        .map(|h| h.field.as_str().as_str().len() + h.value.as_str().len() + 4)
        .sum();
    if headers.len() > MAX_HEADERS || header_bytes > MAX_HEADER_BYTES {
        return Err(refuse(request, 431, "request headers too large\n"));
    }
    let declared_length = headers.iter().find(|h| h.field.equiv("Content-Length"));
    if request.body_length().is_none()
        && let Some(header) = declared_length
        && header.value.as_str().trim().parse::<u64>().is_err()
    {
        // tiny_http ignores a Content-Length it cannot parse and would read the body as the
        // next request.
        return Err(refuse(request, 400, "bad Content-Length\n"));
    }
    match request.body_length() {
        Some(length) if length > READ_BY_TINY_HTTP => Err(refuse_body(request, length, shared)),
        _ => Ok(request),
    }
}

/// Answers with `status` and closes the connection.
fn refuse(request: tiny_http::Request, status: u16, why: &'static str) -> u16 {
    let method = Method::from_name(request.method().as_str());
    respond(request, closing(status, why), &method).0
}

fn closing(status: u16, why: &'static str) -> Reply {
    Reply::text(status, why).with_header("Connection", "close")
}

/// Answers 413 to a request whose body tiny_http has not read, without reading it.
fn refuse_body(request: tiny_http::Request, length: usize, shared: &Shared) -> u16 {
    let found = request
        .remote_addr()
        .and_then(|peer| shared.sockets.find(*peer));
    let refusal = closing(413, "request body not accepted\n");
    match found {
        Some(socket) if length <= shared.settings.drainable_body => {
            // With the read half shut, tiny_http's discarding read ends at once; its buffer of
            // `length` bytes is allocated but never touched.
            let _ = socket.shutdown(Shutdown::Read);
            let method = Method::from_name(request.method().as_str());
            respond(request, refusal, &method);
        }
        found => {
            // Dropping this request would ask for a buffer larger than memory, which aborts the
            // process. It is kept instead, for the life of the process, with the tiny_http
            // thread that waits for it; the client is answered and disconnected.
            if let Some(mut socket) = found {
                let _ = socket.write_all(&encode(&refusal));
                let _ = socket.shutdown(Shutdown::Both);
            }
            shared
                .metrics
                .requests_parked
                .fetch_add(1, Ordering::Relaxed);
            shared.log.line(format_args!(
                "request declaring a {length}-byte body refused; its tiny_http thread is parked for good"
            ));
            mem::forget(request);
        }
    }
    413
}
