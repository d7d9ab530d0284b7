//! The real server on port 0 (on a thread of this process, or as its own process in
//! [`process`]), and a raw HTTP/SSE client with timeouts so a hang fails a test instead of
//! stalling it.

#![allow(dead_code)] // each test binary uses its own part of this module

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use sse_htmx::{Config, Server, Stopper};

pub mod browser;
pub mod host;
pub mod page;
pub mod pipe;
pub mod process;
pub mod redis_server;

#[allow(unused_imports)] // only the test binaries that start a server process use it
pub use process::ServerProcess;

pub const TIMEOUT: Duration = Duration::from_secs(5);

/// A server running on its own thread; dropping it stops it.
pub struct TestServer {
    pub addr: SocketAddr,
    stopper: Stopper,
    thread: Option<JoinHandle<Result<(), sse_htmx::Error>>>,
}

impl TestServer {
    pub fn start(interval: Duration) -> TestServer {
        TestServer::with(|config| config.interval = interval)
    }

    pub fn with(configure: impl FnOnce(&mut Config)) -> TestServer {
        let mut config = Config {
            addr: "127.0.0.1:0".parse().unwrap(),
            quiet: true,
            ..Config::default()
        };
        configure(&mut config);
        let server = Server::bind(config).expect("bind port 0");
        let addr = server.local_addr();
        let stopper = server.stopper();
        let thread = std::thread::spawn(move || server.run());
        TestServer {
            addr,
            stopper,
            thread: Some(thread),
        }
    }

    pub fn live_streams(&self) -> usize {
        self.stopper.live_streams()
    }

    /// Stops the server and waits for its request loop to return.
    pub fn stop(mut self) -> Result<(), sse_htmx::Error> {
        self.stopper.stop();
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            self.stopper.stop();
            let _ = thread.join();
        }
    }
}

/// Polls `condition` until it holds or `within` runs out.
pub fn wait_for(within: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A connection to `addr` (an IPv4 address) from port `port` of 127.0.0.1 (0: any), which may
/// be one a connection closed a moment ago: as an operating system or a proxy may use one again.
pub fn connect_from(port: u16, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&SocketAddr::from(([127, 0, 0, 1], port)).into())?;
    socket.connect(&addr.into())?;
    let stream = TcpStream::from(socket);
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    Ok(stream)
}

pub fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).expect("connect");
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(TIMEOUT)).unwrap();
    stream
}

#[derive(Debug)]
pub struct Response {
    pub status_line: String,
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8(self.body.clone()).expect("UTF-8 body")
    }
}

/// Sends `method path` with `Connection: close` and the given extra header lines, and reads the
/// whole response.
pub fn request(addr: SocketAddr, method: &str, path: &str, extra_headers: &str) -> Response {
    let mut stream = connect(addr);
    let body_headers = if method == "POST" {
        "Content-Length: 0\r\n"
    } else {
        ""
    };
    write!(
        stream,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n{body_headers}{extra_headers}\r\n"
    )
    .unwrap();
    let mut reader = BufReader::new(stream);
    let mut response = read_head(&mut reader);
    if method != "HEAD" && response.status != 304 {
        reader.read_to_end(&mut response.body).expect("read body");
    }
    response
}

/// Reads a status line and headers.
pub fn read_head(reader: &mut impl BufRead) -> Response {
    let status_line = read_line(reader);
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let mut headers = Vec::new();
    loop {
        let line = read_line(reader);
        if line.is_empty() {
            break;
        }
        let (name, value) = line.split_once(':').expect("header line");
        headers.push((name.trim().to_owned(), value.trim().to_owned()));
    }
    Response {
        status_line,
        status,
        headers,
        body: Vec::new(),
    }
}

fn read_line(reader: &mut impl BufRead) -> String {
    let mut line = String::new();
    reader.read_line(&mut line).expect("read line");
    line.trim_end_matches(['\r', '\n']).to_owned()
}

/// An open event stream (`/connect`, or any path) read chunk by chunk.
pub struct EventStream {
    pub head: Response,
    reader: BufReader<TcpStream>,
}

/// One chunk of the body, when it arrived, and the events in it.
#[derive(Debug)]
pub struct Chunk {
    pub at: Instant,
    pub bytes: Vec<u8>,
}

impl Chunk {
    pub fn events(&self) -> Vec<SseEvent> {
        parse_events(std::str::from_utf8(&self.bytes).expect("UTF-8 chunk"))
    }
}

impl EventStream {
    pub fn open(addr: SocketAddr) -> EventStream {
        EventStream::open_with(addr, "")
    }

    pub fn open_with(addr: SocketAddr, extra_headers: &str) -> EventStream {
        EventStream::open_path(addr, "/connect", extra_headers)
    }

