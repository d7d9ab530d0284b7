//! Why an event stream's body ended.

/// Why a stream's body ended.
#[derive(Debug)]
pub enum Ended {
    /// A write failed or timed out: the client left or stopped reading.
    ClientGone(std::io::Error),
    /// The server is stopping; the layer ends the body properly.
    ServerStopping,
}
