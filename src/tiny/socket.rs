//! Socket options for the listener, and reaching the sockets of connections tiny_http accepted.
//!
//! Options set on a listening socket are inherited by the sockets it accepts (Linux copies them
//! at accept), which is the only way to configure sockets that tiny_http owns. A receive timeout
//! must never be set there: tiny_http's accept thread stops for good on its first accept error.
//!
//! tiny_http hands out no socket, yet some things need one: letting go of a stream's read half,
//! closing an idle connection, refusing a body. [`Sockets::find`] looks a connection up among the
//! process's descriptor numbers by its two addresses and returns a duplicate that it made itself,
//! so the only descriptor this module ever owns is one it created. Whether a descriptor is a
//! connection accepted on the listener is decided by its local address (`address.rs`).

use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, BorrowedFd, OwnedFd, RawFd};
use std::sync::Mutex;
use std::sync::atomic::{AtomicI32, AtomicU32, Ordering};
use std::time::Duration;

use socket2::{Domain, SockRef, Socket, TcpKeepalive, Type};

use super::address::accepted_on;
use super::capacity::{open_descriptors, read_number};
use crate::lock;

/// TCP keep-alive on every connection: a peer that vanished without a FIN (power cut, cable,
/// NAT timeout) is found after about 60 s + 6 × 10 s of silence, instead of never.
const KEEPALIVE_IDLE: Duration = Duration::from_secs(60);
const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
const KEEPALIVE_PROBES: u32 = 6;

/// The kernel's send buffer for each connection (it doubles the figure for its own bookkeeping).
/// Fixed rather than auto-tuned up to megabytes: a client that stops reading then pins little
/// kernel memory and meets the send timeout soon. The largest response, htmx itself, fits.
const SEND_BUFFER: usize = 64 * 1024;

/// Binds a listener whose accepted sockets have a send timeout (a client that stops reading
/// cannot hold a thread in `write` longer than that), a bounded send buffer, TCP keep-alive and
/// no Nagle delay. `[::]` means every interface: dual-stack, or `0.0.0.0` on a host without IPv6.
pub fn listen(addr: SocketAddr, backlog: i32, send_timeout: Duration) -> io::Result<TcpListener> {
    let (addr, socket) = match Socket::new(Domain::for_address(addr), Type::STREAM, None) {
        Err(error)
            if error.raw_os_error() == Some(libc::EAFNOSUPPORT)
                && addr == SocketAddr::from((Ipv6Addr::UNSPECIFIED, addr.port())) =>
        {
            let every_ipv4 = SocketAddr::from((Ipv4Addr::UNSPECIFIED, addr.port()));
            (every_ipv4, Socket::new(Domain::IPV4, Type::STREAM, None)?)
        }
        socket => (addr, socket?),
    };
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(false).ok();
    }
    configure(&socket, send_timeout)?;
    socket.bind(&addr.into())?;
    socket.listen(backlog)?;
    Ok(socket.into())
}

/// Takes a listening socket handed over by the image this process ran before (see
/// `handoff.rs`), after checking that it is one, and sets this image's options on it.
pub fn adopt(fd: OwnedFd, send_timeout: Duration) -> io::Result<TcpListener> {
    let socket = Socket::from(fd);
    let is_tcp = socket.local_addr()?.as_socket().is_some();
    if !is_tcp || socket.r#type()? != Type::STREAM || !socket.is_listener()? {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "the inherited descriptor is not a listening TCP socket",
        ));
    }
    // The image before made it non-blocking to end its accept threads (`accept.rs`).
    socket.set_nonblocking(false)?;
    configure(&socket, send_timeout)?;
    Ok(socket.into())
}

/// The options every accepted socket inherits from the listener.
fn configure(socket: &Socket, send_timeout: Duration) -> io::Result<()> {
    socket.set_tcp_nodelay(true)?;
    socket.set_write_timeout(Some(send_timeout))?;
    socket.set_send_buffer_size(SEND_BUFFER)?;
    // Turns keep-alive on, too.
    socket.set_tcp_keepalive(
        &TcpKeepalive::new()
            .with_time(KEEPALIVE_IDLE)
            .with_interval(KEEPALIVE_INTERVAL)
            .with_retries(KEEPALIVE_PROBES),
    )
}

