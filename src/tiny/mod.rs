//! The HTTP layer: the only code that names tiny_http, a socket or a file descriptor.
//!
//! The application gives it a [`Handler`]: an owned [`Request`] in, a plain-data [`Reply`] out.
//! A reply whose body is an event stream ([`Reply::events`]) is run by this layer on a thread
//! of its own: it writes the head, frames and flushes each event, releases tiny_http's pool
//! thread, logs and counts the stream, and ends the body when the server stops.
//!
//! tiny_http 0.12 parses HTTP well enough, but it has hazards for a server that must stay up
//! with thousands of connections and hostile clients. Each has one place here:
//!
//! | tiny_http 0.12 does this | so | where |
//! | --- | --- | --- |
//! | buffers a streamed `Response` body 8 KiB at a time and never flushes | streams take the raw writer and write the head and each frame themselves | `stream.rs` |
//! | keeps a pool thread blocked on a stream's connection, waiting for a second request | the stream shuts its socket's read half after the first event | `stream.rs`, `socket.rs` |
//! | stops accepting for good on its first accept error, or panics silently in its accept thread when out of descriptors | a watchdog probes the listener, and a new tiny_http server takes over with back-off | `accept.rs`, `serve.rs` |
//! | gives every connection a thread that waits for a request with no timeout | a sweep closes connections that start no request for the idle timeout | `sweep.rs` |
//! | discards an unread body on drop by reading it into one buffer of the declared size, on the dropping thread | bodies over 1 KiB are refused with 413 without being read; absurd sizes are parked | `screen.rs` |
//! | ignores a `Content-Length` it cannot parse, and puts no limit on headers | 400 and 431 before routing | `screen.rs` |
//! | aborts the process when a thread spawn fails inside it (each thread costs 4 memory mappings) | the open-file limit is set below the thread budget, so descriptors run out first; streams are capped below that | `capacity.rs` |
//! | writes a response only from the thread that holds the request | a broadcast writes each subscriber's frames from the publishing thread, non-blocking, through an outlet on a duplicate of the socket; the stream's thread only finishes what would block | `outlet.rs` |
//! | hands out no socket | connections are found by their addresses among the process's descriptors | `socket.rs` |
//! | answers a panicking handler with its own 500, without our headers | handlers run under a fence and a 500 is written here | `serve.rs` |
//!
//! Options set on the listening socket (send timeout and buffer, keep-alive) reach every
//! accepted socket, which is the only way to configure sockets tiny_http owns (`socket.rs`).

mod accept;
mod capacity;
mod connections;
mod events;
mod outlet;
mod reply;
mod request;
mod respond;
mod screen;
mod serve;
mod shared;
mod socket;
mod stream;
mod sweep;

pub use capacity::{Capacity, Limits};
pub use events::{Ended, Events};
pub use outlet::{Offered, Outlet, Woken};
#[cfg(test)]
pub use reply::Body;
pub use reply::Reply;
pub use request::{Method, Request};
pub use serve::{Handler, HttpServer, Stopper};
pub use shared::Settings;
