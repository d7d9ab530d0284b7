//! The `sse-htmx` binary started as a process of its own on port 0, for the tests that need a real
//! process (threads, descriptors, signals) and for the load benchmark, which includes this file
//! with `#[path]`. It uses nothing but `std`, so either can compile it.
//!
//! The server's port is found in /proc, not in its start line: with `--quiet` it prints none, and
//! a test may connect its stdout to anything (see `tests/pipes.rs`). It is ready once it listens
//! and has taken over SIGTERM, so a test's signal stops it rather than killing it. Its stderr is
//! read on a thread of its own until it exits; the last lines are kept to say why it ended, and
//! all of them with [`ServerProcess::start_capturing_stderr`]. Dropping a [`ServerProcess`] kills
//! the child (by its PID, through the `Child`) and reaps it, so neither a finished test nor a
//! panic leaves a server running.

#![allow(dead_code)] // the benchmark and each test binary use their own part of this module

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::process::{Child, ChildStderr, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

/// The server binary of this build.
pub const THIS_BUILD: &str = env!("CARGO_BIN_EXE_sse-htmx");

/// How long the server may take to listen and take over SIGTERM.
pub const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A server process listening on 127.0.0.1 on a free port. Dropping it kills it.
pub struct ServerProcess {
    pub child: Child,
    pub addr: SocketAddr,
    /// The last lines the server wrote on stderr, to say why it exited if it did.
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
    /// Every line the server wrote on stderr, when started with
    /// [`ServerProcess::start_capturing_stderr`].
    stderr_all: Option<Arc<Mutex<String>>>,
    /// Every line the server wrote on stdout, when it is a pipe.
    stdout: Arc<Mutex<Vec<String>>>,
}

impl ServerProcess {
    /// This build's server with `args`; panics if it does not start.
    pub fn start(args: &[&str]) -> ServerProcess {
        ServerProcess::start_with_prefix(&[], args)
    }

    /// Starts the server under a wrapper command, e.g. `prlimit --nofile=256:256 --`.
    pub fn start_with_prefix(prefix: &[&str], args: &[&str]) -> ServerProcess {
        ServerProcess::launch(THIS_BUILD.as_ref(), prefix, args)
            .unwrap_or_else(|error| panic!("start sse-htmx: {error}"))
    }

    /// Like [`ServerProcess::start_logging`] (so without `--quiet`), but keeps every line the
    /// process writes on stderr; see [`ServerProcess::stderr`].
    pub fn start_capturing_stderr(args: &[&str]) -> ServerProcess {
        ServerProcess::spawn(THIS_BUILD.as_ref(), &[], &[], args, true)
            .unwrap_or_else(|error| panic!("start sse-htmx: {error}"))
    }

    /// What the process has written on stderr so far, line by line (empty unless started with
    /// [`ServerProcess::start_capturing_stderr`]).
    pub fn stderr(&self) -> String {
        self.stderr_all
            .as_ref()
            .map(|all| all.lock().unwrap_or_else(PoisonError::into_inner).clone())
            .unwrap_or_default()
    }

    /// Starts `binary` (this build's or another) with `--addr 127.0.0.1:0 --quiet` and `args`,
    /// under the wrapper command `prefix` if there is one, and waits up to [`START_TIMEOUT`] for
    /// it to be ready (see [`ServerProcess::watch`]).
    pub fn launch(binary: &OsStr, prefix: &[&str], args: &[&str]) -> Result<ServerProcess, String> {
        ServerProcess::spawn(binary, prefix, &["--quiet"], args, false)
    }

    /// [`ServerProcess::launch`] without `--quiet`, keeping every line the process writes on
    /// stderr; see [`ServerProcess::stderr`].
    pub fn launch_logging(
        binary: &OsStr,
        prefix: &[&str],
        args: &[&str],
    ) -> Result<ServerProcess, String> {
        ServerProcess::spawn(binary, prefix, &[], args, true)
    }

    /// This build's server with `args` and without `--quiet`, so that it logs; its last lines
    /// on stderr are in [`ServerProcess::stderr_tail`]. Panics if it does not start.
    pub fn start_logging(args: &[&str]) -> ServerProcess {
        ServerProcess::spawn(THIS_BUILD.as_ref(), &[], &[], args, false)
            .unwrap_or_else(|error| panic!("start sse-htmx: {error}"))
    }

    /// Like [`ServerProcess::start_logging`], and keeps every line the process writes on stderr;
    /// see [`ServerProcess::stderr`].
    pub fn start_logging_all(args: &[&str]) -> ServerProcess {
        ServerProcess::spawn(THIS_BUILD.as_ref(), &[], &[], args, true)
            .unwrap_or_else(|error| panic!("start sse-htmx: {error}"))
    }

    /// The first line the server wrote on stdout (the start line; none with `--quiet`), waiting
    /// up to [`START_TIMEOUT`] for it. Empty if there is none.
    pub fn start_line(&self) -> String {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            let lines = self.stdout.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(line) = lines.first() {
                return line.clone();
            }
            drop(lines);
            if Instant::now() >= deadline {
                return String::new();
            }
            thread::sleep(Duration::from_millis(2));
        }
    }

    /// The last lines the server wrote on stderr (at most ten, each cut to 300 characters).
    pub fn stderr_tail(&self) -> Vec<String> {
        let tail = self
            .stderr_tail
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        tail.iter().cloned().collect()
    }

    fn spawn(
        binary: &OsStr,
        prefix: &[&str],
        quiet: &[&str],
        args: &[&str],
        capture_stderr: bool,
    ) -> Result<ServerProcess, String> {
        let mut command = match prefix.split_first() {
            Some((wrapper, wrapper_args)) => {
                let mut command = Command::new(wrapper);
                command.args(wrapper_args).arg(binary);
                command
            }
            None => Command::new(binary),
        };
        let child = command
            .args(["--addr", "127.0.0.1:0"])
            .args(quiet)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|error| format!("cannot start the server: {error}"))?;
        ServerProcess::watch(child, capture_stderr)
    }

    /// Takes over a server started with `--addr 127.0.0.1:0` (its stdout and stderr connected by
    /// the caller; its stderr is read if piped), and waits up to [`START_TIMEOUT`] until it listens
    /// and has taken over SIGTERM and SIGINT. Kills it if it is not ready in time.
    pub fn watch(mut child: Child, capture_stderr: bool) -> Result<ServerProcess, String> {
        let stderr = child.stderr.take();
        let stdout = child.stdout.take();
        // The guard exists from here on, so an early return below kills the child.
        let mut server = ServerProcess {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            stderr_tail: Arc::default(),
            stderr_all: capture_stderr.then(Arc::default),
            stdout: Arc::default(),
        };
        if let Some(stdout) = stdout {
            keep_stdout(stdout, server.stdout.clone());
        }
        if let Some(stderr) = stderr {
            keep_stderr(
                stderr,
                server.stderr_tail.clone(),
                server.stderr_all.clone(),
            );
        }
        let pid = server.pid();
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(addr) = listening_addr(pid).filter(|_| handles_stop_signals(pid)) {
                server.addr = addr;
                return Ok(server);
            }
            if !server.is_alive() {
                return Err(format!("the server exited: {}", server.exit_description()));
            }
            if Instant::now() >= deadline {
                return Err("the server was not listening in time".into());
            }
            thread::sleep(Duration::from_millis(2));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn is_alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// How the server ended, with its last line on stderr, or that it is still running.
    pub fn exit_description(&mut self) -> String {
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

    /// A field of /proc/PID/status, such as `Threads`; panics if there is none.
    pub fn status(&self, field: &str) -> u64 {
        proc_status(self.pid())
            .and_then(|status| field_number(&status, &format!("{field}:")))
            .unwrap_or_else(|| panic!("{field} in /proc/PID/status"))
    }

    pub fn threads(&self) -> u64 {
        self.status("Threads")
    }

    pub fn open_fds(&self) -> usize {
        proc_open_fds(self.pid()).expect("/proc/PID/fd") as usize
    }

    /// Sends the signal `name` (such as `TERM`) with kill(1).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args([&format!("-{name}"), &self.pid().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits up to `within` for the process to exit.
    pub fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            thread::sleep(Duration::from_millis(2));
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

/// The address to reach process `pid` on: the listening socket in /proc/net/tcp or tcp6 whose
/// inode is one of the process's descriptors, with a wildcard address (`0.0.0.0`, `[::]`) made
/// the loopback address of its family. `None` until it listens.
pub fn listening_addr(pid: u32) -> Option<SocketAddr> {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .ok()?
        .filter_map(|entry| std::fs::read_link(entry.ok()?.path()).ok())
        .filter_map(|target| {
            let inode = target
                .to_str()?
                .strip_prefix("socket:[")?
                .strip_suffix(']')?;
            Some(inode.to_owned())
        })
        .collect();
    ["tcp", "tcp6"].into_iter().find_map(|table| {
        let table = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).ok()?;
        table.lines().skip(1).find_map(|line| {
            // sl, local address, remote address, state, queues, timer, retransmits, uid,
            // timeout, inode; state 0A is LISTEN.
            let fields: Vec<&str> = line.split_whitespace().collect();
            let inode = fields.get(9)?;
            if fields.get(3) != Some(&"0A") || !inodes.iter().any(|i| i == inode) {
                return None;
            }
            let (ip, port) = fields.get(1)?.split_once(':')?;
            let ip = proc_net_ip(ip)?;
            let ip = match ip {
                IpAddr::V4(v4) if v4.is_unspecified() => Ipv4Addr::LOCALHOST.into(),
                IpAddr::V6(v6) if v6.is_unspecified() => Ipv6Addr::LOCALHOST.into(),
                ip => ip,
            };
            Some(SocketAddr::new(ip, u16::from_str_radix(port, 16).ok()?))
        })
    })
}

/// An address as /proc/net/tcp and tcp6 write it: 32-bit words in hex, each in the host's
/// (little-endian) byte order.
fn proc_net_ip(hex: &str) -> Option<IpAddr> {
    let mut bytes = Vec::new();
    for word in 0..hex.len() / 8 {
        let word = u32::from_str_radix(hex.get(word * 8..word * 8 + 8)?, 16).ok()?;
        bytes.extend(word.to_le_bytes());
    }
    match bytes.len() {
        4 => Some(IpAddr::from(<[u8; 4]>::try_from(bytes).ok()?)),
        16 => Some(IpAddr::from(<[u8; 16]>::try_from(bytes).ok()?)),
        _ => None,
    }
}

/// Reads the server's stdout on a thread of its own until the server closes it, so that a line
/// can never block the server on a full pipe.
fn keep_stdout(stdout: ChildStdout, lines: Arc<Mutex<Vec<String>>>) {
    let _ = thread::Builder::new()
        .name("server-stdout".into())
        .spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                lines
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push(line);
            }
        });
}