/// Has the kernel hold each new connection until its first byte (or its end) arrives, for up to
/// about `wait`, before tiny_http's accept thread sees it.
///
/// tiny_http starts a thread for every connection it accepts, one after another on its accept
/// thread (40–75 µs each on a 2-core machine), so a burst of connections that send nothing
/// would otherwise make the next real request wait behind all their thread starts (2,000 of
/// them: 100–150 ms), and each would hold a thread until the idle sweep closes it. Held, they
/// cost no thread and no descriptor. A client that never sends is accepted once the wait is over
/// and then closed by the idle sweep like any connection that starts no request; silent
/// connections opened together are handed over together then, so their thread starts are paid
/// later rather than never, unless they send or close first.
///
/// The kernel counts the wait in retransmissions of its answer to the handshake, which come
/// 1, 3, 7, 15, 31, 63, 127 s after the connection and every 2 minutes after that; it is given
/// the last of these not past `wait` (at least 1 s), so that a silent connection is accepted
/// within `wait`. (socket2 does not offer the option: it is set here.)
#[allow(unsafe_code)]
pub fn defer_accept(listener: &TcpListener, wait: Duration) -> io::Result<()> {
    let wait = wait.as_secs().min(24 * 3600) as libc::c_int;
    let (mut seconds, mut step) = (1, 2);
    while seconds + step <= wait {
        seconds += step;
        step = (step * 2).min(120);
    }
    // SAFETY: setsockopt reads `len` bytes through the pointer, which points at `seconds`, a live
    // `c_int` of exactly that size; the descriptor is owned by `listener`, borrowed for the call.
    let done = unsafe {
        libc::setsockopt(
            listener.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_DEFER_ACCEPT,
            (&seconds as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    (done == 0)
        .then_some(())
        .ok_or_else(io::Error::last_os_error)
}

/// A connection accepted on the listener, as one of its descriptors showed it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Accepted {
    pub peer: SocketAddr,
    /// Bytes received and not yet read by anyone.
    pub unread: usize,
    /// One side has sent its FIN: a thread that reads the connection sees its end at once (or
    /// the server ended it), so a descriptor that stays in this state is not being read.
    pub closing: bool,
    /// Bytes received on the connection since it was accepted.
    pub received: u64,
}

/// What one pass over the descriptors found.
#[derive(Debug, Default)]
pub struct Listing {
    /// Every connection accepted on the listener that this process holds but the streams, one
    /// entry per descriptor (tiny_http holds two for a connection it is still reading).
    pub accepted: Vec<Accepted>,
    /// The descriptors of streams' connections: counted, not listed (nothing is done with
    /// them, and thousands of entries would cost every pass over the list).
    pub streams: usize,
    /// The sockets (by [`socket_cookie`]) of connections accepted on the listener that are
    /// closed on both sides yet still held, one entry per descriptor: whoever holds them is
    /// about to close them, or never will.
    pub dead: Vec<u64>,
}

/// Finds the sockets of connections accepted on one listener.
///
/// Every search asks descriptor numbers one by one, and only below the size of the process's
/// descriptor table ([`Sockets::table_size`]): no number at or above it can be open. A search
/// for a connection that is gone asks them all; each open socket costs about 1.2 µs (the kernel
/// takes the socket's lock to say its address), each closed number 0.15–0.25 µs. So none runs
/// on the request loop: only on a thread of the connection's (its stream's, its body's) or on
/// the sweep's, which also closes refused connections (`refuse.rs`).
pub struct Sockets {
    local: SocketAddr,
    /// The highest descriptor number the process can have: the bound if the table's size cannot
    /// be read.
    max_fd: RawFd,
    /// The descriptor table's size when last read. It never shrinks, so a number at or above it
    /// was opened since, and a search that finds nothing below it reads it again.
    table: AtomicI32,
    /// Where the last search found a connection: new connections get nearby descriptor numbers,
    /// so searching outward from here usually takes a few probes.
    last_found: AtomicI32,
    /// The other connections a search passed on its way, by peer, where they were then: tried
    /// first by the search for one of them. When a thousand streams open at once, their
    /// searches start from each other's finds in no set order, and would otherwise ask some
    /// dozens of numbers each. A number may have been reused since; the search checks it.
    passed: Mutex<HashMap<SocketAddr, RawFd>>,
    /// Passes left that do not list the descriptors (see [`Sockets::in_use_below`]).
    skip_listing: AtomicU32,
    /// The connections the last [`Sockets::accepted`] found, by [`socket_cookie`], with their
    /// peers: the next one asks such a socket its cookie, not its addresses again.
    known: Mutex<HashMap<u64, SocketAddr>>,
}

/// The most connections [`Sockets::passed`] remembers; past it, it starts again.
const MAX_PASSED: usize = 4096;

/// Passes that ask every number up to the open-file limit after a listing of the descriptors
/// found too many to pay (see [`Sockets::in_use_below`]).
const SKIP_LISTINGS: u32 = 16;

impl Sockets {
    pub fn new(local: SocketAddr, max_fd: RawFd) -> Sockets {
        Sockets {
            local,
            max_fd,
            table: AtomicI32::new(0),
            last_found: AtomicI32::new(3),
            passed: Mutex::new(HashMap::new()),
            skip_listing: AtomicU32::new(0),
            known: Mutex::new(HashMap::new()),
        }
    }

    /// One past the highest descriptor number open now, or a little higher: the size of the
    /// process's descriptor table (`FDSize` in /proc/self/status, 15–40 µs to read). The kernel
    /// grows the table to the next power of two when a higher number is opened and never shrinks
    /// it, so after 18,000 descriptors it stays 32,768 when a few hundred are left; the closed
    /// numbers above the highest open one cost 0.15 µs or so each (4.4 ms for 32,768). The highest
    /// open number itself, from /proc/self/fd, costs more than that: 3.3 ms with 2,000 open, 17 ms
    /// with 10,000, 35 ms with 18,000. Never above the open-file limit: the numbers above it are
    /// the feed streams' duplicates (`capacity.rs`), never a connection of tiny_http's; once one
    /// has grown the table past the limit, see [`Sockets::in_use_below`].
    fn table_size(&self) -> RawFd {
        let limit = self.max_fd.saturating_add(1);
        let size = match descriptor_table_size().unwrap_or(limit) {
            size if size > limit => self.in_use_below(limit).unwrap_or(limit),
            size => size,
        };
        self.table.fetch_max(size, Ordering::Relaxed);
        size
    }

    /// One past the highest number below `limit` open now, from /proc/self/fd: with a feed
    /// stream's duplicate above the limit, the table's size says nothing of the numbers below,
    /// and asking every one up to the limit would cost about 3 ms a pass at 15,870 (an idle
    /// server's sweep, a search for a connection that is gone), where a server with a few hundred
    /// descriptors lists them in a fraction of that. A listing's entry costs about as much as ten
    /// numbers asked, so a listing that passes a tenth of the limit's entries is given up, and
    /// none is tried for the next [`SKIP_LISTINGS`] passes.
    fn in_use_below(&self, limit: RawFd) -> Option<RawFd> {
        let skipped = self.skip_listing.load(Ordering::Relaxed);
        if skipped > 0 {
            self.skip_listing.store(skipped - 1, Ordering::Relaxed);
            return None;
        }
        let mut highest = -1;
        for (seen, fd) in open_descriptors()?.enumerate() {
            if seen > limit as usize / 10 {
                self.skip_listing.store(SKIP_LISTINGS, Ordering::Relaxed);
                return None;
            }
            if fd < limit {
                highest = highest.max(fd);
            }
        }
        Some(highest + 1)
    }

    /// An owned duplicate of the socket of the TCP connection from `peer` to the listener.
    ///
    /// Tries where an earlier search passed the connection, if one did; then searches outward
    /// from where the last search found a connection, below the table's size as last read; then,
    /// while the table has grown since, the numbers it grew by.
    pub fn find(&self, peer: SocketAddr) -> Option<Socket> {
        let on_the_way = std::cell::RefCell::new(Vec::new());
        let found = |fd: RawFd| {
            let now = peer_addr(fd)?;
            if now != peer {
                on_the_way.borrow_mut().push((now, fd));
                return None;
            }
            self.duplicate_if(fd, peer)
                .inspect(|_| self.last_found.store(fd, Ordering::Relaxed))
        };
        let hint = lock(&self.passed).remove(&peer);
        let mut known = self.table.load(Ordering::Relaxed);
        let start = self.last_found.load(Ordering::Relaxed).clamp(0, known);
        let outward = (0..known).flat_map(|distance| [start + distance, start - distance - 1]);
        let mut hit = hint
            .and_then(found)
            .or_else(|| outward.filter(|fd| (0..known).contains(fd)).find_map(found));
        let passed = on_the_way.take();
        // Not locked again when there is nothing to remember: a hit on the hint, the common
        // case while many streams open at once.
        if !passed.is_empty() {
            let mut remembered = lock(&self.passed);
            if remembered.len() + passed.len() > MAX_PASSED {
                remembered.clear();
            }
            remembered.extend(passed.into_iter().take(MAX_PASSED));
        }
        while hit.is_none() {
            // Every number below the size as last read was asked: a number at or above it was
            // opened since, if the table has grown (it never shrinks).
            let size = self.table_size();
            if size <= known {
                break;
            }
            hit = (known..size).find_map(found);
            known = size;
        }
        hit
    }

    /// Shuts down, in one pass over the descriptors, every connection accepted on the listener
    /// whose peer `close` picks, and returns those peers (each once). Whether a descriptor was
    /// accepted on the listener is asked only of one whose peer is picked, on its duplicate.
    pub fn shut_down_where(&self, close: impl Fn(SocketAddr) -> bool) -> Vec<SocketAddr> {
        let mut closed = Vec::new();
        for fd in 0..self.table_size() {
            if let Some(peer) = peer_addr(fd)
                && close(peer)
                && let Some(socket) = self.duplicate_if(fd, peer)
                // Not shut yet: a connection's other descriptor, once it is, is not in these
                // states (nor counted again; a search of the list would cost thousands of
                // comparisons a find when thousands of idle connections go at once).
                && tcp_info(socket.as_raw_fd())
                    .is_some_and(|(state, _)| matches!(state, TCP_ESTABLISHED | TCP_CLOSE_WAIT))
                && socket.shutdown(std::net::Shutdown::Both).is_ok()
            {
                closed.push(peer);
            }
        }
        closed
    }

    /// How many listening sockets on the listener's address there are but `keep`: one for
    /// each tiny_http server.
    pub fn count_listeners(&self, keep: RawFd) -> usize {
        (0..self.table_size())
            .filter(|&fd| fd != keep && local_addr(fd) == Some(self.local) && is_listener(fd))
            .count()
    }

    /// The connections accepted on the listener that this process holds (see [`Listing`]).
    /// A connection whose peer `is_stream` names is only counted: a stream's connection is never
    /// waiting for a request, so its unread bytes and TCP state are not looked at.
    ///
    /// It asks every descriptor number below the size of the process's descriptor table its
    /// socket's cookie (a closed number answers at once). Listing `/proc/self/fd` instead costs
    /// several times more, in the kernel's directory cache, with thousands of streams open. A
    /// socket is asked its addresses once, at the first listing that finds it: the kernel takes
    /// the socket's lock to say an address (about 1.2 µs each, against the fan-out's and the
    /// stream's writes), and not to say its cookie; a cookie names one socket for as long as
    /// the system runs, and a connected socket's peer does not change. So a look at 9,000
    /// streams asks 9,000 cookies, not 18,000 addresses.
    pub fn accepted(&self, is_stream: impl Fn(SocketAddr) -> bool) -> Listing {
        let mut listing = Listing::default();
        let known = std::mem::take(&mut *lock(&self.known));
        let mut found = HashMap::with_capacity(known.len());
        // Is descriptor number `fd` a socket accepted on the listener now?
        let is_ours = |fd| local_addr(fd).is_some_and(|local| accepted_on(self.local, local));
        for fd in 0..self.table_size() {
            let Some(cookie) = socket_cookie(fd) else {
                continue;
            };
            let peer = match known.get(&cookie) {
                Some(&peer) => Some(peer),
                None if is_ours(fd) => peer_addr(fd),
                None => continue,
            };
            match peer {
                Some(peer) if is_stream(peer) => {
                    found.insert(cookie, peer);
                    listing.streams += 1;
                }
                Some(peer) => match tcp_info(fd) {
                    // Closed on both sides (it then has no peer to ask for).
                    Some((TCP_CLOSE, _)) => listing.dead.push(cookie),
                    info => {
                        let (state, received) = info.unwrap_or((TCP_ESTABLISHED, 0));
                        found.insert(cookie, peer);
                        listing.accepted.push(Accepted {
                            peer,
                            unread: unread_bytes(fd).unwrap_or(0),
                            closing: state != TCP_ESTABLISHED,
                            received,
                        });
                    }
                },
                // A listener has the same local address, and no peer either.
                None if matches!(tcp_info(fd), Some((TCP_CLOSE, _))) => listing.dead.push(cookie),
                None => {}
            }
        }
        *lock(&self.known) = found;
        listing
    }

    /// A duplicate of descriptor `fd`, if it is still the connection from `peer` to the
    /// listener. The number may have been closed and reused since it was looked at; the duplicate
    /// is ours, so it is checked again and cannot change under us. A TCP connection is named by
    /// its two addresses, so a match is it.
    fn duplicate_if(&self, fd: RawFd, peer: SocketAddr) -> Option<Socket> {
        // Close-on-exec, as every descriptor std makes.
        let owned = Socket::from(at(fd, |fd| fd.try_clone_to_owned().ok())?);
        let same = owned.peer_addr().ok()?.as_socket()? == peer
            && accepted_on(self.local, owned.local_addr().ok()?.as_socket()?);
        same.then_some(owned)
    }
}

/// Descriptor number `fd`, borrowed for `ask`, which makes one system call with it.
#[allow(unsafe_code)]
fn at<T>(fd: RawFd, ask: impl FnOnce(BorrowedFd<'_>) -> Option<T>) -> Option<T> {
    if fd < 0 {
        return None;
    }
    // SAFETY: `borrow_raw` asks that the number stay open while borrowed, which cannot be
    // promised here: the numbers searched are owned by other threads of this process
    // (tiny_http's), which may close one, and the kernel reuse it, at any moment. What makes that
    // harmless: the borrow lasts one system call that only asks about the number (an address,
    // whether it listens, its unread bytes) or duplicates it, and the kernel answers about
    // whatever the number is then, or fails with EBADF; no memory is at stake. Nothing is
    // written to or shut down through it, and nothing closes it; what callers act on is a
    // duplicate they own, checked again (`Sockets::duplicate_if`).
    ask(unsafe { BorrowedFd::borrow_raw(fd) })
}

/// The address of the peer of descriptor number `fd`, if it is a connected socket now.
fn peer_addr(fd: RawFd) -> Option<SocketAddr> {
    at(fd, |fd| SockRef::from(&fd).peer_addr().ok()?.as_socket())
}

/// The local address of descriptor number `fd`, if it is a bound socket now.
fn local_addr(fd: RawFd) -> Option<SocketAddr> {
    at(fd, |fd| SockRef::from(&fd).local_addr().ok()?.as_socket())
}

/// Is descriptor number `fd` a listening socket now?
fn is_listener(fd: RawFd) -> bool {
    at(fd, |fd| SockRef::from(&fd).is_listener().ok()).unwrap_or(false)
}

/// Linux's TCP states (include/net/tcp_states.h), as `TCP_INFO` reports them.
const TCP_ESTABLISHED: u8 = 1;
/// The peer has sent its FIN; this side has not.
const TCP_CLOSE_WAIT: u8 = 8;
const TCP_CLOSE: u8 = 7;

/// The TCP state of descriptor number `fd` and the bytes it has received since it was accepted
/// (`struct tcp_info`'s first byte and `tcpi_bytes_received`, Linux 4.1; 0 before that), if it
/// is a TCP socket now. The kernel copies no more than asked for.
fn tcp_info(fd: RawFd) -> Option<(u8, u64)> {
    const RECEIVED: usize = std::mem::offset_of!(libc::tcp_info, tcpi_bytes_received);
    let mut info = [0u8; RECEIVED + 8];
    let len = option(fd, libc::IPPROTO_TCP, libc::TCP_INFO, &mut info)?;
    let received = match info[RECEIVED..].try_into() {
        Ok(bytes) if len == info.len() => u64::from_ne_bytes(bytes),
        _ => 0,
    };
    (len >= 1).then_some((info[0], received))
}

/// The kernel's number for the socket that descriptor number `fd` is open on (`SO_COOKIE`,
/// Linux 4.12): the same for every duplicate of it, never another socket's.
fn socket_cookie(fd: RawFd) -> Option<u64> {
    at(fd, |fd| SockRef::from(&fd).cookie().ok())
}

/// Socket option `name` at `level` of descriptor number `fd`, into `value`: how many bytes the
/// kernel wrote, or `None` if it refused (a closed number, or not such a socket).
#[allow(unsafe_code)]
fn option(fd: RawFd, level: libc::c_int, name: libc::c_int, value: &mut [u8]) -> Option<usize> {
    let mut len = value.len() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `value`, which is alive and that long,
    // and stores the length used in `len`; it takes the descriptor as a plain number and fails
    // on one that is closed or not such a socket.
    let done = unsafe { libc::getsockopt(fd, level, name, value.as_mut_ptr().cast(), &mut len) };
    (done == 0).then_some(len as usize)
}

/// The bytes waiting in the receive queue of descriptor number `fd`, if it is a socket now. The
/// number may have been closed and reused since it was listed; the callers only take the count
/// as a hint.
fn unread_bytes(fd: RawFd) -> Option<usize> {
    at(fd, |fd| {
        rustix::io::ioctl_fionread(fd).ok()?.try_into().ok()
    })
}

/// The size of the process's descriptor table (see [`Sockets::table_size`]).
fn descriptor_table_size() -> Option<RawFd> {
    read_number("/proc/self/status", "FDSize:")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::{Shutdown, TcpStream};
    use std::os::fd::AsRawFd;

    fn listener() -> TcpListener {
        listen("127.0.0.1:0".parse().unwrap(), 16, Duration::from_secs(7)).unwrap()
    }

    #[test]
    fn listener_options_reach_accepted_sockets() {
        let listener = listener();
        let _client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        assert_eq!(
            accepted.write_timeout().unwrap(),
            Some(Duration::from_secs(7))
        );
        assert_eq!(accepted.read_timeout().unwrap(), None);
        assert!(accepted.nodelay().unwrap());
        let accepted = SockRef::from(&accepted);
        assert_eq!(accepted.send_buffer_size().unwrap(), 2 * SEND_BUFFER);
        assert!(accepted.keepalive().unwrap());
        assert_eq!(accepted.tcp_keepalive_time().unwrap(), KEEPALIVE_IDLE);
        assert_eq!(
            accepted.tcp_keepalive_interval().unwrap(),
            KEEPALIVE_INTERVAL
        );
        assert_eq!(accepted.tcp_keepalive_retries().unwrap(), KEEPALIVE_PROBES);
    }

    #[test]
    fn shutting_the_found_read_half_ends_a_blocked_read() {
        let listener = listener();
        let local = listener.local_addr().unwrap();
        let client = TcpStream::connect(local).unwrap();
        let (mut accepted, peer) = listener.accept().unwrap();
        let mut reader = accepted.try_clone().unwrap();
        let blocked = std::thread::spawn(move || reader.read(&mut [0; 16]).unwrap());
        std::thread::sleep(Duration::from_millis(20));
        let found = Sockets::new(local, 4096).find(peer).expect("found");
        found.shutdown(Shutdown::Read).unwrap();
        assert_eq!(blocked.join().unwrap(), 0, "the read saw end of file");
        // The write half still works.
        std::io::Write::write_all(&mut accepted, b"still here").unwrap();
        drop(client);
    }

    #[test]
    fn a_search_tries_where_another_passed_its_connection_and_checks_it_first() {
        use std::os::fd::AsRawFd;
        let listener = listener();
        let local = listener.local_addr().unwrap();
        let clients: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(local).unwrap()).collect();
        let mut accepted: Vec<(TcpStream, SocketAddr)> =
            (0..3).map(|_| listener.accept().unwrap()).collect();
        accepted.sort_by_key(|(stream, _)| stream.as_raw_fd());
        let number = |i: usize| accepted[i].0.as_raw_fd();
        let peer = |i: usize| accepted[i].1;
        // A search for the lowest that starts at the highest passes the other two.
        let sockets = Sockets::new(local, 4096);
        sockets.last_found.store(number(2), Ordering::Relaxed);
        sockets.table.store(number(2) + 1, Ordering::Relaxed);
        let found = sockets.find(peer(0)).expect("the lowest");
        assert_eq!(found.peer_addr().unwrap().as_socket(), Some(peer(0)));
        for i in [1, 2] {
            assert_eq!(lock(&sockets.passed).get(&peer(i)), Some(&number(i)));
        }
        // A number that holds another connection now: checked, and the search goes on.
        lock(&sockets.passed).insert(peer(1), number(2));
        let found = sockets.find(peer(1)).expect("the middle one, searched for");
        assert_eq!(found.peer_addr().unwrap().as_socket(), Some(peer(1)));
        drop(clients);
    }

    #[test]
    fn past_the_limit_the_table_is_bounded_by_the_highest_number_open_below_it() {
        use std::os::fd::AsRawFd;
        let listener = listener();
        let local = listener.local_addr().unwrap();
        let _client = TcpStream::connect(local).unwrap();
        let (accepted, peer) = listener.accept().unwrap();
        // As a feed stream's duplicate does: a number above the limit grows the table past it.
        let limit: RawFd = 4096;
        let above = rustix::io::fcntl_dupfd_cloexec(&accepted, limit + 4000).unwrap();
        assert!(descriptor_table_size().unwrap() > limit);
        let sockets = Sockets::new(local, limit - 1);
        let size = sockets.table_size();
        assert!(size > accepted.as_raw_fd() && size < limit, "{size}");
        assert!(sockets.find(peer).is_some());
        assert_eq!(
            sockets.accepted(|_| false).accepted.len(),
            1,
            "the one below"
        );
        // Listing more than a tenth of the limit's entries does not pay: every number up to the
        // limit is asked, for a while even once they are closed.
        let many: Vec<_> = (0..limit / 10)
            .map(|_| accepted.try_clone().unwrap())
            .collect();
        assert_eq!(sockets.table_size(), limit);
        drop(many);
        for _ in 0..SKIP_LISTINGS {
            assert_eq!(sockets.table_size(), limit);
        }
        assert!(sockets.table_size() < limit);
        drop(above);
    }

    #[test]
    fn a_connection_above_the_table_size_last_read_is_found_wherever_the_search_starts() {
        use std::os::fd::AsRawFd;
        let listener = listener();
        let local = listener.local_addr().unwrap();
        let _client = TcpStream::connect(local).unwrap();
        let (accepted, peer) = listener.accept().unwrap();
        let fd = accepted.as_raw_fd();
        // As after other threads' searches: the size last read is below the connection's number,
        // and the last one found is at that size, so the search starts at the top of what it
        // knows; every number the table has grown by since must be asked.
        for stale in [1, fd / 2 + 1, fd] {
            let sockets = Sockets::new(local, 4096);
            sockets.table.store(stale, Ordering::Relaxed);
            sockets.last_found.store(stale, Ordering::Relaxed);
            let found = sockets.find(peer).expect("found");
            assert_eq!(
                found.peer_addr().unwrap().as_socket(),
                Some(peer),
                "table at {stale}"
            );
        }
    }

    #[test]
    fn accepted_lists_connections_of_this_listener_only_with_their_unread_bytes() {
        let listener = listener();
        let local = listener.local_addr().unwrap();
        let mut client = TcpStream::connect(local).unwrap();
        let (_accepted, peer) = listener.accept().unwrap();
        let sockets = Sockets::new(local, 4096);
        let open = Accepted {
            peer,
            unread: 0,
            closing: false,
            received: 0,
        };
        assert_eq!(sockets.accepted(|_| false).accepted, vec![open]);
        assert_eq!(peer, client.local_addr().unwrap());
        std::io::Write::write_all(&mut client, b"hello").unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while sockets.accepted(|_| false).accepted[0].unread < 5
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(1));
        }
        let unread = Accepted {
            unread: 5,
            received: 5,
            ..open
        };
        assert_eq!(sockets.accepted(|_| false).accepted, vec![unread]);
        // A stream's connection is counted, not listed.
        let stream = sockets.accepted(|stream| stream == peer);
        assert_eq!((stream.accepted, stream.streams), (vec![], 1));
    }

    #[test]
    fn a_connection_its_client_closed_is_closing_then_dead_once_shut_down_here() {
        let listener = listener();
        let local = listener.local_addr().unwrap();
        let client = TcpStream::connect(local).unwrap();
        let (accepted, peer) = listener.accept().unwrap();
        let sockets = Sockets::new(local, 4096);
        drop(client);
        let wait = |done: &dyn Fn(&Listing) -> bool| {
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            loop {
                let listing = sockets.accepted(|_| false);
                if done(&listing) || std::time::Instant::now() > deadline {
                    return listing;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        };
        let closing = wait(&|l| l.accepted.first().is_some_and(|c| c.closing));
        assert_eq!(closing.accepted.len(), 1);
        assert_eq!(closing.accepted[0].peer, peer);
        assert!(closing.accepted[0].closing);
        accepted.shutdown(Shutdown::Both).unwrap();
        let dead = wait(&|l| !l.dead.is_empty());
        use std::os::fd::AsRawFd;
        assert_eq!(
            dead.dead,
            vec![socket_cookie(accepted.as_raw_fd()).unwrap()]
        );
        assert!(dead.accepted.is_empty(), "the listener is not listed");
    }

    #[test]
    fn a_number_that_comes_to_hold_another_connection_is_listed_as_that_one() {
        // A listing remembers what it found by socket, not by number: a closed connection's
        // number may be the next one's at once.
        let listener = listener();
        let local = listener.local_addr().unwrap();
        let sockets = Sockets::new(local, 4096);
        let _first_client = TcpStream::connect(local).unwrap();
        let (first, first_peer) = listener.accept().unwrap();
        let is_stream = |peer| peer == first_peer;
        let peers = || -> (Vec<(SocketAddr, usize)>, usize) {
            let listing = sockets.accepted(is_stream);
            let peers = listing.accepted.iter().map(|c| (c.peer, c.unread));
            (peers.collect(), listing.streams)
        };
        assert_eq!(peers(), (vec![], 1));
        let mut second_client = TcpStream::connect(local).unwrap();
        let (second, second_peer) = listener.accept().unwrap();
        std::io::Write::write_all(&mut second_client, b"hello").unwrap();
        // The first's number now holds the second connection, and the first is closed.
        let mut number = OwnedFd::from(first);
        rustix::io::dup2(&second, &mut number).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while peers().0.iter().any(|&(_, unread)| unread < 5)
            && std::time::Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(1));
        }
        // Both numbers: asked as the connection they hold now, not as a stream.
        assert_eq!(peers(), (vec![(second_peer, 5), (second_peer, 5)], 0));
        assert_eq!(
            lock(&sockets.known).keys().copied().collect::<Vec<_>>(),
            vec![socket_cookie(second.as_raw_fd()).unwrap()],
            "the closed connection is forgotten"
        );
    }

    #[test]
    fn adopt_takes_a_listener_and_refuses_anything_else() {
        let listener = listener();
        let local = listener.local_addr().unwrap();
        let adopted = adopt(OwnedFd::from(listener), Duration::from_secs(3)).unwrap();
        assert_eq!(adopted.local_addr().unwrap(), local);
        let _client = TcpStream::connect(local).unwrap();
        let (accepted, _) = adopted.accept().unwrap();
        assert_eq!(
            accepted.write_timeout().unwrap(),
            Some(Duration::from_secs(3))
        );
        let file = std::fs::File::open("/dev/null").unwrap();
        assert!(adopt(OwnedFd::from(file), Duration::from_secs(3)).is_err());
        let connected = OwnedFd::from(accepted);
        assert!(adopt(connected, Duration::from_secs(3)).is_err());
    }

    /// What the accept watchdog's probe and the pool's nudge rely on: a held-back listener passes
    /// on a connection at its first byte or at its end, and holds one that sends nothing.
    #[test]
    fn a_deferring_listener_passes_on_a_connection_at_its_first_byte_or_its_end() {
        let listener = listener();
        defer_accept(&listener, Duration::from_secs(30)).unwrap();
        let local = listener.local_addr().unwrap();
        let silent = TcpStream::connect(local).unwrap();
        let mut speaking = TcpStream::connect(local).unwrap();
        std::io::Write::write_all(&mut speaking, b"G").unwrap();
        let ending = TcpStream::connect(local).unwrap();
        let ending_addr = ending.local_addr().unwrap();
        drop(ending);
        listener.set_nonblocking(true).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let mut accepted = Vec::new();
        while accepted.len() < 2 && std::time::Instant::now() < deadline {
            match listener.accept() {
                Ok((_, peer)) => accepted.push(peer),
                Err(_) => std::thread::sleep(Duration::from_millis(1)),
            }
        }
        accepted.sort();
        let mut expected = vec![speaking.local_addr().unwrap(), ending_addr];
        expected.sort();
        assert_eq!(accepted, expected);
        // Connected before both, and still not in the queue they went through.
        let held = listener.accept().map(|(_, peer)| peer);
        assert!(held.is_err(), "{held:?} accepted");
        drop(silent);
    }

    #[test]
    fn unknown_connection_is_not_found() {
        let peer = "127.0.0.1:1".parse().unwrap();
        let local = "127.0.0.1:2".parse().unwrap();
        assert!(Sockets::new(local, 256).find(peer).is_none());
    }

    #[test]
    fn closed_and_non_socket_numbers_have_no_address() {
        assert_eq!(peer_addr(-1), None);
        let file = std::fs::File::open("/proc/self/status").unwrap();
        use std::os::fd::AsRawFd;
        assert_eq!(local_addr(file.as_raw_fd()), None);
        let sockets = Sockets::new("127.0.0.1:2".parse().unwrap(), 256);
        assert!(
            sockets
                .duplicate_if(-1, "127.0.0.1:1".parse().unwrap())
                .is_none()
        );
    }
}
