//! Socket options for the listener, and finding the socket of a connection tiny_http accepted.
//!
//! Options set on a listening socket are inherited by the sockets it accepts (Linux copies them
//! at accept), which is the only way to reach sockets that tiny_http owns. A receive timeout must
//! never be set there: tiny_http's accept thread stops for good on its first accept error.

use std::net::{Shutdown, SocketAddr, TcpListener};
use std::os::fd::{BorrowedFd, RawFd};
use std::sync::atomic::{AtomicI32, Ordering};
use std::time::Duration;

use socket2::{Domain, SockRef, Socket, TcpKeepalive, Type};

/// How long one write to a client may block before the client is given up on.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);

/// Binds a listener whose accepted sockets have a send timeout, TCP keep-alive and no Nagle
/// delay.
pub fn listen(addr: SocketAddr, backlog: i32) -> std::io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    if addr.is_ipv6() {
        socket.set_only_v6(false).ok();
    }
    socket.set_tcp_nodelay(true)?;
    socket.set_write_timeout(Some(SEND_TIMEOUT))?;
    socket.set_keepalive(true)?;
    socket.set_tcp_keepalive(
        &TcpKeepalive::new()
            .with_time(Duration::from_secs(60))
            .with_interval(Duration::from_secs(10))
            .with_retries(6),
    )?;
    socket.bind(&addr.into())?;
    socket.listen(backlog)?;
    Ok(socket.into())
}

/// Where the last search found a connection: new connections get nearby descriptor numbers, so
/// searching outward from here usually takes a few probes.
static LAST_FOUND: AtomicI32 = AtomicI32::new(3);

/// Shuts the read half of the connection from `peer` to `local`.
///
/// An event stream never sends a second request, yet tiny_http keeps one of its pool threads
/// blocked reading the connection for one. Shutting the read half ends that read, and the pool
/// thread goes back to the pool: one thread per stream instead of two. tiny_http hands out no
/// socket, so this finds it among the process's descriptors by its addresses.
///
/// Returns `false` if it was not found (it is then left as it is).
pub fn release_read_half(peer: SocketAddr, local: SocketAddr, max_fd: RawFd) -> bool {
    let start = LAST_FOUND.load(Ordering::Relaxed).clamp(0, max_fd);
    for distance in 0..=max_fd {
        for fd in [start + distance, start - distance - 1] {
            if fd < 0 || fd > max_fd {
                continue;
            }
            if let Some(socket) = owned_if_connection(fd, peer, local) {
                LAST_FOUND.store(fd, Ordering::Relaxed);
                return socket.shutdown(Shutdown::Read).is_ok();
            }
        }
        if start + distance > max_fd && start - distance - 1 < 0 {
            break;
        }
    }
    false
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
    // for getpeername and a dup only, which on a descriptor that was closed meanwhile fail with
    // EBADF and on a reused number act on whatever is there now; both are checked by the caller,
    // and neither can touch memory. No read, write or close is ever made through it.
    unsafe { BorrowedFd::borrow_raw(fd) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::TcpStream;

    #[test]
    fn listener_options_reach_accepted_sockets() {
        let listener = listen("127.0.0.1:0".parse().unwrap(), 16).unwrap();
        let _client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, _) = listener.accept().unwrap();
        assert_eq!(accepted.write_timeout().unwrap(), Some(SEND_TIMEOUT));
        assert!(accepted.nodelay().unwrap());
        assert!(SockRef::from(&accepted).keepalive().unwrap());
        assert_eq!(accepted.read_timeout().unwrap(), None);
    }

    #[test]
    fn release_ends_a_blocked_read_on_the_connection() {
        let listener = listen("127.0.0.1:0".parse().unwrap(), 16).unwrap();
        let client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        let (accepted, peer) = listener.accept().unwrap();
        let local = accepted.local_addr().unwrap();
        let mut reader = accepted.try_clone().unwrap();
        let blocked = std::thread::spawn(move || reader.read(&mut [0; 16]).unwrap());
        std::thread::sleep(Duration::from_millis(20));
        assert!(release_read_half(peer, local, 4096));
        assert_eq!(blocked.join().unwrap(), 0, "the read saw end of file");
        // The write half still works.
        let mut accepted = accepted;
        std::io::Write::write_all(&mut accepted, b"still here").unwrap();
        drop(client);
    }

    #[test]
    fn unknown_connection_is_not_found() {
        let peer = "127.0.0.1:1".parse().unwrap();
        let local = "127.0.0.1:2".parse().unwrap();
        assert!(!release_read_half(peer, local, 256));
    }
}
