//! Event streams: one OS thread each.
//!
//! The request loop hands the request to a new thread, which takes tiny_http's raw writer (its
//! `Response` would buffer the body 8 KiB at a time and never flush), writes the head itself and
//! runs the handler's [`EventStream`] with an [`Events`] to send through: one flushed frame per
//! event, keep-alive comments in the silences, and the terminating chunk when the server stops.

use std::fmt::Write as _;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::panic::{self, AssertUnwindSafe};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use super::address::shown_peer;
use super::capacity::HighSlot;
use super::connections::Mark;
use super::events::{Ended, Events};
use super::job;
use super::outlet::Outlet;
use super::reply::{EventStream, Reply, SECURITY_HEADERS};
use super::screen::Screened;
use super::shared::Shared;
use crate::chunked::Framing;
use crate::log::PanicsToLog;

/// Stream threads do little: format a line and write it. 128 KiB leaves room for a panic's
/// message and unwinding.
const STACK_SIZE: usize = 128 * 1024;

/// Counts a live stream and the descriptors it holds for as long as it exists, including while
/// its thread unwinds a panic.
struct LiveStream {
    shared: Arc<Shared>,
    /// Of the stream descriptor budget: a feed's stream's second descriptor is not, when it is
    /// promised a number above the open-file limit.
    descriptors: usize,
}

impl LiveStream {
    /// Counts a new stream and the descriptors it holds (tiny_http's writer, and the outlet's
    /// duplicate if `for_outlet`: see `outlet.rs`), unless that would take more streams or
    /// descriptors than the settings allow. Counted first and checked after, so that two
    /// threads answering at once (the request loop, a body's reader) cannot both take the last
    /// place; a refused one is uncounted at once (`/metrics` may show it for that moment).
    /// An admitted one comes with the number above the open-file limit promised to its outlet's
    /// duplicate, if it got one.
    fn admit(shared: &Arc<Shared>, for_outlet: bool) -> Option<(LiveStream, Option<HighSlot>)> {
        let high = for_outlet.then(HighSlot::promise).flatten();
        let descriptors = 1 + usize::from(for_outlet && high.is_none());
        let held = &shared.stream_descriptors;
        let taken = held.fetch_add(descriptors, Ordering::SeqCst) + descriptors;
        let live = shared.metrics.streams_live.fetch_add(1, Ordering::SeqCst) + 1;
        let admitted = LiveStream {
            shared: shared.clone(),
            descriptors,
        };
        if live > shared.settings.max_streams || taken > shared.settings.stream_descriptors {
            // Dropping it gives both back.
            return None;
        }
        shared
            .metrics
            .streams_opened
            .fetch_add(1, Ordering::Relaxed);
        Some((admitted, high))
    }
}

impl Drop for LiveStream {
    fn drop(&mut self) {
        self.shared
            .metrics
            .streams_live
            .fetch_sub(1, Ordering::SeqCst);
        self.shared
            .stream_descriptors
            .fetch_sub(self.descriptors, Ordering::SeqCst);
    }
}

/// A stream not started: the request, to be answered, and why.
pub type NotStarted = Box<(tiny_http::Request, String)>;

