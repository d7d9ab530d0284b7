//! Connections left waiting in tiny_http's task pool, and the nudge that frees them.
//!
//! tiny_http gives each accepted connection to its task pool (`util/task_pool.rs`), which hands
//! a task to an idle thread by counting idle threads. A thread that was woken but has not yet
//! taken its task still counts as idle, so a second connection accepted in that moment is queued
//! for the same thread, and no new thread is started for it. It is served only when some pool
//! thread finishes its connection: with keep-alive connections, perhaps not before the idle
//! sweep closes one. A burst of connections can leave several waiting, unanswered.
//!
//! Such a connection shows as bytes that stay unread in its socket while no request of it
//! reaches the server. A *nudge* frees it: a connection to the server's own listener, closed at
//! once. With no idle thread, the pool starts a new one for the nudge; it finds the nudge closed,
//! and takes the next queued task, the waiting connection. With an idle thread (the count was
//! right after all), that thread takes the queued connection first. Either way one waiting
//! connection is served per nudge; a nudge that was not needed costs one short connection.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::address;
use super::socket::Accepted;
use crate::lock;
use crate::log::Log;

/// A connection is nudged for at most once in this time...
const NUDGE_AGAIN: Duration = Duration::from_secs(1);

/// ...and at most this many times while it keeps unread bytes: if that did not free it, it is
/// not waiting for the pool (tiny_http's thread for it may be stuck elsewhere, see the HTTP/2
/// preface in `docs/tiny_http.md`), and the idle sweep will close it.
const MAX_NUDGES_EACH: u32 = 3;

/// Nudges at most this many connections at one check.
const MAX_NUDGES: usize = 64;

/// What the last check saw.
#[derive(Default)]
pub struct PoolWatch {
    /// Unread bytes of each connection that had some.
    unread: HashMap<SocketAddr, usize>,
    /// When each connection that still has unread bytes was last nudged for, and how often.
    nudged: HashMap<SocketAddr, (Instant, u32)>,
    /// Some connection not in use had unread bytes at the last check, and may yet be nudged
    /// for: the sweep then looks again soon, so that it is served within a fraction of a second.
    pub undecided: bool,
}

impl PoolWatch {
    /// The connections that wait for a pool thread, given every accepted connection now (one
    /// entry per descriptor). A connection waits if it had unread bytes at the last check and
    /// has as many or more now, and is not `in_use` elsewhere (a stream, a body being read on
    /// another thread, a connection the server has ended). Each is returned at most once per
    /// [`NUDGE_AGAIN`], and at most [`MAX_NUDGES_EACH`] times while it keeps unread bytes.
    pub fn waiting(
        &mut self,
        accepted: &[Accepted],
        in_use: impl Fn(SocketAddr) -> bool,
        now: Instant,
    ) -> Vec<SocketAddr> {
        let unread: HashMap<SocketAddr, usize> = accepted
            .iter()
            .filter(|connection| connection.unread > 0)
            .map(|connection| (connection.peer, connection.unread))
            .collect();
        self.nudged.retain(|peer, _| unread.contains_key(peer));
        let may_nudge = |peer| match self.nudged.get(peer) {
            Some(&(at, count)) => now.duration_since(at) >= NUDGE_AGAIN && count < MAX_NUDGES_EACH,
            None => true,
        };
        let waiting: Vec<SocketAddr> = unread
            .iter()
            .filter(|&(peer, now_unread)| {
                self.unread
                    .get(peer)
                    .is_some_and(|before| now_unread >= before)
                    && may_nudge(peer)
                    && !in_use(*peer)
            })
            .map(|(peer, _)| *peer)
            .take(MAX_NUDGES)
            .collect();
        for peer in &waiting {
            let count = self.nudged.get(peer).map_or(0, |&(_, count)| count);
            self.nudged.insert(*peer, (now, count + 1));
        }
        self.undecided = unread
            .keys()
            .any(|peer| !in_use(*peer) && self.nudges_left(peer));
        self.unread = unread;
        waiting
    }

    /// The connections whose unread bytes the nudges did not free: tiny_http's thread for each
    /// is not waiting for the pool (see `held.rs`).
    pub fn given_up(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        self.unread
            .keys()
            .filter(|peer| !self.nudges_left(peer))
            .copied()
    }

    /// Whether `peer` was nudged for fewer than [`MAX_NUDGES_EACH`] times since it last had no
    /// unread bytes.
    fn nudges_left(&self, peer: &SocketAddr) -> bool {
        self.nudged
            .get(peer)
            .is_none_or(|&(_, count)| count < MAX_NUDGES_EACH)
    }
}

/// The server that started last in this process: where a panic in tiny_http's threads is
/// logged, and the listener whose pool then gets a thread in place of the one that panicked.
static LAST_STARTED: Mutex<Option<(Log, SocketAddr)>> = Mutex::new(None);

/// Makes the server logging to `log` and listening on `local` the one [`tiny_http_panicked`]
/// answers for.
pub fn replace_lost_threads(log: Log, local: SocketAddr) {
    *lock(&LAST_STARTED) = Some((log, local));
}

