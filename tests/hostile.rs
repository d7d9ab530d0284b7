//! Hostile and broken clients, each against the real server on 127.0.0.1: the server answers
//! with a clear 4xx or closes the connection, keeps serving everyone else, and keeps nothing.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::process::THIS_BUILD;
use common::{EventStream, ServerProcess, TestServer, connect, request, wait_for};

const INTERVAL: Duration = Duration::from_millis(50);

/// Sends raw bytes and returns everything the server sends back until it closes (or 3 s).
fn exchange(addr: SocketAddr, bytes: &[u8]) -> Vec<u8> {
    let mut socket = connect(addr);
    socket
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    // The server may close before reading everything; that is an answer too.
    let _ = socket.write_all(bytes);
    let mut answer = Vec::new();
    let _ = socket.read_to_end(&mut answer);
    answer
}

fn status_of(answer: &[u8]) -> Option<u16> {
    let text = String::from_utf8_lossy(answer);
    text.strip_prefix("HTTP/1.1 ")
        .or_else(|| text.strip_prefix("HTTP/1.0 "))?
        .get(..3)?
        .parse()
        .ok()
}

fn still_serving(addr: SocketAddr) {
    assert_eq!(
        request(addr, "POST", "/ping", "").status,
        200,
        "the server still answers"
    );
}

#[test]
fn malformed_requests_get_a_4xx_or_a_close() {
    let server = TestServer::with(|c| c.idle_timeout = Duration::from_millis(500));
    let big_header = format!(
        "GET / HTTP/1.1\r\nX-Big: {}\r\n\r\n",
        "a".repeat(100 * 1024)
    );
    let many_headers = format!(
        "GET / HTTP/1.1\r\n{}\r\n",
        (0..5000)
            .map(|i| format!("X-H{i}: v\r\n"))
            .collect::<String>()
    );
    let cases: Vec<(&str, Vec<u8>, Option<u16>)> = vec![
        (
            "garbage request line",
            b"HELLO THERE\r\n\r\n".to_vec(),
            Some(400),
        ),
        ("100 KiB header line", big_header.into_bytes(), Some(431)),
        ("5000 headers", many_headers.into_bytes(), Some(431)),
        (
            "invalid UTF-8 in the path",
            b"GET /\xff\xfe HTTP/1.1\r\n\r\n".to_vec(),
            None,
        ),
        (
            "unparsable Content-Length",
            b"POST /ping HTTP/1.1\r\nContent-Length: 99999999999999999999999\r\n\r\n".to_vec(),
            Some(400),
        ),
        (
            "unknown HTTP version",
            b"GET / HTTP/3.7x\r\n\r\n".to_vec(),
            Some(400),
        ),
    ];
    for (name, bytes, expected) in cases {
        let answer = exchange(server.addr, &bytes);
        match expected {
            Some(status) => assert_eq!(status_of(&answer), Some(status), "{name}"),
            // Nothing better than closing: the answer, if any, is an error.
            None => assert!(
                answer.is_empty() || status_of(&answer).is_some_and(|s| (400..500).contains(&s)),
                "{name}: {:?}",
                String::from_utf8_lossy(&answer)
            ),
        }
        still_serving(server.addr);
    }
}

#[test]
fn a_long_request_target_is_414_and_its_log_line_is_cut() {
    let server = ServerProcess::start_capturing_stderr(&[]);
    let path = format!("/{}", "a".repeat(1024 * 1024));
    let answer = exchange(
        server.addr,
        format!("GET {path} HTTP/1.1\r\n\r\n").as_bytes(),
    );
    assert_eq!(status_of(&answer), Some(414));
    assert!(answer.len() < 4096, "not echoed: {} bytes", answer.len());
    let logged = || {
        let log = server.stderr();
        let line = log.lines().find(|line| line.contains(" 414 "))?.to_owned();
        Some(line)
    };
    assert!(wait_for(Duration::from_secs(5), || logged().is_some()));
    let line = logged().unwrap();
    assert!(
        line.starts_with(&format!("GET {} 414 ", &path[..1024])),
        "{line:.100}"
    );
    still_serving(server.addr);
}

