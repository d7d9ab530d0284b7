//! What the request loop, the stream threads and the connection sweep share.

use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::time::Duration;

use super::accept::Acceptor;
use super::connections::Connections;
use super::socket::Sockets;
use crate::log::Log;
use crate::metrics::Metrics;
use crate::stop::Stop;

/// How the layer runs, beside what tiny_http decides.
#[derive(Clone, Debug)]
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
    /// The highest descriptor number the process can have, for finding a connection's socket.
    pub max_fd: RawFd,
    /// The largest declared request body that can be refused without keeping its connection
    /// (see `screen`).
    pub drainable_body: usize,
}

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
    /// `/dev/null`, to point descriptors of tiny_http's at when they must not close a connection
    /// (see `Events::outlet`).
    pub null: Option<std::fs::File>,
}
