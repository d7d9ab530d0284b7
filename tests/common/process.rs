//! The `sse-htmx` binary started as a process of its own on port 0, for the tests that need a real
//! process (threads, descriptors, signals) and for the load benchmark, which includes this file
//! with `#[path]`. It uses nothing but `std`, so either can compile it.
//!
//! The child's stdout and stderr are read on threads of their own until it exits, so the server
//! can never block on a full pipe; the last stderr lines are kept to say why it ended, and all of
//! them with [`ServerProcess::start_capturing_stderr`]. Dropping a [`ServerProcess`] kills the
//! child (by its PID, through the `Child`) and reaps it, so neither a finished test nor a panic
//! leaves a server running.

#![allow(dead_code)] // the benchmark and each test binary use their own part of this module

use std::collections::VecDeque;
use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, ChildStderr, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::thread;
use std::time::{Duration, Instant};

/// The server binary of this build.
pub const THIS_BUILD: &str = env!("CARGO_BIN_EXE_sse-htmx");

/// How long the server may take to print the line that names its address.
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

    /// Like [`ServerProcess::start`] (so with `--quiet`), but keeps every line the process writes
    /// on stderr; see [`ServerProcess::stderr`].
    pub fn start_capturing_stderr(args: &[&str]) -> ServerProcess {
        ServerProcess::spawn(THIS_BUILD.as_ref(), &[], &["--quiet"], args, true)
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
    /// the line that names its address.
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
        let mut child = command
            .args(["--addr", "127.0.0.1:0"])
            .args(quiet)
            .args(args)
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
            stderr_all: capture_stderr.then(Arc::default),
        };
        if let Some(stderr) = stderr {
            keep_stderr(
                stderr,
                server.stderr_tail.clone(),
                server.stderr_all.clone(),
            );
        }
        server.addr = stdout
            .ok_or("no stdout pipe".to_owned())
            .and_then(wait_for_address)
            .map_err(|error| format!("{error}; {}", server.exit_description()))?;
        Ok(server)
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

/// Reads the server's stdout on a thread of its own until the line that names the address. The
/// thread then drains stdout until the server exits, so a later line can never block the
/// server on a full pipe.
fn wait_for_address(stdout: ChildStdout) -> Result<SocketAddr, String> {
    let (tell, told) = mpsc::sync_channel(1);
    thread::Builder::new()
        .name("server-stdout".into())
        .spawn(move || {
            let mut told_address = false;
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if !told_address && let Some(addr) = address_in_banner(&line) {
                    let _ = tell.send(addr);
                    told_address = true;
                }
            }
        })
        .map_err(|error| format!("cannot start a thread: {error}"))?;
    match told.recv_timeout(START_TIMEOUT) {
        Ok(addr) => Ok(addr),
        Err(mpsc::RecvTimeoutError::Timeout) => Err("the server printed no port in time".into()),
        Err(mpsc::RecvTimeoutError::Disconnected) => {
            Err("the server closed stdout without printing its port".into())
        }
    }
}

/// The address in `sse-htmx listening; open http://127.0.0.1:PORT/`.
fn address_in_banner(line: &str) -> Option<SocketAddr> {
    let (_, after_scheme) = line.split_once("http://")?;
    after_scheme.split('/').next()?.parse().ok()
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
