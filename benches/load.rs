//! Load benchmark: how many event streams the server holds at once, what each one costs it, and
//! how punctual its events stay. Run it with `cargo bench --bench load`.
//!
//! Each scenario starts the release binary afresh on 127.0.0.1 with a free port, drives it from
//! this process, reads the server's costs from `/proc`, and kills it at the end (also on panic).
//! Nothing leaves the loopback interface, every loop is bounded in count and time, and the
//! whole run stops by itself (about three minutes with the defaults).
//!
//! Scenarios:
//! - **hold N**: one client thread with non-blocking sockets ramps up N concurrent
//!   `GET /connect` streams, holds them for the hold time and records when every event arrives.
//!   Meanwhile a second thread times `POST /ping` requests, to show whether ordinary requests
//!   still get through.
//! - **burst**: a fresh server gets many connections at once; how many of them ever see their
//!   first event?
//!
//! Settings, from the environment:
//! - `LOAD_STREAMS`: the N of the hold scenarios, comma-separated (default `100,1000,5000,10000`)
//! - `LOAD_HOLD_SECS`: how long N streams are held (default 10)
//! - `LOAD_INTERVAL_MS`: the server's `--interval` (default 1000)
//! - `LOAD_BURST`: connections of the burst (default 1000)
//!
//! Output on stdout: one line on the environment, then per scenario a table for people and one
//! JSON line for tools (`{"scenario":"hold",...}` or `{"scenario":"burst",...}`). Progress goes
//! to stderr.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::fs;
use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, ChildStderr, ChildStdout, Command, Stdio};
use std::str::FromStr;
use std::sync::mpsc;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use mio::net::TcpStream as MioStream;
use mio::{Events, Interest, Poll, Token};

/// Streams are opened in batches of this many...
const RAMP_BATCH: usize = 200;
/// ...at most this often, and only while fewer than half a batch still wait for their first
/// event: the ramp follows the server's pace, so the hold scenario measures held streams rather
/// than the listen backlog (the burst scenario measures that).
const RAMP_PAUSE: Duration = Duration::from_millis(20);
/// Opening N streams must not take longer than this; streams not opened by then are reported as
/// not attempted.
const RAMP_LIMIT: Duration = Duration::from_secs(60);
/// A hold stream whose first event has not come this long after its connect began is failed.
const FIRST_EVENT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the burst scenario waits for first events.
const BURST_WAIT: Duration = Duration::from_secs(10);
/// `POST /ping` requests during the hold: one every 50 ms, that is 20 a second.
const PING_EVERY: Duration = Duration::from_millis(50);
/// A ping that takes longer than this (to connect, or for any one read) is a failure.
const PING_TIMEOUT: Duration = Duration::from_secs(2);
/// Descriptors the client needs besides its streams: stdio, the epoll instance, the server's
/// pipes, the ping connection.
const CLIENT_FD_RESERVE: u64 = 64;
/// How long the server may take to print the line that names its port.
const SERVER_START_TIMEOUT: Duration = Duration::from_secs(10);
/// Time for the system to settle between scenarios (a killed server's threads and sockets are
/// freed asynchronously; the next scenario's idle figures should not include them).
const SETTLE: Duration = Duration::from_secs(1);
/// The longest the client's event loop sleeps in one wait.
const POLL_TICK: Duration = Duration::from_millis(20);
/// How often pending streams are checked against [`FIRST_EVENT_TIMEOUT`]. A scan visits every
/// connection, so it is not done on every wake-up.
const EXPIRY_TICK: Duration = Duration::from_millis(100);

fn main() {
    // `cargo bench` passes `--bench`; there are no arguments to read.
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(message) => {
            eprintln!("load: {message}");
            std::process::exit(2);
        }
    };
    let fd_limit = raise_fd_limit();
    println!("{}", environment_line(&settings, fd_limit));
    let clock_ticks = clock_ticks_per_sec();
    for &streams in &settings.streams {
        hold_scenario(&settings, streams, fd_limit, clock_ticks);
        thread::sleep(SETTLE);
    }
    burst_scenario(&settings, fd_limit);
}

fn hold_scenario(settings: &Settings, streams: usize, fd_limit: FdLimit, clock_ticks: u64) {
    if !client_can_open("hold", "streams", streams, fd_limit) {
        return;
    }
    eprintln!("load: hold {streams} streams...");
    match run_hold(settings, streams, clock_ticks) {
        Ok(report) => {
            hold_table(&report).print();
            println!("{}", hold_json(&report));
        }
        Err(message) => println!("hold {streams}: not run: {message}"),
    }
}

fn burst_scenario(settings: &Settings, fd_limit: FdLimit) {
    if !client_can_open("burst", "connections", settings.burst, fd_limit) {
        return;
    }
    eprintln!("load: burst of {} connections...", settings.burst);
    match run_burst(settings) {
        Ok(report) => {
            burst_table(&report).print();
            println!("{}", burst_json(&report));
        }
        Err(message) => println!("burst: not run: {message}"),
    }
}

/// Can this process hold `count` connections? If not, says so (a client limit, not a server
/// finding) and the scenario is skipped rather than measured with connections that never
/// opened.
fn client_can_open(scenario: &str, size_key: &str, count: usize, fd: FdLimit) -> bool {
    let needed = count as u64 + CLIENT_FD_RESERVE;
    if needed <= fd.soft {
        return true;
    }
    println!(
        "{scenario} {count}: skipped: client limit: needs {needed} descriptors, the open-file \
         limit is {} (hard {})",
        fd.soft, fd.hard
    );
    let mut json = Json::new(scenario);
    json.int(size_key, count as u64);
    json.string("skipped", Some("client open-file limit"));
    json.int("client_fd_needed", needed);
    json.int("client_fd_limit", fd.soft);
    println!("{}", json.finish());
    false
}

// ---------------------------------------------------------------------------------------------
// Settings and the environment

struct Settings {
    streams: Vec<usize>,
    hold: Duration,
    interval: Duration,
    burst: usize,
}

