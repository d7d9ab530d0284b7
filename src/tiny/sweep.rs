//! Watches the connections tiny_http holds: closes those that hold one of its threads without
//! using it, and nudges those it leaves waiting for a thread.
//!
//! tiny_http gives every connection a thread that blocks reading the next request, with no
//! timeout of its own (and none can be set on the listener, see `socket.rs`). A client that
//! connects and sends nothing, or sends its headers a byte a minute, or keeps an idle keep-alive
//! connection, would hold that thread forever. This sweep closes every accepted connection that
//! is not an event stream, has no body being read, and has not started a request for the idle
//! timeout. (One that sends nothing at all reaches tiny_http only when the idle timeout is over,
//! see `socket::defer_accept`, so it is closed one idle timeout later.) It also closes one sent
//! over a MiB between two looks with no request started ([`UNFINISHED`]). Each look also finds
//! the connections tiny_http's pool left waiting (`pool.rs`).
//!
//! A look asks every descriptor number (about 45 ms of a core with 9,000 feed streams, on a
//! 2-core virtual machine), so it comes every 100 ms while that is cheap and less often as it
//! gets dearer, at most 0.1% of a core, and at least every two seconds (more often for short idle
//! timeouts): past about 2,000 connections, where a look takes over 2 ms, the looks take more
//! than 0.1%, about 2% with 9,000. With no connection at all, it looks every two seconds, or as
//! soon as a request comes; while a connection may be waiting for a pool thread, every 250 ms at
//! least. The same thread runs the accept [`Watchdog`], which needs the same list of
//! connections, every two seconds, and counts the connections tiny_http holds for good
//! (`held.rs`), to heal past a budget (`heal.rs`). Between looks it answers and closes refused
//! connections as they come (`refuse.rs`).

use std::collections::HashSet;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use super::accept::Watchdog;
use super::address::shown_peer;
use super::handoff::Reason;
use super::heal::{self, Series, Verdict};
use super::held::{HeldWatch, Suspect};
use super::outlet::Outlet;
use super::pool::{self, PoolWatch};
use super::shared::Shared;
use super::socket::{Accepted, Listing};

/// The shortest time between two looks.
const QUICKEST: Duration = Duration::from_millis(100);

/// The longest time between two looks while some connection looks held for good, or may be
/// waiting for a pool thread.
const SUSPECTS_AGAIN: Duration = Duration::from_millis(250);

/// A look may cost this fraction of the time between looks, at most (unless it takes more
/// than the longest pause allows). An idle server looks at a few hundred descriptor numbers, in
/// about 250 µs: every 250 ms, so it stays within 0.1% of a core.
const COST_SHARE: u32 = 1000;

/// Starts the sweep; it ends when the server stops.
pub fn spawn(shared: Arc<Shared>) -> std::io::Result<thread::JoinHandle<()>> {
    let slowest =
        (shared.settings.idle_timeout / 4).clamp(Duration::from_millis(50), Duration::from_secs(2));
    let closes = shared.clone();
    let sweep = move || {
        let mut watchdog = Watchdog::default();
        let mut pool = PoolWatch::default();
        let mut held = HeldWatch::default();
        let mut not_healing_yet = None;
        let mut pause = QUICKEST.min(slowest);
        let mut dozing = None;
        let mut gone_streams = GoneStreams::default();
        while !rest(&shared, pause, dozing) {
            let listed = Instant::now();
            let listing = shared
                .sockets
                .accepted(|peer| shared.connections.is_stream(peer));
            let look = listed.elapsed();
            let accepted = &listing.accepted;
            let peers: Vec<SocketAddr> = accepted.iter().map(|c| c.peer).collect();
            let waiting = pool.waiting(accepted, |peer| shared.connections.in_use(peer), listed);
            if !waiting.is_empty() {
                shared.log.line(format_args!(
                    "{} connection(s) waiting for a tiny_http thread; nudging",
                    waiting.len()
                ));
                pool::nudge(shared.local_addr, waiting.len());
            }
            // Looked at on every pass (the watchdog makes a new probe at most every 2 s), so a
            // dead accept thread is replaced within about a second.
            // A probe left waiting is no proof on a busy machine: tiny_http's accept thread holds
            // its copy of the listener for as long as it runs, and a server replaced while it
            // runs would accept on, among the retired ones, for good.
            if watchdog.accept_thread_gone(shared.local_addr, |probe| peers.contains(&probe))
                && shared
                    .sockets
                    .count_listeners(shared.acceptor.listener.as_raw_fd())
                    == 0
            {
                shared.log.line(format_args!("the accept thread is gone"));
                if let Some(dead) = shared.acceptor.current() {
                    shared
                        .acceptor
                        .replace(&dead, &shared.stop, &shared.log, true);
                }
            }
            sweep(&shared, &peers, listed);
            close_unfinished(&shared, accepted);
            let held_now = held.held(suspects(&shared, &listing, &pool), listed);
            shared
                .metrics
                .held_for_good
                .store(held_now, Ordering::Relaxed);
            heal_if_over_budget(&shared, held_now, &mut not_healing_yet);
            gone_streams.look(&shared, listed);
            pause = (look * COST_SHARE).clamp(QUICKEST.min(slowest), slowest);
            // With no connection at all there is nothing to close or nudge until one comes:
            // an idle server looks every two seconds, not ten times a second, unless a request
            // comes meanwhile (some of a burst's connections may then be waiting for a pool
            // thread, and are nudged within a fraction of a second).
            dozing = None;
            if accepted.is_empty() && listing.streams == 0 {
                pause = slowest;
                dozing = Some(shared.connections.requests_started());
            }
            // Suspects that stay are looked at again soon, so that healing follows a flood
            // closely; a connection that is only closing is gone by the next look.
            if held.pending > 0 || not_healing_yet.is_some() || pool.undecided {
                pause = pause.min(SUSPECTS_AGAIN);
            }
        }
    };
    let spawned = crate::thread::spawn("sweep", None, Box::new(sweep))?;
    closes.closer.closed_by(Some(spawned.thread().clone()));
    Ok(spawned)
}

