//! The named feeds and the chatroom, which is the feed `chat` with a form: what a publish request
//! may say, the messages held for pages that open or reconnect, ids that outlive a restart, the
//! optional store, the rate limit, and which feeds exist.
//!
//! ```text
//! POST /feeds/NAME        form::parse -> message::validate -> Limiter::check
//!                         -> Registry::create (at most --max-feeds) -> Room::publish
//! GET  /feeds/NAME/stream Room::resume(Last-Event-ID) -> a notice if missed, the messages, then live
//! ```
//!
//! `/chat/messages` and `/chat/stream` are the feed `chat`'s. A [`Room`] is one feed's plain
//! state; the server holds each behind a lock so that an id, its journal record and its place in
//! the history are taken in the same order. Ids are per feed: each feed's are increasing, and a
//! `Last-Event-ID` is a position in the feed of its stream.

pub mod feeds;
pub mod form;
pub mod history;
pub mod ids;
pub mod journal;
pub mod limiter;
mod live;
pub mod message;
mod metrics;
mod publish;
#[cfg(feature = "redis")]
pub mod redis;

use std::io;
use std::sync::Arc;
use std::time::SystemTime;

use crate::lock;

use history::{Bounds, History, Resume};
use ids::IdSource;
use message::{Draft, Message};

pub use live::{Feeds, Settings};
pub use publish::Failure;

/// What is handed from one process image to the next (see `server`): every feed's held
/// messages, and a note per feed of the ids around them.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Carried {
    /// The held messages, as journal records (each naming its feed).
    pub records: Vec<u8>,
    /// `NAME,before=ID,last=ID` per feed, separated by `;`: the id before the oldest held, and
    /// the last given (either empty).
    pub note: String,
}

/// One feed's messages: their ids and the history held for pages. The store, shared by every
/// feed, is the caller's (see [`Room::publish`]).
#[derive(Debug)]
pub struct Room {
    ids: IdSource,
    history: History,
}

impl Room {
    /// An empty room: its ids start at the clock `now`.
    pub fn new(bounds: Bounds, now: SystemTime) -> Room {
        Room {
            ids: IdSource::start(now, None),
            history: History::new(bounds),
        }
    }

    /// A room refilled with what the store held of it: its ids go on above the last stored.
    pub fn restored(bounds: Bounds, stored: journal::Held, now: SystemTime) -> Room {
        Room {
            ids: IdSource::start(now, stored.last_id),
            history: History::restored(bounds, stored.before, stored.messages),
        }
    }

    /// This room's part of what is handed to the next image, as the messages of `feed`: its
    /// held messages as records, and its note (see [`Carried`]).
    pub fn carry(&self, feed: &str, carried: &mut Carried) {
        let held = self.history.recent(usize::MAX);
        carried
            .records
            .extend(journal::encode_all(feed, held.iter().map(|m| m.as_ref())));
        let id = |id: Option<u64>| id.map_or(String::new(), |id| id.to_string());
        if !carried.note.is_empty() {
            carried.note.push(';');
        }
        carried.note.push_str(&format!(
            "{feed},before={},last={}",
            id(self.history.before_oldest()),
            id(self.history.last_id())
        ));
    }

    /// A room the image before this one carried: `held` (from the store, or from the carried
    /// records), `before` the id before the oldest it held if the store does not say, and ids
    /// going on from `last`, the last one it gave, whatever the clock says.
    pub fn carried(
        bounds: Bounds,
        held: journal::Held,
        before: Option<u64>,
        last: Option<u64>,
        now: SystemTime,
    ) -> Room {
        let held = journal::Held {
            before: held.before.or(before),
            ..held
        };
        let mut room = Room::restored(bounds, held, now);
        room.ids = IdSource::after(last.max(room.history.last_id()), now);
        room
    }

    /// Gives the draft an id and a time, hands it to `store` (the journal's append, or nothing),
    /// and holds it. An error is the store's: the message was not published (answer 500); its
    /// id is not used again.
    pub fn publish(
        &mut self,
        draft: Draft,
        now: SystemTime,
        store: impl FnOnce(&Message) -> io::Result<()>,
    ) -> io::Result<Arc<Message>> {
        let message = Message {
            id: self.ids.next_id(),
            name: draft.name,
            text: draft.text,
            at_ms: message::unix_ms(now),
        };
        store(&message)?;
        self.history
            .push(message)
            .map_err(|m| io::Error::other(format!("message id {} is not above the last one", m.id)))
    }

    /// Holds a message published elsewhere (read from Redis): it has its id already. One not
    /// above every id held is given back.
    #[cfg(feature = "redis")]
    pub fn hold(&mut self, message: Message) -> Result<Arc<Message>, Message> {
        self.history.push(message)
    }

    /// See [`History::skip_to`].
    #[cfg(feature = "redis")]
    pub fn skip_to(&mut self, before: u64) {
        self.history.skip_to(before);
    }

    #[cfg(test)]
    /// The newest `limit` messages, oldest first: what a new page shows.
    pub fn recent(&self, limit: usize) -> Vec<Arc<Message>> {
        self.history.recent(limit)
    }

    /// What a stream sends before live messages, from its request's `Last-Event-ID` header:
    /// none (or empty) is a new page, which gets the newest `limit`; an id that is not a
    /// number is one this server never gave, so the client missed messages.
    pub fn resume(&self, last_event_id: Option<&str>, limit: usize) -> Resume {
        match last_event_id.map(str::trim).filter(|id| !id.is_empty()) {
            None => Resume {
                missed: false,
                messages: self.history.recent(limit),
            },
            Some(id) => match id.parse() {
                Ok(id) => self.history.after(id),
                Err(_) => Resume {
                    missed: true,
                    messages: self.history.recent(usize::MAX),
                },
            },
        }
    }

    /// For a subscriber that has every message up to `delivered`: the held messages after it,
    /// and whether one after it was evicted before it could be sent (see [`History::since`]).
    pub fn since(&self, delivered: u64) -> Resume {
        self.history.since(delivered)
    }

    /// Messages held now.
    pub fn held(&self) -> usize {
        self.history.len()
    }

    /// The largest id the room has had (published, restored or skipped to), held or not.
    pub fn last_id(&self) -> Option<u64> {
        self.history.last_id()
    }
}

#[cfg(test)]
mod tests;
