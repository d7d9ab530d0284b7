//! **storm**: a server under a low open-file limit, with a counter page and a chat page open,
//! gets a bounded storm of requests whose threads and descriptors tiny_http keeps for good.
//! How many `POST /ping` does it answer during the storm, how many times does it re-exec, how
//! long after the storm is it back, and did the pages go on with no id skipped or repeated?

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::ping::request_status;
use crate::process::ServerProcess;
use crate::recovery::{Answered, Continuity, back_for_good, quick_again, reexecs_in};
use crate::settings::{Settings, env_number};
use crate::storm_page::{Page, Seen};
use crate::storm_traffic::{ping_throughout, storm};
use crate::storm_watch::{RECOVERY_LIMIT, footprint, ping_record, since, watch};

/// The storm scenario's settings (`LOAD_STORM`, `LOAD_STORM_NOFILE`).
pub struct StormSettings {
    /// Requests of each shape.
    pub per_shape: usize,
    /// The server's open-file limit, soft and hard (through `prlimit`); 0 leaves it as it
    /// inherits it.
    pub nofile: u64,
}

impl StormSettings {
    pub fn from_env() -> Result<StormSettings, String> {
        let per_shape: usize = env_number("LOAD_STORM", 300)?;
        let nofile: u64 = env_number("LOAD_STORM_NOFILE", 1024)?;
        if !(1..=10_000).contains(&per_shape) {
            return Err("LOAD_STORM must be between 1 and 10000".into());
        }
        if nofile != 0 && !(256..=1 << 20).contains(&nofile) {
            return Err("LOAD_STORM_NOFILE must be 0 or between 256 and 1048576".into());
        }
        Ok(StormSettings { per_shape, nofile })
    }
}

/// The server's options: a counter that ticks often enough to show a skipped id, keep-alives
/// that tell a silent stream from a stuck one, and no limit on publishing.
const SERVER_ARGS: [&str; 6] = [
    "--interval",
    "100ms",
    "--keepalive",
    "500ms",
    "--publish-limit",
    "0",
];
/// No storm connection is started later than this after the first.
const STORM_LIMIT: Duration = Duration::from_secs(30);
/// The threads and descriptors over the count before the storm that still count as back.
pub const SLACK: u64 = 64;
/// `POST /ping` is quick again when its p99 over this window is under [`QUICK_MS`]...
pub const WINDOW: Duration = Duration::from_secs(2);
pub const QUICK_MS: f64 = 100.0;
/// How long the pages have to show their first events, and then what was published after the
/// storm.
const PAGE_WAIT: Duration = Duration::from_secs(10);

/// A page's ids and how far they are from going up one at a time.
pub struct PageReport {
    pub seen: Seen,
    pub continuity: Continuity,
}

pub struct StormReport {
    pub per_shape: usize,
    pub nofile: u64,
    pub opened: usize,
    pub failed: usize,
    pub first_failure: Option<String>,
    /// From the first storm connection to the closing of them all.
    pub storm: Duration,
    /// The pings of the storm itself (the client's part: the server takes in what is queued
    /// after it), and those from its start until all of the three below were back, or until
    /// the run gave up.
    pub pings_in_storm: Answered,
    pub pings_until_back: Answered,
    pub reexecs: usize,
    /// The highest `http_held_unrecoverable` that `/metrics` answered after the storm (during
    /// it, the server may have no descriptor to answer with).
    pub held_peak: Option<u64>,
    /// Seconds from the storm's end until each came back for good.
    pub healthz_back: Option<f64>,
    pub footprint_back: Option<f64>,
    pub ping_back: Option<f64>,
    /// (threads, descriptors) before the storm and at the end of the run.
    pub before: (u64, u64),
    pub after: Option<(u64, u64)>,
    pub counter: PageReport,
    pub chat: PageReport,
    /// The message published after the storm reached the chat page.
    pub published_after_arrived: bool,
    pub server_alive: bool,
    pub server_exit: String,
}

