//! Whether Redis is reachable, and what its absence cost, in the Prometheus text format.

use std::sync::atomic::{AtomicU64, Ordering};

#[derive(Default)]
pub struct RedisMetrics {
    publishes_failed: AtomicU64,
    connections_lost: AtomicU64,
    entries_skipped: AtomicU64,
    gaps: AtomicU64,
}

impl RedisMetrics {
    pub fn publish_failed(&self) {
        self.publishes_failed.fetch_add(1, Ordering::Relaxed);
    }

    pub fn connection_lost(&self) {
        self.connections_lost.fetch_add(1, Ordering::Relaxed);
    }

    pub fn entry_skipped(&self) {
        self.entries_skipped.fetch_add(1, Ordering::Relaxed);
    }

    pub fn gap(&self) {
        self.gaps.fetch_add(1, Ordering::Relaxed);
    }

    pub fn render(&self, reachable: bool) -> String {
        let families = [
            (
                "redis_up",
                "gauge",
                "1 if the follower is connected to Redis, 0 while it reconnects.",
                u64::from(reachable),
            ),
            (
                "redis_connections_lost_total",
                "counter",
                "Times the follower lost Redis or could not reach it.",
                self.connections_lost.load(Ordering::Relaxed),
            ),
            (
                "redis_publishes_failed_total",
                "counter",
                "Publishes answered 503 because Redis did not take the message.",
                self.publishes_failed.load(Ordering::Relaxed),
            ),
            (
                "redis_entries_skipped_total",
                "counter",
                "Stream entries that are no message of this server (a field missing, or no SSE id).",
                self.entries_skipped.load(Ordering::Relaxed),
            ),
            (
                "redis_gaps_total",
                "counter",
                "Times a stream no longer held the last entry this instance read (trimmed or lost).",
                self.gaps.load(Ordering::Relaxed),
            ),
        ];
        let mut out = String::with_capacity(800);
        for (name, kind, help, value) in families {
            out.push_str(&format!(
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
            ));
        }
        out
    }
}
