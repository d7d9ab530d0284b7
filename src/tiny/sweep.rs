//! Watches the connections tiny_http holds: closes those that hold one of its threads without
//! using it, and nudges those it leaves waiting for a thread.
//!
//! tiny_http gives every connection a thread that blocks reading the next request, with no
//! timeout of its own (and none can be set on the listener, see `socket.rs`). A client that
//! connects and sends nothing, or sends its headers a byte a minute, or keeps an idle keep-alive
//! connection, would hold that thread forever. This sweep closes every accepted connection that
//! is not an event stream, has no body being read, and has not started a request for the idle
//! timeout. (One that sends nothing at all reaches tiny_http only when the idle timeout is over,
//! see `socket::defer_accept`, so it is closed one idle timeout later.) Each look also finds the
//! connections tiny_http's pool left waiting (`pool.rs`).
//!
//! A look asks every descriptor (about 10 ms with 10,000 streams), so it comes every 100 ms while
//! that is cheap and less often as it gets dearer: the looks take at most 0.25% of a core, and come
//! at least every two seconds (more often for short idle timeouts). The same thread runs the
//! accept [`Watchdog`], which needs the same list of connections, every two seconds.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

use super::accept::Watchdog;
use super::pool::{self, PoolWatch};
use super::shared::Shared;

/// The shortest time between two looks.
const QUICKEST: Duration = Duration::from_millis(100);

/// A look may cost this fraction of the time between looks, at most.
const COST_SHARE: u32 = 400;

/// Starts the sweep; it ends when the server stops.
pub fn spawn(shared: Arc<Shared>) -> std::io::Result<thread::JoinHandle<()>> {
    let slowest =
        (shared.settings.idle_timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(2));
    thread::Builder::new().name("sweep".into()).spawn(move || {
        let mut watchdog = Watchdog::default();
        let mut pool = PoolWatch::default();
        let mut pause = QUICKEST.min(slowest);
        while !shared.stop.wait_until(Instant::now() + pause) {
            let listed = Instant::now();
            let accepted = shared.sockets.accepted();
            let look = listed.elapsed();
            let peers: Vec<SocketAddr> = accepted.iter().map(|c| c.peer).collect();
            let waiting = pool.waiting(&accepted, |peer| shared.connections.in_use(peer), listed);
            if !waiting.is_empty() {
                shared.log.line(format_args!(
                    "{} connection(s) waiting for a tiny_http thread; nudging",
                    waiting.len()
                ));
                pool::nudge(shared.local_addr, waiting.len());
            }
            // Looked at on every pass (the watchdog makes a new probe at most every 2 s), so a
            // dead accept thread is replaced within about a second.
            if watchdog.accept_thread_gone(shared.local_addr, |probe| peers.contains(&probe)) {
                shared.log.line(format_args!("the accept thread is gone"));
                let dead = shared.acceptor.current();
                shared.acceptor.replace(&dead, &shared.stop, &shared.log);
            }
            sweep(&shared, &peers, listed);
            pause = (look * COST_SHARE).clamp(QUICKEST.min(slowest), slowest);
        }
    })
}

fn sweep(shared: &Shared, peers: &[SocketAddr], listed: Instant) {
    let idle = shared
        .connections
        .idle(peers, shared.settings.idle_timeout, listed);
    if idle.is_empty() {
        return;
    }
    // Closing both halves ends tiny_http's blocked read; its thread goes back to the pool. One
    // pass over the descriptors closes them all, however many went idle at once.
    let idle: HashSet<SocketAddr> = idle.into_iter().collect();
    let closed = shared.sockets.shut_down_where(|peer| idle.contains(&peer));
    for peer in &closed {
        shared.metrics.idle_closed.fetch_add(1, Ordering::Relaxed);
        shared
            .log
            .line(format_args!("closed idle connection {peer}"));
    }
    for peer in idle {
        shared.connections.forget(peer);
    }
}
