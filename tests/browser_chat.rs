//! The chatroom in headless Chromium against the real server, in both flavors (htmx 2 at `/chat`,
//! htmx 4 at `/htmx4/chat`): a message posted in one page shows in both within a second and the
//! form comes back empty; markup in a message stays text; a reload shows the history once; the
//! list reads like a chat at 400 and 1000 px (see `layout`). With htmx 2, also: a stream that
//! drops (the server restarting with its store, once plainly and once behind a gateway answering
//! 502 meanwhile) duplicates nothing. The console stays clean and no request leaves the server.
//!
//! Needs Debian's `chromium` (see `common::browser`). One test runs the parts in turn, each with
//! its own server and pages: Chromium processes in parallel would blur the one-second bound.

mod common;
#[path = "browser_chat/layout.rs"]
mod layout;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use headless_chrome::Browser;
use headless_chrome::browser::tab::Tab;
use headless_chrome::protocol::cdp::Input;

use common::browser::{
    Flavor, Observed, Watch, assert_clean, chromium, launch, new_window, take, watch,
};
use common::{TestServer, wait_for};

/// How long a page may take to open its stream again after the server came back: the browser
/// retries after the server's `retry:` (3 s), htmx's extension after 0.5, 1, 2, 4 s...
const RECONNECT: Duration = Duration::from_secs(15);

const FORM: &str = "form#chat-form";
const TEXT_FIELD: &str = "form#chat-form textarea[name=text]";
const NAME_FIELD: &str = "form#chat-form input[name=name]";

/// One part of the test, run for a flavor with its own server and pages.
type Part = fn(&Browser, Flavor);

#[test]
fn chatroom_in_the_browser() {
    let Some(path) = chromium() else { return };
    let browser = launch(path);
    let parts: [(&str, Part); 5] = [
        ("two pages", a_message_shows_in_both_tabs_within_a_second),
        (
            "every interface",
            the_same_on_every_interface_through_the_hosts_address,
        ),
        ("markup", markup_in_a_message_is_text),
        ("reload", a_reload_shows_the_history_once),
        ("layout", layout::the_list_reads_like_a_chat),
    ];
    for flavor in Flavor::BOTH {
        for (name, part) in parts {
            eprintln!("{flavor:?}: {name}");
            let started = Instant::now();
            part(&browser, flavor);
            eprintln!("{flavor:?}: {name} took {:?}", started.elapsed());
        }
    }
    let started = Instant::now();
    a_restart_with_the_store_duplicates_nothing(&browser);
    eprintln!("Htmx2: restart took {:?}", started.elapsed());
}

fn a_message_shows_in_both_tabs_within_a_second(browser: &Browser, flavor: Flavor) {
    let server = chat_server(None);
    message_in_both_tabs(browser, flavor, &format!("http://{}", server.addr));
}

/// As a board is run: listening on every interface (`0.0.0.0` for htmx 2, the dual-stack `[::]`
/// for htmx 4) and reached through the host's own address, as from another machine.
fn the_same_on_every_interface_through_the_hosts_address(browser: &Browser, flavor: Flavor) {
    let Some(host) = common::host::own_ipv4() else {
        eprintln!("note: the host has no IPv4 address beside loopback; not tried");
        return;
    };
    let every_interface = match flavor {
        Flavor::Htmx2 => "0.0.0.0:0",
        Flavor::Htmx4 => "[::]:0",
    };
    let server = TestServer::with(|c| {
        c.addr = every_interface.parse().unwrap();
        c.publish_limit = 0;
    });
    let base = format!("http://{}", SocketAddr::new(host, server.addr.port()));
    message_in_both_tabs(browser, flavor, &base);
}

