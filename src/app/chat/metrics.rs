//! The feeds' counters, and their families in the Prometheus text format.
//!
//! Every family but the refusals has a `feed` label: at most `--max-feeds` values, since only
//! feeds that exist are rendered. Refusals are counted by reason only: a refused publish may
//! name a feed that does not exist, and a label from it would be unbounded.

use std::fmt::Write;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use super::feeds::Feed;
use crate::lock;

/// One feed's counters.
#[derive(Default)]
pub struct FeedMetrics {
    published: AtomicU64,
    subscribers: AtomicUsize,
    missed_notices: AtomicU64,
}

impl FeedMetrics {
    pub fn published(&self) {
        self.published.fetch_add(1, Ordering::Relaxed);
    }

    pub fn subscribed(&self) {
        self.subscribers.fetch_add(1, Ordering::Relaxed);
    }

    pub fn unsubscribed(&self) {
        self.subscribers.fetch_sub(1, Ordering::Relaxed);
    }

    pub fn missed_notice(&self) {
        self.missed_notices.fetch_add(1, Ordering::Relaxed);
    }
}

/// Publish requests refused, by reason, over all feeds.
#[derive(Default)]
pub struct Refusals(Mutex<[u64; REFUSAL_LABELS.len()]>);

const REFUSAL_LABELS: [&str; 10] = [
    "empty",
    "too_long",
    "bad_utf8",
    "bad_escape",
    "media_type",
    "too_large",
    "rate_limited",
    "too_many_feeds",
    "busy",
    "unauthorized",
];

impl Refusals {
    /// Counts a refusal by its label; an unknown label is not counted.
    pub fn count(&self, label: &str) {
        if let Some(at) = REFUSAL_LABELS.iter().position(|known| *known == label) {
            lock(&self.0)[at] += 1;
        }
    }
}

/// The feeds' families for `/metrics`, in the Prometheus text format.
pub fn render(feeds: &[Arc<Feed>], refusals: &Refusals) -> String {
    let mut out = String::with_capacity(1024 + 512 * feeds.len());
    // One reading per feed, in the families' order below.
    let values: Vec<[u64; 4]> = feeds
        .iter()
        .map(|feed| {
            let m = &feed.metrics;
            [
                m.published.load(Ordering::Relaxed),
                m.subscribers.load(Ordering::Relaxed) as u64,
                super::lock(&feed.room).held() as u64,
                m.missed_notices.load(Ordering::Relaxed),
            ]
        })
        .collect();
    let per_feed = [
        (
            "feed_messages_published_total",
            "counter",
            "Messages published since start.",
        ),
        ("feed_subscribers_live", "gauge", "Streams open now."),
        (
            "feed_messages_held",
            "gauge",
            "Messages held in memory for late and returning subscribers.",
        ),
        (
            "feed_missed_notices_total",
            "counter",
            "Notices sent to subscribers that came back after messages they never got were dropped.",
        ),
    ];
    for (at, (name, kind, help)) in per_feed.into_iter().enumerate() {
        family(&mut out, name, kind, help);
        for (feed, value) in feeds.iter().zip(&values) {
            let _ = writeln!(out, "{name}{{feed=\"{}\"}} {}", feed.name, value[at]);
        }
    }
    family(
        &mut out,
        "feed_publishes_refused_total",
        "counter",
        "Publish requests refused, by reason, over all feeds; nothing was published.",
    );
    let refused = *lock(&refusals.0);
    for (label, count) in REFUSAL_LABELS.iter().zip(refused) {
        let _ = writeln!(
            out,
            "feed_publishes_refused_total{{reason=\"{label}\"}} {count}"
        );
    }
    out
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = write!(out, "# HELP {name} {help}\n# TYPE {name} {kind}\n");
}
