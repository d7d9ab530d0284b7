//! This host's own addresses beside loopback, found at run time, for tests that reach a server
//! the way another machine on the network would.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

/// The host's first IPv4 address other than loopback, from the kernel's routing table of local
/// addresses (`/32 host LOCAL` entries of /proc/net/fib_trie).
pub fn own_ipv4() -> Option<IpAddr> {
    let trie = std::fs::read_to_string("/proc/net/fib_trie").ok()?;
    let lines: Vec<&str> = trie.lines().collect();
    lines.windows(2).find_map(|pair| {
        let ip: Ipv4Addr = pair[0].trim().strip_prefix("|-- ")?.parse().ok()?;
        (pair[1].trim() == "/32 host LOCAL" && !ip.is_loopback()).then_some(ip.into())
    })
}

/// The host's first global IPv6 address (scope 0 in /proc/net/if_inet6; loopback and
/// link-local have scopes of their own).
pub fn own_ipv6() -> Option<IpAddr> {
    let list = std::fs::read_to_string("/proc/net/if_inet6").ok()?;
    list.lines().find_map(|line| {
        let fields: Vec<&str> = line.split_whitespace().collect();
        let (hex, scope) = (fields.first()?, fields.get(3)?);
        let bits = u128::from_str_radix(hex, 16).ok()?;
        (*scope == "00").then_some(Ipv6Addr::from(bits).into())
    })
}