fn message_in_both_tabs(browser: &Browser, flavor: Flavor, base: &str) {
    let base = base.to_owned();
    let (first, first_watch) = open_chat(browser, &base, flavor);
    let (second, second_watch) = open_chat(browser, &base, flavor);

    let text = "hello from the first tab";
    let clicked = post_with_form(&first, "ann", text);
    let shown_after = wait_shown_within(&second, clicked, Duration::from_secs(1), text);
    eprintln!("the other tab showed the message {shown_after:?} after the click");
    wait_shown_within(&first, clicked, Duration::from_secs(1), text);
    for tab in [&first, &second] {
        let log = messages(tab);
        assert_eq!(log.len(), 1, "one message: {log:#?}");
        assert_eq!((log[0].name.as_str(), log[0].text.as_str()), ("ann", text));
    }

    // The form came back with the text emptied and the name kept, and it posts again.
    wait_until(
        &first,
        Duration::from_secs(3),
        "the text field emptied",
        |tab| field_value(tab, TEXT_FIELD).is_empty(),
    );
    assert_eq!(field_value(&first, NAME_FIELD), "ann", "the name is kept");
    let clicked = post_with_form(&first, "ann", "and again");
    wait_shown_within(&second, clicked, Duration::from_secs(1), "and again");
    wait_shown_within(&first, clicked, Duration::from_secs(1), "and again");
    for tab in [&first, &second] {
        assert_each_once(&messages(tab), 2);
    }

    assert_clean(
        &format!("{flavor:?}, two pages, first tab"),
        &take(&first_watch),
        &base,
    );
    assert_clean(
        &format!("{flavor:?}, two pages, second tab"),
        &take(&second_watch),
        &base,
    );
    close(first);
    close(second);
}

fn markup_in_a_message_is_text(browser: &Browser, flavor: Flavor) {
    let server = chat_server(None);
    let base = format!("http://{}", server.addr);
    let (first, first_watch) = open_chat(browser, &base, flavor);
    let (second, second_watch) = open_chat(browser, &base, flavor);

    let text = "<img src=x onerror=alert(1)>";
    let name = "<b>eve</b>";
    let clicked = post_with_form(&first, name, text);
    for tab in [&first, &second] {
        wait_shown_within(tab, clicked, Duration::from_secs(1), text);
        let log = messages(tab);
        assert_eq!(log.len(), 1, "{log:#?}");
        assert_eq!(log[0].name, name, "the name shows as typed");
        assert!(log[0].text.contains(text), "the text shows as typed");
    }
    // A plain message after it: when it shows, an <img> from the first would have been inserted
    // and would have asked for /x.
    let id = post_raw(server.addr, "bot", "after the markup");
    for tab in [&first, &second] {
        wait_until(tab, Duration::from_secs(3), "the plain message", |tab| {
            messages(tab).iter().any(|m| m.id == format!("msg-{id}"))
        });
        for selector in [
            "#chat-log img",
            "#chat-log script",
            "#chat-log .name *",
            "#chat-log .text *",
        ] {
            assert_eq!(count(tab, selector), 0, "{selector} in the page");
        }
    }
    for (tab, watch) in [("first", &first_watch), ("second", &second_watch)] {
        let observed = take(watch);
        assert!(
            !observed
                .requested_urls
                .iter()
                .any(|url| url.starts_with(&format!("{base}/x"))),
            "{flavor:?}, {tab} tab loaded the image: {:#?}",
            observed.requested_urls
        );
        assert_clean(&format!("{flavor:?}, markup, {tab} tab"), &observed, &base);
    }
    close(first);
    close(second);
}

fn a_reload_shows_the_history_once(browser: &Browser, flavor: Flavor) {
    let server = chat_server(None);
    let base = format!("http://{}", server.addr);
    let (tab, tab_watch) = open_chat(browser, &base, flavor);
    let mut ids: Vec<String> = (1..=5)
        .map(|n| post_raw(server.addr, "bot", &format!("message {n}")))
        .collect();
    wait_until(&tab, Duration::from_secs(3), "the five messages", |tab| {
        messages(tab).len() >= 5
    });
    assert_in_order(&messages(&tab), &ids);
    assert_clean(
        &format!("{flavor:?}, before the reload"),
        &take(&tab_watch),
        &base,
    );

    tab.reload(false, None).expect("reload");
    tab.wait_until_navigated().expect("reloaded");
    tab.wait_for_element(FORM)
        .expect("the form after the reload");
    wait_for_stream(&tab_watch, "after the reload", Duration::from_secs(5));
    // A live message after the reload: the history comes before it on the stream, so once it
    // shows, any second copy of the history would show too.
    ids.push(post_raw(server.addr, "bot", "after the reload"));
    wait_until(
        &tab,
        Duration::from_secs(3),
        "the message after the reload",
        |tab| messages(tab).len() >= 6,
    );
    assert_in_order(&messages(&tab), &ids);
    assert_clean(
        &format!("{flavor:?}, after the reload"),
        &take(&tab_watch),
        &base,
    );
    close(tab);
}

