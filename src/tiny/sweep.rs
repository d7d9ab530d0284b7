//! Closes connections that hold one of tiny_http's threads without using it.
//!
//! tiny_http gives every connection a thread that blocks reading the next request, with no
//! timeout of its own (and none can be set on the listener, see `socket.rs`). A client that
//! connects and sends nothing, or sends its headers a byte a minute, or keeps an idle keep-alive
//! connection, would hold that thread forever. Every two seconds (more often for short idle
//! timeouts) this sweep closes every accepted connection that is not an event stream and has not
//! started a request for the idle timeout.
//! The same thread runs the accept [`Watchdog`], which needs the same list of connections.

use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant};

use super::accept::Watchdog;
use super::shared::Shared;

/// Starts the sweep; it ends when the server stops.
pub fn spawn(shared: Arc<Shared>) -> std::io::Result<thread::JoinHandle<()>> {
    // Each sweep asks every descriptor (about 10 ms with 10,000 streams), so not too often.
    let period =
        (shared.settings.idle_timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(2));
    // The watchdog looks up one connection, its probe, so it can look often: a dead accept
    // thread is replaced within about a second.
    let tick = period.min(WATCHDOG_TICK);
    thread::Builder::new().name("sweep".into()).spawn(move || {
        let mut watchdog = Watchdog::default();
        let mut next_sweep = Instant::now() + period;
        while !shared.stop.wait_until(Instant::now() + tick) {
            let accepted = |probe| shared.sockets.find(probe).is_some();
            if watchdog.accept_thread_gone(shared.local_addr, accepted) {
                shared.log.line(format_args!("the accept thread is gone"));
                let dead = shared.acceptor.current();
                shared.acceptor.replace(&dead, &shared.stop, &shared.log);
            }
            if Instant::now() >= next_sweep {
                sweep(&shared, shared.sockets.accepted_peers());
                next_sweep = Instant::now() + period;
            }
        }
    })
}

/// How often the accept watchdog looks.
const WATCHDOG_TICK: Duration = Duration::from_millis(250);

fn sweep(shared: &Shared, peers: Vec<SocketAddr>) {
    let idle = shared
        .connections
        .idle(peers, shared.settings.idle_timeout, Instant::now());
    for peer in idle {
        // Closing both halves ends tiny_http's blocked read; its thread goes back to the pool.
        if let Some(socket) = shared.sockets.find(peer)
            && socket.shutdown(Shutdown::Both).is_ok()
        {
            shared.metrics.idle_closed.fetch_add(1, Ordering::Relaxed);
            shared
                .log
                .line(format_args!("closed idle connection {peer}"));
        }
        shared.connections.forget(peer);
    }
}