    /// Opens the event stream at `path` with the given extra header lines (each ending in CRLF)
    /// and reads its head, whatever the status.
    pub fn open_path(addr: SocketAddr, path: &str, extra_headers: &str) -> EventStream {
        let mut stream = connect(addr);
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n{extra_headers}\r\n"
        )
        .unwrap();
        let mut reader = BufReader::new(stream);
        let head = read_head(&mut reader);
        EventStream { head, reader }
    }

    /// The next chunk; `None` for the terminating zero-length chunk.
    pub fn next_chunk(&mut self) -> Option<Chunk> {
        let size_line = read_line(&mut self.reader);
        let at = Instant::now();
        let size = usize::from_str_radix(&size_line, 16)
            .unwrap_or_else(|_| panic!("bad chunk size line {size_line:?}"));
        let mut bytes = vec![0; size + 2];
        self.reader.read_exact(&mut bytes).expect("read chunk");
        assert!(bytes.ends_with(b"\r\n"), "chunk ends with CRLF");
        bytes.truncate(size);
        if size == 0 {
            return None;
        }
        Some(Chunk { at, bytes })
    }

    /// The next chunk that holds an event with data (skipping a `retry:` or comment-only chunk).
    pub fn next_event(&mut self) -> (SseEvent, Instant) {
        loop {
            let chunk = self.next_chunk().expect("stream ended");
            let mut events = chunk.events();
            assert!(events.len() <= 1, "one event per chunk, got {events:?}");
            if let Some(event) = events.pop().filter(|e| e.data.is_some()) {
                return (event, chunk.at);
            }
        }
    }

    pub fn into_inner(self) -> TcpStream {
        self.reader.into_inner()
    }
}

/// An event as a client sees it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SseEvent {
    pub event: Option<String>,
    pub id: Option<String>,
    pub retry: Option<u64>,
    pub data: Option<String>,
    pub comments: Vec<String>,
}

/// A plain reading of the WHATWG event-stream rules, written independently of the server's
/// writer: lines split on CRLF, CR or LF; one optional space after the colon is dropped; a blank
/// line dispatches.
pub fn parse_events(text: &str) -> Vec<SseEvent> {
    let mut events = Vec::new();
    let mut current = SseEvent::default();
    let mut data: Option<Vec<String>> = None;
    let mut touched = false;
    let normalized = text.replace("\r\n", "\n").replace('\r', "\n");
    for line in normalized.split('\n') {
        if line.is_empty() {
            if touched {
                current.data = data.take().map(|lines| lines.join("\n"));
                events.push(std::mem::take(&mut current));
                touched = false;
            }
            continue;
        }
        touched = true;
        let (field, value) = match line.split_once(':') {
            Some((field, value)) => (field, value.strip_prefix(' ').unwrap_or(value)),
            None => (line, ""),
        };
        match field {
            "" => current.comments.push(value.to_owned()),
            "event" => current.event = Some(value.to_owned()),
            "id" => current.id = Some(value.to_owned()),
            "retry" => current.retry = value.parse().ok(),
            "data" => data.get_or_insert_with(Vec::new).push(value.to_owned()),
            _ => {}
        }
    }
    events
}

/// Names of the threads of this process that are serving an event stream.
pub fn stream_threads() -> usize {
    std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|name| name.trim_end() == "sse-stream")
        .count()
}

/// `promtool check metrics` on `text`, if promtool is installed (CI must have it).
pub fn promtool_check(text: &str) {
    let promtool = std::path::Path::new("/usr/bin/promtool");
    if !promtool.exists() {
        assert!(std::env::var_os("CI").is_none(), "CI must have promtool");
        eprintln!("skipping promtool: not installed");
        return;
    }
    let mut child = std::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "promtool: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// How many threads of process `pid` are named `name`.
pub fn threads_named(pid: u32, name: &str) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/task"))
        .expect("/proc/PID/task")
        .filter_map(|task| std::fs::read_to_string(task.ok()?.path().join("comm")).ok())
        .filter(|comm| comm.trim_end() == name)
        .count()
}

/// A journal file in the build's scratch folder, `NAME-PID.journal`, removed before and after
/// the test.
pub struct TempFile(pub PathBuf);

impl TempFile {
    pub fn new(name: &str) -> TempFile {
        let path = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("{name}-{}.journal", std::process::id()));
        let _ = std::fs::remove_file(&path);
        TempFile(path)
    }

    pub fn arg(&self) -> &str {
        self.0.to_str().expect("a UTF-8 path")
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Lets this test process hold many sockets.
pub fn raise_open_files() {
    let (_, hard) = rlimit::Resource::NOFILE.get().unwrap();
    rlimit::increase_nofile_limit(hard).unwrap();
}
