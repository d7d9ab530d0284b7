//! The application: the article's pages, its buttons, its counter stream, the named feeds and
//! the chatroom (the feed `chat` with a form). It never sees the
//! HTTP server underneath: requests come in as owned `tiny::Request`s and leave as plain-data
//! `tiny::Reply`s, so every route is unit-tested without a socket.

mod assets;
pub mod chat;
mod counter;
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
    /// Rendered by `/metrics`; counted by the HTTP layer.
    pub metrics: Arc<Metrics>,
}