/// htmx 2 only: what it checks is how htmx 2's extension comes back (a new stream without
/// `Last-Event-ID` after a 502), and it is the longest part.
fn a_restart_with_the_store_duplicates_nothing(browser: &Browser) {
    let store = Store::new();
    let server = chat_server(Some(&store.0));
    let addr = server.addr;
    let base = format!("http://{addr}");
    let (first, first_watch) = open_chat(browser, &base, Flavor::Htmx2);
    let (second, second_watch) = open_chat(browser, &base, Flavor::Htmx2);
    let mut ids: Vec<String> = (1..=3)
        .map(|n| post_raw(addr, "bot", &format!("before the restart {n}")))
        .collect();
    for tab in [&first, &second] {
        wait_until(tab, Duration::from_secs(3), "three messages", |tab| {
            messages(tab).len() >= 3
        });
        assert_in_order(&messages(tab), &ids);
    }
    assert_clean("before the restart, first tab", &take(&first_watch), &base);
    assert_clean(
        "before the restart, second tab",
        &take(&second_watch),
        &base,
    );

    // The server stops (its streams end) and a new one starts on the same address with the same
    // store. The pages' streams drop, so this phase logs network errors: they are printed, not
    // asserted.
    server.stop().expect("the first server stops");
    let stopped = Instant::now();
    assert_no_connection_left(addr);
    let server = chat_server_at(addr, &store.0);
    wait_for_subscribers(addr, 2, "after the restart");
    eprintln!(
        "both pages reopened the stream {:?} after the stop",
        stopped.elapsed()
    );
    report_phase("restart", &take(&first_watch), &take(&second_watch), &base);

    let clicked = post_with_form(&second, "ann", "after the restart");
    for tab in [&first, &second] {
        wait_shown_within(tab, clicked, Duration::from_secs(1), "after the restart");
    }
    ids.push(id_of(&second, "after the restart"));
    for tab in [&first, &second] {
        assert_in_order(&messages(tab), &ids);
        assert_eq!(notice(tab), "", "nothing was missed");
    }
    assert_clean("after the restart, first tab", &take(&first_watch), &base);
    assert_clean("after the restart, second tab", &take(&second_watch), &base);

    // Once more, with a gateway answering 502 while the server is down: the browser then gives
    // the stream up, and htmx's extension opens a new one, without Last-Event-ID, so the server
    // sends its history again and the page must replace its list, not append to it.
    server.stop().expect("the second server stops");
    let stopped = Instant::now();
    assert_no_connection_left(addr);
    let gateway = Gateway::start(addr);
    for (tab, watch) in [("first", &first_watch), ("second", &second_watch)] {
        assert!(
            wait_for(RECONNECT, || refused_streams(watch) >= 2),
            "the {tab} tab did not try the stream twice through the gateway: {:#?}",
            watch.lock().unwrap().responses
        );
    }
    let asked = gateway.stop();
    assert!(
        asked
            .iter()
            .any(|(path, resumed)| path == "/chat/stream" && !resumed),
        "htmx opened a new stream (no Last-Event-ID): {asked:?}"
    );
    eprintln!("the gateway answered 502 to: {asked:?}");
    let server = chat_server_at(addr, &store.0);
    wait_for_subscribers(addr, 2, "after the gateway");
    eprintln!(
        "both pages reopened the stream {:?} after the second stop",
        stopped.elapsed()
    );
    report_phase("gateway", &take(&first_watch), &take(&second_watch), &base);

    let clicked = post_with_form(&first, "ann", "after the gateway");
    for tab in [&first, &second] {
        wait_shown_within(tab, clicked, Duration::from_secs(1), "after the gateway");
    }
    ids.push(id_of(&first, "after the gateway"));
    for tab in [&first, &second] {
        assert_in_order(&messages(tab), &ids);
        assert_eq!(notice(tab), "", "nothing was missed");
    }
    assert_clean("after the gateway, first tab", &take(&first_watch), &base);
    assert_clean("after the gateway, second tab", &take(&second_watch), &base);
    drop(server);
    close(first);
    close(second);
}

// --- the server ---------------------------------------------------------------------------

/// A server without a publish limit (the tests post faster than a person), on port 0.
fn chat_server(store: Option<&Path>) -> TestServer {
    TestServer::with(|c| {
        c.publish_limit = 0;
        c.store = store.map(Path::to_path_buf);
    })
}

/// A server on `addr`, where one was just stopped. The listener sets `SO_REUSEADDR`, so the
/// old connections in TIME_WAIT do not hold the port.
fn chat_server_at(addr: SocketAddr, store: &Path) -> TestServer {
    drop(bind_when_free(addr));
    TestServer::with(|c| {
        c.addr = addr;
        c.publish_limit = 0;
        c.store = Some(store.to_path_buf());
    })
}

