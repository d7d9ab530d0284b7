//! `--publish-limit N`: at most N messages a second from one client, in bursts of up to 4 × N.
//!
//! A token bucket per client, kept as the one instant its bucket will be full again (the
//! "generic cell rate algorithm": the same answers as counting tokens, without fractions). A
//! message takes a token; a full bucket holds 4 × N; tokens come back at N a second.
//!
//! Decisions:
//! - A client is an IPv4 address, or an IPv6 /64: a host is usually given a whole /64 and can
//!   pick any address in it, so per address it could reset its bucket at will. An IPv4-mapped
//!   IPv6 address (`::ffff:a.b.c.d`) is its IPv4 address. The port never counts.
//! - N = 0 means no limit: nothing is counted or stored.
//! - Memory is bounded: at [`MAX_CLIENTS`] buckets, a new client first drops every full bucket
//!   (a full bucket is the same as none); if all are in use it evicts the one closest to full.
//!   That one gains at most the few tokens it was about to get back, and a new client is never
//!   locked out by others' traffic.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::tiny::client;

/// Buckets held at most: about 40 bytes each.
pub const MAX_CLIENTS: usize = 10_000;

#[derive(Debug)]
pub struct Limiter {
    /// Time for one token to come back; `None` when there is no limit.
    every: Option<Duration>,
    /// How far the bucket's "full again" instant may run ahead of now: 4 × N − 1 tokens.
    tolerance: Duration,
    full_at: HashMap<IpAddr, Instant>,
    max_clients: usize,
}

impl Limiter {
    /// N messages a second per client, bursts of 4 × N; 0 is no limit.
    pub fn new(per_second: u32) -> Limiter {
        Limiter::with_capacity(per_second, MAX_CLIENTS)
    }

    fn with_capacity(per_second: u32, max_clients: usize) -> Limiter {
        let every = (per_second > 0).then(|| Duration::from_secs(1) / per_second);
        let burst = per_second.saturating_mul(4);
        Limiter {
            every,
            tolerance: every.unwrap_or_default() * burst.saturating_sub(1),
            full_at: HashMap::new(),
            max_clients,
        }
    }

    /// Takes a token for a message from `ip`, or tells how long until one is free.
    pub fn check(&mut self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let Some(every) = self.every else {
            return Ok(());
        };
        let client = client(ip);
        if !self.full_at.contains_key(&client) && self.full_at.len() >= self.max_clients {
            self.make_room(now);
        }
        let full_at = self.full_at.get(&client).map_or(now, |&at| at.max(now));
        let ahead = full_at - now;
        if ahead > self.tolerance {
            return Err(ahead - self.tolerance);
        }
        self.full_at.insert(client, full_at + every);
        Ok(())
    }

    #[cfg(test)]
    /// Clients with a bucket that is not full.
    pub fn clients(&self) -> usize {
        self.full_at.len()
    }

