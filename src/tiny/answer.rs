//! One request, from tiny_http to the wire: screened, copied into an owned [`Request`] and
//! routed (each once, carried in [`Incoming`]), its body read (here if tiny_http has it in
//! memory, else on a thread of its own), the handler asked under a panic fence, and the
//! [`Reply`] written.

use std::net::SocketAddr;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Instant;

use super::address::shown_peer;
use super::body::{self, MAX_BODY, Readers};
use super::connections::Ending;
use super::handler::Handler;
use super::refuse;
use super::reply::{Body, Reply};
use super::request::{self, Method, Request};
use super::respond::{self, Wire};
use super::screen::{self, Head, HttpRefusal, RequestFraming, Screened};
use super::shared::Shared;
use super::stream;
use super::writers::MAX_BEHIND;
use crate::log::{Log, PanicsToLog};

/// What answering a request needs: the layer's state, the application, and the body readers.
pub struct Layer<H> {
    pub shared: Arc<Shared>,
    pub handler: Arc<H>,
    pub bodies: Readers,
}

/// A request on its way through the layer: tiny_http's, the owned copy, and what the layer and
/// the application made of it.
struct Incoming<R> {
    raw: tiny_http::Request,
    request: Request,
    route: R,
    screened: Screened,
    received: Instant,
}

impl<H: Handler> Layer<H> {
    /// A request tiny_http has handed over. The handler runs under its own fence; this one is
    /// for the layer's own code: whatever happens to one request, the loop serves on.
    pub fn arrived(self: &Arc<Self>, raw: tiny_http::Request) {
        fence(self.shared.log, "answering a request", || self.arrive(raw));
    }

    fn arrive(self: &Arc<Self>, raw: tiny_http::Request) {
        let shared = &self.shared;
        let received = Instant::now();
        let head = head(&raw);
        let (screened, verdict) = (Screened::of(&head), screen::screen(&head));
        // Over TCP, every request has its client's address.
        let Some(&peer) = raw.remote_addr() else {
            return refuse::discard(raw, screened, shared);
        };
        match shared.connections.ending(peer) {
            // A feed stream whose client left unnoticed (the server learns it at its next write,
            // a message or a keep-alive away), and whose address came back on a new connection
            // (a port used again): that connection is served, and the stream ends now. A request
            // read from the stream's own connection before it went waits behind tiny_http's
            // writer until the stream's thread, woken, lets it go: at once if it is waiting for
            // events, else once done with what it is doing.
            Some(Ending::Stream(stream, mark)) if stream.connection_gone() => {
                stream.end("its address came back on a new connection");
                shared.connections.reopened(peer, mark);
            }
            // Over, tiny_http's writer gone: nothing waits behind it any more.
            Some(Ending::StreamOver(mark)) => shared.connections.reopened(peer, mark),
            // Read by tiny_http from a connection the server has ended.
            Some(_) => return refuse::discard(raw, screened, shared),
            None => {}
        }
        shared.connections.request_started(peer);
        let request = owned(&head, peer);
        let route = self.handler.route(&request);
        let mut incoming = Incoming {
            raw,
            request,
            route,
            screened,
            received,
        };
        let framing = match verdict {
            Ok(framing) => framing,
            Err(refusal) => return self.refused(incoming, refusal),
        };
        let limit = self.handler.body_limit(&incoming.request, &incoming.route);
        let limit = limit.min(MAX_BODY);
        let may_wait = self.handler.may_wait(&incoming.request, &incoming.route);
        match framing {
            RequestFraming::Length(length) if length > limit as u64 => {
                self.refused(incoming, body::TOO_LARGE);
            }
            RequestFraming::None | RequestFraming::Length(0) => {
                self.answer_apart(incoming, may_wait)
            }
            // In memory already: this read does not wait.
            RequestFraming::Length(_) if refuse::unread_body(&incoming.raw, screened) == 0 => {
                let body = &mut incoming.request.body;
                let _ = incoming.raw.as_reader().read_to_end(body);
                self.answer_apart(incoming, may_wait);
            }
            framing => self.on_a_thread(incoming, move |layer, incoming| {
                layer.read_then_answer(incoming, framing, limit);
            }),
        }
    }

