//! What every event stream is written through: frames, keep-alive comments, the byte and event
//! counts, and the end of the body, in one place.
//!
//! An outlet starts as its stream's own: its thread writes each frame through tiny_http's writer
//! for the connection, blocking for at most the send timeout. A stream that other threads send
//! to (a feed's) shares its outlet ([`Outlet::share`]): waking a thread costs more CPU than the
//! write it would make (15–19 µs per wake-up here), so a broadcast that woke one thread per
//! subscriber per message would saturate the machine long before the sockets do. A shared
//! outlet's publishing thread writes each frame itself, with a non-blocking send under the
//! outlet's lock. Only when the socket would block is the rest queued (bounded by
//! [`MAX_PENDING`]) and the stream's own thread unparked to finish it with a blocking send of at
//! most the send timeout; so a client that stops reading never holds up the publisher, and
//! costs at most about twice the bound in memory (what the stream's thread is writing, and what
//! is queued behind it meanwhile; a frame the socket took part of is queued whole, whatever its
//! size).
//!
//! The stream's thread stays the owner of the connection: it wrote the head, it drains what was
//! queued, sends keep-alive comments, and ends the body.
//!
//! A shared outlet sends on a duplicate of the connection's socket, and keeps tiny_http's writer
//! beside it, unused, for as long as the stream lasts: dropping that writer shuts the
//! connection's write half, so it goes only when the stream ends. The connection then holds two
//! descriptors, which the layer counts when it admits the stream (`stream.rs`).

use std::io::{self, ErrorKind, IoSlice, Write};
use std::net::Shutdown;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::{self, Thread};
use std::time::{Duration, Instant};

use socket2::Socket;

use super::capacity::HighSlot;
use super::events::Ended;
use crate::chunked::{Framing, MAX_HEAD};
use crate::lock;
use crate::metrics::Metrics;
use crate::stop::Stop;

/// Sent by the stream's own thread when nothing has gone out for the keep-alive time: proxies see
/// traffic, and a dead client is found at the write.
const KEEPALIVE: &[u8] = b": keep-alive\n\n";

/// Framed bytes an outlet queues for a slow client before it refuses more ([`Offered::Full`]),
/// besides those its stream's thread is writing.
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
    /// Once shared: a duplicate of the connection's socket. Blocking, with the send timeout every
    /// accepted socket has (`socket.rs`); an offer sends without waiting (`MSG_DONTWAIT`).
    socket: OnceLock<Socket>,
    /// The number above the open-file limit the socket holds, if it does: given back once the
    /// socket is closed (the field after it, so dropped after it).
    _high: OnceLock<Option<HighSlot>>,
    state: Mutex<State>,
    owner: Thread,
    framing: Framing,
    /// Events taken (sent or queued), for the stream's log line.
    events: AtomicU64,
    /// Bytes written, by any thread, for the stream's log line.
    written: AtomicUsize,
    metrics: Arc<Metrics>,
}

struct State {
    /// tiny_http's writer for the connection: what frames go through until the outlet is shared,
    /// and kept after that (see the module's doc).
    writer: Box<dyn Write + Send>,
    /// The buffer each frame is built in before it goes through the writer, reused so that a
    /// frame costs no allocation: thousands of stream threads allocating at each tick would
    /// contend for the allocator's locks. Freed once the outlet is shared, as frames then go
    /// out without it.
    frame: Vec<u8>,
    /// Framed bytes waiting for the socket.
    pending: Vec<u8>,
    /// The owner is writing what was pending, outside the lock; new frames queue behind it.
    draining: bool,
    /// An offer was refused since the owner last looked.
    full: bool,
    /// Why the connection failed, once it did.
    gone: Option<io::Error>,
    last_write: Instant,
}

impl Outlet {
    /// The outlet of a stream whose head `writer` (tiny_http's, flushed) has written, owned by
    /// the current thread.
    pub(super) fn new(
        writer: Box<dyn Write + Send>,
        framing: Framing,
        metrics: Arc<Metrics>,
    ) -> Outlet {
        Outlet {
            socket: OnceLock::new(),
            _high: OnceLock::new(),
            state: Mutex::new(State {
                writer,
                frame: Vec::with_capacity(128),
                pending: Vec::new(),
                draining: false,
                full: false,
                gone: None,
                last_write: Instant::now(),
            }),
            owner: thread::current(),
            framing,
            events: AtomicU64::new(0),
            written: AtomicUsize::new(0),
            metrics,
        }
    }

    /// From now on, frames go out on `socket`, a duplicate of the connection's, from whichever
    /// thread offers them. Called by the owner before any other thread has the outlet.
    pub(super) fn share(&self, socket: Socket, high: Option<HighSlot>) {
        let _ = self.socket.set(socket);
        let _ = self._high.set(high);
        // It may have grown to the largest message of the history sent before.
        lock(&self.state).frame = Vec::new();
    }

