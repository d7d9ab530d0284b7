//! An event stream that any thread can write to without waking the stream's own thread.
//!
//! Waking a thread costs more CPU than the write it would make (15–19 µs per wake-up here), so a
//! broadcast that woke one thread per subscriber per message would saturate the machine long
//! before the sockets do. With an [`Outlet`], the publishing thread writes each frame itself, with
//! a non-blocking send under the outlet's lock. Only when the socket would block is the rest
//! queued (bounded by [`MAX_PENDING`]) and the stream's own thread unparked to finish it with a
//! blocking wait of at most the write timeout; so a client that stops reading never holds up the
//! publisher, and costs at most the bound in memory.
//!
//! The stream's thread stays the owner of the connection: it wrote the head, it drains what was
//! queued, sends keep-alive comments, and ends the body.
//!
//! The outlet sends on a duplicate of the connection's socket, and keeps tiny_http's writer
//! beside it, unused, for as long as the stream lasts: dropping that writer shuts the
//! connection's write half, so it goes only when the stream ends. The connection then holds two
//! descriptors, which the layer counts when it admits the stream (`stream.rs`).

use std::io::Write;
use std::net::Shutdown;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use socket2::Socket;

use super::ended::Ended;
use crate::chunked::Framing;
use crate::metrics::Metrics;
use crate::stop::Stop;

/// Sent when nothing has gone out for the keep-alive time, by an outlet's thread or a stream's
/// own (`events.rs`): proxies see traffic, and a dead client is found at the write.
pub(super) const KEEPALIVE: &[u8] = b": keep-alive\n\n";

/// Framed bytes an outlet keeps for a slow client before it refuses more ([`Offered::Full`]).
pub const MAX_PENDING: usize = 64 * 1024;

/// What became of an offered event.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Offered {
    /// Written to the socket.
    Sent,
    /// Part or all of it waits in the outlet; the stream's thread will write it.
    Queued,
    /// Not taken: the client is that far behind. The stream's thread is woken and its body told
    /// (see [`Outlet::serve`]).
    Full,
    /// The stream has ended.
    Gone,
}

pub struct Outlet {
    /// A duplicate of the connection's socket. Blocking, with the send timeout every accepted
    /// socket has (`socket.rs`); an offer sends without waiting (`MSG_DONTWAIT`).
    socket: Socket,
    /// tiny_http's writer for the connection, kept so that the connection's write half is shut
    /// only when the stream ends (see the module's doc). Never locked: the mutex makes it `Sync`.
    _writer: Mutex<Box<dyn Write + Send>>,
    state: Mutex<State>,
    owner: Thread,
    framing: Framing,
    /// Events taken (sent or queued), for the stream's log line.
    events: AtomicU64,
    /// Bytes written to the socket, by any thread, for the stream's log line.
    written: AtomicU64,
    metrics: Arc<Metrics>,
}

struct State {
    /// Framed bytes waiting for the socket.
    pending: Vec<u8>,
    /// The owner is writing what was pending, outside the lock; new frames queue behind it.
    draining: bool,
    /// An offer was refused since the owner last looked.
    full: bool,
    gone: bool,
    last_write: Instant,
}

impl Outlet {
    /// An outlet on `socket`, owned by the current thread; `writer` is tiny_http's for the same
    /// connection, flushed.
    pub(super) fn new(
        socket: Socket,
        writer: Box<dyn Write + Send>,
        framing: Framing,
        metrics: Arc<Metrics>,
    ) -> Outlet {
        Outlet {
            socket,
            _writer: Mutex::new(writer),
            state: Mutex::new(State {
                pending: Vec::new(),
                draining: false,
                full: false,
                gone: false,
                last_write: Instant::now(),
            }),
            owner: thread::current(),
            framing,
            events: AtomicU64::new(0),
            written: AtomicU64::new(0),
            metrics,
        }
    }

    /// Sends one encoded event (see [`crate::sse::Event::encode_into`]) from any thread, without
    /// blocking.
    pub fn offer(&self, event: &[u8]) -> Offered {
        let offered = self.offer_frame(&self.frame(event));
        if matches!(offered, Offered::Sent | Offered::Queued) {
            self.events.fetch_add(1, Ordering::Relaxed);
            self.metrics.events_sent.fetch_add(1, Ordering::Relaxed);
        }
        offered
    }

    /// Like [`Outlet::offer`], for a comment (`: …\n\n`), which is not counted as an event.
    pub fn offer_comment(&self, comment: &[u8]) -> Offered {
        self.offer_frame(&self.frame(comment))
    }

