//! Headless Chromium for the page tests: start it with the network closed, watch what a tab logs
//! and requests, and read or click elements with deadlines.
//!
//! Needs Debian's `chromium` (or `CHROMIUM=/path`). Without it a test says so and passes, except
//! under CI (`CI` set), where a missing browser is a failure.

#![allow(dead_code)] // each test binary uses its own part of this module

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use headless_chrome::browser::tab::Tab;
use headless_chrome::protocol::cdp::types::Event;
use headless_chrome::protocol::cdp::{Log, Network, Runtime, Target};
use headless_chrome::{Browser, LaunchOptions};

/// Which htmx a page is written for: the server serves each page for both.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Flavor {
    /// `/`, `/on-demand`, `/chat`: htmx 2 and `htmx-ext-sse`.
    Htmx2,
    /// `/htmx4/`, `/htmx4/on-demand`, `/htmx4/chat`: htmx 4 and its own SSE extension.
    Htmx4,
}

impl Flavor {
    pub const BOTH: [Flavor; 2] = [Flavor::Htmx2, Flavor::Htmx4];

    /// The path of this flavor's page or fragment for `path` (as htmx 2 names it).
    pub fn page(self, path: &str) -> String {
        match self {
            Flavor::Htmx2 => path.to_owned(),
            Flavor::Htmx4 => format!("/htmx4{path}"),
        }
    }
}

