//! The stream's protocol and life cycle over real TCP: resume, retry, keep-alive, HTTP/1.0,
//! HEAD, the stream cap, metrics, and a clean stop under load.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::time::{Duration, Instant};

use common::{EventStream, ServerProcess, TestServer, connect, request, wait_for};

const INTERVAL: Duration = Duration::from_millis(50);

#[test]
fn every_event_has_an_id_and_the_first_a_retry_hint() {
    let server = TestServer::with(|c| {
        c.interval = INTERVAL;
        c.retry = Duration::from_millis(2500);
    });
    let mut stream = EventStream::open(server.addr);
    let (first, _) = stream.next_event();
    assert_eq!(first.id.as_deref(), Some("0"));
    assert_eq!(first.retry, Some(2500));
    let (second, _) = stream.next_event();
    assert_eq!(second.id.as_deref(), Some("1"));
    assert_eq!(second.retry, None, "the hint is sent once");
    assert_eq!(second.data.as_deref(), Some("<p>This is 1.</p>"));
}

#[test]
fn last_event_id_resumes_after_it() {
    let server = TestServer::start(INTERVAL);
    let mut stream = EventStream::open_with(server.addr, "Last-Event-ID: 41\r\n");
    let (event, _) = stream.next_event();
    assert_eq!(event.id.as_deref(), Some("42"));
    assert_eq!(event.data.as_deref(), Some("<p>This is 42.</p>"));
    assert_eq!(stream.next_event().0.id.as_deref(), Some("43"));
}

#[test]
fn a_last_event_id_that_is_not_a_number_starts_at_zero() {
    let server = TestServer::start(INTERVAL);
    for bad in ["abc", "-3", "", "18446744073709551615", "1.5"] {
        let mut stream = EventStream::open_with(server.addr, &format!("Last-Event-ID: {bad}\r\n"));
        assert_eq!(stream.head.status, 200);
        assert_eq!(stream.next_event().0.id.as_deref(), Some("0"), "{bad:?}");
    }
}

#[test]
fn keepalive_comments_fill_long_intervals() {
    let server = TestServer::with(|c| {
        c.interval = Duration::from_secs(30);
        c.keepalive = Duration::from_millis(100);
    });
    let mut stream = EventStream::open(server.addr);
    let (first, _) = stream.next_event();
    assert_eq!(first.id.as_deref(), Some("0"));
    let mut last = Instant::now();
    for _ in 0..3 {
        let chunk = stream.next_chunk().expect("a keep-alive chunk");
        let events = chunk.events();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].comments, vec!["keep-alive".to_owned()]);
        assert_eq!(events[0].data, None, "a comment is no event");
        let gap = chunk.at - last;
        assert!(
            gap >= Duration::from_millis(50) && gap < Duration::from_secs(2),
            "{gap:?}"
        );
        last = chunk.at;
    }
}

#[test]
fn http_1_0_gets_a_close_delimited_stream() {
    let server = TestServer::start(INTERVAL);
    let mut socket = connect(server.addr);
    socket.write_all(b"GET /connect HTTP/1.0\r\n\r\n").unwrap();
    let mut reader = BufReader::new(socket);
    let head = common::read_head(&mut reader);
    assert_eq!(head.status_line, "HTTP/1.0 200 OK");
    assert_eq!(head.header("Transfer-Encoding"), None);
    assert_eq!(head.header("Content-Type"), Some("text/event-stream"));
    // The body is the events themselves, no chunk sizes.
    let mut body = String::new();
    while !body.contains("This is 2.") {
        let mut line = String::new();
        assert!(
            reader.read_line(&mut line).unwrap() > 0,
            "stream ended early"
        );
        body.push_str(&line);
    }
    let events = common::parse_events(&body);
    assert_eq!(events[0].data.as_deref(), Some("<p>This is 0.</p>"));
    assert_eq!(events[2].id.as_deref(), Some("2"));
}

#[test]
fn http_1_0_stream_ends_with_the_connection_on_stop() {
    let server = TestServer::start(INTERVAL);
    let mut socket = connect(server.addr);
    socket.write_all(b"GET /connect HTTP/1.0\r\n\r\n").unwrap();
    let mut reader = BufReader::new(socket);
    common::read_head(&mut reader);
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    server.stop().unwrap();
    let mut rest = Vec::new();
    reader
        .read_to_end(&mut rest)
        .expect("end of file, not a timeout");
}

#[test]
fn head_keeps_no_thread() {
    let server = TestServer::start(INTERVAL);
    let head = request(server.addr, "HEAD", "/connect", "");
    assert_eq!(head.status, 200);
    assert_eq!(head.header("Content-Type"), Some("text/event-stream"));
    assert!(head.body.is_empty());
    assert_eq!(server.live_streams(), 0);
}

