//! The chat's counters, and their families in the Prometheus text format.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};

#[derive(Default)]
pub struct ChatMetrics {
    published: AtomicU64,
    refused: Mutex<[u64; REFUSAL_LABELS.len()]>,
    subscribers: AtomicUsize,
    missed_notices: AtomicU64,
}

const REFUSAL_LABELS: [&str; 7] = [
    "empty",
    "too_long",
    "bad_utf8",
    "bad_escape",
    "media_type",
    "too_large",
    "rate_limited",
];

impl ChatMetrics {
    pub fn published(&self) {
        self.published.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a refusal by its label; an unknown label is not counted.
    pub fn refused(&self, label: &str) {
        if let Some(at) = REFUSAL_LABELS.iter().position(|known| *known == label) {
            self.refused.lock().unwrap_or_else(PoisonError::into_inner)[at] += 1;
        }
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

    /// The chat's families for `/metrics`, in the Prometheus text format.
    pub fn render(&self, held: usize) -> String {
        let metrics = self;
        let mut out = String::with_capacity(1024);
        family(
            &mut out,
            "chat_messages_published_total",
            "counter",
            "Chat messages published since start.",
        );
        let published = metrics.published.load(Ordering::Relaxed);
        out.push_str(&format!("chat_messages_published_total {published}\n"));
        family(
            &mut out,
            "chat_publishes_refused_total",
            "counter",
            "Publish requests refused, by reason; nothing was published.",
        );
        let refused = *metrics
            .refused
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        for (label, count) in REFUSAL_LABELS.iter().zip(refused) {
            out.push_str(&format!(
                "chat_publishes_refused_total{{reason=\"{label}\"}} {count}\n"
            ));
        }
        let single = [
            (
                "chat_subscribers_live",
                "gauge",
                "Chat streams open now.",
                metrics.subscribers.load(Ordering::Relaxed) as u64,
            ),
            (
                "chat_messages_held",
                "gauge",
                "Chat messages held in memory for late and returning subscribers.",
                held as u64,
            ),
            (
                "chat_missed_notices_total",
                "counter",
                "Notices sent to subscribers that came back after messages they never got were dropped.",
                metrics.missed_notices.load(Ordering::Relaxed),
            ),
        ];
        for (name, kind, help, value) in single {
            family(&mut out, name, kind, help);
            out.push_str(&format!("{name} {value}\n"));
        }
        out
    }
}

fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
}
