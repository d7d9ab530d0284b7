//! Counters for `/metrics`, in the Prometheus text exposition format (version 0.0.4).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use crate::lock;

/// Counted by the HTTP layer, rendered by the application's `/metrics`.
#[derive(Default)]
pub struct Metrics {
    /// Event streams open now.
    pub streams_live: AtomicUsize,
    pub streams_opened: AtomicU64,
    pub streams_rejected: AtomicU64,
    pub events_sent: AtomicU64,
    pub idle_closed: AtomicU64,
    pub requests_parked: AtomicU64,
    /// Connections whose tiny_http thread and descriptors will never be given back (see
    /// `tiny::held`); past a budget the server re-execs.
    pub held_for_good: AtomicUsize,
    /// Requests answered, by route label and status. Route labels are a fixed set (see
    /// `Route::label`), so a client cannot grow this map.
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
}

impl Metrics {
    pub fn count_request(&self, route: &'static str, status: u16) {
        let mut requests = lock(&self.requests);
        *requests.entry((route, status)).or_insert(0) += 1;
    }

    pub fn render(&self) -> String {
        let live_streams = self.streams_live.load(Ordering::SeqCst);
        let mut out = String::with_capacity(1024);
        let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
            let _ = write!(
                out,
                "# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"
            );
        };
        metric(
            "sse_streams_live",
            "gauge",
            "Event streams open now.",
            live_streams as u64,
        );
        metric(
            "sse_streams_opened_total",
            "counter",
            "Event streams opened since start.",
            self.streams_opened.load(Ordering::Relaxed),
        );
        metric(
            "sse_streams_rejected_total",
            "counter",
            "Event streams refused with 503 because the server was at capacity.",
            self.streams_rejected.load(Ordering::Relaxed),
        );
        metric(
            "sse_events_sent_total",
            "counter",
            "Events written to streams since start.",
            self.events_sent.load(Ordering::Relaxed),
        );
        metric(
            "http_idle_connections_closed_total",
            "counter",
            "Connections closed for sending no request for the idle timeout.",
            self.idle_closed.load(Ordering::Relaxed),
        );
        metric(
            "http_requests_parked_total",
            "counter",
            "Requests declaring a body too large to discard, kept with their thread for good.",
            self.requests_parked.load(Ordering::Relaxed),
        );
        metric(
            "http_held_unrecoverable",
            "gauge",
            "Connections whose thread and descriptors the server will not get back; past 32 it re-execs.",
            self.held_for_good.load(Ordering::Relaxed) as u64,
        );
        out.push_str(
            "# HELP http_requests_total HTTP requests answered, by route and status.\n\
             # TYPE http_requests_total counter\n",
        );
        let requests = lock(&self.requests);
        for ((route, status), count) in requests.iter() {
            let _ = writeln!(
                out,
                "http_requests_total{{route=\"{route}\",status=\"{status}\"}} {count}"
            );
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_family_with_help_and_type() {
        let metrics = Metrics::default();
        metrics.count_request("/", 200);
        metrics.count_request("/", 200);
        metrics.count_request("/connect", 503);
        metrics.events_sent.fetch_add(3, Ordering::Relaxed);
        metrics.streams_live.store(2, Ordering::Relaxed);
        let text = metrics.render();
        assert!(text.contains("# TYPE sse_streams_live gauge\nsse_streams_live 2\n"));
        assert!(text.contains("sse_events_sent_total 3\n"));
        assert!(text.contains("http_requests_total{route=\"/\",status=\"200\"} 2\n"));
        assert!(text.contains("http_requests_total{route=\"/connect\",status=\"503\"} 1\n"));
        assert!(text.ends_with('\n'));
    }
}