/// Waits `pause`, closing refused connections as they come. Returns `true` if the server stops.
/// When `dozing` holds the count of requests started at the last look, which found no
/// connection, the wait ends early, as soon as a request has started since (it wakes this
/// thread: an idle server is not woken ten times a second to ask).
fn rest(shared: &Shared, pause: Duration, dozing: Option<u64>) -> bool {
    let deadline = Instant::now() + pause;
    let connections = &shared.connections;
    connections.wake_on_request(dozing.map(|_| thread::current()));
    let stopping = loop {
        shared.closer.close_waiting(shared);
        let left = deadline.saturating_duration_since(Instant::now());
        if shared.stop.is_triggered() || left.is_zero() {
            break shared.stop.is_triggered();
        }
        match dozing {
            Some(seen) if connections.requests_started() != seen => break false,
            _ => thread::park_timeout(left),
        }
    };
    connections.wake_on_request(None);
    stopping
}

/// The connections that look held for good (see `held.rs`).
///
/// A socket closed on both sides counts only if two descriptors hold it, as tiny_http holds a
/// connection it reads. A stream whose client left holds one (a feed stream's second is above
/// the open-file limit, not looked at) until its next write fails, up to `--keepalive` later:
/// many clients leaving at once are not a flood.
fn suspects(shared: &Shared, listing: &Listing, pool: &PoolWatch) -> Vec<Suspect> {
    // Few at a time, even in a storm: no sort is worth its weight here.
    let dead = &listing.dead;
    let held_twice = (1..dead.len()).filter(|&i| dead[..i].contains(&dead[i]));
    listing
        .accepted
        .iter()
        .filter_map(|connection| connection.closing.then_some(connection.peer))
        .chain(pool.given_up())
        .filter(|&peer| !shared.connections.is_stream(peer) && !shared.connections.is_busy(peer))
        .map(Suspect::Connection)
        .chain(held_twice.map(|i| Suspect::Socket(dead[i])))
        .collect()
}

/// How often, at most, the feed streams are probed for clients that have gone.
const PROBE_AGAIN: Duration = Duration::from_secs(2);

/// Feed streams whose clients left unnoticed, found when a stream is refused at capacity. Such a
/// stream learns that its client has gone at its next write but one, up to two keep-alives later
/// on a quiet feed, and holds its slot until then: a page reloaded a few times under a small
/// `--max-streams` was told the server is busy for 30 s. So after a refusal, each feed stream is
/// written a keep-alive comment (a gone client answers with a reset), and those answered so are
/// ended at the next look, and at the first look a second after the probe (a client far away
/// answers later than the next look); the refused client's retry then finds their slots.
#[derive(Default)]
struct GoneStreams {
    refused: u64,
    probed_at: Option<Instant>,
    probed: Vec<std::sync::Weak<Outlet>>,
    /// The probed streams were looked at once; they are looked at once more, [`LATE_RESET`]
    /// after the probe.
    looked_once: bool,
}

/// How long after a probe its streams are looked at a second time.
const LATE_RESET: Duration = Duration::from_secs(1);

