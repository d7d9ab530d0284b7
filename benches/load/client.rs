//! The client: many event streams (`GET /connect`, or a chatroom's subscriptions) on one
//! thread, with non-blocking sockets.
//!
//! One thread and one poller hold all N streams: the client shares the cores with the server,
//! and a thread per stream on this side too would double the threads the machine schedules and
//! inflate the lateness it measures.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::thread;
use std::time::{Duration, Instant};

use mio::net::TcpStream as MioStream;
use mio::{Events, Interest, Poll, Token};

use crate::parser::{EventStreamParser, Fed};
use crate::settings::{EXPIRY_TICK, POLL_TICK};

/// Why a stream never got going. The order is the order of the report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Failure {
    /// connect() failed, or writing the request did.
    Connect,
    /// The server answered 503: it is at capacity.
    Unavailable,
    /// Any other status than 200 or 503.
    OtherStatus,
    /// The connection closed (EOF or reset) before the first event.
    ClosedBeforeFirstEvent,
    /// No first event within [`FIRST_EVENT_TIMEOUT`](crate::settings::FIRST_EVENT_TIMEOUT) (hold scenario only).
    NoFirstEventInTime,
    /// The response could not be parsed.
    BadResponse,
}

impl Failure {
    pub const ALL: [Failure; 6] = [
        Failure::Connect,
        Failure::Unavailable,
        Failure::OtherStatus,
        Failure::ClosedBeforeFirstEvent,
        Failure::NoFirstEventInTime,
        Failure::BadResponse,
    ];

    pub fn label(self) -> &'static str {
        match self {
            Failure::Connect => "connect error",
            Failure::Unavailable => "503",
            Failure::OtherStatus => "other status",
            Failure::ClosedBeforeFirstEvent => "EOF/reset before first event",
            Failure::NoFirstEventInTime => "no first event in 5 s",
            Failure::BadResponse => "bad response",
        }
    }

    pub fn json_key(self) -> &'static str {
        match self {
            Failure::Connect => "fail_connect",
            Failure::Unavailable => "fail_503",
            Failure::OtherStatus => "fail_other_status",
            Failure::ClosedBeforeFirstEvent => "fail_eof_before_first_event",
            Failure::NoFirstEventInTime => "fail_no_first_event_in_time",
            Failure::BadResponse => "fail_bad_response",
        }
    }
}

/// When a stream counts as started: the counter's streams at their first event; a chatroom's
/// subscribers with the response head, since nothing may be published before they all have it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Ready {
    FirstEvent,
    Head,
}

#[derive(Debug)]
pub enum Phase {
    /// Connecting, or writing the request: `sent` bytes of it are out.
    Connecting {
        sent: usize,
    },
    /// Waiting for what makes the stream [`Ready`].
    AwaitingFirstEvent,
    Streaming,
    /// The stream ended (EOF, reset or the last chunk) after its first event.
    Ended,
    Failed {
        why: Failure,
        detail: String,
    },
}

/// One event stream.
pub struct Conn {
    /// `None` once closed.
    stream: Option<MioStream>,
    pub phase: Phase,
    ready: Ready,
    pub started: Instant,
    parser: EventStreamParser,
    /// When each event arrived; the first is event 0.
    pub arrivals: Vec<Instant>,
    /// The events that carried a token: the token, and when the event arrived.
    pub tokens: Vec<(u64, Instant)>,
}

impl Conn {
    /// Opened, and neither streaming nor failed yet.
    fn is_pending(&self) -> bool {
        matches!(
            self.phase,
            Phase::Connecting { .. } | Phase::AwaitingFirstEvent
        )
    }

    fn fail(&mut self, why: Failure, detail: String) {
        self.stream = None;
        self.phase = Phase::Failed { why, detail };
    }

    /// The connection closed: a failure before the first event, the end of the stream after it.
    fn closed(&mut self, detail: String) {
        match self.phase {
            Phase::Streaming => {
                self.stream = None;
                self.phase = Phase::Ended;
            }
            Phase::Connecting { .. } => self.fail(Failure::Connect, detail),
            Phase::AwaitingFirstEvent => self.fail(Failure::ClosedBeforeFirstEvent, detail),
            Phase::Ended | Phase::Failed { .. } => self.stream = None,
        }
    }

    /// Handles a readiness event: finishes the connect and sends the request, then reads all
    /// there is to read (mio's readiness is edge-triggered).
    fn on_ready(&mut self, request: &[u8], buf: &mut [u8]) {
        if let Phase::Connecting { sent } = self.phase {
            self.send_request(request, sent);
        }
        if matches!(self.phase, Phase::AwaitingFirstEvent | Phase::Streaming) {
            self.read_available(buf);
        }
    }

