//! The layer over TCP, with a handler of its own instead of the application's: it echoes bodies
//! (up to [`MAX_BODY`] on `/big`), so that what the layer does with a body (read whole, chunked or
//! behind `100-continue`; refused over the cap, cut short or too slow) and with work after a
//! reply is pinned apart from any route.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::RawFd;
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::*;
use crate::log::Log;
use crate::metrics::Metrics;

const TIMEOUT: Duration = Duration::from_secs(5);

/// Outlets kept by `/shared-stream-panics` after its body is gone.
static KEPT: Mutex<Vec<Arc<Outlet>>> = Mutex::new(Vec::new());

/// Echoes the body; `/big` takes [`MAX_BODY`], every other path [`SMALL_BODY`]. On `/then`,
/// the reply's after-work waits for the test's go, then says it ran. `/stream-fails` and
/// `/stream-panics` are event streams whose body fails, or panics, before its first event;
/// `/shared-stream-panics` one whose body shares its outlet, keeps it elsewhere, and panics.
/// `/wait` may wait ([`Handler::may_wait`]): it waits for the test's go before it answers.
#[derive(Default)]
struct Echo {
    after: Mutex<Option<(Receiver<()>, Sender<()>)>>,
    gate: Mutex<Option<Receiver<()>>>,
}

impl Handler for Echo {
    /// Whether the request is for `/big`.
    type Route = bool;

    fn route(&self, request: &Request) -> bool {
        request.path == "/big"
    }

    fn handle(&self, request: &Request, _big: &bool) -> Reply {
        if request.path == "/stream-fails" {
            return Reply::events("", |_| {
                Err(Ended::ClientGone(std::io::Error::other("the body failed")))
            });
        }
        if request.path == "/stream-panics" {
            return Reply::events("", |_| panic!("the body panicked"));
        }
        if request.path == "/shared-stream-panics" {
            return Reply::events("", |events| {
                // As a feed's share would: another holder of the outlet, which outlives the body.
                KEPT.lock().unwrap().push(events.outlet()?);
                panic!("the body panicked")
            })
            .with_outlet();
        }
        let reply = Reply::new(200, "application/octet-stream", request.body.clone());
        let gate = (request.path == "/wait").then(|| self.gate.lock().unwrap().take());
        if let Some(go) = gate.flatten() {
            go.recv_timeout(TIMEOUT).expect("the go");
        }
        if request.path != "/then" {
            return reply;
        }
        let Some((go, ran)) = self.after.lock().unwrap().take() else {
            return reply;
        };
        reply.then(move || {
            go.recv_timeout(TIMEOUT).expect("the go");
            ran.send(()).unwrap();
        })
    }

    fn label(&self, _big: &bool) -> &'static str {
        "other"
    }

    fn busy(&self) -> Reply {
        Reply::text(503, "busy\n")
    }

    fn may_wait(&self, request: &Request, _big: &bool) -> bool {
        request.path == "/wait"
    }

    fn body_limit(&self, _request: &Request, &big: &bool) -> usize {
        if big { MAX_BODY } else { SMALL_BODY }
    }
}

struct Layer {
    addr: SocketAddr,
    echo: Arc<Echo>,
    stopper: HttpStopper,
    thread: Option<JoinHandle<()>>,
}

fn settings() -> Settings {
    let (open_files, _) = rlimit::Resource::NOFILE.get().unwrap();
    Settings {
        addr: "127.0.0.1:0".parse().unwrap(),
        idle_timeout: Duration::from_secs(30),
        write_timeout: TIMEOUT,
        keepalive: Duration::from_secs(15),
        max_streams: 4,
        stream_descriptors: 8,
        max_fd: RawFd::try_from(open_files).unwrap_or(4096),
        drainable_body: 1 << 20,
        reexec: None,
    }
}

