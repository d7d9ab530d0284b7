//! How the server runs: what the binary's flags set.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// How the server runs. [`Config::default`] is what the binary uses without flags.
#[derive(Clone, Debug)]
pub struct Config {
    /// Where to listen. Port 0 picks a free port; `0.0.0.0` or `[::]` (which takes IPv4 too)
    /// listens on every interface.
    pub addr: SocketAddr,
    /// Time between two events of a stream.
    pub interval: Duration,
    /// The reconnection delay suggested to clients (`retry:`, sent once per stream).
    pub retry: Duration,
    /// Longest silence on a stream before a comment line is sent to keep it alive.
    pub keepalive: Duration,
    /// Event streams held at once, every stream route's together (`/connect`, the chat's and
    /// the feeds'); past it a stream request is answered `503` with `Retry-After`. `None`
    /// derives it from the host's limits.
    pub max_streams: Option<usize>,
    /// A connection that is not a stream and starts no request for this long is closed.
    pub idle_timeout: Duration,
    /// Longest a write to one client may block (the client stopped reading) before it is given
    /// up on.
    pub write_timeout: Duration,
    /// For tests of panic containment: the stream thread panics before writing the event with
    /// this id. Not a flag of the binary.
    #[doc(hidden)]
    pub panic_at_event: Option<u64>,
    /// Chat messages held in memory for late and returning subscribers (also bounded at 1 MiB).
    pub history: usize,
    /// The chat's append-only journal: messages survive a restart. `None` keeps them in memory
    /// only.
    pub store: Option<PathBuf>,
    /// At most this many feeds exist, the chat among them; a message that would start one more
    /// is refused (507).
    pub max_feeds: usize,
    /// The Redis that several instances share the feeds through (`redis://host:port/db`): a
    /// publish goes to its feed's stream and every instance follows them. Not with `store`.
    #[cfg(feature = "redis")]
    pub redis: Option<String>,
    /// The longest chat message, in characters.
    pub max_message: usize,
    /// Chat messages a second one client address may publish (bursts of four times as many);
    /// 0 for no limit.
    pub publish_limit: u32,
    /// Programs whose stdout is a feed, as `(feed, command)`: each runs with `/bin/sh -c`, and
    /// is started again when it exits.
    pub exec: Vec<(String, String)>,
    /// A file whose first line is the token that `POST /feeds/NAME` must carry
    /// (`Authorization: Bearer TOKEN`). `None`: anyone may publish.
    pub token_file: Option<PathBuf>,
    /// Origins (`http://host:port`, or `*` for any) whose pages may read the event streams.
    pub cors: Vec<String>,
    /// Nothing on stdout or stderr but an error that ends the process: no log lines, and the
    /// binary prints no start line.
    pub quiet: bool,
}

impl Config {
    /// The most `max_message` may be, in characters: a message is published in a request body,
    /// which is at most 16 KiB, and a longer one would only let a subscriber that falls behind
    /// queue more of it (an `--exec` line, say, sent to thousands).
    pub const MAX_MESSAGE: usize = crate::tiny::MAX_BODY;
}

impl Default for Config {
    fn default() -> Self {
        Config {
            addr: SocketAddr::from(([127, 0, 0, 1], 8000)),
            interval: Duration::from_secs(1),
            retry: Duration::from_secs(3),
            keepalive: Duration::from_secs(15),
            max_streams: None,
            idle_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(10),
            panic_at_event: None,
            history: 1000,
            store: None,
            max_feeds: 64,
            #[cfg(feature = "redis")]
            redis: None,
            max_message: 2000,
            publish_limit: 5,
            exec: Vec::new(),
            token_file: None,
            cors: Vec::new(),
            quiet: false,
        }
    }
}