/// Whether process `pid` takes SIGTERM and SIGINT itself, so that they stop it instead of
/// killing it: its main thread blocks them (`SigBlk` in /proc/PID/status), as every thread of
/// the server does, for its signal thread to take them.
pub fn handles_stop_signals(pid: u32) -> bool {
    const SIGINT: u64 = 1 << (2 - 1);
    const SIGTERM: u64 = 1 << (15 - 1);
    proc_status(pid)
        .and_then(|status| {
            let line = status.lines().find(|line| line.starts_with("SigBlk:"))?;
            u64::from_str_radix(line["SigBlk:".len()..].trim(), 16).ok()
        })
        .is_some_and(|blocked| blocked & (SIGINT | SIGTERM) == SIGINT | SIGTERM)
}

/// Keeps the last few stderr lines of the server (and all of them, if `all` is given), read on a
/// thread of its own until it exits.
fn keep_stderr(
    stderr: ChildStderr,
    tail: Arc<Mutex<VecDeque<String>>>,
    all: Option<Arc<Mutex<String>>>,
) {
    const KEEP_LINES: usize = 10;
    const KEEP_CHARS: usize = 300;
    let spawned = thread::Builder::new()
        .name("server-stderr".into())
        .spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if let Some(all) = &all {
                    let mut all = all.lock().unwrap_or_else(PoisonError::into_inner);
                    all.push_str(&line);
                    all.push('\n');
                }
                let mut tail = tail.lock().unwrap_or_else(PoisonError::into_inner);
                if tail.len() == KEEP_LINES {
                    tail.pop_front();
                }
                tail.push_back(line.chars().take(KEEP_CHARS).collect());
            }
        });
    if let Err(error) = spawned {
        eprintln!("cannot watch the server's stderr: {error}");
    }
}