    /// Sends one encoded event (see [`crate::sse::Event::encode_into`]): from any thread and
    /// without blocking once the outlet is shared; before that, only its stream's own thread
    /// offers, and waits for the write.
    pub fn offer(&self, event: &[u8]) -> Offered {
        let offered = self.offer_comment(event);
        if matches!(offered, Offered::Sent | Offered::Queued) {
            self.events.fetch_add(1, Ordering::Relaxed);
            self.metrics.events_sent.fetch_add(1, Ordering::Relaxed);
        }
        offered
    }

    /// Like [`Outlet::offer`], for a comment (`: …\n\n`), which is not counted as an event
    /// ([`Outlet::offer`] sends its event through here, and counts it).
    pub fn offer_comment(&self, payload: &[u8]) -> Offered {
        let mut guard = lock(&self.state);
        let state = &mut *guard;
        if state.gone.is_some() {
            return Offered::Gone;
        }
        let Some(socket) = self.socket.get() else {
            // Unshared: the stream's own thread, which may wait.
            let written = self
                .framing
                .write_frame(&mut state.writer, &mut state.frame, payload);
            return match written {
                Ok(written) => {
                    self.written.fetch_add(written, Ordering::Relaxed);
                    state.last_write = Instant::now();
                    Offered::Sent
                }
                Err(error) => {
                    state.gone = Some(error);
                    Offered::Gone
                }
            };
        };
        // Shared: sent on the socket without waiting, or queued. The frame goes out in three
        // parts around the payload, which every subscriber is sent from the same buffer: a
        // copy per subscriber would touch memory of each one at every delivery, and keep a
        // buffer the size of the largest message it was ever sent.
        if payload.is_empty() {
            return Offered::Sent;
        }
        let mut head = [0; MAX_HEAD];
        let (head, tail) = self.framing.around(payload.len(), &mut head);
        let parts = [head, payload, tail];
        let frame_len = head.len() + payload.len() + tail.len();
        let queued_behind = !state.pending.is_empty() || state.draining;
        let mut sent = 0;
        if !queued_behind {
            let slices = parts.map(IoSlice::new);
            let flags = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL;
            sent = match socket.send_vectored_with_flags(&slices, flags) {
                Ok(written) => written,
                Err(error) if error.kind() == ErrorKind::WouldBlock => 0,
                Err(error) => {
                    state.gone = Some(error);
                    self.owner.unpark();
                    return Offered::Gone;
                }
            };
            self.written.fetch_add(sent, Ordering::Relaxed);
            if sent == frame_len {
                state.last_write = Instant::now();
                return Offered::Sent;
            }
        } else if state.pending.len() + frame_len > MAX_PENDING {
            state.full = true;
            self.owner.unpark();
            return Offered::Full;
        }
        // What the socket would not take now waits for the stream's own thread.
        for part in parts {
            let skipped = sent.min(part.len());
            state.pending.extend_from_slice(&part[skipped..]);
            sent -= skipped;
        }
        if !queued_behind {
            self.owner.unpark();
        }
        Offered::Queued
    }

    /// When a keep-alive comment is due: the keep-alive time after the last write.
    pub(super) fn keepalive_due(&self, keepalive: Duration) -> Instant {
        lock(&self.state).last_write + keepalive
    }

    /// Sends a keep-alive comment from its stream's own thread: `Err` once the client is gone.
    pub(super) fn send_keepalive(&self) -> Result<(), Ended> {
        self.taken(self.offer_comment(KEEPALIVE))
    }

    /// `Err`, with why, if what was offered found the stream gone.
    pub(super) fn taken(&self, offered: Offered) -> Result<(), Ended> {
        if offered != Offered::Gone {
            return Ok(());
        }
        let gone = &lock(&self.state).gone;
        Err(gone
            .as_ref()
            .map_or_else(|| client_gone("the stream ended"), failed))
    }

    pub(super) fn events(&self) -> u64 {
        self.events.load(Ordering::Relaxed)
    }

    /// Bytes written so far, the end of the body included once closed.
    pub(super) fn bytes_written(&self) -> usize {
        self.written.load(Ordering::Relaxed)
    }

