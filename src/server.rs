//! The composition root: reads the host's limits, binds the HTTP layer, puts the application
//! behind it, and runs until stopped.

use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use std::time::{Duration, SystemTime};

use crate::app::access::{Cors, Token};
use crate::app::chat::feeds::{self, Noted};
use crate::app::chat::history::Bounds;
use crate::app::chat::journal::{self, Journal};
use crate::app::chat::message;
use crate::app::chat::{Carried, Failure, Feeds, Settings};
use crate::app::exec::{Programs, Sink};
use crate::app::{App, Counter};
use crate::config::Config;
use crate::error::Error;
use crate::lock;
use crate::log::Log;
use crate::metrics::Metrics;
use crate::reexec::Program;
use crate::tiny::{self, Capacity, Handed, HostLimits, HttpServer, Inherited, Reason, WouldFail};

/// How long a stopped server waits for its last log lines to be written. Short: a stderr that
/// nobody reads must not hold up the stop (see `printer`).
const FLUSH_AT_STOP: Duration = Duration::from_millis(100);

/// A bound server. [`Server::run`] serves until [`Stopper::stop`] is called.
pub struct Server {
    http: HttpServer,
    app: Arc<App>,
    capacity: Capacity,
    limits: HostLimits,
    control: Arc<Control>,
    /// `--exec`: started when the server runs.
    programs: Vec<(String, String)>,
    max_message: usize,
    log: Log,
}

/// Stops a running [`Server`] from another thread. Cheap to clone.
#[derive(Clone)]
pub struct Stopper {
    control: Arc<Control>,
    metrics: Arc<Metrics>,
}

/// What a [`Stopper`] acts on: the HTTP server running now (a new one after an exec that
/// failed), and the program file to run again.
struct Control {
    http: Mutex<tiny::HttpStopper>,
    program: Option<Program>,
    /// `--token-file`, which a new image reads again as it starts.
    token_file: Option<PathBuf>,
}

impl Control {
    fn new_image_would_fail(&self) -> Option<String> {
        new_image_would_fail(self.token_file.as_deref())
    }
}

/// Why a new image, given the same arguments, would not start (so a re-exec would end the
/// server), as far as this image can tell: what it reads at its start that may have changed
/// since. The journal is opened again, or created; a program file is tried first.
fn new_image_would_fail(token_file: Option<&Path>) -> Option<String> {
    let path = token_file?;
    let error = Token::read(path).err()?;
    Some(format!("the token file {}: {error}", path.display()))
}

/// How the binary was started: the program file to run again, which lets the server replace
/// its own image (see [`Stopper::upgrade`]), and what the image before this one handed over.
pub struct Launch {
    program: Program,
    inherited: Option<Inherited>,
}

impl Launch {
    /// This process's program file and arguments, and what the image before it handed over
    /// (named in its environment). To be called once, first thing: the descriptors handed over
    /// are taken then. The string says why a handoff could not be taken; the server then binds
    /// its address as usual.
    pub fn from_process() -> std::io::Result<(Launch, Option<String>)> {
        let (inherited, problem) = match Inherited::take() {
            Some(Ok(inherited)) => (Some(inherited), None),
            Some(Err(problem)) => (None, Some(problem)),
            None => (None, None),
        };
        let launch = Launch {
            program: Program::current()?,
            inherited,
        };
        Ok((launch, problem))
    }
}

impl Server {
    /// Binds `config.addr` (port 0 picks a free port; see [`Server::local_addr`]). Sets the
    /// open-file soft limit as high as the host can carry (see `capacity`) and derives the stream
    /// capacity from the host's limits, unless `config.max_streams` sets it.
    ///
    /// A server made so never replaces the process image: see [`Server::start`].
    pub fn bind(config: Config) -> Result<Server, Error> {
        Server::start(config, None)
    }

