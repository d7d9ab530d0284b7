//! What an event stream's body sends through: [`Events`] frames and flushes each event, fills
//! silences with keep-alive comments, and tells the body when to stop.

use std::io::Write;
use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;
use std::time::Instant;

use super::ended::Ended;
use super::outlet::{KEEPALIVE, Outlet};
use super::shared::Shared;
use crate::chunked::Framing;
use crate::sse::Event;
use crate::stop::Watch;

/// What a stream's body sends through. It knows the connection's framing and the server's stop
/// signal; the body only decides what to send and when.
pub struct Events<'a> {
    /// tiny_http's raw writer, until an outlet takes over the connection.
    writer: &'a mut Option<Box<dyn Write + Send>>,
    framing: Framing,
    shared: &'a Shared,
    frame: Vec<u8>,
    event: Vec<u8>,
    last_write: Instant,
    pub sent: Sent,
    /// Run once, after the first event is out.
    after_first_event: Option<Box<dyn FnOnce() + 'a>>,
    peer: Option<SocketAddr>,
    /// Set once the body asked for one; the layer then ends the stream through it.
    pub outlet: Option<Arc<Outlet>>,
    /// The stream was opened for an outlet, and its descriptors counted for it.
    for_outlet: bool,
    /// Has this thread unparked when the server stops, while it serves an outlet.
    watch: Option<Watch<'a>>,
}

/// However the body ends (an error, a panic, the server stopping), tiny_http's thread for the
/// connection is let go if no event did it (see `after_first_event`). Until then that thread
/// reads the connection and holds it open, so a body that ended before its first event would
/// leave the client on a silent stream: with the read half shut, the connection closes once the
/// stream lets go of its writer.
impl Drop for Events<'_> {
    fn drop(&mut self) {
        if let Some(release) = self.after_first_event.take() {
            release();
        }
    }
}

#[derive(Default)]
pub struct Sent {
    /// Bytes written, head included.
    pub bytes: usize,
    pub events: u64,
}

impl<'a> Events<'a> {
    pub fn new(
        writer: &'a mut Option<Box<dyn Write + Send>>,
        framing: Framing,
        shared: &'a Shared,
        peer: Option<SocketAddr>,
        for_outlet: bool,
        after_first_event: Box<dyn FnOnce() + 'a>,
    ) -> Events<'a> {
        Events {
            writer,
            framing,
            shared,
            frame: Vec::with_capacity(128),
            event: Vec::with_capacity(128),
            last_write: Instant::now(),
            sent: Sent::default(),
            after_first_event: Some(after_first_event),
            peer,
            outlet: None,
            for_outlet,
            watch: None,
        }
    }

    /// Hands the connection over to an [`Outlet`] that any thread can send events through
    /// without waking this one (see `outlet.rs`). From then on, events go through the outlet
    /// and this thread serves it ([`Events::serve`]). The stream must have been opened for one
    /// ([`Reply::with_outlet`](super::Reply::with_outlet)): it then holds two descriptors.
    pub fn outlet(&mut self) -> Result<Arc<Outlet>, Ended> {
        if let Some(outlet) = &self.outlet {
            return Ok(outlet.clone());
        }
        debug_assert!(self.for_outlet, "a stream not opened for an outlet");
        let mut writer = self
            .writer
            .take()
            .ok_or_else(|| Ended::ClientGone(std::io::ErrorKind::NotConnected.into()))?;
        writer.flush().map_err(Ended::ClientGone)?;
        let peer = self.peer.ok_or(Ended::SocketNotFound("no peer address"))?;
        let socket = self
            .shared
            .sockets
            .find(peer)
            .ok_or(Ended::SocketNotFound("no descriptor of the connection"))?;
        // The outlet owns the connection from here: tiny_http's pool thread is let go now, as
        // `after_first_event` would have done.
        let _ = socket.shutdown(Shutdown::Read);
        self.after_first_event = None;
        let outlet = Arc::new(Outlet::new(
            socket,
            writer,
            self.framing,
            self.shared.metrics.clone(),
        ));
        self.outlet = Some(outlet.clone());
        self.watch = Some(self.shared.stop.watch());
        Ok(outlet)
    }

    /// Serves the outlet: writes what other threads queued and keep-alive comments, until an
    /// event was refused for lack of room (`Ok`: everything queued has been written since, and
    /// the body should catch its client up), the client is gone, or the server stops (`Err`).
    pub fn serve(&mut self) -> Result<(), Ended> {
        let outlet = self.outlet()?;
        let settings = &self.shared.settings;
        outlet.serve(&self.shared.stop, settings.keepalive)
    }

    /// Lets this stream's waits ([`Events::wait_until`]) end up to `slack` late, so that the
    /// kernel can wake many streams' threads on one timer interrupt (see `threads.rs`). It holds
    /// for the stream's thread, which is its own.
    pub fn tolerate_lateness(&mut self, slack: Duration) {
        super::threads::set_timer_slack(slack);
    }

    /// Sleeps until `deadline`, writing a keep-alive comment whenever nothing has been written
    /// for the keep-alive time. Returns early with [`Ended::ServerStopping`] if the server stops.
    pub fn wait_until(&mut self, deadline: Instant) -> Result<(), Ended> {
        loop {
            let keepalive_due = self.last_write + self.shared.settings.keepalive;
            if self.shared.stop.wait_until(deadline.min(keepalive_due)) {
                return Err(Ended::ServerStopping);
            }
            if Instant::now() >= deadline {
                return Ok(());
            }
            self.write(KEEPALIVE)?;
        }
    }

    /// Sends one event as one flushed frame.
    pub fn send(&mut self, event: &Event) -> Result<(), Ended> {
        let mut encoded = std::mem::take(&mut self.event);
        encoded.clear();
        event.encode_into(&mut encoded);
        let written = self.write(&encoded);
        self.event = encoded;
        written?;
        self.sent.events += 1;
        self.shared
            .metrics
            .events_sent
            .fetch_add(1, Ordering::Relaxed);
        if let Some(release) = self.after_first_event.take() {
            release();
        }
        Ok(())
    }

    fn write(&mut self, payload: &[u8]) -> Result<(), Ended> {
        let Some(writer) = self.writer.as_mut() else {
            return Err(Ended::ClientGone(std::io::ErrorKind::NotConnected.into()));
        };
        match self.framing.write_frame(writer, &mut self.frame, payload) {
            Ok(written) => {
                self.sent.bytes += written;
                self.last_write = Instant::now();
                Ok(())
            }
            Err(error) => Err(Ended::ClientGone(error)),
        }
    }
}
