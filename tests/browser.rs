//! The page in headless Chromium: the box counts, the buttons swap, Connect brings the box, the
//! console stays clean and no request leaves the server.
//!
//! Needs Debian's `chromium` (or `CHROMIUM=/path`). Without it the test says so and passes, except
//! under CI (`CI` set), where a missing browser is a failure.

mod common;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use headless_chrome::browser::tab::Tab;
use headless_chrome::protocol::cdp::types::Event;
use headless_chrome::protocol::cdp::{Log, Network, Runtime};
use headless_chrome::{Browser, LaunchOptions};

use common::TestServer;

fn chromium() -> Option<PathBuf> {
    let path = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    if path.exists() {
        return Some(path);
    }
    if std::env::var_os("CI").is_some() {
        panic!("{} not found: CI must run the browser test", path.display());
    }
    eprintln!("skipping the browser test: {} not found", path.display());
    None
}

fn launch(path: PathBuf) -> Browser {
    let args = [
        "--disable-gpu",
        "--disable-quic",
        "--disable-component-update",
        "--disable-domain-reliability",
        "--no-default-browser-check",
        "--no-pings",
    ];
    let options = LaunchOptions::default_builder()
        .path(Some(path))
        .headless(true)
        .sandbox(false)
        .args(args.iter().map(std::ffi::OsStr::new).collect())
        .idle_browser_timeout(Duration::from_secs(60))
        .build()
        .expect("launch options");
    Browser::new(options).expect("start chromium")
}

/// What the page did that the test checks at the end.
#[derive(Default)]
struct Observed {
    console_errors: Vec<String>,
    requested_urls: Vec<String>,
}

fn watch(tab: &Tab) -> Arc<Mutex<Observed>> {
    let observed = Arc::new(Mutex::new(Observed::default()));
    let sink = observed.clone();
    tab.add_event_listener(Arc::new(move |event: &Event| {
        let mut observed = sink
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match event {
            Event::LogEntryAdded(added) => {
                let entry = &added.params.entry;
                if entry.level == Log::LogEntryLevel::Error {
                    observed
                        .console_errors
                        .push(format!("{}: {:?}", entry.text, entry.url));
                }
            }
            Event::RuntimeConsoleAPICalled(call)
                if call.params.Type == Runtime::ConsoleAPICalledEventTypeOption::Error =>
            {
                observed
                    .console_errors
                    .push(format!("console.error {:?}", call.params.args));
            }
            Event::RuntimeExceptionThrown(thrown) => {
                observed
                    .console_errors
                    .push(format!("exception {:?}", thrown.params.exception_details));
            }
            Event::NetworkRequestWillBeSent(sent) => {
                observed
                    .requested_urls
                    .push(sent.params.request.url.clone());
            }
            _ => {}
        }
    }))
    .expect("event listener");
    tab.enable_log().expect("Log.enable");
    tab.enable_runtime().expect("Runtime.enable");
    tab.call_method(Network::Enable {
        max_total_buffer_size: None,
        max_resource_buffer_size: None,
        max_post_data_size: None,
        report_direct_socket_traffic: None,
        enable_durable_messages: None,
    })
    .expect("Network.enable");
    observed
}

/// The text of the first element matching `selector`, or `None` if there is none yet.
fn text_of(tab: &Tab, selector: &str) -> Option<String> {
    tab.find_element(selector).ok()?.get_inner_text().ok()
}

fn wait_for_text(
    tab: &Tab,
    selector: &str,
    within: Duration,
    wanted: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + within;
    loop {
        let text = text_of(tab, selector);
        if let Some(text) = &text
            && wanted(text)
        {
            return text.clone();
        }
        assert!(Instant::now() < deadline, "{selector} still shows {text:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

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

fn click(tab: &Tab, selector: &str) {
    tab.wait_for_element(selector)
        .unwrap_or_else(|e| panic!("{selector}: {e}"))
        .click()
        .unwrap_or_else(|e| panic!("click {selector}: {e}"));
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
