//! tiny_http's accept thread, watched, and replaced when it stops.
//!
//! tiny_http accepts connections on one thread that stops for good on its first accept error
//! (out of descriptors, say), or panics when it runs out of descriptors between an accept and
//! the `dup` that follows. In the first case the request loop hears of it; in the second nothing
//! is said, so [`Watchdog`] checks at every connection sweep that a connection to the listener
//! is accepted.
//! Either way a new tiny_http server takes over the same listener.
//!
//! A tiny_http server that goes is dropped on a thread of its own ([`Tiny`]): its drop connects
//! to the listener to wake its accept thread, and that connect waits, for minutes, while a flood
//! keeps the listen queue full.

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::ops::Deref;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, TryLockError};
use std::time::{Duration, Instant};

use super::address;
use super::socket::Sockets;
use crate::error::Error;
use crate::lock;
use crate::log::Log;
use crate::stop::Stop;

/// A tiny_http server, dropped on a thread of its own when it goes.
pub struct Tiny {
    server: Option<tiny_http::Server>,
    /// Servers that went and are not yet dropped.
    dropping: Arc<AtomicUsize>,
}

impl Deref for Tiny {
    type Target = tiny_http::Server;

    fn deref(&self) -> &tiny_http::Server {
        self.server.as_ref().expect("taken only on drop")
    }
}

impl Drop for Tiny {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            // Never dropped if no thread can be had: its accept thread then runs on.
            let server = std::mem::ManuallyDrop::new(server);
            let dropping = self.dropping.clone();
            dropping.fetch_add(1, Ordering::SeqCst);
            let spawned = crate::thread::spawn(
                "tiny-drop",
                None,
                Box::new(move || {
                    drop(std::mem::ManuallyDrop::into_inner(server));
                    dropping.fetch_sub(1, Ordering::SeqCst);
                }),
            );
            // Not going, so not waited for when the server stops (`serve.rs`).
            if spawned.is_err() {
                self.dropping.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }
}

/// How long [`Acceptor::end_accept_threads`] goes on sending connections to accept threads that
/// have not ended.
const END_WAIT: Duration = Duration::from_millis(500);

/// The tiny_http server now accepting, and the listener to start another on.
pub struct Acceptor {
    pub listener: TcpListener,
    /// `None` once closed: nothing accepts, and connections wait in the listen queue.
    current: Mutex<Option<Arc<Tiny>>>,
    replacing: Mutex<()>,
    /// tiny_http servers that went and are not yet dropped (each wakes its accept thread to
    /// end as it is).
    pub dropping: Arc<AtomicUsize>,
}

impl Acceptor {
    pub fn new(listener: TcpListener) -> Result<Acceptor, Error> {
        let dropping = Arc::new(AtomicUsize::new(0));
        let http = start_http(&listener, &dropping).map_err(|source| Error::Start {
            what: "tiny_http on the listener",
            source,
        })?;
        Ok(Acceptor {
            listener,
            current: Mutex::new(Some(Arc::new(http))),
            replacing: Mutex::new(()),
            dropping,
        })
    }

    /// The tiny_http server accepting now; `None` once closed.
    pub fn current(&self) -> Option<Arc<Tiny>> {
        lock(&self.current).clone()
    }

    /// Stops accepting for good: the tiny_http server goes when the request loop, woken, lets
    /// go of it, and its accept thread ends (tiny_http wakes it with a connection of its own,
    /// which waits in the queue like any other). The listener stays open.
    pub fn close(&self) {
        let closed = lock(&self.current).take();
        if let Some(http) = closed {
            http.unblock();
        }
    }

