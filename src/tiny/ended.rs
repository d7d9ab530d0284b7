//! Why an event stream's body ended.

/// Why a stream's body ended.
#[derive(Debug)]
pub enum Ended {
    /// A write failed or timed out: the client left or stopped reading.
    ClientGone(std::io::Error),
    /// The server is stopping; the layer ends the body properly.
    ServerStopping,
    /// The connection's socket could not be taken over for an outlet (see
    /// [`crate::tiny::Events::outlet`]): the connection was reset, or its descriptors were
    /// closed, before the stream's search found them.
    SocketNotFound(&'static str),
}
