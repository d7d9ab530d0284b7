//! What the request loop, the stream threads and the connection sweep share.

use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::accept::Acceptor;
use super::connections::Connections;
use super::handoff::Reason;
use super::heal::Series;
use super::refuse::Closer;
use super::socket::Sockets;
use super::writers::Writers;
use crate::lock;
use crate::log::Log;
use crate::metrics::Metrics;
use crate::stop::Stop;

/// How the layer runs, beside what tiny_http decides.
#[derive(Clone)]
pub struct Settings {
    pub addr: SocketAddr,
    /// A connection that is not a stream and starts no request for this long is closed.
    pub idle_timeout: Duration,
    /// Longest a write to one client may block before it is given up on.
    pub write_timeout: Duration,
    /// Longest silence on a stream before a keep-alive comment.
    pub keepalive: Duration,
    /// Streams held at once; past it a stream request gets [`Handler::busy`].
    pub max_streams: usize,
    /// Descriptors streams may hold between them ([`Capacity`](super::Capacity)'s, whatever
    /// `max_streams` is); a stream that would need more gets [`Handler::busy`] too.
    pub stream_descriptors: usize,
    /// The highest descriptor number a connection can have (one below the open-file limit), for
    /// finding a connection's socket.
    pub max_fd: RawFd,
    /// The largest declared request body that can be refused without keeping its connection
    /// (see `screen`).
    pub drainable_body: usize,
    /// The process may replace its image to heal (`heal.rs`), asking this first; not when the
    /// server runs inside another program, such as a test.
    pub reexec: Option<WouldFail>,
}

/// Why a new image started now would not survive its start (a file it reads then is gone),
/// if it would not: a heal is not made then, as it would end every stream and then fail.
#[derive(Clone)]
pub struct WouldFail(pub Arc<dyn Fn() -> Option<String> + Send + Sync>);

/// The layer's state, one per server.
pub struct Shared {
    pub settings: Settings,
    pub local_addr: SocketAddr,
    pub log: Log,
    pub stop: Stop,
    pub metrics: Arc<Metrics>,
    pub connections: Connections,
    pub sockets: Sockets,
    pub acceptor: Acceptor,
    /// Refused connections, answered and closed off the request loop.
    pub closer: Closer,
    /// The threads that write answers, for the request loop and the closer (`writers.rs`).
    pub writers: Writers,
    /// Descriptors held by the streams now (see [`Settings::stream_descriptors`]).
    pub stream_descriptors: std::sync::atomic::AtomicUsize,
    /// Why the server stops to replace its image, if it does.
    pub reexec: Mutex<Option<Reason>>,
    /// The re-execs for healing before this server (see `heal.rs`).
    pub series: Option<Series>,
    /// Made at start, for the state the next image reads (see `handoff.rs`).
    pub state_file: Option<std::fs::File>,
}

impl Shared {
    /// Stops the server so that it replaces its image, for `reason`; the first reason given
    /// stands. If the server was stopping already, says why it was.
    ///
    /// Accepting stops first; the request loop then ends the streams (`serve.rs`), so that the
    /// pages, which reconnect at once, wait in the listen queue for the new image.
    pub fn stop_for_reexec(&self, reason: Reason) -> Result<(), &'static str> {
        let mut slot = lock(&self.reexec);
        match *slot {
            Some(Reason::Upgrade) => return Err("the server is being upgraded already"),
            // Its own file, not the program file: an upgrade asked for now would not happen.
            Some(Reason::Heal { .. }) => {
                return Err(
                    "the server is re-executing its own file already, to heal; send SIGHUP \
                            again once it serves",
                );
            }
            None if self.stop.is_triggered() => return Err("the server is stopping already"),
            None => {}
        }
        *slot = Some(reason);
        self.acceptor.close();
        Ok(())
    }
}
