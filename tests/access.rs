//! Who may publish and who may read, over real TCP: `--token-file` guards `POST /feeds/NAME`
//! (401 with `WWW-Authenticate: Bearer` without the token) and leaves the chat's form open;
//! `--cors` lets the streams answer another origin's page, and changes no page's policy.

mod common;

use std::net::SocketAddr;

use common::{EventStream, TestServer, request};

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
    for path in ["/connect", "/chat/stream"] {
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
    // A preflight, if a browser sends one for `Last-Event-ID`, is answered for the origin.
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
        Some("Last-Event-ID")
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
