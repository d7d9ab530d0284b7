//! The fan-out scenario's publisher: one message after another at a steady rate, each a unique
//! token `m<seq>`, each `POST` on a fresh connection, from a thread of its own. With several
//! paths (one per feed), message `m<k>` goes to path `(k - 1) % paths`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::ping::request_status;
use crate::settings::PUBLISH_TIMEOUT;

/// One message the publisher sent (or tried to).
pub struct Publish {
    /// The message's token: its text is `m<token>`.
    pub token: u64,
    /// The start of its `POST` (the connect): its deliveries are timed from here.
    pub started: Instant,
    /// How long the server took to answer with a 2xx, or why it did not.
    pub answered: Result<Duration, String>,
}

/// What to publish: `count` messages, `rate` a second, to `paths` in turn on `addr`.
pub struct Schedule {
    pub addr: SocketAddr,
    pub paths: Vec<String>,
    pub rate: usize,
    pub count: usize,
}

/// Publishes the messages `m1` to `m<count>`, message k due k − 1 rate-intervals after the start.
/// A slow answer delays the next message rather than bunching them up; none starts later than
/// [`PUBLISH_TIMEOUT`] after the last one was due. `accepted` counts the messages answered with
/// a 2xx as they are, by path.
pub fn publish_all(schedule: &Schedule, accepted: &Arc<[AtomicUsize]>) -> Vec<Publish> {
    let interval = Duration::from_secs(1) / schedule.rate as u32;
    let start = Instant::now();
    let last_start = start + interval * schedule.count as u32 + PUBLISH_TIMEOUT;
    let mut sent = Vec::with_capacity(schedule.count);
    for token in 1..=schedule.count as u64 {
        let due = start + interval * (token - 1) as u32;
        thread::sleep(due.saturating_duration_since(Instant::now()));
        let started = Instant::now();
        if started > last_start {
            break;
        }
        let path = path_of(token, schedule.paths.len());
        let answered = publish_once(schedule, token).map(|()| started.elapsed());
        if answered.is_ok() {
            accepted[path].fetch_add(1, Ordering::Relaxed);
        }
        sent.push(Publish {
            token,
            started,
            answered,
        });
    }
    sent
}

fn publish_once(schedule: &Schedule, token: u64) -> Result<(), String> {
    let body = format!("text=m{token}");
    let request = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-www-form-urlencoded\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        schedule.paths[path_of(token, schedule.paths.len())],
        schedule.addr,
        body.len()
    );
    match request_status(schedule.addr, request.as_bytes(), PUBLISH_TIMEOUT)? {
        200..=299 => Ok(()),
        status => Err(format!("status {status}")),
    }
}

/// Which of `paths` paths message `token` (from 1) goes to.
pub fn path_of(token: u64, paths: usize) -> usize {
    (token.saturating_sub(1) % paths.max(1) as u64) as usize
}
