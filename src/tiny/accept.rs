//! tiny_http's accept thread, watched, and replaced when it stops.
//!
//! tiny_http accepts connections on one thread that stops for good on its first accept error
//! (out of descriptors, say), or panics when it runs out of descriptors between an accept and
//! the `dup` that follows. In the first case the request loop hears of it; in the second nothing
//! is said, so [`Watchdog`] checks at every connection sweep that a connection to the listener
//! is accepted.
//! Either way a new tiny_http server takes over the same listener.

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use super::address;
use crate::error::Error;
use crate::log::Log;
use crate::stop::Stop;

/// The tiny_http server now accepting, and the listener to start another on.
pub struct Acceptor {
    listener: TcpListener,
    current: RwLock<Arc<tiny_http::Server>>,
    replacing: Mutex<()>,
}

impl Acceptor {
    pub fn new(listener: TcpListener) -> Result<Acceptor, Error> {
        let http = start_http(&listener).map_err(|source| Error::Start {
            what: "tiny_http on the listener",
            source,
        })?;
        Ok(Acceptor {
            listener,
            current: RwLock::new(Arc::new(http)),
            replacing: Mutex::new(()),
        })
    }

    pub fn current(&self) -> Arc<tiny_http::Server> {
        self.current
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Wakes the request loop from its wait for a request.
    pub fn unblock(&self) {
        self.current().unblock();
    }

    /// Puts a new tiny_http server in place of `dead`, unless that was done already. While one
    /// cannot be started (the error may last as long as a flood of connections holds every
    /// descriptor) it tries again, less often each time. Returns `false` if the server stopped
    /// meanwhile.
    pub fn replace(&self, dead: &Arc<tiny_http::Server>, stop: &Stop, log: &Log) -> bool {
        let _one_at_a_time = self
            .replacing
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if !Arc::ptr_eq(&self.current(), dead) {
            return true;
        }
        let mut pause = Duration::from_millis(50);
        loop {
            if stop.wait_until(Instant::now() + pause) {
                return false;
            }
            match start_http(&self.listener) {
                Ok(http) => {
                    *self.current.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(http);
                    // The request loop may be waiting on the dead one.
                    dead.unblock();
                    log.line(format_args!("accepting again"));
                    return true;
                }
                Err(error) => log.line(format_args!("cannot accept yet: {error}")),
            }
            pause = (pause * 2).min(Duration::from_secs(1));
        }
    }
}

type StartError = Box<dyn std::error::Error + Send + Sync>;

/// A tiny_http server accepting on a duplicate of `listener`.
fn start_http(listener: &TcpListener) -> Result<tiny_http::Server, StartError> {
    let listener = listener.try_clone()?;
    tiny_http::Server::from_listener(listener, None)
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
}