/// A listener on `addr`, where a server was just stopped: tiny_http's accept thread closes its
/// copy of the old listener a moment after the stop returns, so this waits for the port.
fn bind_when_free(addr: SocketAddr) -> TcpListener {
    let since = Instant::now();
    let deadline = since + Duration::from_secs(5);
    loop {
        match TcpListener::bind(addr) {
            Ok(listener) => {
                eprintln!("{addr} free again {:?} after asking", since.elapsed());
                return listener;
            }
            Err(_) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("{addr} still taken 5 s after the stop: {e}"),
        }
    }
}

/// A stopped server holds no connection open. One it left open (an idle keep-alive connection
/// whose thread still waits for a request) is where the browser sends its next request to that
/// address, which then waits for an answer forever: the page never comes back.
fn assert_no_connection_left(addr: SocketAddr) {
    let left = || established_on(addr.port());
    assert!(
        wait_for(Duration::from_secs(2), || left() == 0),
        "{} connection(s) on {addr} still established 2 s after the server stopped",
        left()
    );
}

/// TCP connections in state ESTABLISHED whose local port is `port` (this host's IPv4 table;
/// nothing but the server listens on that port, so these are the server's ends).
fn established_on(port: u16) -> usize {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    table
        .lines()
        .skip(1)
        .filter(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local_port = fields
                .get(1)
                .and_then(|local| local.rsplit_once(':'))
                .and_then(|(_, hex)| u16::from_str_radix(hex, 16).ok());
            local_port == Some(port) && fields.get(3) == Some(&"01")
        })
        .count()
}

/// A journal file of its own, removed at the end.
struct Store(PathBuf);

impl Store {
    fn new() -> Store {
        let nanos = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        let name = format!(
            "sse-htmx-browser-chat-{}-{nanos}.journal",
            std::process::id()
        );
        Store(std::env::temp_dir().join(name))
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

/// Posts `text` as `name` the way a script would (text/plain) and returns the new id.
fn post_raw(addr: SocketAddr, name: &str, text: &str) -> String {
    let mut stream = common::connect(addr);
    write!(
        stream,
        "POST /chat/messages?name={name} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\r\n{text}",
        text.len()
    )
    .unwrap();
    let mut reader = BufReader::new(stream);
    let mut response = common::read_head(&mut reader);
    reader.read_to_end(&mut response.body).expect("read body");
    assert_eq!(response.status, 201, "{}", response.text());
    let id = response.text().trim_end().to_owned();
    assert!(id.parse::<u64>().is_ok(), "the id {id:?}");
    id
}

/// Stands on the server's address while it is down and answers every request 502, as a reverse
/// proxy in front of a restarting server does. Remembers each request's path and whether it
/// carried `Last-Event-ID`.
struct Gateway {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Vec<(String, bool)>>,
}

impl Gateway {
    fn start(addr: SocketAddr) -> Gateway {
        let listener = bind_when_free(addr);
        listener.set_nonblocking(true).unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::spawn(move || {
            let deadline = Instant::now() + RECONNECT * 2;
            let mut asked = Vec::new();
            while !stopping.load(Ordering::Relaxed) && Instant::now() < deadline {
                match listener.accept() {
                    Ok((stream, _)) => asked.extend(answer_502(stream)),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    Err(e) => panic!("gateway accept: {e}"),
                }
            }
            asked
        });
        Gateway { stop, thread }
    }

    /// Closes the address and returns what was asked.
    fn stop(self) -> Vec<(String, bool)> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("gateway thread")
    }
}

fn answer_502(stream: std::net::TcpStream) -> Option<(String, bool)> {
    stream.set_nonblocking(false).ok()?;
    stream.set_read_timeout(Some(common::TIMEOUT)).ok()?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let path = line.split(' ').nth(1)?.to_owned();
    let mut resumed = false;
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).ok()? == 0 || header.trim().is_empty() {
            break;
        }
        resumed |= header.to_ascii_lowercase().starts_with("last-event-id:");
    }
    let body = "bad gateway\n";
    let _ = write!(
        reader.get_mut(),
        "HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    );
    Some((path, resumed))
}

// --- the page -----------------------------------------------------------------------------

/// A new tab on the chat page of `flavor`, once its stream is open.
fn open_chat(browser: &Browser, base: &str, flavor: Flavor) -> (Arc<Tab>, Watch) {
    let tab = new_window(browser);
    let tab_watch = watch(&tab);
    tab.navigate_to(&format!("{base}{}", flavor.page("/chat")))
        .expect("navigate")
        .wait_until_navigated()
        .expect("navigated");
    tab.wait_for_element(FORM).expect("the chat form");
    wait_for_stream(&tab_watch, "on open", Duration::from_secs(5));
    (tab, tab_watch)
}

