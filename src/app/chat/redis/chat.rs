//! The chat's side of Redis: how it is switched over, what the follower hands it, and the ids a
//! page may bring from a faster instance.

use std::sync::Arc;

use super::{Redis, Sink};
use crate::app::chat::live::encode;
use crate::app::chat::message::Message;
use crate::app::chat::{CHAT, Chat, lock};
use crate::app::views;
use crate::sse::Event;
use crate::tiny::Offered;

impl Chat {
    /// Appends messages to Redis instead of the room: they come back, with everyone else's,
    /// through [`Chat::receive`].
    pub fn shared_through(mut self, redis: Arc<Redis>) -> Chat {
        self.redis = Some(redis);
        self
    }

    /// A message read from Redis (published here or on another instance): held, and handed to
    /// the fan-out threads. One already held, or older than the newest held, is not sent again.
    pub fn receive(&self, message: Message) {
        {
            let mut room = lock(&self.room);
            match room.hold(message) {
                Ok(message) => lock(&self.unsent).push_back(message),
                Err(_) => return,
            }
        }
        self.hand_off();
    }

    /// Messages up to `before` were lost to this instance (Redis dropped them before it read
    /// them): the history forgets what it held, so a page resuming from it is told it missed
    /// messages, and each open page that has not seen `before` gets the missed notice now.
    ///
    /// The notice is offered here rather than through the fan-out threads; they could only still
    /// hold messages handed over before Redis was lost, at least one reconnection delay ago.
    pub fn skip_to(&self, before: u64) {
        let mut room = lock(&self.room);
        room.skip_to(before);
        let notice = encode(&Event::new().data(views::chat_missed().into_string()));
        for subscriber in lock(&self.subscribers).iter() {
            let mut delivery = lock(&subscriber.state);
            if delivery.last_queued >= before || delivery.lagging {
                // A lagging page gets the notice when its thread catches it up.
                continue;
            }
            match subscriber.outlet.offer(&notice) {
                Offered::Sent | Offered::Queued => {
                    self.metrics.missed_notice();
                    delivery.last_queued = before;
                }
                Offered::Full => delivery.lagging = true,
                Offered::Gone => {}
            }
        }
    }

    /// The id a page comes back with may be one this instance has not read yet (the page saw it
    /// on a faster instance): that id, if it is above every id held and Redis has it. Asked
    /// before the room's lock is taken, since Redis may be slow to answer.
    pub(in crate::app::chat) fn ahead_of_room_in_redis(&self, last_event_id: &str) -> Option<u64> {
        let redis = self.redis.as_ref()?;
        let seen: u64 = last_event_id.trim().parse().ok()?;
        let newest = lock(&self.room).last_id();
        (Some(seen) > newest && redis.holds(CHAT, seen)).then_some(seen)
    }
}

/// The chat is the one feed so far: what the follower reads is its.
impl Sink for Chat {
    fn receive(&self, _feed: &str, message: Message) {
        Chat::receive(self, message);
    }

    fn skip_to(&self, _feed: &str, before: u64) {
        Chat::skip_to(self, before);
    }
}
