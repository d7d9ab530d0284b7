//! Named feeds over real TCP: `POST /feeds/NAME`, `GET /feeds/NAME/stream`, the pages
//! `/feeds/NAME`, `/htmx4/feeds/NAME` and `/feeds`, every refusal (the bound `--max-feeds`
//! among them), a stream that waits for a feed to come, ids per feed, the metrics, the log lines,
//! and the fan-out threads shared by every feed.
//!
//! The publishing rules themselves (media types, escapes, the rate limit) are the chat's, and
//! `tests/chat.rs` pins each in depth; here each is checked once on a feed's path.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::SocketAddr;
use std::time::Duration;

use common::{EventStream, Response, ServerProcess, TestServer, connect, connect_from};
use common::{SseEvent, TempFile, wait_for};
use common::{read_head, request};

const TEXT: &str = "Content-Type: text/plain; charset=utf-8\r\n";
const FORM: &str = "Content-Type: application/x-www-form-urlencoded\r\n";

fn post(addr: SocketAddr, path: &str, headers: &str, body: &[u8]) -> Response {
    let mut stream = connect(addr);
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n{headers}\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    // A refusal may be answered before the body is read; the answer is what counts.
    let _ = stream.write_all(body);
    let mut reader = BufReader::new(stream);
    let mut response = read_head(&mut reader);
    reader.read_to_end(&mut response.body).expect("read body");
    response
}

/// Publishes `text` to the feed `feed` and returns its id.
fn publish(addr: SocketAddr, feed: &str, text: &str) -> u64 {
    let response = post(addr, &format!("/feeds/{feed}"), TEXT, text.as_bytes());
    assert_eq!(response.status, 201, "{}", response.text());
    response.text().trim_end().parse().expect("an id")
}

fn refused(response: &Response, status: u16, why: &str) {
    assert_eq!(response.status, status, "{}", response.text());
    assert!(response.text().contains(why), "{}", response.text());
}

fn server(configure: impl FnOnce(&mut sse_htmx::Config)) -> TestServer {
    TestServer::with(|c| {
        c.publish_limit = 0;
        configure(c);
    })
}

/// An open `/feeds/NAME/stream`.
struct Stream(EventStream);

impl Stream {
    fn open(addr: SocketAddr, feed: &str, headers: &str) -> Stream {
        let stream = EventStream::open_path(addr, &format!("/feeds/{feed}/stream"), headers);
        assert_eq!(stream.head.status, 200);
        assert_eq!(
            stream.head.header("Content-Type"),
            Some("text/event-stream")
        );
        Stream(stream)
    }

    /// The next event with data, with its id as a number (none for a notice).
    fn next(&mut self) -> (Option<u64>, String) {
        let (SseEvent { id, data, .. }, _) = self.0.next_event();
        (
            id.map(|id| id.parse().expect("a numeric id")),
            data.unwrap(),
        )
    }

    fn ids(&mut self, n: usize) -> Vec<u64> {
        (0..n).map(|_| self.next().0.expect("a message")).collect()
    }
}

fn metrics(addr: SocketAddr) -> String {
    request(addr, "GET", "/metrics", "").text()
}

/// The value of the sample `name{feed="FEED"}`, if the feed has one.
fn per_feed(text: &str, name: &str, feed: &str) -> Option<u64> {
    let prefix = format!("{name}{{feed=\"{feed}\"}} ");
    text.lines()
        .find_map(|line| line.strip_prefix(&prefix)?.parse().ok())
}

