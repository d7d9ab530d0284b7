//! Several instances sharing the chat and the feeds through a real `redis-server` (`--redis`): each test
//! starts Redis on a free port and three instances of this build's binary on port 0.
//!
//! Run with `cargo test --features redis --test redis`; without the feature this file is empty.
//! Without redis-server the tests say so and pass, except under CI (`CI` set), where they fail.

#![cfg(feature = "redis")]

mod common;

use std::io::{BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::process::THIS_BUILD;
use common::redis_server::RedisServer;
use common::{
    EventStream, Response, ServerProcess, TIMEOUT, connect, read_head, request, wait_for,
};

/// Long enough for a follower to notice Redis went away or came back (it retries every 2 s at
/// most) on a busy machine.
const REDIS_TIMEOUT: Duration = Duration::from_secs(15);

fn instance(redis: &RedisServer) -> ServerProcess {
    ServerProcess::start(&["--redis", &redis.url(), "--publish-limit", "0"])
}

fn three(redis: &RedisServer) -> Vec<ServerProcess> {
    (0..3).map(|_| instance(redis)).collect()
}

fn post_text(addr: SocketAddr, text: &str) -> Response {
    post_text_to(addr, "/chat/messages", text)
}

fn post_text_to(addr: SocketAddr, path: &str, text: &str) -> Response {
    let mut stream = connect(addr);
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\r\n{text}",
        text.len()
    )
    .unwrap();
    let mut reader = BufReader::new(stream);
    let mut response = read_head(&mut reader);
    reader.read_to_end(&mut response.body).expect("read body");
    response
}

/// Publishes `text` on the instance at `addr`; its id from the `201`.
fn publish(addr: SocketAddr, text: &str) -> u64 {
    publish_to(addr, "/chat/messages", text)
}

/// Publishes `text` to `path` on the instance at `addr`; its id from the `201`.
fn publish_to(addr: SocketAddr, path: &str, text: &str) -> u64 {
    let response = post_text_to(addr, path, text);
    assert_eq!(
        response.status,
        201,
        "{}",
        String::from_utf8_lossy(&response.body)
    );
    response.text().trim_end().parse().expect("an id")
}

/// What a page sees: a message's id and text.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Seen {
    id: u64,
    text: String,
}

struct Page(EventStream);

impl Page {
    fn open(addr: SocketAddr) -> Page {
        Page::open_with(addr, "")
    }

    fn resume(addr: SocketAddr, last_event_id: u64) -> Page {
        Page::open_with(addr, &format!("Last-Event-ID: {last_event_id}\r\n"))
    }

    fn open_with(addr: SocketAddr, headers: &str) -> Page {
        Page::open_path(addr, "/chat/stream", headers)
    }

    fn open_path(addr: SocketAddr, path: &str, headers: &str) -> Page {
        let stream = EventStream::open_path(addr, path, headers);
        assert_eq!(stream.head.status, 200);
        Page(stream)
    }

    /// The next message; panics on the missed notice (an event without id).
    fn message(&mut self) -> Seen {
        let (event, _) = self.0.next_event();
        let data = event.data.unwrap_or_default();
        let id = event
            .id
            .unwrap_or_else(|| panic!("a message, not a notice: {data}"));
        let text = data
            .split_once("<span class=\"text\">")
            .and_then(|(_, rest)| rest.split_once("</span>"))
            .map(|(text, _)| text.to_owned())
            .unwrap_or_else(|| panic!("a text in {data}"));
        Seen {
            id: id.parse().expect("a numeric id"),
            text,
        }
    }

    fn messages(&mut self, n: usize) -> Vec<Seen> {
        (0..n).map(|_| self.message()).collect()
    }

    /// The next event with data must be the missed notice: no id, the word "missed".
    fn notice(&mut self) {
        let (event, _) = self.0.next_event();
        let data = event.data.unwrap_or_default();
        assert_eq!(event.id, None, "a notice has no id: {data}");
        assert!(data.contains("missed"), "{data}");
    }
}

fn health(addr: SocketAddr) -> String {
    let response = request(addr, "GET", "/healthz", "");
    assert_eq!(response.status, 200, "liveness stays 200");
    response.text()
}

fn redis_reachable(addr: SocketAddr) -> bool {
    health(addr).contains("redis: reachable")
}

fn ids(seen: &[Seen]) -> Vec<u64> {
    seen.iter().map(|s| s.id).collect()
}

