//! Request bodies that tiny_http has not read: read on a short-lived thread of their own, with a
//! deadline, so that a slow client stalls no one.
//!
//! tiny_http reads a body itself only when it declares at most 1 KiB and the client does not
//! wait for `100 Continue`. Any other body (a larger one, a chunked one, one behind `Expect:
//! 100-continue`) is still on the socket when the request reaches the server, and reading it
//! takes as long as the client likes. So it is read on a thread of its own, at most
//! [`MAX_READERS`] at once and [`MAX_READERS_PER_CLIENT`] for one client, with a read timeout
//! on the socket that adds up to [`BODY_TIME`] for the whole body; then the same thread asks the
//! handler and answers.

use std::io::{ErrorKind, Read};
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use socket2::Socket;

use super::job;
use super::screen::{HttpRefusal, RequestFraming, refusal};
use crate::lock;

/// The largest body any route may take.
pub const MAX_BODY: usize = 16 * 1024;

/// Bodies read at once; past it a request with a body to read is answered `503`.
pub const MAX_READERS: usize = 64;

/// Bodies read at once for one client ([`super::client`]: an IPv4 address, an IPv6 /64): one
/// that trickles its bodies holds no more readers than this, and leaves the rest to others.
pub const MAX_READERS_PER_CLIENT: usize = 16;

/// A body over the route's limit, declared or read.
pub const TOO_LARGE: HttpRefusal = refusal(413, "request body too large\n");
/// A body not received within [`BODY_TIME`].
const TIMED_OUT: HttpRefusal = refusal(408, "request body not received in time\n");

/// The longest a client may take to send a whole body.
const BODY_TIME: Duration = Duration::from_secs(10);

/// A reader thread reads a little and runs a handler; the handler's stack needs are small (with
/// `--redis` a publish runs the Redis client, which may look a host name up: well within it).
const STACK_SIZE: usize = 256 * 1024;

/// The threads reading bodies now: each holds a [`Reading`].
#[derive(Default)]
pub struct Readers {
    /// Each reader's client, at most [`MAX_READERS`] of them.
    clients: Arc<Mutex<Vec<IpAddr>>>,
    /// Of them, those answering: the body read (or none to read), the handler running or its
    /// answer being written. What a stopping server waits for (see `serve.rs`).
    answering: AtomicUsize,
}

/// A reader answering, counted until dropped.
pub struct Answering<'a>(&'a AtomicUsize);

impl Drop for Answering<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One reader, counted for its client until dropped.
struct Reading {
    clients: Arc<Mutex<Vec<IpAddr>>>,
    client: IpAddr,
}

impl Drop for Reading {
    fn drop(&mut self) {
        let mut clients = lock(&self.clients);
        if let Some(at) = clients.iter().position(|&client| client == self.client) {
            clients.swap_remove(at);
        }
    }
}

impl Readers {
    /// Runs `run(job)` on a thread of its own, for the client at `peer`. If [`MAX_READERS`]
    /// threads are running, or [`MAX_READERS_PER_CLIENT`] for this client, or no thread can be
    /// had, the job comes back.
    pub fn spawn<T, F>(&self, peer: IpAddr, job: T, run: F) -> Result<(), T>
    where
        T: Send + 'static,
        F: FnOnce(T) + Send + 'static,
    {
        let client = super::client(peer);
        {
            let mut clients = lock(&self.clients);
            let its = clients.iter().filter(|&&reading| reading == client).count();
            if its >= MAX_READERS_PER_CLIENT || clients.len() >= MAX_READERS {
                return Err(job);
            }
            clients.push(client);
        }
        // Counted until dropped: once `run` ends, or with the job when no thread can be had.
        let reading = Reading {
            clients: self.clients.clone(),
            client,
        };
        job::spawn("sse-body", STACK_SIZE, (job, reading), |(job, _reading)| {
            run(job);
        })
        .map_err(|((job, _reading), _)| job)
    }