/// The browser to run, or `None` (after saying so) when there is none outside CI.
pub fn chromium() -> Option<PathBuf> {
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

/// Starts headless Chromium with nothing that calls home, and with background tabs running at
/// full speed (a page that is not in front must still swap events as they come).
pub fn launch(path: PathBuf) -> Browser {
    let args = [
        "--disable-gpu",
        "--disable-quic",
        "--disable-component-update",
        "--disable-domain-reliability",
        "--no-default-browser-check",
        "--no-pings",
        "--disable-background-timer-throttling",
        "--disable-renderer-backgrounding",
        "--disable-backgrounding-occluded-windows",
    ];
    let options = LaunchOptions::default_builder()
        .path(Some(path))
        .headless(true)
        .sandbox(false)
        .args(args.iter().map(std::ffi::OsStr::new).collect())
        .idle_browser_timeout(Duration::from_secs(60))
        .build()
        .expect("launch options");
    let browser = Browser::new(options).expect("start chromium");
    keep_events_coming(&browser);
    browser
}

/// headless_chrome reads its connection to Chromium with a 100 ms timeout, holding the
/// connection while it waits, and sleeps 100 ms after a read that timed out: with nothing
/// coming from Chromium, each call waits up to 200 ms to be sent and answered, and a test of
/// a few hundred calls spends most of its time there. A page that logs every few milliseconds,
/// in a window of its own and with its console reported, keeps events coming, so every read
/// ends at once and every answer is taken as it arrives.
fn keep_events_coming(browser: &Browser) {
    let tab = new_window(browser);
    tab.navigate_to("data:text/html,<script>setInterval(() => console.debug(0), 2)</script>")
        .expect("the page that keeps events coming");
    tab.enable_runtime().expect("its console reported");
}

/// A new tab in a window of its own. Every window's tab is visible, as two pages side by side
/// are; of several tabs in one window only the front one is, and a page may stop work while it
/// is hidden (htmx 4's SSE extension closes its stream).
pub fn new_window(browser: &Browser) -> Arc<Tab> {
    browser
        .new_tab_with_options(Target::CreateTarget {
            url: "about:blank".to_owned(),
            left: None,
            top: None,
            width: None,
            height: None,
            window_state: None,
            browser_context_id: None,
            enable_begin_frame_control: None,
            new_window: Some(true),
            background: None,
            for_tab: None,
            hidden: None,
        })
        .expect("a new window")
}

/// What a tab did that a test checks: console errors and warnings (kept apart), dialogs, and
/// every request and response.
#[derive(Debug, Default)]
pub struct Observed {
    pub console_errors: Vec<String>,
    pub console_warnings: Vec<String>,
    /// The message of every `alert`, `confirm` or `prompt` the page opened (each is dismissed).
    pub dialogs: Vec<String>,
    pub requested_urls: Vec<String>,
    /// The URL and status of every response whose head arrived.
    pub responses: Vec<(String, u32)>,
}

impl Observed {
    /// The requests that did not go to `base` (e.g. `http://127.0.0.1:8000`).
    pub fn requests_outside(&self, base: &str) -> Vec<&String> {
        let origin = format!("{base}/");
        self.requested_urls
            .iter()
            .filter(|url| !url.starts_with(&origin))
            .collect()
    }
}

/// What a tab does, as it happens.
pub type Watch = Arc<Mutex<Observed>>;

/// Starts recording what `tab` logs, opens and requests.
pub fn watch(tab: &Arc<Tab>) -> Watch {
    let observed = Arc::new(Mutex::new(Observed::default()));
    let sink = observed.clone();
    // Weak: the tab holds this listener, which must not keep the tab alive.
    let weak_tab = Arc::downgrade(tab);
    tab.add_event_listener(Arc::new(move |event: &Event| {
        let mut observed = sink.lock().unwrap_or_else(PoisonError::into_inner);
        match event {
            Event::LogEntryAdded(added) => {
                let entry = &added.params.entry;
                let line = format!("{}: {:?}", entry.text, entry.url);
                match entry.level {
                    Log::LogEntryLevel::Error => observed.console_errors.push(line),
                    Log::LogEntryLevel::Warning => observed.console_warnings.push(line),
                    _ => {}
                }
            }
            Event::RuntimeConsoleAPICalled(call) => match call.params.Type {
                Runtime::ConsoleAPICalledEventTypeOption::Error
                | Runtime::ConsoleAPICalledEventTypeOption::Assert => observed
                    .console_errors
                    .push(format!("console.error {}", arguments(&call.params.args))),
                Runtime::ConsoleAPICalledEventTypeOption::Warning => observed
                    .console_warnings
                    .push(format!("console.warn {}", arguments(&call.params.args))),
                _ => {}
            },
            Event::RuntimeExceptionThrown(thrown) => {
                observed
                    .console_errors
                    .push(format!("exception {:?}", thrown.params.exception_details));
            }
            Event::PageJavascriptDialogOpening(opening) => {
                observed.dialogs.push(opening.params.message.clone());
                // A dialog left open blocks the page; dismiss it off the event thread.
                if let Some(tab) = weak_tab.upgrade() {
                    std::thread::spawn(move || {
                        let _ = tab.get_dialog().dismiss();
                    });
                }
            }
            Event::NetworkRequestWillBeSent(sent) => {
                observed
                    .requested_urls
                    .push(sent.params.request.url.clone());
            }
            Event::NetworkResponseReceived(received) => {
                let response = &received.params.response;
                observed
                    .responses
                    .push((response.url.clone(), response.status));
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

/// A console call's arguments as the console would print them, roughly.
fn arguments(args: &[Runtime::RemoteObject]) -> String {
    let shown: Vec<String> = args
        .iter()
        .map(|arg| match (&arg.value, &arg.description) {
            (Some(value), _) => value.to_string(),
            (None, Some(description)) => description.clone(),
            (None, None) => format!("{:?}", arg.Type),
        })
        .collect();
    shown.join(" ")
}

/// Everything recorded so far, leaving the record empty: what one phase of a test did.
pub fn take(watch: &Watch) -> Observed {
    std::mem::take(&mut *watch.lock().unwrap_or_else(PoisonError::into_inner))
}

/// No console errors or warnings, no dialog, no request away from the server.
pub fn assert_clean(phase: &str, observed: &Observed, base: &str) {
    assert!(
        observed.console_errors.is_empty(),
        "{phase}: console errors: {:#?}",
        observed.console_errors
    );
    assert!(
        observed.console_warnings.is_empty(),
        "{phase}: console warnings: {:#?}",
        observed.console_warnings
    );
    assert!(
        observed.dialogs.is_empty(),
        "{phase}: dialogs: {:#?}",
        observed.dialogs
    );
    let outside = observed.requests_outside(base);
    assert!(
        outside.is_empty(),
        "{phase}: requests that left the server: {outside:#?}"
    );
}

/// The text of the first element matching `selector`, or `None` if there is none yet.
pub fn text_of(tab: &Tab, selector: &str) -> Option<String> {
    tab.find_element(selector).ok()?.get_inner_text().ok()
}

/// Polls the text of `selector` every 50 ms until `wanted` accepts it; panics after `within`.
pub fn wait_for_text(
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

pub fn click(tab: &Tab, selector: &str) {
    tab.wait_for_element(selector)
        .unwrap_or_else(|e| panic!("{selector}: {e}"))
        .click()
        .unwrap_or_else(|e| panic!("click {selector}: {e}"));
}
