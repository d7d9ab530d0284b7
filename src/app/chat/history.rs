//! The last messages, held in memory for pages that open or reconnect.
//!
//! Two bounds, the oldest message evicted past either: a count (1,000) and the bytes of names
//! and texts (1 MiB). Both are strict: a single message over the byte bound is evicted at once
//! (the default bounds hold 130 of the largest messages, so this only matters to tests).
//!
//! A reconnecting client names the last message it saw (`Last-Event-ID: K`), and [`History::after`]
//! answers what it has not seen:
//!
//! | K is                                             | missed | messages     |
//! |--------------------------------------------------|--------|--------------|
//! | a held id                                        | false  | those after K |
//! | the id of the newest message evicted             | false  | all held     |
//! | anything else: older, a gap, newer, another run  | true   | all held     |
//!
//! The second row is why the history remembers the last id it evicted: ids are strictly
//! increasing but not contiguous (a run starts at its clock, see `ids`), so "K + 1 is the oldest
//! held" cannot tell whether a message between them was lost. Knowing the exact id before the
//! oldest held one can. An empty history that never held anything knows no id: any K is unknown.

use std::collections::VecDeque;
use std::sync::Arc;

use super::message::Message;

/// How much the history holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bounds {
    pub max_messages: usize,
    /// Bytes of names and texts ([`Message::size`]).
    pub max_bytes: usize,
}

impl Default for Bounds {
    fn default() -> Self {
        Bounds {
            max_messages: 1_000,
            max_bytes: 1 << 20,
        }
    }
}

/// A count of messages, within the default bytes.
#[cfg(test)]
impl From<usize> for Bounds {
    fn from(max_messages: usize) -> Bounds {
        Bounds {
            max_messages,
            ..Bounds::default()
        }
    }
}

/// What a reconnecting client is sent before live messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resume {
    /// Messages were lost to the client: say so before `messages`.
    pub missed: bool,
    /// Oldest first.
    pub messages: Vec<Arc<Message>>,
}

#[derive(Debug)]
pub struct History {
    bounds: Bounds,
    held: VecDeque<Arc<Message>>,
    bytes: usize,
    /// The id of the newest message evicted (or dropped before the history was filled).
    before_oldest: Option<u64>,
    /// The largest id ever pushed, held or not.
    last_id: Option<u64>,
}

impl History {
    pub fn new(bounds: Bounds) -> History {
        History {
            bounds,
            held: VecDeque::new(),
            bytes: 0,
            before_oldest: None,
            last_id: None,
        }
    }

    /// A history refilled from a store: `before` is the id of the message just before
    /// `messages` (the newest one not kept), if there was one.
    pub fn restored(bounds: Bounds, before: Option<u64>, messages: Vec<Message>) -> History {
        let mut history = History::new(bounds);
        history.before_oldest = before;
        history.last_id = before;
        for message in messages {
            // A store yields increasing ids; one that is not is left out rather than misorder.
            let _ = history.push(message);
        }
        history
    }

    /// Adds the newest message and evicts the oldest past either bound. A message whose id is
    /// not above every id pushed before is given back, not held: answers depend on order.
    pub fn push(&mut self, message: Message) -> Result<Arc<Message>, Message> {
        if self.last_id.is_some_and(|last| message.id <= last) {
            return Err(message);
        }
        self.last_id = Some(message.id);
        let message = Arc::new(message);
        self.bytes += message.size();
        self.held.push_back(Arc::clone(&message));
        while self.held.len() > self.bounds.max_messages || self.bytes > self.bounds.max_bytes {
            let Some(oldest) = self.held.pop_front() else {
                break;
            };
            self.bytes -= oldest.size();
            self.before_oldest = Some(oldest.id);
        }
        Ok(message)
    }

    /// Forgets every message held: messages after them and up to `before` are lost (another
    /// process dropped them before this one read them). A client whose last id is held or older
    /// is then told it missed messages; one with `before` is not. Nothing changes when `before`
    /// is not above every id pushed.
    #[cfg(feature = "redis")]
    pub fn skip_to(&mut self, before: u64) {
        if self.last_id.is_some_and(|last| last >= before) {
            return;
        }
        self.held.clear();
        self.bytes = 0;
        self.before_oldest = Some(before);
        self.last_id = Some(before);
    }

    /// The newest `limit` messages, oldest first: what a new page shows.
    pub fn recent(&self, limit: usize) -> Vec<Arc<Message>> {
        let skip = self.held.len().saturating_sub(limit);
        self.held.iter().skip(skip).cloned().collect()
    }

    /// What a client that last saw `last_seen` has missed (see the table in the module doc).
    pub fn after(&self, last_seen: u64) -> Resume {
        let (missed, from) = match self.held.binary_search_by_key(&last_seen, |m| m.id) {
            Ok(at) => (false, at + 1),
            Err(_) => (self.before_oldest != Some(last_seen), 0),
        };
        Resume {
            missed,
            messages: self.held.iter().skip(from).cloned().collect(),
        }
    }

