//! The request loop: takes each request from tiny_http and hands it to [`Layer::arrived`], which
//! screens it, reads its body, asks the [`Handler`] for a [`Reply`] and writes the answer.

use std::net::SocketAddr;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::accept::Acceptor;
use super::answer::Layer;
use super::body::Readers;
use super::connections::Connections;
use super::handler::Handler;
use super::shared::{Settings, Shared};
use super::socket::{self, Sockets};
use super::sweep;
use crate::error::Error;
use crate::log::Log;
use crate::metrics::Metrics;
use crate::stop::Stop;

/// Connections waiting for tiny_http's accept thread. Linux caps it at `net.core.somaxconn`
/// (4096 by default); a burst of new streams larger than this sees connect retries.
const LISTEN_BACKLOG: i32 = 4096;

/// Servers whose accept thread died are still polled for requests from connections they had
/// accepted; the oldest are let go past this many.
const MAX_RETIRED: usize = 8;

/// How long a stopping server waits for its streams to write their last chunk.
const DRAIN_TIME: Duration = Duration::from_millis(500);

/// A bound HTTP server. [`HttpServer::run`] serves until [`Stopper::stop`].
pub struct HttpServer {
    shared: Arc<Shared>,
}

/// Stops a running [`HttpServer`] from another thread. Cheap to clone.
#[derive(Clone)]
pub struct Stopper {
    shared: Arc<Shared>,
}

impl Stopper {
    /// Asks the server to stop: the request loop returns and every stream ends its body.
    pub fn stop(&self) {
        self.shared.stop.trigger();
        self.shared.acceptor.unblock();
    }
}

impl HttpServer {
    /// Binds `settings.addr` (port 0 picks a free port).
    pub fn bind(settings: Settings, metrics: Arc<Metrics>, log: Log) -> Result<HttpServer, Error> {
        let bind_error = |source| Error::Bind {
            addr: settings.addr,
            source,
        };
        let listener = socket::listen(settings.addr, LISTEN_BACKLOG, settings.write_timeout)
            .map_err(bind_error)?;
        // A connection that sends nothing costs no thread for as long as it may stay idle.
        socket::defer_accept(&listener, settings.idle_timeout).map_err(bind_error)?;
        let local_addr = listener.local_addr().map_err(bind_error)?;
        let shared = Shared {
            sockets: Sockets::new(local_addr, settings.max_fd),
            acceptor: Acceptor::new(listener)?,
            settings,
            local_addr,
            log,
            stop: Stop::default(),
            metrics,
            connections: Connections::default(),
            null: std::fs::File::open("/dev/null").ok(),
        };
        Ok(HttpServer {
            shared: Arc::new(shared),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    pub fn stopper(&self) -> Stopper {
        Stopper {
            shared: self.shared.clone(),
        }
    }

    /// Serves requests until stopped, then gives every stream a moment to end its body. Each
    /// request is handled on this thread, except event streams and requests whose body is still
    /// to be read, which each get a thread.
    pub fn run<H>(self, handler: Arc<H>) -> Result<(), Error>
    where
        H: Handler + Send + Sync + 'static,
    {
        let shared = &self.shared;
        let layer = Arc::new(Layer {
            shared: shared.clone(),
            handler,
            bodies: Readers::default(),
        });
        let sweep = sweep::spawn(shared.clone()).map_err(|source| Error::Start {
            what: "the connection sweep thread",
            source: source.into(),
        })?;
        // Servers whose accept thread died: their pool threads may still hand in requests from
        // connections they had accepted.
        let mut retired: Vec<Arc<tiny_http::Server>> = Vec::new();
        while !shared.stop.is_triggered() {
            let http = shared.acceptor.current();
            let wait = if retired.is_empty() {
                Duration::from_secs(3600)
            } else {
                Duration::from_millis(50)
            };
            match http.recv_timeout(wait) {
                Ok(Some(request)) => fenced(&layer, request),
                Ok(None) => {}
                Err(_) if shared.stop.is_triggered() => break,
                Err(error) => {
                    // Either the watchdog has replaced this server already (and woke us), or
                    // its accept thread has just reported that it stopped.
                    if Arc::ptr_eq(&http, &shared.acceptor.current()) {
                        shared.log.line(format_args!("accepting stopped: {error}"));
                        if !shared.acceptor.replace(&http, &shared.stop, &shared.log) {
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
                    fenced(&layer, request);
                }
            }
        }
        // tiny_http's threads would keep idle keep-alive connections open after the server
        // stopped, and a client that reused one would wait for an answer that never comes
        // (a browser reconnecting its stream to a restarted server, say). Streams end their
        // bodies themselves.
        shared
            .sockets
            .shut_down_where(|peer| !shared.connections.is_stream(peer));
        let deadline = Instant::now() + DRAIN_TIME;
        while shared.metrics.streams_live.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = sweep.join();
        Ok(())
    }
}

/// Handles one request. The handler runs under its own fence (see `answer.rs`); this one is for
/// the layer's own code: whatever happens to one request, the loop serves on.
fn fenced<H: Handler + Send + Sync + 'static>(layer: &Arc<Layer<H>>, request: tiny_http::Request) {
    let handled = panic::catch_unwind(AssertUnwindSafe(|| layer.arrived(request)));
    if handled.is_err() {
        layer
            .shared
            .log
            .line(format_args!("answering a request panicked; serving on"));
    }
}
