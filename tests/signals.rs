//! Writes that are stuck: the first SIGTERM does not wait for them (a second one exits at once,
//! see `exec.rs`), and no other client waits for them either.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{ServerProcess, wait_for};

/// A connection whose receive buffer is small and never read: the server's writes to it stop
/// going through once the buffers on both sides are full.
fn stalled_client(addr: SocketAddr, request: &[u8]) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket.connect(&addr.into()).unwrap();
    let mut socket: TcpStream = socket.into();
    socket.write_all(request).unwrap();
    socket
}

/// Bytes the server's socket for `client` holds unsent or unacknowledged (`tx_queue` in
/// /proc/net/tcp), if that socket is listed as established (not a closed one of an earlier
/// test that happened to have the same addresses).
fn server_send_queue(server: SocketAddr, client: &TcpStream) -> Option<u64> {
    let hex = |addr: SocketAddr| match addr {
        SocketAddr::V4(v4) => format!(
            "{:08X}:{:04X}",
            u32::from_le_bytes(v4.ip().octets()),
            v4.port()
        ),
        SocketAddr::V6(_) => unreachable!("IPv4 only"),
    };
    let (local, remote) = (hex(server), hex(client.local_addr().unwrap()));
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    table.lines().skip(1).find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.get(1) == Some(&local.as_str())
            && fields.get(2) == Some(&remote.as_str())
            && fields.get(3) == Some(&"01")
        {
            let (tx, _rx) = fields.get(4)?.split_once(':')?;
            u64::from_str_radix(tx, 16).ok()
        } else {
            None
        }
    })
}

/// Waits until the server's writes to `client` have stopped: data queued, and no progress for
/// a few samples.
fn wait_until_writes_block(server: SocketAddr, client: &TcpStream, what: &str) {
    let mut last = None;
    let mut unchanged = 0;
    let blocked = wait_for(Duration::from_secs(20), || {
        std::thread::sleep(Duration::from_millis(50));
        let now = server_send_queue(server, client);
        unchanged = if now.is_some_and(|q| q > 0) && now == last {
            unchanged + 1
        } else {
            0
        };
        last = now;
        unchanged >= 4
    });
    assert!(
        blocked,
        "the server's writes to {what} never blocked (send queue {last:?})"
    );
}

/// Answers to a client that reads none of them are written on threads of their own: the
/// others are answered meanwhile, and the first SIGTERM finishes, however long the write timeout.
/// (Written on the request loop, as they were, they held up every other request and the stop.)
#[test]
fn a_client_reading_no_answers_holds_up_neither_others_nor_the_stop() {
    let mut server =
        ServerProcess::start_capturing_stderr(&["--interval", "1ms", "--write-timeout", "60s"]);
    let stream = stalled_client(server.addr, b"GET /connect HTTP/1.1\r\nHost: x\r\n\r\n");
    wait_until_writes_block(server.addr, &stream, "the stream");
    // Eight answers of htmx (52 KB each) are more than the buffers hold.
    let pipelined = "GET /assets/htmx.min.js HTTP/1.1\r\nHost: x\r\n\r\n".repeat(8);
    let answers = stalled_client(server.addr, pipelined.as_bytes());
    wait_until_writes_block(server.addr, &answers, "the pipelined requests");

    let asked = Instant::now();
    let health = common::request(server.addr, "GET", "/healthz", "");
    assert_eq!(health.status, 200);
    assert!(
        asked.elapsed() < Duration::from_secs(2),
        "{:?}",
        asked.elapsed()
    );

    let signalled = Instant::now();
    server.signal("TERM");
    let status = server
        .wait_exit(Duration::from_secs(3))
        .expect("the first signal finishes");
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert!(signalled.elapsed() < Duration::from_secs(3));
    drop((stream, answers));
}

/// A stream whose client reads nothing does not hold up the exit: the first SIGTERM gives streams
/// a short drain and then exits 0, however long the write timeout.
#[test]
fn a_stuck_stream_does_not_hold_up_the_first_sigterm() {
    let mut server =
        ServerProcess::start_capturing_stderr(&["--interval", "1ms", "--write-timeout", "60s"]);
    let stream = stalled_client(server.addr, b"GET /connect HTTP/1.1\r\nHost: x\r\n\r\n");
    wait_until_writes_block(server.addr, &stream, "the stream");
    let signalled = Instant::now();
    server.signal("TERM");
    let status = server
        .wait_exit(Duration::from_secs(3))
        .expect("exits after the drain");
    assert_eq!(status.code(), Some(0), "{status:?}");
    assert!(signalled.elapsed() < Duration::from_secs(3));
    drop(stream);
}