#[test]
fn a_message_published_on_each_instance_reaches_every_page_once_in_order_with_one_id() {
    let Some(redis) = RedisServer::start("fan-out") else {
        return;
    };
    let servers = three(&redis);
    let mut pages: Vec<Page> = servers
        .iter()
        .flat_map(|server| [Page::open(server.addr), Page::open(server.addr)])
        .collect();
    let mut published = Vec::new();
    for round in 0..3 {
        for (at, server) in servers.iter().enumerate() {
            let text = format!("round {round} from {at}");
            published.push(Seen {
                id: publish(server.addr, &text),
                text,
            });
        }
    }
    assert!(
        published.windows(2).all(|pair| pair[0].id < pair[1].id),
        "ids increase in publish order: {published:?}"
    );
    for page in &mut pages {
        assert_eq!(page.messages(published.len()), published);
    }
    // Once: the next thing every page gets is the next message, not a repeat.
    let last = publish(servers[1].addr, "last");
    for page in &mut pages {
        assert_eq!(page.message().id, last);
    }
}

#[test]
fn a_message_published_to_a_named_feed_on_one_instance_reaches_its_page_on_another() {
    let Some(redis) = RedisServer::start("named-feed") else {
        return;
    };
    let (a, b) = (instance(&redis), instance(&redis));
    // B has never heard of the feed: its page waits for the name.
    let mut waiting = Page::open_path(b.addr, "/feeds/news/stream", "");
    let mut chat = Page::open(b.addr);
    let first = publish_to(a.addr, "/feeds/news", "first in news");
    assert_eq!(
        waiting.message(),
        Seen {
            id: first,
            text: "first in news".into()
        }
    );
    // The feed came into being on B with its first message: B lists it and publishes to it.
    let listed = request(b.addr, "GET", "/feeds", "").text();
    assert!(listed.contains("/feeds/news"), "{listed}");
    let second = publish_to(b.addr, "/feeds/news", "second in news");
    assert!(second > first);
    assert_eq!(waiting.message().id, second);
    // A page of the feed resumes on A from the first, and gets only the second; the chat's page
    // got none of the feed's messages.
    let mut resumed = Page::open_path(
        a.addr,
        "/feeds/news/stream",
        &format!("Last-Event-ID: {first}\r\n"),
    );
    assert_eq!(
        resumed.message(),
        Seen {
            id: second,
            text: "second in news".into()
        }
    );
    let in_chat = publish(a.addr, "in the chat");
    assert_eq!(chat.message().id, in_chat);
}

#[test]
fn a_line_of_an_exec_program_on_one_instance_reaches_a_page_of_its_feed_on_another() {
    let Some(redis) = RedisServer::start("exec") else {
        return;
    };
    let url = redis.url();
    let runs = ServerProcess::start(&["--redis", &url, "--exec", "ticks=echo one; exec sleep 600"]);
    let other = instance(&redis);
    let mut page = Page::open_path(other.addr, "/feeds/ticks/stream", "");
    let seen = page.message();
    assert_eq!(seen.text, "one");
    // The same message, with the same id, on the instance that runs the program.
    let mut here = Page::open_path(runs.addr, "/feeds/ticks/stream", "");
    assert_eq!(here.message(), seen);
}

#[test]
fn a_page_that_moves_to_another_instance_with_last_event_id_misses_nothing() {
    let Some(redis) = RedisServer::start("move") else {
        return;
    };
    let servers = three(&redis);
    let (a, b, c) = (servers[0].addr, servers[1].addr, servers[2].addr);
    let mut on_a = Page::open(a);
    let before: Vec<u64> = (0..3).map(|i| publish(b, &format!("before {i}"))).collect();
    let seen = on_a.messages(3);
    assert_eq!(ids(&seen), before);
    drop(on_a);
    let missed: Vec<u64> = (0..2).map(|i| publish(c, &format!("away {i}"))).collect();
    // At once, as a browser does: B may not have read every message A had yet.
    let mut on_b = Page::resume(b, before[2]);
    assert_eq!(ids(&on_b.messages(2)), missed);
    let after = publish(a, "after");
    assert_eq!(on_b.message().id, after);

    // A page ahead of an instance (it saw the newest message elsewhere) is not told it missed
    // anything, and gets what comes next.
    let newest = publish(a, "newest");
    let mut on_c = Page::resume(c, newest);
    let next = publish(b, "next");
    assert_eq!(on_c.message().id, next);
}

