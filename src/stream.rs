//! `/connect`: one OS thread per event stream.
//!
//! The request loop hands the request to a new thread, which takes tiny_http's raw writer, writes
//! the head itself and then one flushed frame per event. Event `k` of a stream is due at
//! `start + k × interval`, so the schedule never drifts however long the writes take.

use std::io::Write;
use std::sync::Arc;
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use tiny_http::{HTTPVersion, Request};

use crate::chunked::Framing;
use crate::http;
use crate::server::App;
use crate::sse::Event;
use crate::views;

/// Stream threads do little: format a line and write it. 128 KiB leaves room for a panic's
/// message and unwinding.
const STACK_SIZE: usize = 128 * 1024;

/// Why a stream ended, for the log.
#[derive(Debug)]
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
        app.live_streams
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        LiveStream { app: app.clone() }
    }
}

impl Drop for LiveStream {
    fn drop(&mut self) {
        self.app
            .live_streams
            .fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// Starts a stream for `request` on its own thread. Returns at once; the thread logs the request
/// when the stream ends.
pub fn open(request: Request, app: &Arc<App>, received: Instant) {
    let framing = framing_for(&request);
    let live = LiveStream::new(app);
    // The request travels to the thread through a channel, so that if the thread cannot be
    // spawned it is still here to be answered.
    let (hand_over, take) = mpsc::sync_channel::<Request>(1);
    let spawned = thread::Builder::new()
        .name("sse-stream".into())
        .stack_size(STACK_SIZE)
        .spawn(move || {
            if let Ok(request) = take.recv() {
                run(request, framing, &live, received);
            }
        });
    match spawned {
        Ok(_) => {
            // The receiver lives until the thread has taken the request.
            let _ = hand_over.send(request);
        }
        Err(error) => {
            app.log.line(format_args!(
                "stream refused: cannot spawn a thread: {error}"
            ));
            let response = http::text(503, "too many streams, try again later\n")
                .with_header(http::header("Retry-After", "1"));
            let _ = request.respond(response);
            app.log
                .request(&"GET", "/connect", 503, 0, received.elapsed());
        }
    }
}

/// `HEAD /connect`: the head a stream would have, no body, and no thread.
pub fn head(request: Request, app: &App, received: Instant) {
    let framing = framing_for(&request);
    let mut writer = request.into_writer();
    let status = match http::write_stream_head(&mut writer, framing) {
        Ok(_) => 200,
        Err(_) => 0,
    };
    app.log
        .request(&"HEAD", "/connect", status, 0, received.elapsed());
}

/// HTTP/1.0 has no chunked coding: its body ends when the connection closes.
fn framing_for(request: &Request) -> Framing {
    if *request.http_version() == HTTPVersion(1, 0) {
        Framing::CloseDelimited
    } else {
        Framing::Chunked
    }
}

fn run(request: Request, framing: Framing, live: &LiveStream, received: Instant) {
    let app = &live.app;
    let peer = request.remote_addr().copied();
    let method = request.method().clone();
    let mut writer = request.into_writer();
    let mut bytes = 0;
    let mut events = 0;
    let ended = match http::write_stream_head(&mut writer, framing) {
        Ok(head) => {
            bytes += head;
            write_events(&mut writer, framing, app, &mut bytes, &mut events)
        }
        Err(error) => Ended::ClientGone(error),
    };
    if let Ended::ServerStopping = ended {
        // Ending the body properly tells the client the stream is over, not cut.
        if framing.finish(&mut writer).is_ok() && framing == Framing::Chunked {
            bytes += 5;
        }
    }
    drop(writer);
    let took = received.elapsed();
    let peer = peer.map_or_else(|| "-".to_owned(), |addr| addr.to_string());
    app.log.line(format_args!(
        "stream {peer} closed: {events} events, {:.1}s, {}",
        took.as_secs_f64(),
        match &ended {
            Ended::ClientGone(error) => format!("client gone ({error})"),
            Ended::ServerStopping => "server stopping".to_owned(),
        }
    ));
    app.log.request(&method, "/connect", 200, bytes, took);
}

/// Writes event 0 at once, then one event per interval until the client goes or the server stops.
fn write_events(
    writer: &mut impl Write,
    framing: Framing,
    app: &App,
    bytes: &mut usize,
    events: &mut u64,
) -> Ended {
    let interval = app.config.interval;
    let mut event = Vec::with_capacity(64);
    let mut frame = Vec::with_capacity(64);
    let mut due = Instant::now();
    let mut n: u64 = 0;
    loop {
        if app.stop.wait_until(due) {
            return Ended::ServerStopping;
        }
        event.clear();
        Event::new()
            .data(views::event_html(n).into_string())
            .encode_into(&mut event);
        match framing.write_frame(writer, &mut frame, &event) {
            Ok(written) => *bytes += written,
            Err(error) => return Ended::ClientGone(error),
        }
        *events += 1;
        n += 1;
        due = next_due(due, interval, Instant::now());
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
        assert!(due <= start + Duration::from_millis(350));
    }
}
