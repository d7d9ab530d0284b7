//! Looking at the server after the storm: `/healthz`, its threads and descriptors in /proc,
//! `http_held_unrecoverable` in `/metrics`, and the pings sent so far, until all are back or
//! the run gives up.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use crate::ping::request_status;
use crate::process::{field_number, proc_open_fds, proc_status};
use crate::recovery::{Ping, back_for_good, metric_value, quick_again};
use crate::storm::{QUICK_MS, SLACK, WINDOW};
use crate::storm_traffic::{PingLog, lock};

/// After the storm, how long the server has to come back before the run gives up.
pub const RECOVERY_LIMIT: Duration = Duration::from_secs(60);
/// How often `/healthz` and the server's threads and descriptors are looked at after the storm.
const SAMPLE_EVERY: Duration = Duration::from_millis(50);

/// What was looked at after the storm, each sample at its time since the storm's end.
pub struct Watched {
    /// Whether `/healthz` answered.
    pub health: Vec<(f64, bool)>,
    /// Whether the threads and descriptors were within [`SLACK`] of `before`.
    pub footprint: Vec<(f64, bool)>,
    pub held_peak: Option<u64>,
}

/// Looks at the server every [`SAMPLE_EVERY`] from the storm's end until `/healthz`, the
/// footprint and the pings have been back for [`WINDOW`], or for [`RECOVERY_LIMIT`].
pub fn watch(
    addr: SocketAddr,
    pid: u32,
    before: (u64, u64),
    ended: Instant,
    pings: &PingLog,
) -> Watched {
    let mut watched = Watched {
        health: Vec::new(),
        footprint: Vec::new(),
        held_peak: None,
    };
    let settled = |samples: &[(f64, bool)], now: f64| {
        back_for_good(samples).is_some_and(|at| now - at >= WINDOW.as_secs_f64())
    };
    while ended.elapsed() < RECOVERY_LIMIT {
        watched
            .health
            .push((since(ended, Instant::now()), healthz(addr)));
        watched.held_peak = watched.held_peak.max(held_unrecoverable(addr));
        let within = footprint(pid)
            .is_some_and(|(threads, fds)| threads <= before.0 + SLACK && fds <= before.1 + SLACK);
        let now = since(ended, Instant::now());
        watched.footprint.push((now, within));
        let quick = quick_again(&ping_record(pings, ended), WINDOW.as_secs_f64(), QUICK_MS);
        if quick.is_some() && settled(&watched.health, now) && settled(&watched.footprint, now) {
            break;
        }
        thread::sleep(SAMPLE_EVERY);
    }
    watched
}

/// Seconds from `ended` to `at`, negative before it.
pub fn since(ended: Instant, at: Instant) -> f64 {
    match at.checked_duration_since(ended) {
        Some(after) => after.as_secs_f64(),
        None => -(ended - at).as_secs_f64(),
    }
}

/// The pings so far, in the order they were sent (they are recorded as they end).
pub fn ping_record(pings: &PingLog, ended: Instant) -> Vec<Ping> {
    let mut record: Vec<Ping> = lock(pings)
        .iter()
        .map(|&(at, latency_ms)| Ping {
            at: since(ended, at),
            latency_ms,
        })
        .collect();
    record.sort_by(|a, b| a.at.total_cmp(&b.at));
    record
}

/// The server's threads and open descriptors; `None` once it is gone.
pub fn footprint(pid: u32) -> Option<(u64, u64)> {
    let threads = field_number(&proc_status(pid)?, "Threads:")?;
    Some((threads, proc_open_fds(pid)?))
}

fn healthz(addr: SocketAddr) -> bool {
    let request = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
    request_status(addr, request, Duration::from_millis(500)) == Ok(200)
}

/// `http_held_unrecoverable` from `/metrics`, read to the end of the connection (the server
/// closes it after the answer); `None` if it does not answer within 2 s.
fn held_unrecoverable(addr: SocketAddr) -> Option<u64> {
    let timeout = Duration::from_secs(2);
    let mut socket = TcpStream::connect_timeout(&addr, timeout).ok()?;
    socket.set_read_timeout(Some(timeout)).ok()?;
    socket.set_write_timeout(Some(timeout)).ok()?;
    socket
        .write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut answer = String::new();
    socket.take(1 << 20).read_to_string(&mut answer).ok()?;
    metric_value(&answer, "http_held_unrecoverable")
}
