//! The request loop: takes each request from tiny_http and hands it to [`Layer::arrived`], which
//! screens it, reads its body, asks the [`Handler`] for a [`Reply`] and writes the answer.

use std::ffi::OsString;
use std::io;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::accept::{Acceptor, Tiny};
use super::answer::Layer;
use super::body::Readers;
use super::connections::Connections;
use super::handler::Handler;
use super::handoff::{self, Reason};
use super::heal::Series;
use super::pool;
use super::refuse::Closer;
use super::shared::{Settings, Shared};
use super::socket::{self, Sockets};
use super::sweep;
use super::writers::Writers;
use crate::error::Error;
use crate::lock;
use crate::log::Log;
use crate::metrics::Metrics;
use crate::stop::Stop;

/// Connections waiting for tiny_http's accept thread. Linux caps it at `net.core.somaxconn`
/// (4096 by default); a burst of new streams larger than this sees connect retries.
const LISTEN_BACKLOG: i32 = 4096;

/// Servers whose accept thread died are still polled for requests from connections they had
/// accepted; the oldest are let go past this many, and any that handed in none for twice the
/// idle timeout: by then the sweep has closed every connection of theirs but the streams', which
/// carry no more requests, and the request loop no longer wakes to poll them.
const MAX_RETIRED: usize = 8;

/// A server whose accept thread died, and when it last handed in a request.
type Retired = (Arc<Tiny>, Instant);

/// How long a stopping server waits for its streams to write their last chunk.
const DRAIN_TIME: Duration = Duration::from_millis(500);

/// How long a stopping server waits for the answers made on threads of their own (an answer
/// that waits on another server: a publish waits at most 3 s for Redis) before it shuts their
/// connections. A body still arriving is not waited for.
const ANSWERS_TIME: Duration = Duration::from_secs(4);

/// A bound HTTP server. [`HttpServer::run`] serves until [`HttpStopper::stop`].
pub struct HttpServer {
    shared: Arc<Shared>,
}

/// Stops a running [`HttpServer`] from another thread. Cheap to clone.
#[derive(Clone)]
pub struct HttpStopper {
    shared: Arc<Shared>,
}

impl HttpStopper {
    /// Asks the server to stop: the request loop returns and every stream ends its body. A stop
    /// asked for while a re-exec is under way wins: the process ends, its image is not replaced
    /// (see [`HttpStopper::stop_asked`]).
    pub fn stop(&self) {
        // Held until the stop is triggered: a heal asked for in between would find no stop
        // under way, and the process would replace its image instead of ending.
        let mut reexec = lock(&self.shared.reexec);
        *reexec = None;
        self.shared.stop.trigger();
        drop(reexec);
        // Wakes the request loop from its wait for a request.
        if let Some(http) = self.shared.acceptor.current() {
            http.unblock();
        }
    }

    /// For a server that stopped to re-exec (handing over a [`Handoff`]): whether a stop was asked for
    /// since, so that the process is to end, not its image be replaced.
    pub fn stop_asked(&self) -> bool {
        lock(&self.shared.reexec).is_none()
    }

    /// Asks the server to stop as [`HttpStopper::stop`] does, and then to run the program file
    /// again in its place (see [`HttpServer::run`]). If it was stopping already, says why.
    pub fn upgrade(&self) -> Result<(), &'static str> {
        self.shared.stop_for_reexec(Reason::Upgrade)
    }
}

/// What the image before this one handed to the HTTP layer.
pub struct Handed {
    pub listener: OwnedFd,
    pub series: Option<Series>,
}

/// A stopped server's listener, ready to be handed to a new image.
pub struct Handoff {
    shared: Arc<Shared>,
    pub reason: Reason,
}

impl Handoff {
    /// Replaces the process image with `program`, run with `args` (the program's name first),
    /// handing it the listener and `state`, and `note` for the application. Returns only if
    /// that failed, with why: [`Handoff::serve_again`] then.
    pub fn exec(&self, program: &Path, args: &[OsString], state: &[u8], note: &str) -> io::Error {
        let listener = &self.shared.acceptor.listener;
        // Made non-blocking to end tiny_http's accept threads, which have ended: blocking again
        // for the next image (or for this one, if the exec fails), as a listener is expected.
        if let Err(error) = listener.set_nonblocking(false) {
            return error;
        }
        let (state_file, series) = (self.shared.state_file.as_ref(), self.series());
        handoff::exec(program, args, listener, state_file, state, series, note)
    }

    /// A new server on the same listener, after an exec that failed.
    pub fn serve_again(self) -> Result<HttpServer, Error> {
        let shared = &self.shared;
        let listener = &shared.acceptor.listener;
        // Made non-blocking to end the accept threads (`accept.rs`); a new one must wait.
        let listener = listener
            .set_nonblocking(false)
            .and_then(|()| listener.try_clone())
            .map_err(bind_error(shared.local_addr))?;
        HttpServer::serving(
            listener,
            shared.settings.clone(),
            shared.metrics.clone(),
            shared.log,
            self.series(),
        )
    }

