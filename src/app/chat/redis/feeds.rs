//! The feeds' side of Redis: how they are switched over, what the follower hands them, and the
//! ids a page may bring from a faster instance.

use std::sync::Arc;

use super::{Redis, Sink};
use crate::app::chat::Feeds;
use crate::app::chat::feeds::Feed;
use crate::app::chat::live::{encode, targets};
use crate::app::chat::lock;
use crate::app::chat::message::Message;
use crate::app::views;
use crate::sse::Event;
use crate::tiny::Offered;

impl Feeds {
    /// Appends messages to Redis instead of the feeds' rooms: they come back, with everyone
    /// else's, through [`Sink::receive`].
    pub fn shared_through(mut self, redis: Arc<Redis>) -> Feeds {
        self.redis = Some(redis);
        self
    }

    /// Whether the feeds are shared through Redis: a publish then waits for it.
    pub fn shared_through_redis(&self) -> bool {
        self.redis.is_some()
    }

    /// The id a page comes back with may be one this instance has not read yet (the page saw it
    /// on a faster instance): that id, if it is above every id held and the feed's stream has
    /// it. Asked before the room's lock is taken, since Redis may be slow to answer.
    pub(in crate::app::chat) fn ahead_of_room_in_redis(
        &self,
        feed: &Feed,
        last_event_id: &str,
    ) -> Option<u64> {
        let redis = self.redis.as_ref()?;
        let seen: u64 = last_event_id.trim().parse().ok()?;
        let newest = lock(&feed.room).last_id();
        (Some(seen) > newest && redis.holds(&feed.name, seen)).then_some(seen)
    }
}

/// What the follower reads goes to the feed of its stream; a feed first published through
/// another instance comes into being here with its first message read, within `--max-feeds`.
impl Sink for Feeds {
    fn names(&self) -> Vec<String> {
        let feeds = self.registry.all();
        feeds.iter().map(|feed| feed.name.to_string()).collect()
    }

    fn max(&self) -> usize {
        self.registry.max()
    }

    fn receive(&self, name: &str, message: Message) -> bool {
        // Paced like a publisher from code: what Redis holds waits there, not in memory here.
        self.wait_for_the_fan_out();
        let Some(feed) = self.registry.create(name) else {
            return false;
        };
        {
            let mut room = lock(&feed.room);
            match room.hold(message) {
                // Queued under the room's lock, so the queue holds each feed's messages in order.
                Ok(message) => lock(&self.unsent).push_back((feed.clone(), message)),
                // Held already, or older than the newest held: not sent again.
                Err(_) => return true,
            }
        }
        self.hand_off();
        true
    }

    /// Messages of the feed up to `before` were lost to this instance (Redis dropped them before
    /// it read them): the history forgets what it held, so a page resuming from it is told it
    /// missed messages, and each open page that has not seen `before` gets the missed notice now.
    ///
    /// The notice is offered here rather than through the fan-out threads; they could only still
    /// hold messages handed over before Redis was lost, at least one reconnection delay ago.
    fn skip_to(&self, name: &str, before: u64) {
        let Some(feed) = self.registry.all().into_iter().find(|f| &*f.name == name) else {
            return;
        };
        let _room = {
            let mut room = lock(&feed.room);
            room.skip_to(before);
            room
        };
        let notice = encode(&Event::new().data(views::chat_missed(targets(&feed).1).into_string()));
        for share in feed.shares.iter() {
            for subscriber in lock(share).iter() {
                let mut delivery = lock(&subscriber.state);
                if delivery.last_queued >= before || delivery.lagging {
                    // A lagging page gets the notice when its thread catches it up.
                    continue;
                }
                match subscriber.outlet.offer(&notice) {
                    Offered::Sent | Offered::Queued => {
                        feed.metrics.missed_notice();
                        delivery.last_queued = before;
                    }
                    Offered::Full => delivery.lagging = true,
                    Offered::Gone => {}
                }
            }
        }
    }
}
