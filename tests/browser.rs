//! The page in headless Chromium: the box counts, the buttons swap, Connect brings the box, the
//! console stays clean and no request leaves the server.
//!
//! Needs Debian's `chromium` (see `common::browser`).

mod common;

use std::time::{Duration, Instant};

use headless_chrome::browser::tab::Tab;

use common::TestServer;
use common::browser::{chromium, click, launch, text_of, wait_for_text, watch};

/// The N of "This is N." in the box, if it shows one.
fn counter(tab: &Tab) -> Option<u64> {
    let text = text_of(tab, "#live-box")?;
    text.trim()
        .strip_prefix("This is ")?
        .strip_suffix('.')?
        .parse()
        .ok()
}

/// Watches the box for `within` and returns the distinct values it showed, in order.
fn counter_values(tab: &Tab, within: Duration) -> Vec<u64> {
    let deadline = Instant::now() + within;
    let mut seen: Vec<u64> = Vec::new();
    while Instant::now() < deadline {
        if let Some(n) = counter(tab)
            && seen.last() != Some(&n)
        {
            seen.push(n);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    seen
}

fn assert_increasing(values: &[u64]) {
    assert!(
        values.len() >= 3,
        "the box showed {values:?}: at least three values expected"
    );
    assert!(
        values.windows(2).all(|w| w[0] < w[1]),
        "the box counted {values:?}"
    );
}

#[test]
fn page_counts_swaps_buttons_and_connects_on_demand() {
    let Some(path) = chromium() else { return };
    let server = TestServer::start(Duration::from_secs(1));
    let base = format!("http://{}", server.addr);
    let browser = launch(path);
    let tab = browser.new_tab().expect("tab");
    let observed = watch(&tab);

    // The auto-connect page: the box counts once a second.
    tab.navigate_to(&format!("{base}/"))
        .unwrap()
        .wait_until_navigated()
        .unwrap();
    assert_increasing(&counter_values(&tab, Duration::from_secs(4)));

    // Pong becomes Ping, and Ping becomes Pong again.
    click(&tab, r#"button[hx-post="/pong"]"#);
    assert_eq!(
        wait_for_text(
            &tab,
            r#"button[hx-post="/ping"]"#,
            Duration::from_secs(3),
            |t| t == "Ping"
        ),
        "Ping"
    );
    click(&tab, r#"button[hx-post="/ping"]"#);
    assert_eq!(
        wait_for_text(
            &tab,
            r#"button[hx-post="/pong"]"#,
            Duration::from_secs(3),
            |t| t == "Pong"
        ),
        "Pong"
    );

    // The on-demand page: no box until Connect is clicked, then the box arrives and counts.
    tab.navigate_to(&format!("{base}/on-demand"))
        .unwrap()
        .wait_until_navigated()
        .unwrap();
    assert!(
        tab.find_element("#live-box").is_err(),
        "no box before Connect"
    );
    click(&tab, r#"button[hx-post="/start-connection"]"#);
    tab.wait_for_element("#live-box")
        .expect("Connect brings the box");
    assert!(
        tab.find_element(r#"button[hx-post="/start-connection"]"#)
            .is_err(),
        "Connect was swapped out"
    );
    assert_increasing(&counter_values(&tab, Duration::from_secs(4)));
    click(&tab, r#"button[hx-post="/pong"]"#);
    wait_for_text(
        &tab,
        r#"button[hx-post="/ping"]"#,
        Duration::from_secs(3),
        |t| t == "Ping",
    );

    let observed = observed.lock().unwrap();
    assert!(
        observed.console_errors.is_empty(),
        "console errors: {:#?}",
        observed.console_errors
    );
    assert!(
        observed.console_warnings.is_empty(),
        "console warnings: {:#?}",
        observed.console_warnings
    );
    assert!(
        observed
            .requested_urls
            .iter()
            .any(|url| url.starts_with(&format!("{base}/connect"))),
        "the page opened the stream: {:#?}",
        observed.requested_urls
    );
    let outside: Vec<_> = observed
        .requested_urls
        .iter()
        .filter(|url| !url.starts_with(&format!("{base}/")))
        .collect();
    assert!(
        outside.is_empty(),
        "requests that left the server: {outside:#?}"
    );
}
