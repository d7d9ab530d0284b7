//! One request, from tiny_http to the wire: screened, copied into an owned [`Request`], its
//! body read (here if tiny_http has it in memory, else on a thread of its own), the handler
//! asked under a panic fence, and the [`Reply`] written.

use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::time::Instant;

use super::body::{self, MAX_BODY, Readers};
use super::handler::Handler;
use super::reply::{Body, EventStream, Reply};
use super::request::{self, Method, Request};
use super::respond::{Wire, respond};
use super::screen::{self, Framing, Head, Refusal};
use super::shared::Shared;
use super::stream::{self, NotStarted};
use super::{refuse, refuse::READ_BY_TINY_HTTP};
use crate::log::{Log, PanicsToLog};

/// What answering a request needs: the layer's state, the application, and the body readers.
pub struct Layer<H> {
    pub shared: Arc<Shared>,
    pub handler: Arc<H>,
    pub bodies: Readers,
}

/// A request whose body is read on a thread of its own.
struct BodyJob<H> {
    layer: Arc<Layer<H>>,
    raw: tiny_http::Request,
    request: Request,
    framing: Framing,
    limit: usize,
    received: Instant,
}

impl<H: Handler + Send + Sync + 'static> Layer<H> {
    /// A request tiny_http has handed over.
    pub fn arrived(self: &Arc<Self>, raw: tiny_http::Request) {
        let shared = &self.shared;
        let received = Instant::now();
        if let Some(peer) = raw.remote_addr().copied() {
            if shared.connections.is_closed(peer) {
                // Read by tiny_http from a connection the server has ended.
                refuse::discard(raw, shared);
                return;
            }
            shared.connections.request_started(peer);
        }
        let mut request = owned(&raw);
        let screened = match screen::screen(&head(&raw)) {
            Ok(screened) => screened,
            Err(refusal) => return self.refused(raw, &request, refusal, received),
        };
        let limit = self.handler.body_limit(&request).min(MAX_BODY);
        match screened.framing {
            Framing::Length(length) if length > limit as u64 => {
                let refusal = Refusal {
                    status: 413,
                    why: "request body too large\n",
                };
                self.refused(raw, &request, refusal, received);
            }
            Framing::None | Framing::Length(0) => self.answer(raw, request, received),
            Framing::Length(length)
                if length <= READ_BY_TINY_HTTP as u64 && !screened.expects_continue =>
            {
                let mut raw = raw;
                // In memory already: this read does not wait.
                let _ = raw.as_reader().read_to_end(&mut request.body);
                self.answer(raw, request, received);
            }
            framing => {
                let job = BodyJob {
                    layer: self.clone(),
                    raw,
                    request,
                    framing,
                    limit,
                    received,
                };
                if let Err(job) = self.bodies.spawn(job, read_then_answer) {
                    let busy = Reply::text(503, "too many requests with a body, try again\n")
                        .with_header("Retry-After", "1");
                    let label = self.handler.label(&job.request);
                    let (status, bytes) = refuse::refuse(job.raw, busy, shared);
                    self.answered(&job.request, label, status, bytes, received);
                }
            }
        }
    }

    /// Asks the handler and writes its reply; the body is in `request`.
    fn answer(self: &Arc<Self>, raw: tiny_http::Request, request: Request, received: Instant) {
        let shared = &self.shared;
        let wire = Wire::of(&raw);
        // A panic in a handler is a bug, but it must cost that one request, never the server.
        let mut reply = panic::catch_unwind(AssertUnwindSafe(|| {
            let _logged = PanicsToLog::enter(shared.log);
            self.handler.handle(&request)
        }))
        .unwrap_or_else(|_| {
            shared
                .log
                .line(format_args!("a request handler panicked; serving on"));
            Reply::text(500, "internal server error\n").for_route(self.handler.label(&request))
        });
        let label = reply.label;
        let after = reply.after.take();
        let peer = raw.remote_addr().copied();
        let (status, bytes) = match reply.body {
            // The head says `Connection: close`, so the connection ends here.
            Body::Events(_) if request.method == Method::Head => {
                if let Some(peer) = peer {
                    shared.connections.closed(peer);
                }
                stream::head_only(raw, &reply.headers);
                if let Some(peer) = peer {
                    refuse::close(peer, shared);
                }
                (200, 0)
            }
            Body::Events(events) => {
                // The stream's head says `Connection: close`: whatever tiny_http reads after
                // this request is dropped.
                if let Some(peer) = peer {
                    shared.connections.closed(peer);
                }
                let events = logged_panics(events, shared.log);
                match stream::start(raw, events, reply.headers, shared, received) {
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
                        let busy = stream::refused(shared, self.handler.busy(), &why);
                        refuse::refuse(raw, busy, shared)
                    }
                }
            }
            Body::Bytes(_) => respond(raw, &reply, wire),
        };
        self.answered(&request, label, status, bytes, received);
        if let Some(after) = after {
            // Fenced like the handler: a panic here costs this work, not the request loop.
            if panic::catch_unwind(AssertUnwindSafe(|| {
                let _logged = PanicsToLog::enter(shared.log);
                after();
            }))
            .is_err()
            {
                shared
                    .log
                    .line(format_args!("work after a reply panicked; serving on"));
            }
        }
    }

    fn refused(
        &self,
        raw: tiny_http::Request,
        request: &Request,
        refusal: Refusal,
        received: Instant,
    ) {
        self.handler.refused(request, refusal.status);
        let label = self.handler.label(request);
        let reply = Reply::text(refusal.status, refusal.why);
        let (status, bytes) = refuse::refuse(raw, reply, &self.shared);
        self.answered(request, label, status, bytes, received);
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

/// On a body reader's thread: reads the body, then answers.
fn read_then_answer<H: Handler + Send + Sync + 'static>(job: BodyJob<H>) {
    let BodyJob {
        layer,
        mut raw,
        mut request,
        framing,
        limit,
        received,
    } = job;
    let shared = &layer.shared;
    let peer = request.peer;
    if let Some(peer) = peer {
        shared.connections.body_started(peer);
    }
    let answered = panic::catch_unwind(AssertUnwindSafe(|| {
        let socket = peer.and_then(|peer| shared.sockets.find(peer));
        let read = match &socket {
            Some(socket) => body::read(&mut raw, socket, framing, limit),
            // Without its socket the read could not be bounded in time; the connection is
            // most likely gone already.
            None => Err(Refusal {
                status: 400,
                why: "connection not found\n",
            }),
        };
        match read {
            Ok(bytes) => {
                request.body = bytes;
                layer.answer(raw, request, received);
            }
            Err(refusal) => layer.refused(raw, &request, refusal, received),
        }
    }));
    if answered.is_err() {
        shared
            .log
            .line(format_args!("reading a request body panicked; serving on"));
    }
    if let Some(peer) = peer {
        shared.connections.body_ended(peer);
    }
}

/// The stream's body, with its panics logged by the server (or not at all when quiet) instead
/// of printed by Rust's default hook.
fn logged_panics(mut events: EventStream, log: Log) -> EventStream {
    let run = events.run;
    events.run = Box::new(move |sender| {
        let _logged = PanicsToLog::enter(log);
        run(sender)
    });
    events
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
