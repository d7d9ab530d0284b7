use std::fmt;
use std::io;
use std::net::SocketAddr;

/// Why the server could not start.
#[derive(Debug)]
pub enum Error {
    /// The listening address could not be bound (in use, not local, no permission).
    Bind { addr: SocketAddr, source: io::Error },
    /// tiny_http refused the listener, or a thread could not be started.
    Start(String),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Bind { addr, source } => write!(f, "cannot listen on {addr}: {source}"),
            Error::Start(reason) => write!(f, "cannot start the http server: {reason}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Bind { source, .. } => Some(source),
            Error::Start(_) => None,
        }
    }
}
