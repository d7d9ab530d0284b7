//! The server: binds the listener, runs tiny_http's request loop on the calling thread, and stops
//! when told to.

use std::net::SocketAddr;
use std::os::fd::RawFd;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use crate::accept::Acceptor;
use crate::capacity::{Capacity, Limits};
use crate::log::Log;
use crate::metrics::Metrics;
use crate::reaper::{self, Connections};
use crate::routes;
use crate::socket;
use crate::stop::Stop;
use crate::{Config, Error};

/// Connections waiting for tiny_http's accept thread. Linux caps it at `net.core.somaxconn`
/// (4096 by default); a burst of new streams larger than this sees connect retries.
const LISTEN_BACKLOG: i32 = 4096;

/// Servers whose accept thread died are still polled for requests from connections they had
/// accepted; the oldest are let go past this many.
const MAX_RETIRED: usize = 8;

/// How long a stopping server waits for its streams to write their last chunk.
const DRAIN_TIME: Duration = Duration::from_millis(500);

/// What every request handler and stream thread shares.
pub struct App {
    pub config: Config,
    pub log: Log,
    pub stop: Stop,
    pub metrics: Metrics,
    pub live_streams: AtomicUsize,
    pub max_streams: usize,
    pub local_addr: SocketAddr,
    /// The highest descriptor number the process can have, for finding a connection's socket.
    pub max_fd: RawFd,
    pub connections: Connections,
    /// The largest declared request body that can be refused without keeping its connection
    /// (see `screen`).
    pub drainable_body: usize,
    pub acceptor: Acceptor,
}

/// A bound server. [`Server::run`] serves until [`Stopper::stop`] is called.
pub struct Server {
    app: Arc<App>,
    capacity: Capacity,
    limits: Limits,
}

/// Stops a running [`Server`] from another thread. Cheap to clone.
#[derive(Clone)]
pub struct Stopper {
    app: Arc<App>,
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
        let bind_error = |source| Error::Bind {
            addr: config.addr,
            source,
        };
        let listener = socket::listen(config.addr, LISTEN_BACKLOG, config.write_timeout)
            .map_err(bind_error)?;
        let local_addr = listener.local_addr().map_err(bind_error)?;
        let app = App {
            log: Log {
                quiet: config.quiet,
            },
            config,
            stop: Stop::default(),
            metrics: Metrics::default(),
            live_streams: AtomicUsize::new(0),
            max_streams: capacity.streams,
            local_addr,
            max_fd: RawFd::try_from(limits.open_files).unwrap_or(RawFd::MAX),
            connections: Connections::default(),
            drainable_body: limits.drainable_body(),
            acceptor: Acceptor::new(listener)?,
        };
        Ok(Server {
            app: Arc::new(app),
            capacity,
            limits,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.app.local_addr
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
            app: self.app.clone(),
        }
    }

    /// Serves requests until stopped, then gives every stream a moment to end its body. Each
    /// request is handled on this thread, except event streams, which each get a thread.
    pub fn run(self) -> Result<(), Error> {
        let app = &self.app;
        let reaper = reaper::spawn(app.clone()).map_err(|e| Error::Start(e.to_string()))?;
        // Servers whose accept thread died: their pool threads may still hand in requests from
        // connections they had accepted.
        let mut retired: Vec<Arc<tiny_http::Server>> = Vec::new();
        while !app.stop.is_triggered() {
            let http = app.acceptor.current();
            let wait = if retired.is_empty() {
                Duration::from_secs(3600)
            } else {
                Duration::from_millis(50)
            };
            match http.recv_timeout(wait) {
                Ok(Some(request)) => self.handle(request),
                Ok(None) => {}
                Err(_) if app.stop.is_triggered() => break,
                Err(error) => {
                    // Either the watchdog has replaced this server already (and woke us), or
                    // its accept thread has just reported that it stopped.
                    if Arc::ptr_eq(&http, &app.acceptor.current()) {
                        app.log.line(format_args!("accepting stopped: {error}"));
                        if !app.acceptor.replace(&http, &app.stop, &app.log) {
                            break;
                        }
                    }
                    retired.push(http);
                    if retired.len() > MAX_RETIRED {
                        retired.remove(0);
                    }
                }
            }
            for old in &retired {
                while let Ok(Some(request)) = old.try_recv() {
                    self.handle(request);
                }
            }
        }
        let deadline = Instant::now() + DRAIN_TIME;
        while app.live_streams.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = reaper.join();
        Ok(())
    }

    /// Handles one request. A panic in a handler is a bug, but it must cost that one request
    /// (tiny_http answers it with 500 as it is dropped), never the server.
    fn handle(&self, request: tiny_http::Request) {
        let handled = panic::catch_unwind(AssertUnwindSafe(|| {
            routes::handle(request, &self.app, Instant::now());
        }));
        if handled.is_err() {
            self.app
                .log
                .line(format_args!("a request handler panicked; serving on"));
        }
    }
}

impl Stopper {
    /// Asks the server to stop: the request loop returns and every stream ends its body.
    pub fn stop(&self) {
        self.app.stop.trigger();
        self.app.acceptor.unblock();
    }

    /// How many event streams are open right now.
    pub fn live_streams(&self) -> usize {
        self.app.live_streams.load(Ordering::SeqCst)
    }
}
