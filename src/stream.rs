//! `/connect`: one OS thread per event stream.
//!
//! The request loop hands the request to a new thread, which takes tiny_http's raw writer, writes
//! the head itself and then one flushed frame per event. Event `k` of a stream is due at
//! `start + k × interval`, so the schedule never drifts however long the writes take.

use std::io::Write;
use std::net::{Shutdown, SocketAddr};
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use tiny_http::{HTTPVersion, Request};

use crate::chunked::Framing;
use crate::http;
use crate::server::App;
use crate::socket;
use crate::sse::Event;
use crate::views;

/// Stream threads do little: format a line and write it. 128 KiB leaves room for a panic's
/// message and unwinding.
const STACK_SIZE: usize = 128 * 1024;

/// Sent when no event has gone out for the keep-alive time: proxies see traffic, and a dead
/// client is found at the write.
const KEEPALIVE_FRAME: &[u8] = b": keep-alive\n\n";

/// Why a stream ended, for the log.
enum Ended {
    ClientGone(std::io::Error),
    ServerStopping,
}

/// Counts a live stream for as long as it exists, including while its thread unwinds a panic.
struct LiveStream {
    app: Arc<App>,
}

impl LiveStream {
    fn new(app: &Arc<App>) -> LiveStream {
        app.live_streams.fetch_add(1, Ordering::SeqCst);
        app.metrics.streams_opened.fetch_add(1, Ordering::Relaxed);
        LiveStream { app: app.clone() }
    }
}

impl Drop for LiveStream {
    fn drop(&mut self) {
        self.app.live_streams.fetch_sub(1, Ordering::SeqCst);
    }
}

/// What a stream needs to know about its request once the request itself is gone.
struct Opening {
    framing: Framing,
    first_id: u64,
    peer: Option<SocketAddr>,
    received: Instant,
}

/// Starts a stream for `request` on its own thread, or answers 503 at capacity. Returns the
/// status at once; the thread logs the request when the stream ends.
pub fn open(request: Request, app: &Arc<App>, received: Instant) -> Option<u16> {
    if app.live_streams.load(Ordering::SeqCst) >= app.max_streams {
        return Some(refuse(request, app, "at capacity"));
    }
    let opening = Opening {
        framing: framing_for(&request),
        first_id: resume_after(&request),
        peer: request.remote_addr().copied(),
        received,
    };
    let live = LiveStream::new(app);
    // The request travels to the thread through a channel, so that if the thread cannot be
    // spawned it is still here to be answered.
    let (hand_over, take) = mpsc::sync_channel::<Request>(1);
    let spawned = thread::Builder::new()
        .name("sse-stream".into())
        .stack_size(STACK_SIZE)
        .spawn(move || {
            if let Ok(request) = take.recv() {
                let peer = opening.peer;
                // A panic ends this stream only: the thread unwinds, the connection closes and the
                // stream stops being counted. The panic hook has printed the message.
                let ran = panic::catch_unwind(AssertUnwindSafe(|| run(request, opening, &live)));
                if let Some(addr) = peer {
                    live.app.connections.stream_ended(addr);
                }
                if ran.is_err() {
                    let peer = peer.map_or_else(|| "-".to_owned(), |addr| addr.to_string());
                    live.app
                        .log
                        .line(format_args!("stream {peer} closed: panicked"));
                }
            }
        });
    match spawned {
        Ok(_) => {
            // The receiver lives until the thread has taken the request.
            let _ = hand_over.send(request);
            None
        }
        Err(error) => Some(refuse(
            request,
            app,
            &format!("cannot spawn a thread: {error}"),
        )),
    }
}

fn refuse(request: Request, app: &App, why: &str) -> u16 {
    app.metrics.streams_rejected.fetch_add(1, Ordering::Relaxed);
    app.log.line(format_args!("stream refused: {why}"));
    let response = http::text(503, "too many streams, try again later\n")
        .with_header(http::header("Retry-After", "5"));
    let _ = request.respond(response);
    503
}

/// `HEAD /connect`: the head a stream would have, no body, and no thread.
pub fn head(request: Request) -> u16 {
    let framing = framing_for(&request);
    let mut writer = request.into_writer();
    let _ = http::write_stream_head(&mut writer, framing);
    200
}

/// HTTP/1.0 has no chunked coding: its body ends when the connection closes.
fn framing_for(request: &Request) -> Framing {
    if *request.http_version() == HTTPVersion(1, 0) {
        Framing::CloseDelimited
    } else {
        Framing::Chunked
    }
}

/// The id to start at: one past the client's `Last-Event-ID` (browsers send it when they
/// reconnect), so the count goes on instead of starting over. Anything but a number starts at 0.
fn resume_after(request: &Request) -> u64 {
    request
        .headers()
        .iter()
        .find(|h| h.field.equiv("Last-Event-ID"))
        .and_then(|h| h.value.as_str().trim().parse::<u64>().ok())
        .and_then(|last| last.checked_add(1))
        .unwrap_or(0)
}