impl Settings {
    fn from_env() -> Result<Settings, String> {
        let streams = env_list("LOAD_STREAMS", &[100, 1000, 5000, 10000])?;
        let hold_secs: f64 = env_number("LOAD_HOLD_SECS", 10.0)?;
        let interval_ms: u64 = env_number("LOAD_INTERVAL_MS", 1000)?;
        let burst: usize = env_number("LOAD_BURST", 1000)?;
        // Bounds keep every loop of the run bounded, whatever the environment says.
        if !(hold_secs > 0.0 && hold_secs <= 600.0) {
            return Err("LOAD_HOLD_SECS must be above 0 and at most 600".into());
        }
        if !(1..=60_000).contains(&interval_ms) {
            return Err("LOAD_INTERVAL_MS must be between 1 and 60000".into());
        }
        if streams
            .iter()
            .chain([&burst])
            .any(|&n| n == 0 || n > 100_000)
        {
            return Err("LOAD_STREAMS and LOAD_BURST must be between 1 and 100000".into());
        }
        Ok(Settings {
            streams,
            hold: Duration::from_secs_f64(hold_secs),
            interval: Duration::from_millis(interval_ms),
            burst,
        })
    }
}

fn env_number<T: FromStr>(name: &str, default: T) -> Result<T, String> {
    match std::env::var(name) {
        Err(_) => Ok(default),
        Ok(text) => text
            .trim()
            .parse()
            .map_err(|_| format!("{name}={text:?} is not a number")),
    }
}

fn env_list(name: &str, default: &[usize]) -> Result<Vec<usize>, String> {
    match std::env::var(name) {
        Err(_) => Ok(default.to_vec()),
        Ok(text) => text
            .split(',')
            .map(|item| {
                item.trim()
                    .parse()
                    .map_err(|_| format!("{name}={text:?} is not a comma-separated list"))
            })
            .collect(),
    }
}

#[derive(Clone, Copy)]
struct FdLimit {
    soft: u64,
    hard: u64,
}

/// Raises this process's open-file soft limit to its hard limit. The server is a child of this
/// process and inherits the raised limit too.
fn raise_fd_limit() -> FdLimit {
    if let Err(error) = rlimit::increase_nofile_limit(u64::MAX) {
        eprintln!("load: cannot raise the open-file limit: {error}");
    }
    let (soft, hard) = rlimit::Resource::NOFILE.get().unwrap_or((1024, 1024));
    FdLimit { soft, hard }
}

fn environment_line(settings: &Settings, fd: FdLimit) -> String {
    let cores = thread::available_parallelism().map_or(0, |n| n.get());
    let sysctl = |path: &str| {
        fs::read_to_string(path).map_or_else(
            |_| "?".to_owned(),
            |s| s.split_whitespace().collect::<Vec<_>>().join("-"),
        )
    };
    format!(
        "environment: cores {cores}, vm.max_map_count {}, open files soft {} hard {}, \
         kernel.threads-max {}, kernel.pid_max {}, local ports {}, somaxconn {}, \
         interval {} ms, hold {} s, streams {:?}, burst {}",
        sysctl("/proc/sys/vm/max_map_count"),
        fd.soft,
        fd.hard,
        sysctl("/proc/sys/kernel/threads-max"),
        sysctl("/proc/sys/kernel/pid_max"),
        sysctl("/proc/sys/net/ipv4/ip_local_port_range"),
        sysctl("/proc/sys/net/core/somaxconn"),
        settings.interval.as_millis(),
        settings.hold.as_secs_f64(),
        settings.streams,
        settings.burst,
    )
}

/// The kernel's clock tick, the unit of the CPU times in `/proc/PID/stat`.
fn clock_ticks_per_sec() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .filter(|&ticks| ticks > 0)
        .unwrap_or(100)
}

// ---------------------------------------------------------------------------------------------
// The server process

/// The server under test. Dropping it kills the process (by its PID, through the `Child`) and
/// reaps it, so neither a finished scenario nor a panic leaves it running.
struct ServerProcess {
    child: Child,
    addr: SocketAddr,
    /// The last lines the server wrote on stderr, to say why it exited if it did.
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
}

impl ServerProcess {
    fn start(interval: Duration) -> Result<ServerProcess, String> {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sse-htmx"))
            .args(["--addr", "127.0.0.1:0", "--quiet", "--interval"])
            .arg(format!("{}ms", interval.as_millis()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|error| format!("cannot start the server: {error}"))?;
        let stdout = child.stdout.take();
        let stderr = child.stderr.take();
        // The guard exists from here on, so an early return below kills the child.
        let mut server = ServerProcess {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            stderr_tail: Arc::default(),
        };
        if let Some(stderr) = stderr {
            keep_stderr_tail(stderr, server.stderr_tail.clone());
        }
        let port = stdout
            .ok_or("no stdout pipe".to_owned())
            .and_then(wait_for_port)
            .map_err(|error| format!("{error}; {}", server.exit_description()))?;
        server.addr.set_port(port);
        Ok(server)
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn is_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// How the server ended, with its last line on stderr, or that it is still running.
    fn exit_description(&mut self) -> String {
        let status = match self.child.try_wait() {
            Ok(Some(status)) => status.to_string(),
            Ok(None) => return "still running".into(),
            Err(error) => format!("unknown ({error})"),
        };
        let tail = self
            .stderr_tail
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        match tail.back() {
            Some(line) => format!("{status}; last stderr line: {line}"),
            None => status,
        }
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        // Fails harmlessly if the server has already exited.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Reads the server's stdout on a thread of its own until the line that names the port. The
/// thread then drains stdout until the server exits, so a later line can never block the
/// server on a full pipe.
fn wait_for_port(stdout: ChildStdout) -> Result<u16, String> {
    let (tell, told) = mpsc::sync_channel(1);
    thread::Builder::new()
        .name("server-stdout".into())
        .spawn(move || {
            let mut told_port = false;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if !told_port && let Some(port) = port_in_banner(&line) {
                    let _ = tell.send(port);
                    told_port = true;
                }
            }
        })
        .map_err(|error| format!("cannot start a thread: {error}"))?;
    match told.recv_timeout(SERVER_START_TIMEOUT) {
        Ok(port) => Ok(port),
        Err(mpsc::RecvTimeoutError::Timeout) => Err("the server printed no port in time".into()),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            Err("the server closed stdout without printing its port".into())
        }
    }
}

/// The port in `sse-htmx listening; open http://127.0.0.1:PORT/`.
fn port_in_banner(line: &str) -> Option<u16> {
    let (_, after_scheme) = line.split_once("http://")?;
    let host_port = after_scheme.split('/').next()?;
    host_port.rsplit_once(':')?.1.parse().ok()
}

/// Keeps the last few stderr lines of the server, read on a thread of its own until it exits.
fn keep_stderr_tail(stderr: ChildStderr, tail: Arc<Mutex<VecDeque<String>>>) {
    const KEEP_LINES: usize = 10;
    const KEEP_CHARS: usize = 300;
    let spawned = thread::Builder::new()
        .name("server-stderr".into())
        .spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let mut tail = tail.lock().unwrap_or_else(PoisonError::into_inner);
                if tail.len() == KEEP_LINES {
                    tail.pop_front();
                }
                tail.push_back(line.chars().take(KEEP_CHARS).collect());
            }
        });
    if let Err(error) = spawned {
        eprintln!("load: cannot watch the server's stderr: {error}");
    }
}