    /// [`Server::bind`] for the binary: with a [`Launch`], the server can replace the process
    /// image to heal (when tiny_http holds too many connections for good) and to upgrade
    /// ([`Stopper::upgrade`]); and if the image before this one handed over its listener and
    /// every feed's messages, it serves them, and binds nothing.
    pub fn start(config: Config, launch: Option<Launch>) -> Result<Server, Error> {
        let limits = HostLimits::raise_and_read();
        let capacity = match config.max_streams {
            Some(streams) => Capacity {
                streams,
                limited_by: "--max-streams",
                descriptors: limits.stream_descriptors(),
                above_limit: limits.above_limit(),
            },
            None => limits.capacity(),
        };
        let metrics = Arc::new(Metrics::default());
        let settings = tiny::Settings {
            addr: config.addr,
            idle_timeout: config.idle_timeout,
            write_timeout: config.write_timeout,
            keepalive: config.keepalive,
            max_streams: capacity.streams,
            stream_descriptors: capacity.descriptors,
            max_fd: RawFd::try_from(limits.open_files.saturating_sub(1)).unwrap_or(RawFd::MAX),
            drainable_body: limits.drainable_body(),
            reexec: launch.is_some().then(|| {
                let token_file = config.token_file.clone();
                WouldFail(Arc::new(move || {
                    new_image_would_fail(token_file.as_deref())
                }))
            }),
        };
        let log = Log {
            quiet: config.quiet,
        };
        #[cfg(feature = "redis")]
        if config.redis.is_some() && config.store.is_some() {
            // Two places that would each say which messages exist: Redis keeps them (with its
            // own persistence), so a journal beside it could only disagree.
            return Err(Error::Redis(
                "cannot be used with --store: Redis keeps the messages (configure its persistence)"
                    .into(),
            ));
        }
        let (program, inherited) = match launch {
            Some(launch) => (Some(launch.program), launch.inherited),
            None => (None, None),
        };
        let (handed, carried) = match inherited {
            Some(inherited) => {
                let handed = Handed {
                    listener: inherited.listener,
                    series: inherited.series,
                };
                let carried = Carried {
                    records: inherited.state,
                    note: inherited.note,
                };
                (Some(handed), Some(carried))
            }
            None => (None, None),
        };
        let token = read_token(&config, log)?;
        let http = HttpServer::bind(settings, metrics.clone(), log, handed)?;
        let feeds = open_feeds(&config, carried.as_ref(), log)?;
        for (at, (name, _)) in config.exec.iter().enumerate() {
            // Two programs under one name would be one feed, and their log lines alike.
            if config.exec[..at].iter().any(|(earlier, _)| earlier == name) {
                return Err(Error::Flag(format!("--exec {name}=...: given twice")));
            }
            program_feed(&feeds, name)?;
        }
        let feeds = share(feeds, &config, log)?;
        let app = Arc::new(App {
            feeds,
            counter: Counter {
                interval: config.interval,
                retry: config.retry,
                panic_at_event: config.panic_at_event,
            },
            token,
            cors: Cors(config.cors.clone()),
            metrics,
        });
        let control = Arc::new(Control {
            http: Mutex::new(http.stopper()),
            program,
            token_file: config.token_file.clone(),
        });
        Ok(Server {
            http,
            app,
            capacity,
            limits,
            control,
            programs: config.exec,
            max_message: config.max_message,
            log,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.http.local_addr()
    }

    /// How many streams the server accepts before it answers `503`, and why that many.
    pub fn capacity(&self) -> &Capacity {
        &self.capacity
    }

    /// The open-file soft limit the server runs with, and the hard limit.
    pub fn open_files(&self) -> (u64, u64) {
        (self.limits.open_files, self.limits.open_files_hard)
    }

    pub fn stopper(&self) -> Stopper {
        Stopper {
            control: self.control.clone(),
            metrics: self.app.metrics.clone(),
        }
    }

    /// Serves requests until stopped, then gives every stream a moment to end its body, and the
    /// log a moment to be written.
    ///
    /// Stopped to replace the process image, it hands the listener and every feed's messages to
    /// the program it runs, and does not return. If the exec fails, it serves on, on the same
    /// listener, with the same messages.
    pub fn run(mut self) -> Result<(), Error> {
        let log = self.log;
        let mut programs = Some(self.start_programs()?);
        loop {
            let ran = self.http.run(self.app.clone());
            let handoff = match ran {
                Ok(Some(handoff)) => handoff,
                stopped => {
                    wind_down(&self.app, programs.take());
                    return stopped.map(|_| ());
                }
            };
            self.app.feeds.sync();
            if let Some(program) = &self.control.program {
                // Healing runs this very image again, whatever file is at the path now.
                let path = match handoff.reason {
                    Reason::Upgrade => program.path.as_path(),
                    Reason::Heal { .. } => Path::new("/proc/self/exe"),
                };
                // The new image starts the programs again; these would run on unwatched.
                if let Some(running) = programs.take() {
                    running.stop();
                }
                let why = match self.control.new_image_would_fail() {
                    Some(why) => why,
                    None => {
                        let carried = self.app.feeds.carry();
                        // The lines written so far go out before this image ends.
                        Log::flush(FLUSH_AT_STOP);
                        // Stopping the programs takes up to a second, in which a stop may have
                        // been asked for; a signal that comes from now on is taken by the new
                        // image (no signal is taken while this is held).
                        let _signals = crate::process::signals::hold();
                        if lock(&self.control.http).stop_asked() {
                            wind_down(&self.app, None);
                            return Ok(());
                        }
                        let error =
                            handoff.exec(path, &program.args, &carried.records, &carried.note);
                        error.to_string()
                    }
                };
                log.line(format_args!(
                    "cannot replace the process image with {}: {why}; serving on",
                    path.display()
                ));
            }
            // A stop asked for while the re-exec failed ends the process, as it would have. Held
            // until the new server's stopper is in place: a stop asked for meanwhile waits for it,
            // rather than stop the server that has stopped already.
            let mut stopper = lock(&self.control.http);
            if stopper.stop_asked() {
                drop(stopper);
                wind_down(&self.app, programs.take());
                return Ok(());
            }
            self.http = handoff.serve_again()?;
            *stopper = self.http.stopper();
            drop(stopper);
            if programs.is_none() {
                programs = Some(self.start_programs()?);
            }
        }
    }

    /// Starts the `--exec` programs, each line a message in its feed.
    fn start_programs(&self) -> Result<Programs, Error> {
        let lines = program_lines(self.app.feeds.clone(), self.log);
        Programs::start(&self.programs, self.max_message, &lines, self.log).map_err(|source| {
            Error::Start {
                what: "a program's supervisor thread",
                source: source.into(),
            }
        })
    }
}

/// What a stop does once the server has stopped: the programs stopped, the feeds synced and the
/// log written.
fn wind_down(app: &App, programs: Option<Programs>) {
    if let Some(running) = programs {
        running.stop();
    }
    app.feeds.stop_following();
    app.feeds.sync();
    Log::flush(FLUSH_AT_STOP);
}

/// The feeds, with what the store holds of each if there is one, or what the image before this
/// one `carried` over.
fn open_feeds(config: &Config, carried: Option<&Carried>, log: Log) -> Result<Feeds, Error> {
    let bounds = Bounds {
        max_messages: config.history,
        ..Bounds::default()
    };
    let store_error = |source| Error::Store {
        path: config.store.clone().unwrap_or_default(),
        source,
    };
    let mut noted = carried.map_or_else(Vec::new, |carried| Noted::read(&carried.note));
    let (journal, loaded) = match (&config.store, carried) {
        (Some(path), _) => {
            let (journal, loaded) = Journal::open(path, bounds).map_err(store_error)?;
            // The store knows what was held before its messages; the note is of memory.
            noted.iter_mut().for_each(|note| note.before = None);
            (Some(journal), loaded)
        }
        (None, Some(carried)) => (None, journal::decode_all(&carried.records, bounds)),
        (None, None) => (None, journal::Loaded::default()),
    };
    if let Some(why) = loaded.cannot_compact {
        // Refused at a start; after a re-exec, the image before served it, and still would.
        if carried.is_none() {
            return Err(Error::Flag(format!("--store {why}")));
        }
        log.line(format_args!("store: {why}"));
    }
    for problem in loaded.problems {
        log.line(format_args!("store: {problem}"));
    }
    let rooms = feeds::rooms(loaded.feeds, &noted, bounds, SystemTime::now());
    if rooms.len() > config.max_feeds {
        // Stored by a run with a larger bound: each is served, and none is added.
        log.line(format_args!(
            "store: {} feeds, more than --max-feeds {}",
            rooms.len(),
            config.max_feeds
        ));
    }
    let settings = Settings {
        max_feeds: config.max_feeds,
        bounds,
        limits: message::Limits {
            max_chars: config.max_message,
            ..message::Limits::default()
        },
        publish_limit: config.publish_limit,
        retry: config.retry,
        log,
    };
    Feeds::start(rooms, journal, settings).map_err(|source| Error::Start {
        what: "the feeds' fan-out thread",
        source: source.into(),
    })
}

/// The feeds as this process's own: a build without the `redis` feature has no `--redis`.
#[cfg(not(feature = "redis"))]
fn share(feeds: Feeds, _: &Config, _: Log) -> Result<Arc<Feeds>, Error> {
    Ok(Arc::new(feeds))
}

/// The feeds as this process's own (no `--redis`), or shared with other instances through
/// Redis: publishes go to each feed's stream, and a follower thread brings every message back.
#[cfg(feature = "redis")]
fn share(feeds: Feeds, config: &Config, log: Log) -> Result<Arc<Feeds>, Error> {
    use crate::app::chat::redis;
    let Some(url) = &config.redis else {
        return Ok(Arc::new(feeds));
    };
    let redis = Arc::new(redis::Redis::open(url, config.history).map_err(Error::Redis)?);
    let feeds = Arc::new(feeds.shared_through(redis.clone()));
    redis::follow(redis, config.history, feeds.clone(), log).map_err(|source| Error::Start {
        what: "the Redis follower thread",
        source: source.into(),
    })?;
    Ok(feeds)
}

/// Makes the feed of an `--exec` program, so that it exists from the start.
fn program_feed(feeds: &Feeds, name: &str) -> Result<(), Error> {
    if !feeds::valid_name(name) {
        return Err(Error::Flag(format!(
            "--exec {name}=...: a feed's name is a-z, 0-9 and -, not first, up to 64"
        )));
    }
    if !feeds.create(name) {
        return Err(Error::Flag(format!(
            "--exec {name}=...: no room for one more feed (--max-feeds {})",
            feeds.max_feeds()
        )));
    }
    Ok(())
}

/// Each line a program writes is a message in its feed, from the feed's name.
fn program_lines(feeds: Arc<Feeds>, log: Log) -> Sink {
    let max_name = message::Limits::default().max_name_chars;
    Arc::new(move |feed: &str, text: String| {
        // A feed's name is ASCII: cut anywhere.
        let name = feed[..feed.len().min(max_name)].to_owned();
        let why = match feeds.publish(feed, message::Draft { name, text }) {
            Ok(_) => return,
            Err(Failure::Refused(refusal)) => refusal.to_string(),
            Err(Failure::Store(error)) => error.to_string(),
            #[cfg(feature = "redis")]
            Err(Failure::Unavailable(unavailable)) => unavailable.why,
        };
        log.line(format_args!("exec {feed}: a line was not published: {why}"));
    })
}

/// The publishers' token, if `--token-file` names one; a file others can read is said in the log.
fn read_token(config: &Config, log: Log) -> Result<Option<Token>, Error> {
    let Some(path) = &config.token_file else {
        return Ok(None);
    };
    let (token, warning) = Token::read(path).map_err(|source| Error::Token {
        path: path.clone(),
        source,
    })?;
    if let Some(warning) = warning {
        log.line(format_args!("sse-htmx: {warning}"));
    }
    Ok(Some(token))
}

impl Stopper {
    /// Asks the server to stop: the request loop returns and every stream ends its body.
    pub fn stop(&self) {
        lock(&self.control.http).stop();
    }

    /// Replaces the process image with the program file it was started from (a new version,
    /// if the file was replaced), with the same PID and arguments: the server stops accepting,
    /// ends every stream (pages reconnect at once and resume by `Last-Event-ID`), and hands its
    /// listener and every feed's messages to the new image, which serves them. Connections that
    /// arrive meanwhile wait in the listen queue.
    ///
    /// The file must first start and print its version (`Program::check`); if it does not,
    /// nothing changes. Returns what it printed, or why there is no upgrade.
    pub fn upgrade(&self) -> Result<String, String> {
        let program =
            (self.control.program.as_ref()).ok_or("this server was not started by its binary")?;
        let version = program
            .check()
            .map_err(|error| format!("{}: {error}", program.path.display()))?;
        if let Some(why) = self.control.new_image_would_fail() {
            return Err(why);
        }
        lock(&self.control.http).upgrade()?;
        Ok(version)
    }

    /// How many event streams are open right now.
    pub fn live_streams(&self) -> usize {
        self.metrics.streams_live.load(Ordering::SeqCst)
    }
}
