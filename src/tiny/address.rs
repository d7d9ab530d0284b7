//! The listener's address: which sockets were accepted on it, and how this process reaches it.
//!
//! A listener on a specific address (`127.0.0.1:8000`, `[::1]:8000`) accepts connections whose
//! local address is its own. One on a wildcard (`0.0.0.0:8000`, `[::]:8000`) never has that
//! luck: its connections show the address they came in on (`127.0.0.1:8000`,
//! `192.0.2.2:8000`, or on the dual-stack `[::]` an IPv4-mapped `[::ffff:127.0.0.1]:8000`), and
//! it cannot be connected to at its own address. Everything that finds tiny_http's connections
//! (`socket.rs`) or connects to the listener (the accept watchdog, the pool's nudge) asks here.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::time::Duration;

/// Can a socket whose local address is `local` have been accepted on the listener bound to
/// `listener`? The port must be the listener's. A listener on a specific IP accepts on that IP
/// only. One on `0.0.0.0` accepts on any of the host's IPv4 addresses; one on `[::]`, which
/// `socket::listen` makes dual-stack, on any address, showing an IPv4 one as IPv4-mapped IPv6
/// (`[::ffff:127.0.0.1]`). An IPv4 address and its mapped form count as the same.
///
/// On a wildcard the port and family decide alone, which is safe within this process: no
/// other listener can share the port (the kernel refuses a bind beside a listening wildcard
/// of the family, and `[::]` covers both), and the kernel gives an outgoing connection no
/// port that a listener holds.
pub fn accepted_on(listener: SocketAddr, local: SocketAddr) -> bool {
    let (listening, ip) = (listener.ip().to_canonical(), local.ip().to_canonical());
    let on_its_ip = if listening.is_unspecified() {
        listener.is_ipv6() || ip.is_ipv4()
    } else {
        ip == listening
    };
    local.port() == listener.port() && on_its_ip
}

/// The key a client is counted under: its IPv4 address, or its IPv6 /64 (a host is usually
/// given a whole /64, and may take any address in it).
pub fn client(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((v6.to_bits() & !u128::from(u64::MAX)).into()),
        },
    }
}

/// `peer` as the log shows it: an IPv4 client of a dual-stack `[::]` listener by its IPv4
/// address (`192.0.2.7:50000`, not `[::ffff:192.0.2.7]:50000`), as on `0.0.0.0`. Only for
/// showing: the socket's own address, mapped, is what finds its connection.
pub fn shown_peer(peer: SocketAddr) -> SocketAddr {
    SocketAddr::new(peer.ip().to_canonical(), peer.port())
}