fn close(tab: Arc<Tab>) {
    tab.close(false).expect("close tab");
}

/// Waits until the tab has received the head of a `/chat/stream` response 200 (since the
/// record was last taken).
fn wait_for_stream(watch: &Watch, when: &str, within: Duration) {
    let opened = || {
        watch
            .lock()
            .unwrap()
            .responses
            .iter()
            .any(|(url, status)| url.ends_with("/chat/stream") && *status == 200)
    };
    assert!(
        wait_for(within, opened),
        "no stream {when} within {within:?}: {:#?}",
        watch.lock().unwrap()
    );
}

/// Waits until the server at `addr` counts `tabs` chat subscribers. A page that resumes with the
/// newest id is sent nothing until the next message, so the server, not the page, tells when it
/// is back.
fn wait_for_subscribers(addr: SocketAddr, tabs: u64, when: &str) {
    let live = || {
        let metrics = common::request(addr, "GET", "/metrics", "").text();
        metrics
            .lines()
            .find_map(|line| line.strip_prefix("chat_subscribers_live "))
            .and_then(|n| n.trim().parse::<u64>().ok())
            .unwrap_or_else(|| panic!("no chat_subscribers_live in {metrics}"))
    };
    let deadline = Instant::now() + RECONNECT;
    loop {
        let back = live();
        if back >= tabs {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{when}: {back} of {tabs} pages back within {RECONNECT:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// How many `/chat/stream` responses the tab got that were not 200.
fn refused_streams(watch: &Watch) -> usize {
    watch
        .lock()
        .unwrap()
        .responses
        .iter()
        .filter(|(url, status)| url.ends_with("/chat/stream") && *status != 200)
        .count()
}

/// Brings the tab to the front (a tab behind gets no input), enters `name` and `text` into the
/// form and clicks its button; returns when the button was pressed.
fn post_with_form(tab: &Tab, name: &str, text: &str) -> Instant {
    tab.bring_to_front().expect("bring the tab to the front");
    for (selector, value) in [(NAME_FIELD, name), (TEXT_FIELD, text)] {
        let field = tab
            .wait_for_element(selector)
            .unwrap_or_else(|e| panic!("{selector}: {e}"));
        field
            .call_js_fn("function() { this.value = ''; }", vec![], false)
            .expect("clear the field");
        // Entered at once, as a paste or an input method does (Input.insertText): typing key by
        // key costs about 100 ms a key here, and the page sees the same input events.
        field.click().expect("focus the field");
        tab.send_character(value).expect("enter the text");
        assert_eq!(field_value(tab, selector), value, "{selector} as typed");
    }
    let button = tab
        .find_element("form#chat-form button")
        .expect("the form's button");
    // The pointer goes to the button first, as a hand does; the click is the press and release
    // that follow. (Each input event takes Chromium about 100 ms to acknowledge here, so timing
    // from before the move would count the tool, not the page.)
    button.scroll_into_view().expect("scroll to the button");
    let at = button.get_midpoint().expect("the button's middle");
    tab.move_mouse_to_point(at).expect("point at the button");
    let clicked = Instant::now();
    for kind in [
        Input::DispatchMouseEventTypeOption::MousePressed,
        Input::DispatchMouseEventTypeOption::MouseReleased,
    ] {
        tab.call_method(Input::DispatchMouseEvent {
            Type: kind,
            x: at.x,
            y: at.y,
            modifiers: None,
            timestamp: None,
            button: Some(Input::MouseButton::Left),
            buttons: None,
            click_count: Some(1),
            force: None,
            tangential_pressure: None,
            tilt_x: None,
            tilt_y: None,
            twist: None,
            delta_x: None,
            delta_y: None,
            pointer_Type: None,
        })
        .expect("click");
    }
    clicked
}

/// One message as the page shows it.
#[derive(Debug)]
struct Shown {
    /// The article's `id`: `msg-<id>`.
    id: String,
    name: String,
    text: String,
}

impl Shown {
    fn id_number(&self) -> String {
        self.id
            .strip_prefix("msg-")
            .unwrap_or_else(|| panic!("article id {:?}", self.id))
            .to_owned()
    }
}

/// Every `article.msg` in `#chat-log`, in page order.
fn messages(tab: &Tab) -> Vec<Shown> {
    let joined = eval_string(
        tab,
        r"Array.from(document.querySelectorAll('#chat-log article.msg'), a => [
            a.id,
            a.querySelector('.name')?.innerText ?? '',
            a.querySelector('.text')?.innerText ?? '',
        ].join('\u001f')).join('\u001e')",
    );
    joined
        .split('\u{1e}')
        .filter(|article| !article.is_empty())
        .map(|article| {
            let mut fields = article.split('\u{1f}').map(str::to_owned);
            let mut next = || fields.next().unwrap_or_default();
            Shown {
                id: next(),
                name: next(),
                text: next(),
            }
        })
        .collect()
}

/// The id of the message that shows `text`.
fn id_of(tab: &Tab, text: &str) -> String {
    let log = messages(tab);
    log.iter()
        .find(|m| m.text == text)
        .unwrap_or_else(|| panic!("{text:?} not shown: {log:#?}"))
        .id_number()
}

/// Polls every 50 ms until the tab shows a message with `text`; panics if that takes `within`
/// from `since`. Returns the time it took.
fn wait_shown_within(tab: &Tab, since: Instant, within: Duration, text: &str) -> Duration {
    loop {
        let shown = messages(tab).iter().any(|m| m.text == text);
        let elapsed = since.elapsed();
        if shown {
            assert!(elapsed < within, "{text:?} showed after {elapsed:?}");
            return elapsed;
        }
        assert!(
            elapsed < within,
            "{text:?} not shown after {elapsed:?}: {:#?}",
            messages(tab)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn wait_until(tab: &Tab, within: Duration, what: &str, condition: impl Fn(&Tab) -> bool) {
    let deadline = Instant::now() + within;
    while !condition(tab) {
        assert!(
            Instant::now() < deadline,
            "{what}: not within {within:?}; the page shows {:#?}",
            messages(tab)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Every message exactly once: `expected` articles with distinct ids.
fn assert_each_once(log: &[Shown], expected: usize) {
    let mut ids: Vec<&str> = log.iter().map(|m| m.id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), log.len(), "an id shown twice: {log:#?}");
    assert_eq!(log.len(), expected, "{log:#?}");
}

/// The page shows exactly the messages `ids`, each once, in publish order.
fn assert_in_order(log: &[Shown], ids: &[String]) {
    assert_each_once(log, ids.len());
    let shown: Vec<String> = log.iter().map(Shown::id_number).collect();
    assert_eq!(shown, ids, "the page's messages: {log:#?}");
}

fn notice(tab: &Tab) -> String {
    eval_string(
        tab,
        "document.getElementById('chat-notice')?.innerText.trim() ?? 'no #chat-notice'",
    )
}

fn field_value(tab: &Tab, selector: &str) -> String {
    eval_string(
        tab,
        &format!("document.querySelector('{selector}')?.value ?? 'no {selector}'"),
    )
}

fn count(tab: &Tab, selector: &str) -> u64 {
    let result = tab
        .evaluate(
            &format!("document.querySelectorAll('{selector}').length"),
            false,
        )
        .unwrap_or_else(|e| panic!("count {selector}: {e}"));
    result
        .value
        .and_then(|value| value.as_u64())
        .unwrap_or_else(|| panic!("count {selector}: not a number"))
}

fn eval_string(tab: &Tab, expression: &str) -> String {
    let result = tab
        .evaluate(expression, false)
        .unwrap_or_else(|e| panic!("{expression}: {e}"));
    match result.value.as_ref().and_then(|value| value.as_str()) {
        Some(text) => text.to_owned(),
        None => panic!("{expression}: not a string but {result:?}"),
    }
}

// --- the console --------------------------------------------------------------------------

/// A phase whose streams dropped on purpose: the browser logs the failed requests, so its
/// console is printed, not asserted; it still opens no dialog and asks nothing elsewhere.
fn report_phase(phase: &str, first: &Observed, second: &Observed, base: &str) {
    for (tab, observed) in [("first", first), ("second", second)] {
        eprintln!(
            "{phase}, {tab} tab: console errors {:#?}, warnings {:#?}",
            observed.console_errors, observed.console_warnings
        );
        assert!(
            observed.dialogs.is_empty(),
            "{phase}, {tab} tab: dialogs: {:#?}",
            observed.dialogs
        );
        let outside = observed.requests_outside(base);
        assert!(
            outside.is_empty(),
            "{phase}, {tab} tab: requests that left the server: {outside:#?}"
        );
    }
}