// ---------------------------------------------------------------------------------------------
// What /proc tells about the server

/// The server's footprint at one moment.
#[derive(Clone, Copy, Debug)]
struct ProcSample {
    rss_kib: u64,
    threads: u64,
    mappings: u64,
    fds: u64,
    /// System-wide `KernelStack:` of /proc/meminfo: a thread's kernel stack is not in its
    /// process's RSS.
    kernel_stack_kib: u64,
}

/// `None` once the process is gone (a zombie has no `VmRSS:`).
fn sample_process(pid: u32) -> Option<ProcSample> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let maps = fs::read_to_string(format!("/proc/{pid}/maps")).ok()?;
    let fds = fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count();
    let meminfo = fs::read_to_string("/proc/meminfo").ok()?;
    Some(ProcSample {
        rss_kib: field_number(&status, "VmRSS:")?,
        threads: field_number(&status, "Threads:")?,
        mappings: maps.lines().count() as u64,
        fds: fds as u64,
        kernel_stack_kib: field_number(&meminfo, "KernelStack:")?,
    })
}

/// The number after `name` in a `Name:  value unit` file such as /proc/PID/status.
fn field_number(text: &str, name: &str) -> Option<u64> {
    let line = text.lines().find(|line| line.starts_with(name))?;
    line[name.len()..].split_whitespace().next()?.parse().ok()
}

/// utime + stime of the whole process (all its threads, living and ended), in clock ticks.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name, field 2, may contain spaces; the fields after it are fixed. Counting
    // from field 3 (state) just after the closing parenthesis, utime and stime (fields 14 and
    // 15) are at index 11 and 12.
    let (_, after_name) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

// ---------------------------------------------------------------------------------------------
// Parsing an event stream from a chunked HTTP response, in pieces of any size

/// Where the parser is in the response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ParseState {
    Head,
    ChunkSize,
    ChunkData {
        left: usize,
    },
    /// The CRLF that ends a chunk's data.
    ChunkEnd,
    /// The body ended, or its status was not 200 and the rest does not matter.
    Done,
}

/// What one piece of input brought.
#[derive(Debug, Default, PartialEq, Eq)]
struct Fed {
    /// The status, in the piece that completed the head.
    status: Option<u16>,
    /// Events completed in this piece.
    events: usize,
    /// The zero-length chunk came: the server ended the body.
    body_ended: bool,
}

/// Reads a chunked `text/event-stream` response and counts its events: an event is a chunk with
/// a `data:` line (keep-alive comments and `retry:` chunks are not events). Holds no more than
/// the response head and one chunk-size line, whatever the split of the input.
struct EventStreamParser {
    state: ParseState,
    /// The head, then a chunk-size line or a chunk's closing CRLF, as far as received.
    pending: Vec<u8>,
    data_line: DataLineFinder,
}

const MAX_HEAD: usize = 16 * 1024;
const MAX_LINE: usize = 1024;

impl EventStreamParser {
    fn new() -> EventStreamParser {
        EventStreamParser {
            state: ParseState::Head,
            pending: Vec::new(),
            data_line: DataLineFinder::default(),
        }
    }

    fn feed(&mut self, mut bytes: &[u8]) -> Result<Fed, String> {
        let mut fed = Fed::default();
        while !bytes.is_empty() {
            match self.state {
                ParseState::Head => {
                    let Some(used) = self.take_head(bytes)? else {
                        return Ok(fed);
                    };
                    bytes = &bytes[used..];
                    let head = parse_head(&self.pending)?;
                    self.pending.clear();
                    fed.status = Some(head.status);
                    if head.status != 200 {
                        self.state = ParseState::Done;
                    } else if !head.chunked {
                        return Err("a 200 response that is not chunked".into());
                    } else {
                        self.state = ParseState::ChunkSize;
                    }
                }
                ParseState::ChunkSize => {
                    let Some(used) = self.take_line(bytes)? else {
                        return Ok(fed);
                    };
                    bytes = &bytes[used..];
                    let size = parse_chunk_size(&self.pending)?;
                    self.pending.clear();
                    if size == 0 {
                        fed.body_ended = true;
                        self.state = ParseState::Done;
                    } else {
                        self.data_line = DataLineFinder::default();
                        self.state = ParseState::ChunkData { left: size };
                    }
                }
                ParseState::ChunkData { left } => {
                    let here = left.min(bytes.len());
                    bytes[..here].iter().for_each(|&b| self.data_line.push(b));
                    bytes = &bytes[here..];
                    if here == left {
                        // The event is complete when its last byte is; the CRLF after it is
                        // framing.
                        if self.data_line.found {
                            fed.events += 1;
                        }
                        self.state = ParseState::ChunkEnd;
                    } else {
                        self.state = ParseState::ChunkData { left: left - here };
                    }
                }
                ParseState::ChunkEnd => {
                    let Some(used) = self.take_line(bytes)? else {
                        return Ok(fed);
                    };
                    bytes = &bytes[used..];
                    if !matches!(self.pending.as_slice(), b"" | b"\r") {
                        return Err("a chunk longer than its size".into());
                    }
                    self.pending.clear();
                    self.state = ParseState::ChunkSize;
                }
                ParseState::Done => break,
            }
        }
        Ok(fed)
    }

    /// Adds bytes to the head until its blank line; returns how many bytes it took once the head
    /// is complete.
    fn take_head(&mut self, bytes: &[u8]) -> Result<Option<usize>, String> {
        for (i, &b) in bytes.iter().enumerate() {
            self.pending.push(b);
            if self.pending.ends_with(b"\r\n\r\n") {
                return Ok(Some(i + 1));
            }
        }
        if self.pending.len() > MAX_HEAD {
            return Err("a response head over 16 KiB".into());
        }
        Ok(None)
    }

