//! The server: binds the listener, runs tiny_http's request loop on the calling thread, and stops
//! when told to.

use std::net::{SocketAddr, TcpListener};
use std::os::fd::RawFd;
use std::panic::{self, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

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
}

/// A bound server. [`Server::run`] serves until [`Stopper::stop`] is called.
pub struct Server {
    app: Arc<App>,
    listener: TcpListener,
    http: Arc<RwLock<Arc<tiny_http::Server>>>,
    capacity: Capacity,
    limits: Limits,
}

/// Stops a running [`Server`] from another thread. Cheap to clone.
#[derive(Clone)]
pub struct Stopper {
    app: Arc<App>,
    http: Arc<RwLock<Arc<tiny_http::Server>>>,
}

impl Server {
    /// Binds `config.addr` (port 0 picks a free port; see [`Server::local_addr`]). Raises the
    /// open-file soft limit to the hard limit and derives the stream capacity from the host's
    /// limits, unless `config.max_streams` sets it.
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
        let http = start_http(&listener)?;
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
        };
        Ok(Server {
            app: Arc::new(app),
            listener,
            http: Arc::new(RwLock::new(Arc::new(http))),
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

    /// The open-file limit after raising it, and the hard limit.
    pub fn open_files(&self) -> (u64, u64) {
        (self.limits.open_files, self.limits.open_files_hard)
    }

    pub fn stopper(&self) -> Stopper {
        Stopper {
            app: self.app.clone(),
            http: self.http.clone(),
        }
    }

    /// Serves requests until stopped, then gives every stream a moment to end its body. Each
    /// request is handled on this thread, except event streams, which each get a thread.
    pub fn run(self) -> Result<(), Error> {
        let reaper = reaper::spawn(self.app.clone()).map_err(|e| Error::Start(e.to_string()))?;
        // Servers whose accept thread died: their pool threads may still hand in requests from
        // connections they had accepted.
        let mut retired: Vec<Arc<tiny_http::Server>> = Vec::new();
        while !self.app.stop.is_triggered() {
            let http = self.current_http();
            let wait = if retired.is_empty() {
                Duration::from_secs(3600)
            } else {
                Duration::from_millis(50)
            };
            match http.recv_timeout(wait) {
                Ok(Some(request)) => self.handle(request),
                Ok(None) => {}
                Err(_) if self.app.stop.is_triggered() => break,
                Err(error) => {
                    self.app.log.line(format_args!(
                        "accepting stopped ({error}); starting a new accept thread"
                    ));
                    // The error (out of descriptors, say) may last: don't spin on it.
                    std::thread::sleep(Duration::from_millis(100));
                    let fresh = Arc::new(start_http(&self.listener)?);
                    let old = std::mem::replace(
                        &mut *self.http.write().unwrap_or_else(PoisonError::into_inner),
                        fresh,
                    );
                    retired.push(old);
                }
            }
            for old in &retired {
                while let Ok(Some(request)) = old.try_recv() {
                    self.handle(request);
                }
            }
        }
        let deadline = Instant::now() + DRAIN_TIME;
        while self.app.live_streams.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
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

    fn current_http(&self) -> Arc<tiny_http::Server> {
        self.http
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// A tiny_http server accepting on a duplicate of `listener`, so that another can take over if
/// its accept thread stops.
fn start_http(listener: &TcpListener) -> Result<tiny_http::Server, Error> {
    let listener = listener
        .try_clone()
        .map_err(|e| Error::Start(e.to_string()))?;
    tiny_http::Server::from_listener(listener, None).map_err(|e| Error::Start(e.to_string()))
}

impl Stopper {
    /// Asks the server to stop: the request loop returns and every stream ends its body.
    pub fn stop(&self) {
        self.app.stop.trigger();
        self.http
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .unblock();
    }

    /// How many event streams are open right now.
    pub fn live_streams(&self) -> usize {
        self.app.live_streams.load(Ordering::SeqCst)
    }
}