impl Layer {
    fn start() -> Layer {
        let settings = settings();
        let metrics = Arc::new(Metrics::default());
        let http = HttpServer::bind(settings, metrics, Log { quiet: true }, None).unwrap();
        let addr = http.local_addr();
        let stopper = http.stopper();
        let echo = Arc::new(Echo::default());
        let handler = echo.clone();
        let thread = std::thread::spawn(move || {
            http.run(handler).unwrap();
        });
        Layer {
            addr,
            echo,
            stopper,
            thread: Some(thread),
        }
    }

    fn connect(&self) -> TcpStream {
        let socket = TcpStream::connect(self.addr).unwrap();
        socket.set_read_timeout(Some(TIMEOUT)).unwrap();
        socket
    }
}

impl Drop for Layer {
    fn drop(&mut self) {
        self.stopper.stop();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Reads a response's head, byte by byte so that nothing after it is read.
fn read_head(socket: &mut TcpStream) -> String {
    let mut head = Vec::new();
    let mut byte = [0];
    while !head.ends_with(b"\r\n\r\n") {
        socket.read_exact(&mut byte).expect("a response head");
        head.push(byte[0]);
    }
    String::from_utf8(head).unwrap()
}

/// Reads one response with a `Content-Length`: its status and body.
fn read_response(socket: &mut TcpStream) -> (u16, Vec<u8>) {
    let head = read_head(socket);
    let status = head[9..12].parse().unwrap();
    let length = head
        .lines()
        .find_map(|line| line.strip_prefix("Content-Length: "))
        .map_or(0, |length| length.parse().unwrap());
    let mut body = vec![0; length];
    socket.read_exact(&mut body).unwrap();
    (status, body)
}

/// Whether the server closes the connection, with nothing more sent, within [`TIMEOUT`]: a
/// loaded machine may take a second to unwind a panic and print its backtrace, and a connection
/// left open stays so for good.
fn closed(socket: &mut TcpStream) -> bool {
    socket.set_read_timeout(Some(TIMEOUT)).unwrap();
    match socket.read(&mut [0; 64]) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut),
    }
}

fn body(len: usize) -> Vec<u8> {
    (0..len).map(|i| b'a' + (i % 26) as u8).collect()
}

fn chunked(body: &[u8]) -> Vec<u8> {
    let mut wire = Vec::new();
    for chunk in body.chunks(1000) {
        wire.extend_from_slice(format!("{:x}\r\n", chunk.len()).as_bytes());
        wire.extend_from_slice(chunk);
        wire.extend_from_slice(b"\r\n");
    }
    wire.extend_from_slice(b"0\r\n\r\n");
    wire
}

const NEXT: &[u8] = b"GET /next HTTP/1.1\r\nHost: x\r\n\r\n";

