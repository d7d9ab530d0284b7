//! Closes connections that hold one of tiny_http's threads without using it.
//!
//! tiny_http gives every connection a thread that blocks reading the next request, with no
//! timeout of its own (and none can be set on the listener, see [`crate::socket`]). A client that
//! connects and sends nothing, or sends its headers a byte a minute, or keeps an idle keep-alive
//! connection, would hold that thread forever. Every two seconds (more often for short idle
//! timeouts) this sweep closes every accepted connection that is not an event stream and has not
//! started a request for the idle timeout.
//! The same thread runs the accept [`Watchdog`], which needs the same list of connections.

use std::collections::{HashMap, HashSet};
use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use crate::accept::Watchdog;
use crate::server::App;
use crate::socket;

/// What the sweep needs to know about connections: which are streams, and when the others last
/// started a request.
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

    /// The connections among `peers` (one entry per descriptor) that are idle at `now`. A
    /// connection seen for the first time counts as active now.
    fn idle(
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

/// Starts the sweep; it ends when the server stops.
pub fn spawn(app: Arc<App>) -> std::io::Result<thread::JoinHandle<()>> {
    // Each sweep asks every descriptor (about 10 ms with 10,000 streams), so not too often.
    let period =
        (app.config.idle_timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(2));
    thread::Builder::new().name("reaper".into()).spawn(move || {
        let mut watchdog = Watchdog::default();
        while !app.stop.wait_until(Instant::now() + period) {
            let peers = socket::accepted_peers(app.local_addr);
            if watchdog.accept_thread_gone(app.local_addr, &peers) {
                app.log.line(format_args!("the accept thread is gone"));
                let dead = app.acceptor.current();
                app.acceptor.replace(&dead, &app.stop, &app.log);
            }
            sweep(&app, peers);
        }
    })
}

fn sweep(app: &App, peers: Vec<SocketAddr>) {
    let idle = app
        .connections
        .idle(peers, app.config.idle_timeout, Instant::now());
    for peer in idle {
        // Closing both halves ends tiny_http's blocked read; its thread goes back to the pool.
        if let Some(socket) = socket::find(peer, app.local_addr, app.max_fd)
            && socket.shutdown(Shutdown::Both).is_ok()
        {
            app.metrics.idle_closed.fetch_add(1, Ordering::Relaxed);
            app.log.line(format_args!("closed idle connection {peer}"));
        }
        lock(&app.connections.last_request).remove(&peer);
    }
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