    /// Answers a request whose body is read: on the request loop, or, if the answer may wait
    /// ([`Handler::may_wait`]), on a thread of its own, its connection busy meanwhile (as while
    /// a body is read: the sweep leaves it alone).
    fn answer_apart(self: &Arc<Self>, incoming: Incoming<H::Route>, may_wait: bool) {
        if !may_wait {
            return self.answer(incoming, true);
        }
        self.on_a_thread(incoming, |layer, incoming| {
            let (shared, peer) = (&layer.shared, incoming.request.peer);
            let _answering = layer.bodies.answering();
            shared.connections.body_started(peer);
            fence(shared.log, "answering a request", || {
                layer.answer(incoming, false)
            });
            shared.connections.body_ended(peer);
        });
    }

    /// Runs `run` on a thread of the body readers'; refuses the request with `503` if none can
    /// be had.
    fn on_a_thread(
        self: &Arc<Self>,
        incoming: Incoming<H::Route>,
        run: impl FnOnce(&Arc<Self>, Incoming<H::Route>) + Send + 'static,
    ) {
        let layer = self.clone();
        let run = move |incoming| run(&layer, incoming);
        let peer = incoming.request.peer.ip();
        if let Err(incoming) = self.bodies.spawn(peer, incoming, run) {
            let busy = Reply::text(503, "too many requests with a body, try again\n")
                .with_header("Retry-After", "1");
            self.refuse(incoming, busy);
        }
    }

    /// Asks the handler and writes its reply; the body is in the request. `on_loop`: on the
    /// request loop, which must not wait for the client (a body's reader may).
    fn answer(self: &Arc<Self>, incoming: Incoming<H::Route>, on_loop: bool) {
        let (raw, screened, received) = (incoming.raw, incoming.screened, incoming.received);
        let (request, route) = (&incoming.request, &incoming.route);
        let shared = &self.shared;
        // A panic in a handler is a bug, but it must cost that one request, never the server.
        let mut reply = fenced(shared.log, "a request handler", || {
            self.handler.handle(request, route)
        })
        .unwrap_or_else(|| {
            Reply::text(500, "internal server error\n").for_route(self.handler.label(route))
        });
        let label = reply.label;
        let after = reply.after.take();
        // A stream's head says `Connection: close`: whatever tiny_http reads after this request
        // is dropped.
        let answer = match reply.body {
            // As its `GET` would be, though it would take no slot.
            Body::Events(_) if screened.head_only && stream::at_capacity(shared) => {
                let busy = stream::refused(shared, self.handler.busy(), "at capacity (HEAD)");
                refuse::refuse(raw, busy, screened, shared)
            }
            // Its head, and the close it announces, as a refusal's answer and close.
            Body::Events(_) if screened.head_only => {
                let mut head = Vec::new();
                let _ =
                    stream::write_head(&mut head, stream::framing_for(screened), &reply.headers);
                refuse::end_with(
                    raw,
                    Wire {
                        made: head,
                        kept: &[],
                    },
                    screened,
                    shared,
                );
                (200, 0)
            }
            Body::Events(events) => {
                let ending = (request.peer, shared.connections.closed(request.peer));
                match stream::start(
                    raw,
                    events,
                    reply.headers,
                    screened,
                    shared,
                    received,
                    ending,
                ) {
                    // The stream logs its request when it ends.
                    Ok(()) => return shared.metrics.count_request(label, 200),
                    Err(not_started) => {
                        let (raw, why) = *not_started;
                        let busy = stream::refused(shared, self.handler.busy(), &why);
                        refuse::refuse(raw, busy, screened, shared)
                    }
                }
            }
            Body::Bytes(_) if on_loop => {
                let answer = (raw.into_writer(), respond::wire(&reply, screened));
                match shared.writers.write(request.peer, answer) {
                    Ok(()) => (reply.status, respond::body_bytes(&reply, screened)),
                    // Its client reads none of its answers: its connection is ended, as a
                    // refused one is, and this answer goes unwritten.
                    Err(peer) => {
                        shared.log.line(format_args!(
                            "{}: {MAX_BEHIND} answers unread; closing the connection",
                            shown_peer(peer)
                        ));
                        refuse::close(peer, shared);
                        (reply.status, 0)
                    }
                }
            }
            Body::Bytes(_) => respond::write(&mut raw.into_writer(), &reply, screened),
        };
        self.answered(request, label, answer, received);
        if let Some(after) = after {
            // Fenced like the handler: a panic here costs this work, not the request loop.
            fenced(shared.log, "work after a reply", after);
        }
    }