pub fn run_storm(settings: &Settings) -> Result<StormReport, String> {
    let s = &settings.storm;
    let nofile = format!("--nofile={0}:{0}", s.nofile);
    let prefix: &[&str] = if s.nofile == 0 {
        &[]
    } else {
        &["prlimit", &nofile, "--"]
    };
    let mut server = ServerProcess::launch_logging(&settings.server_bin, prefix, &SERVER_ARGS)?;
    let (addr, pid) = (server.addr, server.pid());
    let stop = StopOnDrop(Arc::new(AtomicBool::new(false)));
    let run_limit = Instant::now() + STORM_LIMIT + RECOVERY_LIMIT + PAGE_WAIT * 3;
    let (pings, pinger) = ping_throughout(addr, stop.0.clone(), run_limit)?;
    publish(addr, "before the storm")?;
    let counter = Page::open(addr, "/connect")?;
    let chat = Page::open(addr, "/chat/stream")?;
    let pages_up = wait_for(PAGE_WAIT, || {
        counter.seen().ids.len() >= 3 && !chat.seen().ids.is_empty()
    });
    if !pages_up {
        return Err("the pages got no events".into());
    }
    // A second of pings before the storm, for comparison.
    thread::sleep(Duration::from_secs(1));
    let before = footprint(pid).ok_or("the server is gone")?;

    eprintln!("load: storm of {} requests of each shape...", s.per_shape);
    let storm_start = Instant::now();
    let sent = storm(addr, s.per_shape, storm_start + STORM_LIMIT);
    let opened = sent.iter().map(|sent| sent.open.len()).sum();
    let failed = sent.iter().map(|sent| sent.failed).sum();
    let first_failure = sent.iter().find_map(|sent| sent.first_failure.clone());
    // Closes every connection of the storm: its end.
    drop(sent);
    let ended = Instant::now();
    let watched = watch(addr, pid, before, ended, &pings);

    let record = ping_record(&pings, ended);
    let storm_from = since(ended, storm_start);
    let (healthz_back, footprint_back) = (
        back_for_good(&watched.health),
        back_for_good(&watched.footprint),
    );
    let ping_back = quick_again(&record, WINDOW.as_secs_f64(), QUICK_MS);
    let all_back = match (healthz_back, footprint_back, ping_back) {
        (Some(a), Some(b), Some(c)) => a.max(b).max(c),
        _ => since(ended, Instant::now()),
    };

    // Counted before publishing, so that an arrival before the count is not missed.
    let (chat_before, counter_before) = (chat.seen().ids.len(), counter.seen().ids.len());
    let published_after_arrived = publish(addr, "after the storm").is_ok()
        && wait_for(PAGE_WAIT, || {
            chat.seen().ids.len() > chat_before && counter.seen().ids.len() >= counter_before + 3
        });
    drop(stop);
    let _ = pinger.join();
    let page = |seen: Seen| PageReport {
        continuity: Continuity::of(&seen.ids),
        seen,
    };
    let (counter, chat) = (page(counter.close()), page(chat.close()));
    let after = footprint(pid);
    Ok(StormReport {
        per_shape: s.per_shape,
        nofile: s.nofile,
        opened,
        failed,
        first_failure,
        storm: ended - storm_start,
        pings_in_storm: Answered::between(&record, storm_from, 0.0),
        pings_until_back: Answered::between(&record, storm_from, all_back),
        reexecs: reexecs_in(&server.stderr()),
        held_peak: watched.held_peak,
        healthz_back,
        footprint_back,
        ping_back,
        before,
        after,
        counter,
        chat,
        published_after_arrived,
        server_alive: server.is_alive(),
        server_exit: server.exit_description(),
    })
}

/// Sets the flag that stops the pings when dropped, so that an early return stops them too.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::SeqCst);
    }
}

fn publish(addr: SocketAddr, text: &str) -> Result<(), String> {
    let request = format!(
        "POST /chat/messages HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: text/plain; charset=utf-8\r\nContent-Length: {}\r\n\r\n{text}",
        text.len()
    );
    match request_status(addr, request.as_bytes(), Duration::from_secs(2))? {
        201 => Ok(()),
        status => Err(format!("publishing answered {status}")),
    }
}

/// Waits up to `within` for `condition`, looking every 20 ms.
fn wait_for(within: Duration, condition: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + within;
    loop {
        if condition() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
}
