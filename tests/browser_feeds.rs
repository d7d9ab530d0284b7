//! A feed's page in headless Chromium against the real server, in both flavors (htmx 2 at
//! `/feeds/NAME`, htmx 4 at `/htmx4/feeds/NAME`): it opens on the history with the newest
//! message large and the newest of the list in sight; a message published by a script shows in
//! both places within a second, still in sight; a page opened before its feed exists shows the
//! first message when it comes. The console stays clean and no request leaves the server.
//!
//! Needs Debian's `chromium` (see `common::browser`). One test runs the parts in turn: Chromium
//! processes in parallel would blur the one-second bound.

mod common;

use std::io::{BufReader, Read, Write};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use headless_chrome::Browser;
use headless_chrome::browser::tab::Tab;

use common::TestServer;
use common::browser::{
    Flavor, Watch, assert_clean, chromium, launch, new_window, take, wait_for_text, watch,
};

#[test]
fn a_feed_page_in_the_browser() {
    let Some(path) = chromium() else { return };
    let browser = launch(path);
    for flavor in Flavor::BOTH {
        eprintln!("{flavor:?}: history, then live");
        history_then_live(&browser, flavor);
        eprintln!("{flavor:?}: a feed to come");
        a_feed_to_come(&browser, flavor);
    }
}

fn history_then_live(browser: &Browser, flavor: Flavor) {
    let server = TestServer::with(|c| c.publish_limit = 0);
    let base = format!("http://{}", server.addr);
    // More than the list's box holds, so that only a scrolled list shows the newest.
    for i in 1..=30 {
        publish(
            server.addr,
            "news",
            &format!("item {i}\nwith a second line"),
        );
    }
    let (tab, tab_watch) = open_feed(browser, &base, flavor, "news");
    wait_for_text(
        &tab,
        "#feed-newest .newest",
        Duration::from_secs(5),
        |text| text.starts_with("item 30"),
    );
    assert_eq!(count(&tab, "#feed-log article"), 30);
    if let Err(why) = newest_in_sight(&tab) {
        panic!("the list opens on its newest: {why}");
    }

    let published = Instant::now();
    publish(server.addr, "news", "breaking");
    wait_for_text(
        &tab,
        "#feed-newest .newest",
        Duration::from_secs(1),
        |text| text == "breaking",
    );
    eprintln!("shown {:?} after the publish", published.elapsed());
    assert_eq!(count(&tab, "#feed-log article"), 31);
    assert_eq!(
        eval(
            &tab,
            "document.querySelector('#feed-log article:last-child .text').textContent"
        ),
        "breaking"
    );
    if let Err(why) = newest_in_sight(&tab) {
        panic!("the list follows the newest: {why}");
    }
    // A long message scrolls inside the large box rather than pushing the list away.
    let long = "a long message ".repeat(120);
    publish(server.addr, "news", &long);
    wait_for_text(
        &tab,
        "#feed-newest .newest",
        Duration::from_secs(1),
        |text| text.starts_with("a long message"),
    );
    if let Err(why) = newest_in_sight(&tab) {
        panic!("a long newest message: {why}");
    }
    assert_clean(&format!("{flavor:?}, history"), &take(&tab_watch), &base);
    tab.close(false).expect("close tab");
}

fn a_feed_to_come(browser: &Browser, flavor: Flavor) {
    let server = TestServer::with(|c| c.publish_limit = 0);
    let base = format!("http://{}", server.addr);
    let (tab, tab_watch) = open_feed(browser, &base, flavor, "later");
    assert!(
        eval(&tab, "document.querySelector('#feed-newest').textContent").contains("No message yet")
    );
    publish(server.addr, "later", "the first");
    wait_for_text(
        &tab,
        "#feed-newest .newest",
        Duration::from_secs(1),
        |text| text == "the first",
    );
    assert_eq!(count(&tab, "#feed-log article"), 1);
    assert_clean(&format!("{flavor:?}, to come"), &take(&tab_watch), &base);
    tab.close(false).expect("close tab");
}

/// A new window on the feed's page in `flavor`, once its stream has answered.
fn open_feed(browser: &Browser, base: &str, flavor: Flavor, feed: &str) -> (Arc<Tab>, Watch) {
    let tab = new_window(browser);
    let tab_watch = watch(&tab);
    tab.navigate_to(&format!("{base}{}", flavor.page(&format!("/feeds/{feed}"))))
        .expect("navigate")
        .wait_until_navigated()
        .expect("navigated");
    let stream = format!("/feeds/{feed}/stream");
    let opened = || {
        tab_watch
            .lock()
            .unwrap()
            .responses
            .iter()
            .any(|(url, status)| url.ends_with(&stream) && *status == 200)
    };
    assert!(
        common::wait_for(Duration::from_secs(5), opened),
        "no stream: {:#?}",
        tab_watch.lock().unwrap()
    );
    (tab, tab_watch)
}

/// Whether the end of the list's last message is inside both its scrolling box and the window;
/// if not, the positions, to say why.
fn newest_in_sight(tab: &Tab) -> Result<(), String> {
    let script = "(() => {
        const last = document.querySelector('#feed-log article:last-child').getBoundingClientRect();
        const box = document.querySelector('.chat-scroll').getBoundingClientRect();
        // Its end, for a message taller than the box.
        const seen = last.bottom > box.top && last.bottom <= box.bottom + 1
            && last.bottom <= window.innerHeight;
        return seen ? 'yes' : `last ${last.top}..${last.bottom}, box ${box.top}..${box.bottom}, `
            + `window ${window.innerHeight}`;
    })()";
    match eval(tab, script).as_str() {
        "yes" => Ok(()),
        why => Err(why.to_owned()),
    }
}

fn count(tab: &Tab, selector: &str) -> usize {
    eval(
        tab,
        &format!("String(document.querySelectorAll('{selector}').length)"),
    )
    .parse()
    .expect("a count")
}

fn eval(tab: &Tab, expression: &str) -> String {
    let result = tab
        .evaluate(expression, false)
        .unwrap_or_else(|e| panic!("{expression}: {e}"));
    match result.value.as_ref().and_then(|value| value.as_str()) {
        Some(text) => text.to_owned(),
        None => panic!("{expression}: not a string but {result:?}"),
    }
}

/// Publishes `text` the way a script would (text/plain).
fn publish(addr: SocketAddr, feed: &str, text: &str) {
    let mut stream = common::connect(addr);
    write!(
        stream,
        "POST /feeds/{feed} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\r\n{text}",
        text.len()
    )
    .unwrap();
    let mut reader = BufReader::new(stream);
    let mut response = common::read_head(&mut reader);
    reader.read_to_end(&mut response.body).expect("read body");
    assert_eq!(response.status, 201, "{}", response.text());
}