#[test]
fn a_page_that_saw_a_message_this_instance_has_not_read_yet_resumes_from_it() {
    let Some(redis) = RedisServer::start("ahead") else {
        return;
    };
    let a = instance(&redis);
    let relay = Relay::start(redis.port);
    let b = ServerProcess::start(&["--redis", &relay.url(), "--publish-limit", "0"]);
    let mut on_b = Page::open(b.addr);
    let first = publish(a.addr, "first");
    assert_eq!(on_b.message().id, first);

    relay.hold_follower(true);
    let unseen = publish(a.addr, "seen on A only");
    let mut moved = Page::resume(b.addr, unseen);
    // What B sends first, while it still has not read `unseen`: that the stream is open, not
    // the missed notice.
    let opened = moved.0.next_chunk().expect("a first chunk");
    assert!(
        opened.events().iter().all(|event| event.data.is_none()),
        "{:?}",
        opened.events()
    );
    relay.hold_follower(false);
    let next = publish(a.addr, "next");
    assert_eq!(moved.message().id, next, "no missed notice, nothing twice");
    assert_eq!(ids(&on_b.messages(2)), [unseen, next]);
}

/// A TCP relay between one instance and Redis. The instance's first connection through it is
/// its follower's (made at start, before any publish); what Redis sends on it can be held back,
/// so that the instance falls behind while its other connections work.
struct Relay {
    addr: SocketAddr,
    hold: Arc<AtomicBool>,
}

impl Relay {
    fn start(redis_port: u16) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let hold = Arc::new(AtomicBool::new(false));
        let held = hold.clone();
        // Each thread ends when its connection closes; the accepting one with the test binary.
        std::thread::spawn(move || {
            for (n, client) in listener.incoming().enumerate() {
                let Ok(client) = client else { continue };
                let upstream = TcpStream::connect(("127.0.0.1", redis_port)).unwrap();
                let (mut to_redis, mut from_client) =
                    (upstream.try_clone().unwrap(), client.try_clone().unwrap());
                std::thread::spawn(move || std::io::copy(&mut from_client, &mut to_redis));
                let hold = (n == 0).then(|| held.clone());
                std::thread::spawn(move || relay_answers(upstream, client, hold));
            }
        });
        Relay { addr, hold }
    }

    fn url(&self) -> String {
        format!("redis://{}/0", self.addr)
    }

    fn hold_follower(&self, hold: bool) {
        self.hold.store(hold, Ordering::SeqCst);
    }
}

/// Copies what Redis answers to the client, waiting while `hold` is set.
fn relay_answers(mut from: TcpStream, mut to: TcpStream, hold: Option<Arc<AtomicBool>>) {
    let mut buffer = [0; 16 * 1024];
    while let Ok(n @ 1..) = from.read(&mut buffer) {
        while hold
            .as_ref()
            .is_some_and(|hold| hold.load(Ordering::SeqCst))
        {
            std::thread::sleep(Duration::from_millis(2));
        }
        if to.write_all(&buffer[..n]).is_err() {
            return;
        }
    }
}

