//! The floor the counter is measured against (`LOAD_FLOOR=1`): a bare tiny_http server with one
//! thread per stream, each writing `<p>This is N.</p>` on the counter's schedule (`start + k ×
//! interval`) through tiny_http's raw writer, and nothing around it: no screening, no sweep, no
//! capacity, no keep-alive. What the server costs above it is what its layer costs. Its
//! clients say `Connection: close`, without which tiny_http's pool thread for each connection
//! waits on it for a next request, and a connection accepted while every pool thread waits so is
//! never read: a few dozen streams would do.
//!
//! It runs in this bench's own binary, started again as `load --floor PORT INTERVAL_MS` (see
//! `main`), so that its CPU and memory are a process of their own, measured like the server's.

use std::io::Write;
use std::thread;
use std::time::{Duration, Instant};

/// The arguments that make this binary the floor: `--floor PORT INTERVAL_MS`.
pub const ARG: &str = "--floor";

/// The counter's stream thread stack (the server's `STACK_SIZE`): the same memory per stream.
const STACK_SIZE: usize = 128 * 1024;

/// The server's listen backlog (`LISTEN_BACKLOG`). `tiny_http::Server::http` listens with std's
/// 128, and a burst of 1,000 connects then overflows the queue: the dropped handshakes come back
/// after the kernel's 1 s retry, which would measure the queue rather than the streams.
const LISTEN_BACKLOG: i32 = 4096;

/// `PORT INTERVAL_MS` if this process was started as the floor.
pub fn requested() -> Option<(u16, Duration)> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match &args[..] {
        [flag, port, interval_ms] if flag == ARG => Some((
            port.parse().ok()?,
            Duration::from_millis(interval_ms.parse().ok()?),
        )),
        _ => None,
    }
}

/// Serves `GET /connect` as the counter's stream, and any other request with `200 ok`, on
/// 127.0.0.1:`port`, until killed.
pub fn serve(port: u16, interval: Duration) -> ! {
    let server = match listener(port).and_then(|listener| {
        tiny_http::Server::from_listener(listener, None).map_err(std::io::Error::other)
    }) {
        Ok(server) => server,
        Err(error) => {
            eprintln!("load --floor: cannot listen on port {port}: {error}");
            std::process::exit(1);
        }
    };
    loop {
        let Ok(request) = server.recv() else { continue };
        if request.url() != "/connect" {
            let _ = request.respond(tiny_http::Response::from_string("ok"));
            continue;
        }
        let spawned = thread::Builder::new()
            .stack_size(STACK_SIZE)
            .spawn(move || stream(request, interval));
        if let Err(error) = spawned {
            eprintln!("load --floor: no thread for a stream: {error}");
        }
    }
}

/// A listener on 127.0.0.1:`port` with the server's backlog; nothing else set.
fn listener(port: u16) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&std::net::SocketAddr::from(([127, 0, 0, 1], port)).into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(socket.into())
}

/// One stream: the head, then an event at each tick until a write fails.
fn stream(request: tiny_http::Request, interval: Duration) {
    let mut writer = request.into_writer();
    let head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nCache-Control: no-cache\r\n\
                Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
    if writer
        .write_all(head.as_bytes())
        .and_then(|()| writer.flush())
        .is_err()
    {
        return;
    }
    let start = Instant::now();
    for n in 1u64.. {
        let event = if n == 1 {
            format!("retry: 3000\ndata: <p>This is {n}.</p>\n\n")
        } else {
            format!("data: <p>This is {n}.</p>\n\n")
        };
        let frame = format!("{:x}\r\n{event}\r\n", event.len());
        if writer
            .write_all(frame.as_bytes())
            .and_then(|()| writer.flush())
            .is_err()
        {
            return;
        }
        thread::sleep((start + interval * n as u32).saturating_duration_since(Instant::now()));
    }
}