/// A connection from this process to the listener bound to `listener`, and its address as the
/// accepted socket's peer will show it (IPv4-mapped on `[::]`), to look for among
/// [`Sockets::accepted`](super::socket::Sockets::accepted). A wildcard is reached through the
/// loopback address of its family; a dual-stack `[::]` also through 127.0.0.1, for hosts whose
/// loopback has no `::1` (IPv6 turned off in a container).
pub fn connect_to(listener: SocketAddr, timeout: Duration) -> Option<(TcpStream, SocketAddr)> {
    let (ip, port) = (listener.ip(), listener.port());
    let ipv4_loopback = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let target = match ip {
        _ if !ip.is_unspecified() => listener,
        IpAddr::V4(_) => ipv4_loopback,
        IpAddr::V6(_) => SocketAddr::from((Ipv6Addr::LOCALHOST, port)),
    };
    let stream = TcpStream::connect_timeout(&target, timeout)
        .or_else(|error| match ip == Ipv6Addr::UNSPECIFIED {
            true => TcpStream::connect_timeout(&ipv4_loopback, timeout),
            false => Err(error),
        })
        .ok()?;
    let mut seen = stream.local_addr().ok()?;
    if let (SocketAddr::V6(_), IpAddr::V4(ip)) = (listener, seen.ip()) {
        seen.set_ip(ip.to_ipv6_mapped().into());
    }
    Some((stream, seen))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tiny::socket::{Accepted, Sockets, listen};

    fn addr(text: &str) -> SocketAddr {
        text.parse().unwrap()
    }

    #[test]
    fn a_specific_listener_accepts_on_its_own_ip_and_port_only() {
        for (listener, same_ip) in [
            ("127.0.0.1:80", "127.0.0.1:80"),
            ("192.0.2.2:80", "192.0.2.2:80"),
            ("[::1]:80", "[::1]:80"),
            ("[fd00::2]:80", "[fd00::2]:80"),
            ("[::ffff:127.0.0.1]:80", "127.0.0.1:80"),
            ("127.0.0.1:80", "[::ffff:127.0.0.1]:80"),
        ] {
            let listener = addr(listener);
            assert!(accepted_on(listener, addr(same_ip)), "{listener} {same_ip}");
            let other_port = SocketAddr::new(addr(same_ip).ip(), 81);
            assert!(
                !accepted_on(listener, other_port),
                "{listener} {other_port}"
            );
        }
        assert!(!accepted_on(addr("127.0.0.1:80"), addr("127.0.0.2:80")));
        assert!(!accepted_on(addr("127.0.0.1:80"), addr("[::1]:80")));
        assert!(!accepted_on(addr("[::1]:80"), addr("127.0.0.1:80")));
        assert!(!accepted_on(addr("192.0.2.2:80"), addr("0.0.0.0:80")));
    }

    #[test]
    fn a_wildcard_listener_accepts_on_any_ip_of_its_family_with_its_port() {
        let any_v4 = addr("0.0.0.0:80");
        for local in ["127.0.0.1:80", "192.0.2.2:80", "[::ffff:192.0.2.2]:80"] {
            assert!(accepted_on(any_v4, addr(local)), "0.0.0.0 {local}");
        }
        for local in ["[::1]:80", "[fd00::2]:80", "127.0.0.1:81"] {
            assert!(!accepted_on(any_v4, addr(local)), "0.0.0.0 {local}");
        }
        let any = addr("[::]:80");
        for local in [
            "[::1]:80",
            "[fd00::2]:80",
            "[::ffff:127.0.0.1]:80",
            "192.0.2.2:80",
        ] {
            assert!(accepted_on(any, addr(local)), "[::] {local}");
        }
        assert!(!accepted_on(any, addr("[::1]:81")));
        assert!(!accepted_on(any, addr("[::ffff:127.0.0.1]:81")));
    }

    /// Binds `listen_on`, connects through `via`, and checks that the connection is found as
    /// the listener's accept shows it, and that a probe of [`connect_to`] is too.
    fn found_through(listen_on: &str, via: IpAddr) {
        let listener = listen(addr(listen_on), 16, Duration::from_secs(7)).unwrap();
        let local = listener.local_addr().unwrap();
        let sockets = Sockets::new(local, 4096);
        let _client = TcpStream::connect((via, local.port())).unwrap();
        let (_accepted, peer) = listener.accept().unwrap();
        let shown = format!("{listen_on} through {via}: {peer}");
        assert_eq!(
            sockets.accepted(|_| false).accepted,
            vec![Accepted {
                peer,
                unread: 0,
                closing: false,
                received: 0,
            }],
            "{shown}"
        );
        assert!(sockets.find(peer).is_some(), "{shown}");
        let (_probe, seen) = connect_to(local, Duration::from_secs(1)).expect("a probe");
        let (_accepted_probe, probe_peer) = listener.accept().unwrap();
        assert_eq!(
            seen, probe_peer,
            "{listen_on}: the probe as the listener shows it"
        );
        assert!(
            sockets
                .accepted(|_| false)
                .accepted
                .iter()
                .any(|c| c.peer == seen),
            "{shown}"
        );
    }

    /// The host's own addresses are tried through the server in `tests/addresses.rs`.
    #[test]
    fn connections_are_found_on_every_kind_of_listening_address_through_loopback() {
        let (v4, v6) = (Ipv4Addr::LOCALHOST.into(), Ipv6Addr::LOCALHOST.into());
        found_through("127.0.0.1:0", v4);
        found_through("0.0.0.0:0", v4);
        found_through("[::]:0", v4);
        found_through("[::]:0", v6);
        found_through("[::1]:0", v6);
    }
}
