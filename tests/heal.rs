//! A storm of requests whose threads and descriptors tiny_http never gives back, against the
//! real binary under a low open-file limit: within 10 s of the storm's end the server is back by
//! itself (it re-execs, see `tiny::heal`), and the pages that were open lost nothing.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::page::Page;
use common::process::THIS_BUILD;
use common::{EventStream, ServerProcess, connect, read_head, request, wait_for};

/// The requests of the storm: each keeps a tiny_http thread and its descriptors for good.
const SHAPES: [&[u8]; 4] = [
    // What `curl --http2-prior-knowledge` sends first.
    b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n",
    b"GET / HTTP/1.2\r\nHost: x\r\n\r\n",
    b"GET / HTTP/2.0\r\nHost: x\r\n\r\n",
    b"POST /chat/messages HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000000000\r\n\r\nabc",
];

/// Of each shape.
const STORM: usize = 300;

/// How far above its count before the storm the server must be back, in threads and in
/// descriptors.
const SLACK: u64 = 64;

/// Sends each request of the storm on a connection of its own, closed at once.
fn storm(addr: SocketAddr) {
    for shape in SHAPES {
        for _ in 0..STORM {
            if let Ok(mut socket) = TcpStream::connect_timeout(&addr, Duration::from_secs(2)) {
                let _ = socket.write_all(shape);
            }
        }
    }
}

/// Publishes `text` and returns its id.
fn publish(addr: SocketAddr, text: &str) -> u64 {
    let mut stream = connect(addr);
    write!(
        stream,
        "POST /chat/messages HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\r\n{text}",
        text.len()
    )
    .unwrap();
    let mut reader = std::io::BufReader::new(stream);
    let mut response = read_head(&mut reader);
    reader.read_to_end(&mut response.body).unwrap();
    assert_eq!(response.status, 201, "{}", response.text());
    response.text().trim().parse().unwrap()
}