#[test]
fn an_http2_preface_is_closed_and_costs_no_one_else() {
    // tiny_http answers a request line above HTTP/1.1 with a response that waits for itself, so
    // the connection gets no answer; the idle sweep closes it.
    let server = TestServer::with(|c| c.idle_timeout = Duration::from_millis(300));
    let started = Instant::now();
    let answer = exchange(server.addr, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n");
    assert!(status_of(&answer).is_none_or(|s| s >= 400), "{answer:?}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "closed, not left hanging"
    );
    still_serving(server.addr);
}

#[test]
fn paths_reach_nothing_outside_the_embedded_assets() {
    let server = TestServer::start(INTERVAL);
    for path in [
        "/assets/../Cargo.toml",
        "/assets/..%2f..%2fetc%2fpasswd",
        "/../../../../etc/passwd",
        "/assets/%2e%2e/src/main.rs",
        "/assets//htmx.min.js",
        "/assets/htmx.min.js/..",
        "/src/main.rs",
    ] {
        let response = request(server.addr, "GET", path, "");
        assert_eq!(response.status, 404, "{path}");
        assert!(!response.text().contains("fn main"), "{path}");
    }
}

#[test]
fn a_large_body_is_refused_without_stalling_the_server() {
    let server = TestServer::start(INTERVAL);
    // Declares 100 KiB and sends only part of it, then waits: the refusal must not wait for the
    // rest (it would stall every other request).
    let mut slow = connect(server.addr);
    slow.write_all(b"POST /ping HTTP/1.1\r\nHost: x\r\nContent-Length: 102400\r\n\r\n")
        .unwrap();
    slow.write_all(&[b'x'; 2000]).unwrap();
    let mut answer = [0; 12];
    slow.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"HTTP/1.1 413");
    still_serving(server.addr);
}

#[test]
fn an_absurd_content_length_is_refused_and_the_server_lives() {
    let server = TestServer::start(INTERVAL);
    // tiny_http would discard this body into a buffer of its declared size, which aborts.
    let answer = exchange(
        server.addr,
        b"POST /ping HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000000000\r\n\r\n",
    );
    assert_eq!(status_of(&answer), Some(413));
    still_serving(server.addr);
    let metrics = request(server.addr, "GET", "/metrics", "").text();
    assert!(
        metrics.contains("http_requests_parked_total 1\n"),
        "{metrics}"
    );
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let server = TestServer::start(INTERVAL);
    let answer = exchange(
        server.addr,
        b"POST /ping HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n\
          POST /pong HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n\
          GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    let text = String::from_utf8_lossy(&answer);
    let pong = text.find(">Pong</button>").expect("the answer to /ping");
    let ping = text.find(">Ping</button>").expect("the answer to /pong");
    let ok = text.rfind("ok\n").expect("the answer to /healthz");
    assert!(pong < ping && ping < ok, "{text}");
    assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 3);
}

#[test]
fn responses_carry_the_security_headers() {
    let server = TestServer::with(|c| {
        c.interval = INTERVAL;
        c.max_streams = Some(1);
    });
    let stream = EventStream::open(server.addr);
    let mut responses = vec![("stream", stream.head)];
    for (method, path) in [
        ("GET", "/"),
        ("GET", "/on-demand"),
        ("POST", "/pong"),
        ("POST", "/start-connection"),
        ("GET", "/assets/htmx.min.js"),
        ("GET", "/nope"),
        ("GET", "/ping"),
        ("GET", "/connect"), // 503: the one stream is taken
    ] {
        responses.push((path, request(server.addr, method, path, "")));
    }
    for (what, response) in &responses {
        assert_eq!(
            response.header("X-Content-Type-Options"),
            Some("nosniff"),
            "{what}"
        );
        assert_eq!(
            response.header("Referrer-Policy"),
            Some("no-referrer"),
            "{what}"
        );
        let csp = response
            .header("Content-Security-Policy")
            .unwrap_or_default();
        assert!(
            csp.contains("default-src 'self'") && csp.contains("script-src 'self'"),
            "{what}"
        );
        assert!(
            !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
            "{what}"
        );
    }
}

