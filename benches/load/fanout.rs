//! The **fan-out** run: N subscribers hold a chatroom's stream while one publisher posts a
//! message at a steady rate; every message is timed from the start of its `POST` to its arrival
//! at every subscriber. It runs against this server (the chat's `/chat/stream` and
//! `/chat/messages`, or named feeds' `/feeds/NAME/stream` and `/feeds/NAME`: with several, the
//! subscribers and the messages are spread over them in turn), several instances of it sharing
//! the feeds through one redis-server (subscribers spread over them in turn, the publisher on the
//! first; CPU and footprint summed over every process, Redis's included), or a peer
//! (`/subscribe`, `/publish`), and leaves its figures in a report; nothing here prints.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::client::{Client, Phase, Ready};
use crate::deliveries::{Deliveries, match_deliveries};
use crate::footprint::{ProcSample, sample_process};
use crate::peer::PeerProcess;
use crate::ping::request_status;
use crate::process::{ServerProcess, proc_cpu_ticks};
use crate::publish::{Publish, Schedule, publish_all};
use crate::redis_server::RedisServer;
use crate::scenarios::ramp_up;
use crate::settings::{DRAIN, FIRST_EVENT_TIMEOUT, PUBLISH_TIMEOUT, Peer, Settings};
use crate::stats::{Outcomes, Spread};

/// The server a fan-out run measures.
pub enum Target<'a> {
    /// This build's server, or `LOAD_SERVER_BIN`.
    Ours,
    Peer(&'a Peer),
    /// This many instances of this build (or `LOAD_SERVER_BIN`, with the `redis` feature)
    /// behind one redis-server started for the run.
    Shared(usize),
}

impl Target<'_> {
    pub fn name(&self) -> String {
        match self {
            Target::Ours => "sse-htmx".into(),
            Target::Peer(peer) => peer.name.clone(),
            Target::Shared(instances) => format!("sse-htmx x{instances} + redis"),
        }
    }

    /// The paths to subscribe to and to publish to, one of each per feed.
    fn paths(&self, settings: &Settings) -> (Vec<String>, Vec<String>) {
        let feeds = &settings.fanout.feeds;
        match self {
            Target::Ours | Target::Shared(_) if feeds.is_empty() => {
                (vec!["/chat/stream".into()], vec!["/chat/messages".into()])
            }
            Target::Ours | Target::Shared(_) => (
                feeds.iter().map(|f| format!("/feeds/{f}/stream")).collect(),
                feeds.iter().map(|f| format!("/feeds/{f}")).collect(),
            ),
            Target::Peer(_) => (vec!["/subscribe".into()], vec!["/publish".into()]),
        }
    }

    fn start(&self, settings: &Settings) -> Result<Running, String> {
        match self {
            // No rate limit: one client publishes every message.
            Target::Ours => {
                ServerProcess::launch(&settings.server_bin, &[], &["--publish-limit", "0"])
                    .map(Running::Ours)
            }
            Target::Peer(peer) => PeerProcess::launch(&peer.bin).map(Running::Peer),
            Target::Shared(instances) => {
                let redis =
                    RedisServer::start_in_memory("load").ok_or("redis-server is not installed")?;
                let args = ["--publish-limit", "0", "--redis", &redis.url()];
                let servers = (0..*instances)
                    .map(|_| ServerProcess::launch(&settings.server_bin, &[], &args))
                    .collect::<Result<Vec<_>, _>>()?;
                Ok(Running::Shared { servers, redis })
            }
        }
    }
}

enum Running {
    Ours(ServerProcess),
    Peer(PeerProcess),
    Shared {
        servers: Vec<ServerProcess>,
        redis: RedisServer,
    },
}

impl Running {
    /// Where the messages are published.
    fn addr(&self) -> std::net::SocketAddr {
        self.addrs()[0]
    }

    /// Where the subscribers go, in turn.
    fn addrs(&self) -> Vec<std::net::SocketAddr> {
        match self {
            Running::Ours(server) => vec![server.addr],
            Running::Peer(peer) => vec![peer.addr],
            Running::Shared { servers, .. } => servers.iter().map(|s| s.addr).collect(),
        }
    }

    /// Every process whose costs count.
    fn pids(&self) -> Vec<u32> {
        match self {
            Running::Ours(server) => vec![server.pid()],
            Running::Peer(peer) => vec![peer.pid()],
            Running::Shared { servers, redis } => {
                servers.iter().map(|s| s.pid()).chain(redis.pid()).collect()
            }
        }
    }

    fn is_alive(&mut self) -> bool {
        match self {
            Running::Ours(server) => server.is_alive(),
            Running::Peer(peer) => peer.is_alive(),
            Running::Shared { servers, .. } => servers.iter_mut().all(|s| s.is_alive()),
        }
    }