    fn send_request(&mut self, request: &[u8], mut sent: usize) {
        let Some(stream) = self.stream.as_mut() else {
            return;
        };
        // A non-blocking connect has completed once the socket reports no error and has a peer.
        let connect_error = match stream.take_error() {
            Ok(None) => None,
            Ok(Some(error)) | Err(error) => Some(error),
        };
        if let Some(error) = connect_error {
            return self.fail(Failure::Connect, error.to_string());
        }
        match stream.peer_addr() {
            Ok(_) => {}
            Err(error) if error.kind() == io::ErrorKind::NotConnected => return,
            Err(error) => return self.fail(Failure::Connect, error.to_string()),
        }
        while sent < request.len() {
            match stream.write(&request[sent..]) {
                Ok(n) => sent += n,
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => break,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return self.fail(Failure::Connect, error.to_string()),
            }
        }
        self.phase = if sent == request.len() {
            Phase::AwaitingFirstEvent
        } else {
            Phase::Connecting { sent }
        };
    }

    fn read_available(&mut self, buf: &mut [u8]) {
        loop {
            let Some(stream) = self.stream.as_mut() else {
                return;
            };
            match stream.read(buf) {
                Ok(0) => return self.closed("EOF".into()),
                Ok(n) => {
                    // Taken per read, not per wake-up: a wake-up may bring thousands of streams.
                    let now = Instant::now();
                    match self.parser.feed(&buf[..n]) {
                        Ok(fed) => self.take_fed(fed, now),
                        Err(error) => self.fail(Failure::BadResponse, error),
                    }
                    // A short read emptied the socket's receive queue, and on Linux data that
                    // arrives later raises a new edge: the read that would say WouldBlock is
                    // saved, one system call per event of 10,000 streams.
                    if n < buf.len() {
                        return;
                    }
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => return,
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return self.closed(error.to_string()),
            }
        }
    }

    fn take_fed(&mut self, fed: Fed, now: Instant) {
        match fed.status {
            None | Some(200) => {}
            Some(503) => return self.fail(Failure::Unavailable, "503".into()),
            Some(status) => return self.fail(Failure::OtherStatus, status.to_string()),
        }
        self.arrivals.extend(std::iter::repeat_n(now, fed.events));
        self.tokens
            .extend(fed.tokens.iter().map(|&token| (token, now)));
        let ready = match self.ready {
            Ready::FirstEvent => fed.events > 0,
            Ready::Head => fed.status.is_some(),
        };
        if ready && matches!(self.phase, Phase::AwaitingFirstEvent) {
            self.phase = Phase::Streaming;
        }
        if fed.body_ended {
            self.closed("the server ended the body".into());
        }
    }
}

/// How streams are spread over several paths (feeds).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Join {
    /// Stream `i` asks for path `i mod paths`: the feeds' subscribers connect interleaved.
    InTurn,
    /// The first `streams / paths` streams ask for the first path, and so on: each feed's
    /// subscribers connect one after the other.
    InBlocks { streams: usize },
}

/// Many event streams of one path (or of several, in turn) driven from one thread with
/// non-blocking sockets.
pub struct Client {
    poll: Poll,
    events: Events,
    /// Where the streams go, one after the other (several instances of one room).
    addrs: Vec<SocketAddr>,
    /// Stream `i` sends `requests[self.path_of(i)]`.
    requests: Vec<Vec<u8>>,
    /// How the streams are spread over `requests`.
    join: Join,
    ready: Ready,
    pub conns: Vec<Conn>,
    /// Events with a token received over all streams, kept up to date as [`Client::pending`].
    pub tokens_received: usize,
    /// One read buffer for every connection: a connection's partial input lives in its parser.
    read_buf: Vec<u8>,
    /// `None`: pending streams wait as long as the scenario does.
    first_event_timeout: Option<Duration>,
    /// How many streams are pending, kept up to date so that asking costs nothing.
    pending: usize,
    last_expiry_check: Instant,
}

impl Client {
    /// Streams of `GET path` that count as started when `ready` says; `first_event_timeout`
    /// bounds the wait for that.
    pub fn new(
        addr: SocketAddr,
        path: &str,
        ready: Ready,
        first_event_timeout: Option<Duration>,
    ) -> io::Result<Client> {
        Client::spread(&[addr], path, ready, first_event_timeout)
    }

    /// Like [`Client::new`], with the streams spread over `addrs` in turn. `addrs` is not
    /// empty.
    pub fn spread(
        addrs: &[SocketAddr],
        path: &str,
        ready: Ready,
        first_event_timeout: Option<Duration>,
    ) -> io::Result<Client> {
        Ok(Client {
            poll: Poll::new()?,
            events: Events::with_capacity(4096),
            addrs: addrs.to_vec(),
            requests: vec![stream_request(addrs[0], path)],
            join: Join::InTurn,
            ready,
            conns: Vec::new(),
            tokens_received: 0,
            read_buf: vec![0; 64 * 1024],
            first_event_timeout,
            pending: 0,
            last_expiry_check: Instant::now(),
        })
    }