impl GoneStreams {
    fn look(&mut self, shared: &Shared, now: Instant) {
        let since = self.probed_at.map(|at| now.duration_since(at));
        if !self.looked_once || since >= Some(LATE_RESET) {
            let last = std::mem::replace(&mut self.looked_once, true);
            self.probed.retain(|outlet| match outlet.upgrade() {
                Some(outlet) if outlet.connection_gone() => {
                    outlet.end("found gone at capacity");
                    false
                }
                // Its reset may still come.
                Some(_) => !last,
                None => false,
            });
        }
        let refused = shared.metrics.streams_rejected.load(Ordering::Relaxed);
        if refused == self.refused || since.is_some_and(|since| since < PROBE_AGAIN) {
            return;
        }
        self.refused = refused;
        self.probed_at = Some(now);
        self.probed.clear();
        self.looked_once = false;
        for outlet in shared.connections.shared_outlets() {
            if outlet.connection_gone() {
                outlet.end("found gone at capacity");
            } else {
                outlet.probe();
                self.probed.push(Arc::downgrade(&outlet));
            }
        }
    }
}

/// Bytes a connection may be sent between two looks with no request started: far more than
/// any request the server takes (a head of 16 KiB, a body of 16 KiB), far less than memory.
const UNFINISHED: u64 = 1 << 20;

/// Closes the connections sent more than [`UNFINISHED`] bytes with no request started (see
/// [`Connections::unfinished`](super::connections::Connections::unfinished)): what tiny_http
/// holds of a head that does not end is then freed within a look or two, not at the idle timeout
/// (at a gigabit a second, 30 s of a head is 3.75 GB).
fn close_unfinished(shared: &Shared, accepted: &[Accepted]) {
    let received: Vec<(SocketAddr, u64)> = accepted.iter().map(|c| (c.peer, c.received)).collect();
    let unfinished = shared.connections.unfinished(&received, UNFINISHED);
    if unfinished.is_empty() {
        return;
    }
    let closed = shared
        .sockets
        .shut_down_where(|peer| unfinished.iter().any(|(of, _)| *of == peer));
    for (peer, bytes) in unfinished.iter().filter(|(peer, _)| closed.contains(peer)) {
        shared.log.line(format_args!(
            "closed connection {}: {bytes} bytes sent and no whole request",
            shown_peer(*peer)
        ));
    }
}

/// Why the server, over the budget, does not re-exec yet: each said once while it lasts.
#[derive(Clone, Copy, PartialEq, Eq)]
enum NotYet {
    /// The last re-exec was too recent.
    Waiting,
    /// The new image would not survive its start.
    WouldFail,
    /// This server cannot re-exec.
    Cannot,
}

/// Re-execs when `held` is over the budget and the last re-exec is not too recent; says so
/// once, and once more for each reason it does not yet (`said`: the last one said).
fn heal_if_over_budget(shared: &Shared, held: usize, said: &mut Option<NotYet>) {
    let now = SystemTime::now();
    let (not_yet, what_next) = match heal::verdict(held, shared.series, now) {
        Verdict::Fine => {
            *said = None;
            return;
        }
        Verdict::Heal => {
            // Asked on every look while over the budget: a file that was gone may come back.
            let would_fail = shared.settings.reexec.as_ref().map(|check| (check.0)());
            match would_fail {
                Some(None) => {
                    let series = Series::next(shared.series, now);
                    if shared.stop_for_reexec(Reason::Heal { series }).is_err() {
                        return;
                    }
                    let count = series.count;
                    (
                        None,
                        format!("re-executing to drop them (re-exec {count} in a row)"),
                    )
                }
                Some(Some(why)) => (Some(NotYet::WouldFail), format!("not re-executing: {why}")),
                None => (
                    Some(NotYet::Cannot),
                    "this server cannot re-exec".to_owned(),
                ),
            }
        }
        Verdict::Wait(until) => {
            let wait = crate::log::seconds(until.duration_since(now).unwrap_or_default());
            let what_next = format!("re-executing in {wait}s, after the last re-exec");
            (Some(NotYet::Waiting), what_next)
        }
    };
    if not_yet.is_some() && std::mem::replace(said, not_yet) == not_yet {
        return;
    }
    shared.log.line(format_args!(
        "{held} connections held for good by tiny_http (budget {}); {what_next}",
        heal::BUDGET
    ));
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
    for peer in &shared.sockets.shut_down_where(|peer| idle.contains(&peer)) {
        shared.metrics.idle_closed.fetch_add(1, Ordering::Relaxed);
        shared
            .log
            .line(format_args!("closed idle connection {}", shown_peer(*peer)));
    }
}
