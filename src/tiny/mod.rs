//! The HTTP layer: the only code that names tiny_http or a socket, and the only code that names
//! a file descriptor but for the pipes to the programs the server starts (`crate::process`).
//!
//! The application gives it a [`Handler`]: an owned [`Request`] in (its body read, up to the
//! route's [`Handler::body_limit`]), a plain-data [`Reply`] out (which may carry work to run
//! once it is written, [`Reply::then`]).
//! A reply whose body is an event stream ([`Reply::events`]) is run by this layer on a thread
//! of its own: it writes the head, frames and flushes each event, releases tiny_http's pool
//! thread, logs and counts the stream, and ends the body when the server stops.
//!
//! tiny_http 0.12 parses HTTP well enough, but it has hazards for a server that must stay up
//! with thousands of connections and hostile clients. Each has one place here:
//!
//! | tiny_http 0.12 does this | so | where |
//! | --- | --- | --- |
//! | buffers a streamed `Response` body 8 KiB at a time and never flushes | streams take the raw writer, write the head, and send each frame, flushed, through the stream's outlet | `stream.rs`, `outlet.rs` |
//! | keeps a pool thread blocked on a stream's connection, waiting for a second request | the stream shuts its socket's read half after the first event | `stream.rs`, `socket.rs` |
//! | stops accepting for good on its first accept error, or panics silently in its accept thread when out of descriptors | a watchdog probes the listener, and a new tiny_http server takes over with back-off | `accept.rs`, `serve.rs` |
//! | gives every connection a thread, started on its one accept thread, that waits for a request with no timeout | the listener holds a connection back until its first byte, for up to half the idle timeout (one that sends nothing costs no thread, nor the time to start one); a sweep closes connections that start no request for the idle timeout | `socket.rs`, `sweep.rs` |
//! | hands a new connection to a pool thread that was woken but has not yet taken its task, so it waits until some connection ends | the sweep finds connections whose bytes stay unread and nudges the pool with a connection that closes at once | `pool.rs`, `sweep.rs` |
//! | discards an unread body on drop by reading it into one buffer of the declared size, on the dropping thread | a declared body over the route's limit is refused with 413 without being read, the read half shut first; absurd sizes are parked | `refuse.rs`, `answer.rs` |
//! | answers a request line above HTTP/1.1 (the HTTP/2 preface) with a `505` that waits for the request's own writer, so that thread and its descriptors are held for good, as are parked requests' | they are counted once they look held for a moment; past 32 the process replaces its image in place (`execve`, the listener kept open), which drops them all | `held.rs`, `heal.rs`, `handoff.rs` |
//! | leaves a body over 1 KiB, a chunked body or one behind `100-continue` on the socket, for whoever reads it to wait for | such bodies are read on a thread of their own (at most 64, 16 for one client), with a deadline, capped at the route's limit | `body.rs`, `answer.rs` |
//! | under `Connection: upgrade`, hands over the connection itself as the body, however small: not read ahead, not bounded by its declared length, chunks undecoded (read to its end, it waits for the client to close) | such a body is read to its declared length on a body reader's thread like a large one; a chunked one is refused with 501 | `screen.rs`, `refuse.rs` |
//! | takes `+5` for a `Content-Length`, reads `5, 5` or `x` as no body, uses the first of several, ignores `Content-Length` beside `Transfer-Encoding` and decodes any `Transfer-Encoding` as chunked | the framing rules refuse all of these (400, or 501 for a coding not implemented) | `screen.rs` |
//! | checks neither `Host` nor the syntax of names, values and methods, and puts no limit on headers | 400 and 431 before routing, once it has read the head; a connection sent over 1 MiB between two looks of the sweep with no request started (a head line that never ends, which tiny_http holds in memory) is closed | `screen.rs`, `sweep.rs` |
//! | reads the next request from whatever follows a request, whatever the answer said (it drops a `Connection: close` given to its `Response`) | a refusal closes the connection by its socket; requests tiny_http still reads from a connection the server has ended are dropped unanswered; but once a feed stream's client has gone, unnoticed until the next write, and its address comes back on a new connection (a port used again), the stream ends and that connection is served | `refuse.rs`, `connections.rs`, `answer.rs` |
//! | has a request's answer wait until the answers before it on its connection are written, whatever thread writes it | the request loop's byte answers are written by writer threads, one connection's one after another (at most 16 waiting, past which its connection is closed), and so is a refusal or the head of a stream for `HEAD` behind answers still being written to its connection (with none ahead, the sweep writes it: it fits the socket's buffer; to a request kept for good, in one send that does not wait): neither the request loop nor the sweep waits for a client | `writers.rs`, `refuse.rs` |
//! | frames a response from the request (chunked on `TE: chunked`), writes its own `Server` header | every byte response is written by the layer: `Content-Length`, `HEAD` as `GET` without the body, the security headers | `respond.rs` |
//! | aborts the process when a thread spawn fails inside it (each thread costs 4 memory mappings) | the open-file limit is set below the thread budget, so descriptors run out first; streams are capped below that | `capacity.rs` |
//! | writes a response only from the thread that holds the request | a broadcast writes each subscriber's frames from the publishing thread, non-blocking, through an outlet on a duplicate of the socket; the stream's thread only finishes what would block, and keeps tiny_http's writer for the stream's life, as dropping it would end the connection (a stream sent to so holds two descriptors: the duplicate is numbered above the open-file limit while such numbers are left, and counts against it only when none is) | `outlet.rs` |
//! | hands out no socket | connections are found by their addresses among the process's descriptors (below the descriptor table's size and the open-file limit, or the highest number open below the limit once a feed stream's duplicate has grown the table past it; never on the request loop: the sweep closes refused connections), matched to the listener's address in one place (a wildcard's never equals a connection's) | `socket.rs`, `address.rs`, `refuse.rs` |
//! | answers a panicking handler with its own 500, without our headers | handlers run under a fence and a 500 is written here | `answer.rs` |
//! | panics on a pool thread when a client resets its connection right after its request (it unwraps the peer's address, which the socket no longer has) | the panic hook logs it as one line (nothing with `--quiet`), and nudges the pool to start a thread in its place: else a connection the pool had queued for the dead thread waits unanswered, and one that reset holds two descriptors as one held for good does, so that a flood of them made the server heal | `pool.rs`, `log.rs` |
//!
//! Options set on the listening socket (send timeout and buffer, keep-alive) reach every
//! accepted socket, which is the only way to configure sockets tiny_http owns (`socket.rs`).
//!
//! The same re-exec serves `SIGHUP`: the program file runs again in place, as a new version if
//! it was replaced ([`HttpStopper::upgrade`]).

mod accept;
mod address;
mod answer;
mod body;
mod capacity;
mod connections;
mod events;
mod handler;
mod handoff;
mod heal;
mod held;
mod job;
mod outlet;
mod pool;
mod refuse;
mod reply;
mod request;
mod respond;
mod screen;
mod serve;
mod shared;
mod socket;
mod stream;
mod sweep;
#[cfg(test)]
mod tests;
mod threads;
mod writers;

pub use address::{client, shown_peer};
pub use body::MAX_BODY;
pub use capacity::{Capacity, HostLimits};
pub use events::{Ended, Events};
pub use handler::{Handler, SMALL_BODY};
pub use handoff::{Inherited, Reason};
pub use outlet::{Offered, Outlet};
#[cfg(test)]
pub use reply::Body;
pub use reply::Reply;
pub use request::{Method, Request};
pub use serve::{Handed, HttpServer, HttpStopper};
pub use shared::{Settings, WouldFail};
