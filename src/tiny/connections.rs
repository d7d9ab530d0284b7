//! What the layer knows about the connections tiny_http accepted: which are event streams or
//! busy reading a body elsewhere, which the server has ended, and when each of the others last
//! started a request.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Bookkeeping of the connections tiny_http has accepted, by peer address.
#[derive(Default)]
pub struct Connections {
    last_request: Mutex<HashMap<SocketAddr, Instant>>,
    /// The streams from each address: two once a new connection from the address of one that
    /// is gone, unnoticed yet, has become a stream too.
    streams: Mutex<HashMap<SocketAddr, usize>>,
    /// Connections whose body is being read on a thread of its own.
    busy: Mutex<HashSet<SocketAddr>>,
    /// Connections the server has ended (a refusal, or a response that said `Connection:
    /// close`), when, and their socket once a thread that found it says so: requests tiny_http
    /// still reads from them are dropped unanswered (but those from a new connection from the
    /// same address, once the socket is gone).
    closed: Mutex<HashMap<SocketAddr, ClosedAt>>,
    /// Requests started so far, for the sweep to see that connections have come.
    requests: AtomicU64,
}

/// What is known of a connection the server has ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Closed {
    /// Its socket has not been found yet: a request from its address is taken to be from it.
    Unidentified,
    /// Its socket: a request from its address is from a new connection if that socket is gone
    /// (`Sockets::address_reused`).
    Socket(EndedSocket),
}

/// The socket of a connection the server has ended: where it was found, and which it is (see
/// `socket::identity`; the number may be closed and reused since).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EndedSocket {
    pub fd: RawFd,
    pub identity: u64,
}

#[derive(Clone, Copy)]
struct ClosedAt {
    at: Instant,
    closed: Closed,
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
        *lock(&self.streams).entry(peer).or_default() += 1;
    }

    /// A stream of `peer` has ended and closed its connection (tiny_http's thread had let go
    /// of it). Its address is forgotten at once, not at the sweep's next look (up to 2 s away),
    /// unless a stream from a new connection from it is on (counted from its answer: see
    /// `stream::start`).
    pub fn stream_ended(&self, peer: SocketAddr) {
        let mut streams = lock(&self.streams);
        if let Some(count) = streams.get_mut(&peer) {
            *count -= 1;
            if *count > 0 {
                return;
            }
            streams.remove(&peer);
        }
        drop(streams);
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
        let closed = ClosedAt {
            at: Instant::now(),
            closed: Closed::Unidentified,
        };
        lock(&self.closed).insert(peer, closed);
    }

    /// The connection from `peer` the server has ended has the socket `socket`.
    pub fn identify(&self, peer: SocketAddr, socket: EndedSocket) {
        if let Some(entry) = lock(&self.closed).get_mut(&peer) {
            entry.closed = Closed::Socket(socket);
        }
    }

    /// What is known of the connection from `peer` the server has ended, if it has.
    pub fn closed_connection(&self, peer: SocketAddr) -> Option<Closed> {
        lock(&self.closed).get(&peer).map(|entry| entry.closed)
    }

    /// The connection from `peer` the server had ended, with the socket `ended`, is gone, and a
    /// new one from the same address is served (unless the server has ended that one too).
    pub fn reopened(&self, peer: SocketAddr, ended: EndedSocket) {
        let mut closed = lock(&self.closed);
        if closed.get(&peer).map(|entry| entry.closed) == Some(Closed::Socket(ended)) {
            closed.remove(&peer);
        }
    }

    pub fn is_stream(&self, peer: SocketAddr) -> bool {
        lock(&self.streams).contains_key(&peer)
    }

    pub fn is_busy(&self, peer: SocketAddr) -> bool {
        lock(&self.busy).contains(&peer)
    }

    /// A stream, a body being read, or a connection the server has ended: in any case not one
    /// waiting for tiny_http to read its next request.
    pub fn in_use(&self, peer: SocketAddr) -> bool {
        lock(&self.streams).contains_key(&peer)
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
            if !seen.insert(peer) || streams.contains_key(&peer) || busy.contains(&peer) {
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
        lock(&self.closed).retain(|peer, entry| seen.contains(peer) || entry.at > now);
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

    fn socket(identity: u64) -> EndedSocket {
        EndedSocket { fd: 9, identity }
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
        assert_eq!(
            connections.closed_connection(peer(1)),
            Some(Closed::Unidentified),
            "what follows the stream is dropped"
        );
        connections.identify(peer(1), socket(7));
        assert_eq!(
            connections.closed_connection(peer(1)),
            Some(Closed::Socket(socket(7)))
        );
        connections.stream_ended(peer(1));
        assert!(
            !connections.in_use(peer(1)),
            "a later connection from it is served"
        );
    }

    #[test]
    fn a_stream_address_reused_from_the_same_address_outlives_the_old_one() {
        let connections = Connections::default();
        connections.closed(peer(1));
        connections.stream_started(peer(1));
        connections.identify(peer(1), socket(7));
        // The old connection is gone unnoticed; a new one from its address opens a stream.
        connections.reopened(peer(1), socket(7));
        assert_eq!(connections.closed_connection(peer(1)), None);
        connections.closed(peer(1));
        connections.stream_started(peer(1));
        // What was decided of the old socket does not touch the new connection's mark.
        connections.reopened(peer(1), socket(7));
        connections.identify(peer(1), socket(8));
        connections.stream_ended(peer(1));
        assert!(connections.is_stream(peer(1)), "the new stream is still on");
        assert_eq!(
            connections.closed_connection(peer(1)),
            Some(Closed::Socket(socket(8)))
        );
        connections.stream_ended(peer(1));
        assert!(!connections.in_use(peer(1)));
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
        assert!(connections.closed_connection(peer(1)).is_some());
        let later = Instant::now();
        connections.idle(&[peer(2)], Duration::from_secs(1), later);
        assert_eq!(connections.closed_connection(peer(1)), None);
        assert!(connections.closed_connection(peer(2)).is_some());
    }
}
