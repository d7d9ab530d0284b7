//! The settings read from the environment, the limits that keep every loop of the run bounded,
//! and what the run says about the machine it runs on.

use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::str::FromStr;
use std::thread;
use std::time::Duration;

use crate::client::Join;
use crate::process;
use crate::storm::StormSettings;

/// Streams are opened in batches of this many...
pub const RAMP_BATCH: usize = 200;
/// ...at most this often, and only while fewer than half a batch still wait for their first
/// event: the ramp follows the server's pace, so the hold scenario measures held streams rather
/// than the listen backlog (the burst scenario measures that).
pub const RAMP_PAUSE: Duration = Duration::from_millis(20);
/// Opening N streams must not take longer than this; streams not opened by then are reported as
/// not attempted.
pub const RAMP_LIMIT: Duration = Duration::from_secs(60);
/// A hold stream whose first event has not come this long after its connect began is failed.
pub const FIRST_EVENT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long the burst scenario waits for first events.
pub const BURST_WAIT: Duration = Duration::from_secs(10);
/// `POST /ping` requests during the hold: one every 50 ms, that is 20 a second.
pub const PING_EVERY: Duration = Duration::from_millis(50);
/// A ping that takes longer than this (to connect, or for any one read) is a failure.
pub const PING_TIMEOUT: Duration = Duration::from_secs(2);
/// Descriptors the client needs besides its streams: stdio, the epoll instance, the server's
/// pipes, the ping connection.
pub const CLIENT_FD_RESERVE: u64 = 64;

/// After the last publish is answered, how long a fan-out run waits for the deliveries still
/// missing.
pub const DRAIN: Duration = Duration::from_secs(5);
/// A publish that takes longer than this (to connect, or for any one read or write) is a
/// failure; no publish starts later than this after the end of the publishing time.
pub const PUBLISH_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a peer server may take to accept connections.
pub const PEER_START_TIMEOUT: Duration = Duration::from_secs(10);

/// Time for the system to settle between scenarios (a killed server's threads and sockets are
/// freed asynchronously; the next scenario's idle figures should not include them).
pub const SETTLE: Duration = Duration::from_secs(1);
/// The longest the client's event loop sleeps in one wait.
pub const POLL_TICK: Duration = Duration::from_millis(20);
/// How often pending streams are checked against [`FIRST_EVENT_TIMEOUT`]. A scan visits every
/// connection, so it is not done on every wake-up.
pub const EXPIRY_TICK: Duration = Duration::from_millis(100);

pub struct Settings {
    pub scenarios: Scenarios,
    pub streams: Vec<usize>,
    pub hold: Duration,
    pub interval: Duration,
    pub burst: usize,
    /// The server binary to run: this build's, or `LOAD_SERVER_BIN`.
    pub server_bin: OsString,
    /// Whether `LOAD_SERVER_BIN` chose it.
    pub other_server: bool,
    /// Whether each hold also runs against the bare tiny_http floor (`LOAD_FLOOR=1`).
    pub floor: bool,
    pub fanout: Fanout,
    pub storm: StormSettings,
}

/// Which scenarios run (`LOAD_SCENARIOS`, default all).
pub struct Scenarios {
    pub hold: bool,
    pub burst: bool,
    pub fanout: bool,
    pub storm: bool,
}

/// The fan-out scenario's settings.
pub struct Fanout {
    pub subscribers: Vec<usize>,
    /// Messages a second.
    pub rates: Vec<usize>,
    /// How long the publisher publishes.
    pub publish: Duration,
    /// The feeds this server's runs spread over (`LOAD_FANOUT_FEED`, `LOAD_FANOUT_FEEDS`);
    /// none for the chat's routes.
    pub feeds: Vec<String>,
    /// How the subscribers join the feeds (`LOAD_FANOUT_JOIN`).
    pub join: FeedJoin,
    /// A server to run each configuration against too (`LOAD_PEER=NAME:PATH`).
    pub peer: Option<Peer>,
    /// Instances sharing the room through Redis to run each configuration against too
    /// (`LOAD_FANOUT_SHARED`); 0 for none.
    pub shared: usize,
}

