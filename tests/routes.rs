//! Everything but the stream, over real TCP: pages, buttons, assets, errors.

mod common;

use std::time::Duration;

use common::{TestServer, request};

fn server() -> TestServer {
    TestServer::start(Duration::from_millis(50))
}

#[test]
fn pong_returns_ping_and_ping_returns_pong() {
    let server = server();
    let pong = request(server.addr, "POST", "/pong", "");
    assert_eq!(pong.status, 200);
    assert_eq!(
        pong.header("Content-Type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(
        pong.text(),
        r#"<button hx-post="/ping" hx-swap="outerHTML">Ping</button>"#
    );
    let ping = request(server.addr, "POST", "/ping", "");
    assert_eq!(
        ping.text(),
        r#"<button hx-post="/pong" hx-swap="outerHTML">Pong</button>"#
    );
}

#[test]
fn start_connection_returns_the_live_box() {
    let server = server();
    let fragment = request(server.addr, "POST", "/start-connection", "").text();
    assert!(fragment.starts_with("<div "), "{fragment}");
    assert!(fragment.contains(r#"hx-ext="sse" sse-connect="/connect" sse-swap="message""#));
    assert!(!fragment.contains("<html"), "a fragment, not a page");
}

#[test]
fn auto_connect_page_has_the_box_and_pong() {
    let server = server();
    let page = request(server.addr, "GET", "/", "");
    assert_eq!(page.status, 200);
    let html = page.text();
    assert!(html.starts_with("<!DOCTYPE html>"));
    assert!(html.contains(r#"sse-connect="/connect""#));
    assert!(html.contains(r#"<button hx-post="/pong" hx-swap="outerHTML">Pong</button>"#));
}

#[test]
fn on_demand_page_has_connect_and_pong_but_no_box() {
    let server = server();
    let html = request(server.addr, "GET", "/on-demand", "").text();
    assert!(
        html.contains(
            r#"<button hx-post="/start-connection" hx-swap="outerHTML">Connect</button>"#
        )
    );
    assert!(html.contains(r#"hx-post="/pong""#));
    assert!(!html.contains("sse-connect"));
}

#[test]
fn assets_are_served_with_type_and_cache_headers() {
    let server = server();
    for (path, content_type) in [
        ("/assets/htmx.min.js", "text/javascript; charset=utf-8"),
        ("/assets/sse.min.js", "text/javascript; charset=utf-8"),
        ("/assets/app.css", "text/css; charset=utf-8"),
    ] {
        let asset = request(server.addr, "GET", path, "");
        assert_eq!(asset.status, 200, "{path}");
        assert_eq!(asset.header("Content-Type"), Some(content_type), "{path}");
        assert!(
            asset
                .header("Cache-Control")
                .unwrap()
                .contains("max-age=31536000")
        );
        assert!(!asset.body.is_empty());
        let etag = asset.header("ETag").expect("ETag").to_owned();
        assert!(etag.starts_with('"') && etag.ends_with('"'));

        let again = request(
            server.addr,
            "GET",
            path,
            &format!("If-None-Match: {etag}\r\n"),
        );
        assert_eq!(again.status, 304, "{path}");
        assert_eq!(again.header("ETag"), Some(etag.as_str()));

        let other = request(server.addr, "GET", path, "If-None-Match: \"other\"\r\n");
        assert_eq!(other.status, 200);
    }
}

#[test]
fn pages_link_assets_on_this_server() {
    let server = server();
    let html = request(server.addr, "GET", "/", "").text();
    for src in html.split("src=\"").skip(1) {
        let url = &src[..src.find('"').unwrap()];
        assert!(url.starts_with("/assets/"), "{url}");
        assert_eq!(request(server.addr, "GET", url, "").status, 200, "{url}");
    }
}

#[test]
fn unknown_path_is_a_small_html_404() {
    let server = server();
    let missing = request(server.addr, "GET", "/nope/<b>", "");
    assert_eq!(missing.status, 404);
    assert_eq!(
        missing.header("Content-Type"),
        Some("text/html; charset=utf-8")
    );
    assert!(missing.text().contains("/nope/&lt;b&gt;"));
    assert_eq!(
        request(server.addr, "GET", "/assets/../Cargo.toml", "").status,
        404
    );
}

#[test]
fn wrong_method_is_405_with_allow() {
    let server = server();
    for (method, path, allow) in [
        ("GET", "/pong", "OPTIONS, POST"),
        ("GET", "/ping", "OPTIONS, POST"),
        ("GET", "/start-connection", "OPTIONS, POST"),
        ("POST", "/", "GET, HEAD, OPTIONS"),
        ("POST", "/connect", "GET, HEAD, OPTIONS"),
        ("POST", "/assets/htmx.min.js", "GET, HEAD, OPTIONS"),
    ] {
        let response = request(server.addr, method, path, "");
        assert_eq!(response.status, 405, "{method} {path}");
        assert_eq!(response.header("Allow"), Some(allow), "{method} {path}");
    }
}

#[test]
fn head_connect_is_the_stream_head_without_a_body() {
    let server = server();
    let head = request(server.addr, "HEAD", "/connect", "");
    assert_eq!(head.status, 200);
    assert_eq!(head.header("Content-Type"), Some("text/event-stream"));
    assert_eq!(server.live_streams(), 0, "no stream was started");
}