    fn exit_description(&mut self) -> String {
        match self {
            Running::Ours(server) => server.exit_description(),
            Running::Peer(peer) => peer.exit_description(),
            Running::Shared { servers, .. } => servers
                .iter_mut()
                .map(|s| s.exit_description())
                .collect::<Vec<_>>()
                .join("; "),
        }
    }
}

/// The CPU time of all `pids`, in clock ticks; `None` if one is gone.
fn cpu_ticks(pids: &[u32]) -> Option<u64> {
    pids.iter().map(|&pid| proc_cpu_ticks(pid)).sum()
}

/// The name this server gives its fan-out threads (see `app::chat::live`).
const FAN_OUT_THREAD: &str = "feed-fan-out";

/// CPU ticks of each live thread of `pids`, by thread id, with whether it is a fan-out thread.
fn thread_ticks(pids: &[u32]) -> std::collections::HashMap<(u32, u32), (bool, u64)> {
    let mut ticks = std::collections::HashMap::new();
    for &pid in pids {
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            continue;
        };
        for task in tasks.flatten() {
            let Some(tid) = task.file_name().to_str().and_then(|t| t.parse().ok()) else {
                continue;
            };
            let Ok(stat) = std::fs::read_to_string(task.path().join("stat")) else {
                continue;
            };
            // As in `proc_cpu_ticks`: the name is in parentheses, utime and stime follow.
            let Some((head, after_name)) = stat.rsplit_once(')') else {
                continue;
            };
            let fan_out = head.ends_with(&format!("({FAN_OUT_THREAD}"));
            let fields: Vec<&str> = after_name.split_whitespace().collect();
            let read = |i: usize| fields.get(i).and_then(|f| f.parse::<u64>().ok());
            if let (Some(utime), Some(stime)) = (read(11), read(12)) {
                ticks.insert((pid, tid), (fan_out, utime + stime));
            }
        }
    }
    ticks
}

/// Of the CPU ticks the threads of a server spent between two [`thread_ticks`] readings: the
/// fan-out threads', and the other threads' that were there at both (the rest of the process's
/// figure is of threads that started or ended in between).
fn split_ticks(
    start: &std::collections::HashMap<(u32, u32), (bool, u64)>,
    end: &std::collections::HashMap<(u32, u32), (bool, u64)>,
) -> (u64, u64) {
    let (mut fan_out, mut others) = (0, 0);
    for (task, &(is_fan_out, ticks)) in end {
        if let Some(&(_, before)) = start.get(task) {
            let spent = ticks.saturating_sub(before);
            if is_fan_out {
                fan_out += spent
            } else {
                others += spent
            }
        }
    }
    (fan_out, others)
}

/// The footprint of all `pids` added up (the kernel stack is system-wide already); `None` if
/// one is gone.
fn sample(pids: &[u32]) -> Option<ProcSample> {
    let samples: Vec<ProcSample> = pids
        .iter()
        .map(|&pid| sample_process(pid))
        .collect::<Option<_>>()?;
    let first = *samples.first()?;
    Some(samples[1..].iter().fold(first, |sum, s| ProcSample {
        rss_kib: sum.rss_kib + s.rss_kib,
        threads: sum.threads + s.threads,
        mappings: sum.mappings + s.mappings,
        fds: sum.fds + s.fds,
        kernel_stack_kib: sum.kernel_stack_kib,
    }))
}

pub struct FanoutReport {
    pub server: String,
    pub subscribers: usize,
    pub rate: usize,
    /// How long the publisher published.
    pub publish: Duration,
    pub ramp: Duration,
    pub outcomes: Outcomes,
    /// Subscribers with their head when publishing began.
    pub ready: usize,
    /// Subscribers still open at the end.
    pub held_at_end: usize,
    pub published: usize,
    pub accepted: usize,
    pub first_publish_failure: Option<String>,
    /// Start of a `POST` to its answer, in ms.
    pub post: Option<Spread>,
    pub deliveries: Deliveries,
    /// From the first publish to the last delivery (or the end of the wait for it): the
    /// span of the CPU figures.
    pub window: Duration,
    pub idle: Option<ProcSample>,
    pub held: Option<ProcSample>,
    pub cpu_ticks: Option<u64>,
    /// Of `cpu_ticks`: the fan-out threads', and the other threads' that lived through the
    /// window (the rest is of threads that started or ended in it).
    pub fan_out_ticks: u64,
    pub lasting_ticks: u64,
    pub client_cpu_ticks: Option<u64>,
    pub clock_ticks: u64,
    pub server_alive: bool,
    pub server_exit: String,
}