/// How a run's subscribers join several feeds.
#[derive(Clone, Copy, PartialEq)]
pub enum FeedJoin {
    /// Subscriber i joins feed i mod K (`turns`, the default).
    InTurn,
    /// The first N / K subscribers join the first feed, and so on (`blocks`).
    InBlocks,
}

impl FeedJoin {
    /// The client's spread for a run of `streams` subscribers.
    pub fn of(self, streams: usize) -> Join {
        match self {
            FeedJoin::InTurn => Join::InTurn,
            FeedJoin::InBlocks => Join::InBlocks { streams },
        }
    }
}

/// A program to compare with: it takes the port as its first argument, listens on 127.0.0.1,
/// serves `GET /subscribe` and `POST /publish` (form field `text`).
#[derive(Clone)]
pub struct Peer {
    pub name: String,
    pub bin: PathBuf,
}

impl Settings {
    pub fn from_env() -> Result<Settings, String> {
        let streams = env_list("LOAD_STREAMS", &[100, 1000, 5000, 10000])?;
        let hold_secs: f64 = env_number("LOAD_HOLD_SECS", 10.0)?;
        let interval_ms: u64 = env_number("LOAD_INTERVAL_MS", 1000)?;
        let burst: usize = env_number("LOAD_BURST", 1000)?;
        let other_bin = std::env::var_os("LOAD_SERVER_BIN").filter(|bin| !bin.is_empty());
        let floor = match std::env::var("LOAD_FLOOR").as_deref() {
            Err(_) | Ok("" | "0") => false,
            Ok("1") => true,
            Ok(other) => return Err(format!("LOAD_FLOOR={other:?} is not 0 or 1")),
        };
        // Bounds keep every loop of the run bounded, whatever the environment says.
        if !(hold_secs > 0.0 && hold_secs <= 600.0) {
            return Err("LOAD_HOLD_SECS must be above 0 and at most 600".into());
        }
        if !(1..=60_000).contains(&interval_ms) {
            return Err("LOAD_INTERVAL_MS must be between 1 and 60000".into());
        }
        if streams
            .iter()
            .chain([&burst])
            .any(|&n| n == 0 || n > 100_000)
        {
            return Err("LOAD_STREAMS and LOAD_BURST must be between 1 and 100000".into());
        }
        // Checked now rather than once per scenario, so a typo does not print a "not run" line
        // for each of them.
        if let Some(bin) = &other_bin
            && !Path::new(bin).is_file()
        {
            return Err(format!("LOAD_SERVER_BIN={bin:?} is not a file"));
        }
        Ok(Settings {
            scenarios: scenarios_from_env()?,
            fanout: fanout_from_env()?,
            storm: StormSettings::from_env()?,
            streams,
            hold: Duration::from_secs_f64(hold_secs),
            interval: Duration::from_millis(interval_ms),
            burst,
            other_server: other_bin.is_some(),
            floor,
            server_bin: other_bin.unwrap_or_else(|| process::THIS_BUILD.into()),
        })
    }
}

fn scenarios_from_env() -> Result<Scenarios, String> {
    let Ok(text) = std::env::var("LOAD_SCENARIOS") else {
        return Ok(Scenarios {
            hold: true,
            burst: true,
            fanout: true,
            storm: true,
        });
    };
    let names: Vec<&str> = text.split(',').map(str::trim).collect();
    if let Some(name) = names
        .iter()
        .find(|name| !["hold", "burst", "fanout", "storm"].contains(name))
    {
        return Err(format!(
            "LOAD_SCENARIOS: unknown scenario {name:?} (hold, burst, fanout, storm)"
        ));
    }
    Ok(Scenarios {
        hold: names.contains(&"hold"),
        burst: names.contains(&"burst"),
        fanout: names.contains(&"fanout"),
        storm: names.contains(&"storm"),
    })
}

