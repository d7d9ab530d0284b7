use std::fmt;
use std::io;
use std::net::SocketAddr;

/// Why the server could not start.
#[derive(Debug)]
pub enum Error {
    /// The listening address could not be bound (in use, not local, no permission).
    Bind { addr: SocketAddr, source: io::Error },
    /// The chat's journal could not be opened, or the path is not a journal and was left as it
    /// was (a torn or damaged tail is not an error: it is skipped and logged).
    Store {
        path: std::path::PathBuf,
        source: io::Error,
    },
    /// `--redis` cannot be used as given: a bad URL, or `--store` beside it.
    #[cfg(feature = "redis")]
    Redis(String),
    /// The publishers' token could not be read, or its first line is empty.
    Token {
        path: std::path::PathBuf,
        source: io::Error,
    },
    /// A flag's value that only the server can check, e.g. an `--exec` feed name.
    Flag(String),
    /// Something the server runs on could not be started: the HTTP server on the listener, or
    /// a thread.
    Start {
        what: &'static str,
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Bind { addr, source } => write!(f, "cannot listen on {addr}: {source}"),
            // The journal's errors name the path already.
            Error::Store { source, .. } => write!(f, "cannot open the store: {source}"),
            #[cfg(feature = "redis")]
            Error::Redis(why) => write!(f, "--redis: {why}"),
            Error::Token { path, source } => {
                write!(f, "cannot use the token file {}: {source}", path.display())
            }
            Error::Flag(why) => f.write_str(why),
            Error::Start { what, source } => write!(f, "cannot start {what}: {source}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Bind { source, .. }
            | Error::Store { source, .. }
            | Error::Token { source, .. } => Some(source),
            Error::Flag(_) => None,
            Error::Start { source, .. } => Some(source.as_ref()),
            #[cfg(feature = "redis")]
            Error::Redis(_) => None,
        }
    }
}
