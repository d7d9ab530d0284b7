//! The runs: **hold** opens N streams at the server's pace and holds them while pinging;
//! **burst** opens many connections at once. Each starts a fresh server and leaves its figures
//! in a report; nothing here prints.

use std::thread;
use std::time::{Duration, Instant};

use std::net::SocketAddr;
use std::path::Path;

use crate::client::{Client, Phase, Ready};
use crate::floor;
use crate::footprint::{ProcSample, sample_process};
use crate::peer::PeerProcess;
use crate::ping::{PingStats, ping_once, ping_until};
use crate::process::{ServerProcess, proc_cpu_ticks};
use crate::settings::{
    BURST_WAIT, FIRST_EVENT_TIMEOUT, RAMP_BATCH, RAMP_LIMIT, RAMP_PAUSE, Settings,
};
use crate::stats::{Lateness, Outcomes, Spread, events_between, first_event_spread, lateness};

/// The server of `settings` (this build's, or `LOAD_SERVER_BIN`) at the scenario's interval.
fn start_server(settings: &Settings) -> Result<ServerProcess, String> {
    let interval = format!("{}ms", settings.interval.as_millis());
    ServerProcess::launch(&settings.server_bin, &[], &["--interval", &interval])
}

/// What a hold or a burst runs against: both open the counter's `/connect` streams.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum CounterTarget {
    /// The server of `settings`.
    Server,
    /// The bare tiny_http floor (`floor.rs`), this bench's binary started again.
    Floor,
}

impl CounterTarget {
    pub fn name(self) -> &'static str {
        match self {
            CounterTarget::Server => "sse-htmx",
            CounterTarget::Floor => "floor",
        }
    }
}

/// A running server of either kind, as a hold sees it.
trait Running {
    fn addr(&self) -> SocketAddr;
    fn pid(&self) -> u32;
    fn is_alive(&mut self) -> bool;
    fn exit_description(&mut self) -> String;
}

impl Running for ServerProcess {
    fn addr(&self) -> SocketAddr {
        self.addr
    }
    fn pid(&self) -> u32 {
        ServerProcess::pid(self)
    }
    fn is_alive(&mut self) -> bool {
        ServerProcess::is_alive(self)
    }
    fn exit_description(&mut self) -> String {
        ServerProcess::exit_description(self)
    }
}

impl Running for PeerProcess {
    fn addr(&self) -> SocketAddr {
        self.addr
    }
    fn pid(&self) -> u32 {
        PeerProcess::pid(self)
    }
    fn is_alive(&mut self) -> bool {
        PeerProcess::is_alive(self)
    }
    fn exit_description(&mut self) -> String {
        PeerProcess::exit_description(self)
    }
}

fn start(settings: &Settings, target: CounterTarget) -> Result<Box<dyn Running>, String> {
    match target {
        CounterTarget::Server => Ok(Box::new(start_server(settings)?)),
        CounterTarget::Floor => {
            let this = std::env::current_exe().map_err(|error| format!("this binary: {error}"))?;
            let interval = settings.interval.as_millis().to_string();
            let floor = PeerProcess::launch_with(Path::new(&this), |port| {
                vec![floor::ARG.into(), port.to_string(), interval.clone()]
            })?;
            Ok(Box::new(floor))
        }
    }
}

pub struct HoldReport {
    pub target: CounterTarget,
    pub streams: usize,
    pub interval: Duration,
    pub hold: Duration,
    pub ramp: Duration,
    pub outcomes: Outcomes,
    /// Streams still open when the held figures were sampled: the divisor of the per-stream costs.
    pub held_streams: usize,
    /// Every event after the first, from the ramp-up on.
    pub lateness: Lateness,
    /// Only the events that arrived during the hold window: the steady state, without the
    /// ramp-up's thread creation.
    pub lateness_in_hold: Lateness,
    pub first_event: Option<Spread>,
    pub idle: Option<ProcSample>,
    pub held: Option<ProcSample>,
    pub cpu_ticks: Option<u64>,
    /// This process's own CPU over the hold: it shares the cores with the server, so a busy
    /// client would inflate the lateness figures.
    pub client_cpu_ticks: Option<u64>,
    pub clock_ticks: u64,
    pub events_in_hold: usize,
    pub ping: PingStats,
    pub server_alive: bool,
    pub server_exit: String,
}

