//! Load benchmark: how many event streams the server holds at once, what each one costs it, and
//! how punctual its events stay. Run it with `cargo bench --bench load`.
//!
//! Each scenario starts the release binary afresh on 127.0.0.1 with a free port, drives it from
//! this process, reads the server's costs from `/proc`, and kills it at the end (also on panic).
//! Nothing leaves the loopback interface, every loop is bounded in count and time, and the
//! whole run stops by itself (about three minutes with the defaults).
//!
//! Scenarios:
//! - **hold N**: one client thread with non-blocking sockets ramps up N concurrent
//!   `GET /connect` streams, holds them for the hold time and records when every event arrives.
//!   Meanwhile a second thread times `POST /ping` requests, to show whether ordinary requests
//!   still get through.
//! - **burst**: a fresh server gets many connections at once; how many of them ever see their
//!   first event?
//! - **fanout N R**: N subscribers hold the chatroom's `GET /chat/stream` (all with their response
//!   head before anything is published, so the history is empty) while one publisher posts R
//!   messages a second (`POST /chat/messages`, server run with `--publish-limit 0`), each a
//!   unique token; each message is timed from the start of its `POST` to its arrival at every
//!   subscriber. With a peer, each configuration runs against this server, then the peer, and
//!   the two are printed side by side at the end.
//! - **storm**: a server under a low open-file limit, with a counter page and a chat page open
//!   and `POST /ping` sent every 50 ms throughout, gets a storm of requests whose threads and
//!   descriptors tiny_http keeps for good (N of each of four shapes, each connection held open
//!   until the storm ends); reported: the pings answered during the storm, the server's
//!   re-execs, the time from the storm's end until `/healthz` answers, its threads and
//!   descriptors are back within 64 of their count before it, and `POST /ping` has a p99 under
//!   100 ms over 2 s again, and whether the pages went on with no id skipped or repeated.
//!
//! Settings, from the environment:
//! - `LOAD_STREAMS`: the N of the hold scenarios, comma-separated (default `100,1000,5000,10000`)
//! - `LOAD_HOLD_SECS`: how long N streams are held (default 10)
//! - `LOAD_INTERVAL_MS`: the server's `--interval` (default 1000)
//! - `LOAD_BURST`: connections of the burst (default 1000)
//! - `LOAD_FLOOR`: `1` runs each hold and the burst against the floor too, right after the server: a bare
//!   tiny_http server with a thread per stream and nothing else (see [`floor`]), so that what
//!   the server costs above it is measured in the same run
//! - `LOAD_SERVER_BIN`: the server binary to run instead of this build's, e.g. a copy of
//!   another commit's `target/release/sse-htmx`, to compare two builds in one session
//! - `LOAD_SCENARIOS`: which scenarios run, comma-separated (default `hold,burst,fanout,storm`)
//! - `LOAD_FANOUT_SUBSCRIBERS`: the N of the fan-out runs (default `1000,5000,10000`)
//! - `LOAD_FANOUT_RATES`: messages a second (default `1,10`)
//! - `LOAD_FANOUT_SECS`: how long the publisher publishes (default 10)
//! - `LOAD_FANOUT_FEED`: a feed name; the fan-out runs use that feed's routes
//!   (`/feeds/NAME/stream`, `POST /feeds/NAME`) instead of the chat's
//! - `LOAD_FANOUT_FEEDS`: K feeds (default 1), `NAME-0` to `NAME-K-1` (NAME `bench` if not
//!   given): subscriber i holds feed i mod K, message k goes to feed (k - 1) mod K. Ten feeds of
//!   1,000 subscribers deliver as many events as one of 10,000 at ten times the rate:
//!   `LOAD_FANOUT_FEEDS=10 LOAD_FANOUT_SUBSCRIBERS=10000 LOAD_FANOUT_RATES=10` against
//!   `LOAD_FANOUT_FEED=one LOAD_FANOUT_SUBSCRIBERS=10000 LOAD_FANOUT_RATES=1` compares the
//!   CPU per delivered event
//! - `LOAD_FANOUT_JOIN`: how the subscribers join K feeds: `turns` (the default, subscriber i
//!   holds feed i mod K) or `blocks` (the first N / K subscribers hold the first feed, and so on)
//! - `LOAD_PEER`: `NAME:PATH` of a peer server to run each fan-out configuration against too;
//!   it takes its port as its first argument and serves `GET /subscribe` and `POST /publish`
//! - `LOAD_FANOUT_SHARED`: a number of instances (e.g. 3) to run each fan-out configuration
//!   against too, sharing the room through one redis-server the run starts (the binary needs
//!   the `redis` feature: `cargo bench --features redis --bench load`); subscribers are spread
//!   over the instances, the publisher posts to the first, CPU is that of every process
//! - `LOAD_STORM`: requests of each shape in the storm (default 300)
//! - `LOAD_STORM_NOFILE`: the storm's server's open-file limit, set with `prlimit` (default
//!   1024, so that a short storm crosses it; 0 leaves the inherited limit)
//!
//! Output on stdout: one line on the environment, then per scenario a table for people and one
//! JSON line for tools (`{"scenario":"hold",...}`, `"burst"`, `"fanout"`,
//! `"fanout_compare"` for the side by side, and `"storm"`). Progress goes to stderr.
//!
//! The modules, in the order of a run: [`settings`], the server [`process`] (or a [`peer`], or the [`floor`]) and
//! its [`footprint`], the [`client`] with its [`parser`], the [`ping`] timer and the [`publish`]er,
//! the [`scenarios`] and the [`fanout`] run, their [`stats`] and [`deliveries`], and the
//! [`report`] and [`fanout_report`] written through [`output`]. The storm scenario has its own:
//! the [`storm`] run with its [`storm_traffic`], its [`storm_page`]s and its [`storm_watch`],
//! what it concludes in [`recovery`], and its [`storm_report`].

