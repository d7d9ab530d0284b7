//! A page's event stream during the storm, followed as a browser does: when the stream ends or
//! breaks, it is opened again with the last id seen as `Last-Event-ID`, so that the ids it
//! collects across the server's re-execs show whether any was skipped or repeated.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use crate::recovery::event_ids;

/// A stream that sends nothing for this long is counted broken and opened again: the counter
/// ticks every 100 ms and the chat sends a keep-alive every 500 ms.
const SILENCE: Duration = Duration::from_secs(3);
/// How long a connect may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
/// The pause before opening a broken stream again, as a browser's `retry` would.
const RETRY: Duration = Duration::from_millis(100);
/// The longest chunk taken: the server's events are far smaller.
const MAX_CHUNK: usize = 1 << 20;

/// What a page saw, across its connections.
#[derive(Clone, Debug, Default)]
pub struct Seen {
    pub ids: Vec<u64>,
    /// Connections made.
    pub connections: usize,
    /// Streams the server ended with the terminating chunk (as it does at a re-exec).
    pub clean_ends: usize,
    /// Streams that ended otherwise (refused, reset, silent), and the first reason.
    pub broken: usize,
    pub first_broken: Option<String>,
}

/// A page with its stream followed on a thread of its own until [`Page::close`].
pub struct Page {
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Seen>>,
    thread: Option<JoinHandle<()>>,
}

impl Page {
    pub fn open(addr: SocketAddr, path: &'static str) -> Result<Page, String> {
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (stop_here, seen_here) = (stop.clone(), seen.clone());
        let thread = thread::Builder::new()
            .name(format!("page {path}"))
            .spawn(move || follow_until_stopped(addr, path, &stop_here, &seen_here))
            .map_err(|error| format!("no page thread: {error}"))?;
        Ok(Page {
            stop,
            seen,
            thread: Some(thread),
        })
    }

    pub fn seen(&self) -> Seen {
        lock(&self.seen).clone()
    }

    /// Stops following (within [`SILENCE`]) and returns what the page saw.
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

fn follow_until_stopped(addr: SocketAddr, path: &str, stop: &AtomicBool, seen: &Mutex<Seen>) {
    while !stop.load(Ordering::SeqCst) {
        let last = {
            let mut seen = lock(seen);
            seen.connections += 1;
            seen.ids.last().copied()
        };
        let ended = follow(addr, path, last, stop, seen);
        let mut seen = lock(seen);
        match ended {
            Ok(true) => seen.clean_ends += 1,
            Ok(false) => {}
            Err(why) => {
                seen.broken += 1;
                seen.first_broken.get_or_insert(why);
                drop(seen);
                thread::sleep(RETRY);
            }
        }
    }
}

/// Reads one connection's stream until it ends: `Ok(true)` for the terminating chunk,
/// `Ok(false)` when the page was closed.
fn follow(
    addr: SocketAddr,
    path: &str,
    last: Option<u64>,
    stop: &AtomicBool,
    seen: &Mutex<Seen>,
) -> Result<bool, String> {
    let mut stream = TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT)
        .map_err(|error| format!("connect: {error}"))?;
    stream
        .set_read_timeout(Some(SILENCE))
        .and_then(|()| stream.set_write_timeout(Some(SILENCE)))
        .map_err(|error| format!("socket options: {error}"))?;
    let resume = last.map_or(String::new(), |id| format!("Last-Event-ID: {id}\r\n"));
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n{resume}\r\n"
    )
    .map_err(|error| format!("send: {error}"))?;
    let mut reader = BufReader::new(stream);
    let status = line(&mut reader)?;
    if !status.starts_with("HTTP/1.1 200") {
        return Err(format!("answered {status:?}"));
    }
    while !line(&mut reader)?.is_empty() {}
    while !stop.load(Ordering::SeqCst) {
        let size_line = line(&mut reader)?;
        let size = usize::from_str_radix(&size_line, 16)
            .ok()
            .filter(|&size| size <= MAX_CHUNK)
            .ok_or_else(|| format!("bad chunk size {size_line:?}"))?;
        let mut chunk = vec![0; size + 2];
        reader
            .read_exact(&mut chunk)
            .map_err(|error| format!("read chunk: {error}"))?;
        if size == 0 {
            return Ok(true);
        }
        let ids = event_ids(&String::from_utf8_lossy(&chunk[..size]));
        lock(seen).ids.extend(ids);
    }
    Ok(false)
}

/// One line without its line end; the end of the connection is an error.
fn line(reader: &mut BufReader<TcpStream>) -> Result<String, String> {
    let mut line = String::new();
    match reader.by_ref().take(4096).read_line(&mut line) {
        Ok(0) => Err("closed without the terminating chunk".into()),
        Ok(_) => Ok(line.trim_end().to_owned()),
        Err(error) => Err(format!("read: {error}")),
    }
}
