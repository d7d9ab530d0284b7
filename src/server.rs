//! The composition root: reads the host's limits, binds the HTTP layer, puts the application
//! behind it, and runs until stopped.

use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use std::time::{Duration, SystemTime};

use crate::app::chat::history::Bounds;
use crate::app::chat::message;
use crate::app::chat::{Chat, Room};
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
        let http = HttpServer::bind(settings, metrics.clone(), log)?;
        if config.redis.is_some() && config.store.is_some() {
            // Two places that would each say which messages exist: Redis keeps them (with its
            // own persistence), so a journal beside it could only disagree.
            return Err(Error::Redis(
                "cannot be used with --store: Redis keeps the messages (configure its persistence)"
                    .into(),
            ));
        }
        let chat = share(open_chat(&config, log)?, &config, log)?;
        let app = Arc::new(App {
            chat,
            counter: Counter {
                interval: config.interval,
                retry: config.retry,
                panic_at_event: config.panic_at_event,
            },
            metrics,
        });
        Ok(Server {
            http,
            app,
            capacity,
            limits,
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
        let chat = self.app.chat.clone();
        let served = self.http.run(self.app);
        chat.stop_following();
        chat.sync();
        Log::flush(FLUSH_AT_STOP);
        served
    }
}

/// The chatroom, with its history loaded from the store if there is one.
fn open_chat(config: &Config, log: Log) -> Result<Chat, Error> {
    let bounds = Bounds {
        max_messages: config.history,
        ..Bounds::default()
    };
    let store_error = |source| Error::Store {
        path: config.store.clone().unwrap_or_default(),
        source,
    };
    let (room, problems) =
        Room::open(bounds, config.store.as_deref(), SystemTime::now()).map_err(store_error)?;
    for problem in problems {
        log.line(format_args!("store: {problem}"));
    }
    let limits = message::Limits {
        max_chars: config.max_message,
        ..message::Limits::default()
    };
    Chat::start(room, limits, config.publish_limit, config.retry, log).map_err(|source| {
        Error::Start {
            what: "the chat's fan-out thread",
            source: source.into(),
        }
    })
}

/// The chat as this process's own (no `--redis`), or shared with other instances through
/// Redis: publishes go to its stream, and a follower thread brings every message back.
fn share(chat: Chat, config: &Config, log: Log) -> Result<Arc<Chat>, Error> {
    let Some(url) = &config.redis else {
        return Ok(Arc::new(chat));
    };
    follow_redis(chat, url, config, log)
}

#[cfg(not(feature = "redis"))]
fn follow_redis(_: Chat, _: &str, _: &Config, _: Log) -> Result<Arc<Chat>, Error> {
    Err(Error::Redis(
        "this build has no Redis support (build with --features redis)".into(),
    ))
}

#[cfg(feature = "redis")]
fn follow_redis(chat: Chat, url: &str, config: &Config, log: Log) -> Result<Arc<Chat>, Error> {
    use crate::app::chat::{CHAT, redis};
    let redis = Arc::new(redis::Redis::open(url, config.history).map_err(Error::Redis)?);
    let chat = Arc::new(chat.shared_through(redis.clone()));
    redis::follow(redis, &[CHAT], config.history, chat.clone(), log).map_err(|source| {
        Error::Start {
            what: "the Redis follower thread",
            source: source.into(),
        }
    })?;
    Ok(chat)
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
