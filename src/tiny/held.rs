//! Connections held for good: the threads and descriptors tiny_http will never give back,
//! counted so that the server can heal by replacing its image (see `heal.rs`).
//!
//! tiny_http keeps a thread and its two descriptors until the process ends for a connection
//! whose request line is above HTTP/1.1 (its `505` waits for the request's own writer, which
//! the same thread holds), and for a request the layer parked (`refuse.rs`). Neither can be told
//! from a slow connection when it arrives; both can a little later, by what no thread that reads
//! its connection would leave behind:
//! - descriptors in a closing state (either side sent its FIN: a reading thread sees the end at
//!   once and closes them), or a socket closed on both sides and still held by two of them;
//! - bytes that stay unread after the pool's nudges did not free them (`pool.rs`).
//!
//! A suspect counts once it has looked like that for [`GRACE`]. Streams and bodies read on a
//! thread of their own are not suspects: they are the layer's, not tiny_http's, to read.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// How long a suspect must stay one before it counts: far above the time a reading thread
/// takes to see an end of stream, and short enough that healing comes within seconds.
pub const GRACE: Duration = Duration::from_secs(1);

/// Something that looks held for good, by what names it.
#[derive(Clone, Copy, Debug, Hash, PartialEq, Eq)]
pub enum Suspect {
    /// A connection whose peer is still known.
    Connection(SocketAddr),
    /// A socket closed on both sides, which names no peer any more, by its cookie.
    Socket(u64),
}

/// Remembers since when each suspect has been one.
#[derive(Default)]
pub struct HeldWatch {
    since: HashMap<Suspect, Instant>,
    /// Suspects at the last look that were ones at the look before too, and do not count yet:
    /// look again soon.
    pub pending: usize,
}

impl HeldWatch {
    /// The connections held for good, given every suspect now. A connection listed twice (its
    /// two descriptors) is one.
    pub fn held(&mut self, suspects: impl IntoIterator<Item = Suspect>, now: Instant) -> usize {
        self.since = suspects
            .into_iter()
            .map(|suspect| (suspect, self.since.get(&suspect).copied().unwrap_or(now)))
            .collect();
        let ages = || self.since.values().map(|&at| now.duration_since(at));
        // One seen for the first time (no age yet) is most often a connection closing as it
        // should (a client's `Connection: close`), gone by the next look.
        self.pending = ages().filter(|age| !age.is_zero() && *age < GRACE).count();
        ages().filter(|&age| age >= GRACE).count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer(port: u16) -> Suspect {
        Suspect::Connection(SocketAddr::from(([127, 0, 0, 1], port)))
    }

    #[test]
    fn a_suspect_counts_after_the_grace_and_once_per_connection() {
        let mut watch = HeldWatch::default();
        let start = Instant::now();
        let suspects = [peer(1), peer(1), Suspect::Socket(7), Suspect::Socket(7)];
        assert_eq!(watch.held(suspects, start), 0);
        assert_eq!(watch.pending, 0, "seen once: perhaps only closing");
        assert_eq!(watch.held(suspects, start + GRACE / 2), 0);
        assert_eq!(watch.pending, 2);
        // One connection by its peer, one by its dead socket.
        assert_eq!(watch.held(suspects, start + GRACE), 2);
        assert_eq!(watch.pending, 0);
        assert_eq!(watch.held([Suspect::Socket(7)], start + GRACE), 1);
    }

    #[test]
    fn a_suspect_that_clears_starts_afresh() {
        let mut watch = HeldWatch::default();
        let start = Instant::now();
        watch.held([peer(1)], start);
        watch.held([], start + GRACE / 2);
        assert_eq!(watch.held([peer(1)], start + GRACE), 0);
        assert_eq!(watch.held([peer(1)], start + GRACE * 2), 1);
    }
}
