//! `quiet` means nothing on stderr, even when a stream's thread panics.
//!
//! A panic's message is printed by the process's panic hook, on the real stderr, which a test
//! cannot read from inside its own process. So the test runs itself again as a child process
//! (the test binary, this one test, output not captured) and reads the child's stderr.

mod common;

use std::io::Read;
use std::process::Command;
use std::time::Duration;

use common::{EventStream, TestServer, wait_for};

const CHILD: &str = "SSE_HTMX_TEST_QUIET_PANIC_CHILD";
const NAME: &str = "a_panic_in_a_stream_prints_nothing_when_quiet";

#[test]
fn a_panic_in_a_stream_prints_nothing_when_quiet() {
    if std::env::var_os(CHILD).is_some() {
        panic_a_stream_quietly();
        return;
    }
    let output = Command::new(std::env::current_exe().unwrap())
        .args([NAME, "--exact", "--nocapture", "--test-threads=1"])
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
    assert_eq!(stderr, "", "a quiet server wrote on stderr");
}

/// In the child: a quiet server whose stream panics before its third event.
fn panic_a_stream_quietly() {
    let server = TestServer::with(|c| {
        c.interval = Duration::from_millis(20);
        c.panic_at_event = Some(2);
        c.quiet = true;
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
