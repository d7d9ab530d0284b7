//! `/connect` over real TCP: headers, numbering, timing, independence.

mod common;

use std::time::Duration;

use common::{EventStream, TestServer, wait_for};

const INTERVAL: Duration = Duration::from_millis(50);

#[test]
fn stream_headers() {
    let server = TestServer::start(INTERVAL);
    let stream = EventStream::open(server.addr);
    let head = &stream.head;
    assert_eq!(head.status_line, "HTTP/1.1 200 OK");
    assert_eq!(head.header("Content-Type"), Some("text/event-stream"));
    assert_eq!(head.header("Cache-Control"), Some("no-cache"));
    assert_eq!(head.header("X-Accel-Buffering"), Some("no"));
    assert_eq!(head.header("Transfer-Encoding"), Some("chunked"));
    assert_eq!(head.header("Content-Length"), None);
}

#[test]
fn events_are_numbered_from_zero_one_chunk_each() {
    let server = TestServer::start(INTERVAL);
    let mut stream = EventStream::open(server.addr);
    for n in 0..6 {
        let (event, _) = stream.next_event();
        assert_eq!(
            event.data.as_deref(),
            Some(format!("<p>This is {n}.</p>").as_str())
        );
        assert_eq!(
            event.event, None,
            "unnamed, so htmx's sse-swap=\"message\" takes it"
        );
    }
}

#[test]
fn events_arrive_one_interval_apart_not_in_a_batch() {
    let interval = Duration::from_millis(100);
    let server = TestServer::start(interval);
    let mut stream = EventStream::open(server.addr);
    let arrivals: Vec<_> = (0..6).map(|_| stream.next_event().1).collect();
    for pair in arrivals.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= interval / 2 && gap <= interval * 3,
            "gap between events {gap:?}, interval {interval:?}"
        );
    }
    // Scheduled against the start: five intervals after event 0, give or take scheduling noise.
    let span = arrivals[5] - arrivals[0];
    assert!(
        span >= interval * 5 - interval / 2 && span <= interval * 5 + interval * 2,
        "six events spanned {span:?}"
    );
}

#[test]
fn two_streams_are_independent() {
    let server = TestServer::start(INTERVAL);
    let mut first = EventStream::open(server.addr);
    for n in 0..3 {
        assert_eq!(
            first.next_event().0.data.unwrap(),
            format!("<p>This is {n}.</p>")
        );
    }
    // A second stream starts at 0 of its own while the first goes on counting.
    let mut second = EventStream::open(server.addr);
    assert_eq!(second.next_event().0.data.unwrap(), "<p>This is 0.</p>");
    assert_eq!(
        first.next_event().0.data.unwrap().len(),
        "<p>This is 3.</p>".len()
    );
    assert_eq!(second.next_event().0.data.unwrap(), "<p>This is 1.</p>");
    drop(first);
    assert_eq!(second.next_event().0.data.unwrap(), "<p>This is 2.</p>");
    assert_eq!(second.next_event().0.data.unwrap(), "<p>This is 3.</p>");
}

#[test]
fn a_stream_ends_when_its_client_leaves() {
    let server = TestServer::start(INTERVAL);
    let mut stream = EventStream::open(server.addr);
    stream.next_event();
    assert_eq!(server.live_streams(), 1);
    drop(stream);
    assert!(
        wait_for(INTERVAL * 2 + Duration::from_millis(100), || server
            .live_streams()
            == 0),
        "the stream's thread ended after its client left"
    );
}