    fn series(&self) -> Option<Series> {
        match self.reason {
            Reason::Heal { series, .. } => Some(series),
            Reason::Upgrade => self.shared.series,
        }
    }
}

impl HttpServer {
    /// Binds `settings.addr` (port 0 picks a free port), or takes the listener the image
    /// before this one `handed` over.
    pub fn bind(
        settings: Settings,
        metrics: Arc<Metrics>,
        log: Log,
        handed: Option<Handed>,
    ) -> Result<HttpServer, Error> {
        let bind_error = bind_error(settings.addr);
        let series = handed.as_ref().and_then(|handed| handed.series);
        let listener = match handed {
            Some(handed) => socket::adopt(handed.listener, settings.write_timeout),
            None => socket::listen(settings.addr, LISTEN_BACKLOG, settings.write_timeout),
        }
        .map_err(bind_error)?;
        // A connection that sends nothing costs no thread while the kernel holds it: for up to
        // half the idle timeout, so that one that never sends is closed within 1.5 times it.
        socket::defer_accept(&listener, settings.idle_timeout / 2).map_err(bind_error)?;
        HttpServer::serving(listener, settings, metrics, log, series)
    }

    fn serving(
        listener: TcpListener,
        settings: Settings,
        metrics: Arc<Metrics>,
        log: Log,
        series: Option<Series>,
    ) -> Result<HttpServer, Error> {
        let local_addr = listener.local_addr().map_err(bind_error(settings.addr))?;
        let shared = Arc::new(Shared {
            sockets: Sockets::new(local_addr, settings.max_fd),
            acceptor: Acceptor::new(listener)?,
            closer: Closer::default(),
            writers: Writers::default(),
            settings,
            local_addr,
            log,
            stop: Stop::default(),
            metrics,
            connections: Connections::default(),
            stream_descriptors: Default::default(),
            reexec: Mutex::new(None),
            series,
            state_file: handoff::state_file(),
        });
        Ok(HttpServer { shared })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.shared.local_addr
    }

    pub fn stopper(&self) -> HttpStopper {
        HttpStopper {
            shared: self.shared.clone(),
        }
    }

    /// Serves requests until stopped, then gives every stream a moment to end its body. Each
    /// request is handled on this thread, except event streams, requests whose body is still to
    /// be read and those whose answer may wait ([`super::Handler::may_wait`]), which each get a
    /// thread.
    ///
    /// A server stopped to replace the process image hands over its listener: nothing accepts
    /// then, every stream has ended, and the listener is open, with new connections waiting in
    /// its queue.
    pub fn run<H: Handler>(self, handler: Arc<H>) -> Result<Option<Handoff>, Error> {
        let shared = &self.shared;
        let layer = Arc::new(Layer {
            shared: shared.clone(),
            handler,
            bodies: Readers::default(),
        });
        // A panic in a handler, a stream or one of tiny_http's threads is one of the server's
        // lines, not Rust's message.
        pool::replace_lost_threads(shared.log, shared.local_addr);
        crate::log::route_panics(pool::tiny_http_panicked);
        let sweep = sweep::spawn(shared.clone()).map_err(|source| Error::Start {
            what: "the connection sweep thread",
            source: source.into(),
        })?;
        // Servers whose accept thread died: their pool threads may still hand in requests from
        // connections they had accepted.
        let mut retired: Vec<Retired> = Vec::new();
        let quiet = shared.settings.idle_timeout.saturating_mul(2);
        // The server accepting when the loop ends, to answer what it accepted last.
        let mut last = None;
        let is_current = |http: &Arc<Tiny>| {
            let current = shared.acceptor.current();
            current.is_some_and(|current| Arc::ptr_eq(http, &current))
        };
        while !shared.stop.is_triggered()
            && let Some(http) = shared.acceptor.current()
        {
            // Replaced since the last round, here or by the watchdog (which wakes this loop with
            // no request): its pool threads may still hand in requests from the connections
            // they hold.
            if let Some(replaced) = last.replace(http.clone())
                && !Arc::ptr_eq(&replaced, &http)
            {
                retired.push((replaced, Instant::now()));
                if retired.len() > MAX_RETIRED {
                    retired.remove(0);
                }
            }
            let wait = Duration::from_millis(if retired.is_empty() { 3_600_000 } else { 50 });
            match http.recv_timeout(wait) {
                Ok(Some(request)) => layer.arrived(request),
                Ok(None) => {}
                Err(_) if shared.stop.is_triggered() || shared.acceptor.current().is_none() => {
                    break;
                }
                // Its accept thread has reported that it stopped, unless the watchdog has
                // replaced this server already.
                Err(error) if is_current(&http) => {
                    shared.log.line(format_args!("accepting stopped: {error}"));
                    if !shared
                        .acceptor
                        .replace(&http, &shared.stop, &shared.log, false)
                    {
                        break;
                    }
                }
                Err(_) => {}
            }
            answer_queued(&layer, &mut retired);
            retired.retain(|(_, last)| last.elapsed() < quiet);
        }
        // New connections wait in the listen queue from now on: for the next image, or for
        // nobody once the listener closes. What tiny_http accepted until its accept thread
        // ended is answered; only then are the streams told to end (if a re-exec closed the
        // acceptor), so that pages reconnecting at once are not accepted by it.
        shared.acceptor.close();
        answer_the_last(&layer, last, retired);
        // Dropped at once unless a flood fills the listen queue, and then the accept thread
        // has plenty to wake it.
        wait_for_none(&shared.acceptor.dropping, Duration::from_millis(100));
        shared.stop.trigger();
        // The sweep closes refused connections until it ends; those left, and any after, are
        // closed here (the loop has ended), before the connections are shut down below.
        sweep.thread().unpark();
        let _ = sweep.join();
        shared.closer.closed_by(None);
        shared.closer.close_waiting(shared);
        // A request answered on a thread of its own is answered, unless it takes too long: a
        // publish waiting for Redis, cut off, could be published and never answered, and
        // published again by a client that tries again.
        let deadline = Instant::now() + ANSWERS_TIME;
        while layer.bodies.answering_now() > 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        // The answers handed to the writer threads last (to the last requests, refusals) are
        // written before their connections are shut, unless their clients read none.
        let deadline = Instant::now() + DRAIN_TIME;
        while !shared.writers.idle() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        // tiny_http's threads would keep idle keep-alive connections open after the server
        // stopped, and a client that reused one would wait for an answer that never comes
        // (a browser reconnecting its stream to a restarted server, say). Streams end their
        // bodies themselves. (A pass over the descriptors, but the loop has ended.)
        shared
            .sockets
            .shut_down_where(|peer| !shared.connections.is_stream(peer));
        wait_for_none(&shared.metrics.streams_live, DRAIN_TIME);
        let reason = *lock(&shared.reexec);
        Ok(reason.map(|reason| Handoff {
            shared: self.shared.clone(),
            reason,
        }))
    }
}

