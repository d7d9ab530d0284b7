//! What the application behind the layer provides: [`Handler`].

use super::reply::Reply;
use super::request::Request;

/// Bodies every request may carry, whatever its route: tiny_http reads them itself.
pub const SMALL_BODY: usize = super::refuse::READ_BY_TINY_HTTP;

/// What the application behind the layer provides. One handler serves every request, from the
/// request loop and from the threads that read bodies.
pub trait Handler: Send + Sync + 'static {
    /// What the application makes of a request before its body is read (its route): worked out
    /// once by [`Handler::route`], and handed to every other method for that request.
    type Route: Send + 'static;
    fn route(&self, request: &Request) -> Self::Route;
    /// The answer to a request, with its body read. Runs on the request loop, or on the thread
    /// that read the body: it must not block, unless [`Handler::may_wait`] says so.
    fn handle(&self, request: &Request, route: &Self::Route) -> Reply;
    /// Whether the answer to the request may wait on something slow (another server): it is
    /// then made on a thread of its own, as for a body to read, never on the request loop.
    fn may_wait(&self, _request: &Request, _route: &Self::Route) -> bool {
        false
    }
    /// The metrics label of a route, for requests the layer refuses before they reach
    /// [`Handler::handle`].
    fn label(&self, route: &Self::Route) -> &'static str;
    /// Told of a request the layer refused before it reached [`Handler::handle`] (e.g. `413`
    /// for a body too large to read), for the application's own counts.
    fn refused(&self, _request: &Request, _route: &Self::Route, _status: u16) {}
    /// The answer to a stream request when every stream slot is taken (the layer adds
    /// `Retry-After`).
    fn busy(&self) -> Reply;
    /// The largest body the request takes, asked before the body is read (the layer never reads
    /// more than [`super::body::MAX_BODY`]); a larger one is refused with `413`. Most routes
    /// take a [`SMALL_BODY`].
    fn body_limit(&self, request: &Request, route: &Self::Route) -> usize;
}
