//! After a client disconnects, its stream's OS thread is gone within two intervals. Alone in its
//! test binary so that no other test's streams are counted.

mod common;

use std::time::Duration;

use common::{EventStream, TestServer, stream_threads, wait_for};

#[test]
fn disconnected_streams_leave_no_thread_behind() {
    let interval = Duration::from_millis(50);
    let server = TestServer::start(interval);
    let before = stream_threads();

    let mut streams: Vec<_> = (0..5).map(|_| EventStream::open(server.addr)).collect();
    for stream in &mut streams {
        stream.next_event();
    }
    assert_eq!(stream_threads(), before + 5);

    drop(streams);
    // A stream notices at its next write, at most one interval later; allow a second one for
    // the kernel to report the reset.
    assert!(
        wait_for(interval * 2, || stream_threads() == before),
        "stream threads: {} left, {before} before",
        stream_threads()
    );
    assert_eq!(server.live_streams(), 0);
}