    /// Adds bytes to `pending` up to the next `\n` (not kept); returns how many bytes it took
    /// once the line is complete.
    fn take_line(&mut self, bytes: &[u8]) -> Result<Option<usize>, String> {
        match bytes.iter().position(|&b| b == b'\n') {
            Some(end) => {
                self.pending.extend_from_slice(&bytes[..end]);
                Ok(Some(end + 1))
            }
            None => {
                self.pending.extend_from_slice(bytes);
                if self.pending.len() > MAX_LINE {
                    return Err("a chunk-size line over 1 KiB".into());
                }
                Ok(None)
            }
        }
    }
}

/// Tells whether a chunk has a line that starts with `data:`, one byte at a time, so that a chunk
/// split across reads needs no buffer.
struct DataLineFinder {
    /// How much of `data:` the current line starts with; `None` when it starts otherwise.
    matched: Option<usize>,
    found: bool,
}

impl Default for DataLineFinder {
    fn default() -> Self {
        DataLineFinder {
            matched: Some(0),
            found: false,
        }
    }
}

impl DataLineFinder {
    const FIELD: &'static [u8] = b"data:";

    fn push(&mut self, byte: u8) {
        // SSE ends lines with CRLF, LF or CR alone.
        if byte == b'\n' || byte == b'\r' {
            self.matched = Some(0);
            return;
        }
        if let Some(matched) = self.matched
            && matched < Self::FIELD.len()
        {
            if byte == Self::FIELD[matched] {
                self.matched = Some(matched + 1);
                self.found |= matched + 1 == Self::FIELD.len();
            } else {
                self.matched = None;
            }
        }
    }
}

struct Head {
    status: u16,
    chunked: bool,
}

fn parse_head(head: &[u8]) -> Result<Head, String> {
    let text = std::str::from_utf8(head).map_err(|_| "a response head that is not UTF-8")?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("a bad status line {status_line:?}"))?;
    let chunked = lines.any(|line| {
        line.split_once(':').is_some_and(|(name, value)| {
            name.trim().eq_ignore_ascii_case("transfer-encoding")
                && value.to_ascii_lowercase().contains("chunked")
        })
    });
    Ok(Head { status, chunked })
}

/// The size in a chunk-size line (hex digits, maybe extensions after `;`, maybe a trailing CR).
fn parse_chunk_size(line: &[u8]) -> Result<usize, String> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let digits = line.split(|&b| b == b';').next().unwrap_or_default();
    std::str::from_utf8(digits)
        .ok()
        .and_then(|digits| usize::from_str_radix(digits.trim(), 16).ok())
        .ok_or_else(|| format!("a bad chunk size {:?}", String::from_utf8_lossy(line)))
}

// ---------------------------------------------------------------------------------------------
// The client: many streams on one thread

/// Why a stream never got going. The order is the order of the report.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Failure {
    /// connect() failed, or writing the request did.
    Connect,
    /// The server answered 503: it is at capacity.
    Unavailable,
    /// Any other status than 200 or 503.
    OtherStatus,
    /// The connection closed (EOF or reset) before the first event.
    ClosedBeforeFirstEvent,
    /// No first event within [`FIRST_EVENT_TIMEOUT`] (hold scenario only).
    NoFirstEventInTime,
    /// The response could not be parsed.
    BadResponse,
}

impl Failure {
    const ALL: [Failure; 6] = [
        Failure::Connect,
        Failure::Unavailable,
        Failure::OtherStatus,
        Failure::ClosedBeforeFirstEvent,
        Failure::NoFirstEventInTime,
        Failure::BadResponse,
    ];

    fn label(self) -> &'static str {
        match self {
            Failure::Connect => "connect error",
            Failure::Unavailable => "503",
            Failure::OtherStatus => "other status",
            Failure::ClosedBeforeFirstEvent => "EOF/reset before first event",
            Failure::NoFirstEventInTime => "no first event in 5 s",
            Failure::BadResponse => "bad response",
        }
    }

    fn json_key(self) -> &'static str {
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

#[derive(Debug)]
enum Phase {
    /// Connecting, or writing the request: `sent` bytes of it are out.
    Connecting {
        sent: usize,
    },
    AwaitingFirstEvent,
    Streaming,
    /// The stream ended (EOF, reset or the last chunk) after its first event.
    Ended,
    Failed {
        why: Failure,
        detail: String,
    },
}

/// One `GET /connect` stream.
struct Conn {
    /// `None` once closed.
    stream: Option<MioStream>,
    phase: Phase,
    started: Instant,
    parser: EventStreamParser,
    /// When each event arrived; the first is event 0.
    arrivals: Vec<Instant>,
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
        if fed.events > 0 && matches!(self.phase, Phase::AwaitingFirstEvent) {
            self.phase = Phase::Streaming;
        }
        if fed.body_ended {
            self.closed("the server ended the body".into());
        }
    }
}

/// Many `GET /connect` streams driven from one thread with non-blocking sockets.
struct Client {
    poll: Poll,
    events: Events,
    addr: SocketAddr,
    request: Vec<u8>,
    conns: Vec<Conn>,
    /// One read buffer for every connection: a connection's partial input lives in its parser.
    read_buf: Vec<u8>,
    /// `None`: pending streams wait as long as the scenario does.
    first_event_timeout: Option<Duration>,
    /// How many streams are pending, kept up to date so that asking costs nothing.
    pending: usize,
    last_expiry_check: Instant,
}

impl Client {
    fn new(addr: SocketAddr, first_event_timeout: Option<Duration>) -> io::Result<Client> {
        Ok(Client {
            poll: Poll::new()?,
            events: Events::with_capacity(4096),
            addr,
            request: format!(
                "GET /connect HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\
                 Cache-Control: no-cache\r\n\r\n"
            )
            .into_bytes(),
            conns: Vec::new(),
            read_buf: vec![0; 64 * 1024],
            first_event_timeout,
            pending: 0,
            last_expiry_check: Instant::now(),
        })
    }

    fn opened(&self) -> usize {
        self.conns.len()
    }

    fn pending(&self) -> usize {
        self.pending
    }

    fn count(&self, phase: impl Fn(&Phase) -> bool) -> usize {
        self.conns.iter().filter(|conn| phase(&conn.phase)).count()
    }