fn run(request: Request, opening: Opening, live: &LiveStream) {
    let app = &live.app;
    let peer = opening
        .peer
        .map_or_else(|| "-".to_owned(), |addr| addr.to_string());
    if let Some(addr) = opening.peer {
        app.connections.stream_started(addr);
    }
    // tiny_http's pool thread is waiting for a second request that an event stream never sends;
    // shutting the read half ends that wait and the thread goes back to the pool. Done once the
    // first event is out, so that a client does not wait for the search.
    let release_pool_thread = || {
        if let Some(addr) = opening.peer
            && let Some(socket) = socket::find(addr, app.local_addr, app.max_fd)
        {
            let _ = socket.shutdown(Shutdown::Read);
        }
    };
    app.log.line(format_args!(
        "stream {peer} opened at id {} ({} live)",
        opening.first_id,
        app.live_streams.load(Ordering::Relaxed)
    ));
    let mut writer = request.into_writer();
    let mut sent = Sent::default();
    let ended = match http::write_stream_head(&mut writer, opening.framing) {
        Ok(head) => {
            sent.bytes += head;
            write_events(&mut writer, &opening, app, &mut sent, release_pool_thread)
        }
        Err(error) => Ended::ClientGone(error),
    };
    if let Ended::ServerStopping = ended {
        // Ending the body properly tells the client the stream is over, not cut.
        if opening.framing.finish(&mut writer).is_ok() && opening.framing == Framing::Chunked {
            sent.bytes += 5;
        }
    }
    drop(writer);
    let took = opening.received.elapsed();
    app.log.line(format_args!(
        "stream {peer} closed: {} events, {:.1}s, {}",
        sent.events,
        took.as_secs_f64(),
        match &ended {
            Ended::ClientGone(error) => format!("client gone ({error})"),
            Ended::ServerStopping => "server stopping".to_owned(),
        }
    ));
    app.log.request(&"GET", "/connect", 200, sent.bytes, took);
}

#[derive(Default)]
struct Sent {
    bytes: usize,
    events: u64,
}

/// Writes the first event at once, then one per interval, and a keep-alive comment whenever
/// nothing has been written for the keep-alive time, until the client goes or the server stops.
fn write_events(
    writer: &mut impl Write,
    opening: &Opening,
    app: &App,
    sent: &mut Sent,
    after_first_event: impl FnOnce(),
) -> Ended {
    let config = &app.config;
    let mut event = Vec::with_capacity(96);
    let mut frame = Vec::with_capacity(96);
    let mut id = opening.first_id;
    let mut event_due = Instant::now();
    let mut last_write = event_due;
    let mut after_first_event = Some(after_first_event);
    loop {
        let keepalive_due = last_write + config.keepalive;
        if app.stop.wait_until(event_due.min(keepalive_due)) {
            return Ended::ServerStopping;
        }
        let now = Instant::now();
        let payload = if now >= event_due {
            if config.panic_at_event == Some(id) {
                panic!("panic_at_event {id}, as configured");
            }
            event.clear();
            let mut next = Event::new()
                .id_number(id)
                .data(views::event_html(id).into_string());
            if id == opening.first_id {
                next = next.retry(config.retry);
            }
            next.encode_into(&mut event);
            &event[..]
        } else {
            KEEPALIVE_FRAME
        };
        match opening.framing.write_frame(writer, &mut frame, payload) {
            Ok(written) => sent.bytes += written,
            Err(error) => return Ended::ClientGone(error),
        }
        if let Some(release) = after_first_event.take() {
            release();
        }
        last_write = Instant::now();
        if now >= event_due {
            sent.events += 1;
            app.metrics.events_sent.fetch_add(1, Ordering::Relaxed);
            id = id.wrapping_add(1);
            event_due = next_due(event_due, config.interval, last_write);
        }
    }
}

/// The next slot after `due` on the stream's fixed grid. Slots already past (the thread was held
/// up for more than an interval) are skipped rather than sent in a burst.
fn next_due(due: Instant, interval: Duration, now: Instant) -> Instant {
    let next = due + interval;
    if now <= next {
        return next;
    }
    let behind = (now - next).as_nanos() / interval.as_nanos().max(1);
    next + interval * u32::try_from(behind).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_due_keeps_the_grid() {
        let start = Instant::now();
        let interval = Duration::from_millis(100);
        let due = next_due(start, interval, start + Duration::from_millis(30));
        assert_eq!(due, start + interval);
    }

    #[test]
    fn next_due_skips_missed_slots() {
        let start = Instant::now();
        let interval = Duration::from_millis(100);
        let due = next_due(start, interval, start + Duration::from_millis(350));
        assert_eq!(due, start + Duration::from_millis(300));
    }
}