/// An answer that ends its connection (the head of a stream for `HEAD`, a refusal) waits behind
/// the answers before it on that connection, which its client reads none of: on a writing
/// thread, not on the request loop, which answers others meanwhile, nor on the sweep's thread,
/// which answers others' refusals.
#[test]
fn an_answer_that_ends_a_connection_behind_unread_answers_holds_up_no_one() {
    let server = ServerProcess::start_capturing_stderr(&["--write-timeout", "60s"]);
    let pipelined = "GET /assets/htmx.min.js HTTP/1.1\r\nHost: x\r\n\r\n".repeat(8);
    for last in [
        "HEAD /connect HTTP/1.1\r\nHost: x\r\n\r\n",
        "GET / HTTP/1.1\r\n\r\n",
    ] {
        let answers = stalled_client(server.addr, format!("{pipelined}{last}").as_bytes());
        wait_until_writes_block(server.addr, &answers, "the pipelined requests");
        // Time for the last request to be read and handed on.
        std::thread::sleep(Duration::from_millis(300));
        let asked = Instant::now();
        let health = common::request(server.addr, "GET", "/healthz", "");
        assert_eq!(health.status, 200, "{last:?}");
        let mut refused = common::connect(server.addr);
        refused.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        let mut answer = String::new();
        let _ = std::io::Read::read_to_string(&mut refused, &mut answer);
        assert!(answer.starts_with("HTTP/1.1 400 "), "{last:?}: {answer:?}");
        assert!(
            asked.elapsed() < Duration::from_secs(2),
            "{last:?}: {:?}",
            asked.elapsed()
        );
        drop(answers);
    }
}

/// A server run in a terminal stops when the terminal goes (its window closed, its `ssh`
/// session ended), as any program run there does, rather than take the hangup's SIGHUP for an
/// upgrade and run on, unseen, holding its port.
#[test]
fn a_server_whose_terminal_hangs_up_stops() {
    // `script` runs the server on a terminal of its own, which goes when `script` is killed.
    let command = format!(
        "echo pid $$; exec {} --addr 127.0.0.1:0",
        common::process::THIS_BUILD
    );
    let mut terminal = std::process::Command::new("script")
        .args(["-qfec", &command, "/dev/null"])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("script (util-linux)");
    let mut output = std::io::BufReader::new(terminal.stdout.take().unwrap());
    let (mut pid, mut addr) = (None, None);
    while addr.is_none() {
        let mut line = String::new();
        let read = std::io::BufRead::read_line(&mut output, &mut line).unwrap();
        assert!(read > 0, "the server did not start");
        pid = pid.or(line
            .trim()
            .strip_prefix("pid ")
            .map(|pid| pid.parse::<u32>().unwrap()));
        addr = line
            .split_once("open http://")
            .and_then(|(_, rest)| rest.trim().trim_end_matches('/').parse::<SocketAddr>().ok());
    }
    let (pid, addr) = (pid.expect("a pid"), addr.unwrap());
    assert_eq!(common::request(addr, "GET", "/healthz", "").status, 200);
    let listener = listening_inode(addr.port()).expect("a listening socket");
    terminal.kill().unwrap();
    let _ = terminal.wait();
    let alive = || {
        std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
            stat.rsplit_once(") ")
                .is_some_and(|(_, state)| !state.starts_with('Z'))
        })
    };
    let stopped = wait_for(Duration::from_secs(10), || !alive());
    if !stopped {
        let _ = std::process::Command::new("kill")
            .args(["-s", "KILL", &pid.to_string()])
            .status();
    }
    assert!(stopped, "the server runs on after its terminal hung up");
    // Its own listener, by inode: another test's server may be given the port meanwhile.
    assert_ne!(
        listening_inode(addr.port()),
        Some(listener),
        "its listener is closed"
    );
}

/// The inode of the IPv4 socket listening on `port`, from /proc/net/tcp.
fn listening_inode(port: u16) -> Option<String> {
    let table = std::fs::read_to_string("/proc/net/tcp").unwrap();
    table.lines().skip(1).find_map(|line| {
        // sl, local address, remote address, state (0A: LISTEN), queues, timer, retransmits,
        // uid, timeout, inode.
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (_, local_port) = fields.get(1)?.split_once(':')?;
        let listens = fields.get(3) == Some(&"0A");
        let here = u16::from_str_radix(local_port, 16).ok()? == port;
        (listens && here).then(|| fields.get(9).map(|inode| inode.to_string()))?
    })
}
