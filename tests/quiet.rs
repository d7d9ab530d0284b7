//! `quiet` means nothing on stderr, even when a stream's thread panics; without it, such a panic
//! is one log line.
//!
//! A panic's message is printed by the process's panic hook, on the real stderr, which a test
//! cannot read from inside its own process. So each test runs itself again as a child process
//! (the test binary, this one test, output not captured) and reads the child's stderr.

mod common;

use std::io::Read;
use std::process::Command;
use std::time::Duration;

use common::{EventStream, TestServer, wait_for};

const CHILD: &str = "SSE_HTMX_TEST_QUIET_PANIC_CHILD";

#[test]
fn a_panic_in_a_stream_prints_nothing_when_quiet() {
    if std::env::var_os(CHILD).is_some() {
        panic_a_stream(true);
        return;
    }
    let stderr = run_as_child("a_panic_in_a_stream_prints_nothing_when_quiet");
    assert_eq!(stderr, "", "a quiet server wrote on stderr");
}

#[test]
fn a_panic_in_a_stream_is_one_log_line_when_not_quiet() {
    if std::env::var_os(CHILD).is_some() {
        panic_a_stream(false);
        return;
    }
    let stderr = run_as_child("a_panic_in_a_stream_is_one_log_line_when_not_quiet");
    let panics: Vec<&str> = stderr.lines().filter(|l| l.contains("panic")).collect();
    assert_eq!(panics.len(), 2, "{stderr}");
    assert!(
        panics[0].starts_with("panic in sse-stream at src/app/counter.rs:")
            && panics[0].ends_with(": panic_at_event 2, as configured"),
        "{stderr}"
    );
    assert!(panics[1].ends_with("closed: panicked"), "{stderr}");
    assert!(!stderr.contains("RUST_BACKTRACE"), "{stderr}");
}

/// Runs the test `name` in a child process; returns its stderr.
fn run_as_child(name: &str) -> String {
    let output = Command::new(std::env::current_exe().unwrap())
        .args([name, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD, "1")
        .env_remove("RUST_BACKTRACE")
        .output()
        .expect("run this test as a child");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "the child failed: {stdout}\n{stderr}"
    );
    assert!(
        stdout.contains("1 passed"),
        "the child ran the test: {stdout}"
    );
    stderr.into_owned()
}

/// In the child: a server whose stream panics before its third event.
fn panic_a_stream(quiet: bool) {
    let server = TestServer::with(|c| {
        c.interval = Duration::from_millis(20);
        c.panic_at_event = Some(2);
        c.quiet = quiet;
    });
    let mut stream = EventStream::open(server.addr);
    assert_eq!(stream.next_event().0.id.as_deref(), Some("0"));
    assert_eq!(stream.next_event().0.id.as_deref(), Some("1"));
    let mut rest = Vec::new();
    stream
        .into_inner()
        .read_to_end(&mut rest)
        .expect("the stream ends");
    assert!(wait_for(Duration::from_secs(2), || server.live_streams() == 0));
    server.stop().unwrap();
}
