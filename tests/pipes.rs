//! Whatever stdout and stderr are connected to, the binary starts, serves, and stops on SIGTERM
//! in the promised time with exit code 0: a pipe whose reader is gone (`sse-htmx | true`), one
//! that both share and whose reader leaves after a line (`sse-htmx 2>&1 | head -1`), and one
//! whose reader never reads (`sse-htmx 2>&1 | sleep 1000`). With `--quiet` nothing at all is
//! written.
//!
//! The server prints its address on stdout only when not quiet, and these tests may not be able
//! to read it, so the harness finds its port in /proc (see `common::process`).

mod common;

use std::io::{BufRead, BufReader, PipeReader, PipeWriter, Read, Write};
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
    let server = start(false, full.writer.try_clone().unwrap(), full.writer);
    health_checks(&server, MORE_THAN_QUEUED);

    let (output, dropped) = read_until_dropped_are_counted(full.reader);
    let written = output.matches("GET /healthz 200").count();
    assert!(dropped > 0, "{output}");
    assert!(
        written + dropped >= MORE_THAN_QUEUED,
        "{written} request lines written and {dropped} dropped of {MORE_THAN_QUEUED}"
    );
    stop_cleanly(server);
    full.filler.join().unwrap();
}

/// The log queue is bounded by its bytes too: lines of a KiB each (a long path's) are dropped
/// once half a MiB of them wait, though far fewer lines than the queue's 4,096 do.
#[test]
fn long_lines_are_dropped_once_half_a_mib_of_them_wait() {
    let full = FullPipe::new();
    let server = start(false, full.writer.try_clone().unwrap(), full.writer);
    let path = format!("/{}", "a".repeat(1023));
    ask(&server, &path, 404, LONG_LINES);
    let (output, dropped) = read_until_dropped_are_counted(full.reader);
    let written = output.matches(&path).count();
    assert!(dropped > 0, "{written} long lines written, none dropped");
    assert!(
        written + dropped >= LONG_LINES,
        "{written} long lines written and {dropped} dropped of {LONG_LINES}"
    );
    // Half a MiB queued, and what the pipe took of them before it was full.
    assert!(
        written * path.len() < 640 * 1024,
        "{written} long lines held"
    );
    stop_cleanly(server);
    full.filler.join().unwrap();
}

/// Requests whose lines (over a KiB each) are more than half a MiB, and far fewer than 4,096.
const LONG_LINES: usize = 1000;

/// Reads the pipe on a thread of its own, the filler left out, until the server has said how
/// many lines it dropped: what it wrote by then, and that count. The thread reads on until the
/// pipe's writers are gone.
fn read_until_dropped_are_counted(mut reader: PipeReader) -> (String, usize) {
    let output = Arc::new(Mutex::new(String::new()));
    {
        let output = output.clone();
        thread::spawn(move || {
            let mut buffer = [0; 4096];
            while let Ok(n @ 1..) = reader.read(&mut buffer) {
                let text = String::from_utf8_lossy(&buffer[..n]).replace(FILLER as char, "");
                output.lock().unwrap().push_str(&text);
            }
        });
    }
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
    let count = dropped(&output).unwrap();
    (output, count)
}

fn stop_cleanly(mut server: ServerProcess) {
    server.signal("TERM");
    let status = server
        .wait_exit(TIMEOUT)
        .expect("the server exits on SIGTERM");
    assert_exited_cleanly(status);
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
    ask(server, "/healthz", 200, count);
}

/// `GET path` `count` times on one connection, each answered with `status`.
fn ask(server: &ServerProcess, path: &str, status: u16, count: usize) {
    let mut connection = connect(server.addr);
    let mut reader = BufReader::new(connection.try_clone().unwrap());
    let ask = format!("GET {path} HTTP/1.1\r\nHost: {}\r\n\r\n", server.addr);
    for i in 0..count {
        connection.write_all(ask.as_bytes()).unwrap();
        let head = common::read_head(&mut reader);
        assert_eq!(head.status, status, "request {i}");
        let length: usize = head.header("Content-Length").unwrap().parse().unwrap();
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        if status == 200 {
            assert_eq!(body, b"ok\n", "request {i}");
        }
    }
}

fn assert_exited_cleanly(status: ExitStatus) {
    assert_ne!(status.code(), Some(101), "the server panicked");
    assert_eq!(status.code(), Some(0), "{status:?}");
}
