//! What streams cost the server process in threads and descriptors, measured from /proc: one
//! thread per stream (tiny_http's pool thread is let go), and nothing left once they are gone.

mod common;

use std::time::Duration;

use common::{EventStream, ServerProcess, wait_for};

#[test]
fn a_stream_holds_one_thread_not_two() {
    common::raise_open_files();
    let server = ServerProcess::start(&["--interval", "100ms"]);
    let idle = server.threads();
    let mut streams: Vec<_> = (0..50).map(|_| EventStream::open(server.addr)).collect();
    for stream in &mut streams {
        stream.next_event();
    }
    // tiny_http's pool threads go back to the pool as each stream starts. The pool may have
    // started a few more while the streams were opening; those end after 5 s idle, while a pool
    // thread held by a stream would never end.
    assert!(
        wait_for(Duration::from_secs(7), || server.threads() <= idle + 50 + 4),
        "{} threads for 50 streams, {idle} idle",
        server.threads()
    );
    assert!(
        server.open_fds() <= 50 + 16,
        "{} descriptors for 50 streams",
        server.open_fds()
    );
}

#[test]
fn a_thousand_connect_and_disconnect_cycles_leave_nothing_behind() {
    common::raise_open_files();
    let server = ServerProcess::start(&["--interval", "50ms"]);
    // Warm up: the first connections start tiny_http's pool threads.
    for _ in 0..4 {
        EventStream::open(server.addr).next_event();
    }
    let settle = Duration::from_secs(8); // tiny_http's idle pool threads end after 5 s
    std::thread::sleep(Duration::from_millis(200));
    let (threads, fds) = (server.threads(), server.open_fds());

    for _ in 0..1000 {
        let mut stream = EventStream::open(server.addr);
        assert_eq!(stream.head.status, 200);
        stream.next_event();
    }
    assert!(
        wait_for(settle, || server.threads() <= threads
            && server.open_fds() <= fds),
        "after 1000 cycles: {} threads (before {threads}), {} descriptors (before {fds})",
        server.threads(),
        server.open_fds()
    );
}
