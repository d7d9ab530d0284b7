use std::fmt;
use std::io;
use std::net::SocketAddr;

/// Why the server could not start or had to stop.
#[derive(Debug)]
pub enum Error {
    /// The listening address could not be bound (in use, not local, no permission).
    Bind { addr: SocketAddr, source: io::Error },
    /// tiny_http refused the listener.
    Start(String),
    /// tiny_http stopped accepting connections.
    Accept(io::Error),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Bind { addr, source } => write!(f, "cannot listen on {addr}: {source}"),
            Error::Start(reason) => write!(f, "cannot start the http server: {reason}"),
            Error::Accept(source) => write!(f, "stopped accepting connections: {source}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Bind { source, .. } | Error::Accept(source) => Some(source),
            Error::Start(_) => None,
        }
    }
}