fn fanout_from_env() -> Result<Fanout, String> {
    let subscribers = env_list("LOAD_FANOUT_SUBSCRIBERS", &[1000, 5000, 10000])?;
    let rates = env_list("LOAD_FANOUT_RATES", &[1, 10])?;
    let secs: f64 = env_number("LOAD_FANOUT_SECS", 10.0)?;
    if subscribers.iter().any(|&n| n == 0 || n > 100_000) {
        return Err("LOAD_FANOUT_SUBSCRIBERS must be between 1 and 100000".into());
    }
    if rates.iter().any(|&rate| rate == 0 || rate > 1000) {
        return Err("LOAD_FANOUT_RATES must be between 1 and 1000".into());
    }
    if !(secs > 0.0 && secs <= 600.0) {
        return Err("LOAD_FANOUT_SECS must be above 0 and at most 600".into());
    }
    let feed = match std::env::var("LOAD_FANOUT_FEED") {
        Err(_) => None,
        Ok(name) if name.is_empty() => None,
        // Room for the `-N` of several feeds.
        Ok(name) if is_feed_name(&name) && name.len() <= 60 => Some(name),
        Ok(name) => {
            return Err(format!(
                "LOAD_FANOUT_FEED={name:?} is not a feed name ([a-z0-9][a-z0-9-]{{0,59}})"
            ));
        }
    };
    // The server holds 64 feeds by default, the chat among them.
    let count: usize = env_number("LOAD_FANOUT_FEEDS", 1)?;
    if !(1..=63).contains(&count) {
        return Err("LOAD_FANOUT_FEEDS must be between 1 and 63".into());
    }
    let feeds = match (feed, count) {
        (None, 1) => Vec::new(),
        (Some(name), 1) => vec![name],
        (name, count) => {
            let name = name.unwrap_or_else(|| "bench".into());
            (0..count).map(|i| format!("{name}-{i}")).collect()
        }
    };
    let join = match std::env::var("LOAD_FANOUT_JOIN").as_deref() {
        Err(_) | Ok("" | "turns") => FeedJoin::InTurn,
        Ok("blocks") => FeedJoin::InBlocks,
        Ok(other) => return Err(format!("LOAD_FANOUT_JOIN={other:?} is not turns or blocks")),
    };
    let peer = match std::env::var("LOAD_PEER") {
        Err(_) => None,
        Ok(text) if text.is_empty() => None,
        Ok(text) => {
            let (name, bin) = text
                .split_once(':')
                .filter(|(name, bin)| !name.is_empty() && !bin.is_empty())
                .ok_or_else(|| format!("LOAD_PEER={text:?} is not NAME:PATH"))?;
            if !Path::new(bin).is_file() {
                return Err(format!("LOAD_PEER: {bin:?} is not a file"));
            }
            Some(Peer {
                name: name.to_owned(),
                bin: bin.into(),
            })
        }
    };
    let shared: usize = env_number("LOAD_FANOUT_SHARED", 0)?;
    if shared > 16 {
        return Err("LOAD_FANOUT_SHARED must be at most 16".into());
    }
    Ok(Fanout {
        shared,
        subscribers,
        rates,
        publish: Duration::from_secs_f64(secs),
        feeds,
        join,
        peer,
    })
}

