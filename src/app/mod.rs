//! The application: the article's pages, its buttons, its counter stream and the chatroom. It never sees the
//! HTTP server underneath: requests come in as owned `tiny::Request`s and leave as plain-data
//! `tiny::Reply`s, so every route is unit-tested without a socket.

#[allow(dead_code)] // the token is asked by a route yet to come
pub mod access;
mod assets;
pub mod chat;
mod counter;
#[allow(dead_code)] // started by the server once the named feeds exist
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
    pub chat: Arc<chat::Chat>,
    /// What `POST /feeds/NAME` must carry, if anything.
    #[allow(dead_code)] // asked by the route `POST /feeds/NAME`, which is yet to come
    pub token: Option<access::Token>,
    /// Which other sites' pages may read the event streams.
    pub cors: access::Cors,
    /// Rendered by `/metrics`; counted by the HTTP layer.
    pub metrics: Arc<Metrics>,
}