mod client;
mod deliveries;
mod fanout;
mod fanout_report;
mod floor;
mod footprint;
mod output;
mod parser;
mod peer;
mod ping;
mod publish;
// Shared with the integration tests, which start the same binary the same way.
#[path = "../../tests/common/process.rs"]
mod process;
mod recovery;
#[path = "../../tests/common/redis_server.rs"]
mod redis_server;
mod report;
mod scenarios;
mod settings;
mod stats;
mod storm;
mod storm_page;
mod storm_report;
mod storm_traffic;
mod storm_watch;

use std::thread;

use fanout::{FanoutReport, Target, run_fanout};
use fanout_report::{fanout_json, fanout_table, print_comparison};
use output::Json;
use report::{burst_json, burst_table, hold_json, hold_table};
use scenarios::{CounterTarget, run_burst, run_hold};
use settings::{
    CLIENT_FD_RESERVE, FdLimit, SETTLE, Settings, clock_ticks_per_sec, environment_line,
    raise_fd_limit,
};
use storm::run_storm;
use storm_report::{storm_json, storm_table};

fn main() {
    // `cargo bench` passes `--bench`; the only arguments read are those that start the floor.
    if let Some((port, interval)) = floor::requested() {
        floor::serve(port, interval);
    }
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(message) => {
            eprintln!("load: {message}");
            std::process::exit(2);
        }
    };
    let fd_limit = raise_fd_limit();
    println!("{}", environment_line(&settings, fd_limit));
    let clock_ticks = clock_ticks_per_sec();
    let targets: &[CounterTarget] = if settings.floor {
        &[CounterTarget::Server, CounterTarget::Floor]
    } else {
        &[CounterTarget::Server]
    };
    if settings.scenarios.hold {
        for &streams in &settings.streams {
            for &target in targets {
                hold_scenario(&settings, target, streams, fd_limit, clock_ticks);
                thread::sleep(SETTLE);
            }
        }
    }
    if settings.scenarios.burst {
        for &target in targets {
            burst_scenario(&settings, target, fd_limit, clock_ticks);
            thread::sleep(SETTLE);
        }
    }
    if settings.scenarios.fanout {
        fanout_scenarios(&settings, fd_limit, clock_ticks);
    }
    if settings.scenarios.storm {
        thread::sleep(SETTLE);
        storm_scenario(&settings, fd_limit);
    }
}

fn storm_scenario(settings: &Settings, fd_limit: FdLimit) {
    let connections = settings.storm.per_shape * storm_traffic::SHAPES.len();
    if !client_can_open("storm", "connections", connections, fd_limit) {
        return;
    }
    match run_storm(settings) {
        Ok(report) => {
            storm_table(&report).print();
            println!("{}", storm_json(&report));
        }
        Err(message) => println!("storm: not run: {message}"),
    }
}