#[test]
fn a_feed_is_published_to_like_the_chat_and_streams_its_messages_with_their_ids() {
    let server = server(|_| {});
    let addr = server.addr;
    let mut stream = Stream::open(addr, "news", "");
    let first = publish(addr, "news", "plain text");
    let form = post(addr, "/feeds/news", FORM, b"text=from+a+form&name=desk");
    assert_eq!(form.status, 201);
    let second: u64 = form.text().trim_end().parse().unwrap();
    assert!(second > first);
    let (id, data) = stream.next();
    assert_eq!(id, Some(first));
    assert!(data.contains(">plain text<"), "{data}");
    // The page's large box shows it, swapped out of band.
    assert!(
        data.contains(
            r#"<div id="feed-newest" hx-swap-oob="innerHTML"><p class="newest">plain text</p>"#
        ),
        "{data}"
    );
    let (id, data) = stream.next();
    assert_eq!(id, Some(second));
    assert!(
        data.contains(">from a form<") && data.contains(">desk<"),
        "{data}"
    );
}

#[test]
fn a_late_stream_gets_the_history_and_one_that_resumes_only_what_it_missed() {
    let server = server(|c| c.history = 3);
    let addr = server.addr;
    let ids: Vec<u64> = (0..5)
        .map(|i| publish(addr, "log", &format!("m{i}")))
        .collect();
    let mut late = Stream::open(addr, "log", "");
    assert_eq!(late.ids(3), ids[2..]);
    let mut resumed = Stream::open(addr, "log", &format!("Last-Event-ID: {}\r\n", ids[3]));
    assert_eq!(resumed.ids(1), [ids[4]]);
    // An id no longer held: the missed notice, then what is held.
    let mut gone = Stream::open(addr, "log", &format!("Last-Event-ID: {}\r\n", ids[0]));
    let (id, notice) = gone.next();
    assert_eq!(id, None);
    assert!(
        notice.contains(r#"id="feed-notice""#) && notice.contains("missed"),
        "{notice}"
    );
    assert_eq!(gone.ids(3), ids[2..]);
    // Then live, once each.
    let live = publish(addr, "log", "live");
    for stream in [&mut late, &mut resumed, &mut gone] {
        assert_eq!(stream.ids(1), [live]);
    }
    assert_eq!(
        per_feed(&metrics(addr), "feed_missed_notices_total", "log"),
        Some(1)
    );
}

#[test]
fn feeds_are_apart_each_with_its_own_ids_and_streams() {
    let server = server(|_| {});
    let addr = server.addr;
    let mut a = Stream::open(addr, "a", "");
    let mut b = Stream::open(addr, "b", "");
    let a1 = publish(addr, "a", "for a");
    let b1 = publish(addr, "b", "for b");
    let a2 = publish(addr, "a", "for a again");
    assert_eq!(a2, a1 + 1, "a feed's ids are its own and follow each other");
    let (id, data) = b.next();
    assert_eq!(id, Some(b1));
    assert!(data.contains(">for b<"), "{data}");
    assert_eq!(a.ids(2), [a1, a2]);
    // The chat is a feed too, at both its paths.
    let mut chat = Stream::open(addr, "chat", "");
    let c1 = publish(addr, "chat", "into the chat");
    let (id, data) = chat.next();
    assert_eq!(id, Some(c1));
    assert!(
        !data.contains("feed-newest"),
        "the chat's page has no large box"
    );
}

#[test]
fn a_stream_of_a_feed_to_come_waits_for_its_first_message_and_creates_nothing() {
    let server = server(|c| c.max_feeds = 2);
    let addr = server.addr;
    let mut waiting = Stream::open(addr, "soon", "");
    let first = waiting.0.next_chunk().expect("a first chunk");
    assert_eq!(first.bytes, b": connected\n\n");
    let mut others: Vec<_> = (0..3)
        .map(|i| Stream::open(addr, &format!("never-{i}"), ""))
        .collect();
    let listed = request(addr, "GET", "/feeds", "").text();
    assert!(
        !listed.contains("soon") && !listed.contains("never"),
        "{listed}"
    );
    assert!(!metrics(addr).contains("feed=\"never"));
    // The waits take no room: the second feed may still be made, and the waiting stream gets it.
    let id = publish(addr, "soon", "here");
    assert_eq!(waiting.ids(1), [id]);
    let full = post(addr, "/feeds/never-0", TEXT, b"no room");
    refused(&full, 507, "at most 2 feeds");
    others.clear();
}

#[test]
fn every_refusal_on_a_feed_has_its_status_and_says_why() {
    let server = server(|c| {
        c.max_feeds = 2;
        c.max_message = 10;
    });
    let addr = server.addr;
    publish(addr, "one", "the last");
    let cases: [(&str, &str, &[u8], u16, &str); 6] = [
        ("/feeds/one", TEXT, b"   ", 422, "empty"),
        ("/feeds/one", TEXT, b"eleven chars", 422, "longer than 10"),
        ("/feeds/one", TEXT, b"\xff", 400, "UTF-8"),
        ("/feeds/one", FORM, b"text=%zz", 400, "escape"),
        (
            "/feeds/one",
            "Content-Type: image/png\r\n",
            b"x",
            415,
            "text/plain",
        ),
        ("/feeds/two", TEXT, b"a new feed", 507, "at most 2 feeds"),
    ];
    for (path, headers, body, status, why) in cases {
        refused(&post(addr, path, headers, body), status, why);
    }
    let big = vec![b'x'; 20_000];
    assert_eq!(post(addr, "/feeds/one", TEXT, &big).status, 413);
    for (method, path, status) in [
        ("GET", "/feeds/Upper", 404),
        ("POST", "/feeds/-dash", 404),
        ("GET", "/feeds/one/other", 404),
        ("POST", "/htmx4/feeds/one", 405),
        ("POST", "/feeds/one/stream", 405),
        ("POST", "/feeds", 405),
    ] {
        assert_eq!(
            request(addr, method, path, "").status,
            status,
            "{method} {path}"
        );
    }
    let m = metrics(addr);
    for reason in [
        "empty",
        "too_long",
        "bad_utf8",
        "bad_escape",
        "media_type",
        "too_large",
    ] {
        let sample = format!("feed_publishes_refused_total{{reason=\"{reason}\"}} ");
        assert!(m.contains(&sample), "{sample} in {m}");
    }
    assert!(m.contains("feed_publishes_refused_total{reason=\"too_many_feeds\"} 1\n"));
    assert_eq!(
        per_feed(&m, "feed_messages_published_total", "one"),
        Some(1)
    );
    assert_eq!(per_feed(&m, "feed_messages_held", "two"), None);
}

#[test]
fn the_publish_limit_is_per_client_over_all_feeds() {
    // 1 a second, bursts of 4: publishing to three feeds in turn is limited as one.
    let server = TestServer::with(|c| c.publish_limit = 1);
    let addr = server.addr;
    let started = std::time::Instant::now();
    let mut accepted = 0;
    let limited = loop {
        let response = post(addr, &format!("/feeds/f{}", accepted % 3), TEXT, b"x");
        if response.status != 201 {
            break response;
        }
        accepted += 1;
        assert!(accepted <= 20, "the limit never applied");
    };
    // A token comes back every second: a slow machine may fit more than the burst.
    let refills = started.elapsed().as_secs_f64().ceil() as usize;
    assert!((4..=4 + refills).contains(&accepted), "{accepted} accepted");
    refused(&limited, 429, "too many messages");
    assert!(limited.header("Retry-After").is_some());
}

#[test]
fn the_pages_show_a_feed_in_both_flavors_and_the_list_links_every_feed() {
    let server = server(|_| {});
    let addr = server.addr;
    for (path, connect) in [
        ("/feeds/news", r#"sse-connect="/feeds/news/stream""#),
        (
            "/htmx4/feeds/news",
            r#"hx-sse:connect="/feeds/news/stream""#,
        ),
    ] {
        let page = request(addr, "GET", path, "");
        assert_eq!(page.status, 200, "a feed to come has its page");
        assert_eq!(page.header("Cache-Control"), Some("no-cache"));
        let html = page.text();
        assert!(html.contains(connect), "{html}");
        assert!(html.contains("<h1>Feed news</h1>") && html.contains("&lt;div id=&quot;feed-log"));
    }
    assert!(
        request(addr, "GET", "/feeds/chat", "")
            .text()
            .contains("chat-form")
    );
    for _ in 0..3 {
        publish(addr, "news", "n");
    }
    publish(addr, "weather", "w");
    let list = request(addr, "GET", "/feeds", "");
    assert_eq!(list.status, 200);
    let html = list.text();
    for item in [
        r#"<a href="/feeds/chat">chat</a> · 0 messages"#,
        r#"<a href="/feeds/news">news</a> · 3 messages"#,
        r#"<a href="/feeds/weather">weather</a> · 1 message<"#,
    ] {
        assert!(html.contains(item), "{item} in {html}");
    }
    let htmx4 = request(addr, "GET", "/htmx4/feeds", "").text();
    assert!(
        htmx4.contains(r#"<a href="/htmx4/feeds/news">news</a>"#),
        "{htmx4}"
    );
}

#[test]
fn each_feed_has_its_metrics_and_they_pass_promtool() {
    let server = server(|_| {});
    let addr = server.addr;
    let _news = Stream::open(addr, "news", "");
    let _chat = Stream::open(addr, "chat", "");
    publish(addr, "news", "one");
    publish(addr, "news", "two");
    // A stream is counted just after its first bytes go out.
    assert!(wait_for(Duration::from_secs(5), || {
        let m = metrics(addr);
        per_feed(&m, "feed_subscribers_live", "news") == Some(1)
            && per_feed(&m, "feed_subscribers_live", "chat") == Some(1)
    }));
    let m = metrics(addr);
    assert_eq!(
        per_feed(&m, "feed_messages_published_total", "news"),
        Some(2)
    );
    assert_eq!(per_feed(&m, "feed_messages_held", "news"), Some(2));
    assert_eq!(
        per_feed(&m, "feed_messages_published_total", "chat"),
        Some(0)
    );
    common::promtool_check(&m);
}

#[test]
fn a_new_feed_and_each_publish_are_logged_without_the_text() {
    let server = ServerProcess::start_logging(&["--publish-limit", "0"]);
    let id = publish(server.addr, "alerts", "the secret words");
    let created = "feed alerts created (2 of at most 64)";
    let published = format!("feed alerts message {id} from 127.0.0.1:");
    assert!(
        wait_for(Duration::from_secs(5), || {
            let tail = server.stderr_tail();
            tail.iter().any(|l| l.contains(created)) && tail.iter().any(|l| l.contains(&published))
        }),
        "{:#?}",
        server.stderr_tail()
    );
    assert!(!server.stderr_tail().iter().any(|l| l.contains("secret")));
}

#[test]
fn every_feed_shares_the_same_fan_out_threads() {
    let server = ServerProcess::start(&["--publish-limit", "0"]);
    let addr = server.addr;
    let fan_out_threads = || common::threads_named(server.pid(), "feed-fan-out");
    // One per core (the server inherits this process's CPUs); a thread takes its name once it
    // runs, so the count is waited for.
    let cores = std::thread::available_parallelism().map_or(1, usize::from);
    assert!(
        wait_for(Duration::from_secs(5), || fan_out_threads() == cores),
        "{} fan-out threads for {cores} cores",
        fan_out_threads()
    );
    let mut streams: Vec<_> = (0..10)
        .map(|i| Stream::open(addr, &format!("f{i}"), ""))
        .collect();
    for (i, stream) in streams.iter_mut().enumerate() {
        let id = publish(addr, &format!("f{i}"), "x");
        assert_eq!(stream.ids(1), [id]);
    }
    assert_eq!(fan_out_threads(), cores, "no thread per feed");
}

#[test]
fn every_one_of_hundreds_of_streams_gets_the_message_while_the_descriptor_table_grows() {
    // The kernel grows a process's descriptor table as numbers above it are opened (64, 128,
    // 256, ...); the layer finds each stream's descriptors among the table's numbers, so streams
    // opened across those growths must each get every message (a bound read before a growth once
    // cost a few streams in a few hundred every message).
    common::raise_open_files();
    let server = ServerProcess::start(&["--publish-limit", "0"]);
    let addr = server.addr;
    let before = server.open_fds();
    let mut streams: Vec<_> = (0..400).map(|_| Stream::open(addr, "grow", "")).collect();
    let id = publish(addr, "grow", "to every stream");
    for stream in &mut streams {
        assert_eq!(stream.ids(1), [id]);
    }
    // Each holds two descriptors once tiny_http's pool thread has let go of its own: tiny_http's
    // writer, kept for the stream's life, and its outlet's (see `tiny/outlet.rs`).
    let held = || server.open_fds().saturating_sub(before);
    assert!(
        wait_for(Duration::from_secs(5), || held() <= 800),
        "{} descriptors for 400 streams",
        held()
    );
    // Once the clients are gone and messages found it, nothing of theirs is left.
    drop(streams);
    let gone = wait_for(Duration::from_secs(10), || {
        publish(addr, "grow", "to no one");
        held() <= 2
    });
    assert!(gone, "{} descriptors after the streams closed", held());
}

#[test]
fn feed_streams_are_admitted_while_their_two_descriptors_each_fit() {
    common::raise_open_files();
    // 256 open files: a quarter is kept for what is not a stream, so streams may hold 192. A
    // feed stream holds two (tiny_http's writer and its outlet's own), so 96 fit.
    let server = ServerProcess::start_with_prefix(
        &["prlimit", "--nofile=256:256", "--"],
        &["--publish-limit", "0"],
    );
    let addr = server.addr;
    let mut streams: Vec<_> = (0..96).map(|_| Stream::open(addr, "full", "")).collect();
    let refused = EventStream::open_path(addr, "/feeds/full/stream", "");
    assert_eq!(refused.head.status, 503);
    assert_eq!(refused.head.header("Retry-After"), Some("5"));
    // The counter's stream holds one, and there is none left for it either.
    assert_eq!(
        EventStream::open_path(addr, "/connect", "").head.status,
        503
    );
    let id = publish(addr, "full", "to every one");
    for stream in &mut streams {
        assert_eq!(stream.ids(1), [id]);
    }
    // One leaves: once a message found it gone, its place is free.
    drop(streams.pop());
    let admitted = wait_for(Duration::from_secs(10), || {
        publish(addr, "full", "again");
        EventStream::open_path(addr, "/feeds/full/stream", "")
            .head
            .status
            == 200
    });
    assert!(admitted, "a stream admitted in the place of one gone");
}

/// The open-file soft and hard limits of process `pid`.
fn open_file_limits(pid: u32) -> (u64, u64) {
    let limits = std::fs::read_to_string(format!("/proc/{pid}/limits")).unwrap();
    let line = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .unwrap();
    let number = |n: usize| {
        line.split_whitespace()
            .nth(n)
            .unwrap()
            .parse()
            .unwrap_or(u64::MAX)
    };
    (number(3), number(4))
}

/// How many descriptors process `pid` has numbered `from` or above.
fn descriptors_from(pid: u32, from: u64) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u64>().ok())
        .filter(|&fd| fd >= from)
        .count()
}

#[test]
fn a_feed_stream_s_second_descriptor_is_numbered_above_the_open_file_limit() {
    let server = ServerProcess::start(&["--publish-limit", "0"]);
    let (addr, pid) = (server.addr, server.pid());
    // The server sets its soft limit to the threads the host can map (15,870 with Linux's
    // defaults), or to the hard limit if that is lower: then no number is above it.
    let (limit, hard) = open_file_limits(pid);
    if limit + 3 > hard {
        eprintln!("skipped: the hard open-file limit ({hard}) leaves no number above {limit}");
        return;
    }
    let mut streams: Vec<_> = (0..3).map(|_| Stream::open(addr, "high", "")).collect();
    let id = publish(addr, "high", "to every one");
    for stream in &mut streams {
        assert_eq!(stream.ids(1), [id]);
    }
    // Each has shared its outlet by now (the message went through it).
    assert_eq!(descriptors_from(pid, limit), 3);
    // The counter's stream holds one descriptor, below the limit, which has not moved.
    let counter = EventStream::open_path(addr, "/connect", "");
    assert_eq!(counter.head.status, 200);
    assert_eq!(descriptors_from(pid, limit), 3);
    assert_eq!(open_file_limits(pid), (limit, hard));
    drop(streams);
    // Each is found gone by the next message, and its duplicate closed.
    let closed = wait_for(Duration::from_secs(10), || {
        publish(addr, "high", "again");
        descriptors_from(pid, limit) == 0
    });
    assert!(closed, "{} left", descriptors_from(pid, limit));
}

#[test]
fn the_store_keeps_every_feed_across_kill_9() {
    let store = TempFile::new("feeds-kill9");
    let args = ["--store", store.arg(), "--publish-limit", "0"];
    let mut server = ServerProcess::start(&args);
    let news: Vec<u64> = (0..3)
        .map(|i| publish(server.addr, "news", &format!("news {i}")))
        .collect();
    let chat = publish(server.addr, "chat", "in the chat");
    let weather = publish(server.addr, "weather", "sunny");
    server.signal("KILL");
    assert!(server.wait_exit(Duration::from_secs(5)).is_some());

    let server = ServerProcess::start(&args);
    let addr = server.addr;
    let list = request(addr, "GET", "/feeds", "").text();
    for item in [
        ">chat</a> · 1 message<",
        ">news</a> · 3 messages<",
        ">weather</a> · 1 message<",
    ] {
        assert!(list.contains(item), "{item} in {list}");
    }
    // A page that saw the second news message gets the third, then what follows it.
    let mut resumed = Stream::open(addr, "news", &format!("Last-Event-ID: {}\r\n", news[1]));
    assert_eq!(resumed.ids(1), [news[2]]);
    let next = publish(addr, "news", "after the restart");
    assert!(
        next > news[2],
        "the feed's ids go on above the stored: {next}"
    );
    assert_eq!(resumed.ids(1), [next]);
    assert_eq!(Stream::open(addr, "chat", "").ids(1), [chat]);
    assert_eq!(Stream::open(addr, "weather", "").ids(1), [weather]);
}

#[test]
fn a_store_with_more_feeds_than_max_feeds_serves_them_all_and_adds_none() {
    let store = TempFile::new("feeds-over-max");
    let path = store.arg();
    let mut server = ServerProcess::start(&["--store", path, "--publish-limit", "0"]);
    for feed in ["one", "two", "three"] {
        publish(server.addr, feed, feed);
    }
    server.signal("KILL");
    assert!(server.wait_exit(Duration::from_secs(5)).is_some());

    let args = ["--store", path, "--publish-limit", "0", "--max-feeds", "2"];
    let server = ServerProcess::start_logging(&args);
    let line = "store: 4 feeds, more than --max-feeds 2";
    assert!(
        wait_for(Duration::from_secs(5), || server
            .stderr_tail()
            .iter()
            .any(|l| l.contains(line))),
        "{line} in {:#?}",
        server.stderr_tail()
    );
    publish(server.addr, "three", "still served");
    refused(
        &post(server.addr, "/feeds/four", TEXT, b"x"),
        507,
        "at most 2 feeds",
    );
}

/// A record of journal version 1 (the chat's, with no feed), built from its documentation.
fn record_v1(id: u64, text: &str) -> Vec<u8> {
    let payload = [
        &id.to_le_bytes()[..],
        &1_764_000_000_000u64.to_le_bytes(),
        &3u16.to_le_bytes(),
        b"ann",
        text.as_bytes(),
    ]
    .concat();
    let len = (payload.len() as u32).to_le_bytes();
    let crc = crc32fast::hash(&[&len[..], &payload].concat());
    [&b"\xFFch1"[..], &len, &crc.to_le_bytes(), &payload].concat()
}

#[test]
fn a_version_1_journal_is_the_chats_and_takes_every_feed_after_it() {
    let store = TempFile::new("feeds-version-1");
    let old = [record_v1(7, "from version 1"), record_v1(9, "also")].concat();
    std::fs::write(&store.0, [&b"\xFFSSEchat\x01\0\0\0"[..], &old].concat()).unwrap();
    let args = ["--store", store.arg(), "--publish-limit", "0"];
    let mut server = ServerProcess::start_logging(&args);
    let said = "journal version 1 is now version 2: its messages are the chat's";
    assert!(
        wait_for(Duration::from_secs(5), || server
            .stderr_tail()
            .iter()
            .any(|l| l.contains(said))),
        "{:#?}",
        server.stderr_tail()
    );
    let mut chat = Stream::open(server.addr, "chat", "");
    assert_eq!(chat.ids(2), [7, 9]);
    let news = publish(server.addr, "news", "a feed after them");
    let journal = std::fs::read(&store.0).unwrap();
    assert_eq!(journal[..12], *b"\xFFSSEchat\x02\0\0\0");
    assert_eq!(journal[12..12 + old.len()], old[..], "kept as they were");
    server.signal("KILL");
    assert!(server.wait_exit(Duration::from_secs(5)).is_some());

    let server = ServerProcess::start(&args);
    assert_eq!(Stream::open(server.addr, "chat", "").ids(2), [7, 9]);
    assert_eq!(Stream::open(server.addr, "news", "").ids(1), [news]);
}

#[test]
fn streams_that_join_while_three_feeds_are_published_to_miss_none_and_repeat_none() {
    let server = server(|_| {});
    let addr = server.addr;
    let feeds = ["red", "green", "blue"];
    // Three publishers at once, one per feed; streams join while they publish.
    let publishers: Vec<_> = feeds
        .iter()
        .map(|feed| {
            let feed = feed.to_string();
            std::thread::spawn(move || {
                (0..20)
                    .map(|i| publish(addr, &feed, &format!("{feed} {i}")))
                    .collect::<Vec<u64>>()
            })
        })
        .collect();
    let mut streams: Vec<(usize, Stream)> = Vec::new();
    for _ in 0..2 {
        for (at, feed) in feeds.iter().enumerate() {
            streams.push((at, Stream::open(addr, feed, "")));
        }
    }
    let published: Vec<Vec<u64>> = publishers.into_iter().map(|p| p.join().unwrap()).collect();
    for (at, stream) in &mut streams {
        let ids = &published[*at];
        // A stream gets the history held when it joined (all of it: 20 < 50), then live: every
        // message of its feed once, in order, whenever it joined.
        assert_eq!(stream.ids(ids.len()), *ids, "{}", feeds[*at]);
    }
}

#[test]
fn a_re_exec_carries_every_feed_and_each_feeds_ids_go_on() {
    let binary = std::ffi::OsStr::new(common::process::THIS_BUILD);
    let args = ["--publish-limit", "0"];
    let server = ServerProcess::launch_logging(binary, &[], &args).unwrap();
    let addr = server.addr;
    let news: Vec<u64> = (0..2)
        .map(|i| publish(addr, "news", &format!("news {i}")))
        .collect();
    let chat = publish(addr, "chat", "in the chat");
    server.signal("HUP");
    // The new image says its capacity, as every start does.
    assert!(
        wait_for(Duration::from_secs(10), || server
            .stderr()
            .matches("sse-htmx: capacity")
            .count()
            >= 2),
        "{}",
        server.stderr()
    );
    let list = request(addr, "GET", "/feeds", "").text();
    assert!(list.contains(">news</a> · 2 messages<"), "{list}");
    // A page that saw the first news message gets the second, then the next, which follows it.
    let mut resumed = Stream::open(addr, "news", &format!("Last-Event-ID: {}\r\n", news[0]));
    assert_eq!(resumed.ids(1), [news[1]]);
    let next = publish(addr, "news", "after the re-exec");
    assert_eq!(next, news[1] + 1, "the feed's ids go on from its last");
    assert_eq!(resumed.ids(1), [next]);
    assert_eq!(Stream::open(addr, "chat", "").ids(1), [chat]);
    assert_eq!(publish(addr, "chat", "again"), chat + 1);
}

#[test]
fn a_new_connection_from_the_address_of_a_stream_that_left_unnoticed_is_answered() {
    // A client's address can come back on a new connection before the server has seen the old
    // one gone: an operating system reuses a port freed a moment ago, a proxy cycles through
    // its ports. The new connection's requests are its own, never the stream's, and are
    // answered.
    let server = ServerProcess::start_capturing_stderr(&["--publish-limit", "0"]);
    let addr = server.addr;
    let mut client = connect_from(0, addr).expect("connect");
    let port = client.local_addr().unwrap().port();
    write!(
        client,
        "GET /feeds/away/stream HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n"
    )
    .unwrap();
    let mut reader = BufReader::new(client);
    assert_eq!(read_head(&mut reader).status, 200);
    // Its first chunk read, so that nothing the server writes meets the closed connection
    // before the message does.
    let mut line = String::new();
    while !line.starts_with(": connected") {
        line.clear();
        reader
            .read_line(&mut line)
            .expect("the stream's first chunk");
    }
    drop(reader);
    // The message reaches a connection its client has closed, and the client's answer ends it
    // on both sides: the address is free again, but the server learns it at its next write.
    publish(addr, "away", "to a closed connection");
    let mut client = None;
    assert!(
        wait_for(Duration::from_secs(5), || {
            client = connect_from(port, addr).ok();
            client.is_some()
        }),
        "port {port} free again"
    );
    let mut client = client.unwrap();
    write!(
        client,
        "GET /feeds HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    assert_eq!(read_head(&mut BufReader::new(client)).status, 200);
    // The old stream has ended: as soon as its address came back (or, if the connection sweep
    // had forgotten its ending by then, seeing its connection gone, at its next write).
    publish(addr, "away", "to no one");
    let ended = format!("stream 127.0.0.1:{port} closed: ");
    let logged = || server.stderr().lines().any(|line| line.starts_with(&ended));
    assert!(
        wait_for(Duration::from_secs(5), logged),
        "{}",
        server.stderr()
    );
}

/// Streams of a quiet feed whose clients left, which would learn it two keep-alives (30 s) later,
/// do not keep a new stream out for that long: a refusal at capacity has them probed, and the
/// retry that the refusal asks for (`Retry-After: 5`) finds their slots.
#[test]
fn streams_whose_clients_left_free_their_slots_after_a_refusal_at_capacity() {
    let server = server(|c| c.max_streams = Some(2));
    publish(server.addr, "quiet", "one");
    for _ in 0..2 {
        let mut stream = Stream::open(server.addr, "quiet", "");
        stream.0.next_event();
    }
    let status = || {
        let mut socket = connect(server.addr);
        write!(
            socket,
            "GET /feeds/quiet/stream HTTP/1.1\r\nHost: x\r\n\r\n"
        )
        .unwrap();
        read_head(&mut BufReader::new(socket)).status
    };
    assert!(wait_for(Duration::from_secs(2), || status() == 503));
    let refused = std::time::Instant::now();
    assert!(
        wait_for(Duration::from_secs(8), || status() == 200),
        "a slot came back"
    );
    assert!(refused.elapsed() < Duration::from_secs(8));
}