    /// On the owner's thread: writes what others queued, and a keep-alive comment in silences,
    /// until an offer was refused for lack of room (`Ok`: everything queued has been written
    /// since), the client is gone or the server stops (`Err`).
    pub(super) fn serve(&self, stop: &Stop, keepalive: Duration) -> Result<(), Ended> {
        let Some(socket) = self.socket.get() else {
            return Err(client_gone("the outlet is not shared"));
        };
        loop {
            if stop.is_triggered() {
                return Err(Ended::ServerStopping);
            }
            let mut state = lock(&self.state);
            if let Some(error) = &state.gone {
                return Err(failed(error));
            }
            if !state.pending.is_empty() {
                let pending = std::mem::take(&mut state.pending);
                state.draining = true;
                drop(state);
                if let Err(error) = write_all(socket, &pending) {
                    // The first cause stands (the stream may have been ended meanwhile).
                    return Err(failed(lock(&self.state).gone.get_or_insert(error)));
                }
                self.written.fetch_add(pending.len(), Ordering::Relaxed);
                lock(&self.state).last_write = Instant::now();
                continue;
            }
            state.draining = false;
            if std::mem::take(&mut state.full) {
                return Ok(());
            }
            let keepalive_due = state.last_write + keepalive;
            drop(state);
            if Instant::now() >= keepalive_due {
                self.send_keepalive()?;
                continue;
            }
            thread::park_timeout(keepalive_due.saturating_duration_since(Instant::now()));
        }
    }

    /// On the owner's thread: ends the body (the terminating chunk if `finish`), refuses every
    /// later offer, and closes a shared outlet's connection (an unshared one's closes when
    /// tiny_http's writer goes).
    pub(super) fn close(&self, finish: bool) {
        let mut state = lock(&self.state);
        let failed = state.gone.is_some();
        state.gone.get_or_insert(ErrorKind::NotConnected.into());
        let mut tail = std::mem::take(&mut state.pending);
        if finish && !failed {
            let _ = self.framing.finish(&mut tail);
        }
        let Some(socket) = self.socket.get() else {
            let out = &mut state.writer;
            if out.write_all(&tail).and_then(|()| out.flush()).is_ok() {
                self.written.fetch_add(tail.len(), Ordering::Relaxed);
            }
            return;
        };
        drop(state);
        if write_all(socket, &tail).is_ok() {
            self.written.fetch_add(tail.len(), Ordering::Relaxed);
        }
        let _ = socket.shutdown(Shutdown::Both);
    }

    /// Whether the connection is gone, though perhaps no write has failed yet: its client left,
    /// and a reset ended it (one answering the server's next write, or the client's answer to
    /// the server's reply to a new connection's first packet from the same address): it has no
    /// peer any more. Only a shared outlet can tell, by its own socket; an unshared one says no.
    pub(super) fn connection_gone(&self) -> bool {
        self.socket
            .get()
            .is_some_and(|socket| socket.peer_addr().is_err())
    }

    /// Writes a keep-alive comment now, unless it wrote in the last second: a client that has
    /// gone answers it with a reset, after which [`Outlet::connection_gone`] says so.
    pub(super) fn probe(&self) {
        if self.keepalive_due(Duration::from_secs(1)) <= Instant::now() {
            self.offer_comment(KEEPALIVE);
        }
    }

    /// Ends the stream now, for the reason `why`: later offers are refused, and its thread,
    /// woken, finishes.
    pub(super) fn end(&self, why: &str) {
        let aborted = || io::Error::new(ErrorKind::ConnectionAborted, why.to_owned());
        lock(&self.state).gone.get_or_insert_with(aborted);
        self.owner.unpark();
    }
}

/// Why the stream ended, given the error its connection failed with.
fn failed(error: &io::Error) -> Ended {
    Ended::ClientGone(io::Error::new(error.kind(), error.to_string()))
}

fn client_gone(why: &str) -> Ended {
    Ended::ClientGone(io::Error::new(ErrorKind::BrokenPipe, why.to_owned()))
}