/// Every fan-out configuration, against this server, then against instances sharing the room
/// through Redis and the peer if asked for; each beside this server's run at the end.
fn fanout_scenarios(settings: &Settings, fd_limit: FdLimit, clock_ticks: u64) {
    let mut runs = Vec::new();
    for &subscribers in &settings.fanout.subscribers {
        if !client_can_open("fanout", "subscribers", subscribers, fd_limit) {
            continue;
        }
        for &rate in &settings.fanout.rates {
            let run = |target: &Target| {
                let report = fanout_run(settings, target, subscribers, rate, clock_ticks);
                thread::sleep(SETTLE);
                report
            };
            let ours = run(&Target::Ours);
            let shared = match settings.fanout.shared {
                0 => None,
                instances => run(&Target::Shared(instances)),
            };
            let theirs = settings
                .fanout
                .peer
                .as_ref()
                .and_then(|peer| run(&Target::Peer(peer)));
            runs.push((ours, shared, theirs));
        }
    }
    let beside =
        |other: fn(&Runs) -> &Option<FanoutReport>| -> Vec<(&FanoutReport, &FanoutReport)> {
            runs.iter()
                .filter_map(|run| run.0.as_ref().zip(other(run).as_ref()))
                .collect()
        };
    print_comparison(&beside(|run| &run.1));
    print_comparison(&beside(|run| &run.2));
}

/// One configuration's runs: this server's, the shared instances', the peer's.
type Runs = (
    Option<FanoutReport>,
    Option<FanoutReport>,
    Option<FanoutReport>,
);

fn fanout_run(
    settings: &Settings,
    target: &Target,
    subscribers: usize,
    rate: usize,
    clock_ticks: u64,
) -> Option<FanoutReport> {
    let name = target.name();
    eprintln!("load: fan-out {name}, {subscribers} subscribers, {rate} messages/s...");
    match run_fanout(settings, target, subscribers, rate, clock_ticks) {
        Ok(report) => {
            fanout_table(&report).print();
            println!("{}", fanout_json(&report));
            Some(report)
        }
        Err(message) => {
            println!("fanout {name} {subscribers} {rate}: not run: {message}");
            None
        }
    }
}

fn hold_scenario(
    settings: &Settings,
    target: CounterTarget,
    streams: usize,
    fd_limit: FdLimit,
    clock_ticks: u64,
) {
    if !client_can_open("hold", "streams", streams, fd_limit) {
        return;
    }
    eprintln!("load: hold {streams} streams, {}...", target.name());
    match run_hold(settings, target, streams, clock_ticks) {
        Ok(report) => {
            hold_table(&report).print();
            println!("{}", hold_json(&report));
        }
        Err(message) => println!("hold {streams} {}: not run: {message}", target.name()),
    }
}

fn burst_scenario(settings: &Settings, target: CounterTarget, fd_limit: FdLimit, clock_ticks: u64) {
    if !client_can_open("burst", "connections", settings.burst, fd_limit) {
        return;
    }
    eprintln!(
        "load: burst of {} connections, {}...",
        settings.burst,
        target.name()
    );
    match run_burst(settings, target, clock_ticks) {
        Ok(report) => {
            burst_table(&report).print();
            println!("{}", burst_json(&report));
        }
        Err(message) => println!("burst {}: not run: {message}", target.name()),
    }
}

/// Can this process hold `count` connections? If not, says so (a client limit, not a server
/// finding) and the scenario is skipped rather than measured with connections that never
/// opened.
fn client_can_open(scenario: &str, size_key: &str, count: usize, fd: FdLimit) -> bool {
    let needed = count as u64 + CLIENT_FD_RESERVE;
    if needed <= fd.soft {
        return true;
    }
    println!(
        "{scenario} {count}: skipped: client limit: needs {needed} descriptors, the open-file \
         limit is {} (hard {})",
        fd.soft, fd.hard
    );
    let mut json = Json::new(scenario);
    json.int(size_key, count as u64);
    json.string("skipped", Some("client open-file limit"));
    json.int("client_fd_needed", needed);
    json.int("client_fd_limit", fd.soft);
    println!("{}", json.finish());
    false
}
