//! The chatroom over real TCP: `POST /chat/messages`, `GET /chat/stream` and `/chat`, the
//! history and resume after `Last-Event-ID`, every refusal, the store across `kill -9`, the
//! metrics and the log line.
//!
//! Messages are found in an event by their `<article ... id="msg-ID">` and their text by
//! `>text<`, never by comparing the data byte for byte: the first event of a stream may carry an
//! extra element before the article.

mod common;

use std::io::{BufReader, Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{
    EventStream, Response, ServerProcess, TempFile, TestServer, connect, read_head, request,
    wait_for,
};

// ---- publishing ----

/// Sends a POST with a body and the given extra header lines (each ending in CRLF), and reads the
/// whole answer.
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

const TEXT: &str = "Content-Type: text/plain; charset=utf-8\r\n";
const FORM: &str = "Content-Type: application/x-www-form-urlencoded\r\n";

fn post_text(addr: SocketAddr, text: &str) -> Response {
    post(addr, "/chat/messages", TEXT, text.as_bytes())
}

fn post_form(addr: SocketAddr, form: &str) -> Response {
    post(addr, "/chat/messages", FORM, form.as_bytes())
}

/// The id in a `201` answer without `HX-Request`: digits and a newline.
fn id_of(response: &Response) -> u64 {
    assert_eq!(response.status, 201, "{}", shown(response));
    let body = response.text();
    let digits = body
        .strip_suffix('\n')
        .unwrap_or_else(|| panic!("{body:?}"));
    digits.parse().unwrap_or_else(|_| panic!("an id: {body:?}"))
}

/// A response as text, for assertion messages.
fn shown(response: &Response) -> String {
    let body = String::from_utf8_lossy(&response.body);
    format!("{} {:?} {body}", response.status_line, response.headers)
}

/// Publishes `text` as plain text and returns its id.
fn publish(addr: SocketAddr, text: &str) -> u64 {
    id_of(&post_text(addr, text))
}

/// Percent-encodes every byte but `A-Za-z0-9-_.~`, as a form value.
fn form_encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                char::from(b).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Asserts a refusal: the status, and a short body saying why.
fn refused(response: Response, status: u16) {
    assert_eq!(response.status, status, "{}", shown(&response));
    assert!(
        !response.body.is_empty(),
        "a refusal says why: {}",
        shown(&response)
    );
}

// ---- subscribing ----

/// An open `/chat/stream`.
struct Subscriber(EventStream);

/// A message event: its `id:` (the article's id too), its `retry:`, and its data.
#[derive(Debug)]
struct Msg {
    id: u64,
    retry: Option<u64>,
    data: String,
}

impl Msg {
    /// From `<article` to the end: the message itself, without what may come before it.
    /// The message's `<article>` element, without the list reset the first message of a
    /// stream may be wrapped in.
    fn article(&self) -> &str {
        let start = self.data.find("<article").expect("an article");
        let end = self.data.rfind("</article>").expect("an article's end") + "</article>".len();
        &self.data[start..end]
    }

    fn has_text(&self, text: &str) -> bool {
        self.data.contains(&format!(">{text}<"))
    }
}

impl Subscriber {
    fn open(addr: SocketAddr) -> Subscriber {
        Subscriber::open_with(addr, "")
    }

    fn resume(addr: SocketAddr, last_event_id: &str) -> Subscriber {
        Subscriber::open_with(addr, &format!("Last-Event-ID: {last_event_id}\r\n"))
    }

    fn open_with(addr: SocketAddr, headers: &str) -> Subscriber {
        let stream = EventStream::open_path(addr, "/chat/stream", headers);
        assert_eq!(stream.head.status, 200, "{}", shown(&stream.head));
        assert_eq!(
            stream.head.header("Content-Type"),
            Some("text/event-stream")
        );
        Subscriber(stream)
    }

    /// The next event with data, which must be a message (not a notice).
    fn message(&mut self) -> Msg {
        let (event, _) = self.0.next_event();
        assert_eq!(event.event, None, "messages are unnamed events");
        let data = event.data.expect("data");
        let id = event
            .id
            .unwrap_or_else(|| panic!("a message, not a notice: {data}"));
        let id: u64 = id.parse().unwrap_or_else(|_| panic!("numeric id {id:?}"));
        assert_eq!(article_id(&data), Some(id), "{data}");
        Msg {
            id,
            retry: event.retry,
            data,
        }
    }

    fn messages(&mut self, n: usize) -> Vec<Msg> {
        (0..n).map(|_| self.message()).collect()
    }

    /// The next event with data must be the missed notice: no `id:`, the word "missed".
    fn notice(&mut self) {
        let (event, _) = self.0.next_event();
        let data = event.data.expect("data");
        assert_eq!(event.id, None, "a notice has no id: {data}");
        assert!(data.contains("id=\"chat-notice\""), "{data}");
        assert!(data.contains("missed"), "{data}");
        assert_eq!(article_id(&data), None, "{data}");
    }
}

/// The `ID` of the `<article ... id="msg-ID" ...>` in `data`, whatever the order of its
/// attributes.
fn article_id(data: &str) -> Option<u64> {
    let (_, after) = data.split_once("<article ")?;
    let (tag, _) = after.split_once('>')?;
    let (_, id) = tag.split_once("id=\"msg-")?;
    let digits: String = id.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

fn ids(messages: &[Msg]) -> Vec<u64> {
    messages.iter().map(|m| m.id).collect()
}

// ---- servers and metrics ----

/// A server with no publish limit (tests publish in bursts), configured further by `configure`.
fn chat_server(configure: impl FnOnce(&mut sse_htmx::Config)) -> TestServer {
    TestServer::with(|c| {
        c.publish_limit = 0;
        configure(c);
    })
}

fn metrics(addr: SocketAddr) -> String {
    let response = request(addr, "GET", "/metrics", "");
    assert_eq!(response.status, 200);
    response.text()
}

/// The value of the sample `name` (labels included); panics if there is none.
fn metric(text: &str, name: &str) -> u64 {
    text.lines()
        .find_map(|line| {
            line.strip_prefix(name)?
                .strip_prefix(' ')?
                .parse::<f64>()
                .ok()
        })
        .map(|value| value as u64)
        .unwrap_or_else(|| panic!("{name} in\n{text}"))
}

/// `feed_publishes_refused_total` for `reason`; 0 if the label has not appeared yet.
fn refusals(text: &str, reason: &str) -> u64 {
    let name = format!("feed_publishes_refused_total{{reason=\"{reason}\"}}");
    if text.lines().any(|line| line.starts_with(&name)) {
        metric(text, &name)
    } else {
        0
    }
}

fn subscribers_live(addr: SocketAddr) -> u64 {
    metric(&metrics(addr), r#"feed_subscribers_live{feed="chat"}"#)
}

/// Kills the server with SIGKILL and waits until it is gone.
fn kill_9(server: &mut ServerProcess) {
    server.signal("KILL");
    assert!(server.wait_exit(Duration::from_secs(5)).is_some());
}

// ---- the page ----

#[test]
fn the_chat_page_holds_the_log_the_notice_and_the_form() {
    let server = chat_server(|_| {});
    let page = request(server.addr, "GET", "/chat", "");
    assert_eq!(page.status, 200);
    assert!(
        page.header("Content-Type")
            .unwrap()
            .starts_with("text/html")
    );
    let html = page.text();
    for part in [
        r#"<div id="chat-log" hx-ext="sse" sse-connect="/chat/stream" sse-swap="message" hx-swap="beforeend">"#,
        r#"<div id="chat-notice">"#,
        r#"<form id="chat-form" hx-post="/chat/messages" hx-swap="outerHTML">"#,
        r#"name="name""#,
        r#"<textarea"#,
        r#"name="text""#,
        r#"<button"#,
    ] {
        assert!(html.contains(part), "{part} in\n{html}");
    }
    let csp = page.header("Content-Security-Policy").unwrap_or_default();
    assert!(csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"));
    assert!(
        !html.contains("<script>") && !html.contains("<style"),
        "no inline code"
    );
    assert!(!html.contains(" style="), "no inline style");
}

// ---- delivery, history, resume ----

#[test]
fn two_subscribers_get_the_same_messages_in_the_same_order_with_the_same_ids() {
    let server = chat_server(|_| {});
    let mut a = Subscriber::open(server.addr);
    let mut b = Subscriber::open(server.addr);
    let published: Vec<u64> = (0..20)
        .map(|i| publish(server.addr, &format!("message {i}")))
        .collect();
    assert!(published.windows(2).all(|w| w[0] < w[1]), "{published:?}");
    let (got_a, got_b) = (a.messages(20), b.messages(20));
    assert_eq!(ids(&got_a), published);
    assert_eq!(ids(&got_b), published);
    for (i, (x, y)) in got_a.iter().zip(&got_b).enumerate() {
        assert!(x.has_text(&format!("message {i}")), "{}", x.data);
        assert_eq!(x.article(), y.article());
    }
    assert!(got_a[0].retry.is_some(), "the first event carries retry:");
    assert!(got_b[0].retry.is_some(), "the first event carries retry:");
}

#[test]
fn a_late_subscriber_gets_the_fifty_most_recent_oldest_first_then_live() {
    let server = chat_server(|_| {});
    let published: Vec<u64> = (1..=60)
        .map(|i| publish(server.addr, &format!("message {i}")))
        .collect();
    let mut late = Subscriber::open(server.addr);
    let history = late.messages(50);
    assert_eq!(ids(&history), published[10..]);
    for (msg, i) in history.iter().zip(11..) {
        assert!(msg.has_text(&format!("message {i}")), "{}", msg.data);
    }
    let live = publish(server.addr, "message 61");
    assert_eq!(late.message().id, live, "nothing more from the history");
}

#[test]
fn resuming_after_a_held_id_sends_exactly_the_messages_after_it_then_live() {
    let server = chat_server(|_| {});
    let published: Vec<u64> = (0..5)
        .map(|i| publish(server.addr, &format!("message {i}")))
        .collect();
    let mut middle = Subscriber::resume(server.addr, &published[1].to_string());
    assert_eq!(ids(&middle.messages(3)), published[2..]);
    // The newest id: nothing to resend, and no notice.
    let mut newest = Subscriber::resume(server.addr, &published[4].to_string());
    let live = publish(server.addr, "live");
    assert_eq!(middle.message().id, live);
    let first = newest.message();
    assert_eq!(first.id, live);
    assert!(first.has_text("live"));
}

#[test]
fn resuming_after_an_id_that_is_gone_sends_the_missed_notice_then_the_history() {
    let server = chat_server(|c| c.history = 5);
    let published: Vec<u64> = (0..10)
        .map(|i| publish(server.addr, &format!("message {i}")))
        .collect();
    let held = &published[5..];
    let far_future = (published[9] + 1_000_000_000).to_string();
    let mut gone = Vec::new();
    for k in [published[0].to_string(), "not-a-number".into(), far_future] {
        let mut subscriber = Subscriber::resume(server.addr, &k);
        subscriber.notice();
        assert_eq!(ids(&subscriber.messages(5)), held, "Last-Event-ID: {k}");
        gone.push(subscriber);
    }
    // The id just evicted is known: nothing was missed.
    let mut just_evicted = Subscriber::resume(server.addr, &published[4].to_string());
    assert_eq!(ids(&just_evicted.messages(5)), held);
    let live = publish(server.addr, "live");
    for subscriber in gone.iter_mut().chain([&mut just_evicted]) {
        assert_eq!(subscriber.message().id, live, "live after the history");
    }
    assert_eq!(
        metric(
            &metrics(server.addr),
            r#"feed_missed_notices_total{feed="chat"}"#
        ),
        3
    );
}

#[test]
fn without_a_store_an_id_from_an_earlier_run_gets_the_missed_notice() {
    let first_run = chat_server(|_| {});
    let old = publish(first_run.addr, "from the first run");
    first_run.stop().unwrap();

    let second_run = chat_server(|_| {});
    let new = publish(second_run.addr, "from the second run");
    assert!(new > old, "ids go on across runs: {old} then {new}");
    let mut subscriber = Subscriber::resume(second_run.addr, &old.to_string());
    subscriber.notice();
    let msg = subscriber.message();
    assert_eq!(msg.id, new);
    assert!(msg.has_text("from the second run"));
}

// ---- refusals: each answered, none published ----

#[test]
fn empty_blank_and_too_long_texts_are_refused_with_422() {
    let server = chat_server(|c| c.max_message = 10);
    let mut subscriber = Subscriber::open(server.addr);
    refused(post_text(server.addr, ""), 422);
    refused(post_text(server.addr, " \t\r\n  "), 422);
    refused(post_form(server.addr, "name=ann&text=+++"), 422);
    refused(post_form(server.addr, "name=ann"), 422);
    refused(post_text(server.addr, "abcdefghijk"), 422);
    refused(post_text(server.addr, &"é".repeat(11)), 422);
    let m = metrics(server.addr);
    assert_eq!(
        metric(&m, r#"feed_messages_published_total{feed="chat"}"#),
        0
    );
    assert_eq!(refusals(&m, "empty"), 4);
    assert_eq!(refusals(&m, "too_long"), 2);

    // Ten characters is the limit, not over it, whatever their size in bytes.
    let ten = publish(server.addr, "abcdefghij");
    let ten_wide = publish(server.addr, &"é".repeat(10));
    assert_eq!(ids(&subscriber.messages(2)), [ten, ten_wide]);
    assert_eq!(
        metric(
            &metrics(server.addr),
            r#"feed_messages_published_total{feed="chat"}"#
        ),
        2
    );
}

#[test]
fn invalid_utf8_and_malformed_escapes_are_refused_with_400() {
    let server = chat_server(|_| {});
    let mut subscriber = Subscriber::open(server.addr);
    refused(post(server.addr, "/chat/messages", TEXT, b"caf\xe9"), 400);
    refused(post_form(server.addr, "name=ann&text=caf%FF"), 400);
    refused(post_form(server.addr, "name=ann&text=100%zz"), 400);
    refused(post_form(server.addr, "name=ann&text=100%"), 400);
    let m = metrics(server.addr);
    assert_eq!(
        metric(&m, r#"feed_messages_published_total{feed="chat"}"#),
        0
    );
    assert_eq!(refusals(&m, "bad_utf8"), 2);
    assert_eq!(refusals(&m, "bad_escape"), 2);

    let after = publish(server.addr, "after the refusals");
    assert_eq!(subscriber.message().id, after, "nothing published before");
}

#[test]
fn other_or_missing_media_types_are_refused_with_415() {
    let server = chat_server(|_| {});
    let mut subscriber = Subscriber::open(server.addr);
    for headers in [
        "",
        "Content-Type: application/json\r\n",
        "Content-Type: multipart/form-data; boundary=x\r\n",
        "Content-Type: text/plain; charset=iso-8859-1\r\n",
    ] {
        refused(
            post(server.addr, "/chat/messages", headers, b"text=hi"),
            415,
        );
    }
    let m = metrics(server.addr);
    assert_eq!(
        metric(&m, r#"feed_messages_published_total{feed="chat"}"#),
        0
    );
    assert_eq!(refusals(&m, "media_type"), 4);

    let after = publish(server.addr, "after the refusals");
    assert_eq!(subscriber.message().id, after, "nothing published before");
}

#[test]
fn a_declared_body_over_16_kib_is_refused_with_413_without_reading_it() {
    let server = chat_server(|_| {});
    let mut subscriber = Subscriber::open(server.addr);
    // Only the head is sent: a server that waited for the body would time out this read.
    let mut stream = connect(server.addr);
    let addr = server.addr;
    write!(
        stream,
        "POST /chat/messages HTTP/1.1\r\nHost: {addr}\r\n{TEXT}Content-Length: 20000\r\n\r\n"
    )
    .unwrap();
    let answered = Instant::now();
    let head = read_head(&mut BufReader::new(stream));
    assert_eq!(head.status, 413, "{}", shown(&head));
    assert!(answered.elapsed() < Duration::from_secs(2));
    let m = metrics(server.addr);
    assert_eq!(
        metric(&m, r#"feed_messages_published_total{feed="chat"}"#),
        0
    );
    assert_eq!(refusals(&m, "too_large"), 1);

    let after = publish(server.addr, "after the refusal");
    assert_eq!(subscriber.message().id, after, "nothing published before");
}

#[test]
fn past_the_publish_limit_a_client_gets_429_with_a_whole_retry_after() {
    // 2 a second, bursts of 8.
    let server = TestServer::with(|c| c.publish_limit = 2);
    let mut subscriber = Subscriber::open(server.addr);
    let started = Instant::now();
    let mut accepted = Vec::new();
    let limited = loop {
        let response = post_text(server.addr, &format!("burst {}", accepted.len()));
        if response.status != 201 {
            break response;
        }
        accepted.push(id_of(&response));
        assert!(accepted.len() <= 20, "the limit never applied");
    };
    // A token comes back every 500 ms: a slow machine may fit more than the burst.
    let refills = (started.elapsed().as_secs_f64() * 2.0).ceil() as usize;
    assert!(
        (8..=8 + refills).contains(&accepted.len()),
        "{} accepted",
        accepted.len()
    );
    let retry_after: u64 = limited
        .header("Retry-After")
        .expect("Retry-After")
        .parse()
        .expect("whole seconds");
    assert!(retry_after >= 1);
    refused(limited, 429);
    let m = metrics(server.addr);
    assert_eq!(
        metric(&m, r#"feed_messages_published_total{feed="chat"}"#),
        accepted.len() as u64
    );
    assert_eq!(refusals(&m, "rate_limited"), 1);
    assert_eq!(ids(&subscriber.messages(accepted.len())), accepted);

    // After the wait it names, the client may publish again, and the refused one never was.
    std::thread::sleep(Duration::from_secs(retry_after));
    let after = publish(server.addr, "after the wait");
    assert_eq!(subscriber.message().id, after);
}

// ---- success answers ----

#[test]
fn a_plain_publish_answers_201_with_the_id_subscribers_see() {
    let server = chat_server(|_| {});
    let mut subscriber = Subscriber::open(server.addr);
    let response = post_form(server.addr, "name=ann&text=hi+there");
    assert!(
        response
            .header("Content-Type")
            .unwrap()
            .starts_with("text/plain")
    );
    let id = id_of(&response);
    let msg = subscriber.message();
    assert_eq!(msg.id, id);
    assert!(
        msg.has_text("hi there") && msg.has_text("ann"),
        "{}",
        msg.data
    );
}

#[test]
fn an_htmx_publish_answers_201_with_a_fresh_form_that_keeps_the_name() {
    let server = chat_server(|_| {});
    let mut subscriber = Subscriber::open(server.addr);
    let headers = format!("{FORM}HX-Request: true\r\n");
    let response = post(
        server.addr,
        "/chat/messages",
        &headers,
        b"name=ann&text=a+distinct+text",
    );
    assert_eq!(response.status, 201, "{}", shown(&response));
    assert!(
        response
            .header("Content-Type")
            .unwrap()
            .starts_with("text/html")
    );
    let html = response.text();
    assert!(html.contains("<form id=\"chat-form\""), "{html}");
    assert!(html.contains("value=\"ann\""), "the name is kept: {html}");
    assert!(!html.contains("a distinct text"), "the text is not: {html}");
    let msg = subscriber.message();
    assert!(msg.has_text("a distinct text") && msg.has_text("ann"));
}

#[test]
fn a_plain_text_body_takes_its_name_from_the_query_string() {
    let server = chat_server(|_| {});
    let mut subscriber = Subscriber::open(server.addr);
    let bot = id_of(&post(server.addr, "/chat/messages?name=bot", TEXT, b"beep"));
    let nameless = id_of(&post_form(server.addr, "text=who+am+i"));
    let (first, second) = (subscriber.message(), subscriber.message());
    assert_eq!((first.id, second.id), (bot, nameless));
    assert!(
        first.has_text("bot") && first.has_text("beep"),
        "{}",
        first.data
    );
    assert!(second.has_text("anonymous"), "{}", second.data);
}

#[test]
fn markup_in_names_and_texts_arrives_escaped() {
    let server = chat_server(|_| {});
    let mut subscriber = Subscriber::open(server.addr);
    let script = "<script>alert(1)</script>";
    let img = "<img src=x onerror=alert(1)>";
    for (name, text) in [(img, script), (script, img)] {
        let form = format!("name={}&text={}", form_encode(name), form_encode(text));
        id_of(&post_form(server.addr, &form));
        let msg = subscriber.message();
        assert!(!msg.data.contains("<script"), "{}", msg.data);
        assert!(!msg.data.contains("<img"), "{}", msg.data);
        assert!(msg.data.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(msg.data.contains("&lt;img src=x onerror=alert(1)&gt;"));
    }
}

#[test]
fn a_multi_line_text_arrives_as_data_lines_joined_by_newlines() {
    let server = chat_server(|_| {});
    let mut subscriber = Subscriber::open(server.addr);
    let id = publish(server.addr, "a\nb\r\nc");
    let msg = subscriber.message();
    assert_eq!(msg.id, id);
    assert!(msg.data.contains("a\nb\nc"), "{:?}", msg.data);
    assert!(!msg.data.contains('\r'), "{:?}", msg.data);
}

// ---- a stalled subscriber ----

/// A subscriber with a tiny receive window that never reads a byte of the answer.
fn stalled_subscriber(addr: SocketAddr) -> std::net::TcpStream {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    socket
        .connect_timeout(&addr.into(), Duration::from_secs(5))
        .unwrap();
    let mut stream = std::net::TcpStream::from(socket);
    write!(
        stream,
        "GET /chat/stream HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n"
    )
    .unwrap();
    stream
}

#[test]
fn a_stalled_subscriber_does_not_slow_delivery_to_the_others() {
    let server = chat_server(|c| c.write_timeout = Duration::from_millis(500));
    let addr = server.addr;
    let mut stalled = stalled_subscriber(addr);
    let mut healthy = [Subscriber::open(addr), Subscriber::open(addr)];
    assert!(wait_for(Duration::from_secs(5), || subscribers_live(addr) == 3));

    let started = Instant::now();
    std::thread::scope(|scope| {
        let readers: Vec<_> = healthy
            .iter_mut()
            .map(|s| scope.spawn(move || (ids(&s.messages(300)), Instant::now())))
            .collect();
        let published: Vec<u64> = (0..300)
            .map(|i| {
                // A server that waited on the stalled one for every message would take minutes.
                assert!(
                    started.elapsed() < Duration::from_secs(10),
                    "publishing stalls"
                );
                publish(addr, &format!("{i:03} {}", "x".repeat(1000)))
            })
            .collect();
        for reader in readers {
            let (got, done) = reader.join().expect("a healthy subscriber read all");
            assert_eq!(got, published);
            let took = done - started;
            assert!(took < Duration::from_secs(5), "took {took:?}");
        }
    });
    assert_eq!(request(addr, "GET", "/healthz", "").status, 200);

    // Dropped after the write timeout, or else skipped ahead with the missed notice.
    if !wait_for(Duration::from_secs(5), || subscribers_live(addr) <= 2) {
        stalled
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let mut seen = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut buf = [0; 64 * 1024];
        while Instant::now() < deadline && !String::from_utf8_lossy(&seen).contains("missed") {
            match stalled.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
                Err(_) => {}
            }
        }
        assert!(
            String::from_utf8_lossy(&seen).contains("missed"),
            "the stalled subscriber was neither dropped nor skipped ahead"
        );
    }
}

// ---- the store ----

#[test]
fn stored_messages_survive_kill_9_and_ids_go_on_after_them() {
    let store = TempFile::new("chat-kill9");
    let args = ["--store", store.arg(), "--publish-limit", "0"];
    let mut server = ServerProcess::start(&args);
    let published: Vec<u64> = (0..3)
        .map(|i| publish(server.addr, &format!("stored {i}")))
        .collect();
    kill_9(&mut server);

    let server = ServerProcess::start(&args);
    let mut subscriber = Subscriber::open(server.addr);
    let restored = subscriber.messages(3);
    assert_eq!(ids(&restored), published);
    for (msg, i) in restored.iter().zip(0..) {
        assert!(msg.has_text(&format!("stored {i}")), "{}", msg.data);
    }
    let next = publish(server.addr, "after the restart");
    assert!(next > published[2], "{next} after {published:?}");
    assert_eq!(subscriber.message().id, next);
}

#[test]
fn a_torn_journal_tail_is_cut_off_and_the_server_still_starts() {
    let store = TempFile::new("chat-torn");
    let args = ["--store", store.arg(), "--publish-limit", "0"];
    let mut server = ServerProcess::start(&args);
    let published: Vec<u64> = (0..3)
        .map(|i| publish(server.addr, &format!("stored {i}")))
        .collect();
    kill_9(&mut server);
    let journal = std::fs::OpenOptions::new()
        .write(true)
        .open(&store.0)
        .unwrap();
    let len = journal.metadata().unwrap().len();
    journal.set_len(len - 3).unwrap();
    drop(journal);

    let mut server = ServerProcess::start(&args);
    let mut subscriber = Subscriber::open(server.addr);
    assert_eq!(ids(&subscriber.messages(2)), published[..2]);
    let next = publish(server.addr, "after the tear");
    assert!(next > published[1] && next != published[2], "{next}");
    assert_eq!(subscriber.message().id, next, "the torn one is not held");
    kill_9(&mut server);

    let server = ServerProcess::start(&args);
    let mut subscriber = Subscriber::open(server.addr);
    let expected = [published[0], published[1], next];
    assert_eq!(ids(&subscriber.messages(3)), expected);
    let last = publish(server.addr, "once more");
    assert_eq!(subscriber.message().id, last);
}

/// A record of the journal's version 1 (the chat's, with no feed), built here from its
/// documentation.
fn record(id: u64, name: &str, text: &str) -> Vec<u8> {
    let payload = [
        &id.to_le_bytes()[..],
        &1_764_000_000_000u64.to_le_bytes(),
        &(name.len() as u16).to_le_bytes(),
        name.as_bytes(),
        text.as_bytes(),
    ]
    .concat();
    let len = (payload.len() as u32).to_le_bytes();
    let mut crc = crc32fast::Hasher::new();
    crc.update(&len);
    crc.update(&payload);
    [
        &b"\xFFch1"[..],
        &len,
        &crc.finalize().to_le_bytes(),
        &payload,
    ]
    .concat()
}

#[test]
fn a_journal_begins_with_its_header() {
    let store = TempFile::new("chat-header");
    let args = ["--store", store.arg(), "--publish-limit", "0"];
    let server = ServerProcess::start(&args);
    let id = publish(server.addr, "after the header");
    let journal = std::fs::read(&store.0).unwrap();
    assert_eq!(journal[..12], *b"\xFFSSEchat\x02\0\0\0");
    // Then the record: magic, length, checksum, and the feed and id first in the payload.
    assert_eq!(journal[12..16], *b"\xFFch2");
    assert_eq!(journal[24..29], *b"\x04chat");
    assert_eq!(journal[29..37], id.to_le_bytes());
}

#[test]
fn a_journal_from_before_the_header_is_converted_and_restored() {
    let store = TempFile::new("chat-convert");
    let old = [record(7, "ann", "from before"), record(9, "bob", "also")].concat();
    std::fs::write(&store.0, &old).unwrap();
    let args = ["--store", store.arg(), "--publish-limit", "0"];
    let server = ServerProcess::start_logging(&args);
    let mut subscriber = Subscriber::open(server.addr);
    let restored = subscriber.messages(2);
    assert_eq!(ids(&restored), [7, 9]);
    assert!(restored[0].has_text("from before"), "{}", restored[0].data);
    let said = "converted from the format without a file header to journal version 2";
    let logged = wait_for(Duration::from_secs(5), || {
        server.stderr_tail().iter().any(|line| line.contains(said))
    });
    assert!(logged, "{:?}", server.stderr_tail());
    let journal = std::fs::read(&store.0).unwrap();
    assert_eq!(journal, [&b"\xFFSSEchat\x02\0\0\0"[..], &old].concat());
}

// ---- metrics and the log ----

#[test]
fn chat_metrics_exist_move_and_pass_promtool() {
    let server = chat_server(|c| {
        c.history = 5;
        c.keepalive = Duration::from_millis(100);
    });
    let addr = server.addr;
    let m = metrics(addr);
    for family in [
        "feed_messages_published_total",
        "feed_publishes_refused_total",
        "feed_subscribers_live",
        "feed_messages_held",
        "feed_missed_notices_total",
    ] {
        assert!(m.contains(&format!("# TYPE {family} ")), "{family} in\n{m}");
    }
    assert_eq!(
        metric(&m, r#"feed_messages_published_total{feed="chat"}"#),
        0
    );
    assert_eq!(metric(&m, r#"feed_subscribers_live{feed="chat"}"#), 0);
    assert_eq!(metric(&m, r#"feed_messages_held{feed="chat"}"#), 0);

    let mut a = Subscriber::open(addr);
    let b = Subscriber::open(addr);
    assert!(wait_for(Duration::from_secs(5), || subscribers_live(addr) == 2));
    for i in 0..7 {
        publish(addr, &format!("message {i}"));
    }
    a.messages(7);
    refused(post_text(addr, "   "), 422);
    let mut c = Subscriber::resume(addr, "not-a-number");
    c.notice();
    let m = metrics(addr);
    assert_eq!(
        metric(&m, r#"feed_messages_published_total{feed="chat"}"#),
        7
    );
    assert_eq!(metric(&m, r#"feed_messages_held{feed="chat"}"#), 5);
    assert_eq!(refusals(&m, "empty"), 1);
    assert_eq!(metric(&m, r#"feed_missed_notices_total{feed="chat"}"#), 1);
    // The gauge may count a stream just after its first events went out.
    assert!(wait_for(Duration::from_secs(5), || subscribers_live(addr) == 3));

    drop((b, c));
    assert!(wait_for(Duration::from_secs(5), || subscribers_live(addr) == 1));
    common::promtool_check(&metrics(addr));
}

#[test]
fn each_publish_logs_one_line_with_its_id_and_client_but_never_the_text() {
    let server = ServerProcess::start_logging(&["--publish-limit", "0"]);
    let id = id_of(&post_form(server.addr, "name=ann&text=the+secret+words"));
    let line = format!("feed chat message {id} from 127.0.0.1:");
    assert!(
        wait_for(Duration::from_secs(5), || server
            .stderr_tail()
            .iter()
            .any(|l| l.contains(&line))),
        "{line} in {:#?}",
        server.stderr_tail()
    );
    let tail = server.stderr_tail();
    let logged: Vec<_> = tail.iter().filter(|l| l.contains(&line)).collect();
    assert_eq!(logged.len(), 1, "{tail:#?}");
    assert!(logged[0].contains("bytes"), "{tail:#?}");
    assert!(
        !tail.iter().any(|l| l.contains("secret")),
        "the text is never logged: {tail:#?}"
    );
}

#[test]
fn a_chat_streams_log_line_counts_its_messages_and_every_byte_it_sent() {
    let mut server = ServerProcess::start_logging(&["--publish-limit", "0"]);
    let addr = server.addr;
    let mut socket = connect(addr);
    write!(socket, "GET /chat/stream HTTP/1.1\r\nHost: {addr}\r\n\r\n").unwrap();
    let reader = std::thread::spawn(move || {
        let mut received = Vec::new();
        socket
            .read_to_end(&mut received)
            .expect("the stream to its end");
        received
    });
    assert!(wait_for(Duration::from_secs(5), || subscribers_live(addr) == 1));
    for text in ["one", "two"] {
        id_of(&post_text(addr, text));
    }
    // Both go out before the stop: the stop ends the body after what was written.
    assert!(wait_for(Duration::from_secs(5), || metric(
        &metrics(addr),
        "sse_events_sent_total"
    ) >= 2));
    server.signal("TERM");
    assert!(server.wait_exit(Duration::from_secs(5)).is_some());
    let received = reader.join().unwrap();
    let text = String::from_utf8_lossy(&received);
    assert!(text.ends_with("0\r\n\r\n"), "the body ended: {text}");
    let tail = server.stderr_tail();
    let closed = tail.iter().find(|line| line.contains("closed:"));
    assert!(
        closed.is_some_and(|line| line.contains(": 2 events,")),
        "{tail:#?}"
    );
    let logged = format!("GET /chat/stream 200 {}B ", received.len());
    assert!(
        tail.iter().any(|line| line.starts_with(&logged)),
        "{logged} in {tail:#?}"
    );
}

/// A blank `Last-Event-ID` is no position, as no header is: the page gets the recent messages
/// as the list's new content, not added to what it shows (which would show them twice).
#[test]
fn a_blank_last_event_id_is_answered_as_none() {
    let server = chat_server(|_| {});
    publish(server.addr, "one");
    publish(server.addr, "two");
    let fresh = Subscriber::open(server.addr).messages(2);
    let blank = Subscriber::open_with(server.addr, "Last-Event-ID: \r\n").messages(2);
    let data = |messages: &[Msg]| messages.iter().map(|m| m.data.clone()).collect::<Vec<_>>();
    assert_eq!(data(&blank), data(&fresh));
}