/// Its log line says that the client stopped reading, not that it left.
#[test]
fn a_client_that_stops_reading_loses_its_stream_not_a_thread() {
    let server =
        ServerProcess::start_capturing_stderr(&["--interval", "1ms", "--write-timeout", "300ms"]);
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&server.addr.into()).unwrap();
    let mut socket: TcpStream = socket.into();
    socket
        .write_all(b"GET /connect HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    // Never read: the buffers fill, a write blocks, the write timeout ends the stream.
    let closed = || {
        let stderr = server.stderr();
        stderr
            .lines()
            .find(|line| line.contains(" closed: "))
            .map(str::to_owned)
    };
    assert!(wait_for(Duration::from_secs(60), || closed().is_some()));
    let closed = closed().unwrap();
    assert!(
        closed.ends_with(", client stopped reading (no room to write for 0.3s)"),
        "{closed}"
    );
    still_serving(server.addr);
    assert!(wait_for(Duration::from_secs(2), || {
        common::threads_named(server.pid(), "sse-stream") == 0
    }));
    drop(socket);
}

/// A client that pipelines thousands of requests and reads no answer holds one writer thread,
/// and a few answers, before its connection is closed; others are answered meanwhile.
#[test]
fn a_client_pipelining_without_reading_holds_one_writer_and_is_closed() {
    let server = ServerProcess::start_capturing_stderr(&[]);
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(2048).unwrap();
    socket.connect(&server.addr.into()).unwrap();
    let mut socket: TcpStream = socket.into();
    socket
        .set_write_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let asset = "GET /assets/htmx.min.js HTTP/1.1\r\nHost: x\r\n\r\n";
    // The server may close the connection before it has read them all.
    let _ = socket.write_all(asset.repeat(3000).as_bytes());
    assert!(
        wait_for(Duration::from_secs(10), || server
            .stderr()
            .contains("answers unread; closing the connection")),
        "{}",
        server.stderr()
    );
    assert!(common::threads_named(server.pid(), "sse-write") <= 2);
    let asked = Instant::now();
    still_serving(server.addr);
    assert!(asked.elapsed() < Duration::from_secs(2));
    drop(socket);
}

#[test]
fn a_panic_in_a_stream_ends_that_stream_only() {
    let server = TestServer::with(|c| {
        c.interval = INTERVAL;
        c.panic_at_event = Some(2);
    });
    let mut doomed = EventStream::open(server.addr);
    assert_eq!(doomed.next_event().0.id.as_deref(), Some("0"));
    assert_eq!(doomed.next_event().0.id.as_deref(), Some("1"));
    let mut rest = Vec::new();
    doomed
        .into_inner()
        .read_to_end(&mut rest)
        .expect("closed, not hanging");
    assert!(wait_for(Duration::from_secs(1), || server.live_streams() == 0));
    // Others go on: a stream resumed past the fatal id, and ordinary requests.
    let mut healthy = EventStream::open_with(server.addr, "Last-Event-ID: 5\r\n");
    assert_eq!(healthy.next_event().0.id.as_deref(), Some("6"));
    assert_eq!(healthy.next_event().0.id.as_deref(), Some("7"));
    still_serving(server.addr);
}