    /// Ends the accept thread of every tiny_http server on the listener, without closing the
    /// listener, and returns how many there were. Their descriptors and ours share one open
    /// file, so making it non-blocking makes every later `accept` on any of them fail when no
    /// connection is waiting, and tiny_http's accept thread ends on a failed `accept`, dropping
    /// its descriptor. One already blocked in `accept` stays blocking (its wait began before),
    /// and is woken by a connection of ours, unless another thread takes that one first: so
    /// connections are sent while any descriptor is left, for at most [`END_WAIT`]. What they
    /// accepted until then still reaches their request queues. The listener is made blocking
    /// again before an exec (`serve.rs`), and by the next image (`socket::adopt`).
    pub fn end_accept_threads(&self, sockets: &Sockets) -> usize {
        use std::os::fd::AsRawFd;
        let keep = self.listener.as_raw_fd();
        let (Ok(()), Ok(local)) = (
            self.listener.set_nonblocking(true),
            self.listener.local_addr(),
        ) else {
            return 0;
        };
        let accepting = sockets.count_listeners(keep);
        let deadline = Instant::now() + END_WAIT;
        let mut left = accepting;
        while left > 0 {
            super::pool::nudge(local, left);
            if Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
            left = sockets.count_listeners(keep);
        }
        accepting
    }

    /// Puts a new tiny_http server in place of `dead`, unless that was done already. While one
    /// cannot be started (the error may last as long as a flood of connections holds every
    /// descriptor) it tries again, less often each time, unless `once`: the sweep tries once,
    /// and not at all while another thread is trying, as it has connections to close meanwhile
    /// (which may be what frees a descriptor); its next probe tries again. Returns `false` if the
    /// server stopped or the acceptor was closed meanwhile.
    pub fn replace(&self, dead: &Arc<Tiny>, stop: &Stop, log: &Log, once: bool) -> bool {
        let _one_at_a_time = match self.replacing.try_lock() {
            Ok(guard) => guard,
            // A panic while replacing left nothing half done that this one would trip on.
            Err(TryLockError::Poisoned(poisoned)) => poisoned.into_inner(),
            Err(TryLockError::WouldBlock) if once => return true,
            Err(TryLockError::WouldBlock) => lock(&self.replacing),
        };
        match self.current() {
            Some(current) if Arc::ptr_eq(&current, dead) => {}
            Some(_) => return true,
            None => return false,
        }
        let mut pause = Duration::from_millis(50);
        loop {
            if stop.wait_until(Instant::now() + pause) || self.current().is_none() {
                return false;
            }
            match start_http(&self.listener, &self.dropping) {
                Ok(http) => {
                    let mut current = lock(&self.current);
                    if current.is_none() {
                        return false;
                    }
                    *current = Some(Arc::new(http));
                    drop(current);
                    // The request loop may be waiting on the dead one.
                    dead.unblock();
                    log.line(format_args!("accepting again"));
                    return true;
                }
                Err(error) => log.line(format_args!("cannot accept yet: {error}")),
            }
            if once {
                return true;
            }
            pause = (pause * 2).min(Duration::from_secs(1));
        }
    }
}

type StartError = Box<dyn std::error::Error + Send + Sync>;

/// A tiny_http server accepting on a duplicate of `listener`.
fn start_http(listener: &TcpListener, dropping: &Arc<AtomicUsize>) -> Result<Tiny, StartError> {
    let listener = listener.try_clone()?;
    Ok(Tiny {
        server: Some(tiny_http::Server::from_listener(listener, None)?),
        dropping: dropping.clone(),
    })
}

/// How long a probe connection may wait to be accepted before the accept thread counts as gone.
/// tiny_http accepts in microseconds; a second covers a busy machine.
const PROBE_PATIENCE: Duration = Duration::from_secs(1);

/// How often a new probe is made once the last one was accepted.
const PROBE_EVERY: Duration = Duration::from_secs(2);

/// Connects to the listener now and then, and says whether the connection was accepted.
#[derive(Default)]
pub struct Watchdog {
    probe: Option<(TcpStream, SocketAddr, Instant)>,
    /// When the last probe was found accepted.
    last_accepted: Option<Instant>,
}

