//! A feed on another site's page, in headless Chromium: a page served from a second origin (a
//! tiny server on another port) holds the markup a feed's page offers to copy, pasted as it is
//! (the scripts and the stream at the sse-htmx server's address, and for htmx 4 the
//! configuration it needs), and shows a value published to the feed;
//! for htmx 2 (`sse-connect`, an `EventSource` with credentials) and htmx 4 (`hx-sse:connect`,
//! a `fetch` with headers of its own, so a preflight).
//! With `--cors` naming that origin it works; without, the browser blocks the stream (and says
//! so), which is what the flag is for.
//!
//! Needs Debian's `chromium` (see `common::browser`).

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use headless_chrome::Browser;

use common::browser::{Flavor, chromium, launch, new_window, take, wait_for_text, watch};
use common::{TestServer, request, wait_for};

const FEED: &str = "temp";

/// Serves `page` to every request on `listener`, on a thread of its own, for as long as the
/// test runs.
fn serve_page(listener: TcpListener, page: String) {
    std::thread::spawn(move || {
        for connection in listener.incoming() {
            let Ok(mut connection) = connection else {
                continue;
            };
            let mut reader = BufReader::new(connection.try_clone().unwrap());
            let mut line = String::new();
            // The request's head, to its blank line; nothing else is read.
            while reader.read_line(&mut line).is_ok_and(|n| n > 0) && line != "\r\n" {
                line.clear();
            }
            let _ = write!(
                connection,
                "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{page}",
                page.len()
            );
        }
    });
}

/// The markup the feed's page offers to copy, asked for at `server`.
fn copied_markup(server: SocketAddr, flavor: Flavor) -> String {
    let page = request(server, "GET", &flavor.page(&format!("/feeds/{FEED}")), "").text();
    let code = page
        .split_once(r#"<pre class="copy"><code>"#)
        .and_then(|(_, rest)| rest.split_once("</code></pre>"))
        .expect("the feed's page offers markup to copy")
        .0;
    let markup = code
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&amp;", "&");
    let stream = format!(r#"connect="http://{server}/feeds/temp/stream""#);
    assert!(markup.contains(&stream), "{markup}");
    markup
}

fn publish(server: SocketAddr, text: &str) {
    let mut stream = common::connect(server);
    write!(
        stream,
        "POST /feeds/{FEED} HTTP/1.1\r\nHost: {server}\r\nConnection: close\r\n\
         Content-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\r\n{text}",
        text.len()
    )
    .unwrap();
    let response = common::read_head(&mut BufReader::new(stream));
    assert_eq!(response.status, 201);
}

/// A second origin's page holding the copied markup, and the sse-htmx server with `cors`.
fn sites(flavor: Flavor, cors: impl FnOnce(SocketAddr) -> Vec<String>) -> (TestServer, String) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let embedding = listener.local_addr().unwrap();
    let server = TestServer::with(|c| {
        c.cors = cors(embedding);
        c.publish_limit = 0;
    });
    let page = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>Another site</title></head><body><h1>The board</h1>{}</body></html>",
        copied_markup(server.addr, flavor)
    );
    serve_page(listener, page);
    (server, format!("http://{embedding}/"))
}

#[test]
fn a_page_on_another_origin_shows_a_feed() {
    let Some(path) = chromium() else { return };
    let browser = launch(path);
    for flavor in Flavor::BOTH {
        eprintln!("{flavor:?}");
        shown_with_cors_blocked_without(&browser, flavor);
    }
}

fn shown_with_cors_blocked_without(browser: &Browser, flavor: Flavor) {
    let (server, page) = sites(flavor, |origin| vec![format!("http://{origin}")]);
    publish(server.addr, "first");
    let tab = new_window(browser);
    let watched = watch(&tab);
    tab.navigate_to(&page)
        .unwrap()
        .wait_until_navigated()
        .unwrap();
    let within = Duration::from_secs(5);
    wait_for_text(&tab, "#feed-newest", within, |text| text.contains("first"));
    publish(server.addr, "21.5");
    wait_for_text(&tab, "#feed-newest", within, |text| text.contains("21.5"));
    let observed = take(&watched);
    assert!(
        observed.console_errors.is_empty(),
        "{:#?}",
        observed.console_errors
    );
    let stream = format!("http://{}/feeds/{FEED}/stream", server.addr);
    assert!(
        observed
            .responses
            .iter()
            .any(|(url, status)| *url == stream && *status == 200),
        "{:#?}",
        observed.responses
    );
    tab.close(false).unwrap();

    // Without --cors: the page loads the scripts, and the browser keeps the stream from it.
    let (server, page) = sites(flavor, |_| Vec::new());
    publish(server.addr, "unseen");
    let tab = new_window(browser);
    let watched = watch(&tab);
    tab.navigate_to(&page)
        .unwrap()
        .wait_until_navigated()
        .unwrap();
    let mut errors = Vec::new();
    let blocked = wait_for(within, || {
        errors.extend(take(&watched).console_errors);
        errors.iter().any(|e| e.contains("CORS"))
    });
    assert!(blocked, "{errors:#?}");
    let shown = tab
        .find_element("#feed-newest")
        .unwrap()
        .get_inner_text()
        .unwrap();
    assert!(!shown.contains("unseen"), "{shown}");
}
