//! The traffic of the storm scenario: the storm itself (the four kinds of request that tiny_http
//! holds for good, each on a connection kept open until the storm ends), and `POST /ping` sent
//! throughout, before, during and after it, each with the time it was sent.

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use crate::ping::ping_once;
use crate::settings::PING_EVERY;

/// The requests of the storm: for each, tiny_http keeps a thread and its descriptors until the
/// process ends (see the server's `tiny::held`).
pub const SHAPES: [&[u8]; 4] = [
    // What `curl --http2-prior-knowledge` sends first.
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    b"GET / HTTP/1.2\r\nHost: x\r\n\r\n",
    b"GET / HTTP/2.0\r\nHost: x\r\n\r\n",
    // A body the server cannot discard, of which 3 bytes come.
    b"POST /chat/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000000000\r\n\r\nabc",
];

/// How long one storm connection may take to connect or to take its request.
const STORM_IO_TIMEOUT: Duration = Duration::from_secs(1);

/// What one client thread of the storm did.
pub struct Sent {
    /// The connections that took their request, still open.
    pub open: Vec<TcpStream>,
    pub failed: usize,
    pub first_failure: Option<String>,
}

/// Sends `shape` on `count` connections of its own, one after the other, and keeps them open;
/// none is started after `until`.
pub fn send_shape(addr: SocketAddr, shape: &'static [u8], count: usize, until: Instant) -> Sent {
    let mut sent = Sent {
        open: Vec::with_capacity(count),
        failed: 0,
        first_failure: None,
    };
    for _ in 0..count {
        if Instant::now() >= until {
            break;
        }
        let connected =
            TcpStream::connect_timeout(&addr, STORM_IO_TIMEOUT).and_then(|mut socket| {
                socket.set_write_timeout(Some(STORM_IO_TIMEOUT))?;
                socket.write_all(shape)?;
                Ok(socket)
            });
        match connected {
            Ok(socket) => sent.open.push(socket),
            Err(error) => {
                sent.failed += 1;
                sent.first_failure.get_or_insert_with(|| error.to_string());
            }
        }
    }
    sent
}

/// Every shape of [`SHAPES`] `count` times, from one thread per shape; returns when each thread
/// has sent all of its requests or reached `until`, with every connection still open.
pub fn storm(addr: SocketAddr, count: usize, until: Instant) -> Vec<Sent> {
    let threads: Vec<_> = SHAPES
        .iter()
        .map(|&shape| {
            thread::Builder::new()
                .name("storm".into())
                .spawn(move || send_shape(addr, shape, count, until))
        })
        .collect();
    threads
        .into_iter()
        .map(|thread| {
            let failed = |why: String| Sent {
                open: Vec::new(),
                failed: count,
                first_failure: Some(why),
            };
            match thread {
                Ok(handle) => handle
                    .join()
                    .unwrap_or_else(|_| failed("the thread panicked".into())),
                Err(error) => failed(format!("no thread: {error}")),
            }
        })
        .collect()
}

/// When each ping was sent, and how long its answer took in ms (`None`: it failed).
pub type PingLog = Arc<Mutex<Vec<(Instant, Option<f64>)>>>;

pub fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `POST /ping` every [`PING_EVERY`] until `stop` is set or `until`, each on a fresh connection
/// and a thread of its own, timed from the start of its connect to the end of its answer.
/// Unlike the hold scenario's pings, a slow answer does not delay the next one: the storm lasts
/// seconds, and a ping waiting up to its timeout would leave it with one or two samples. At
/// most [`PING_TIMEOUT`](crate::settings::PING_TIMEOUT) twice (connect, then read) over
/// [`PING_EVERY`], 80, are under way at once.
pub fn ping_throughout(
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    until: Instant,
) -> Result<(PingLog, thread::JoinHandle<()>), String> {
    let log = PingLog::default();
    let written = log.clone();
    let thread = thread::Builder::new()
        .name("ping".into())
        .spawn(move || {
            let start = Instant::now();
            let mut under_way = Vec::new();
            for i in 0.. {
                let due = start + PING_EVERY * i;
                if due >= until || stop.load(Ordering::SeqCst) {
                    break;
                }
                thread::sleep(due.saturating_duration_since(Instant::now()));
                let log = written.clone();
                let ping = move || {
                    let sent = Instant::now();
                    let answered = ping_once(addr)
                        .ok()
                        .map(|()| sent.elapsed().as_secs_f64() * 1e3);
                    lock(&log).push((sent, answered));
                };
                match thread::Builder::new().name("ping".into()).spawn(ping) {
                    Ok(handle) => under_way.push(handle),
                    Err(_) => lock(&written).push((Instant::now(), None)),
                }
                under_way.retain(|handle| !handle.is_finished());
            }
            for handle in under_way {
                let _ = handle.join();
            }
        })
        .map_err(|error| format!("no ping thread: {error}"))?;
    Ok((log, thread))
}
