//! The pages in headless Chromium, in both flavors (htmx 2 at `/`, htmx 4 at `/htmx4/`): the box
//! counts, the buttons swap, Connect brings the box, the console stays clean and no request
//! leaves the server. And a first connect at capacity: the page keeps the 503 out of the box and
//! connects by itself once a slot is free.
//!
//! Needs Debian's `chromium` (see `common::browser`).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use headless_chrome::Browser;
use headless_chrome::browser::tab::Tab;

use common::browser::{Flavor, Watch, assert_clean, chromium, click, launch, take, text_of, watch};
use common::{EventStream, TestServer, wait_for};

/// What the box shows until its first event.
const INITIAL: &str =
    "Contents of this box will be updated in real time with every event from the server.";

#[test]
fn pages_count_swap_buttons_and_connect_on_demand() {
    let Some(path) = chromium() else { return };
    let browser = launch(path);
    for flavor in Flavor::BOTH {
        page_counts_swaps_buttons_and_connects_on_demand(&browser, flavor);
    }
}

#[test]
fn a_first_connect_at_capacity_connects_once_a_slot_is_free() {
    let Some(path) = chromium() else { return };
    let browser = launch(path);
    for flavor in Flavor::BOTH {
        first_connect_at_capacity(&browser, flavor);
    }
}

