//! Who may publish and who may read, over real TCP: `--token-file` guards `POST /feeds/NAME`
//! (401 with `WWW-Authenticate: Bearer` without the token) and leaves the chat's form open;
//! `--cors` lets the streams answer another origin's page, and changes no page's policy.

mod common;

use std::io::{BufReader, Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use common::{EventStream, Response, TestServer, connect, read_head, request};

/// `POST path` with a plain-text body and the given header lines.
fn post(addr: SocketAddr, path: &str, headers: &str, body: &str) -> Response {
    let mut stream = connect(addr);
    let head = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n{headers}\r\n",
        body.len()
    );
    stream.write_all(head.as_bytes()).unwrap();
    let _ = stream.write_all(body.as_bytes());
    let mut reader = BufReader::new(stream);
    let mut response = read_head(&mut reader);
    reader.read_to_end(&mut response.body).expect("read body");
    response
}

/// A token file only its owner can read, removed when dropped.
struct TokenFile(PathBuf);

impl TokenFile {
    fn new(test: &str, text: &str) -> TokenFile {
        use std::os::unix::fs::PermissionsExt;
        let path = std::env::temp_dir().join(format!("sse-htmx-{}-{test}", std::process::id()));
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        TokenFile(path)
    }
}

impl Drop for TokenFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn with_a_token_file_publishing_to_a_feed_needs_the_bearer_token() {
    let file = TokenFile::new("bearer", "Zm9vYmFy-s3cret\nnot part of it\n");
    let server = TestServer::with(|c| {
        c.token_file = Some(file.0.clone());
        c.publish_limit = 0;
    });
    let addr = server.addr;
    for (headers, why) in [
        ("", "no token"),
        ("Authorization: Bearer Zm9vYmFy-s3cre\r\n", "a prefix"),
        ("Authorization: Bearer Zm9vYmFy-s3cret!\r\n", "longer"),
        ("Authorization: Basic Zm9vYmFy-s3cret\r\n", "another scheme"),
    ] {
        let refused = post(addr, "/feeds/news", headers, "hi");
        assert_eq!(refused.status, 401, "{why}: {}", refused.text());
        assert_eq!(refused.header("WWW-Authenticate"), Some("Bearer"), "{why}");
    }
    let feeds = request(addr, "GET", "/feeds", "").text();
    assert!(!feeds.contains("/feeds/news"), "nothing was published");
    let metrics = request(addr, "GET", "/metrics", "").text();
    assert!(
        metrics.contains("feed_publishes_refused_total{reason=\"unauthorized\"} 4\n"),
        "{metrics}"
    );
    let token = "Authorization: Bearer Zm9vYmFy-s3cret\r\n";
    assert_eq!(post(addr, "/feeds/news", token, "hi").status, 201);
    // The chat's feed path is a feed's, but the chatroom's own form stays open to its page.
    assert_eq!(post(addr, "/feeds/chat", "", "hi").status, 401);
    assert_eq!(
        post(addr, "/chat/messages", "", "from the form").status,
        201
    );
    // Reading needs no token.
    assert_eq!(request(addr, "GET", "/feeds/news", "").status, 200);
}