fn healthy(addr: SocketAddr) -> bool {
    let Ok(mut socket) = TcpStream::connect_timeout(&addr, Duration::from_millis(500)) else {
        return false;
    };
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .ok();
    let _ = write!(
        socket,
        "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    );
    let mut answer = String::new();
    let _ = socket.read_to_string(&mut answer);
    answer.starts_with("HTTP/1.1 200")
}

fn heals_after_a_storm(listen: &str) {
    let limit = ["prlimit", "--nofile=1024:1024", "--"];
    let args = [
        "--addr",
        listen,
        "--interval",
        "100ms",
        "--keepalive",
        "500ms",
        "--publish-limit",
        "0",
    ];
    let server = ServerProcess::launch_logging(THIS_BUILD.as_ref(), &limit, &args).unwrap();
    let addr = server.addr;
    let first = publish(addr, "before the storm");
    let counter = Page::open(addr, "/connect");
    let chat = Page::open(addr, "/chat/stream");
    assert!(wait_for(Duration::from_secs(5), || {
        counter.seen().events.len() >= 3 && chat.seen().ids() == [first]
    }));
    let (threads, fds) = (server.threads(), server.open_fds() as u64);

    storm(addr);
    let ended = Instant::now();
    let back = || {
        healthy(addr)
            && server.threads() <= threads + SLACK
            && server.open_fds() as u64 <= fds + SLACK
    };
    assert!(
        wait_for(Duration::from_secs(10), back),
        "back within 10 s of the storm: {} threads (before: {threads}), {} descriptors \
         (before: {fds}); log: {:?}",
        server.threads(),
        server.open_fds(),
        server.stderr_tail()
    );
    eprintln!("back {:.1?} after the storm", ended.elapsed());
    let mut took: Vec<Duration> = (0..100)
        .map(|_| {
            let start = Instant::now();
            assert_eq!(request(addr, "POST", "/ping", "").status, 200);
            start.elapsed()
        })
        .collect();
    took.sort();
    assert!(
        took[98] < Duration::from_millis(100),
        "POST /ping p99 {:?}",
        took[98]
    );
    assert!(ended.elapsed() < Duration::from_secs(10), "all within 10 s");
    assert!(
        server
            .stderr()
            .contains("connections held for good by tiny_http"),
        "the server healed itself: {}",
        server.stderr_tail().join("\n")
    );
    // Named after its program file still, not `exe` (a heal runs `/proc/self/exe`).
    let comm = std::fs::read_to_string(format!("/proc/{}/comm", server.pid())).unwrap();
    assert_eq!(comm.trim_end(), "sse-htmx");

    let second = publish(addr, "after the storm");
    assert_eq!(second, first + 1, "ids go on from the last one");
    assert!(wait_for(Duration::from_secs(10), || chat.seen().ids()
        == [first, second]));
    let seen = counter.seen().events.len();
    assert!(wait_for(Duration::from_secs(5), || counter
        .seen()
        .events
        .len()
        > seen));
    let counter = counter.close();
    let ids = counter.ids();
    assert!(
        ids.windows(2).all(|pair| pair[1] == pair[0] + 1),
        "the counter resumed with no id skipped or repeated: {ids:?}"
    );
    assert!(
        counter.clean_ends >= 1,
        "the counter's stream was ended cleanly: {counter:?}"
    );
    let chat = chat.close();
    assert!(
        chat.events
            .iter()
            .all(|e| !e.data.as_deref().unwrap_or("").contains("missed")),
        "no page was told it missed messages: {:?}",
        chat.events
    );
    let late = Page::open(addr, "/chat/stream");
    assert!(wait_for(Duration::from_secs(5), || {
        let data: String = late
            .seen()
            .events
            .iter()
            .filter_map(|e| e.data.clone())
            .collect();
        data.contains(&format!("msg-{first}")) && data.contains(&format!("msg-{second}"))
    }));
}

#[test]
fn a_storm_on_a_loopback_listener_heals_within_ten_seconds() {
    heals_after_a_storm("127.0.0.1:0");
}

#[test]
fn a_storm_on_a_wildcard_listener_heals_within_ten_seconds() {
    heals_after_a_storm("0.0.0.0:0");
}

/// Many clients of streams leaving at once are no storm. Each of their streams holds one
/// descriptor of its connection, closed on both sides once the next message was written to it,
/// until its next write fails (up to a keep-alive later): the server must not heal for them,
/// which would end every other stream too.
#[test]
fn many_stream_clients_leaving_at_once_are_not_taken_for_a_storm() {
    let server = ServerProcess::start_logging(&["--publish-limit", "0"]);
    let addr = server.addr;
    let first = publish(addr, "before they leave");
    let bystander = Page::open(addr, "/connect");
    let leaving: Vec<EventStream> = (0..100)
        .map(|_| {
            let mut stream = EventStream::open_path(addr, "/chat/stream", "");
            assert_eq!(stream.next_event().0.id, Some(first.to_string()));
            stream
        })
        .collect();
    drop(leaving);
    std::thread::sleep(Duration::from_millis(300));
    // Written to the hundred closed connections: each answers with a reset.
    publish(addr, "after they left");
    let seen = bystander.seen().events.len();
    std::thread::sleep(Duration::from_secs(4));
    let log = server.stderr_tail().join("\n");
    assert!(!log.contains("held for good"), "{log}");
    assert!(
        bystander.seen().events.len() >= seen + 3,
        "the other stream goes on"
    );
    let bystander = bystander.close();
    assert_eq!(
        (bystander.connections, bystander.clean_ends),
        (1, 0),
        "the other stream was never ended: {bystander:?}"
    );
}

/// A re-exec that the new image would not survive is not made: the token file it reads at its
/// start is gone. An upgrade (`SIGHUP`) is refused, and so is a heal, both before they stop
/// anything: the streams go on. The server used to exit at the new image's start (code 2), so
/// that 33 held connections from any client ended it; then it ended every stream for a heal it
/// could not make, again every 5 s while the connections stayed held.
#[test]
fn no_re_exec_when_the_new_image_could_not_read_the_token_file() {
    let token = format!(
        "{}/heal-token-{}",
        env!("CARGO_TARGET_TMPDIR"),
        std::process::id()
    );
    std::fs::write(&token, "secret\n").unwrap();
    std::fs::set_permissions(&token, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let mut server = ServerProcess::start_logging_all(&["--token-file", &token]);
    std::fs::remove_file(&token).unwrap();
    let mut stream = EventStream::open(server.addr);
    stream.next_event();

    server.signal("HUP");
    assert!(logs(&server, "not upgrading: the token file"));
    stream.next_event();

    // Held for good once their clients have gone.
    for _ in 0..40 {
        connect(server.addr).write_all(SHAPES[0]).unwrap();
    }
    assert!(logs(&server, "; not re-executing: the token file"));
    // The same stream: a heal would have ended it.
    stream.next_event();
    stream.next_event();
    assert!(
        !server.stderr().contains("cannot replace the process image"),
        "{}",
        server.stderr()
    );
    assert!(server.is_alive(), "{}", server.exit_description());
    assert!(wait_for(Duration::from_secs(5), || healthy(server.addr)));
}

/// Whether `server` logs a line with `text` within 10 s; says what it logged if not.
fn logs(server: &ServerProcess, text: &str) -> bool {
    let logged = wait_for(Duration::from_secs(10), || server.stderr().contains(text));
    if !logged {
        eprintln!("no {text:?} in:\n{}", server.stderr());
    }
    logged
}
