//! The application: the article's pages, its buttons, its counter stream and the chatroom. It never sees the
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
    pub chat: Arc<chat::Chat>,
    /// Rendered by `/metrics`; counted by the HTTP layer.
    pub metrics: Arc<Metrics>,
}