/// For the panic hook (`log::route_panics`): a panic in tiny_http's own code (`file`) is logged
/// with the server's lines. tiny_http 0.12.0 panics on a pool thread when a client resets right
/// after its request (see the hazards table), and the thread dies with any connection the pool
/// had queued for it (see the top of this file). A nudge starts a thread in its place: else
/// that connection, and those queued behind it, wait until some other connection ends, each
/// holding two descriptors as a connection held for good does (`held.rs`).
pub fn tiny_http_panicked(file: &str) -> Option<Log> {
    if !file.contains("/tiny_http-") {
        return None;
    }
    let (log, local) = (*lock(&LAST_STARTED))?;
    nudge(local, 1);
    Some(log)
}

/// Connects to the listener bound to `local` and closes the connection at once, `times` times,
/// or until a connection cannot be made (a flood fills the listen queue: each would wait).
pub fn nudge(local: SocketAddr, times: usize) {
    for _ in 0..times {
        // Dropped at once: its end is what the listener waits for to pass it on (see
        // `socket::defer_accept`), and tiny_http's task for it reads that end and returns.
        if address::connect_to(local, Duration::from_millis(100)).is_none() {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    fn seen(connections: &[(u16, usize)]) -> Vec<Accepted> {
        connections
            .iter()
            .flat_map(|&(port, unread)| {
                // Two descriptors per connection.
                let one = Accepted {
                    peer: peer(port),
                    unread,
                    closing: false,
                    received: 0,
                };
                [one, one]
            })
            .collect()
    }

    #[test]
    fn unread_bytes_at_two_checks_wait() {
        let mut watch = PoolWatch::default();
        let start = Instant::now();
        let nothing_in_use = |_| false;
        // First sight: nothing is known to wait yet.
        let first = seen(&[(1, 40), (2, 40), (3, 0)]);
        assert!(watch.waiting(&first, nothing_in_use, start).is_empty());
        // 1 was read meanwhile; 2 was not; 3 got bytes only now.
        let second = seen(&[(1, 0), (2, 80), (3, 40)]);
        let later = start + Duration::from_millis(100);
        assert_eq!(watch.waiting(&second, nothing_in_use, later), vec![peer(2)]);
        // Nudged: not again within a second, even if still waiting.
        let third = seen(&[(2, 80), (3, 40)]);
        let soon = later + Duration::from_millis(100);
        assert_eq!(watch.waiting(&third, nothing_in_use, soon), vec![peer(3)]);
        let after_a_second = later + NUDGE_AGAIN;
        assert_eq!(
            watch.waiting(&third, nothing_in_use, after_a_second),
            vec![peer(2)]
        );
    }

    #[test]
    fn a_connection_that_nudges_do_not_free_is_left_to_the_idle_sweep() {
        let mut watch = PoolWatch::default();
        let stuck = seen(&[(1, 10)]);
        let start = Instant::now();
        watch.waiting(&stuck, |_| false, start);
        let mut nudges = 0;
        for second in 1..10 {
            let at = start + NUDGE_AGAIN * second;
            nudges += watch.waiting(&stuck, |_| false, at).len();
        }
        assert_eq!(nudges, MAX_NUDGES_EACH as usize);
        assert_eq!(watch.given_up().collect::<Vec<_>>(), vec![peer(1)]);
        assert!(!watch.undecided, "no more nudges: the sweep need not hurry");
        // Read at last: it starts afresh when it waits again.
        let later = start + NUDGE_AGAIN * 20;
        watch.waiting(&seen(&[(1, 0)]), |_| false, later);
        watch.waiting(&stuck, |_| false, later);
        assert_eq!(watch.waiting(&stuck, |_| false, later), vec![peer(1)]);
    }

    #[test]
    fn unread_bytes_of_a_connection_not_in_use_hurry_the_sweep() {
        let mut watch = PoolWatch::default();
        let now = Instant::now();
        watch.waiting(&seen(&[(1, 0)]), |_| false, now);
        assert!(!watch.undecided);
        watch.waiting(&seen(&[(1, 10)]), |_| false, now);
        assert!(watch.undecided);
        watch.waiting(&seen(&[(1, 10)]), |p| p == peer(1), now);
        assert!(!watch.undecided, "in use elsewhere");
    }

    #[test]
    fn a_connection_in_use_elsewhere_does_not_wait() {
        let mut watch = PoolWatch::default();
        let now = Instant::now();
        let both = seen(&[(1, 10), (2, 10)]);
        watch.waiting(&both, |_| false, now);
        assert_eq!(watch.waiting(&both, |p| p == peer(1), now), vec![peer(2)]);
    }

    #[test]
    fn a_nudge_is_accepted_and_closed() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        nudge(listener.local_addr().unwrap(), 2);
        for _ in 0..2 {
            let (mut accepted, _) = listener.accept().unwrap();
            let mut rest = Vec::new();
            std::io::Read::read_to_end(&mut accepted, &mut rest).unwrap();
            assert!(rest.is_empty());
        }
    }
}
