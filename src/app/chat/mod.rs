//! The chatroom, without sockets: what a publish request may say, the messages held for pages
//! that open or reconnect, ids that outlive a restart, the optional store, and the rate limit.
//!
//! ```text
//! POST /chat/messages   form::parse -> message::validate -> Limiter::check -> Room::publish
//! GET  /chat/stream     Room::resume(Last-Event-ID) -> a notice if missed, the messages, then live
//! ```
//!
//! A [`Room`] is plain state; the server holds it behind one lock so that an id, its journal
//! record and its place in the history are taken in the same order.

pub mod form;
pub mod history;
pub mod ids;
pub mod journal;
pub mod limiter;
mod live;
pub mod message;
mod metrics;
#[cfg(feature = "redis")]
pub mod redis;

use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::SystemTime;

use history::{Bounds, History, Resume};
use ids::IdSource;
use journal::Journal;
use message::{Draft, Message};

pub use live::Chat;

/// The chatroom's feed name: its Redis stream is `sse-htmx:feed:chat`.
#[cfg(feature = "redis")]
pub const CHAT: &str = "chat";

/// A lock that a panic elsewhere does not make unusable: every state it guards is whole
/// between two statements.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A room's messages, handed from one process image to the next.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Carried {
    /// The held messages, as journal records.
    pub records: Vec<u8>,
    /// `before=ID,last=ID`: the id before the oldest held, and the last given (either empty).
    pub note: String,
}

/// The messages of the room, with the store that keeps them across runs if there is one.
#[derive(Debug)]
pub struct Room {
    ids: IdSource,
    history: History,
    journal: Option<Journal>,
}

impl Room {
    /// A room holding `bounds` of history, refilled from `store` if given. The strings are what
    /// the store's reading skipped or cut off, one log line each.
    pub fn open(
        bounds: Bounds,
        store: Option<&Path>,
        now: SystemTime,
    ) -> io::Result<(Room, Vec<String>)> {
        let Some(path) = store else {
            let room = Room {
                ids: IdSource::start(now, None),
                history: History::new(bounds),
                journal: None,
            };
            return Ok((room, Vec::new()));
        };
        let (journal, loaded) = Journal::open(path, bounds.max_messages)?;
        let room = Room {
            ids: IdSource::start(now, loaded.last_id),
            history: History::restored(bounds, loaded.before, loaded.messages),
            journal: Some(journal),
        };
        Ok((room, loaded.problems))
    }

    /// What this room hands to the image that replaces the process (see `server`): the held
    /// messages as journal records, and a note of the id before the oldest and of the last.
    pub fn carry(&self) -> Carried {
        let held = self.history.recent(usize::MAX);
        let id = |id: Option<u64>| id.map_or(String::new(), |id| id.to_string());
        Carried {
            records: journal::encode_all(held.iter().map(|message| message.as_ref())),
            note: format!(
                "before={},last={}",
                id(self.history.before_oldest()),
                id(self.history.last_id())
            ),
        }
    }

    /// The room the image before this one carried ([`Room::carry`]): its messages, or with a
    /// store those of the store; either way ids go on from the last one it gave.
    pub fn carried(
        bounds: Bounds,
        store: Option<&Path>,
        carried: &Carried,
        now: SystemTime,
    ) -> io::Result<(Room, Vec<String>)> {
        let noted = |name: &str| {
            carried
                .note
                .split(',')
                .find_map(|field| field.strip_prefix(name)?.strip_prefix('='))
                .and_then(|id| id.parse::<u64>().ok())
        };
        let (before, last) = (noted("before"), noted("last"));
        let (mut room, problems) = match store {
            Some(_) => Room::open(bounds, store, now)?,
            None => {
                let loaded = journal::decode_all(&carried.records, bounds.max_messages);
                let history = History::restored(bounds, loaded.before.or(before), loaded.messages);
                let room = Room {
                    ids: IdSource::start(now, None),
                    history,
                    journal: None,
                };
                (room, loaded.problems)
            }
        };
        room.ids = IdSource::after(last.max(room.history.last_id()), now);
        Ok((room, problems))
    }

    /// Gives the draft an id and a time, stores it, and holds it. An error is the store's: the
    /// message was not published (answer 500); its id is not used again.
    pub fn publish(&mut self, draft: Draft, now: SystemTime) -> io::Result<Arc<Message>> {
        let message = Message {
            id: self.ids.next_id(),
            name: draft.name,
            text: draft.text,
            at_ms: message::unix_ms(now),
        };
        if let Some(journal) = &mut self.journal {
            journal.append(&message)?;
        }
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

    /// The largest id published or loaded.
    /// See [`History::since`].
    pub fn since(&self, delivered: u64) -> Resume {
        self.history.since(delivered)
    }

    /// Messages held now.
    pub fn held(&self) -> usize {
        self.history.len()
    }

    pub fn last_id(&self) -> Option<u64> {
        self.history.last_id()
    }

    /// Flushes the store to disk, if there is one (see `journal` for when it matters).
    /// Asks the kernel to write the journal to disk (see `journal`: until then a power cut can
    /// lose what was written in the last seconds).
    pub fn sync(&self) -> io::Result<()> {
        match &self.journal {
            Some(journal) => journal.sync().map_err(|error| {
                io::Error::new(
                    error.kind(),
                    format!("{}: {error}", journal.path().display()),
                )
            }),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests;