impl Watchdog {
    /// Is the accept thread gone? `accepted` tells whether the connection from a peer address
    /// (as the listener bound to `local` shows it) has been accepted. Starts a new probe when
    /// the last one was accepted.
    pub fn accept_thread_gone(
        &mut self,
        local: SocketAddr,
        accepted: impl Fn(SocketAddr) -> bool,
    ) -> bool {
        match &self.probe {
            Some((_, probe, _)) if accepted(*probe) => {
                self.probe = None;
                self.last_accepted = Some(Instant::now());
                return false;
            }
            Some((_, _, since)) if since.elapsed() > PROBE_PATIENCE => {
                self.probe = None;
                return true;
            }
            Some(_) => return false,
            None if self
                .last_accepted
                .is_some_and(|at| at.elapsed() < PROBE_EVERY) =>
            {
                return false;
            }
            None => {}
        }
        // The kernel completes the connection from the listen queue; only an accept takes it
        // out. The listener holds a connection back until its first byte (`socket::defer_accept`),
        // so the probe sends the first byte of a request line; tiny_http's thread for it waits
        // for the rest, and goes at once when the probe is dropped.
        if let Some((mut stream, seen)) = address::connect_to(local, Duration::from_millis(100))
            && stream.write_all(b"G").is_ok()
        {
            self.probe = Some((stream, seen, Instant::now()));
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tiny::socket;
    use std::sync::mpsc;

    /// The listener holds back connections that send nothing (`socket::defer_accept`); the
    /// probe must still be accepted, or a live accept thread would be taken for dead.
    #[test]
    fn a_probe_is_accepted_by_a_listener_that_holds_back_silent_connections() {
        let listener =
            socket::listen("127.0.0.1:0".parse().unwrap(), 16, Duration::from_secs(5)).unwrap();
        socket::defer_accept(&listener, Duration::from_secs(30)).unwrap();
        let local = listener.local_addr().unwrap();
        let (accepted_tx, accepted_rx) = mpsc::channel();
        std::thread::spawn(move || {
            while let Ok((socket, peer)) = listener.accept() {
                if accepted_tx.send((socket, peer)).is_err() {
                    return;
                }
            }
        });
        let mut watchdog = Watchdog::default();
        let mut accepted = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        while watchdog.last_accepted.is_none() && Instant::now() < deadline {
            accepted.extend(accepted_rx.try_iter().map(|(_, peer)| peer));
            let gone = watchdog.accept_thread_gone(local, |probe| accepted.contains(&probe));
            assert!(!gone, "the accept thread was taken for dead");
            std::thread::sleep(Duration::from_millis(5));
        }
        assert!(watchdog.last_accepted.is_some(), "the probe was accepted");
    }

    /// The sweep's attempt does not wait while the request loop's is under way (which lasts as
    /// long as no descriptor can be had): it has connections to close meanwhile.
    #[test]
    fn the_sweep_does_not_wait_for_a_replacement_under_way() {
        let listener =
            socket::listen("127.0.0.1:0".parse().unwrap(), 16, Duration::from_secs(5)).unwrap();
        let acceptor = Acceptor::new(listener).unwrap();
        let current = acceptor.current().unwrap();
        let (stop, log) = (Stop::default(), Log { quiet: true });
        let under_way = acceptor.replacing.lock().unwrap();
        let (done, replaced) = mpsc::channel();
        std::thread::scope(|scope| {
            scope.spawn(|| done.send(acceptor.replace(&current, &stop, &log, true)));
            let tried = replaced.recv_timeout(Duration::from_secs(5));
            drop(under_way);
            assert_eq!(tried, Ok(true), "the sweep waited");
        });
        let now = acceptor.current().unwrap();
        assert!(Arc::ptr_eq(&now, &current), "left to the one under way");
        // Once nothing else is under way, it replaces the server.
        assert!(acceptor.replace(&current, &stop, &log, true));
        assert!(!Arc::ptr_eq(&acceptor.current().unwrap(), &current));
    }
}