    fn make_room(&mut self, now: Instant) {
        self.full_at.retain(|_, full_at| *full_at > now);
        if self.full_at.len() >= self.max_clients {
            let closest = self.full_at.iter().min_by_key(|(_, at)| **at);
            if let Some((&ip, _)) = closest {
                self.full_at.remove(&ip);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// How many messages pass at one instant.
    fn burst(limiter: &mut Limiter, from: IpAddr, now: Instant) -> usize {
        (0..1_000)
            .take_while(|_| limiter.check(from, now).is_ok())
            .count()
    }

    #[test]
    fn a_burst_of_four_times_the_rate_passes_then_one_is_refused() {
        let mut limiter = Limiter::new(5);
        let t = Instant::now();
        assert_eq!(burst(&mut limiter, ip("10.0.0.1"), t), 20);
        // 20 tokens taken, each 200 ms to come back; 19 may be outstanding: wait 200 ms.
        assert_eq!(limiter.check(ip("10.0.0.1"), t), Err(ms(200)));
        assert_eq!(limiter.check(ip("10.0.0.1"), t + ms(50)), Err(ms(150)));
    }

    #[test]
    fn tokens_come_back_at_the_rate() {
        let mut limiter = Limiter::new(5);
        let t = Instant::now();
        let a = ip("10.0.0.1");
        assert_eq!(burst(&mut limiter, a, t), 20);
        assert_eq!(limiter.check(a, t + ms(199)), Err(ms(1)));
        assert_eq!(limiter.check(a, t + ms(200)), Ok(()));
        assert_eq!(limiter.check(a, t + ms(200)), Err(ms(200)));
        // One second later, five more.
        assert_eq!(burst(&mut limiter, a, t + ms(1_200)), 5);
        // Four seconds of quiet refill the whole bucket.
        assert_eq!(burst(&mut limiter, a, t + ms(5_200)), 20);
    }

    #[test]
    fn a_steady_client_at_the_rate_is_never_refused() {
        let mut limiter = Limiter::new(5);
        let t = Instant::now();
        for i in 0..1_000 {
            assert_eq!(
                limiter.check(ip("10.0.0.1"), t + ms(200 * i)),
                Ok(()),
                "{i}"
            );
        }
    }

    #[test]
    fn each_address_has_its_own_bucket_whatever_the_port() {
        let mut limiter = Limiter::new(1);
        let t = Instant::now();
        assert_eq!(burst(&mut limiter, ip("10.0.0.1"), t), 4);
        assert_eq!(burst(&mut limiter, ip("10.0.0.2"), t), 4);
        assert_eq!(limiter.check(ip("10.0.0.1"), t), Err(ms(1_000)));
    }

    #[test]
    fn an_ipv6_64_is_one_client_and_a_mapped_ipv4_is_its_ipv4() {
        let mut limiter = Limiter::new(1);
        let t = Instant::now();
        assert_eq!(limiter.check(ip("2001:db8:1:2::1"), t), Ok(()));
        assert_eq!(limiter.check(ip("2001:db8:1:2:ffff::9"), t), Ok(()));
        assert_eq!(limiter.check(ip("2001:db8:1:2::abcd"), t), Ok(()));
        assert_eq!(limiter.check(ip("2001:db8:1:2::2"), t), Ok(()));
        assert_eq!(limiter.check(ip("2001:db8:1:2::3"), t), Err(ms(1_000)));
        // Another /64 is another client.
        assert_eq!(limiter.check(ip("2001:db8:1:3::1"), t), Ok(()));

        assert_eq!(burst(&mut limiter, ip("192.0.2.7"), t), 4);
        assert_eq!(limiter.check(ip("::ffff:192.0.2.7"), t), Err(ms(1_000)));
        assert_eq!(limiter.clients(), 3);
    }

    #[test]
    fn a_limit_of_zero_is_no_limit() {
        let mut limiter = Limiter::new(0);
        let t = Instant::now();
        assert_eq!(burst(&mut limiter, ip("10.0.0.1"), t), 1_000);
        assert_eq!(limiter.clients(), 0);
    }

    #[test]
    fn a_limit_of_one_second_per_message_still_bursts_four() {
        let mut limiter = Limiter::new(1);
        let t = Instant::now();
        assert_eq!(burst(&mut limiter, ip("10.0.0.1"), t), 4);
        assert_eq!(limiter.check(ip("10.0.0.1"), t + ms(999)), Err(ms(1)));
        assert_eq!(limiter.check(ip("10.0.0.1"), t + ms(1_000)), Ok(()));
    }

    #[test]
    fn full_buckets_are_dropped_when_the_table_is_full() {
        let mut limiter = Limiter::with_capacity(1, 3);
        let t = Instant::now();
        for last in 1..=3 {
            limiter.check(ip(&format!("10.0.0.{last}")), t).unwrap();
        }
        assert_eq!(limiter.clients(), 3);
        // One second later every bucket is full again: all are dropped for the new client.
        limiter.check(ip("10.0.0.4"), t + ms(1_000)).unwrap();
        assert_eq!(limiter.clients(), 1);
    }

    #[test]
    fn a_full_table_evicts_the_bucket_closest_to_full() {
        let mut limiter = Limiter::with_capacity(1, 3);
        let t = Instant::now();
        assert_eq!(burst(&mut limiter, ip("10.0.0.1"), t), 4); // full in 4 s
        limiter.check(ip("10.0.0.2"), t).unwrap(); // full in 1 s: the closest
        assert_eq!(burst(&mut limiter, ip("10.0.0.3"), t), 4);
        assert_eq!(limiter.check(ip("10.0.0.4"), t), Ok(()));
        assert_eq!(limiter.clients(), 3);
        // .1 and .3 kept their empty buckets; .2 starts again with a full one.
        assert_eq!(limiter.check(ip("10.0.0.1"), t), Err(ms(1_000)));
        assert_eq!(limiter.check(ip("10.0.0.3"), t), Err(ms(1_000)));
        assert_eq!(limiter.clients(), 3);
    }

    #[test]
    fn a_known_client_never_evicts_another() {
        let mut limiter = Limiter::with_capacity(1, 2);
        let t = Instant::now();
        limiter.check(ip("10.0.0.1"), t).unwrap();
        limiter.check(ip("10.0.0.2"), t).unwrap();
        limiter.check(ip("10.0.0.1"), t).unwrap();
        assert_eq!(limiter.clients(), 2);
        assert_eq!(burst(&mut limiter, ip("10.0.0.2"), t), 3);
    }
}
