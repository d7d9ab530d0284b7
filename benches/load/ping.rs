//! `POST /ping`, timed from a second thread while the streams are held: do ordinary requests
//! still get through? And the plain request that it and the fan-out's publisher send.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use crate::parser::MAX_HEAD;
use crate::settings::{PING_EVERY, PING_TIMEOUT};
use crate::stats::Spread;

#[derive(Default)]
pub struct PingStats {
    pub sent: usize,
    pub latencies_ms: Vec<f64>,
    pub failures: usize,
    pub first_failure: Option<String>,
}

impl PingStats {
    pub fn spread(&self) -> Option<Spread> {
        Spread::of(&mut self.latencies_ms.clone())
    }
}

/// Sends `POST /ping` every [`PING_EVERY`] until `until`, each on a fresh blocking connection,
/// and times each from the start of its connect to the end of its response.
pub fn ping_until(addr: SocketAddr, until: Instant) -> PingStats {
    let mut stats = PingStats::default();
    let start = Instant::now();
    for i in 0.. {
        let due = start + PING_EVERY * i;
        if due >= until {
            break;
        }
        // A slow answer delays the next request rather than bunching them up.
        thread::sleep(due.saturating_duration_since(Instant::now()));
        stats.sent += 1;
        let started = Instant::now();
        match ping_once(addr) {
            Ok(()) => stats
                .latencies_ms
                .push(started.elapsed().as_secs_f64() * 1e3),
            Err(error) => {
                stats.failures += 1;
                stats.first_failure.get_or_insert(error);
            }
        }
    }
    stats
}

pub fn ping_once(addr: SocketAddr) -> Result<(), String> {
    let request = format!(
        "POST /ping HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    let status = request_status(addr, request.as_bytes(), PING_TIMEOUT)?;
    if status != 200 {
        return Err(format!("status {status}"));
    }
    Ok(())
}

/// Sends `request` on a fresh blocking connection and returns the status of the response, read
/// to the end of its body. `timeout` bounds the connect and each read and write.
pub fn request_status(addr: SocketAddr, request: &[u8], timeout: Duration) -> Result<u16, String> {
    let mut stream =
        TcpStream::connect_timeout(&addr, timeout).map_err(|error| format!("connect: {error}"))?;
    let timeouts = stream
        .set_read_timeout(Some(timeout))
        .and_then(|()| stream.set_write_timeout(Some(timeout)));
    timeouts.map_err(|error| format!("socket options: {error}"))?;
    stream
        .write_all(request)
        .map_err(|error| format!("write: {error}"))?;
    read_response(&mut stream).map_err(|error| match error.kind() {
        // What a read timeout looks like on Linux (EAGAIN).
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
            format!("read: no answer within {} s", timeout.as_secs_f64())
        }
        _ => format!("read: {error}"),
    })
}

/// Reads one response with a `Content-Length` body and returns its status. It stops at the end
/// of the body rather than waiting for the server to close.
fn read_response(stream: &mut TcpStream) -> io::Result<u16> {
    let mut response = Vec::with_capacity(1024);
    let mut buf = [0; 4096];
    loop {
        let n = stream.read(&mut buf)?;
        if n == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        response.extend_from_slice(&buf[..n]);
        let Some(head_end) = response.windows(4).position(|w| w == b"\r\n\r\n") else {
            if response.len() > MAX_HEAD {
                return Err(io::Error::other("head too long"));
            }
            continue;
        };
        let head = String::from_utf8_lossy(&response[..head_end]);
        let status = head
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| io::Error::other("bad status line"))?;
        let length: usize = head
            .lines()
            .filter_map(|line| line.split_once(':'))
            .find(|(name, _)| name.trim().eq_ignore_ascii_case("content-length"))
            .and_then(|(_, value)| value.trim().parse().ok())
            .unwrap_or(0);
        if response.len() >= head_end + 4 + length {
            return Ok(status);
        }
    }
}