    /// For a subscriber that has every message up to `delivered`: the held messages after it,
    /// and whether a message after it was evicted before it could be sent (`missed`).
    pub fn since(&self, delivered: u64) -> Resume {
        Resume {
            missed: self
                .before_oldest
                .is_some_and(|evicted| evicted > delivered),
            messages: self
                .held
                .iter()
                .filter(|message| message.id > delivered)
                .cloned()
                .collect(),
        }
    }

    pub fn len(&self) -> usize {
        self.held.len()
    }

    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }

    #[cfg(test)]
    /// Bytes of names and texts held.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    /// The largest id ever pushed, held or evicted.
    /// The id of the newest message evicted, if one was.
    pub fn before_oldest(&self) -> Option<u64> {
        self.before_oldest
    }

    pub fn last_id(&self) -> Option<u64> {
        self.last_id
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(feature = "redis")]
    #[test]
    fn after_a_skip_every_earlier_id_missed_and_the_next_message_is_held() {
        let mut h = history(10, &[10, 20, 30]);
        h.skip_to(25);
        assert_eq!(
            (h.len(), h.last_id()),
            (3, Some(30)),
            "not above the last: no skip"
        );
        h.skip_to(49);
        assert_eq!(h.len(), 0);
        for old in [10, 30, 40] {
            assert!(h.after(old).missed, "{old}");
            assert!(h.since(old).missed, "{old}");
        }
        assert!(!h.after(49).missed);
        assert!(h.push(msg(45, "below the skip")).is_err());
        h.push(msg(50, "next")).unwrap();
        let resumed = h.after(49);
        assert_eq!((resumed.missed, resumed.messages.len()), (false, 1));
        assert!(!h.since(49).missed);
    }

    fn msg(id: u64, text: &str) -> Message {
        Message {
            id,
            name: "n".into(),
            text: text.into(),
            at_ms: id * 10,
        }
    }

    fn history(max_messages: usize, ids: &[u64]) -> History {
        let mut h = History::new(Bounds {
            max_messages,
            max_bytes: 1 << 20,
        });
        for &id in ids {
            h.push(msg(id, "t")).unwrap();
        }
        h
    }

    fn ids(messages: &[Arc<Message>]) -> Vec<u64> {
        messages.iter().map(|m| m.id).collect()
    }

    fn resume(h: &History, k: u64) -> (bool, Vec<u64>) {
        let r = h.after(k);
        (r.missed, ids(&r.messages))
    }

    #[test]
    fn recent_gives_the_newest_oldest_first() {
        let h = history(10, &[10, 11, 12, 13]);
        assert_eq!(ids(&h.recent(2)), [12, 13]);
        assert_eq!(ids(&h.recent(50)), [10, 11, 12, 13]);
        assert_eq!(ids(&h.recent(0)), [] as [u64; 0]);
        assert_eq!(ids(&history(10, &[]).recent(50)), [] as [u64; 0]);
    }

    #[test]
    fn the_count_bound_evicts_the_oldest() {
        let h = history(3, &[1, 2, 3, 4, 5]);
        assert_eq!(ids(&h.recent(10)), [3, 4, 5]);
        assert_eq!(h.len(), 3);
        assert_eq!(h.bytes(), 6);
    }

    #[test]
    fn the_byte_bound_evicts_the_oldest() {
        let mut h = History::new(Bounds {
            max_messages: 100,
            max_bytes: 10,
        });
        h.push(msg(1, "aaaa")).unwrap(); // 5 bytes with the name
        h.push(msg(2, "bbbb")).unwrap(); // 10
        assert_eq!(ids(&h.recent(10)), [1, 2]);
        h.push(msg(3, "c")).unwrap(); // 12 > 10: 1 goes
        assert_eq!(ids(&h.recent(10)), [2, 3]);
        assert_eq!(h.bytes(), 7);
        assert_eq!(resume(&h, 1), (false, vec![2, 3]));
    }

    #[test]
    fn a_message_over_the_byte_bound_is_evicted_at_once_and_still_known() {
        let mut h = History::new(Bounds {
            max_messages: 100,
            max_bytes: 4,
        });
        h.push(msg(1, "ab")).unwrap();
        let big = h.push(msg(2, "too big")).unwrap();
        assert_eq!(big.id, 2);
        assert!(h.is_empty());
        assert_eq!(h.bytes(), 0);
        assert_eq!(resume(&h, 2), (false, vec![]));
        assert_eq!(resume(&h, 1), (true, vec![]));
    }

    #[test]
    fn a_held_id_resumes_after_it() {
        let h = history(10, &[10, 11, 12, 13]);
        assert_eq!(resume(&h, 10), (false, vec![11, 12, 13]));
        assert_eq!(resume(&h, 12), (false, vec![13]));
    }

    #[test]
    fn the_newest_id_resumes_with_nothing() {
        let h = history(10, &[10, 11, 12, 13]);
        assert_eq!(resume(&h, 13), (false, vec![]));
    }

    #[test]
    fn the_id_just_before_the_oldest_held_missed_nothing() {
        let h = history(3, &[1, 2, 3, 4, 5]);
        assert_eq!(resume(&h, 2), (false, vec![3, 4, 5]));
    }

    #[test]
    fn an_evicted_id_before_that_missed_messages() {
        let h = history(3, &[1, 2, 3, 4, 5]);
        assert_eq!(resume(&h, 1), (true, vec![3, 4, 5]));
    }

    #[test]
    fn the_id_before_the_oldest_counts_even_across_a_jump_in_ids() {
        // A run with a store ended at 7; the next run started at its clock, 1_000.
        let h = history(2, &[6, 7, 1_000, 1_001]);
        assert_eq!(resume(&h, 7), (false, vec![1_000, 1_001]));
        assert_eq!(resume(&h, 6), (true, vec![1_000, 1_001]));
        // 999 is one below the oldest held but was never an id: unknown.
        assert_eq!(resume(&h, 999), (true, vec![1_000, 1_001]));
    }

    #[test]
    fn an_id_older_than_anything_known_missed_messages() {
        let h = history(10, &[10, 11]);
        assert_eq!(resume(&h, 9), (true, vec![10, 11]));
        assert_eq!(resume(&h, 0), (true, vec![10, 11]));
    }

    #[test]
    fn an_id_in_a_gap_between_held_ids_is_unknown() {
        let h = history(10, &[10, 20, 30]);
        assert_eq!(resume(&h, 15), (true, vec![10, 20, 30]));
    }

    #[test]
    fn an_id_newer_than_the_newest_is_unknown() {
        // From a later run of another server, or made up: the client may have missed anything.
        let h = history(10, &[10, 11]);
        assert_eq!(resume(&h, 12), (true, vec![10, 11]));
        assert_eq!(resume(&h, u64::MAX), (true, vec![10, 11]));
    }

    #[test]
    fn an_empty_history_knows_no_id() {
        let h = history(10, &[]);
        assert_eq!(resume(&h, 1), (true, vec![]));
        assert_eq!(resume(&h, 0), (true, vec![]));
    }

    #[test]
    fn a_history_that_holds_nothing_still_knows_the_last_id() {
        let h = history(0, &[1, 2]);
        assert!(h.is_empty());
        assert_eq!(resume(&h, 2), (false, vec![]));
        assert_eq!(resume(&h, 1), (true, vec![]));
    }

    #[test]
    fn an_id_not_above_the_last_one_is_given_back() {
        let mut h = history(2, &[5, 6, 7]);
        assert_eq!(h.push(msg(7, "again")), Err(msg(7, "again")));
        // 5 is no longer held, but it was pushed: still refused.
        assert_eq!(h.push(msg(5, "old")), Err(msg(5, "old")));
        assert_eq!(ids(&h.recent(10)), [6, 7]);
        assert_eq!(h.last_id(), Some(7));
        assert_eq!(h.push(msg(8, "ok")).map(|m| m.id), Ok(8));
    }

    #[test]
    fn a_restored_history_knows_the_message_before_it() {
        let h = History::restored(
            Bounds::default(),
            Some(41),
            vec![msg(42, "a"), msg(43, "b")],
        );
        assert_eq!(resume(&h, 41), (false, vec![42, 43]));
        assert_eq!(resume(&h, 40), (true, vec![42, 43]));
        assert_eq!(h.last_id(), Some(43));
        let nothing_before = History::restored(Bounds::default(), None, vec![msg(42, "a")]);
        assert_eq!(resume(&nothing_before, 41), (true, vec![42]));
    }

    #[test]
    fn a_restored_history_applies_its_bounds_and_order() {
        let messages = vec![msg(1, "a"), msg(2, "b"), msg(2, "dup"), msg(3, "c")];
        let h = History::restored(
            Bounds {
                max_messages: 2,
                max_bytes: 1 << 20,
            },
            None,
            messages,
        );
        assert_eq!(ids(&h.recent(10)), [2, 3]);
        assert_eq!(h.recent(10)[0].text, "b");
        assert_eq!(resume(&h, 1), (false, vec![2, 3]));
    }

    #[test]
    fn a_live_subscriber_misses_only_what_was_evicted_after_its_last_delivery() {
        let h = history(3, &[10, 20, 30, 40, 50]); // 10 and 20 evicted
        let since = |delivered| {
            let r = h.since(delivered);
            (r.missed, ids(&r.messages))
        };
        assert_eq!(since(20), (false, vec![30, 40, 50]));
        assert_eq!(since(35), (false, vec![40, 50]));
        assert_eq!(since(50), (false, vec![]));
        assert_eq!(since(10), (true, vec![30, 40, 50]));
        assert_eq!(since(0), (true, vec![30, 40, 50]));
        // Nothing evicted: a subscriber that started before the first message missed nothing.
        let fresh = history(3, &[10, 20]);
        let r = fresh.since(0);
        assert_eq!((r.missed, ids(&r.messages)), (false, vec![10, 20]));
    }
}
