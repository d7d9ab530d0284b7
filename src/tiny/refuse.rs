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
//!
//! The socket is found by asking descriptors one by one (`socket.rs`): a few when it is near the
//! last one found, all of them when the client is gone (12 ms with 10,000 sockets open), which the
//! request loop must not wait for. A refused request has no thread of its own to do it on
//! (tiny_http's thread for the connection waits for the answer), so the sweep's thread, which
//! closes idle connections by their sockets already, does it between its looks, in the order the
//! requests were refused ([`Closer`]); the request loop only marks the connection closed and
//! moves on. A refusal waiting holds its connection, so no more wait than the connections tiny_http
//! holds. An answer behind others still being written to its connection goes to the writing
//! threads (`writers.rs`), after them: tiny_http has it wait until they are written, which a
//! client that reads none of them makes last the write timeout for each.

use std::io::{self, IoSlice, Write};
use std::mem;
use std::net::{Shutdown, SocketAddr};
use std::sync::Mutex;
use std::sync::atomic::Ordering;
use std::thread::Thread;

use socket2::Socket;

use super::reply::Reply;
use super::respond::{self, Wire};
use super::screen::Screened;
use super::shared::Shared;
use crate::lock;

/// tiny_http reads bodies up to this size itself, before the request reaches the server, unless
/// the client waits for `100 Continue`.
pub const READ_BY_TINY_HTTP: usize = 1024;

/// A connection the server has ended, waiting to be shut by its socket.
enum Closing {
    /// A connection whose request was answered already.
    Connection(SocketAddr),
    /// The request that holds the connection, what its head says, and the answer to it, if it
    /// gets one (a discarded request does not, and only the read half is shut: the connection
    /// may be a stream's).
    Request(Box<tiny_http::Request>, Screened, Option<Wire>),
}

/// tiny_http's writer for a refused request, with the connection's socket, which it shuts once
/// the answer is written: before tiny_http's writer goes, as tiny_http may have an answer of its
/// own queued behind ours (to whatever it read next), which must find the connection closed.
struct ThenClosed(Box<dyn Write + Send>, Option<Socket>);

impl Write for ThenClosed {
    fn write(&mut self, bytes: &[u8]) -> io::Result<usize> {
        self.0.write(bytes)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }
}

impl Drop for ThenClosed {
    fn drop(&mut self) {
        let _ = self
            .1
            .as_ref()
            .map(|socket| socket.shutdown(Shutdown::Both));
    }
}

/// The connections waiting to be closed, and the thread that closes them: the sweep's while it
/// runs (see `sweep.rs`); once it has ended, whichever thread ends a connection, the request
/// loop having ended too.
#[derive(Default)]
pub struct Closer(Mutex<(Vec<Closing>, Option<Thread>)>);

impl Closer {
    /// Has `thread` close the connections from now on, or none.
    pub fn closed_by(&self, thread: Option<Thread>) {
        lock(&self.0).1 = thread;
    }

    /// Closes the connections waiting, on this thread.
    pub fn close_waiting(&self, shared: &Shared) {
        // Taken first: a guard in the loop's head would be held to its end, and the request
        // loop would wait for every search and write here to hand over its next refusal.
        let waiting = mem::take(&mut lock(&self.0).0);
        for closing in waiting {
            close_now(closing, shared);
        }
    }
}

/// Has the connection closed by the closer's thread, or by this one if there is none.
fn hand_over(closing: Closing, shared: &Shared) {
    let mut queue = lock(&shared.closer.0);
    if let Some(closer) = &queue.1 {
        closer.unpark();
        queue.0.push(closing);
    } else {
        drop(queue);
        close_now(closing, shared);
    }
}

/// Answers `reply` and closes the connection (on the sweep's thread, see [`Closer`]); returns
/// the status and the body bytes it sends.
pub fn refuse(
    request: tiny_http::Request,
    reply: Reply,
    screened: Screened,
    shared: &Shared,
) -> (u16, usize) {
    let answer = (reply.status, respond::body_bytes(&reply, screened));
    // Whatever is answered, the connection closes after it.
    let last = Screened {
        last: true,
        ..screened
    };
    end_with(request, respond::wire(&reply, last), screened, shared);
    answer
}