#[test]
fn kill_9_of_one_instance_loses_nothing_that_was_answered_201() {
    let Some(redis) = RedisServer::start("kill9") else {
        return;
    };
    let mut servers = three(&redis);
    let mut on_b = Page::open(servers[1].addr);
    let a = servers[0].addr;
    let answered = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let publisher = {
        let (answered, stop) = (answered.clone(), stop.clone());
        std::thread::spawn(move || {
            let mut n = 0;
            while !stop.load(Ordering::SeqCst) {
                // A request cut off by the kill is no answer: it may or may not be published.
                let Ok(response) = std::panic::catch_unwind(|| post_text(a, &format!("m{n}")))
                else {
                    break;
                };
                if response.status != 201 {
                    break;
                }
                let id: u64 = response.text().trim_end().parse().expect("an id");
                answered.lock().unwrap().push(id);
                n += 1;
            }
        })
    };
    assert!(wait_for(TIMEOUT, || answered.lock().unwrap().len() >= 20));
    let status = Command::new("kill")
        .args(["-9", &servers[0].pid().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    servers[0].wait_exit(TIMEOUT).expect("killed");
    stop.store(true, Ordering::SeqCst);
    publisher.join().unwrap();
    let answered = answered.lock().unwrap().clone();

    // The page on B gets every answered message (and perhaps one more, published but cut off
    // before its answer), in order.
    let mut seen = Vec::new();
    while seen.last() < answered.last() {
        seen.push(on_b.message().id);
    }
    assert_eq!(seen, answered);
    // A new instance loads them from Redis.
    let fresh = instance(&redis);
    let mut page = Page::open(fresh.addr);
    let recent = ids(&page.messages(answered.len().min(50)));
    assert_eq!(recent, answered[answered.len() - recent.len()..]);
}

#[test]
fn without_redis_publishes_get_503_streams_stay_and_everything_arrives_once_it_is_back() {
    let Some(mut redis) = RedisServer::start("outage") else {
        return;
    };
    // The first one logs, so that its lines can be read.
    let args = ["--redis", &redis.url(), "--publish-limit", "0"];
    let servers = vec![
        ServerProcess::start_capturing_stderr(&args),
        instance(&redis),
        instance(&redis),
    ];
    let mut pages: Vec<Page> = servers.iter().map(|s| Page::open(s.addr)).collect();
    let first = publish(servers[0].addr, "before");
    for page in &mut pages {
        assert_eq!(page.message().id, first);
    }

    redis.stop();
    for server in &servers {
        assert!(wait_for(REDIS_TIMEOUT, || !redis_reachable(server.addr)));
        let response = post_text(server.addr, "while down");
        assert_eq!(response.status, 503);
        let retry: u64 = response
            .header("Retry-After")
            .expect("Retry-After")
            .parse()
            .unwrap();
        assert!(retry >= 1);
        assert!(response.text().contains("redis"), "{}", response.text());
        // A named feed's publish goes the same way.
        let to_feed = post_text_to(server.addr, "/feeds/news", "while down");
        assert_eq!(to_feed.status, 503, "{}", to_feed.text());
        assert!(to_feed.header("Retry-After").is_some());
        let listed = request(server.addr, "GET", "/feeds", "").text();
        assert!(
            !listed.contains("/feeds/news"),
            "no feed without a message: {listed}"
        );
        let metrics = request(server.addr, "GET", "/metrics", "").text();
        assert!(metrics.contains("\nredis_up 0\n"), "{metrics}");
        assert!(
            metrics.contains("\nredis_connections_lost_total 1\n"),
            "{metrics}"
        );
    }

    redis.restart();
    // The first instance back publishes while the others may still be waiting to reconnect:
    // they read it when they are back.
    let (back, _) = wait_for_any_reachable(&servers);
    let during: Vec<u64> = (0..3)
        .map(|i| publish(servers[back].addr, &format!("back {i}")))
        .collect();
    for page in &mut pages {
        assert_eq!(
            ids(&page.messages(3)),
            during,
            "the stream stayed open and caught up"
        );
    }
    for server in &servers {
        assert!(wait_for(REDIS_TIMEOUT, || redis_reachable(server.addr)));
    }
    let last: Vec<u64> = servers
        .iter()
        .map(|s| publish(s.addr, "all back"))
        .collect();
    for page in &mut pages {
        assert_eq!(ids(&page.messages(3)), last);
    }
}

#[test]
fn a_page_on_an_instance_away_while_its_stream_was_trimmed_gets_the_missed_notice() {
    let Some(mut redis) = RedisServer::start("gap") else {
        return;
    };
    let args = [
        "--redis",
        &redis.url(),
        "--publish-limit",
        "0",
        "--history",
        "3",
    ];
    let (a, b) = (ServerProcess::start(&args), ServerProcess::start(&args));
    let mut on_b = Page::open(b.addr);
    let before: Vec<u64> = (0..2)
        .map(|i| publish(a.addr, &format!("seen {i}")))
        .collect();
    assert_eq!(ids(&on_b.messages(2)), before);

    redis.stop();
    assert!(wait_for(REDIS_TIMEOUT, || !redis_reachable(b.addr)));
    // Back, but only for this test's own client: five entries on a stream capped at three,
    // while the instances cannot read.
    let mut admin = redis.restart_locked();
    for i in 0..5 {
        let at = format!("{}", 1_764_000_000_000u64 + i);
        admin.command(&[
            "XADD",
            "sse-htmx:feed:chat",
            "MAXLEN",
            "3",
            "*",
            "name",
            "n",
            "text",
            &format!("away {i}"),
            "at",
            &at,
        ]);
    }
    admin.let_everyone_in();

    assert!(wait_for(REDIS_TIMEOUT, || redis_reachable(b.addr)));
    on_b.notice();
    let texts: Vec<String> = on_b.messages(3).into_iter().map(|seen| seen.text).collect();
    assert_eq!(texts, ["away 2", "away 3", "away 4"]);
    let metrics = request(b.addr, "GET", "/metrics", "").text();
    assert!(metrics.contains("\nredis_gaps_total 1\n"), "{metrics}");
    // A page coming back from a message before the gap is told too.
    assert!(wait_for(REDIS_TIMEOUT, || redis_reachable(a.addr)));
    let mut back = Page::resume(a.addr, before[1]);
    back.notice();
}

/// Waits until one of `servers` follows Redis again: its index.
fn wait_for_any_reachable(servers: &[ServerProcess]) -> (usize, SocketAddr) {
    let mut found = None;
    assert!(wait_for(REDIS_TIMEOUT, || {
        found = servers.iter().position(|s| redis_reachable(s.addr));
        found.is_some()
    }));
    let at = found.unwrap();
    (at, servers[at].addr)
}

#[test]
fn an_instance_that_replaces_its_image_follows_redis_again() {
    let Some(redis) = RedisServer::start("reexec") else {
        return;
    };
    let args = ["--redis", &redis.url(), "--publish-limit", "0"];
    let a = ServerProcess::start_capturing_stderr(&args);
    let b = instance(&redis);
    let mut on_a = Page::open(a.addr);
    let first = publish(b.addr, "before");
    assert_eq!(on_a.message().id, first);

    a.signal("HUP");
    // The stream ends cleanly, and the new image says it follows Redis again.
    while on_a.0.next_chunk().is_some() {}
    let following = || a.stderr().matches("redis: following").count();
    assert!(
        wait_for(REDIS_TIMEOUT, || following() >= 2),
        "{}",
        a.stderr()
    );
    let during = publish(b.addr, "during");
    let mut back = Page::resume(a.addr, first);
    assert_eq!(back.message().id, during);
    let after = publish(a.addr, "after");
    assert_eq!(back.message().id, after);
}

#[test]
fn store_and_redis_together_are_refused() {
    let output = Command::new(THIS_BUILD)
        .args(["--addr", "127.0.0.1:0", "--redis", "redis://127.0.0.1:1/0"])
        .args(["--store", "/nonexistent/journal"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--store"), "{stderr}");
}

#[test]
fn help_shows_the_redis_flag_after_the_store() {
    let output = Command::new(THIS_BUILD).arg("--help").output().unwrap();
    let help = String::from_utf8(output.stdout).unwrap();
    let (store, redis) = (help.find("--store <PATH>"), help.find("--redis <URL>"));
    assert!(store.is_some() && store < redis, "{help}");
    assert!(help.contains("not with --store"), "{help}");
}

#[test]
fn a_tls_url_is_refused_at_start() {
    let output = Command::new(THIS_BUILD)
        .args(["--addr", "127.0.0.1:0", "--redis", "rediss://127.0.0.1:1/0"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("TLS"), "{stderr}");
}

/// A publish waits for Redis, up to its timeout when Redis stalls; the other requests do not
/// wait with it: it is answered on a thread of its own, not on the request loop.
#[test]
fn a_publish_waiting_for_a_stalled_redis_holds_up_no_other_request() {
    let Some(redis) = RedisServer::start("stalled") else {
        return;
    };
    let server = instance(&redis);
    let addr = server.addr;
    publish_to(addr, "/feeds/temp", "before");
    let pid = redis.pid().expect("redis runs").to_string();
    let signal = |name: &str| {
        let status = Command::new("kill").args([name, &pid]).status();
        assert!(status.unwrap().success(), "kill {name} {pid}");
    };
    signal("-STOP");
    // Redis answers again however the test ends.
    struct Resume<F: Fn(&str)>(F);
    impl<F: Fn(&str)> Drop for Resume<F> {
        fn drop(&mut self) {
            (self.0)("-CONT");
        }
    }
    let _resume = Resume(signal);
    let sent = Instant::now();
    let publishing = std::thread::spawn(move || post_text_to(addr, "/feeds/temp", "stalled"));
    // Pages asked for over most of the publish's wait (two replies of 1 s) are answered at once.
    while sent.elapsed() < Duration::from_millis(1200) {
        let asked = Instant::now();
        assert_eq!(request(addr, "GET", "/", "").status, 200);
        let took = asked.elapsed();
        assert!(took < Duration::from_millis(500), "a page took {took:?}");
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        !publishing.is_finished(),
        "the publish was answered before Redis could answer it"
    );
    // Refused once its wait for Redis is over, as when Redis is away; and so is the next one,
    // at once, rather than after a wait of its own.
    assert_eq!(publishing.join().unwrap().status, 503);
    let asked = Instant::now();
    assert_eq!(post_text_to(addr, "/feeds/temp", "next").status, 503);
    let took = asked.elapsed();
    assert!(
        took < Duration::from_millis(500),
        "the next publish took {took:?}"
    );
}
