//! Every listening address serves the same: `127.0.0.1`, the host's own addresses, `0.0.0.0`,
//! `[::]` (dual-stack) and `[::1]`, each reached through every address that leads to it
//! (loopback of either family, and the host's own addresses, found at run time).
//!
//! The server finds tiny_http's connections by their local address, which on a wildcard is the
//! address a client came in on, never the listener's; and it connects to its own listener (the
//! accept watchdog's probe, the pool's nudge). Each of those shows here: a chat message reaches
//! a subscriber (the fan-out writes through the connection's socket), `/connect` streams, an
//! idle connection is closed and logged with its peer, an oversized body is refused and its
//! connection closed, `/healthz` answers at once, and the watchdog never finds the accept
//! thread gone.

mod common;

use std::io::{BufReader, ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::host::{own_ipv4, own_ipv6};
use common::{EventStream, ServerProcess, connect, read_head, request, wait_for};

/// Short, so that an idle connection is closed within the test.
const IDLE: Duration = Duration::from_millis(700);

/// The accept watchdog probes at its first sweep and gives a probe one second to be accepted;
/// a server that has run this long has had a probe judged. Its absence of complaint can only be
/// seen by letting that time pass.
const WATCHDOG_VERDICT: Duration = Duration::from_millis(2500);

/// Longer than any of these requests takes on a busy machine, far shorter than a hang.
const PROMPT: Duration = Duration::from_millis(1500);

const LOOPBACK_V4: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const LOOPBACK_V6: IpAddr = IpAddr::V6(Ipv6Addr::LOCALHOST);

#[test]
fn loopback_v4() {
    serves("127.0.0.1:0", &[LOOPBACK_V4]);
}

#[test]
fn loopback_v6() {
    serves("[::1]:0", &[LOOPBACK_V6]);
}

#[test]
fn every_ipv4_interface() {
    let mut through = vec![LOOPBACK_V4];
    through.extend(own_ipv4());
    serves("0.0.0.0:0", &through);
}

#[test]
fn every_interface_dual_stack() {
    let mut through = vec![LOOPBACK_V4, LOOPBACK_V6];
    through.extend(own_ipv4());
    through.extend(own_ipv6());
    serves("[::]:0", &through);
}

#[test]
fn the_hosts_own_ipv4_address() {
    match own_ipv4() {
        Some(ip) => serves(&SocketAddr::new(ip, 0).to_string(), &[ip]),
        None => println!("note: the host has no IPv4 address beside loopback; not tried"),
    }
}

#[test]
fn the_hosts_own_ipv6_address() {
    match own_ipv6() {
        Some(ip) => serves(&SocketAddr::new(ip, 0).to_string(), &[ip]),
        None => println!("note: the host has no global IPv6 address; not tried"),
    }
}

/// Starts the server on `listen` and checks everything through each address of `through`.
fn serves(listen: &str, through: &[IpAddr]) {
    if !through.iter().any(|ip| !ip.is_loopback()) && !listen.starts_with(['1', '[']) {
        println!("note: {listen} reached through loopback only (no other address on this host)");
    }
    let idle = IDLE.as_millis().to_string() + "ms";
    let mut server = ServerProcess::start_logging_all(&[
        "--addr",
        listen,
        "--idle-timeout",
        &idle,
        "--interval",
        "100ms",
    ]);
    let started = Instant::now();
    let port = server.addr.port();
    let targets: Vec<SocketAddr> = through.iter().map(|&ip| (ip, port).into()).collect();

    // Opened first, so that their idle time runs while the rest is checked; each waits for its
    // end on a thread of its own, which notes when it came.
    let idle: Vec<_> = targets
        .iter()
        .map(|&target| {
            // Before the connection exists, so before the server can start its idle time.
            let opened = Instant::now();
            let stream = connect(target);
            // As the log shows it: an IPv4 client of `[::]` by its IPv4 address, not mapped.
            let peer = stream.local_addr().unwrap();
            (
                peer,
                std::thread::spawn(move || closed_when_idle(stream, opened)),
            )
        })
        .collect();
    for &target in &targets {
        healthz_is_prompt(target);
        a_chat_message_reaches_a_subscriber(target, &server);
        connect_streams(target, &server);
        an_oversized_body_is_refused_and_closed(target);
    }
    for (peer, closed) in idle {
        closed.join().unwrap();
        let logged = format!("closed idle connection {peer}");
        assert!(
            wait_for(PROMPT, || server.stderr().contains(&logged)),
            "{listen}: {logged:?} in the log:\n{}",
            server.stderr()
        );
    }
    let verdict = started + WATCHDOG_VERDICT;
    std::thread::sleep(verdict.saturating_duration_since(Instant::now()));
    let log = server.stderr();
    for complaint in ["accept thread is gone", "accepting again"] {
        assert!(!log.contains(complaint), "{listen}: {complaint:?}:\n{log}");
    }
    assert!(server.is_alive(), "{listen}: {}", server.exit_description());
}

fn healthz_is_prompt(target: SocketAddr) {
    for _ in 0..5 {
        let asked = Instant::now();
        let response = request(target, "GET", "/healthz", "");
        assert_eq!(response.status, 200, "{target}: {}", response.status_line);
        assert!(
            asked.elapsed() < PROMPT,
            "{target}: took {:?}",
            asked.elapsed()
        );
    }
}

fn a_chat_message_reaches_a_subscriber(target: SocketAddr, server: &ServerProcess) {
    let mut subscriber = EventStream::open_path(target, "/chat/stream", "");
    assert_eq!(subscriber.head.status, 200, "{target}");
    let text = format!("through {target}");
    let mut stream = connect(target);
    let publisher = stream.local_addr().unwrap();
    write!(
        stream,
        "POST /chat/messages HTTP/1.1\r\nHost: {target}\r\nConnection: close\r\n\
         Content-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\r\n{text}",
        text.len()
    )
    .unwrap();
    let answer = read_head(&mut BufReader::new(stream));
    assert_eq!(answer.status, 201, "{target}: {}", answer.status_line);
    let published = Instant::now();
    loop {
        let (event, _) = subscriber.next_event();
        if event
            .data
            .is_some_and(|data| data.contains(&format!(">{text}<")))
        {
            break;
        }
    }
    assert!(
        published.elapsed() < PROMPT,
        "{target}: {:?}",
        published.elapsed()
    );
    let logged = format!(" from {publisher}, ");
    assert!(
        wait_for(PROMPT, || server.stderr().contains(&logged)),
        "{target}: {logged:?} in the log:\n{}",
        server.stderr()
    );
}

fn connect_streams(target: SocketAddr, server: &ServerProcess) {
    let mut stream = EventStream::open(target);
    assert_eq!(stream.head.status, 200, "{target}");
    let (first, _) = stream.next_event();
    let (second, _) = stream.next_event();
    assert_ne!(first.id, second.id, "{target}");
    let peer = stream.into_inner().local_addr().unwrap();
    let logged = format!("stream {peer} opened");
    assert!(
        wait_for(PROMPT, || server.stderr().contains(&logged)),
        "{target}: {logged:?} in the log:\n{}",
        server.stderr()
    );
}

/// A body over the chat's limit is refused without being read, and its connection closed.
fn an_oversized_body_is_refused_and_closed(target: SocketAddr) {
    let mut stream = connect(target);
    write!(
        stream,
        "POST /chat/messages HTTP/1.1\r\nHost: {target}\r\n\
         Content-Type: text/plain; charset=utf-8\r\nContent-Length: 20000\r\n\r\n"
    )
    .unwrap();
    let asked = Instant::now();
    let mut reader = BufReader::new(stream);
    let head = read_head(&mut reader);
    assert_eq!(head.status, 413, "{target}: {}", head.status_line);
    let mut rest = Vec::new();
    let ended = reader.read_to_end(&mut rest);
    assert!(
        ended.is_ok()
            || ended
                .as_ref()
                .is_err_and(|e| e.kind() == ErrorKind::ConnectionReset),
        "{target}: the connection was closed: {ended:?}"
    );
    assert!(
        asked.elapsed() < PROMPT,
        "{target}: took {:?}",
        asked.elapsed()
    );
}

/// The server closes `stream`, which sends nothing, once it has been idle for [`IDLE`] since it
/// was `opened`.
fn closed_when_idle(mut stream: TcpStream, opened: Instant) {
    let target = stream.peer_addr().unwrap();
    let read = stream.read(&mut [0; 16]);
    let after = opened.elapsed();
    assert!(
        matches!(read, Ok(0))
            || read
                .as_ref()
                .is_err_and(|e| e.kind() == ErrorKind::ConnectionReset),
        "{target}: closed, not {read:?}"
    );
    assert!(
        after >= IDLE,
        "{target}: closed after {after:?}, before the idle timeout"
    );
    assert!(
        after < IDLE + PROMPT,
        "{target}: closed only after {after:?}"
    );
}
