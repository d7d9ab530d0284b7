//! What the layer knows about the connections tiny_http accepted: which are event streams or
//! busy reading a body elsewhere, which the server has ended, and when each of the others last
//! started a request.

use std::collections::{HashMap, HashSet, hash_map::Entry};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::thread::Thread;
use std::time::{Duration, Instant};

use super::outlet::Outlet;
use crate::lock;

/// Bookkeeping of the connections tiny_http has accepted, by peer address.
#[derive(Default)]
pub struct Connections {
    last_request: Mutex<HashMap<SocketAddr, Instant>>,
    /// The streams from each address: two while a new connection from the address of one whose
    /// client left unnoticed has a stream too (see [`Connections::reopened`]).
    streams: Mutex<HashMap<SocketAddr, usize>>,
    /// Connections whose body is being read, or whose answer may wait, on a thread of its own:
    /// how many of their requests (a client that pipelines may have two).
    busy: Mutex<HashMap<SocketAddr, usize>>,
    /// Connections the server has ended (a refusal, or a response that said `Connection:
    /// close`): requests tiny_http still reads from them are dropped unanswered. Those from a new
    /// connection from the same address are too, unless the ending carries a feed stream whose
    /// own socket shows the old connection gone (see `answer.rs`).
    closed: Mutex<HashMap<SocketAddr, Ended>>,
    /// The last [`Mark`] handed out.
    marks: AtomicU64,
    /// Requests started so far, for the sweep to see that connections have come.
    requests: AtomicU64,
    /// The sweep's thread while it dozes: the next request to start wakes it.
    dozing: Mutex<Option<Thread>>,
    /// The bytes each connection had received when the sweep first saw it since its last
    /// request started (see [`Connections::unfinished`]).
    received_then: Mutex<HashMap<SocketAddr, u64>>,
}

/// A connection the server has ended.
struct Ended {
    at: Instant,
    mark: Mark,
    /// The outlet of the stream it carries, once the stream shares it: that outlet's own socket
    /// says whether the connection is still there.
    stream: Option<Weak<Outlet>>,
}

/// What is known of a connection the server has ended.
pub enum Ending {
    /// Nothing tells whether it is still there: a request from its address is taken to be from
    /// it.
    Unknown,
    /// It carries a stream that shares this outlet, whose own socket tells.
    Stream(Arc<Outlet>, Mark),
    /// It carried a stream whose outlet is gone, with tiny_http's writer, though the stream has
    /// not yet said it has ended.
    StreamOver(Mark),
}

/// Which ending of a connection from an address this is: a stream forgets its own ending when
/// it ends, never a later one's from the same address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Mark(u64);

impl Connections {
    pub fn request_started(&self, peer: SocketAddr) {
        lock(&self.last_request).insert(peer, Instant::now());
        lock(&self.received_then).remove(&peer);
        self.requests.fetch_add(1, Ordering::Relaxed);
        if let Some(sweep) = lock(&self.dozing).take() {
            sweep.unpark();
        }
    }

    /// Has the next request to start wake `sweep`, or none.
    pub fn wake_on_request(&self, sweep: Option<Thread>) {
        *lock(&self.dozing) = sweep;
    }

