//! The request loop: takes each request from tiny_http, screens it, copies it into an owned
//! [`Request`], asks the [`Handler`] for a [`Reply`] under a panic fence, and writes the answer.

use std::net::SocketAddr;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use super::accept::Acceptor;
use super::connections::Connections;
use super::reply::{Body, Reply};
use super::request::{self, Method, Request};
use super::respond::respond;
use super::screen;
use super::shared::{Settings, Shared};
use super::socket::{self, Sockets};
use super::stream::{self, NotStarted};
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

/// What the application behind the layer provides.
pub trait Handler {
    /// The answer to a request. Runs on the request loop: it must not block.
    fn handle(&self, request: &Request) -> Reply;
    /// The metrics label of the route a request is for, for requests the layer refuses before
    /// they reach [`Handler::handle`].
    fn label(&self, request: &Request) -> &'static str;
    /// Told of a request the layer refused before routing (e.g. `413` for a body too large to
    /// read), for the application's own counts.
    fn refused(&self, _request: &Request, _status: u16) {}
    /// The answer to a stream request when every stream slot is taken (the layer adds
    /// `Retry-After`).
    fn busy(&self) -> Reply;
}

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
    /// request is handled on this thread, except event streams, which each get a thread.
    pub fn run(self, handler: &impl Handler) -> Result<(), Error> {
        let shared = &self.shared;
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
                Ok(Some(request)) => self.fenced(request, handler),
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
                    self.fenced(request, handler);
                }
            }
        }
        let deadline = Instant::now() + DRAIN_TIME;
        while shared.metrics.streams_live.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let _ = sweep.join();
        Ok(())
    }

    /// Handles one request. The handler runs under its own fence (see [`Self::handle`]); this
    /// one is for the layer's own code: whatever happens to one request, the loop serves on.
    fn fenced(&self, request: tiny_http::Request, handler: &impl Handler) {
        let handled = panic::catch_unwind(AssertUnwindSafe(|| self.handle(request, handler)));
        if handled.is_err() {
            self.shared
                .log
                .line(format_args!("answering a request panicked; serving on"));
        }
    }

    fn handle(&self, raw: tiny_http::Request, handler: &impl Handler) {
        let shared = &self.shared;
        let received = Instant::now();
        if let Some(peer) = raw.remote_addr() {
            shared.connections.request_started(*peer);
        }
        let mut request = owned(&raw);
        let raw = match screen::screen(raw, shared) {
            Ok(raw) => raw,
            Err(status) => {
                handler.refused(&request, status);
                let label = handler.label(&request);
                self.answered(&request, label, status, 0, received);
                return;
            }
        };
        let mut raw = raw;
        // Bodies that reach this point are small; tiny_http has them in memory already.
        let _ = raw.as_reader().read_to_end(&mut request.body);
        // A panic in a handler is a bug, but it must cost that one request, never the server.
        let reply = match panic::catch_unwind(AssertUnwindSafe(|| handler.handle(&request))) {
            Ok(reply) => reply,
            Err(_) => {
                shared
                    .log
                    .line(format_args!("a request handler panicked; serving on"));
                Reply::text(500, "internal server error\n").for_route(handler.label(&request))
            }
        };
        let label = reply.label;
        let (status, bytes) = match reply.body {
            Body::Events(stream) if request.method == Method::Head => {
                stream::head_only(raw, &reply.headers);
                drop(stream);
                (200, 0)
            }
            Body::Events(stream) => {
                match stream::start(raw, stream, reply.headers, shared, received) {
                    Ok(()) => {
                        // The stream logs its request when it ends.
                        shared.metrics.count_request(label, 200);
                        return;
                    }
                    Err(not_started) => {
                        let (raw, why) = match *not_started {
                            NotStarted::AtCapacity(raw) => (raw, "at capacity".to_owned()),
                            NotStarted::NoThread(raw, error) => {
                                (raw, format!("cannot spawn a thread: {error}"))
                            }
                        };
                        let busy = stream::refused(shared, handler.busy(), &why);
                        respond(raw, busy, &request.method)
                    }
                }
            }
            Body::Bytes(_) => respond(raw, reply, &request.method),
        };
        self.answered(&request, label, status, bytes, received);
    }

    fn answered(
        &self,
        request: &Request,
        label: &'static str,
        status: u16,
        bytes: usize,
        received: Instant,
    ) {
        self.shared.metrics.count_request(label, status);
        self.shared.log.request(
            &request.method,
            &request.path,
            status,
            bytes,
            received.elapsed(),
        );
    }
}

/// The owned copy a handler sees.
fn owned(raw: &tiny_http::Request) -> Request {
    let (path, query) = request::split_url(raw.url());
    Request {
        method: Method::from_name(raw.method().as_str()),
        path: path.to_owned(),
        query: query.map(str::to_owned),
        peer: raw.remote_addr().copied(),
        headers: raw
            .headers()
            .iter()
            .map(|h| {
                (
                    h.field.as_str().as_str().to_owned(),
                    h.value.as_str().to_owned(),
                )
            })
            .collect(),
        body: Vec::new(),
    }
}