    /// Counts the calling reader as answering until the guard is dropped.
    pub fn answering(&self) -> Answering<'_> {
        self.answering.fetch_add(1, Ordering::SeqCst);
        Answering(&self.answering)
    }

    /// The readers answering now.
    pub fn answering_now(&self) -> usize {
        self.answering.load(Ordering::SeqCst)
    }
}

/// Reads a request's body, at most `limit` bytes, within [`BODY_TIME`]. Sends `100 Continue` first
/// if the client waits for it (tiny_http does so on the first read).
///
/// The socket's read timeout is set for the reads and cleared after. tiny_http reads the next
/// request on the connection once a body has been read to its end; for a chunked body that may
/// start just before the timeout is cleared, and that wait then keeps the timeout: a client
/// silent for [`BODY_TIME`] after a chunked body gets tiny_http's `408` and the connection ends.
pub fn read(
    request: &mut tiny_http::Request,
    socket: &Socket,
    framing: RequestFraming,
    limit: usize,
) -> Result<Vec<u8>, HttpRefusal> {
    // Taken before tiny_http's reader, which writes the `100 Continue` first: that write counts.
    let deadline = Instant::now() + BODY_TIME;
    let time_left = |left| {
        let _ = socket.set_read_timeout(Some(left));
    };
    let read = read_within(request.as_reader(), time_left, framing, limit, deadline);
    let _ = socket.set_read_timeout(None);
    read
}

