//! Refusing a request: answer it, close its connection, and never read a request from what it
//! left behind.
//!
//! tiny_http reads the next request on a connection as soon as the previous request's body is
//! out of its way, whatever the answer says (it even drops a `Connection: close` given to its
//! `Response`). So a refused connection is closed here, by its socket: the read half first (so
//! that nothing more is read, and a discarding read of an unread body ends at once), then, once
//! the answer is written, both halves. A request tiny_http had already read from the same
//! connection is dropped unanswered (`Connections::closed`).
//!
//! A body tiny_http has not read is discarded by tiny_http when the request is dropped, by
//! reading all of it on the dropping thread into one buffer of the declared size. With the read
//! half shut, that read ends at once; but a declared size beyond memory would abort the process
//! at the allocation, so such a request is never dropped: it is kept for the life of the process,
//! with the tiny_http thread that waits for it ("parked").

use std::mem;
use std::net::Shutdown;
use std::sync::atomic::Ordering;

use socket2::Socket;

use super::reply::Reply;
use super::respond;
use super::screen::Screened;
use super::shared::Shared;

/// tiny_http reads bodies up to this size itself, before the request reaches the server, unless
/// the client waits for `100 Continue`.
pub const READ_BY_TINY_HTTP: usize = 1024;

/// Answers `reply` and closes the connection; returns the status and the body bytes sent.
pub fn refuse(
    request: tiny_http::Request,
    reply: Reply,
    screened: Screened,
    shared: &Shared,
) -> (u16, usize) {
    let peer = request.remote_addr().copied();
    if let Some(peer) = peer {
        shared.connections.closed(peer);
    }
    let socket = peer.and_then(|peer| shared.sockets.find(peer));
    let screened = Screened {
        last: true,
        ..screened
    };
    let unread = unread_body(&request, screened);
    match socket {
        Some(socket) if unread <= shared.settings.drainable_body => {
            let _ = socket.shutdown(Shutdown::Read);
            let mut writer = request.into_writer();
            let answered = respond::write(&mut writer, &reply, screened);
            // Before the writer goes: tiny_http may have an answer of its own queued behind
            // ours (to whatever it read next), which must find the connection closed.
            let _ = socket.shutdown(Shutdown::Both);
            answered
        }
        // Nothing to discard, but no socket to close: tiny_http reads on, and whatever it reads
        // is dropped unanswered until the idle sweep closes the connection.
        None if unread == 0 => respond::respond(request, &reply, screened),
        socket => park(request, &reply, screened, socket, unread, shared),
    }
}

/// Drops a request from a connection the server has ended, unanswered.
pub fn discard(request: tiny_http::Request, screened: Screened, shared: &Shared) {
    let unread = unread_body(&request, screened);
    if unread > 0 {
        let socket = request
            .remote_addr()
            .and_then(|peer| shared.sockets.find(*peer));
        match socket {
            Some(socket) if unread <= shared.settings.drainable_body => {
                let _ = socket.shutdown(Shutdown::Read);
            }
            socket => {
                park(
                    request,
                    &Reply::text(400, ""),
                    screened,
                    socket,
                    unread,
                    shared,
                );
                return;
            }
        }
    }
    // Taking the writer and dropping it unused sends nothing (dropping the request itself would
    // make tiny_http answer 500).
    drop(request.into_writer());
}

/// Ends the connection of `peer` now: what it sends is never read again.
pub fn close(peer: std::net::SocketAddr, shared: &Shared) {
    shared.connections.closed(peer);
    if let Some(socket) = shared.sockets.find(peer) {
        let _ = socket.shutdown(Shutdown::Both);
    }
}

/// The bytes tiny_http would read to discard the request's body if it were dropped now: its
/// declared length when tiny_http did not read it itself, else 0.
fn unread_body(request: &tiny_http::Request, screened: Screened) -> usize {
    match request.body_length() {
        Some(length) if length > READ_BY_TINY_HTTP || screened.expects_continue => length,
        _ => 0,
    }
}

/// Answers on the socket itself, closes it, and keeps the request for good.
fn park(
    request: tiny_http::Request,
    reply: &Reply,
    screened: Screened,
    socket: Option<Socket>,
    unread: usize,
    shared: &Shared,
) -> (u16, usize) {
    let mut answered = (reply.status, 0);
    if let Some(mut socket) = socket {
        let screened = Screened {
            last: true,
            ..screened
        };
        answered = respond::write(&mut socket, reply, screened);
        let _ = socket.shutdown(Shutdown::Both);
    }
    shared
        .metrics
        .requests_parked
        .fetch_add(1, Ordering::Relaxed);
    shared.log.line(format_args!(
        "request declaring a {unread}-byte body refused; its tiny_http thread is parked for good"
    ));
    mem::forget(request);
    answered
}