    /// Refuses the request for `refusal`, and tells the application.
    fn refused(&self, incoming: Incoming<H::Route>, refusal: HttpRefusal) {
        self.handler
            .refused(&incoming.request, &incoming.route, refusal.status);
        self.refuse(incoming, Reply::text(refusal.status, refusal.why));
    }

    /// Answers `reply` and closes the connection.
    fn refuse(&self, incoming: Incoming<H::Route>, reply: Reply) {
        let label = self.handler.label(&incoming.route);
        let answer = refuse::refuse(incoming.raw, reply, incoming.screened, &self.shared);
        self.answered(&incoming.request, label, answer, incoming.received);
    }

    /// On a body reader's thread: reads the body, then answers.
    fn read_then_answer(
        self: &Arc<Self>,
        mut incoming: Incoming<H::Route>,
        framing: RequestFraming,
        limit: usize,
    ) {
        let shared = &self.shared;
        let peer = incoming.request.peer;
        shared.connections.body_started(peer);
        fence(shared.log, "reading a request body", || {
            let socket = shared.sockets.find(peer);
            let read = match &socket {
                Some(socket) => body::read(&mut incoming.raw, socket, framing, limit),
                // Without its socket the read could not be bounded in time; the connection is
                // most likely gone already.
                None => Err(screen::refusal(400, "connection not found\n")),
            };
            match read {
                Ok(bytes) => {
                    incoming.request.body = bytes;
                    let _answering = self.bodies.answering();
                    self.answer(incoming, false);
                }
                Err(refusal) => self.refused(incoming, refusal),
            }
        });
        shared.connections.body_ended(peer);
    }

    /// Counts and logs the answer: its status and the body bytes it sends.
    fn answered(&self, request: &Request, label: &'static str, answer: (u16, usize), at: Instant) {
        let (log, method, took) = (self.shared.log, request.method.as_str(), at.elapsed());
        self.shared.metrics.count_request(label, answer.0);
        log.request(&method, &request.path, answer.0, answer.1, took);
    }
}

/// Runs `work`, a panic in it logged as `{what} panicked; serving on`: a bug there costs that
/// work, never the server. `None` if it panicked.
fn fence<T>(log: Log, what: &str, work: impl FnOnce() -> T) -> Option<T> {
    panic::catch_unwind(AssertUnwindSafe(work))
        .inspect_err(|_| log.line(format_args!("{what} panicked; serving on")))
        .ok()
}

/// [`fence`] around the application's code, whose panics are logged too.
fn fenced<T>(log: Log, what: &str, work: impl FnOnce() -> T) -> Option<T> {
    fence(log, what, || {
        let _logged = PanicsToLog::enter(log);
        work()
    })
}

/// What the screening rules look at.
fn head(raw: &tiny_http::Request) -> Head<'_> {
    let version = raw.http_version();
    Head {
        method: raw.method().as_str(),
        target: raw.url(),
        version: (version.0, version.1),
        headers: raw
            .headers()
            .iter()
            .map(|h| (h.field.as_str().as_str(), h.value.as_str()))
            .collect(),
    }
}

/// The owned copy a handler sees.
fn owned(head: &Head<'_>, peer: SocketAddr) -> Request {
    let (path, query) = request::split_url(head.target);
    Request {
        method: Method::from_name(head.method),
        path: path.to_owned(),
        query: query.map(str::to_owned),
        peer,
        headers: head
            .headers
            .iter()
            .map(|&(name, value)| (name.to_owned(), value.to_owned()))
            .collect(),
        body: Vec::new(),
    }
}