    /// How many requests have started, ever.
    pub fn requests_started(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// A stream from `peer` is starting: counted from its answer, before its thread runs.
    pub fn stream_started(&self, peer: SocketAddr) {
        *lock(&self.streams).entry(peer).or_default() += 1;
    }

    /// A stream from `peer`, whose connection's ending is `mark`, has ended and closed its
    /// connection (tiny_http's thread had let go of it). Its ending is forgotten at once, not at
    /// the sweep's next look (up to 2 s away): a new connection from the same address (a busy
    /// proxy cycles through its ports quickly) must not have its requests dropped as the
    /// stream's. A later ending from the same address is kept.
    pub fn stream_ended(&self, peer: SocketAddr, mark: Option<Mark>) {
        if let Entry::Occupied(mut streams) = lock(&self.streams).entry(peer) {
            *streams.get_mut() -= 1;
            if *streams.get() == 0 {
                streams.remove();
            }
        }
        if let Some(mark) = mark {
            self.reopened(peer, mark);
        }
    }

    pub fn body_started(&self, peer: SocketAddr) {
        *lock(&self.busy).entry(peer).or_default() += 1;
    }

    pub fn body_ended(&self, peer: SocketAddr) {
        let mut busy = lock(&self.busy);
        if let Entry::Occupied(mut count) = busy.entry(peer) {
            *count.get_mut() -= 1;
            if *count.get() == 0 {
                count.remove();
            }
        }
    }

    /// The server has ended the connection from `peer`.
    pub fn closed(&self, peer: SocketAddr) -> Mark {
        let mark = Mark(self.marks.fetch_add(1, Ordering::Relaxed) + 1);
        let ended = Ended {
            at: Instant::now(),
            mark,
            stream: None,
        };
        lock(&self.closed).insert(peer, ended);
        mark
    }

    /// The connection from `peer` ended as `mark` carries a stream that sends through `outlet`.
    pub fn stream_shares(&self, peer: SocketAddr, mark: Mark, outlet: &Arc<Outlet>) {
        if let Some(ended) = lock(&self.closed).get_mut(&peer)
            && ended.mark == mark
        {
            ended.stream = Some(Arc::downgrade(outlet));
        }
    }

    /// What is known of the connection from `peer` the server has ended, if it has ended one.
    pub fn ending(&self, peer: SocketAddr) -> Option<Ending> {
        let closed = lock(&self.closed);
        let ended = closed.get(&peer)?;
        Some(match ended.stream.as_ref().map(Weak::upgrade) {
            None => Ending::Unknown,
            Some(Some(outlet)) => Ending::Stream(outlet, ended.mark),
            Some(None) => Ending::StreamOver(ended.mark),
        })
    }

    /// The connection from `peer` ended as `mark` is gone: its stream has ended, or it went
    /// unnoticed until its address came back on a new connection. Requests from the address are
    /// served from now on; a later ending from it is kept.
    pub fn reopened(&self, peer: SocketAddr, mark: Mark) {
        let mut closed = lock(&self.closed);
        if closed.get(&peer).is_some_and(|ended| ended.mark == mark) {
            closed.remove(&peer);
        }
    }

    /// The outlets of the streams that share theirs (the feeds').
    pub fn shared_outlets(&self) -> Vec<Arc<Outlet>> {
        lock(&self.closed)
            .values()
            .filter_map(|ended| ended.stream.as_ref()?.upgrade())
            .collect()
    }

    pub fn is_stream(&self, peer: SocketAddr) -> bool {
        lock(&self.streams).contains_key(&peer)
    }

    pub fn is_busy(&self, peer: SocketAddr) -> bool {
        lock(&self.busy).contains_key(&peer)
    }

    /// A stream, a body being read, or a connection the server has ended: in any case not one
    /// waiting for tiny_http to read its next request.
    pub fn in_use(&self, peer: SocketAddr) -> bool {
        lock(&self.streams).contains_key(&peer)
            || lock(&self.busy).contains_key(&peer)
            || lock(&self.closed).contains_key(&peer)
    }

    /// The connections among `peers` (listed at `now`, one entry per descriptor, streams left
    /// out) that are idle at `now`, for the sweep to close. A connection seen for the first time
    /// counts as active now. Connections that are gone are forgotten, and so are the idle ones:
    /// one still listed at a later look, its descriptors not yet closed, counts as seen for the
    /// first time.
    pub fn idle(
        &self,
        peers: &[SocketAddr],
        idle_timeout: Duration,
        now: Instant,
    ) -> Vec<SocketAddr> {
        let streams = lock(&self.streams);
        let busy = lock(&self.busy);
        let mut last_request = lock(&self.last_request);
        let mut seen = HashSet::with_capacity(peers.len());
        let mut idle = Vec::new();
        for &peer in peers {
            if !seen.insert(peer) || streams.contains_key(&peer) || busy.contains_key(&peer) {
                continue;
            }
            let since = *last_request.entry(peer).or_insert(now);
            if now.duration_since(since) >= idle_timeout {
                last_request.remove(&peer);
                idle.push(peer);
            }
        }
        // Keep the maps as small as the connection count. A connection ended after the list
        // was taken may be missing from it, and is kept until the next one.
        // A stream's connection is not listed (see `socket::Listing`): its ending, which
        // carries the stream's outlet, is kept for as long as it is a stream.
        last_request.retain(|peer, _| seen.contains(peer));
        lock(&self.closed).retain(|peer, ended| {
            seen.contains(peer) || streams.contains_key(peer) || ended.at > now
        });
        idle
    }

    /// The connections among `accepted` (each with the bytes it has received, one entry per
    /// descriptor) that were sent more than `limit` bytes since a look that saw them, with no
    /// request started since, and how many: a head that does not end, which tiny_http holds in
    /// memory as it comes (it reads a head with no limit), until the idle timeout, or a chunked
    /// body's size line that does not end, which its decoder holds so, past the body's deadline
    /// (checked between reads). Streams are not (their read half is shut); one found is
    /// forgotten.
    pub fn unfinished(&self, accepted: &[(SocketAddr, u64)], limit: u64) -> Vec<(SocketAddr, u64)> {
        let streams = lock(&self.streams);
        let mut received_then = lock(&self.received_then);
        let mut seen = HashSet::with_capacity(accepted.len());
        let mut unfinished = Vec::new();
        for &(peer, received) in accepted {
            if !seen.insert(peer) || streams.contains_key(&peer) {
                continue;
            }
            let since = received.saturating_sub(*received_then.entry(peer).or_insert(received));
            if since > limit {
                received_then.remove(&peer);
                unfinished.push((peer, since));
            }
        }
        received_then.retain(|peer, _| seen.contains(peer));
        unfinished
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    impl Connections {
        fn is_closed(&self, peer: SocketAddr) -> bool {
            lock(&self.closed).contains_key(&peer)
        }
    }

    fn peer(port: u16) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], port))
    }

    #[test]
    fn a_request_wakes_the_sweep_that_dozes() {
        let connections = Arc::new(Connections::default());
        connections.wake_on_request(Some(std::thread::current()));
        let started = Instant::now();
        let requester = {
            let connections = connections.clone();
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(50));
                connections.request_started(peer(1));
            })
        };
        let patience = Duration::from_secs(10);
        while connections.requests_started() == 0 && started.elapsed() < patience {
            std::thread::park_timeout(patience.saturating_sub(started.elapsed()));
        }
        // Parked to the end of its patience, it would have taken 10 s.
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "woken by the request"
        );
        assert!(lock(&connections.dozing).is_none(), "woken once");
        requester.join().unwrap();
    }

    #[test]
    fn idle_after_the_timeout_unless_a_stream_or_busy() {
        let connections = Connections::default();
        let timeout = Duration::from_secs(10);
        let start = Instant::now();
        // First seen: active now.
        let all = [peer(1), peer(2), peer(3), peer(4)];
        assert!(connections.idle(&all, timeout, start).is_empty());
        connections.stream_started(peer(2));
        connections.request_started(peer(3));
        // Two requests of one connection, pipelined, each on a thread of its own.
        connections.body_started(peer(4));
        connections.body_started(peer(4));
        let later = start + timeout;
        let idle = connections.idle(
            &[peer(1), peer(1), peer(2), peer(3), peer(4)],
            timeout,
            later,
        );
        assert_eq!(idle, vec![peer(1)]);
        connections.body_ended(peer(4));
        assert!(connections.idle(&[peer(4)], timeout, later).is_empty());
        assert!(connections.is_busy(peer(4)));
        connections.body_ended(peer(4));
        assert_eq!(connections.idle(&[peer(4)], timeout, later), vec![peer(4)]);
    }

    #[test]
    fn a_connection_sent_more_than_the_limit_with_no_request_started_is_unfinished() {
        let connections = Connections::default();
        let limit = 1000;
        // Seen first with what it had received by then (two descriptors, one connection).
        let first = [
            (peer(1), 5000),
            (peer(1), 5000),
            (peer(2), 0),
            (peer(3), 0),
            (peer(4), 0),
        ];
        assert!(connections.unfinished(&first, limit).is_empty());
        connections.stream_started(peer(2));
        connections.request_started(peer(3));
        // A body being read counts too: none the server takes is that long.
        connections.body_started(peer(4));
        let later = [
            (peer(1), 6001),
            (peer(2), 9000),
            (peer(3), 9000),
            (peer(4), 2000),
        ];
        assert_eq!(
            connections.unfinished(&later, limit),
            vec![(peer(1), 1001), (peer(4), 2000)]
        );
        // A request started resets the count at the next look; one found starts again too.
        assert!(connections.unfinished(&later, limit).is_empty());
        let after = [(peer(1), 6500), (peer(3), 9900)];
        assert!(connections.unfinished(&after, limit).is_empty());
        assert_eq!(
            connections.unfinished(&[(peer(1), 7002)], limit),
            vec![(peer(1), 1001)]
        );
        assert_eq!(
            lock(&connections.received_then).len(),
            0,
            "peers 3 and 4 gone"
        );
    }

    #[test]
    fn gone_connections_are_forgotten() {
        let connections = Connections::default();
        let now = Instant::now();
        connections.idle(&[peer(1), peer(2)], Duration::from_secs(1), now);
        connections.idle(&[peer(2)], Duration::from_secs(1), now);
        assert_eq!(lock(&connections.last_request).len(), 1);
    }

    #[test]
    fn a_streams_address_is_free_again_once_the_stream_has_ended() {
        let connections = Connections::default();
        // As the request loop and the stream's thread do.
        let mark = connections.closed(peer(1));
        connections.stream_started(peer(1));
        assert!(
            connections.is_closed(peer(1)),
            "what follows the stream is dropped"
        );
        connections.stream_ended(peer(1), Some(mark));
        assert!(
            !connections.in_use(peer(1)),
            "a later connection from it is served"
        );
    }

    fn outlet() -> Arc<Outlet> {
        let metrics = Arc::new(crate::metrics::Metrics::default());
        let framing = crate::chunked::Framing::Chunked;
        Arc::new(Outlet::new(Box::new(std::io::sink()), framing, metrics))
    }

    #[test]
    fn a_new_connection_from_a_gone_streams_address_keeps_its_own_ending() {
        let connections = Connections::default();
        let old = outlet();
        let old_mark = connections.closed(peer(1));
        connections.stream_started(peer(1));
        assert!(
            matches!(connections.ending(peer(1)), Some(Ending::Unknown)),
            "not shared yet"
        );
        connections.stream_shares(peer(1), old_mark, &old);
        assert!(matches!(
            connections.ending(peer(1)),
            Some(Ending::Stream(outlet, mark)) if Arc::ptr_eq(&outlet, &old) && mark == old_mark
        ));
        // Its client gone unnoticed, a new connection from its address is served, and opens a
        // stream of its own.
        connections.reopened(peer(1), old_mark);
        assert!(!connections.is_closed(peer(1)));
        let new_mark = connections.closed(peer(1));
        connections.stream_started(peer(1));
        // What is done for the old stream leaves the new one's ending alone.
        connections.reopened(peer(1), old_mark);
        connections.stream_shares(peer(1), old_mark, &old);
        connections.stream_ended(peer(1), Some(old_mark));
        assert!(connections.is_closed(peer(1)));
        assert!(matches!(connections.ending(peer(1)), Some(Ending::Unknown)));
        assert!(connections.is_stream(peer(1)), "the new stream is on");
        // Its outlet gone before it says it has ended.
        let new = outlet();
        connections.stream_shares(peer(1), new_mark, &new);
        drop(new);
        assert!(matches!(
            connections.ending(peer(1)),
            Some(Ending::StreamOver(mark)) if mark == new_mark
        ));
        connections.stream_ended(peer(1), Some(new_mark));
        assert!(!connections.in_use(peer(1)));
    }

    #[test]
    fn a_stream_not_started_leaves_its_connection_ended() {
        let connections = Connections::default();
        connections.closed(peer(1));
        connections.stream_started(peer(1));
        connections.stream_ended(peer(1), None);
        assert!(!connections.is_stream(peer(1)));
        assert!(
            connections.is_closed(peer(1)),
            "for the refusal that follows"
        );
    }

    #[test]
    fn a_closed_connection_is_remembered_while_it_is_listed() {
        let connections = Connections::default();
        let listed = Instant::now();
        connections.closed(peer(1));
        connections.closed(peer(2));
        assert!(connections.in_use(peer(1)));
        // Ended after the list was taken: kept.
        connections.idle(&[], Duration::from_secs(1), listed);
        assert!(connections.is_closed(peer(1)));
        let later = Instant::now();
        connections.idle(&[peer(2)], Duration::from_secs(1), later);
        assert!(!connections.is_closed(peer(1)));
        assert!(connections.is_closed(peer(2)));
    }

    #[test]
    fn a_streams_ending_is_remembered_while_it_is_a_stream_though_not_listed() {
        let connections = Connections::default();
        let mark = connections.closed(peer(1));
        connections.stream_started(peer(1));
        let stream = outlet();
        connections.stream_shares(peer(1), mark, &stream);
        let later = Instant::now();
        connections.idle(&[], Duration::from_secs(1), later);
        assert!(connections.is_closed(peer(1)));
        assert_eq!(connections.shared_outlets().len(), 1);
        // Ended: forgotten with its connection.
        connections.stream_ended(peer(1), None);
        connections.idle(&[], Duration::from_secs(1), Instant::now());
        assert!(!connections.is_closed(peer(1)));
    }
}