/// Starts `stream` for `request` on its own thread, which writes the head, runs the body
/// through an [`Events`] of its own, and logs the request when the stream ends.
pub fn start(
    request: tiny_http::Request,
    stream: EventStream,
    extra_headers: Vec<(&'static str, std::borrow::Cow<'static, str>)>,
    screened: Screened,
    shared: &Arc<Shared>,
    received: Instant,
    (peer, mark): (SocketAddr, Mark),
) -> Result<(), NotStarted> {
    let Some((live, high)) = LiveStream::admit(shared, stream.for_outlet) else {
        return Err(Box::new((request, "at capacity".to_owned())));
    };
    let path = request.url().to_owned();
    let framing = framing_for(screened);
    let serve_stream = move |request: tiny_http::Request| {
        let shared = &live.shared;
        let shown = shown_peer(peer);
        // A panic ends this stream only: the thread unwinds, the connection closes and the
        // stream stops being counted.
        let ran = panic::catch_unwind(AssertUnwindSafe(|| {
            shared.log.line(format_args!(
                "stream {shown} opened{}{} ({} live)",
                if stream.note.is_empty() { "" } else { " " },
                stream.note,
                shared.metrics.streams_live.load(Ordering::Relaxed)
            ));
            let mut writer = request.into_writer();
            let head = write_head(&mut writer, framing, &extra_headers);
            let outlet = Arc::new(Outlet::new(writer, framing, shared.metrics.clone()));
            let (head_bytes, ended) = {
                // The body's panics are logged by the server (or not at all when quiet), not
                // printed by Rust's default hook.
                let _logged = PanicsToLog::enter(shared.log);
                // Closes the outlet when it goes, however the body ends.
                let mut events = Events::new(
                    outlet.clone(),
                    shared,
                    (peer, mark),
                    stream.for_outlet,
                    high,
                );
                match head {
                    Ok(bytes) => (bytes, events.run(stream.run)),
                    Err(error) => (0, Ended::ClientGone(error)),
                }
            };
            let bytes = head_bytes + outlet.bytes_written();
            let events = outlet.events();
            // An unshared outlet's connection closes here, with tiny_http's writer.
            drop(outlet);
            let took = received.elapsed();
            shared.log.line(format_args!(
                "stream {shown} closed: {events} events, {}s, {}",
                crate::log::seconds(took),
                match &ended {
                    // A send that found no room for the write timeout: the client is there.
                    Ended::ClientGone(error) if error.kind() == io::ErrorKind::WouldBlock => {
                        format!(
                            "client stopped reading (no room to write for {}s)",
                            crate::log::seconds(shared.settings.write_timeout)
                        )
                    }
                    Ended::ClientGone(error) => format!("client gone ({error})"),
                    Ended::ServerStopping => "server stopping".to_owned(),
                    Ended::SocketNotFound(why) => format!("its socket was not found ({why})"),
                }
            ));
            shared.log.request(&"GET", &path, 200, bytes, took);
        }));
        shared.connections.stream_ended(peer, Some(mark));
        if ran.is_err() {
            shared
                .log
                .line(format_args!("stream {shown} closed: panicked"));
        }
    };
    // Counted from its answer, not from its thread's start: while an old stream from the same
    // address (its client gone unnoticed) ends meanwhile, this one stays a stream to the sweep.
    shared.connections.stream_started(peer);
    job::spawn("sse-stream", STACK_SIZE, request, serve_stream).map_err(|(request, error)| {
        // Uncounted only: its connection stays ended for the refusal that follows.
        shared.connections.stream_ended(peer, None);
        Box::new((request, format!("cannot spawn a thread: {error}")))
    })
}

/// Whether one more stream would be refused now (see [`LiveStream::admit`]).
pub fn at_capacity(shared: &Shared) -> bool {
    shared.metrics.streams_live.load(Ordering::SeqCst) >= shared.settings.max_streams
        || shared.stream_descriptors.load(Ordering::SeqCst) >= shared.settings.stream_descriptors
}

/// The answer at capacity, counted.
pub fn refused(shared: &Shared, busy: Reply, why: &str) -> Reply {
    shared
        .metrics
        .streams_rejected
        .fetch_add(1, Ordering::Relaxed);
    shared.log.line(format_args!("stream refused: {why}"));
    busy.with_header("Retry-After", "5")
}

/// HTTP/1.0 has no chunked coding: its body ends when the connection closes.
pub fn framing_for(screened: Screened) -> Framing {
    if screened.http_1_0 {
        Framing::CloseDelimited
    } else {
        Framing::Chunked
    }
}

/// Writes the status line and headers of a streamed `text/event-stream` response.
pub fn write_head(
    w: &mut impl Write,
    framing: Framing,
    extra_headers: &[(&'static str, std::borrow::Cow<'static, str>)],
) -> io::Result<usize> {
    let mut head = String::with_capacity(512);
    head.push_str(match framing {
        Framing::Chunked => "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n",
        Framing::CloseDelimited => "HTTP/1.0 200 OK\r\n",
    });
    head.push_str(
        "Content-Type: text/event-stream\r\n\
         Cache-Control: no-cache\r\n\
         X-Accel-Buffering: no\r\n\
         Connection: close\r\n",
    );
    let extra = extra_headers
        .iter()
        .map(|(name, value)| (*name, value.as_ref()));
    for (name, value) in SECURITY_HEADERS.into_iter().chain(extra) {
        // Writing into a String cannot fail.
        let _ = write!(head, "{name}: {value}\r\n");
    }
    head.push_str("\r\n");
    w.write_all(head.as_bytes())?;
    w.flush()?;
    Ok(head.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stream_head_for_http_1_1_is_chunked() {
        let mut wire = Vec::new();
        let written = write_head(&mut wire, Framing::Chunked, &[]).unwrap();
        let head = String::from_utf8(wire).unwrap();
        assert_eq!(written, head.len());
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"));
        assert!(head.contains("\r\nTransfer-Encoding: chunked\r\n"));
        assert!(head.contains("\r\nContent-Type: text/event-stream\r\n"));
        assert!(head.contains("\r\nX-Content-Type-Options: nosniff\r\n"));
        assert!(head.ends_with("\r\n\r\n"));
    }

    #[test]
    fn stream_head_for_http_1_0_has_no_chunking() {
        let mut wire = Vec::new();
        write_head(&mut wire, Framing::CloseDelimited, &[]).unwrap();
        let head = String::from_utf8(wire).unwrap();
        assert!(head.starts_with("HTTP/1.0 200 OK\r\n"));
        assert!(!head.contains("Transfer-Encoding"));
    }
}
