//! What the connection sweep needs to know about connections: which are event streams, and
//! when each of the others last started a request.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Bookkeeping of the connections tiny_http has accepted.
#[derive(Default)]
pub struct Connections {
    last_request: Mutex<HashMap<SocketAddr, Instant>>,
    streams: Mutex<HashSet<SocketAddr>>,
}

impl Connections {
    pub fn request_started(&self, peer: SocketAddr) {
        lock(&self.last_request).insert(peer, Instant::now());
    }

    pub fn stream_started(&self, peer: SocketAddr) {
        lock(&self.streams).insert(peer);
    }

    pub fn stream_ended(&self, peer: SocketAddr) {
        lock(&self.streams).remove(&peer);
    }

    /// Forgets a connection that was closed.
    pub fn forget(&self, peer: SocketAddr) {
        lock(&self.last_request).remove(&peer);
    }

    /// The connections among `peers` (one entry per descriptor) that are idle at `now`. A
    /// connection seen for the first time counts as active now.
    pub fn idle(
        &self,
        peers: Vec<SocketAddr>,
        idle_timeout: Duration,
        now: Instant,
    ) -> Vec<SocketAddr> {
        let streams = lock(&self.streams);
        let mut last_request = lock(&self.last_request);
        let mut seen = HashSet::with_capacity(peers.len());
        let mut idle = Vec::new();
        for peer in peers {
            if !seen.insert(peer) || streams.contains(&peer) {
                continue;
            }
            let since = *last_request.entry(peer).or_insert(now);
            if now.duration_since(since) >= idle_timeout {
                idle.push(peer);
            }
        }
        // Forget connections that are gone, so the map stays as small as the connection count.
        last_request.retain(|peer, _| seen.contains(peer));
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
    fn idle_after_the_timeout_unless_a_stream() {
        let connections = Connections::default();
        let timeout = Duration::from_secs(10);
        let start = Instant::now();
        // First seen: active now.
        assert!(
            connections
                .idle(vec![peer(1), peer(2), peer(3)], timeout, start)
                .is_empty()
        );
        connections.stream_started(peer(2));
        connections.request_started(peer(3));
        let later = start + timeout;
        let idle = connections.idle(vec![peer(1), peer(1), peer(2), peer(3)], timeout, later);
        assert_eq!(idle, vec![peer(1)]);
    }

    #[test]
    fn gone_connections_are_forgotten() {
        let connections = Connections::default();
        let now = Instant::now();
        connections.idle(vec![peer(1), peer(2)], Duration::from_secs(1), now);
        connections.idle(vec![peer(2)], Duration::from_secs(1), now);
        assert_eq!(lock(&connections.last_request).len(), 1);
    }
}