pub fn run_hold(
    settings: &Settings,
    target: CounterTarget,
    streams: usize,
    clock_ticks: u64,
) -> Result<HoldReport, String> {
    let mut server = start(settings, target)?;
    let pid = server.pid();
    let addr = server.addr();
    // One request first, so the idle figures are of a server that has served.
    ping_once(addr).map_err(|error| format!("the server does not answer: {error}"))?;
    thread::sleep(Duration::from_millis(200));
    let idle = sample_process(pid);

    let mut client = Client::new(
        addr,
        "/connect",
        Ready::FirstEvent,
        Some(FIRST_EVENT_TIMEOUT),
    )
    .map_err(|error| format!("cannot create a poller: {error}"))?;
    if target == CounterTarget::Floor {
        client = client.closing();
    }
    let ramp_started = Instant::now();
    ramp_up(&mut client, streams);
    // Every stream either gets its first event or times out within FIRST_EVENT_TIMEOUT.
    let settle_deadline = Instant::now() + FIRST_EVENT_TIMEOUT + Duration::from_secs(1);
    client.run_until(settle_deadline, |client| client.pending() == 0);
    let ramp = ramp_started.elapsed();

    let hold_start = Instant::now();
    let hold_end = hold_start + settings.hold;
    let cpu_start = proc_cpu_ticks(pid);
    let client_cpu_start = proc_cpu_ticks(std::process::id());
    let pinger = thread::Builder::new()
        .name("ping".into())
        .spawn(move || ping_until(addr, hold_end));
    client.run_until(hold_end, |_| false);
    let hold_end = Instant::now();
    let cpu_end = proc_cpu_ticks(pid);
    let client_cpu_end = proc_cpu_ticks(std::process::id());
    let held = sample_process(pid);
    let held_streams = client.count(|phase| matches!(phase, Phase::Streaming));
    let ping = match pinger {
        Ok(handle) => handle.join().unwrap_or_default(),
        Err(error) => PingStats {
            first_failure: Some(format!("no ping thread: {error}")),
            ..PingStats::default()
        },
    };
    let server_alive = server.is_alive();

    Ok(HoldReport {
        target,
        streams,
        interval: settings.interval,
        hold: hold_end - hold_start,
        ramp,
        outcomes: Outcomes::of(&client),
        held_streams,
        lateness: lateness(&client, settings.interval, |_| true),
        lateness_in_hold: lateness(&client, settings.interval, |arrival| {
            arrival >= hold_start && arrival < hold_end
        }),
        first_event: first_event_spread(&client),
        idle,
        held,
        cpu_ticks: cpu_start.zip(cpu_end).map(|(start, end)| end - start),
        client_cpu_ticks: client_cpu_start
            .zip(client_cpu_end)
            .map(|(start, end)| end - start),
        clock_ticks,
        events_in_hold: events_between(&client, hold_start, hold_end),
        ping,
        server_alive,
        server_exit: server.exit_description(),
    })
}

/// Opens `streams` streams in batches, at the server's pace (see [`RAMP_BATCH`](crate::settings::RAMP_BATCH)).
pub fn ramp_up(client: &mut Client, streams: usize) {
    let give_up = Instant::now() + RAMP_LIMIT;
    let mut last_batch: Option<Instant> = None;
    while client.opened() < streams && Instant::now() < give_up {
        let paused = last_batch.is_none_or(|at| at.elapsed() >= RAMP_PAUSE);
        if paused && client.pending() < RAMP_BATCH / 2 {
            client.open((streams - client.opened()).min(RAMP_BATCH));
            last_batch = Some(Instant::now());
        }
        client.poll_once(Instant::now() + RAMP_PAUSE);
    }
}

pub struct BurstReport {
    pub target: CounterTarget,
    pub connections: usize,
    /// The server's CPU from the first connect until every connection had its first event or
    /// the wait ended.
    pub cpu_ticks: Option<u64>,
    pub clock_ticks: u64,
    pub waited: Duration,
    pub outcomes: Outcomes,
    pub first_event: Option<Spread>,
    pub server_alive: bool,
    pub server_exit: String,
}

pub fn run_burst(
    settings: &Settings,
    target: CounterTarget,
    clock_ticks: u64,
) -> Result<BurstReport, String> {
    let mut server = start(settings, target)?;
    ping_once(server.addr()).map_err(|error| format!("the server does not answer: {error}"))?;
    // No per-stream timeout: a stream still waiting at the end of the wait is stranded.
    let mut client = Client::new(server.addr(), "/connect", Ready::FirstEvent, None)
        .map_err(|error| format!("cannot create a poller: {error}"))?;
    if target == CounterTarget::Floor {
        client = client.closing();
    }
    let cpu_start = proc_cpu_ticks(server.pid());
    let started = Instant::now();
    client.open(settings.burst);
    client.run_until(started + BURST_WAIT, |client| client.pending() == 0);
    let waited = started.elapsed();
    let cpu_ticks = proc_cpu_ticks(server.pid())
        .zip(cpu_start)
        .map(|(end, start)| end.saturating_sub(start));
    let server_alive = server.is_alive();
    Ok(BurstReport {
        target,
        connections: settings.burst,
        cpu_ticks,
        clock_ticks,
        waited,
        outcomes: Outcomes::of(&client),
        first_event: first_event_spread(&client),
        server_alive,
        server_exit: server.exit_description(),
    })
}