    /// Starts `count` non-blocking connects. A connect that fails at once is a counted failure.
    fn open(&mut self, count: usize) {
        for _ in 0..count {
            let token = Token(self.conns.len());
            let mut conn = Conn {
                stream: None,
                phase: Phase::Connecting { sent: 0 },
                started: Instant::now(),
                parser: EventStreamParser::new(),
                arrivals: Vec::new(),
            };
            let registered = MioStream::connect(self.addr).and_then(|mut stream| {
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
    fn run_until(&mut self, deadline: Instant, done: impl Fn(&Client) -> bool) {
        while Instant::now() < deadline && !done(self) {
            self.poll_once(deadline);
        }
    }

    /// Waits for readiness (at most [`POLL_TICK`], never past `deadline`) and handles it.
    fn poll_once(&mut self, deadline: Instant) {
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
            let Some(conn) = self.conns.get_mut(event.token().0) else {
                continue;
            };
            let was_pending = conn.is_pending();
            conn.on_ready(&self.request, &mut self.read_buf);
            if was_pending && !conn.is_pending() {
                self.pending -= 1;
            }
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

// ---------------------------------------------------------------------------------------------
// POST /ping, timed from a second thread

#[derive(Default)]
struct PingStats {
    sent: usize,
    latencies_ms: Vec<f64>,
    failures: usize,
    first_failure: Option<String>,
}

impl PingStats {
    fn spread(&self) -> Option<Spread> {
        Spread::of(&mut self.latencies_ms.clone())
    }
}

/// Sends `POST /ping` every [`PING_EVERY`] until `until`, each on a fresh blocking connection,
/// and times each from the start of its connect to the end of its response.
fn ping_until(addr: SocketAddr, until: Instant) -> PingStats {
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

fn ping_once(addr: SocketAddr) -> Result<(), String> {
    let mut stream = TcpStream::connect_timeout(&addr, PING_TIMEOUT)
        .map_err(|error| format!("connect: {error}"))?;
    let timeouts = stream
        .set_read_timeout(Some(PING_TIMEOUT))
        .and_then(|()| stream.set_write_timeout(Some(PING_TIMEOUT)));
    timeouts.map_err(|error| format!("socket options: {error}"))?;
    let request = format!(
        "POST /ping HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .map_err(|error| format!("write: {error}"))?;
    let status = read_response(&mut stream).map_err(|error| format!("read: {error}"))?;
    if status != 200 {
        return Err(format!("status {status}"));
    }
    Ok(())
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

// ---------------------------------------------------------------------------------------------
// Statistics

/// Percentiles of a set of samples (nearest rank).
#[derive(Clone, Copy, Debug)]
struct Spread {
    p50: f64,
    p99: f64,
    max: f64,
}

impl Spread {
    fn of(samples: &mut [f64]) -> Option<Spread> {
        if samples.is_empty() {
            return None;
        }
        samples.sort_by(f64::total_cmp);
        let rank = |p: f64| {
            let index = ((p * samples.len() as f64).ceil() as usize).clamp(1, samples.len()) - 1;
            samples[index]
        };
        Some(Spread {
            p50: rank(0.50),
            p99: rank(0.99),
            max: samples[samples.len() - 1],
        })
    }
}

fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1e3
}

/// How every connection of a scenario ended up.
struct Outcomes {
    attempted: usize,
    /// Got their first event.
    ok: usize,
    /// Got their first event, then ended before the scenario did.
    dropped: usize,
    /// Still waiting for their first event at the end.
    stranded: usize,
    /// Per [`Failure::ALL`]: how many, and the first detail seen.
    failures: Vec<(Failure, usize, Option<String>)>,
}

impl Outcomes {
    fn of(client: &Client) -> Outcomes {
        let mut failures: Vec<(Failure, usize, Option<String>)> =
            Failure::ALL.iter().map(|&why| (why, 0, None)).collect();
        for conn in &client.conns {
            if let Phase::Failed { why, detail } = &conn.phase
                && let Some(entry) = failures.iter_mut().find(|(f, _, _)| f == why)
            {
                entry.1 += 1;
                entry.2.get_or_insert_with(|| detail.clone());
            }
        }
        Outcomes {
            attempted: client.opened(),
            ok: client.count(|phase| matches!(phase, Phase::Streaming | Phase::Ended)),
            dropped: client.count(|phase| matches!(phase, Phase::Ended)),
            stranded: client.pending(),
            failures,
        }
    }

    fn failed(&self) -> usize {
        self.failures.iter().map(|(_, count, _)| count).sum()
    }

    /// `503: 12 (detail); connect error: 3 (detail)`, or `none`.
    fn failure_summary(&self) -> String {
        let parts: Vec<String> = self
            .failures
            .iter()
            .filter(|(_, count, _)| *count > 0)
            .map(|(why, count, detail)| match detail {
                Some(detail) if detail != why.label() => {
                    format!("{}: {count} (first: {detail})", why.label())
                }
                _ => format!("{}: {count}", why.label()),
            })
            .collect();
        if parts.is_empty() {
            "none".into()
        } else {
            parts.join("; ")
        }
    }
}

/// Connect-to-first-event times of the streams that got one, in ms.
fn first_event_spread(client: &Client) -> Option<Spread> {
    let mut samples: Vec<f64> = client
        .conns
        .iter()
        .filter_map(|conn| Some(ms(*conn.arrivals.first()? - conn.started)))
        .collect();
    Spread::of(&mut samples)
}

struct Lateness {
    spread: Option<Spread>,
    events: usize,
    /// Events that came before their slot (clamped to 0 in the spread).
    early: usize,
}

/// Lateness of event k ≥ 1 of each stream: arrival − (first arrival + k × interval). The first
/// event anchors the stream's schedule, so a server that delivers every event with the same delay
/// shows none; `k` counts the events received, so a slot the server skipped shows up as a full
/// interval of lateness, which is what a client lives through. Only events for which `counted`
/// says yes (by arrival) are included.
fn lateness(client: &Client, interval: Duration, counted: impl Fn(Instant) -> bool) -> Lateness {
    let mut samples = Vec::new();
    let mut early = 0;
    for conn in &client.conns {
        let Some(&first) = conn.arrivals.first() else {
            continue;
        };
        for (k, &arrival) in conn.arrivals.iter().enumerate().skip(1) {
            if !counted(arrival) {
                continue;
            }
            let due = first + interval * k as u32;
            match arrival.checked_duration_since(due) {
                Some(late) => samples.push(ms(late)),
                None => {
                    early += 1;
                    samples.push(0.0);
                }
            }
        }
    }
    Lateness {
        events: samples.len(),
        spread: Spread::of(&mut samples),
        early,
    }
}

fn events_between(client: &Client, from: Instant, to: Instant) -> usize {
    client
        .conns
        .iter()
        .flat_map(|conn| &conn.arrivals)
        .filter(|&&arrival| arrival >= from && arrival < to)
        .count()
}

// ---------------------------------------------------------------------------------------------
// The hold scenario

struct HoldReport {
    streams: usize,
    interval: Duration,
    hold: Duration,
    ramp: Duration,
    outcomes: Outcomes,
    /// Streams still open when the held figures were sampled: the divisor of the per-stream costs.
    held_streams: usize,
    /// Every event after the first, from the ramp-up on.
    lateness: Lateness,
    /// Only the events that arrived during the hold window: the steady state, without the
    /// ramp-up's thread creation.
    lateness_in_hold: Lateness,
    first_event: Option<Spread>,
    idle: Option<ProcSample>,
    held: Option<ProcSample>,
    cpu_ticks: Option<u64>,
    /// This process's own CPU over the hold: it shares the cores with the server, so a busy
    /// client would inflate the lateness figures.
    client_cpu_ticks: Option<u64>,
    clock_ticks: u64,
    events_in_hold: usize,
    ping: PingStats,
    server_alive: bool,
    server_exit: String,
}

fn run_hold(settings: &Settings, streams: usize, clock_ticks: u64) -> Result<HoldReport, String> {
    let mut server = ServerProcess::start(settings.interval)?;
    let pid = server.pid();
    // One request first, so the idle figures are of a server that has served.
    ping_once(server.addr).map_err(|error| format!("the server does not answer: {error}"))?;
    thread::sleep(Duration::from_millis(200));
    let idle = sample_process(pid);

    let mut client = Client::new(server.addr, Some(FIRST_EVENT_TIMEOUT))
        .map_err(|error| format!("cannot create a poller: {error}"))?;
    let ramp_started = Instant::now();
    ramp_up(&mut client, streams);
    // Every stream either gets its first event or times out within FIRST_EVENT_TIMEOUT.
    let settle_deadline = Instant::now() + FIRST_EVENT_TIMEOUT + Duration::from_secs(1);
    client.run_until(settle_deadline, |client| client.pending() == 0);
    let ramp = ramp_started.elapsed();

    let hold_start = Instant::now();
    let hold_end = hold_start + settings.hold;
    let cpu_start = cpu_ticks(pid);
    let client_cpu_start = cpu_ticks(std::process::id());
    let addr = server.addr;
    let pinger = thread::Builder::new()
        .name("ping".into())
        .spawn(move || ping_until(addr, hold_end));
    client.run_until(hold_end, |_| false);
    let hold_end = Instant::now();
    let cpu_end = cpu_ticks(pid);
    let client_cpu_end = cpu_ticks(std::process::id());
    let held = sample_process(pid);
    let held_streams = client.count(|phase| matches!(phase, Phase::Streaming));
    let ping = match pinger {
        Ok(handle) => handle.join().unwrap_or_default(),
        Err(error) => PingStats {
            first_failure: Some(format!("no ping thread: {error}")),
            ..PingStats::default()
        },
    };
    let server_alive = server.is_alive();

    Ok(HoldReport {
        streams,
        interval: settings.interval,
        hold: hold_end - hold_start,
        ramp,
        outcomes: Outcomes::of(&client),
        held_streams,
        lateness: lateness(&client, settings.interval, |_| true),
        lateness_in_hold: lateness(&client, settings.interval, |arrival| {
            arrival >= hold_start && arrival < hold_end
        }),
        first_event: first_event_spread(&client),
        idle,
        held,
        cpu_ticks: cpu_start.zip(cpu_end).map(|(start, end)| end - start),
        client_cpu_ticks: client_cpu_start
            .zip(client_cpu_end)
            .map(|(start, end)| end - start),
        clock_ticks,
        events_in_hold: events_between(&client, hold_start, hold_end),
        ping,
        server_alive,
        server_exit: server.exit_description(),
    })
}

/// Opens `streams` streams in batches, at the server's pace (see [`RAMP_BATCH`]).
fn ramp_up(client: &mut Client, streams: usize) {
    let give_up = Instant::now() + RAMP_LIMIT;
    let mut last_batch: Option<Instant> = None;
    while client.opened() < streams && Instant::now() < give_up {
        let paused = last_batch.is_none_or(|at| at.elapsed() >= RAMP_PAUSE);
        if paused && client.pending() < RAMP_BATCH / 2 {
            client.open((streams - client.opened()).min(RAMP_BATCH));
            last_batch = Some(Instant::now());
        }
        client.poll_once(Instant::now() + RAMP_PAUSE);
    }
}

/// One figure of a [`ProcSample`], as the table and the JSON name it.
struct Figure {
    json: &'static str,
    label: &'static str,
    unit: &'static str,
    read: fn(&ProcSample) -> u64,
}

const FIGURES: [Figure; 5] = [
    Figure {
        json: "rss_kib",
        label: "RSS",
        unit: "KiB",
        read: |s| s.rss_kib,
    },
    Figure {
        json: "threads",
        label: "threads",
        unit: "",
        read: |s| s.threads,
    },
    Figure {
        json: "mappings",
        label: "mappings",
        unit: "",
        read: |s| s.mappings,
    },
    Figure {
        json: "fds",
        label: "open fds",
        unit: "",
        read: |s| s.fds,
    },
    Figure {
        json: "kernel_stack_kib",
        label: "KernelStack (system-wide)",
        unit: "KiB",
        read: |s| s.kernel_stack_kib,
    },
];

/// (held − idle) / streams held, for one figure. The divisor is the streams actually open when
/// the held sample was taken, which is N unless some failed.
fn per_stream(report: &HoldReport, read: fn(&ProcSample) -> u64) -> Option<f64> {
    let (idle, held) = (report.idle?, report.held?);
    if report.held_streams == 0 {
        return None;
    }
    Some((read(&held) as f64 - read(&idle) as f64) / report.held_streams as f64)
}

/// What a held stream costs in memory: its share of the RSS plus its kernel stack, in KiB.
fn total_kib_per_stream(report: &HoldReport) -> Option<f64> {
    let rss = per_stream(report, |s| s.rss_kib)?;
    let kernel_stack = per_stream(report, |s| s.kernel_stack_kib)?;
    Some(rss + kernel_stack)
}

fn ticks_to_ms(ticks: Option<u64>, clock_ticks: u64) -> Option<f64> {
    Some(ticks? as f64 * 1e3 / clock_ticks as f64)
}

fn cpu_ms(report: &HoldReport) -> Option<f64> {
    ticks_to_ms(report.cpu_ticks, report.clock_ticks)
}

fn client_cpu_ms(report: &HoldReport) -> Option<f64> {
    ticks_to_ms(report.client_cpu_ticks, report.clock_ticks)
}

/// Server CPU per event delivered during the hold, in µs.
fn cpu_us_per_event(report: &HoldReport) -> Option<f64> {
    if report.events_in_hold == 0 {
        return None;
    }
    Some(cpu_ms(report)? * 1e3 / report.events_in_hold as f64)
}

fn hold_table(r: &HoldReport) -> Table {
    let o = &r.outcomes;
    let mut t = Table::new(format!(
        "hold {} streams (interval {} ms, held {:.1} s)",
        r.streams,
        r.interval.as_millis(),
        r.hold.as_secs_f64()
    ));
    let not_attempted = r.streams - o.attempted;
    t.row(
        "streams ok / failed / not attempted",
        format!("{} / {} / {not_attempted}", o.ok, o.failed()),
    );
    t.row("failure reasons", o.failure_summary());
    t.row("dropped after first event", o.dropped.to_string());
    t.row("held at the end", r.held_streams.to_string());
    t.row(
        "ramp-up (to all first events)",
        format!("{:.2} s", r.ramp.as_secs_f64()),
    );
    t.row(
        "connect → first event p50 / p99 / max",
        spread_text(r.first_event, "ms"),
    );
    for (label, lateness) in [
        ("all events", &r.lateness),
        ("hold window only", &r.lateness_in_hold),
    ] {
        t.row(
            &format!("lateness, {label}: p50 / p99 / max"),
            spread_text(lateness.spread, "ms"),
        );
        t.row(
            &format!("lateness, {label}: events / early (as 0)"),
            format!("{} / {}", lateness.events, lateness.early),
        );
    }
    for f in &FIGURES {
        let (idle, held) = (r.idle.as_ref().map(f.read), r.held.as_ref().map(f.read));
        t.row(
            &format!("server {} idle → held", f.label),
            pair_text(idle, held, f.unit),
        );
    }
    for f in &FIGURES {
        let decimals = if f.unit.is_empty() { 2 } else { 1 };
        let value = number_text(per_stream(r, f.read), decimals, f.unit);
        t.row(&format!("per stream: {}", f.label), value);
    }
    t.row(
        "per stream: RSS + kernel stack",
        number_text(total_kib_per_stream(r), 1, "KiB"),
    );
    t.row(
        "server CPU over the hold / events",
        format!("{} / {}", number_text(cpu_ms(r), 0, "ms"), r.events_in_hold),
    );
    t.row(
        "server CPU per event",
        number_text(cpu_us_per_event(r), 1, "µs"),
    );
    t.row(
        "client (this bench) CPU over the hold",
        number_text(client_cpu_ms(r), 0, "ms"),
    );
    t.row(
        "POST /ping sent / failed",
        format!("{} / {}", r.ping.sent, r.ping.failures),
    );
    if let Some(failure) = &r.ping.first_failure {
        t.row("POST /ping first failure", failure.clone());
    }
    t.row(
        "POST /ping p50 / p99 / max",
        spread_text(r.ping.spread(), "ms"),
    );
    t.row("server alive at the end", r.server_alive.to_string());
    if !r.server_alive {
        t.row("server exit", r.server_exit.clone());
    }
    t
}

fn hold_json(r: &HoldReport) -> String {
    let o = &r.outcomes;
    let mut j = Json::new("hold");
    j.int("streams", r.streams as u64);
    j.int("interval_ms", r.interval.as_millis() as u64);
    j.num("hold_secs", Some(r.hold.as_secs_f64()));
    j.num("ramp_secs", Some(r.ramp.as_secs_f64()));
    j.int("attempted", o.attempted as u64);
    j.int("ok", o.ok as u64);
    j.int("failed", o.failed() as u64);
    for (why, count, _) in &o.failures {
        j.int(why.json_key(), *count as u64);
    }
    j.int("dropped", o.dropped as u64);
    j.int("held", r.held_streams as u64);
    j.spread("first_event_ms", r.first_event);
    j.spread("lateness_ms", r.lateness.spread);
    j.int("lateness_samples", r.lateness.events as u64);
    j.int("lateness_early", r.lateness.early as u64);
    j.spread("lateness_hold_ms", r.lateness_in_hold.spread);
    j.int("lateness_hold_samples", r.lateness_in_hold.events as u64);
    j.int("lateness_hold_early", r.lateness_in_hold.early as u64);
    for f in &FIGURES {
        j.opt_int(&format!("{}_idle", f.json), r.idle.as_ref().map(f.read));
        j.opt_int(&format!("{}_held", f.json), r.held.as_ref().map(f.read));
        j.num(&format!("{}_per_stream", f.json), per_stream(r, f.read));
    }
    j.num("total_kib_per_stream", total_kib_per_stream(r));
    j.num("cpu_ms", cpu_ms(r));
    j.int("events_in_hold", r.events_in_hold as u64);
    j.num("cpu_us_per_event", cpu_us_per_event(r));
    j.num("client_cpu_ms", client_cpu_ms(r));
    j.int("ping_sent", r.ping.sent as u64);
    j.int("ping_failed", r.ping.failures as u64);
    j.spread("ping_ms", r.ping.spread());
    j.boolean("server_alive", r.server_alive);
    j.finish()
}

// ---------------------------------------------------------------------------------------------
// The burst scenario

struct BurstReport {
    connections: usize,
    waited: Duration,
    outcomes: Outcomes,
    first_event: Option<Spread>,
    server_alive: bool,
    server_exit: String,
}

fn run_burst(settings: &Settings) -> Result<BurstReport, String> {
    let mut server = ServerProcess::start(settings.interval)?;
    ping_once(server.addr).map_err(|error| format!("the server does not answer: {error}"))?;
    // No per-stream timeout: a stream still waiting at the end of the wait is stranded.
    let mut client = Client::new(server.addr, None)
        .map_err(|error| format!("cannot create a poller: {error}"))?;
    let started = Instant::now();
    client.open(settings.burst);
    client.run_until(started + BURST_WAIT, |client| client.pending() == 0);
    let waited = started.elapsed();
    let server_alive = server.is_alive();
    Ok(BurstReport {
        connections: settings.burst,
        waited,
        outcomes: Outcomes::of(&client),
        first_event: first_event_spread(&client),
        server_alive,
        server_exit: server.exit_description(),
    })
}

fn burst_table(r: &BurstReport) -> Table {
    let o = &r.outcomes;
    let mut t = Table::new(format!(
        "burst of {} connections (waited {:.1} s)",
        r.connections,
        r.waited.as_secs_f64()
    ));
    t.row("got a first event", o.ok.to_string());
    t.row(
        "stranded (no first event, no answer)",
        o.stranded.to_string(),
    );
    t.row("failed", o.failed().to_string());
    t.row("failure reasons", o.failure_summary());
    t.row("dropped after first event", o.dropped.to_string());
    t.row(
        "connect → first event p50 / p99 / max",
        spread_text(r.first_event, "ms"),
    );
    t.row("server alive at the end", r.server_alive.to_string());
    if !r.server_alive {
        t.row("server exit", r.server_exit.clone());
    }
    t
}

fn burst_json(r: &BurstReport) -> String {
    let o = &r.outcomes;
    let mut j = Json::new("burst");
    j.int("connections", r.connections as u64);
    j.num("waited_secs", Some(r.waited.as_secs_f64()));
    j.int("first_event", o.ok as u64);
    j.int("stranded", o.stranded as u64);
    j.int("failed", o.failed() as u64);
    for (why, count, _) in &o.failures {
        j.int(why.json_key(), *count as u64);
    }
    j.int("dropped", o.dropped as u64);
    j.spread("first_event_ms", r.first_event);
    j.boolean("server_alive", r.server_alive);
    j.finish()
}

// ---------------------------------------------------------------------------------------------
// Output

/// A two-column markdown table, aligned for reading in a terminal.
struct Table {
    title: String,
    rows: Vec<(String, String)>,
}

impl Table {
    fn new(title: String) -> Table {
        Table {
            title,
            rows: Vec::new(),
        }
    }

    fn row(&mut self, label: &str, value: String) {
        self.rows.push((label.to_owned(), value));
    }

    fn print(&self) {
        let width = |column: fn(&(String, String)) -> &String, header: &str| {
            self.rows
                .iter()
                .map(|row| column(row).chars().count())
                .chain([header.len()])
                .max()
                .unwrap_or(0)
        };
        let (left, right) = (width(|row| &row.0, "metric"), width(|row| &row.1, "value"));
        let mut out = format!("\n### {}\n\n", self.title);
        let _ = writeln!(out, "| {:left$} | {:right$} |", "metric", "value");
        let _ = writeln!(out, "|{}|{}|", "-".repeat(left + 2), "-".repeat(right + 2));
        for (label, value) in &self.rows {
            let _ = writeln!(out, "| {label:left$} | {value:right$} |");
        }
        print!("{out}");
    }
}

fn spread_text(spread: Option<Spread>, unit: &str) -> String {
    match spread {
        Some(s) => format!("{:.2} / {:.2} / {:.2} {unit}", s.p50, s.p99, s.max),
        None => "-".into(),
    }
}

fn number_text(value: Option<f64>, decimals: usize, unit: &str) -> String {
    match value {
        Some(value) => format!("{value:.decimals$} {unit}").trim_end().to_owned(),
        None => "-".into(),
    }
}

fn pair_text(idle: Option<u64>, held: Option<u64>, unit: &str) -> String {
    let text = |value: Option<u64>| value.map_or_else(|| "-".to_owned(), |v| v.to_string());
    format!("{} → {} {unit}", text(idle), text(held))
        .trim_end()
        .to_owned()
}

/// One JSON object on one line, written by hand: keys are fixed ASCII, values numbers, booleans,
/// null or short strings.
struct Json {
    out: String,
}

impl Json {
    fn new(scenario: &str) -> Json {
        let mut json = Json {
            out: String::from("{"),
        };
        json.string("scenario", Some(scenario));
        json
    }

    fn key(&mut self, key: &str) {
        if self.out.len() > 1 {
            self.out.push(',');
        }
        let _ = write!(self.out, "\"{key}\":");
    }

    fn int(&mut self, key: &str, value: u64) {
        self.key(key);
        let _ = write!(self.out, "{value}");
    }

    /// A number with three decimals, or null when there is none (or it is not finite).
    fn num(&mut self, key: &str, value: Option<f64>) {
        self.key(key);
        match value {
            Some(value) if value.is_finite() => {
                let _ = write!(self.out, "{value:.3}");
            }
            _ => self.out.push_str("null"),
        }
    }

    /// A whole number, or null when there is none.
    fn opt_int(&mut self, key: &str, value: Option<u64>) {
        match value {
            Some(value) => self.int(key, value),
            None => {
                self.key(key);
                self.out.push_str("null");
            }
        }
    }

    fn boolean(&mut self, key: &str, value: bool) {
        self.key(key);
        let _ = write!(self.out, "{value}");
    }

    fn string(&mut self, key: &str, value: Option<&str>) {
        self.key(key);
        let Some(value) = value else {
            self.out.push_str("null");
            return;
        };
        self.out.push('"');
        for c in value.chars() {
            match c {
                '"' => self.out.push_str("\\\""),
                '\\' => self.out.push_str("\\\\"),
                c if u32::from(c) < 0x20 => {
                    let _ = write!(self.out, "\\u{:04x}", u32::from(c));
                }
                c => self.out.push(c),
            }
        }
        self.out.push('"');
    }

    /// `KEY_p50`, `KEY_p99` and `KEY_max`.
    fn spread(&mut self, key: &str, spread: Option<Spread>) {
        self.num(&format!("{key}_p50"), spread.map(|s| s.p50));
        self.num(&format!("{key}_p99"), spread.map(|s| s.p99));
        self.num(&format!("{key}_max"), spread.map(|s| s.max));
    }

    fn finish(mut self) -> String {
        self.out.push('}');
        self.out
    }
}
