//! Message ids that are unique across runs, with or without a store.
//!
//! A run's first id is the wall clock at start, in microseconds since the Unix epoch; each
//! message takes the next integer. A later run starts at a later clock, so its ids are all larger
//! than an earlier run's as long as that run published fewer messages than the microseconds it
//! lasted (one a microsecond on average; the publish rate limit keeps it far below). So a
//! `Last-Event-ID` from an earlier run, without a store, is an id this run never held: it is
//! recognised as unknown (the client missed messages), never mistaken for a new one.
//!
//! With a store, the first id is also above the largest stored id, which covers a clock that
//! went backwards (or a host with its clock set wrong): `max(clock, last + 1)`.
//!
//! Ids are near 1.8 × 10¹⁵ today, under 2⁵³, so JavaScript holds them exactly (until 2255).

use std::time::{SystemTime, UNIX_EPOCH};

/// Hands out the ids of one run, strictly increasing and contiguous.
#[derive(Debug)]
pub struct IdSource {
    next: u64,
}

impl IdSource {
    /// Starts at the clock `now`, or above `last`, the largest id a store holds.
    pub fn start(now: SystemTime, last: Option<u64>) -> IdSource {
        let clock = now
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX));
        let above_last = last.map_or(0, |last| last.saturating_add(1));
        IdSource {
            next: clock.max(above_last).max(1),
        }
    }

    /// Goes on from `last`, the largest id the image this process ran before gave (see
    /// `Room::carried`): one above it, or the clock `now` if it gave none.
    pub fn after(last: Option<u64>, now: SystemTime) -> IdSource {
        match last {
            Some(last) => IdSource {
                next: last.saturating_add(1),
            },
            None => IdSource::start(now, None),
        }
    }

    #[cfg(test)]
    /// The id the next message will take, without taking it.
    pub fn peek(&self) -> u64 {
        self.next
    }

    /// Takes the next id.
    pub fn next_id(&mut self) -> u64 {
        let id = self.next;
        // u64::MAX microseconds is 584,000 years away. Saturating keeps this panic-free; a
        // repeated id is then refused by the history, never held twice.
        self.next = self.next.saturating_add(1);
        id
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn at_micros(us: u64) -> SystemTime {
        UNIX_EPOCH + Duration::from_micros(us)
    }

    #[test]
    fn the_first_id_is_the_clock_in_microseconds() {
        let mut ids = IdSource::start(at_micros(1_764_000_000_123_456), None);
        assert_eq!(ids.next_id(), 1_764_000_000_123_456);
        assert_eq!(ids.next_id(), 1_764_000_000_123_457);
        assert_eq!(ids.next_id(), 1_764_000_000_123_458);
    }

    #[test]
    fn a_later_run_starts_above_every_id_of_an_earlier_one() {
        let mut first = IdSource::start(at_micros(1_000_000), None);
        let earlier: Vec<u64> = (0..1_000).map(|_| first.next_id()).collect();
        // The earlier run lasted more than a millisecond for its 1,000 messages.
        let mut second = IdSource::start(at_micros(1_001_000), None);
        assert!(second.next_id() > *earlier.last().unwrap());
    }

    #[test]
    fn a_stored_id_above_the_clock_is_continued() {
        // The clock went backwards (or the store came from a host whose clock was ahead).
        let mut ids = IdSource::start(at_micros(5_000), Some(9_000));
        assert_eq!(ids.next_id(), 9_001);
        // A stored id below the clock changes nothing.
        let mut ids = IdSource::start(at_micros(5_000), Some(4_000));
        assert_eq!(ids.next_id(), 5_000);
        // Equal to the clock: one above it.
        let mut ids = IdSource::start(at_micros(5_000), Some(5_000));
        assert_eq!(ids.next_id(), 5_001);
    }

    #[test]
    fn a_clock_before_1970_still_gives_positive_ids() {
        let before = UNIX_EPOCH - Duration::from_secs(10);
        let mut ids = IdSource::start(before, None);
        assert_eq!(ids.next_id(), 1);
        assert_eq!(IdSource::start(before, Some(41)).peek(), 42);
    }

    #[test]
    fn ids_go_on_from_the_last_one_of_the_image_before() {
        // Even when the clock is later: a page that saw K gets K + 1 next.
        let mut ids = IdSource::after(Some(5_000), at_micros(9_000_000));
        assert_eq!(ids.next_id(), 5_001);
        assert_eq!(IdSource::after(None, at_micros(9)).peek(), 9);
    }

    #[test]
    fn peek_does_not_take_the_id() {
        let mut ids = IdSource::start(at_micros(7), None);
        assert_eq!(ids.peek(), 7);
        assert_eq!(ids.peek(), 7);
        assert_eq!(ids.next_id(), 7);
        assert_eq!(ids.peek(), 8);
    }

    #[test]
    fn the_largest_id_saturates_instead_of_wrapping() {
        let mut ids = IdSource::start(at_micros(1), Some(u64::MAX - 1));
        assert_eq!(ids.next_id(), u64::MAX);
        assert_eq!(ids.next_id(), u64::MAX);
    }
}
