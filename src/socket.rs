//! Socket options for the listener, and reaching the sockets of connections tiny_http accepted.
//!
//! Options set on a listening socket are inherited by the sockets it accepts (Linux copies them
//! at accept), which is the only way to configure sockets that tiny_http owns. A receive timeout
//! must never be set there: tiny_http's accept thread stops for good on its first accept error.
//!
//! tiny_http hands out no socket, yet some things need one: letting go of a stream's read half,
//! closing an idle connection, refusing a body. [`find`] looks a connection up among the
//! process's descriptors by its two addresses and returns a duplicate the caller owns.

use std::net::{SocketAddr, TcpListener};
use std::os::fd::{BorrowedFd, RawFd};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use socket2::{Domain, SockRef, Socket, TcpKeepalive, Type};

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
/// no Nagle delay.
pub fn listen(
    addr: SocketAddr,
    backlog: i32,
    send_timeout: Duration,
) -> std::io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(false).ok();
    }
    socket.set_tcp_nodelay(true)?;
    socket.set_write_timeout(Some(send_timeout))?;
    socket.set_send_buffer_size(SEND_BUFFER)?;
    socket.set_keepalive(true)?;
    socket.set_tcp_keepalive(
        &TcpKeepalive::new()
            .with_time(KEEPALIVE_IDLE)
            .with_interval(KEEPALIVE_INTERVAL)
            .with_retries(KEEPALIVE_PROBES),
    )?;
    socket.bind(&addr.into())?;
    socket.listen(backlog)?;
    Ok(socket.into())
}

/// Where the last search found a connection: new connections get nearby descriptor numbers, so
/// searching outward from here usually takes a few probes.
static LAST_FOUND: AtomicI32 = AtomicI32::new(3);

/// An owned duplicate of the socket of the TCP connection from `peer` to `local`, searched for
/// among descriptors `0..=max_fd`.
pub fn find(peer: SocketAddr, local: SocketAddr, max_fd: RawFd) -> Option<Socket> {
    let start = LAST_FOUND.load(Ordering::Relaxed).clamp(0, max_fd);
    for distance in 0..=max_fd {
        let (up, down) = (start + distance, start - distance - 1);
        if up > max_fd && down < 0 {
            break;
        }
        for fd in [up, down] {
            if (0..=max_fd).contains(&fd)
                && let Some(socket) = owned_if_connection(fd, peer, local)
            {
                LAST_FOUND.store(fd, Ordering::Relaxed);
                return Some(socket);
            }
        }
    }
    None
}

/// The peers of every connection accepted on `local` that this process holds, one entry per
/// descriptor (tiny_http holds two for a connection it is still reading).
///
/// It asks every descriptor number below the size of the process's descriptor table: one
/// `getsockname` each (a closed number answers at once). Listing `/proc/self/fd` instead costs
/// several times more, in the kernel's directory cache, with thousands of streams open.
pub fn accepted_peers(local: SocketAddr) -> Vec<SocketAddr> {
    (0..descriptor_table_size())
        .filter_map(|fd| {
            let candidate = borrow(fd);
            let candidate = SockRef::from(&candidate);
            if candidate.local_addr().ok()?.as_socket()? != local {
                return None;
            }
            candidate.peer_addr().ok()?.as_socket()
        })
        .collect()
}

/// One past the highest descriptor number the process could have open now (`FDSize` in
/// /proc/self/status, which grows in powers of two as descriptors are opened).
fn descriptor_table_size() -> RawFd {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|line| line.strip_prefix("FDSize:"))?
                .trim()
                .parse()
                .ok()
        })
        .unwrap_or(1024)
}

/// A duplicate of descriptor `fd` if it is the TCP connection from `peer` to `local`.
fn owned_if_connection(fd: RawFd, peer: SocketAddr, local: SocketAddr) -> Option<Socket> {
    let candidate = borrow(fd);
    let candidate = SockRef::from(&candidate);
    if candidate.peer_addr().ok()?.as_socket()? != peer {
        return None;
    }
    // The number may have been closed and reused since the check above; the duplicate is ours
    // and is checked again. A TCP connection is named by its two addresses, so a match is it.
    let owned = candidate.try_clone().ok()?;
    let same = owned.peer_addr().ok()?.as_socket()? == peer
        && owned.local_addr().ok()?.as_socket()? == local;
    same.then_some(owned)
}

#[allow(unsafe_code)]
fn borrow(fd: RawFd) -> BorrowedFd<'static> {
    // SAFETY: a BorrowedFd must refer to an open descriptor while it is used. Here it is used
    // for getsockname, getpeername and a dup only, which on a descriptor that was closed
    // meanwhile fail with EBADF and on a reused number act on whatever is there now; callers
    // check what they get, and none of these calls can touch memory. No read, write or close is
    // ever made through it.
    unsafe { BorrowedFd::borrow_raw(fd) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::{Shutdown, TcpStream};

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
        let found = find(peer, local, 4096).expect("found");
        found.shutdown(Shutdown::Read).unwrap();
        assert_eq!(blocked.join().unwrap(), 0, "the read saw end of file");
        // The write half still works.
        std::io::Write::write_all(&mut accepted, b"still here").unwrap();
        drop(client);
    }

    #[test]
    fn accepted_peers_lists_connections_of_this_listener_only() {
        let listener = listener();
        let local = listener.local_addr().unwrap();
        let client = TcpStream::connect(local).unwrap();
        let (_accepted, peer) = listener.accept().unwrap();
        assert_eq!(accepted_peers(local), vec![peer]);
        assert_eq!(peer, client.local_addr().unwrap());
    }

    #[test]
    fn unknown_connection_is_not_found() {
        let peer = "127.0.0.1:1".parse().unwrap();
        let local = "127.0.0.1:2".parse().unwrap();
        assert!(find(peer, local, 256).is_none());
    }
}