/// The server's rule for a feed's name: `[a-z0-9][a-z0-9-]{0,63}`.
fn is_feed_name(name: &str) -> bool {
    let first = name.bytes().next();
    first.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && name.len() <= 64
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

pub fn env_number<T: FromStr>(name: &str, default: T) -> Result<T, String> {
    match std::env::var(name) {
        Err(_) => Ok(default),
        Ok(text) => text
            .trim()
            .parse()
            .map_err(|_| format!("{name}={text:?} is not a number")),
    }
}

fn env_list(name: &str, default: &[usize]) -> Result<Vec<usize>, String> {
    match std::env::var(name) {
        Err(_) => Ok(default.to_vec()),
        Ok(text) => text
            .split(',')
            .map(|item| {
                item.trim()
                    .parse()
                    .map_err(|_| format!("{name}={text:?} is not a comma-separated list"))
            })
            .collect(),
    }
}

#[derive(Clone, Copy)]
pub struct FdLimit {
    pub soft: u64,
    pub hard: u64,
}

/// Raises this process's open-file soft limit to its hard limit. The server is a child of this
/// process and inherits the raised limit too.
pub fn raise_fd_limit() -> FdLimit {
    if let Err(error) = rlimit::increase_nofile_limit(u64::MAX) {
        eprintln!("load: cannot raise the open-file limit: {error}");
    }
    let (soft, hard) = rlimit::Resource::NOFILE.get().unwrap_or((1024, 1024));
    FdLimit { soft, hard }
}

pub fn environment_line(settings: &Settings, fd: FdLimit) -> String {
    let cores = thread::available_parallelism().map_or(0, |n| n.get());
    let sysctl = |path: &str| {
        fs::read_to_string(path).map_or_else(
            |_| "?".to_owned(),
            |s| s.split_whitespace().collect::<Vec<_>>().join("-"),
        )
    };
    let mut line = format!(
        "environment: cores {cores}, vm.max_map_count {}, open files soft {} hard {}, \
         kernel.threads-max {}, kernel.pid_max {}, local ports {}, somaxconn {}, \
         interval {} ms, hold {} s, streams {:?}{}, burst {}",
        sysctl("/proc/sys/vm/max_map_count"),
        fd.soft,
        fd.hard,
        sysctl("/proc/sys/kernel/threads-max"),
        sysctl("/proc/sys/kernel/pid_max"),
        sysctl("/proc/sys/net/ipv4/ip_local_port_range"),
        sysctl("/proc/sys/net/core/somaxconn"),
        settings.interval.as_millis(),
        settings.hold.as_secs_f64(),
        settings.streams,
        if settings.floor {
            " (and the floor)"
        } else {
            ""
        },
        settings.burst,
    );
    let f = &settings.fanout;
    line.push_str(&format!(
        ", fan-out subscribers {:?} at {:?} messages/s for {} s",
        f.subscribers,
        f.rates,
        f.publish.as_secs_f64()
    ));
    match f.feeds.as_slice() {
        [] => {}
        [feed] => line.push_str(&format!(", to feed {feed}")),
        [first, .., last] => line.push_str(&format!(
            ", spread over {} feeds {first}..{last} {}",
            f.feeds.len(),
            match f.join {
                FeedJoin::InTurn => "in turn",
                FeedJoin::InBlocks => "in blocks",
            }
        )),
    }
    if f.shared > 0 {
        line.push_str(&format!(
            ", also {} instances behind one redis-server",
            f.shared
        ));
    }
    if let Some(peer) = &f.peer {
        line.push_str(&format!(", peer {} {}", peer.name, peer.bin.display()));
    }
    let s = &settings.scenarios;
    let chosen: Vec<&str> = [
        ("hold", s.hold),
        ("burst", s.burst),
        ("fanout", s.fanout),
        ("storm", s.storm),
    ]
    .iter()
    .filter_map(|&(name, on)| on.then_some(name))
    .collect();
    line.push_str(&format!(", scenarios {}", chosen.join(",")));
    // Only when chosen, so that a default run prints what it always did.
    if settings.other_server {
        line.push_str(&format!(
            ", server {}",
            settings.server_bin.to_string_lossy()
        ));
    }
    line
}

/// The kernel's clock tick, the unit of the CPU times in `/proc/PID/stat`.
pub fn clock_ticks_per_sec() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|out| String::from_utf8(out.stdout).ok())
        .and_then(|text| text.trim().parse().ok())
        .filter(|&ticks| ticks > 0)
        .unwrap_or(100)
}