fn page_counts_swaps_buttons_and_connects_on_demand(browser: &Browser, flavor: Flavor) {
    let server = TestServer::start(Duration::from_secs(1));
    let base = format!("http://{}", server.addr);
    let (tab, tab_watch) = open(browser, &format!("{base}{}", flavor.page("/")));

    // The auto-connect page: the box counts once a second.
    assert_increasing(flavor, &counter_values(&tab, Duration::from_secs(5)));

    // Pong becomes Ping, and Ping becomes Pong again.
    click(&tab, r#"button[hx-post="/pong"]"#);
    wait_for_button(&tab, flavor, "/ping", "Ping");
    click(&tab, r#"button[hx-post="/ping"]"#);
    wait_for_button(&tab, flavor, "/pong", "Pong");
    let on_load = take(&tab_watch);
    assert!(
        on_load
            .requested_urls
            .iter()
            .any(|url| url.starts_with(&format!("{base}/connect"))),
        "{flavor:?}: the page opened the stream: {:#?}",
        on_load.requested_urls
    );
    assert_clean(&format!("{flavor:?}, the live box"), &on_load, &base);

    // The on-demand page: no box until Connect is clicked, then the box arrives and counts.
    navigate(&tab, &format!("{base}{}", flavor.page("/on-demand")));
    assert!(
        tab.find_element("#live-box").is_err(),
        "{flavor:?}: no box before Connect"
    );
    let connect = format!(r#"button[hx-post="{}"]"#, flavor.page("/start-connection"));
    click(&tab, &connect);
    tab.wait_for_element("#live-box")
        .unwrap_or_else(|e| panic!("{flavor:?}: Connect brings the box: {e}"));
    assert!(
        tab.find_element(&connect).is_err(),
        "{flavor:?}: Connect was swapped out"
    );
    assert_increasing(flavor, &counter_values(&tab, Duration::from_secs(5)));
    click(&tab, r#"button[hx-post="/pong"]"#);
    wait_for_button(&tab, flavor, "/ping", "Ping");

    let on_demand = take(&tab_watch);
    assert!(
        on_demand
            .requested_urls
            .iter()
            .any(|url| url.starts_with(&format!("{base}/connect"))),
        "{flavor:?}: Connect opened the stream: {:#?}",
        on_demand.requested_urls
    );
    assert_clean(&format!("{flavor:?}, on demand"), &on_demand, &base);
    tab.close(false).expect("close tab");
}

/// The only stream slot is taken by a raw client when the page opens: the page's `/connect` is
/// answered 503, which must not show in the box; once the slot is free, the box counts without a
/// reload.
fn first_connect_at_capacity(browser: &Browser, flavor: Flavor) {
    let server = TestServer::with(|c| c.max_streams = Some(1));
    let base = format!("http://{}", server.addr);
    let holder = EventStream::open(server.addr);
    assert_eq!(holder.head.status, 200, "the raw client holds the slot");
    assert_eq!(server.live_streams(), 1);

    let (tab, tab_watch) = open(browser, &format!("{base}{}", flavor.page("/")));
    tab.evaluate("window.loadedOnce = true", false)
        .expect("mark the page");
    // Held until the page was refused twice (it tried again at capacity) and for 3 s at least;
    // the box keeps its first text all along.
    let opened = Instant::now();
    let deadline = opened + Duration::from_secs(15);
    while refused_connects(&tab_watch) < 2 || opened.elapsed() < Duration::from_secs(3) {
        let shown = text_of(&tab, "#live-box");
        assert_eq!(
            shown.as_deref().map(str::trim),
            Some(INITIAL),
            "{flavor:?}: the box at capacity"
        );
        assert!(
            Instant::now() < deadline,
            "{flavor:?}: the page did not try /connect twice at capacity: {:#?}",
            tab_watch.lock().unwrap().responses
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let refused = refused_connects(&tab_watch);

    drop(holder);
    let freed = Instant::now();
    assert!(
        wait_for(Duration::from_secs(2), || server.live_streams() == 0),
        "the raw client's stream ended"
    );
    let deadline = freed + Duration::from_secs(10);
    loop {
        let shown = text_of(&tab, "#live-box");
        if shown.as_deref().and_then(parse_counter).is_some() {
            break;
        }
        assert_eq!(
            shown.as_deref().map(str::trim),
            Some(INITIAL),
            "{flavor:?}: the box before its first event"
        );
        assert!(
            Instant::now() < deadline,
            "{flavor:?}: the box did not connect within 10 s of the slot being free"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!(
        "{flavor:?}: refused {refused} times at capacity, connected {:?} after the slot was free",
        freed.elapsed()
    );
    assert_increasing(flavor, &counter_values(&tab, Duration::from_secs(5)));
    let same_page = tab
        .evaluate("window.loadedOnce === true", false)
        .expect("read the mark");
    assert_eq!(
        same_page.value.and_then(|value| value.as_bool()),
        Some(true),
        "{flavor:?}: the page was not reloaded"
    );

    // The refused stream logs errors in the browser: printed, not asserted.
    let observed = take(&tab_watch);
    eprintln!(
        "{flavor:?} at capacity: console errors {:#?}, warnings {:#?}",
        observed.console_errors, observed.console_warnings
    );
    assert!(observed.dialogs.is_empty(), "{:#?}", observed.dialogs);
    let outside = observed.requests_outside(&base);
    assert!(
        outside.is_empty(),
        "{flavor:?}: requests that left the server: {outside:#?}"
    );
    tab.close(false).expect("close tab");
}

// --- the page -----------------------------------------------------------------------------

/// A new tab, watched from the start, on `url`.
fn open(browser: &Browser, url: &str) -> (Arc<Tab>, Watch) {
    let tab = browser.new_tab().expect("tab");
    let tab_watch = watch(&tab);
    navigate(&tab, url);
    (tab, tab_watch)
}

fn navigate(tab: &Tab, url: &str) {
    tab.navigate_to(url)
        .unwrap_or_else(|e| panic!("navigate to {url}: {e}"))
        .wait_until_navigated()
        .unwrap_or_else(|e| panic!("load {url}: {e}"));
}

/// The N of "This is N." in the box, if it shows one.
fn counter(tab: &Tab) -> Option<u64> {
    parse_counter(&text_of(tab, "#live-box")?)
}

/// The N of "This is N.".
fn parse_counter(text: &str) -> Option<u64> {
    text.trim()
        .strip_prefix("This is ")?
        .strip_suffix('.')?
        .parse()
        .ok()
}

/// Watches the box until it has shown three distinct values, or for `within`, and returns the
/// distinct values it showed, in order.
fn counter_values(tab: &Tab, within: Duration) -> Vec<u64> {
    let deadline = Instant::now() + within;
    let mut seen: Vec<u64> = Vec::new();
    while seen.len() < 3 && Instant::now() < deadline {
        if let Some(n) = counter(tab)
            && seen.last() != Some(&n)
        {
            seen.push(n);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    seen
}

fn assert_increasing(flavor: Flavor, values: &[u64]) {
    assert!(
        values.len() >= 3,
        "{flavor:?}: the box showed {values:?}: at least three values expected"
    );
    assert!(
        values.windows(2).all(|w| w[0] < w[1]),
        "{flavor:?}: the box counted {values:?}"
    );
}

/// Waits for the button that posts to `post` to read `text`.
fn wait_for_button(tab: &Tab, flavor: Flavor, post: &str, text: &str) {
    let selector = format!(r#"button[hx-post="{post}"]"#);
    assert!(
        wait_for(Duration::from_secs(3), || text_of(tab, &selector)
            .is_some_and(|shown| shown == text)),
        "{flavor:?}: {selector} shows {:?}, not {text:?}",
        text_of(tab, &selector)
    );
}

/// How many `/connect` responses the tab got that were not 200.
fn refused_connects(watch: &Watch) -> usize {
    watch
        .lock()
        .unwrap()
        .responses
        .iter()
        .filter(|(url, status)| url.ends_with("/connect") && *status != 200)
        .count()
}
