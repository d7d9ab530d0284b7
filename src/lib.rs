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
//! The HTTP layer (`tiny`) owns the HTTP server library and works around its hazards; the
//! application (`app`: routes, views, the counter stream) sees only owned requests and
//! plain-data replies. [`maud`] builds every page and fragment; [`sse`] writes the event format
//! and [`chunked`] frames it, neither knowing anything of HTTP servers. `server` wires the two.

// Unsafe code is in `tiny` and `process` only, each block with its reason. In `tiny::socket`:
// borrowing a descriptor number to ask it for its socket addresses, whether it listens and its
// unread bytes, or to duplicate it; asking it for its TCP state; setting a TCP option that
// socket2 does not offer. In `tiny::threads`: `prctl` for the kernel's global futex table. In
// `process`: starting a program with pipes for its output (one `posix_spawn` for every program),
// `execve`, blocking the signals the server takes and opening a signalfd for them, and taking
// the descriptors handed over by the image before. Everything else goes through std, socket2
// and rustix.
#![deny(unsafe_code)]

pub mod chunked;
pub mod sse;

mod app;
mod config;
mod error;
mod log;
mod metrics;
mod printer;
mod process;
mod reexec;
mod server;
mod stop;
mod thread;
mod tiny;

pub use config::Config;
pub use error::Error;
pub use log::Log;
pub use process::{kill_programs, signals};
pub use server::{Launch, Server, Stopper};
pub use tiny::Capacity;

/// `mutex`, locked. A lock whose holder panicked is still used: every piece of state the server
/// guards with one stays valid between statements, and a panic costs one request or stream.
fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}
