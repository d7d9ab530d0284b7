//! Matching each publish to its arrivals: every subscriber's events carry the token of the
//! message they deliver, so a delivery is timed from the start of its message's `POST`. With
//! several feeds, stream `i` is of feed `client.path_of(i)` and message `k` of feed
//! `(k - 1) % feeds` (see `Client::spread_over` and `publish::path_of`).

use std::time::Instant;

use crate::client::Client;
use crate::publish::{Publish, path_of};
use crate::stats::Spread;

pub struct Deliveries {
    /// For each message answered with a 2xx, the subscribers of its feed ready when publishing
    /// began.
    pub expected: usize,
    /// Events that delivered an answered message to a subscriber for the first time.
    pub delivered: usize,
    /// A message that a subscriber had already received.
    pub duplicates: usize,
    /// A message older than one the subscriber had already received.
    pub out_of_order: usize,
    /// Events whose token names no answered message of the stream's feed (its `POST` failed or
    /// timed out, or it went to another feed).
    pub unanswered: usize,
    /// Events with no token, such as a notice.
    pub without_token: usize,
    /// Publish → arrival over all deliveries, in ms.
    pub latency: Option<Spread>,
    /// Per message, publish → arrival at the last subscriber that got it; over messages, in ms.
    pub last_arrival: Option<Spread>,
    /// Answered messages that every subscriber ready at the start received.
    pub messages_to_all: usize,
}

/// Matches the events of every stream of `client` with `publishes`; `ready[f]` subscribers of
/// feed `f` were ready when publishing began.
pub fn match_deliveries(client: &Client, publishes: &[Publish], ready: &[usize]) -> Deliveries {
    let feeds = ready.len().max(1);
    let ready_for = |token: usize| {
        ready
            .get(path_of(token as u64, feeds))
            .copied()
            .unwrap_or(0)
    };
    // Indexed by token; `None` for a message that was not answered with a 2xx.
    let max_token = publishes.iter().map(|p| p.token).max().unwrap_or(0) as usize;
    let mut started: Vec<Option<Instant>> = vec![None; max_token + 1];
    for publish in publishes.iter().filter(|p| p.answered.is_ok()) {
        started[publish.token as usize] = Some(publish.started);
    }
    let expected = (0..=max_token)
        .filter(|&token| started[token].is_some())
        .map(ready_for)
        .sum();
    let mut last_arrival = vec![0.0_f64; max_token + 1];
    let mut reached = vec![0_usize; max_token + 1];
    let mut latencies = Vec::with_capacity(expected);
    let mut d = Deliveries {
        expected,
        delivered: 0,
        duplicates: 0,
        out_of_order: 0,
        unanswered: 0,
        without_token: 0,
        latency: None,
        last_arrival: None,
        messages_to_all: 0,
    };
    let mut seen = vec![false; max_token + 1];
    for (stream, conn) in client.conns.iter().enumerate() {
        d.without_token += conn.arrivals.len() - conn.tokens.len();
        seen.fill(false);
        let mut newest = 0;
        for &(token, arrival) in &conn.tokens {
            let index = token as usize;
            let Some(Some(publish_started)) = started.get(index) else {
                d.unanswered += 1;
                continue;
            };
            if path_of(token, feeds) != client.path_of(stream) {
                d.unanswered += 1;
                continue;
            }
            if seen[index] {
                d.duplicates += 1;
                continue;
            }
            seen[index] = true;
            if token < newest {
                d.out_of_order += 1;
            }
            newest = newest.max(token);
            d.delivered += 1;
            reached[index] += 1;
            let ms = arrival
                .saturating_duration_since(*publish_started)
                .as_secs_f64()
                * 1e3;
            latencies.push(ms);
            last_arrival[index] = last_arrival[index].max(ms);
        }
    }
    let mut last: Vec<f64> = (0..=max_token)
        .filter(|&index| reached[index] > 0)
        .map(|index| last_arrival[index])
        .collect();
    d.messages_to_all = (0..=max_token)
        .filter(|&index| started[index].is_some() && reached[index] >= ready_for(index))
        .count();
    d.latency = Spread::of(&mut latencies);
    d.last_arrival = Spread::of(&mut last);
    d
}