/// Waits, for at most `patience`, until `count` is 0.
fn wait_for_none(count: &AtomicUsize, patience: Duration) {
    let deadline = Instant::now() + patience;
    while count.load(Ordering::SeqCst) > 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// The error of a listener on `addr` that could not be had or set up.
fn bind_error(addr: SocketAddr) -> impl Fn(io::Error) -> Error + Copy {
    move |source| Error::Bind { addr, source }
}

/// How long the requests tiny_http accepted before its accept thread ended may take to arrive.
const LAST_REQUESTS: Duration = Duration::from_millis(500);

/// Ends tiny_http's accept threads and answers the requests they accepted until then: those
/// of `last`, the server accepting when the loop ended, until its accept thread says it ended
/// and no request came for a moment; and those already queued for the `retired` ones.
fn answer_the_last<H: Handler>(
    layer: &Arc<Layer<H>>,
    last: Option<Arc<Tiny>>,
    mut retired: Vec<Retired>,
) {
    let shared = &layer.shared;
    // A pass over the descriptors on this thread, once, when the server stops: the requests
    // answered after it are the last.
    let ended = shared.acceptor.end_accept_threads(&shared.sockets);
    answer_queued(layer, &mut retired);
    let Some(http) = last else {
        return;
    };
    let deadline = Instant::now() + LAST_REQUESTS;
    // With none ended here, none is accepting (or none could be ended): no word will come.
    let mut accept_thread_ended = ended == 0;
    let mut quiet_since = Instant::now();
    while Instant::now() < deadline {
        match http.recv_timeout(Duration::from_millis(5)) {
            Ok(Some(request)) => {
                layer.arrived(request);
                quiet_since = Instant::now();
            }
            Ok(None) if accept_thread_ended && quiet_since.elapsed() > QUIET => return,
            Ok(None) => {}
            Err(_) => accept_thread_ended = true,
        }
    }
}

/// Answers the requests the `retired` servers have queued, without waiting for more.
fn answer_queued<H: Handler>(layer: &Arc<Layer<H>>, retired: &mut [Retired]) {
    for (http, last) in retired {
        while let Ok(Some(request)) = http.try_recv() {
            *last = Instant::now();
            layer.arrived(request);
        }
    }
}

/// No request for this long after the accept thread ended: the connections it accepted last
/// have sent theirs (a client sends its request as soon as it connects).
const QUIET: Duration = Duration::from_millis(20);

#[cfg(test)]
mod tests {
    use super::*;

    impl HttpServer {
        /// Whether the listener blocks, as tiny_http's accept thread needs it to.
        pub(crate) fn listener_blocks(&self) -> bool {
            let listener = socket2::SockRef::from(&self.shared.acceptor.listener);
            !listener.nonblocking().unwrap_or(true)
        }
    }

    impl HttpStopper {
        pub(crate) fn shared(&self) -> &Shared {
            &self.shared
        }
    }
}
