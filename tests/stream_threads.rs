//! After a client disconnects, its stream's OS thread is gone once a write has found it gone.
//! Alone in its test binary so that no other test's streams are counted.

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
    // A stream notices at its next write, at most one interval later, or at the one after when
    // the client's close was a FIN and the first write only drew the reset. The rest is for a
    // loaded machine to run the threads' ends: the test is that none is left behind, not how
    // soon.
    assert!(
        wait_for(interval * 2 + Duration::from_secs(2), || stream_threads()
            == before),
        "stream threads: {} left, {before} before",
        stream_threads()
    );
    assert_eq!(server.live_streams(), 0);
}
