//! Whatever stdout and stderr are connected to, the binary starts, serves, and stops on SIGTERM
//! in the promised time with exit code 0: a pipe whose reader is gone (`sse-htmx | true`), one
//! that both share and whose reader leaves after a line (`sse-htmx 2>&1 | head -1`), and one
//! whose reader never reads (`sse-htmx 2>&1 | sleep 1000`). With `--quiet` nothing at all is
//! written.
//!
//! The server prints its address on stdout only when not quiet, and these tests may not be able
//! to read it, so the harness finds its port in /proc (see `common::process`).

mod common;

use std::io::{BufRead, BufReader, PipeWriter, Read, Write};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use common::pipe::{FILLER, FullPipe, read_to_end};
use common::process::THIS_BUILD;
use common::{EventStream, ServerProcess, TIMEOUT, connect, request, wait_for};

const INTERVAL: Duration = Duration::from_millis(100);

/// What the README and `--help` promise: SIGTERM ends every stream and exits 0 within half a
/// second (measured, as in `tests/lifecycle.rs`, with one interval of slack).
const STOP_WITHIN: Duration = Duration::from_millis(500);

#[test]
fn a_closed_stdout_is_no_panic_and_no_hang() {
    closed_stdout(false);
}

#[test]
fn a_closed_stdout_is_no_panic_and_no_hang_when_quiet() {
    closed_stdout(true);
}

#[test]
fn one_pipe_for_both_closed_after_a_line_is_no_panic_and_no_hang() {
    one_pipe_read_for_a_line(false);
}

#[test]
fn one_pipe_for_both_is_left_empty_when_quiet() {
    one_pipe_read_for_a_line(true);
}

#[test]
fn a_full_pipe_that_is_never_read_holds_up_no_request_and_no_stop() {
    full_pipe(false);
}

#[test]
fn a_full_pipe_that_is_never_read_is_left_as_it_was_when_quiet() {
    full_pipe(true);
}

/// `sse-htmx | true`: every write to stdout fails with EPIPE. Stderr is read to the end.
fn closed_stdout(quiet: bool) {
    let (stdout_reader, stdout) = std::io::pipe().unwrap();
    drop(stdout_reader);
    let (stderr_reader, stderr) = std::io::pipe().unwrap();
    let drain = read_to_end(stderr_reader);
    let server = start(quiet, stdout, stderr);
    serve_then_stop(server, 5);
    let stderr = drain.finish();
    if quiet {
        assert_eq!(stderr, "", "a quiet server wrote on stderr");
    } else {
        assert!(stderr.contains("sse-htmx: capacity"), "{stderr}");
        assert!(stderr.contains("stopping"), "{stderr}");
        assert!(!stderr.contains("panic"), "{stderr}");
    }
}

/// `sse-htmx 2>&1 | head -1`: one pipe for stdout and stderr, whose reader leaves after one line.
/// A quiet server writes no line, so the reader stays until the server has exited.
fn one_pipe_read_for_a_line(quiet: bool) {
    let (reader, writer) = std::io::pipe().unwrap();
    let (told, first_line) = mpsc::channel();
    thread::spawn(move || {
        let mut reader = BufReader::new(reader);
        let mut line = String::new();
        let _ = reader.read_line(&mut line);
        drop(reader);
        let _ = told.send(line);
    });
    let server = start(quiet, writer.try_clone().unwrap(), writer);
    if !quiet {
        let line = first_line.recv_timeout(TIMEOUT).expect("a first line");
        assert!(line.starts_with("sse-htmx: capacity"), "{line:?}");
    }
    serve_then_stop(server, 5);
    if quiet {
        let line = first_line
            .recv_timeout(TIMEOUT)
            .expect("the end of the pipe");
        assert_eq!(line, "", "a quiet server wrote");
    }
}

/// `sse-htmx 2>&1 | sleep 1000`: one pipe for stdout and stderr, kept full and not read until the
/// server has exited. Enough requests to fill the server's log queue are each answered, then
/// SIGTERM stops it in time.
fn full_pipe(quiet: bool) {
    let full = FullPipe::new();
    let server = start(quiet, full.writer.try_clone().unwrap(), full.writer);
    serve_then_stop(server, MORE_THAN_QUEUED);
    let output = read_to_end(full.reader);
    full.filler.join().unwrap();
    let server_output = output.finish().replace(FILLER as char, "");
    if quiet {
        assert_eq!(server_output, "", "a quiet server wrote");
    } else {
        assert!(!server_output.contains("panic"), "{server_output}");
    }
}