/// Writes all of `bytes` to `socket`, each send waiting at most the socket's send timeout for
/// room (a send that times out having sent nothing fails with `WouldBlock`), and never raising
/// SIGPIPE.
fn write_all(socket: &Socket, mut bytes: &[u8]) -> io::Result<()> {
    while !bytes.is_empty() {
        match socket.send_with_flags(bytes, libc::MSG_NOSIGNAL) {
            Ok(0) => return Err(ErrorKind::WriteZero.into()),
            Ok(written) => bytes = &bytes[written..],
            Err(error) if error.kind() == ErrorKind::Interrupted => {}
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A writer whose bytes the test can read back, or that fails every write.
    #[derive(Clone, Default)]
    struct Wire(Arc<Mutex<Vec<u8>>>, bool);

    impl Write for Wire {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            if self.1 {
                return Err(std::io::ErrorKind::BrokenPipe.into());
            }
            self.0.lock().unwrap().extend_from_slice(bytes);
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    fn outlet(wire: &Wire) -> Outlet {
        Outlet::new(
            Box::new(wire.clone()),
            Framing::Chunked,
            Arc::new(Metrics::default()),
        )
    }

    #[test]
    fn an_unshared_outlet_writes_every_frame_and_the_end_through_the_writer_and_counts_them() {
        let wire = Wire::default();
        let outlet = outlet(&wire);
        assert_eq!(outlet.offer(b"data: x\n\n"), Offered::Sent);
        outlet.send_keepalive().unwrap();
        outlet.close(true);
        let expected = b"9\r\ndata: x\n\n\r\ne\r\n: keep-alive\n\n\r\n0\r\n\r\n";
        assert_eq!(wire.0.lock().unwrap().as_slice(), expected);
        assert_eq!(outlet.bytes_written(), expected.len());
        assert_eq!(outlet.events(), 1, "a comment is not an event");
        assert_eq!(outlet.offer(b"data: y\n\n"), Offered::Gone, "closed");
    }

    #[test]
    fn a_shared_outlet_sends_each_frame_on_its_socket_from_any_thread() {
        use std::io::Read;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = std::net::TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        let wire = Wire::default();
        let outlet = Arc::new(outlet(&wire));
        outlet.share(Socket::from(server), None);
        let publisher = outlet.clone();
        let offered = thread::spawn(move || {
            [
                publisher.offer(b"data: x\n\n"),
                publisher.offer(b"data: yz\n\n"),
            ]
        });
        assert_eq!(offered.join().unwrap(), [Offered::Sent; 2]);
        outlet.close(true);
        let mut received = Vec::new();
        client.read_to_end(&mut received).unwrap();
        let expected = b"9\r\ndata: x\n\n\r\na\r\ndata: yz\n\n\r\n0\r\n\r\n";
        assert_eq!(received, expected);
        assert_eq!(outlet.bytes_written(), expected.len());
        assert!(
            wire.0.lock().unwrap().is_empty(),
            "nothing through tiny_http's writer"
        );
    }

    #[test]
    fn a_frame_the_socket_takes_in_part_is_finished_by_the_owner_and_no_copy_is_kept() {
        use socket2::{Domain, Type};
        use std::io::Read;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        // Small buffers on both sides, so that the socket soon takes no more.
        let client = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        client.set_recv_buffer_size(4096).unwrap();
        client
            .connect(&listener.local_addr().unwrap().into())
            .unwrap();
        let mut client = std::net::TcpStream::from(client);
        let (server, _) = listener.accept().unwrap();
        let server = Socket::from(server);
        server.set_send_buffer_size(4096).unwrap();
        let wire = Wire::default();
        let outlet = Arc::new(outlet(&wire));
        // History sent before sharing grows the frame buffer to its largest message.
        let history = [b'h'; 3000];
        assert_eq!(outlet.offer(&history), Offered::Sent);
        outlet.share(server, None);
        // Larger than the socket takes while the client reads nothing: sent in part, the rest
        // queued, then more frames queued behind it.
        let payloads: Vec<Vec<u8>> = (0..3u8)
            .map(|i| vec![b'a' + i; 20_000 + usize::from(i)])
            .collect();
        let offered: Vec<Offered> = payloads.iter().map(|p| outlet.offer(p)).collect();
        assert_eq!(offered, [Offered::Queued; 3]);
        {
            let state = lock(&outlet.state);
            assert_eq!(state.frame.capacity(), 0, "no frame buffer once shared");
            assert!(
                state.pending.len() < 3 * 20_010,
                "only what was not sent waits"
            );
        }
        let mut expected = Vec::new();
        for payload in &payloads {
            Framing::Chunked.frame_into(&mut expected, payload);
        }
        let stop = Arc::new(Stop::default());
        let reader = {
            let (stop, frames) = (stop.clone(), expected.len());
            thread::spawn(move || {
                let mut received = vec![0; frames];
                client.read_exact(&mut received).unwrap();
                stop.trigger();
                client.read_to_end(&mut received).unwrap();
                received
            })
        };
        // This thread owns the outlet: it writes what was queued until the stop.
        let _watch = stop.watch();
        let served = outlet.serve(&stop, Duration::from_secs(60));
        assert!(matches!(served, Err(Ended::ServerStopping)));
        outlet.close(true);
        expected.extend_from_slice(b"0\r\n\r\n");
        let received = reader.join().unwrap();
        assert!(received == expected, "the frames arrive whole and in order");
        assert_eq!(
            outlet.bytes_written(),
            3007 + expected.len(),
            "the history too"
        );
    }

    #[test]
    fn a_failed_write_ends_the_stream_with_its_error() {
        let outlet = outlet(&Wire(Arc::default(), true));
        match outlet.taken(outlet.offer(b"data: x\n\n")) {
            Err(Ended::ClientGone(error)) => {
                assert_eq!(error.kind(), std::io::ErrorKind::BrokenPipe)
            }
            _ => panic!("the client is gone"),
        }
        assert_eq!(outlet.events(), 0);
        assert_eq!(outlet.offer(b"data: y\n\n"), Offered::Gone);
    }
}