#[test]
fn a_stream_whose_body_fails_or_panics_before_its_first_event_closes_its_connection() {
    let layer = Layer::start();
    for path in ["/stream-fails", "/stream-panics", "/shared-stream-panics"] {
        let mut socket = layer.connect();
        // HTTP/1.1 without `Connection: close`: tiny_http's thread reads on for a next request.
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n");
        socket.write_all(request.as_bytes()).unwrap();
        assert!(read_head(&mut socket).starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(
            closed(&mut socket),
            "{path}: the client is not left on a silent stream"
        );
    }
}

#[test]
fn work_after_a_reply_runs_once_the_reply_is_written() {
    let layer = Layer::start();
    let (go, go_rx) = mpsc::channel();
    let (ran_tx, ran) = mpsc::channel();
    *layer.echo.after.lock().unwrap() = Some((go_rx, ran_tx));
    let mut socket = layer.connect();
    socket
        .write_all(b"POST /then HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
        .unwrap();
    // The work waits for the go, so the reply could not be read here if it came after the work.
    assert_eq!(read_response(&mut socket), (200, b"hi".to_vec()));
    assert!(ran.try_recv().is_err(), "the work waits for the go");
    go.send(()).unwrap();
    ran.recv_timeout(TIMEOUT).expect("the work ran");
}

#[test]
fn a_body_up_to_the_cap_reaches_the_handler_and_the_connection_goes_on() {
    let layer = Layer::start();
    let sent = body(MAX_BODY);
    let mut socket = layer.connect();
    let head = format!("POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: {MAX_BODY}\r\n\r\n");
    socket.write_all(head.as_bytes()).unwrap();
    socket.write_all(&sent).unwrap();
    socket.write_all(NEXT).unwrap();
    assert_eq!(read_response(&mut socket), (200, sent.clone()));
    assert_eq!(read_response(&mut socket), (200, Vec::new()));

    let mut socket = layer.connect();
    socket
        .write_all(b"POST /big HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        .unwrap();
    socket.write_all(&chunked(&sent)).unwrap();
    socket.write_all(NEXT).unwrap();
    assert_eq!(read_response(&mut socket), (200, sent));
    assert_eq!(read_response(&mut socket), (200, Vec::new()));
}

#[test]
fn a_body_over_the_cap_is_413_and_the_connection_closes() {
    let layer = Layer::start();
    // Chunked: found out while reading.
    let mut socket = layer.connect();
    socket
        .write_all(b"POST /big HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        .unwrap();
    socket.write_all(&chunked(&body(MAX_BODY + 1))).unwrap();
    let _ = socket.write_all(NEXT);
    assert_eq!(read_response(&mut socket).0, 413);
    assert!(closed(&mut socket));
    // Declared: answered before any of it is sent.
    let mut socket = layer.connect();
    let head = format!(
        "POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
        MAX_BODY + 1
    );
    socket.write_all(head.as_bytes()).unwrap();
    assert_eq!(read_response(&mut socket).0, 413);
    assert!(closed(&mut socket));
    // A route that takes a small body only.
    let mut socket = layer.connect();
    socket
        .write_all(b"POST /small HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        .unwrap();
    socket.write_all(&chunked(&body(SMALL_BODY + 1))).unwrap();
    assert_eq!(read_response(&mut socket).0, 413);
    assert!(closed(&mut socket));
}

#[test]
fn a_body_behind_100_continue_is_read_after_the_interim_answer() {
    let layer = Layer::start();
    let mut socket = layer.connect();
    socket
        .write_all(
            b"POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\nExpect: 100-continue\r\n\r\n",
        )
        .unwrap();
    assert_eq!(read_response(&mut socket), (100, Vec::new()));
    socket.write_all(&body(2000)).unwrap();
    assert_eq!(read_response(&mut socket), (200, body(2000)));
}

/// A client whose bodies come slowly holds at most its share of the threads that read them;
/// another client's body is still read, and its own once one of its bodies is done.
#[test]
fn a_client_holds_at_most_its_share_of_the_body_readers() {
    let layer = Layer::start();
    let head =
        b"POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\nExpect: 100-continue\r\n\r\n";
    // Each `100 Continue` says a reader took the body.
    let reading = |mut socket: TcpStream| {
        socket.write_all(head).unwrap();
        assert_eq!(read_response(&mut socket), (100, Vec::new()));
        socket
    };
    let mut slow: Vec<TcpStream> = (0..body::MAX_READERS_PER_CLIENT)
        .map(|_| reading(layer.connect()))
        .collect();
    let mut refused = layer.connect();
    refused.write_all(head).unwrap();
    assert_eq!(read_response(&mut refused).0, 503);
    // From another address.
    let other = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    other
        .bind(&"127.0.0.2:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    other.connect(&layer.addr.into()).unwrap();
    other.set_read_timeout(Some(TIMEOUT)).unwrap();
    let mut other = reading(TcpStream::from(other));
    other.write_all(&body(2000)).unwrap();
    assert_eq!(read_response(&mut other), (200, body(2000)));
    // One done, and the first client has a reader again (once that reader's thread has let
    // go of it, just after its answer).
    let mut done = slow.pop().unwrap();
    done.write_all(&body(2000)).unwrap();
    assert_eq!(read_response(&mut done), (200, body(2000)));
    let started = Instant::now();
    loop {
        let mut again = layer.connect();
        again.write_all(head).unwrap();
        match read_response(&mut again).0 {
            100 => break,
            503 if started.elapsed() < TIMEOUT => std::thread::sleep(Duration::from_millis(10)),
            status => panic!("{status} after {:?}", started.elapsed()),
        }
    }
}

#[test]
fn a_slow_body_stalls_no_one_else() {
    let layer = Layer::start();
    let mut slow = layer.connect();
    let head = format!("POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: {MAX_BODY}\r\n\r\n");
    slow.write_all(head.as_bytes()).unwrap();
    slow.write_all(&body(100)).unwrap();
    let mut chunked_slow = layer.connect();
    chunked_slow
        .write_all(b"POST /big HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab")
        .unwrap();
    let started = Instant::now();
    let mut other = layer.connect();
    other.write_all(NEXT).unwrap();
    assert_eq!(read_response(&mut other).0, 200);
    assert!(started.elapsed() < Duration::from_secs(2));
    // The slow one is answered once its body is complete.
    slow.write_all(&body(MAX_BODY)[100..]).unwrap();
    assert_eq!(read_response(&mut slow), (200, body(MAX_BODY)));
    chunked_slow.write_all(b"cde\r\n0\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut chunked_slow), (200, b"abcde".to_vec()));
}

#[test]
fn an_answer_that_may_wait_holds_up_no_one_else() {
    let layer = Layer::start();
    let mut waiting = layer.connect();
    let with_a_body = b"POST /wait HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi";
    let without = b"GET /wait HTTP/1.1\r\nHost: x\r\n\r\n";
    for (request, body) in [(&with_a_body[..], &b"hi"[..]), (without, b"")] {
        let (go, gate) = mpsc::channel();
        *layer.echo.gate.lock().unwrap() = Some(gate);
        waiting.write_all(request).unwrap();
        let taken = Instant::now();
        while layer.echo.gate.lock().unwrap().is_some() {
            assert!(taken.elapsed() < TIMEOUT, "the handler never asked");
            std::thread::sleep(Duration::from_millis(5));
        }
        // The handler waits; others are answered meanwhile, with and without a body.
        let mut other = layer.connect();
        other.write_all(NEXT).unwrap();
        assert_eq!(read_response(&mut other).0, 200);
        other
            .write_all(b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nok")
            .unwrap();
        assert_eq!(read_response(&mut other), (200, b"ok".to_vec()));
        go.send(()).unwrap();
        // Its connection goes on.
        assert_eq!(read_response(&mut waiting), (200, body.to_vec()));
    }
}

/// A server stopping answers a request whose answer waits on a thread of its own before it
/// shuts its connection: a publish cut off could be made and never answered.
#[test]
fn a_stop_waits_for_an_answer_that_may_wait() {
    let mut layer = Layer::start();
    let (go, gate) = mpsc::channel();
    *layer.echo.gate.lock().unwrap() = Some(gate);
    let mut waiting = layer.connect();
    waiting
        .write_all(b"POST /wait HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
        .unwrap();
    let taken = Instant::now();
    while layer.echo.gate.lock().unwrap().is_some() {
        assert!(taken.elapsed() < TIMEOUT, "the handler never asked");
        std::thread::sleep(Duration::from_millis(5));
    }
    layer.stopper.stop();
    std::thread::sleep(Duration::from_secs(1));
    let thread = layer.thread.take().unwrap();
    assert!(
        !thread.is_finished(),
        "the server stopped before the answer"
    );
    go.send(()).unwrap();
    assert_eq!(read_response(&mut waiting), (200, b"hi".to_vec()));
    thread.join().unwrap();
}

/// A body still arriving is not waited for by a stopping server: its client may take 10 s.
#[test]
fn a_stop_does_not_wait_for_a_body_still_arriving() {
    let mut layer = Layer::start();
    let mut slow = layer.connect();
    slow.write_all(
        b"POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\nExpect: 100-continue\r\n\r\n",
    )
    .unwrap();
    assert_eq!(read_response(&mut slow), (100, Vec::new()));
    let asked = Instant::now();
    layer.stopper.stop();
    layer.thread.take().unwrap().join().unwrap();
    let took = asked.elapsed();
    assert!(took < Duration::from_secs(2), "the stop took {took:?}");
    assert!(closed(&mut slow));
}

#[test]
fn a_body_cut_short_is_400() {
    let layer = Layer::start();
    let mut socket = layer.connect();
    socket
        .write_all(b"POST /big HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\n\r\nabc")
        .unwrap();
    socket.shutdown(std::net::Shutdown::Write).unwrap();
    assert_eq!(read_response(&mut socket).0, 400);
}

/// An upgrade asked for while the server already replaces its image is refused, saying why: a
/// heal runs the server's own file, not the program file an upgrade would.
#[test]
fn an_upgrade_asked_for_during_a_heal_or_an_upgrade_is_refused_saying_why() {
    let bind = || HttpServer::bind(settings(), Arc::default(), Log { quiet: true }, None).unwrap();
    let (healing, upgrading) = (bind(), bind());
    let series = heal::Series::next(None, std::time::SystemTime::now());
    let reason = Reason::Heal { series };
    assert_eq!(healing.stopper().shared().stop_for_reexec(reason), Ok(()));
    let refused = healing.stopper().upgrade().unwrap_err();
    assert!(refused.contains("to heal"), "{refused}");
    assert_eq!(upgrading.stopper().upgrade(), Ok(()));
    let refused = upgrading.stopper().upgrade().unwrap_err();
    assert!(refused.contains("upgraded already"), "{refused}");
}

#[test]
fn a_server_stopped_to_replace_its_image_can_serve_again_on_its_listener() {
    let http = HttpServer::bind(settings(), Arc::default(), Log { quiet: true }, None).unwrap();
    let addr = http.local_addr();
    let stopper = http.stopper();
    let echo = Arc::new(Echo::default());
    let handler = echo.clone();
    let running = std::thread::spawn(move || http.run(handler).unwrap());
    assert_eq!(stopper.upgrade(), Ok(()));
    let Some(handoff) = running.join().unwrap() else {
        panic!("stopped to replace its image");
    };
    // One that connects meanwhile waits in the listen queue, as during an exec.
    let mut waiting = TcpStream::connect(addr).unwrap();
    waiting.set_read_timeout(Some(TIMEOUT)).unwrap();
    waiting
        .write_all(b"POST /w HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
        .unwrap();
    // As after an exec that failed: the listener was made non-blocking to end the accept
    // threads, and a new one must block on it again.
    let http = handoff.serve_again().unwrap();
    assert!(http.listener_blocks(), "the listener blocks again");
    let stopper = http.stopper();
    let running = std::thread::spawn(move || http.run(echo).unwrap());
    assert_eq!(read_response(&mut waiting), (200, b"hi".to_vec()));
    let mut later = TcpStream::connect(addr).unwrap();
    later.set_read_timeout(Some(TIMEOUT)).unwrap();
    later
        .write_all(b"POST /l HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nok")
        .unwrap();
    assert_eq!(read_response(&mut later), (200, b"ok".to_vec()));
    stopper.stop();
    running.join().unwrap();
}

/// The watchdog takes an accept thread for gone when a probe waits over a second to be
/// accepted, which a busy machine can make it do; the replaced server's pool threads hold the
/// keep-alive connections they had, and their next requests must still be answered.
#[test]
fn requests_on_connections_of_a_server_the_watchdog_replaced_are_answered() {
    let layer = Layer::start();
    let mut socket = layer.connect();
    socket.write_all(NEXT).unwrap();
    assert_eq!(read_response(&mut socket).0, 200);
    let shared = layer.stopper.shared();
    let replaced = shared.acceptor.current().unwrap();
    // As the sweep does when a probe went unaccepted.
    assert!(
        shared
            .acceptor
            .replace(&replaced, &shared.stop, &shared.log, true)
    );
    drop(replaced);
    socket.write_all(NEXT).unwrap();
    assert_eq!(
        read_response(&mut socket).0,
        200,
        "answered on its connection"
    );
    let mut other = layer.connect();
    other.write_all(NEXT).unwrap();
    assert_eq!(read_response(&mut other).0, 200, "a new connection");
}