    /// Spreads the streams over `paths` as `join` says.
    pub fn spread_over(mut self, paths: &[String], join: Join) -> Client {
        if !paths.is_empty() {
            let addr = self.addrs[0];
            self.requests = paths.iter().map(|p| stream_request(addr, p)).collect();
        }
        self.join = join;
        self
    }

    /// Which path (which feed) stream `stream` asks for.
    pub fn path_of(&self, stream: usize) -> usize {
        let paths = self.requests.len();
        match self.join {
            Join::InTurn => stream % paths,
            Join::InBlocks { streams } => (stream / streams.div_ceil(paths).max(1)).min(paths - 1),
        }
    }

    /// Has every stream's request say `Connection: close`. A bare tiny_http server needs it (see
    /// `floor.rs`): its pool thread for a connection otherwise waits on it for a next request,
    /// and a connection accepted while every pool thread waits so is never read.
    pub fn closing(mut self) -> Client {
        for request in &mut self.requests {
            let end = request.len() - 2;
            request.splice(end..end, *b"Connection: close\r\n");
        }
        self
    }

    pub fn opened(&self) -> usize {
        self.conns.len()
    }

    pub fn pending(&self) -> usize {
        self.pending
    }

    pub fn count(&self, phase: impl Fn(&Phase) -> bool) -> usize {
        self.conns.iter().filter(|conn| phase(&conn.phase)).count()
    }

    /// Starts `count` non-blocking connects. A connect that fails at once is a counted failure.
    pub fn open(&mut self, count: usize) {
        for _ in 0..count {
            let token = Token(self.conns.len());
            let mut conn = Conn {
                stream: None,
                phase: Phase::Connecting { sent: 0 },
                ready: self.ready,
                started: Instant::now(),
                parser: EventStreamParser::new(),
                arrivals: Vec::new(),
                tokens: Vec::new(),
            };
            let addr = self.addrs[token.0 % self.addrs.len()];
            let registered = MioStream::connect(addr).and_then(|mut stream| {
                self.poll.registry().register(
                    &mut stream,
                    token,
                    Interest::READABLE | Interest::WRITABLE,
                )?;
                Ok(stream)
            });
            match registered {
                Ok(stream) => {
                    conn.stream = Some(stream);
                    self.pending += 1;
                }
                Err(error) => conn.fail(Failure::Connect, error.to_string()),
            }
            self.conns.push(conn);
        }
    }

    /// Runs the event loop until `deadline` or until `done` says so.
    pub fn run_until(&mut self, deadline: Instant, done: impl Fn(&Client) -> bool) {
        while Instant::now() < deadline && !done(self) {
            self.poll_once(deadline);
        }
    }

    /// Waits for readiness (at most [`POLL_TICK`], never past `deadline`) and handles it.
    pub fn poll_once(&mut self, deadline: Instant) {
        let wait = deadline
            .saturating_duration_since(Instant::now())
            .min(POLL_TICK);
        if let Err(error) = self.poll.poll(&mut self.events, Some(wait)) {
            if error.kind() != io::ErrorKind::Interrupted {
                eprintln!("load: poll failed: {error}");
                thread::sleep(wait);
            }
            return;
        }
        for event in self.events.iter() {
            let index = event.token().0;
            let path = self.path_of(index);
            let Some(conn) = self.conns.get_mut(index) else {
                continue;
            };
            let (was_pending, tokens_before) = (conn.is_pending(), conn.tokens.len());
            let request = &self.requests[path];
            conn.on_ready(request, &mut self.read_buf);
            if was_pending && !conn.is_pending() {
                self.pending -= 1;
            }
            self.tokens_received += conn.tokens.len() - tokens_before;
        }
        self.expire_slow_starts();
    }

    fn expire_slow_starts(&mut self) {
        let Some(timeout) = self.first_event_timeout else {
            return;
        };
        let now = Instant::now();
        if now - self.last_expiry_check < EXPIRY_TICK {
            return;
        }
        self.last_expiry_check = now;
        for conn in &mut self.conns {
            if conn.is_pending() && now - conn.started >= timeout {
                conn.fail(Failure::NoFirstEventInTime, "timeout".into());
                self.pending -= 1;
            }
        }
    }
}

fn stream_request(addr: SocketAddr, path: &str) -> Vec<u8> {
    format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\
         Cache-Control: no-cache\r\n\r\n"
    )
    .into_bytes()
}
