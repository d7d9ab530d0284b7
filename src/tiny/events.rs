//! What an event stream's body sends through: [`Events`] sends each event as one frame through
//! the stream's [`Outlet`], fills silences with keep-alive comments, and tells the body when to
//! stop; [`Ended`] says why a body ended.

use std::net::{Shutdown, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use socket2::Socket;

use super::capacity::{self, HighSlot};
use super::connections::Mark;
use super::outlet::Outlet;
use super::reply::RunStream;
use super::shared::Shared;
use crate::sse::Event;
use crate::stop::Watch;

/// Why a stream's body ended.
#[derive(Debug)]
pub enum Ended {
    /// A write failed or timed out: the client left or stopped reading.
    ClientGone(std::io::Error),
    /// The server is stopping; the layer ends the body properly.
    ServerStopping,
    /// The connection's socket could not be taken over for an outlet (see
    /// [`Events::outlet`]): the connection was reset, or its descriptors were
    /// closed, before the stream's search found them.
    SocketNotFound(&'static str),
}

/// What a stream's body sends through. It knows the connection's outlet and the server's stop
/// signal; the body only decides what to send and when.
pub struct Events<'a> {
    outlet: Arc<Outlet>,
    shared: &'a Shared,
    event: Vec<u8>,
    /// tiny_http's pool thread for the connection has been let go ([`Events::let_go`]).
    released: bool,
    peer: SocketAddr,
    /// The stream was opened for other threads to send to, and its descriptors counted for it.
    for_outlet: bool,
    /// A number above the open-file limit promised to the outlet's duplicate (`capacity.rs`).
    high: Option<HighSlot>,
    /// The duplicate was charged to the stream descriptor budget here, as it got no such number.
    charged: bool,
    /// Set once the outlet is shared: has this thread unparked when the server stops.
    watch: Option<Watch<'a>>,
    /// The ending of the stream's connection (see `Connections::closed`), told the shared
    /// outlet, so that a new connection from the same address can be told apart once the
    /// stream's client has gone.
    mark: Mark,
    /// The body ended properly ([`Events::run`]): the outlet ends the body with the terminating
    /// chunk when it is closed.
    finish: bool,
}

/// However the body ends (an error, a panic, the server stopping), tiny_http's thread for the
/// connection is let go if no event did it. Until then that thread reads the connection and
/// holds it open, so a body that ended before its first event would leave the client on a
/// silent stream: with the read half shut, the connection closes once the stream lets go of its
/// writer. The outlet is closed then too, a panic included (the body then did not finish).
impl Drop for Events<'_> {
    fn drop(&mut self) {
        self.let_go_once();
        if self.charged {
            let charged = &self.shared.stream_descriptors;
            charged.fetch_sub(1, Ordering::SeqCst);
        }
        self.outlet.close(self.finish);
    }
}

impl<'a> Events<'a> {
    pub fn new(
        outlet: Arc<Outlet>,
        shared: &'a Shared,
        (peer, mark): (SocketAddr, Mark),
        for_outlet: bool,
        high: Option<HighSlot>,
    ) -> Events<'a> {
        Events {
            outlet,
            shared,
            event: Vec::with_capacity(128),
            released: false,
            peer,
            for_outlet,
            high,
            charged: false,
            watch: None,
            mark,
            finish: false,
        }
    }

    /// Runs the stream's body through these events, and returns why it ended. A body that ended
    /// with the server stopping is ended properly, which tells the client the stream is over, not
    /// cut.
    pub(super) fn run(&mut self, body: RunStream) -> Ended {
        let ended = body(self).err().unwrap_or(Ended::ServerStopping);
        self.finish = matches!(ended, Ended::ServerStopping);
        ended
    }

    /// Lets tiny_http's pool thread go: it waits for a second request that an event stream never
    /// sends, and shutting the read half ends that wait, so the thread goes back to the pool.
    /// Done once the first event is out, so that a client does not wait for the search. Returns
    /// the connection's socket, if it was found.
    fn let_go(&self) -> Option<Socket> {
        let socket = self.shared.sockets.find(self.peer)?;
        let _ = socket.shutdown(Shutdown::Read);
        Some(socket)
    }

    /// [`Events::let_go`], unless it was done.
    fn let_go_once(&mut self) {
        if !std::mem::replace(&mut self.released, true) {
            self.let_go();
        }
    }

    /// Shares the stream's [`Outlet`], so that any thread can send events through it without
    /// waking this one (see `outlet.rs`); this thread then serves it ([`Events::serve`]). The
    /// stream must have been opened for that ([`Reply::with_outlet`](super::Reply::with_outlet)):
    /// it then holds two descriptors.
    pub fn outlet(&mut self) -> Result<Arc<Outlet>, Ended> {
        if self.watch.is_some() {
            return Ok(self.outlet.clone());
        }
        if !self.for_outlet {
            // Its second descriptor was not counted when it was admitted.
            return Err(Ended::SocketNotFound(
                "the stream was not opened for an outlet",
            ));
        }
        // The outlet owns the connection from here: tiny_http's pool thread is let go now.
        // Not found, it is not let go: the stream's end searches again (a search fails mostly
        // when the process is out of descriptors, which may have passed by then).
        let socket = self
            .let_go()
            .ok_or(Ended::SocketNotFound("no descriptor of the connection"))?;
        self.released = true;
        // Numbered above the open-file limit if a number there was promised. If none can be had
        // after all (something else took one: see `capacity::duplicate_high`), the duplicate
        // found serves, charged to the budget as the stream's second descriptor.
        let (socket, high) = match self.high.take() {
            Some(high) => match capacity::duplicate_high(&socket) {
                Ok(above) => (above, Some(high)),
                Err(_) => {
                    let charged = &self.shared.stream_descriptors;
                    charged.fetch_add(1, Ordering::SeqCst);
                    self.charged = true;
                    (socket, None)
                }
            },
            None => (socket, None),
        };
        self.outlet.share(socket, high);
        let connections = &self.shared.connections;
        connections.stream_shares(self.peer, self.mark, &self.outlet);
        self.watch = Some(self.shared.stop.watch());
        Ok(self.outlet.clone())
    }

    /// Serves the outlet: writes what other threads queued and keep-alive comments, until an
    /// event was refused for lack of room (`Ok`: everything queued has been written since, and
    /// the body should catch its client up), the client is gone, or the server stops (`Err`).
    pub fn serve(&mut self) -> Result<(), Ended> {
        let outlet = self.outlet()?;
        outlet.serve(&self.shared.stop, self.shared.settings.keepalive)
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
            let keepalive_due = self.outlet.keepalive_due(self.shared.settings.keepalive);
            if self.shared.stop.wait_until(deadline.min(keepalive_due)) {
                return Err(Ended::ServerStopping);
            }
            if Instant::now() >= deadline {
                return Ok(());
            }
            self.outlet.send_keepalive()?;
        }
    }

    /// Sends one event as one flushed frame, from the stream's own thread, before the outlet is
    /// shared (a shared outlet's events are offered to it: see [`Outlet::offer`]).
    pub fn send(&mut self, event: &Event) -> Result<(), Ended> {
        self.event.clear();
        event.encode_into(&mut self.event);
        self.outlet.taken(self.outlet.offer(&self.event))?;
        self.let_go_once();
        Ok(())
    }
}