#[test]
fn past_the_cap_exactly_the_extra_streams_get_503() {
    const CAP: usize = 10;
    let server = TestServer::with(|c| {
        c.interval = INTERVAL;
        c.max_streams = Some(CAP);
    });
    let mut held: Vec<_> = (0..CAP).map(|_| EventStream::open(server.addr)).collect();
    for stream in &mut held {
        assert_eq!(stream.head.status, 200);
        stream.next_event();
    }
    let started = Instant::now();
    let refused: Vec<_> = (0..5)
        .map(|_| request(server.addr, "GET", "/connect", ""))
        .collect();
    for response in &refused {
        assert_eq!(response.status, 503);
        assert!(response.header("Retry-After").is_some());
        assert!(!response.body.is_empty());
    }
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "refusals answer at once"
    );
    assert_eq!(server.live_streams(), CAP);
    // Once one leaves, a new stream fits again.
    drop(held.pop());
    assert!(wait_for(Duration::from_secs(2), || server.live_streams() < CAP));
    assert_eq!(EventStream::open(server.addr).head.status, 200);
}

fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("{name} in\n{text}"))
}

#[test]
fn metrics_move_as_streams_open_and_close() {
    let server = TestServer::with(|c| {
        c.interval = INTERVAL;
        c.max_streams = Some(2);
    });
    let scrape = || request(server.addr, "GET", "/metrics", "").text();
    let before = scrape();
    assert_eq!(metric(&before, "sse_streams_live"), 0);
    assert_eq!(metric(&before, "sse_streams_opened_total"), 0);

    let mut streams: Vec<_> = (0..2).map(|_| EventStream::open(server.addr)).collect();
    for stream in &mut streams {
        stream.next_event();
        stream.next_event();
    }
    assert_eq!(request(server.addr, "GET", "/connect", "").status, 503);
    let open = scrape();
    assert_eq!(metric(&open, "sse_streams_live"), 2);
    assert_eq!(metric(&open, "sse_streams_opened_total"), 2);
    assert_eq!(metric(&open, "sse_streams_rejected_total"), 1);
    assert!(metric(&open, "sse_events_sent_total") >= 4);
    assert!(open.contains("http_requests_total{route=\"/connect\",status=\"503\"} 1\n"));
    assert!(
        open.contains("http_requests_total{route=\"/metrics\",status=\"200\"} 1\n"),
        "{open}"
    );

    drop(streams);
    assert!(wait_for(Duration::from_secs(2), || metric(
        &scrape(),
        "sse_streams_live"
    ) == 0));
    assert_eq!(metric(&scrape(), "sse_streams_opened_total"), 2);
}

#[test]
fn metrics_pass_promtool() {
    let promtool = std::path::Path::new("/usr/bin/promtool");
    if !promtool.exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have promtool (Debian's prometheus)"
        );
        eprintln!("skipping: no promtool");
        return;
    }
    let server = TestServer::start(INTERVAL);
    let mut stream = EventStream::open(server.addr);
    stream.next_event();
    request(server.addr, "GET", "/nope", "");
    let text = request(server.addr, "GET", "/metrics", "").text();
    let mut check = std::process::Command::new(promtool)
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .output_with_stdin(text.as_bytes());
    assert!(
        check.status.success(),
        "promtool: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    check.stdout.clear();
}

#[test]
fn healthz_says_ok() {
    let server = TestServer::start(INTERVAL);
    let health = request(server.addr, "GET", "/healthz", "");
    assert_eq!(health.status, 200);
    assert_eq!(health.text(), "ok\n");
}

/// `Command::output` with bytes on standard input.
trait OutputWithStdin {
    fn output_with_stdin(&mut self, input: &[u8]) -> std::process::Output;
}

impl OutputWithStdin for std::process::Command {
    fn output_with_stdin(&mut self, input: &[u8]) -> std::process::Output {
        let mut child = self
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(input).unwrap();
        child.wait_with_output().unwrap()
    }
}

#[test]
fn sigterm_with_a_thousand_streams_ends_every_body_and_exits_zero_in_time() {
    common::raise_open_files();
    let interval = Duration::from_secs(1);
    let mut server = ServerProcess::start(&["--interval", "1s"]);
    let mut streams: Vec<_> = (0..1000).map(|_| EventStream::open(server.addr)).collect();
    for stream in &mut streams {
        assert_eq!(stream.head.status, 200);
        stream.next_event();
    }
    let signalled = Instant::now();
    server.signal("TERM");
    let status = server
        .wait_exit(Duration::from_secs(5))
        .expect("the server exited");
    let took = signalled.elapsed();
    assert!(status.success(), "exit status {status:?}");
    assert!(
        took <= interval + Duration::from_millis(500),
        "exited after {took:?}"
    );
    for (i, stream) in streams.iter_mut().enumerate() {
        // Skip any event written before the stop, then expect the terminating zero-length chunk.
        while let Some(chunk) = stream.next_chunk() {
            assert!(!chunk.events().is_empty(), "stream {i}");
        }
    }
}
