//! A small synchronous server that streams live HTML to an htmx page over Server-Sent Events.
//!
//! ```no_run
//! use sse_htmx::{Config, Server};
//!
//! let server = Server::bind(Config::default())?;
//! println!("open http://{}/", server.local_addr());
//! server.run()?;
//! # Ok::<(), sse_htmx::Error>(())
//! ```
//!
//! # Why synchronous
//! Each event stream is one OS thread that sleeps until its next tick and writes one flushed
//! chunk. That is all an SSE stream needs, and it keeps the program small enough to read in an
//! afternoon: no async runtime, no executor, and a dependency tree of a few crates. The price is a
//! thread per open stream; see the README for what that costs and where it stops.
//!
//! [`tiny_http`] parses requests; [`maud`] builds every page and fragment; [`sse`] writes the
//! event format and [`chunked`] frames it, neither knowing anything of HTTP servers.

// One function holds unsafe code, with its reason: `socket::borrow`.
#![deny(unsafe_code)]

pub mod chunked;
pub mod sse;

mod accept;
mod assets;
mod capacity;
// The chatroom's core; no route uses it yet.
#[allow(dead_code)]
mod chat;
mod error;
mod http;
mod log;
mod metrics;
mod reaper;
mod routes;
mod screen;
mod server;
mod socket;
mod stop;
mod stream;
mod views;

use std::net::SocketAddr;
use std::time::Duration;

pub use capacity::Capacity;
pub use error::Error;
pub use server::{Server, Stopper};

/// How the server runs. [`Config::default`] is what the binary uses without flags.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where to listen. Port 0 picks a free port.
    pub addr: SocketAddr,
    /// Time between two events of a stream.
    pub interval: Duration,
    /// The reconnection delay suggested to clients (`retry:`, sent once per stream).
    pub retry: Duration,
    /// Longest silence on a stream before a comment line is sent to keep it alive.
    pub keepalive: Duration,
    /// Streams accepted before `/connect` answers `503`; `None` derives it from the host's
    /// limits.
    pub max_streams: Option<usize>,
    /// A connection that is not a stream and starts no request for this long is closed.
    pub idle_timeout: Duration,
    /// Longest a write to one client may block (the client stopped reading) before it is given
    /// up on.
    pub write_timeout: Duration,
    /// For tests of panic containment: the stream thread panics before writing the event with
    /// this id. Not a flag of the binary.
    #[doc(hidden)]
    pub panic_at_event: Option<u64>,
    /// No request or stream log lines on stderr.
    pub quiet: bool,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            addr: SocketAddr::from(([127, 0, 0, 1], 8000)),
            interval: Duration::from_secs(1),
            retry: Duration::from_secs(3),
            keepalive: Duration::from_secs(15),
            max_streams: None,
            idle_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(10),
            panic_at_event: None,
            quiet: false,
        }
    }
}
