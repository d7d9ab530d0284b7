//! The article's stream: `/connect` counts, one event per interval, each connection for itself.
//!
//! Event `k` of a stream is due at `start + k × interval`, so the schedule never drifts however
//! long the writes take.

use std::time::{Duration, Instant};

use super::views;
use crate::sse::Event;
use crate::tiny::{Ended, Events, Reply, Request};

/// How the counter streams.
#[derive(Clone, Debug)]
pub struct Counter {
    /// Time between two events of a stream.
    pub interval: Duration,
    /// The reconnection delay suggested to clients (`retry:` on the first event).
    pub retry: Duration,
    /// For tests of panic containment: panic before writing the event with this id.
    pub panic_at_event: Option<u64>,
}

impl Counter {
    /// The stream for `request`: it goes on after the client's `Last-Event-ID`, if any.
    pub fn stream(&self, request: &Request) -> Reply {
        let first_id = resume_after(request);
        let counter = self.clone();
        Reply::events(format!("at id {first_id}"), move |events| {
            counter.count(first_id, events)
        })
    }

    /// Waits until the next event is due, writes it, and again, until the client goes or the
    /// server stops.
    fn count(&self, first_id: u64, events: &mut Events<'_>) -> Result<(), Ended> {
        events.tolerate_lateness(timer_slack(self.interval));
        let mut id = first_id;
        let mut due = Instant::now();
        loop {
            events.wait_until(due)?;
            if self.panic_at_event == Some(id) {
                panic!("panic_at_event {id}, as configured");
            }
            let mut event = Event::new()
                .id_number(id)
                .data(views::event_html(id).into_string());
            if id == first_id {
                event = event.retry(self.retry);
            }
            events.send(&event)?;
            id = id.wrapping_add(1);
            due = next_due(due, self.interval, Instant::now());
        }
    }
}

/// How late an event may be, so that the kernel can wake many streams at once: a thousandth of
/// the interval, from the kernel's default 50 µs up to 1 ms (at the default interval of a
/// second). Against 50 µs, 1 ms cut the CPU per event by 7–47 % at 5,000 streams
/// (docs/performance.md).
fn timer_slack(interval: Duration) -> Duration {
    (interval / 1000).clamp(Duration::from_micros(50), Duration::from_millis(1))
}

/// The id to start at: one past the client's `Last-Event-ID` (browsers send it when they
/// reconnect), so the count goes on instead of starting over. Anything but a number starts at 0.
fn resume_after(request: &Request) -> u64 {
    request
        .header("Last-Event-ID")
        .and_then(|last| last.trim().parse::<u64>().ok())
        .and_then(|last| last.checked_add(1))
        .unwrap_or(0)
}

/// The next slot after `due` on the stream's fixed grid. Slots already past (the thread was held
/// up for more than an interval) are skipped rather than sent in a burst.
fn next_due(due: Instant, interval: Duration, now: Instant) -> Instant {
    let next = due + interval;
    if now <= next {
        return next;
    }
    let behind = (now - next).as_nanos() / interval.as_nanos().max(1);
    next + interval * u32::try_from(behind).unwrap_or(u32::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_due_keeps_the_grid() {
        let start = Instant::now();
        let interval = Duration::from_millis(100);
        let due = next_due(start, interval, start + Duration::from_millis(30));
        assert_eq!(due, start + interval);
    }

    #[test]
    fn next_due_skips_missed_slots() {
        let start = Instant::now();
        let interval = Duration::from_millis(100);
        let due = next_due(start, interval, start + Duration::from_millis(350));
        assert_eq!(due, start + Duration::from_millis(300));
    }

    #[test]
    fn resume_goes_on_after_a_numeric_last_event_id_only() {
        let with =
            |id: &str| resume_after(&Request::fake("GET", "/connect", &[("Last-Event-ID", id)]));
        assert_eq!(with("41"), 42);
        assert_eq!(with(" 7 "), 8);
        for bad in ["abc", "-3", "", "18446744073709551615", "1.5"] {
            assert_eq!(with(bad), 0, "{bad:?}");
        }
        assert_eq!(resume_after(&Request::fake("GET", "/connect", &[])), 0);
    }
}
