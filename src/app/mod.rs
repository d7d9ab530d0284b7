//! The application: the article's pages, its buttons, its counter stream, the named feeds and
//! the chatroom (the feed `chat` with a form), the programs whose output is a feed (`exec`), and
//! who may publish and read (`access`). It never sees the HTTP server underneath: requests come
//! in as owned `tiny::Request`s and leave as plain-data `tiny::Reply`s, so every route is
//! unit-tested without a socket.

pub mod access;
mod assets;
pub mod chat;
mod counter;
pub mod exec;
mod routes;
mod utc_time;
mod views;

use std::sync::Arc;

use crate::metrics::Metrics;

pub use counter::Counter;

/// What the application needs to answer requests.
pub struct App {
    pub counter: Counter,
    pub feeds: Arc<chat::Feeds>,
    /// What `POST /feeds/NAME` must carry, if anything.
    pub token: Option<access::Token>,
    /// Which other sites' pages may read the event streams.
    pub cors: access::Cors,
    /// Rendered by `/metrics`; counted by the HTTP layer.
    pub metrics: Arc<Metrics>,
}