    fn frame(&self, payload: &[u8]) -> Vec<u8> {
        let mut frame = Vec::with_capacity(payload.len() + 12);
        // Writing into a Vec cannot fail.
        let _ = self
            .framing
            .write_frame(&mut frame, &mut Vec::new(), payload);
        frame
    }

    fn offer_frame(&self, frame: &[u8]) -> Offered {
        let mut state = self.lock();
        if state.gone {
            return Offered::Gone;
        }
        if !state.pending.is_empty() || state.draining {
            if state.pending.len() + frame.len() > MAX_PENDING {
                state.full = true;
                self.owner.unpark();
                return Offered::Full;
            }
            state.pending.extend_from_slice(frame);
            return Offered::Queued;
        }
        match send(&self.socket, frame, libc::MSG_DONTWAIT) {
            Ok(written) if written == frame.len() => {
                self.count_written(written);
                state.last_write = Instant::now();
                Offered::Sent
            }
            Ok(written) => {
                self.count_written(written);
                state.pending.extend_from_slice(&frame[written..]);
                self.owner.unpark();
                Offered::Queued
            }
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                state.pending.extend_from_slice(frame);
                self.owner.unpark();
                Offered::Queued
            }
            Err(_) => {
                state.gone = true;
                self.owner.unpark();
                Offered::Gone
            }
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub(super) fn events(&self) -> u64 {
        self.events.load(Ordering::Relaxed)
    }

    /// Bytes written so far, the end of the body included once closed.
    pub(super) fn bytes_written(&self) -> usize {
        usize::try_from(self.written.load(Ordering::Relaxed)).unwrap_or(usize::MAX)
    }

    fn count_written(&self, bytes: usize) {
        self.written.fetch_add(bytes as u64, Ordering::Relaxed);
    }

    /// On the owner's thread: writes what others queued, and a keep-alive comment in silences,
    /// until an offer was refused for lack of room (`Ok`: everything queued has been written
    /// since), the client is gone or the server stops (`Err`).
    pub(super) fn serve(&self, stop: &Stop, keepalive: Duration) -> Result<(), Ended> {
        loop {
            if stop.is_triggered() {
                return Err(Ended::ServerStopping);
            }
            let mut state = self.lock();
            if state.gone {
                return Err(client_gone("the connection failed"));
            }
            if !state.pending.is_empty() {
                let pending = std::mem::take(&mut state.pending);
                state.draining = true;
                drop(state);
                if let Err(error) = write_all(&self.socket, &pending) {
                    self.lock().gone = true;
                    return Err(Ended::ClientGone(error));
                }
                self.count_written(pending.len());
                self.lock().last_write = Instant::now();
                continue;
            }
            state.draining = false;
            if std::mem::take(&mut state.full) {
                return Ok(());
            }
            let keepalive_due = state.last_write + keepalive;
            if Instant::now() >= keepalive_due {
                drop(state);
                if self.offer_frame(&self.frame(KEEPALIVE)) == Offered::Gone {
                    return Err(client_gone("the connection failed"));
                }
                continue;
            }
            drop(state);
            thread::park_timeout(keepalive_due.saturating_duration_since(Instant::now()));
        }
    }

    /// On the owner's thread: ends the body (the terminating chunk if `finish`), refuses every
    /// later offer, and closes the connection.
    pub(super) fn close(&self, finish: bool) {
        let mut state = self.lock();
        state.gone = true;
        let mut tail = std::mem::take(&mut state.pending);
        if finish {
            let _ = self.framing.finish(&mut tail);
        }
        drop(state);
        if write_all(&self.socket, &tail).is_ok() {
            self.count_written(tail.len());
        }
        let _ = self.socket.shutdown(Shutdown::Both);
    }
}

fn client_gone(why: &str) -> Ended {
    Ended::ClientGone(std::io::Error::new(
        std::io::ErrorKind::BrokenPipe,
        why.to_owned(),
    ))
}

/// Writes all of `bytes` to `socket`, each send waiting at most the socket's send timeout for
/// room (a send that times out having sent nothing fails with `WouldBlock`).
fn write_all(socket: &Socket, mut bytes: &[u8]) -> std::io::Result<()> {
    while !bytes.is_empty() {
        match send(socket, bytes, 0) {
            Ok(0) => return Err(std::io::ErrorKind::WriteZero.into()),
            Ok(written) => bytes = &bytes[written..],
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// One `send` with `flags`, that never raises SIGPIPE.
fn send(socket: &Socket, bytes: &[u8], flags: libc::c_int) -> std::io::Result<usize> {
    socket.send_with_flags(bytes, flags | libc::MSG_NOSIGNAL)
}