pub fn run_fanout(
    settings: &Settings,
    target: &Target,
    subscribers: usize,
    rate: usize,
    clock_ticks: u64,
) -> Result<FanoutReport, String> {
    let mut server = target.start(settings)?;
    let (addr, pids) = (server.addr(), server.pids());
    let (subscribe_paths, publish_paths) = target.paths(settings);
    // One request first, so the idle figures are of a server that has served; not a publish,
    // so the subscribers' streams begin with an empty history. Any status will do.
    let warm_up = format!("GET / HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    request_status(addr, warm_up.as_bytes(), PUBLISH_TIMEOUT)
        .map_err(|error| format!("the server does not answer: {error}"))?;
    thread::sleep(Duration::from_millis(200));
    let idle = sample(&pids);

    let mut client = Client::spread(
        &server.addrs(),
        &subscribe_paths[0],
        Ready::Head,
        Some(FIRST_EVENT_TIMEOUT),
    )
    .map_err(|error| format!("cannot create a poller: {error}"))?
    .spread_over(&subscribe_paths, settings.fanout.join.of(subscribers));
    let ramp_started = Instant::now();
    ramp_up(&mut client, subscribers);
    let settle_deadline = Instant::now() + FIRST_EVENT_TIMEOUT + Duration::from_secs(1);
    client.run_until(settle_deadline, |client| client.pending() == 0);
    let ramp = ramp_started.elapsed();
    let ready = client.count(|phase| matches!(phase, Phase::Streaming));
    let feeds = publish_paths.len();
    let mut ready_per_feed = vec![0; feeds];
    for (stream, conn) in client.conns.iter().enumerate() {
        if matches!(conn.phase, Phase::Streaming) {
            ready_per_feed[client.path_of(stream)] += 1;
        }
    }

    let schedule = Schedule {
        addr,
        paths: publish_paths,
        rate,
        count: (rate as f64 * settings.fanout.publish.as_secs_f64()).round() as usize,
    };
    let accepted: Arc<[AtomicUsize]> = (0..feeds).map(|_| AtomicUsize::new(0)).collect();
    let threads_start = thread_ticks(&pids);
    let cpu_start = cpu_ticks(&pids);
    let client_cpu_start = proc_cpu_ticks(std::process::id());
    let window_start = Instant::now();
    let publisher = {
        let accepted = accepted.clone();
        thread::Builder::new()
            .name("publish".into())
            .spawn(move || publish_all(&schedule, &accepted))
            .map_err(|error| format!("no publisher thread: {error}"))?
    };
    // Publishing ends by itself (see `publish_all`); the deliveries get DRAIN more.
    let deadline = window_start + settings.fanout.publish + PUBLISH_TIMEOUT * 2 + DRAIN;
    client.run_until(deadline, |client| {
        let expected: usize = (ready_per_feed.iter().zip(accepted.iter()))
            .map(|(ready, accepted)| ready * accepted.load(Ordering::Relaxed))
            .sum();
        publisher.is_finished() && client.tokens_received >= expected
    });
    let window = window_start.elapsed();
    let cpu_end = cpu_ticks(&pids);
    let (fan_out_ticks, lasting_ticks) = split_ticks(&threads_start, &thread_ticks(&pids));
    let client_cpu_end = proc_cpu_ticks(std::process::id());
    let held = sample(&pids);
    let held_at_end = client.count(|phase| matches!(phase, Phase::Streaming));
    let publishes: Vec<Publish> = publisher
        .join()
        .map_err(|_| "the publisher panicked".to_owned())?;
    let mut post: Vec<f64> = publishes
        .iter()
        .filter_map(|p| p.answered.as_ref().ok())
        .map(|answered| answered.as_secs_f64() * 1e3)
        .collect();
    let server_alive = server.is_alive();

    Ok(FanoutReport {
        server: target.name(),
        subscribers,
        rate,
        publish: settings.fanout.publish,
        ramp,
        outcomes: Outcomes::of(&client),
        ready,
        held_at_end,
        published: publishes.len(),
        accepted: post.len(),
        first_publish_failure: publishes.iter().find_map(|p| p.answered.clone().err()),
        post: Spread::of(&mut post),
        deliveries: match_deliveries(&client, &publishes, &ready_per_feed),
        window,
        idle,
        held,
        cpu_ticks: cpu_start.zip(cpu_end).map(|(start, end)| end - start),
        fan_out_ticks,
        lasting_ticks,
        client_cpu_ticks: client_cpu_start
            .zip(client_cpu_end)
            .map(|(start, end)| end - start),
        clock_ticks,
        server_alive,
        server_exit: server.exit_description(),
    })
}