/// While the pipe is full, lines past the log queue are dropped; once it is read again, the
/// server writes what it held and how many it dropped, and the two account for every request.
#[test]
fn lines_dropped_while_the_pipe_was_full_are_counted_once_it_is_read() {
    let full = FullPipe::new();
    let mut server = start(false, full.writer.try_clone().unwrap(), full.writer);
    health_checks(&server, MORE_THAN_QUEUED);

    let output = Arc::new(Mutex::new(String::new()));
    let reader = {
        let (mut reader, output) = (full.reader, output.clone());
        thread::spawn(move || {
            let mut buffer = [0; 4096];
            while let Ok(n @ 1..) = reader.read(&mut buffer) {
                let text = String::from_utf8_lossy(&buffer[..n]).replace(FILLER as char, "");
                output.lock().unwrap().push_str(&text);
            }
        })
    };
    let dropped = |output: &str| -> Option<usize> {
        let line = output.lines().find(|line| line.contains("lines dropped"))?;
        line.strip_prefix("log: ")?.split(' ').next()?.parse().ok()
    };
    assert!(
        wait_for(TIMEOUT, || dropped(&output.lock().unwrap()).is_some()),
        "no count of dropped lines: {}",
        output.lock().unwrap()
    );
    let output = output.lock().unwrap().clone();
    let dropped = dropped(&output).unwrap();
    let written = output.matches("GET /healthz 200").count();
    assert!(dropped > 0, "{output}");
    assert!(
        written + dropped >= MORE_THAN_QUEUED,
        "{written} request lines written and {dropped} dropped of {MORE_THAN_QUEUED}"
    );

    server.signal("TERM");
    let status = server
        .wait_exit(TIMEOUT)
        .expect("the server exits on SIGTERM");
    assert_exited_cleanly(status);
    reader.join().unwrap();
    full.filler.join().unwrap();
}

/// Requests enough to log more lines than the server's log queue holds (4,096).
const MORE_THAN_QUEUED: usize = 5000;

/// Starts this build's server on a free port with `stdout` and `stderr`, and waits until it is
/// ready. Our copies of the pipe's write ends are closed when this returns.
fn start(quiet: bool, stdout: PipeWriter, stderr: PipeWriter) -> ServerProcess {
    let interval = format!("{}ms", INTERVAL.as_millis());
    let mut command = Command::new(THIS_BUILD);
    command
        .args(["--addr", "127.0.0.1:0", "--interval", &interval])
        .args(quiet.then_some("--quiet"))
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr);
    let child = command.spawn().expect("start sse-htmx");
    drop(command);
    ServerProcess::watch(child, false).unwrap_or_else(|error| panic!("{error}"))
}

/// Answers `/healthz` (`requests` times, on one connection), serves a stream, and on SIGTERM ends
/// the stream's body and exits 0 in time.
fn serve_then_stop(mut server: ServerProcess, requests: usize) {
    let health = request(server.addr, "GET", "/healthz", "");
    assert_eq!((health.status, health.text().as_str()), (200, "ok\n"));
    let mut stream = EventStream::open(server.addr);
    assert_eq!(stream.head.status, 200);
    assert_eq!(stream.next_event().0.id.as_deref(), Some("0"));
    health_checks(&server, requests);
    assert_eq!(
        stream.next_event().0.id.as_deref(),
        Some("1"),
        "it streams on"
    );

    let signalled = Instant::now();
    server.signal("TERM");
    let status = server
        .wait_exit(STOP_WITHIN + INTERVAL + TIMEOUT)
        .expect("the server exits on SIGTERM");
    let took = signalled.elapsed();
    assert_exited_cleanly(status);
    assert!(took <= STOP_WITHIN + INTERVAL, "exited after {took:?}");
    while let Some(chunk) = stream.next_chunk() {
        assert!(!chunk.events().is_empty(), "only events before the end");
    }
}

/// `count` requests for `/healthz` on one keep-alive connection, each answered `ok`.
fn health_checks(server: &ServerProcess, count: usize) {
    let mut connection = connect(server.addr);
    let mut reader = BufReader::new(connection.try_clone().unwrap());
    let ask = format!("GET /healthz HTTP/1.1\r\nHost: {}\r\n\r\n", server.addr);
    for i in 0..count {
        connection.write_all(ask.as_bytes()).unwrap();
        let head = common::read_head(&mut reader);
        assert_eq!(head.status, 200, "request {i}");
        let length: usize = head.header("Content-Length").unwrap().parse().unwrap();
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        assert_eq!(body, b"ok\n", "request {i}");
    }
}

fn assert_exited_cleanly(status: ExitStatus) {
    assert_ne!(status.code(), Some(101), "the server panicked");
    assert_eq!(status.code(), Some(0), "{status:?}");
}