/// Guessing the token goes no faster than `--publish-limit`: each refused token counts against
/// the client's rate as a message would, and past it the answer is `429` with `Retry-After`, for
/// a wrong token and the right one alike, until the rate allows again.
#[test]
fn wrong_tokens_count_against_the_publish_limit() {
    let file = TokenFile::new("guesses", "s3cret\n");
    // One a second, in bursts of up to four.
    let server = TestServer::with(|c| {
        c.token_file = Some(file.0.clone());
        c.publish_limit = 1;
    });
    let addr = server.addr;
    let wrong = "Authorization: Bearer guess\r\n";
    let statuses: Vec<u16> = (0..6)
        .map(|_| post(addr, "/feeds/news", wrong, "hi").status)
        .collect();
    assert_eq!(statuses, [401, 401, 401, 401, 429, 429]);
    let right = "Authorization: Bearer s3cret\r\n";
    let limited = post(addr, "/feeds/news", right, "hi");
    assert_eq!(limited.status, 429, "{}", limited.text());
    assert!(limited.header("Retry-After").is_some());
    assert_eq!(limited.header("WWW-Authenticate"), None);
    let metrics = request(addr, "GET", "/metrics", "").text();
    assert!(
        metrics.contains("feed_publishes_refused_total{reason=\"unauthorized\"} 6\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("feed_publishes_refused_total{reason=\"rate_limited\"} 1\n"),
        "{metrics}"
    );
}

#[test]
fn a_token_file_others_can_read_is_a_warning_at_start() {
    use std::os::unix::fs::PermissionsExt;
    let file = TokenFile::new("readable", "s3cret\n");
    std::fs::set_permissions(&file.0, std::fs::Permissions::from_mode(0o644)).unwrap();
    let path = file.0.to_str().unwrap();
    let server = common::ServerProcess::start_logging(&["--token-file", path]);
    let warned = common::wait_for(Duration::from_secs(5), || {
        server
            .stderr_tail()
            .iter()
            .any(|line| line.contains("can be read by other users (mode 644)"))
    });
    assert!(warned, "{:?}", server.stderr_tail());
    assert!(
        !server
            .stderr_tail()
            .iter()
            .any(|line| line.contains("s3cret"))
    );
}

#[test]
fn without_a_token_file_anyone_may_publish() {
    let server = TestServer::with(|c| c.publish_limit = 0);
    assert_eq!(post(server.addr, "/feeds/news", "", "hi").status, 201);
}

/// The stream at `path` asked for from `origin`: its head, once it is open.
fn stream_head(addr: SocketAddr, path: &str, origin: &str) -> common::Response {
    let stream = EventStream::open_path(addr, path, &format!("Origin: {origin}\r\n"));
    assert_eq!(stream.head.status, 200, "{path}");
    stream.head
}

#[test]
fn a_listed_origin_may_read_the_streams_and_the_answer_varies_by_origin() {
    let server = TestServer::with(|c| {
        c.cors = vec![
            "http://board.example:8080".into(),
            "http://other.example".into(),
        ]
    });
    for path in ["/connect", "/chat/stream", "/feeds/temp/stream"] {
        let head = stream_head(server.addr, path, "http://board.example:8080");
        assert_eq!(
            head.header("Access-Control-Allow-Origin"),
            Some("http://board.example:8080"),
            "{path}"
        );
        assert_eq!(head.header("Vary"), Some("Origin"));
        assert_eq!(
            head.header("Access-Control-Allow-Credentials"),
            Some("true")
        );
        let head = stream_head(server.addr, path, "http://evil.example");
        assert_eq!(head.header("Access-Control-Allow-Origin"), None, "{path}");
        assert_eq!(
            head.header("Vary"),
            Some("Origin"),
            "a cache must not mix the two"
        );
    }
    // Pages are not streams: nothing changes for them, their policy included.
    let page = request(
        server.addr,
        "GET",
        "/chat",
        "Origin: http://board.example:8080\r\n",
    );
    assert_eq!(page.header("Access-Control-Allow-Origin"), None);
    let policy = page.header("Content-Security-Policy").unwrap();
    assert!(policy.contains("connect-src 'self'"), "{policy}");
    // A preflight (htmx 4 sends headers of its own; a reconnection sends `Last-Event-ID`) is
    // answered for the origin.
    let preflight = request(
        server.addr,
        "OPTIONS",
        "/chat/stream",
        "Origin: http://other.example\r\nAccess-Control-Request-Method: GET\r\n\
         Access-Control-Request-Headers: last-event-id\r\n",
    );
    assert_eq!(preflight.status, 204);
    assert_eq!(
        preflight.header("Access-Control-Allow-Origin"),
        Some("http://other.example")
    );
    assert_eq!(
        preflight.header("Access-Control-Allow-Headers"),
        Some("last-event-id")
    );
}

#[test]
fn any_origin_with_a_star_and_none_without_the_flag() {
    let any = TestServer::with(|c| c.cors = vec!["*".into()]);
    let head = stream_head(any.addr, "/chat/stream", "http://anywhere.example");
    // Echoed, not `*`: htmx's SSE extension asks with credentials, which `*` does not admit.
    assert_eq!(
        head.header("Access-Control-Allow-Origin"),
        Some("http://anywhere.example")
    );
    assert_eq!(
        head.header("Access-Control-Allow-Credentials"),
        Some("true")
    );
    let closed = TestServer::with(|_| {});
    let head = stream_head(closed.addr, "/chat/stream", "http://anywhere.example");
    assert_eq!(head.header("Access-Control-Allow-Origin"), None);
    assert_eq!(head.header("Vary"), None);
}