/// The body from `reader`, setting the time left before each read.
fn read_within(
    reader: &mut dyn Read,
    mut time_left: impl FnMut(Duration),
    framing: RequestFraming,
    limit: usize,
    deadline: Instant,
) -> Result<Vec<u8>, HttpRefusal> {
    let declared = match framing {
        RequestFraming::None => return Ok(Vec::new()),
        RequestFraming::Length(length) if length > limit as u64 => return Err(TOO_LARGE),
        RequestFraming::Length(length) => Some(length as usize),
        RequestFraming::Chunked => None,
    };
    let mut body = Vec::with_capacity(declared.unwrap_or(1024).min(limit));
    let mut buf = [0; 4096];
    loop {
        // A declared body is read to its length and no further: the read that finds its end
        // would hand the connection back to tiny_http while the read timeout is still set.
        let want = match declared {
            Some(length) if body.len() == length => return Ok(body),
            Some(length) => (length - body.len()).min(buf.len()),
            None => buf.len(),
        };
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(TIMED_OUT);
        }
        time_left(left);
        match reader.read(&mut buf[..want]) {
            Ok(0) if declared.is_none() => return Ok(body),
            Ok(0) => return Err(refusal(400, "request body cut short\n")),
            Ok(n) => {
                body.extend_from_slice(&buf[..n]);
                if body.len() > limit {
                    return Err(TOO_LARGE);
                }
            }
            Err(e) => match e.kind() {
                ErrorKind::Interrupted => {}
                ErrorKind::WouldBlock | ErrorKind::TimedOut => return Err(TIMED_OUT),
                // The chunked decoder's error for a bad chunk size or a chunk longer than its size.
                ErrorKind::InvalidInput => return Err(refusal(400, "bad chunked body\n")),
                _ => return Err(refusal(400, "request body not received\n")),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{self, Cursor};
    use std::sync::{Mutex, mpsc};
    use std::thread;

    fn read(bytes: &[u8], framing: RequestFraming, limit: usize) -> Result<Vec<u8>, u16> {
        let later = Instant::now() + Duration::from_secs(5);
        read_within(&mut Cursor::new(bytes), |_| {}, framing, limit, later).map_err(|r| r.status)
    }

    #[test]
    fn a_declared_body_is_read_to_its_length_and_no_further() {
        assert_eq!(
            read(b"helloGET", RequestFraming::Length(5), 100),
            Ok(b"hello".to_vec())
        );
        assert_eq!(read(b"hel", RequestFraming::Length(5), 100), Err(400));
        assert_eq!(read(b"hello", RequestFraming::Length(5), 4), Err(413));
        assert_eq!(read(b"", RequestFraming::None, 0), Ok(Vec::new()));
    }

    #[test]
    fn a_chunked_body_ends_at_its_end_and_is_capped() {
        // The reader stands for tiny_http's decoder: it gives the decoded bytes.
        assert_eq!(
            read(b"hello", RequestFraming::Chunked, 5),
            Ok(b"hello".to_vec())
        );
        let big = vec![b'x'; 3 * 4096];
        assert_eq!(read(&big, RequestFraming::Chunked, 8192), Err(413));
    }

    struct Failing(ErrorKind);

    impl Read for Failing {
        fn read(&mut self, _: &mut [u8]) -> io::Result<usize> {
            Err(self.0.into())
        }
    }

    #[test]
    fn read_errors_become_statuses() {
        let later = Instant::now() + Duration::from_secs(5);
        for (kind, status) in [
            (ErrorKind::WouldBlock, 408),
            (ErrorKind::TimedOut, 408),
            (ErrorKind::InvalidInput, 400),
            (ErrorKind::ConnectionReset, 400),
        ] {
            let read = read_within(
                &mut Failing(kind),
                |_| {},
                RequestFraming::Chunked,
                10,
                later,
            );
            assert_eq!(read.map_err(|r| r.status), Err(status), "{kind:?}");
        }
    }

    #[test]
    fn each_read_gets_the_time_left_and_none_after_the_deadline() {
        let lefts = Mutex::new(Vec::new());
        let deadline = Instant::now() + Duration::from_secs(5);
        let body = read_within(
            &mut Cursor::new(vec![b'x'; 5000]),
            |left| lefts.lock().unwrap().push(left),
            RequestFraming::Length(5000),
            MAX_BODY,
            deadline,
        );
        assert_eq!(body.map(|b| b.len()), Ok(5000));
        let lefts = lefts.into_inner().unwrap();
        assert_eq!(lefts.len(), 2, "one per read");
        assert!(lefts.iter().all(|left| *left <= Duration::from_secs(5)));
        let past = read_within(
            &mut Cursor::new(b"x"),
            |_| {},
            RequestFraming::Chunked,
            10,
            Instant::now(),
        );
        assert_eq!(past.map_err(|r| r.status), Err(408));
    }

    #[test]
    fn readers_are_bounded() {
        let readers = Readers::default();
        let (release, wait) = mpsc::channel::<()>();
        let wait = Arc::new(Mutex::new(wait));
        let running = |readers: &Readers| lock(&readers.clients).len();
        let waiting = |readers: &Readers, client: &str| {
            let wait = wait.clone();
            readers.spawn(client.parse().unwrap(), (), move |()| {
                let _ = wait.lock().unwrap().recv();
            })
        };
        // So many for one client, and no more; its IPv6 /64 is one client.
        for _ in 0..MAX_READERS_PER_CLIENT / 2 {
            waiting(&readers, "2001:db8::1").unwrap();
            waiting(&readers, "2001:db8::2").unwrap();
        }
        assert_eq!(waiting(&readers, "2001:db8::3"), Err(()));
        // Others fill the rest, and no more.
        let others = MAX_READERS - MAX_READERS_PER_CLIENT;
        for n in 0..others {
            waiting(&readers, &format!("192.0.2.{n}")).unwrap();
        }
        assert_eq!(running(&readers), MAX_READERS);
        assert_eq!(
            readers.spawn("198.51.100.1".parse().unwrap(), 7, |_| {}),
            Err(7)
        );
        drop(release);
        let deadline = Instant::now() + Duration::from_secs(5);
        while running(&readers) > 0 && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(running(&readers), 0);
        assert!(
            lock(&readers.clients).is_empty(),
            "every client's count gone"
        );
        assert!(waiting(&readers, "2001:db8::3").is_ok());
    }
}
