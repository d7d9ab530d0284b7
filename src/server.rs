//! The composition root: reads the host's limits, binds the HTTP layer, puts the application
//! behind it, and runs until stopped.

use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use std::time::{Duration, SystemTime};

use crate::app::access::{Cors, Token};
use crate::app::chat::feeds;
use crate::app::chat::history::Bounds;
use crate::app::chat::journal::Journal;
use crate::app::chat::message;
use crate::app::chat::{Failure, Feeds, Settings};
use crate::app::exec::{Programs, Sink};
use crate::app::{App, Counter};
use crate::config::Config;
use crate::error::Error;
use crate::log::Log;
use crate::metrics::Metrics;
use crate::tiny::{self, Capacity, HttpServer, Limits};

/// How long a stopped server waits for its last log lines to be written. Short: a stderr that
/// nobody reads must not hold up the stop (see `printer`).
const FLUSH_AT_STOP: Duration = Duration::from_millis(100);

/// A bound server. [`Server::run`] serves until [`Stopper::stop`] is called.
pub struct Server {
    http: HttpServer,
    app: Arc<App>,
    capacity: Capacity,
    limits: Limits,
    /// `--exec`: started when the server runs.
    programs: Vec<(String, String)>,
    max_message: usize,
    log: Log,
}

/// Stops a running [`Server`] from another thread. Cheap to clone.
#[derive(Clone)]
pub struct Stopper {
    http: tiny::Stopper,
    metrics: Arc<Metrics>,
}

impl Server {
    /// Binds `config.addr` (port 0 picks a free port; see [`Server::local_addr`]). Sets the
    /// open-file soft limit as high as the host can carry (see `capacity`) and derives the stream
    /// capacity from the host's limits, unless `config.max_streams` sets it.
    pub fn bind(config: Config) -> Result<Server, Error> {
        let limits = Limits::raise_and_read();
        let capacity = match config.max_streams {
            Some(streams) => Capacity {
                streams,
                limited_by: "--max-streams",
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
            max_fd: RawFd::try_from(limits.open_files).unwrap_or(RawFd::MAX),
            drainable_body: limits.drainable_body(),
        };
        let log = Log {
            quiet: config.quiet,
        };
        // A panic in a handler or a stream is logged with the server's lines, not printed.
        crate::log::route_panics();
        let token = read_token(&config, log)?;
        let http = HttpServer::bind(settings, metrics.clone(), log)?;
        let feeds = open_feeds(&config, log)?;
        for (name, _) in &config.exec {
            program_feed(&feeds, name)?;
        }
        let app = Arc::new(App {
            feeds: Arc::new(feeds),
            counter: Counter {
                interval: config.interval,
                retry: config.retry,
                panic_at_event: config.panic_at_event,
            },
            token,
            cors: Cors(config.cors.clone()),
            metrics,
        });
        Ok(Server {
            http,
            app,
            capacity,
            limits,
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
            http: self.http.stopper(),
            metrics: self.app.metrics.clone(),
        }
    }

    /// Serves requests until stopped, then gives every stream a moment to end its body, and the
    /// log a moment to be written.
    pub fn run(self) -> Result<(), Error> {
        let feeds = self.app.feeds.clone();
        let lines = program_lines(feeds.clone(), self.log);
        let programs = Programs::start(&self.programs, self.max_message, &lines, self.log)
            .map_err(|source| Error::Start {
                what: "a program's supervisor thread",
                source: source.into(),
            })?;
        let served = self.http.run(self.app);
        programs.stop();
        feeds.sync();
        Log::flush(FLUSH_AT_STOP);
        served
    }
}

/// The feeds, with what the store holds of each if there is one.
fn open_feeds(config: &Config, log: Log) -> Result<Feeds, Error> {
    let bounds = Bounds {
        max_messages: config.history,
        ..Bounds::default()
    };
    let store_error = |source| Error::Store {
        path: config.store.clone().unwrap_or_default(),
        source,
    };
    let (journal, stored) = match &config.store {
        Some(path) => {
            let (journal, loaded) = Journal::open(path, config.history).map_err(store_error)?;
            for problem in loaded.problems {
                log.line(format_args!("store: {problem}"));
            }
            (Some(journal), loaded.feeds)
        }
        None => (None, Vec::new()),
    };
    let rooms = feeds::rooms(stored, bounds, SystemTime::now());
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
        self.http.stop();
    }

    /// How many event streams are open right now.
    pub fn live_streams(&self) -> usize {
        self.metrics.streams_live.load(Ordering::SeqCst)
    }
}
