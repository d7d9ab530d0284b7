//! A page's event stream as a browser keeps it: reconnected at once when the server ends it,
//! with the last id it saw as `Last-Event-ID`, so that a test can check that nothing was skipped
//! or repeated across a restart of the server process.

#![allow(dead_code)] // each test binary uses its own part of this module

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use super::{SseEvent, parse_events};

/// How long a page waits for a byte before it counts its stream as stuck.
const SILENCE: Duration = Duration::from_secs(20);

/// What a page saw, across its connections.
#[derive(Debug, Default, Clone)]
pub struct Seen {
    /// Every event with data, in order.
    pub events: Vec<SseEvent>,
    /// Streams that ended with the terminating chunk.
    pub clean_ends: usize,
    /// Streams that ended otherwise, and why.
    pub broken: Vec<String>,
    /// Connections made.
    pub connections: usize,
}

impl Seen {
    /// The ids of the events, as numbers.
    pub fn ids(&self) -> Vec<u64> {
        self.events
            .iter()
            .filter_map(|event| event.id.as_deref()?.parse().ok())
            .collect()
    }
}

/// A page with a stream open on a thread of its own.
pub struct Page {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Seen>>,
    thread: Option<JoinHandle<()>>,
}

impl Page {
    /// Opens `path` on `addr` and keeps it open, as a page does.
    pub fn open(addr: SocketAddr, path: &'static str) -> Page {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Seen::default()));
        let thread = {
            let (stop, seen) = (stop.clone(), seen.clone());
            thread::spawn(move || {
                while !stop.load(Ordering::SeqCst) {
                    let last = seen_now(&seen).ids().last().copied();
                    lock(&seen).connections += 1;
                    let ended = follow(addr, path, last, &stop, &seen);
                    let broken = ended.is_err();
                    let mut seen = lock(&seen);
                    match ended {
                        Ok(true) => seen.clean_ends += 1,
                        Ok(false) => {}
                        Err(why) => seen.broken.push(why),
                    }
                    drop(seen);
                    if broken {
                        thread::sleep(Duration::from_millis(100));
                    }
                }
            })
        };
        Page {
            stop,
            seen,
            thread: Some(thread),
        }
    }

    pub fn seen(&self) -> Seen {
        seen_now(&self.seen)
    }

    /// Closes the page and returns what it saw.
    pub fn close(mut self) -> Seen {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.seen()
    }
}

impl Drop for Page {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn seen_now(seen: &Mutex<Seen>) -> Seen {
    lock(seen).clone()
}

/// Reads one connection's stream until it ends. `Ok(true)` for the terminating chunk,
/// `Ok(false)` when the page was closed.
fn follow(
    addr: SocketAddr,
    path: &str,
    last: Option<u64>,
    stop: &AtomicBool,
    seen: &Mutex<Seen>,
) -> Result<bool, String> {
    let mut stream = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    stream.set_read_timeout(Some(SILENCE)).ok();
    let resume = last.map_or(String::new(), |id| format!("Last-Event-ID: {id}\r\n"));
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n{resume}\r\n"
    )
    .map_err(|e| format!("send: {e}"))?;
    let mut reader = BufReader::new(stream);
    let line = |reader: &mut BufReader<TcpStream>| -> Result<String, String> {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) => Err("closed without the terminating chunk".into()),
            Ok(_) => Ok(line.trim_end().to_owned()),
            Err(e) => Err(format!("read: {e}")),
        }
    };
    let status = line(&mut reader)?;
    if !status.starts_with("HTTP/1.1 200") {
        return Err(format!("answered {status:?}"));
    }
    while !line(&mut reader)?.is_empty() {}
    while !stop.load(Ordering::SeqCst) {
        let size_line = line(&mut reader)?;
        let size = usize::from_str_radix(&size_line, 16)
            .map_err(|_| format!("bad chunk size {size_line:?}"))?;
        let mut chunk = vec![0; size + 2];
        reader
            .read_exact(&mut chunk)
            .map_err(|e| format!("read chunk: {e}"))?;
        if size == 0 {
            return Ok(true);
        }
        let text = String::from_utf8_lossy(&chunk[..size]).into_owned();
        let events = parse_events(&text).into_iter().filter(|e| e.data.is_some());
        lock(seen).events.extend(events);
    }
    Ok(false)
}