/// Answers `wire` and closes the connection, as [`refuse`] does.
pub fn end_with(request: tiny_http::Request, wire: Wire, screened: Screened, shared: &Shared) {
    if let Some(&peer) = request.remote_addr() {
        shared.connections.closed(peer);
    }
    hand_over(
        Closing::Request(Box::new(request), screened, Some(wire)),
        shared,
    );
}

/// Drops a request from a connection the server has ended, unanswered.
pub fn discard(request: tiny_http::Request, screened: Screened, shared: &Shared) {
    if unread_body(&request, screened) == 0 {
        // Taking the writer and dropping it unused sends nothing (dropping the request itself
        // would make tiny_http answer 500).
        drop(request.into_writer());
        return;
    }
    hand_over(Closing::Request(Box::new(request), screened, None), shared);
}

/// Ends the connection of `peer` (on the sweep's thread): what it sends is never read again.
pub fn close(peer: SocketAddr, shared: &Shared) {
    shared.connections.closed(peer);
    hand_over(Closing::Connection(peer), shared);
}

/// Shuts the read half, answers, then shuts both halves; parks a request whose body cannot be
/// discarded. On the thread of [`Closer`].
fn close_now(closing: Closing, shared: &Shared) {
    let peer = match &closing {
        Closing::Connection(peer) => Some(*peer),
        Closing::Request(request, ..) => request.remote_addr().copied(),
    };
    let socket = peer.and_then(|peer| shared.sockets.find(peer));
    let shut = |how| socket.as_ref().map(|socket| socket.shutdown(how));
    let Closing::Request(request, screened, wire) = closing else {
        shut(Shutdown::Both);
        return;
    };
    shut(Shutdown::Read);
    // Without the socket, the connection is gone: a live one names its peer, and is found. Its
    // client reset it or closed it, so the discarding read ends at once there too.
    let unread = unread_body(&request, screened);
    if unread > shared.settings.drainable_body {
        // Answered on the socket itself, which is closed, and the request kept for good. With
        // one send that does not wait: the socket may be full of answers its client never read.
        if let (Some(socket), Some(wire)) = (socket, wire) {
            let parts = [IoSlice::new(&wire.made), IoSlice::new(wire.kept)];
            let flags = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;
            let _ = socket.send_vectored_with_flags(&parts, flags);
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
        return;
    }
    let writer = request.into_writer();
    // Taken and dropped unused, tiny_http's writer sends nothing.
    let Some(wire) = wire else { return };
    let mut writer = ThenClosed(writer, socket);
    match peer {
        // Behind answers still being written to the connection, which tiny_http has it wait for
        // (for the write timeout each, if the client reads none): on a writer thread, after them.
        // Refused when too many wait already: the connection is shut without it.
        Some(peer) if shared.writers.writing_to(peer) => {
            let _ = shared.writers.write(peer, (Box::new(writer), wire));
        }
        // Nothing ahead of it (none can come: the connection is ended), and an answer this small
        // fits the socket's buffer: here.
        _ => drop(wire.write_to(&mut writer)),
    }
}

/// The bytes of the request's body still on the connection: its declared length when tiny_http
/// did not read it itself (over 1 KiB, behind `100-continue`, or under an upgrade), else 0.
/// Dropping the request would read them to discard them (but an upgrade's).
pub fn unread_body(request: &tiny_http::Request, screened: Screened) -> usize {
    // tiny_http reads no body ahead, however small, behind `100-continue` or under an upgrade.
    let never_read_ahead = screened.expects_continue || screened.upgrade;
    request
        .body_length()
        .filter(|&length| length > READ_BY_TINY_HTTP || never_read_ahead)
        .unwrap_or(0)
}