// What /proc tells about a process (any process: the server, or the one reading). Each reading
// is `None` once the process is gone.

/// The text of /proc/PID/status.
pub fn proc_status(pid: u32) -> Option<String> {
    std::fs::read_to_string(format!("/proc/{pid}/status")).ok()
}

/// The number after `name` in a `Name:  value unit` file such as /proc/PID/status or
/// /proc/meminfo; `name` includes the colon.
pub fn field_number(text: &str, name: &str) -> Option<u64> {
    let line = text.lines().find(|line| line.starts_with(name))?;
    line[name.len()..].split_whitespace().next()?.parse().ok()
}

/// How many descriptors the process has open.
pub fn proc_open_fds(pid: u32) -> Option<u64> {
    Some(std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?.count() as u64)
}

/// How many memory mappings the process has (lines of /proc/PID/maps).
pub fn proc_mappings(pid: u32) -> Option<u64> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).ok()?;
    Some(maps.lines().count() as u64)
}

/// utime + stime of the whole process (all its threads, living and ended), in clock ticks.
pub fn proc_cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name, field 2, may contain spaces; the fields after it are fixed. Counting
    // from field 3 (state) just after the closing parenthesis, utime and stime (fields 14 and
    // 15) are at index 11 and 12.
    let (_, after_name) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}