#[test]
fn vanishing_clients_leave_no_thread_or_descriptor() {
    common::raise_open_files();
    let server = ServerProcess::start(&["--interval", "20ms"]);
    for _ in 0..4 {
        EventStream::open(server.addr).next_event();
    }
    std::thread::sleep(Duration::from_millis(200));
    let (threads, fds) = (server.threads(), server.open_fds());
    for round in 0..50 {
        let mut stream = EventStream::open(server.addr);
        stream.next_event();
        let socket = stream.into_inner();
        match round % 3 {
            // Reset mid-stream: close with SO_LINGER 0 sends RST.
            0 => socket2::SockRef::from(&socket)
                .set_linger(Some(Duration::ZERO))
                .unwrap(),
            // Half-close, then go.
            1 => socket.shutdown(Shutdown::Write).unwrap(),
            // Close between two chunks.
            _ => std::thread::sleep(Duration::from_millis(10)),
        }
        drop(socket);
    }
    assert!(
        wait_for(Duration::from_secs(8), || server.threads() <= threads
            && server.open_fds() <= fds),
        "{} threads (before {threads}), {} descriptors (before {fds})",
        server.threads(),
        server.open_fds()
    );
}

/// A client that resets right after its request can make tiny_http 0.12.0 panic on one of its
/// pool threads (it unwraps the peer's address, which the socket no longer has). That is one log
/// line, like a panic the layer fences, and nothing with `--quiet`; never Rust's message. The
/// thread is replaced: without that, connections queued for it wait unanswered, and those that
/// reset hold their descriptors as connections held for good do, which makes the server heal.
#[test]
fn resets_right_after_requests_are_log_lines_and_cost_no_thread() {
    for quiet in [false, true] {
        let mut server =
            ServerProcess::start_capturing_stderr(if quiet { &["--quiet"] } else { &[] });
        for _ in 0..10 {
            for _ in 0..40 {
                let mut socket = connect(server.addr);
                socket
                    .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
                    .unwrap();
                socket2::SockRef::from(&socket)
                    .set_linger(Some(Duration::ZERO))
                    .unwrap();
            }
            let mut ping = connect(server.addr);
            ping.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
            ping.write_all(b"POST /ping HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
                .unwrap();
            let mut answer = [0; 12];
            let answered = ping.read_exact(&mut answer).is_ok();
            assert!(
                answered && answer == *b"HTTP/1.1 200",
                "{}",
                server.stderr()
            );
        }
        server.signal("TERM");
        assert!(
            server
                .wait_exit(Duration::from_secs(5))
                .is_some_and(|status| status.success())
        );
        let stderr = server.stderr();
        assert!(
            !stderr.contains("panicked") && !stderr.contains("re-executing"),
            "{stderr}"
        );
        if quiet {
            assert_eq!(stderr, "", "a quiet server wrote on stderr");
        }
        for panic in stderr.lines().filter(|line| line.contains("panic")) {
            assert!(
                panic.starts_with("panic in a thread at ")
                    && panic.contains("/tiny_http-0.12.0/src/client.rs:"),
                "{stderr}"
            );
        }
    }
}

/// Uploads cut short by a reset, each refused once its client has gone, are dropped: with the
/// connection gone, discarding the rest of a body ends at once. Only a body beyond memory keeps
/// its tiny_http thread for good; kept for these, 33 of them made the server re-execute, which
/// ends every stream.
#[test]
fn uploads_cut_short_by_a_reset_are_dropped_not_kept_for_good() {
    let server = ServerProcess::start_capturing_stderr(&[]);
    let mut bystander = EventStream::open(server.addr);
    bystander.next_event();
    let threads = server.threads();
    let uploads: Vec<TcpStream> = (0..40)
        .map(|_| {
            let mut socket = connect(server.addr);
            socket
                .write_all(
                    b"POST /feeds/x HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n\
                      Expect: 100-continue\r\nContent-Length: 50\r\n\r\n",
                )
                .unwrap();
            socket
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    for socket in uploads {
        socket2::SockRef::from(&socket)
            .set_linger(Some(Duration::ZERO))
            .unwrap();
    }
    assert!(
        wait_for(Duration::from_secs(8), || server.threads() <= threads),
        "{} threads, {threads} before: {}",
        server.threads(),
        server.stderr()
    );
    still_serving(server.addr);
    // The server did not re-execute: the stream goes on.
    bystander.next_event();
    let stderr = server.stderr();
    assert!(
        !stderr.contains("parked for good") && !stderr.contains("re-executing"),
        "{stderr}"
    );
}

#[test]
fn idle_connections_are_closed_after_the_idle_timeout() {
    common::raise_open_files();
    let server = ServerProcess::start(&["--idle-timeout", "500ms"]);
    let idle: Vec<_> = (0..200).map(|_| connect(server.addr)).collect();
    let keepalive = connect(server.addr);
    (&keepalive)
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    for mut socket in idle.into_iter().chain([keepalive]) {
        let mut rest = Vec::new();
        let started = Instant::now();
        socket
            .read_to_end(&mut rest)
            .expect("closed by the server, not a timeout");
        assert!(started.elapsed() < Duration::from_secs(3));
    }
}

/// tiny_http reads a head with no limit, into memory, until its line ends: one that never ends
/// is closed once it has sent a MiB or so, not after the idle timeout, and the server says so
/// and serves on.
#[test]
fn a_head_that_never_ends_is_closed_long_before_the_idle_timeout() {
    closed_while_sending_endlessly(b"GET / HTTP/1.1\r\nHost: x\r\nX-Endless: ", b'a');
}

/// So is a chunked body whose size line never ends, which its decoder holds in memory, and which
/// its deadline, looked at between reads, would not end while the bytes keep coming.
#[test]
fn a_chunk_size_line_that_never_ends_is_closed_long_before_the_body_deadline() {
    let head = b"POST /chat/messages HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\n\
                 Transfer-Encoding: chunked\r\n\r\n";
    closed_while_sending_endlessly(head, b'1');
}

/// Sends `start`, then `byte` over and over (up to about 12 MiB a second, as fast as the server
/// reads it), until the server says it has closed the connection; asserts it did, soon.
fn closed_while_sending_endlessly(start: &[u8], byte: u8) {
    let server = ServerProcess::start_logging_all(&["--idle-timeout", "60s"]);
    let mut socket = connect(server.addr);
    socket
        .set_write_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    socket.write_all(start).unwrap();
    let said = || {
        server
            .stderr_tail()
            .iter()
            .any(|line| line.contains("bytes sent and no whole request"))
    };
    let chunk = [byte; 64 * 1024];
    let started = Instant::now();
    let mut sent = 0;
    while !said() && started.elapsed() < Duration::from_secs(30) {
        match socket.write(&chunk) {
            Ok(written) => sent += written,
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(error) if error.kind() == std::io::ErrorKind::TimedOut => {}
            Err(_) => break,
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        wait_for(Duration::from_secs(5), said),
        "not closed after {} KiB in {:?}: {:?}",
        sent >> 10,
        started.elapsed(),
        server.stderr_tail()
    );
    assert!(sent < 48 << 20, "closed after {} MiB", sent >> 20);
    still_serving(server.addr);
}

/// Connections that send nothing are held back by the kernel until the idle timeout, so they
/// cost no thread, and a request right after 2,000 of them waits for no thread to start.
#[test]
fn two_thousand_idle_connections_do_not_slow_healthy_clients() {
    common::raise_open_files();
    let server = ServerProcess::start(&["--idle-timeout", "60s"]);
    assert_eq!(request(server.addr, "POST", "/ping", "").status, 200);
    let threads = server.threads();
    let idle: Vec<_> = (0..2000).map(|_| connect(server.addr)).collect();
    let mut latencies: Vec<Duration> = (0..200)
        .map(|_| {
            let started = Instant::now();
            assert_eq!(request(server.addr, "POST", "/ping", "").status, 200);
            started.elapsed()
        })
        .collect();
    latencies.sort();
    let p99 = latencies[latencies.len() * 99 / 100];
    assert!(
        p99 < Duration::from_millis(100),
        "POST /ping p99 {p99:?} with 2000 idle connections"
    );
    assert!(
        server.threads() < threads + 100,
        "{} threads with 2000 idle connections, {threads} before",
        server.threads()
    );
    drop(idle);
}

/// 600 connections to `addr` that each send the first byte of a request (one that sends nothing
/// is not passed on to be accepted), held for half a second while `meanwhile` runs.
fn flood(addr: SocketAddr, meanwhile: impl FnOnce()) {
    let flood: Vec<_> = (0..600)
        .filter_map(|_| {
            let mut socket = TcpStream::connect(addr).ok()?;
            socket.write_all(b"G").ok()?;
            Some(socket)
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    meanwhile();
    drop(flood);
}

/// Whether the server at `addr` answers `/healthz` again within 30 s.
fn serves_again(addr: SocketAddr) -> bool {
    wait_for(Duration::from_secs(30), || {
        TcpStream::connect(addr).is_ok_and(|mut socket| {
            let head = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
            let _ = socket.set_read_timeout(Some(Duration::from_millis(500)));
            let _ = socket.write_all(head);
            let mut answer = String::new();
            let _ = socket.read_to_string(&mut answer);
            answer.ends_with("ok\n")
        })
    })
}

#[test]
fn once_a_flood_has_passed_the_request_loop_sleeps_again() {
    common::raise_open_files();
    // As below, with a short idle timeout: a server whose accept thread reported its error is
    // polled for the requests of its connections until it has handed in none for twice that.
    // Whether the accept thread reports an error or panics (then no server is kept to poll)
    // depends on which of its two calls runs out of descriptors, so the flood comes again, a few
    // times at most, until one did report.
    let (limit, args) = (
        ["prlimit", "--nofile=256:256", "--"],
        ["--idle-timeout", "1s"],
    );
    let server = ServerProcess::launch_logging(THIS_BUILD.as_ref(), &limit, &args).unwrap();
    for _ in 0..4 {
        flood(server.addr, || {});
        assert!(serves_again(server.addr), "serving again after the flood");
        if server.stderr().contains("accepting stopped") {
            break;
        }
    }
    std::thread::sleep(Duration::from_secs(3));
    // The request loop is the main thread; polling, it would wake 20 times a second.
    let pid = server.child.id();
    let wakeups = || {
        let schedstat = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/schedstat"));
        let slices = schedstat
            .unwrap()
            .split_whitespace()
            .nth(2)
            .map(str::to_owned);
        slices.unwrap().parse::<u64>().unwrap()
    };
    let before = wakeups();
    std::thread::sleep(Duration::from_secs(2));
    let woken = wakeups() - before;
    assert!(
        woken < 10,
        "the request loop woke {woken} times in 2 s with no request"
    );
}

#[test]
fn a_flood_past_the_descriptor_limit_does_not_stop_accepting_for_good() {
    common::raise_open_files();
    // A server allowed 256 descriptors, flooded.
    let mut server = ServerProcess::start_with_prefix(&["prlimit", "--nofile=256:256", "--"], &[]);
    flood(server.addr, || {
        assert!(
            server.child.try_wait().unwrap().is_none(),
            "the server is alive"
        );
    });
    // Once the flood is gone it serves again by itself, within seconds: at once if tiny_http's
    // accept thread reported its error, and after the watchdog's next probe went unaccepted if
    // it panicked instead (a probe every 2 s, a second's patience, found at a sweep's look),
    // which on a machine busy with other tests has taken over 10 s.
    assert!(serves_again(server.addr), "serving again after the flood");
    let mut stream = EventStream::open(server.addr);
    assert_eq!(stream.next_event().0.id.as_deref(), Some("0"));
}
