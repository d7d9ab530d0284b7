//! What the layer knows about the connections tiny_http accepted: which are event streams or
//! busy reading a body elsewhere, which the server has ended, and when each of the others last
//! started a request.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Bookkeeping of the connections tiny_http has accepted, by peer address.
#[derive(Default)]
pub struct Connections {
    last_request: Mutex<HashMap<SocketAddr, Instant>>,
    streams: Mutex<HashSet<SocketAddr>>,
    /// Connections whose body is being read on a thread of its own.
    busy: Mutex<HashSet<SocketAddr>>,
    /// Connections the server has ended (a refusal, or a response that said `Connection:
    /// close`), and when: requests tiny_http still reads from them are dropped unanswered.
    closed: Mutex<HashMap<SocketAddr, Instant>>,
    /// Requests started so far, for the sweep to see that connections have come.
    requests: AtomicU64,
}

impl Connections {
    pub fn request_started(&self, peer: SocketAddr) {
        lock(&self.last_request).insert(peer, Instant::now());
        self.requests.fetch_add(1, Ordering::Relaxed);
    }

    /// How many requests have started, ever.
    pub fn requests_started(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    pub fn stream_started(&self, peer: SocketAddr) {
        lock(&self.streams).insert(peer);
    }

    /// The stream of `peer` has ended and closed its connection (tiny_http's thread had let go
    /// of it). Its address is forgotten at once, not at the sweep's next look (up to 2 s away):
    /// a new connection from the same address (a busy proxy cycles through its ports quickly)
    /// must not have its requests dropped as the stream's.
    pub fn stream_ended(&self, peer: SocketAddr) {
        lock(&self.streams).remove(&peer);
        lock(&self.closed).remove(&peer);
    }

    pub fn body_started(&self, peer: SocketAddr) {
        lock(&self.busy).insert(peer);
    }

    pub fn body_ended(&self, peer: SocketAddr) {
        lock(&self.busy).remove(&peer);
    }

    /// The server has ended the connection from `peer`.
    pub fn closed(&self, peer: SocketAddr) {
        lock(&self.closed).insert(peer, Instant::now());
    }

    pub fn is_closed(&self, peer: SocketAddr) -> bool {
        lock(&self.closed).contains_key(&peer)
    }

    pub fn is_stream(&self, peer: SocketAddr) -> bool {
        lock(&self.streams).contains(&peer)
    }

    pub fn is_busy(&self, peer: SocketAddr) -> bool {
        lock(&self.busy).contains(&peer)
    }

    /// A stream, a body being read, or a connection the server has ended: in any case not one
    /// waiting for tiny_http to read its next request.
    pub fn in_use(&self, peer: SocketAddr) -> bool {
        lock(&self.streams).contains(&peer)
            || lock(&self.busy).contains(&peer)
            || lock(&self.closed).contains_key(&peer)
    }

    /// Forgets a connection that was closed.
    pub fn forget(&self, peer: SocketAddr) {
        lock(&self.last_request).remove(&peer);
    }

    /// The connections among `peers` (one entry per descriptor, listed at `now`) that are idle
    /// at `now`. A connection seen for the first time counts as active now. Connections that
    /// are gone are forgotten.
    pub fn idle(
        &self,
        peers: &[SocketAddr],
        idle_timeout: Duration,
        now: Instant,
    ) -> Vec<SocketAddr> {
        let streams = lock(&self.streams);
        let busy = lock(&self.busy);
        let mut last_request = lock(&self.last_request);
        let mut seen = HashSet::with_capacity(peers.len());
        let mut idle = Vec::new();
        for &peer in peers {
            if !seen.insert(peer) || streams.contains(&peer) || busy.contains(&peer) {
                continue;
            }
            let since = *last_request.entry(peer).or_insert(now);
            if now.duration_since(since) >= idle_timeout {
                idle.push(peer);
            }
        }
        // Keep the maps as small as the connection count. A connection ended after the list
        // was taken may be missing from it, and is kept until the next one.
        last_request.retain(|peer, _| seen.contains(peer));
        lock(&self.closed).retain(|peer, at| seen.contains(peer) || *at > now);
        idle
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn idle_after_the_timeout_unless_a_stream_or_busy() {
        let connections = Connections::default();
        let timeout = Duration::from_secs(10);
        let start = Instant::now();
        // First seen: active now.
        let all = [peer(1), peer(2), peer(3), peer(4)];
        assert!(connections.idle(&all, timeout, start).is_empty());
        connections.stream_started(peer(2));
        connections.request_started(peer(3));
        connections.body_started(peer(4));
        let later = start + timeout;
        let idle = connections.idle(
            &[peer(1), peer(1), peer(2), peer(3), peer(4)],
            timeout,
            later,
        );
        assert_eq!(idle, vec![peer(1)]);
        connections.body_ended(peer(4));
        assert_eq!(connections.idle(&[peer(4)], timeout, later), vec![peer(4)]);
    }

    #[test]
    fn gone_connections_are_forgotten() {
        let connections = Connections::default();
        let now = Instant::now();
        connections.idle(&[peer(1), peer(2)], Duration::from_secs(1), now);
        connections.idle(&[peer(2)], Duration::from_secs(1), now);
        assert_eq!(lock(&connections.last_request).len(), 1);
    }

    #[test]
    fn a_streams_address_is_free_again_once_the_stream_has_ended() {
        let connections = Connections::default();
        // As the request loop and the stream's thread do.
        connections.closed(peer(1));
        connections.stream_started(peer(1));
        assert!(
            connections.is_closed(peer(1)),
            "what follows the stream is dropped"
        );
        connections.stream_ended(peer(1));
        assert!(
            !connections.in_use(peer(1)),
            "a later connection from it is served"
        );
    }

    #[test]
    fn a_closed_connection_is_remembered_while_it_is_listed() {
        let connections = Connections::default();
        let listed = Instant::now();
        connections.closed(peer(1));
        connections.closed(peer(2));
        assert!(connections.in_use(peer(1)));
        // Ended after the list was taken: kept.
        connections.idle(&[], Duration::from_secs(1), listed);
        assert!(connections.is_closed(peer(1)));
        let later = Instant::now();
        connections.idle(&[peer(2)], Duration::from_secs(1), later);
        assert!(!connections.is_closed(peer(1)));
        assert!(connections.is_closed(peer(2)));
    }
}
