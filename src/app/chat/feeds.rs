//! The named feeds: which exist, which are waited for, and the bound on how many there are.
//!
//! A feed comes into being with its first message ([`Registry::create`]); at most `max` exist
//! (`--max-feeds`), the chat among them. A stream may open on a name nobody has published to
//! yet, and wait for its first message ([`Registry::watch`]): that makes the name *awaited*, not
//! a feed. An awaited name is not listed, not counted toward `max` and has no metrics; it is
//! forgotten when its last stream closes, so the names a client can make the server hold are
//! bounded by the streams it holds open (`--max-streams`), and a `GET` never creates a feed. When
//! the first message comes, the awaited feed becomes the feed, with its streams already in it.

use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use super::Room;
use super::history::Bounds;
use super::journal::Held;
use super::live::Subscriber;
use super::metrics::FeedMetrics;
use crate::log::Log;

/// The chatroom's feed: `/chat`, `/chat/messages` and `/chat/stream` are its routes.
pub const CHAT: &str = "chat";

/// `[a-z0-9][a-z0-9-]{0,63}`: safe in a path, an id, a file and a metrics label as it is.
pub fn valid_name(name: &str) -> bool {
    let mut bytes = name.bytes();
    bytes
        .next()
        .is_some_and(|first| first.is_ascii_lowercase() || first.is_ascii_digit())
        && name.len() <= 64
        && bytes.all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// The rooms of the feeds the store (or the image before this one) held, the chat's first: it
/// exists even if none was stored. With `noted` (what the image before said of its feeds, see
/// [`Noted`]), each noted feed's ids go on from its last, and a noted feed with no message held
/// is a feed still.
pub fn rooms(
    mut stored: Vec<(String, Held)>,
    noted: &[Noted],
    bounds: Bounds,
    now: SystemTime,
) -> Vec<(String, Room)> {
    for note in noted {
        if !stored.iter().any(|(name, _)| *name == note.feed) {
            stored.push((note.feed.clone(), Held::default()));
        }
    }
    let room = |(name, held): (String, Held)| {
        let room = match noted.iter().find(|note| note.feed == name) {
            Some(note) => Room::carried(bounds, held, note.before, note.last, now),
            None => Room::restored(bounds, held, now),
        };
        (name, room)
    };
    let mut rooms: Vec<(String, Room)> = stored.into_iter().map(room).collect();
    let chat = match rooms.iter().position(|(name, _)| name == CHAT) {
        Some(at) => rooms.remove(at),
        None => (CHAT.into(), Room::new(bounds, now)),
    };
    rooms.insert(0, chat);
    rooms
}

/// What the image before this one said of one of its feeds (see `Carried::note`).
#[derive(Debug, PartialEq, Eq)]
pub struct Noted {
    pub feed: String,
    /// The id before the oldest message it held.
    pub before: Option<u64>,
    /// The last id it gave.
    pub last: Option<u64>,
}

impl Noted {
    /// The feeds of a note `NAME,before=ID,last=ID;…`; what is not a feed's is left out.
    pub fn read(note: &str) -> Vec<Noted> {
        let noted = |entry: &str| {
            let mut fields = entry.split(',');
            let feed = fields.next().filter(|name| valid_name(name))?.to_owned();
            let mut noted = Noted {
                feed,
                before: None,
                last: None,
            };
            for field in fields {
                match field.split_once('=') {
                    Some(("before", id)) => noted.before = id.parse().ok(),
                    Some(("last", id)) => noted.last = id.parse().ok(),
                    _ => {}
                }
            }
            Some(noted)
        };
        note.split(';').filter_map(noted).collect()
    }
}

/// One feed: its messages, and its streams by fan-out share (so that a fan-out thread walks
/// only the subscribers of the feed it delivers to, and only its own share of them).
pub struct Feed {
    pub name: Box<str>,
    pub room: Mutex<Room>,
    pub shares: Box<[Mutex<Vec<Arc<Subscriber>>>]>,
    pub metrics: FeedMetrics,
}

impl Feed {
    pub(super) fn new(name: &str, room: Room, shares: usize) -> Arc<Feed> {
        Arc::new(Feed {
            name: name.into(),
            room: Mutex::new(room),
            shares: (0..shares).map(|_| Mutex::new(Vec::new())).collect(),
            metrics: FeedMetrics::default(),
        })
    }
}

/// Every feed, by name, and the names streams wait for.
pub struct Registry {
    names: Mutex<Names>,
    max: usize,
    bounds: Bounds,
    shares: usize,
    log: Log,
}

/// Few enough to search in order: at most `max` feeds, and the awaited names of open streams.
#[derive(Default)]
struct Names {
    /// Published to (or loaded from the store), oldest first.
    feeds: Vec<Arc<Feed>>,
    /// Waited for by streams, with how many; never published to.
    awaited: Vec<(Arc<Feed>, usize)>,
}

impl Names {
    fn feed(&self, name: &str) -> Option<&Arc<Feed>> {
        self.feeds.iter().find(|feed| &*feed.name == name)
    }

    fn awaited(&self, name: &str) -> Option<usize> {
        self.awaited
            .iter()
            .position(|(feed, _)| &*feed.name == name)
    }
}

impl Registry {
    /// A registry holding `rooms` (the chat's, and any a store held), which may exceed `max`.
    pub fn new(
        rooms: Vec<(String, Room)>,
        max: usize,
        bounds: Bounds,
        shares: usize,
        log: Log,
    ) -> Registry {
        let feeds = rooms
            .into_iter()
            .map(|(name, room)| Feed::new(&name, room, shares))
            .collect();
        Registry {
            names: Mutex::new(Names {
                feeds,
                awaited: Vec::new(),
            }),
            max,
            bounds,
            shares,
            log,
        }
    }

    #[cfg(test)]
    /// The feed `name` if it exists.
    pub fn get(&self, name: &str) -> Option<Arc<Feed>> {
        super::lock(&self.names).feed(name).cloned()
    }

    /// The feed `name`, made now (with the streams that waited for it) unless it exists; `None`
    /// if it does not and `max` feeds do.
    pub fn create(&self, name: &str) -> Option<Arc<Feed>> {
        let mut names = super::lock(&self.names);
        if let Some(feed) = names.feed(name) {
            return Some(feed.clone());
        }
        if names.feeds.len() >= self.max {
            return None;
        }
        let feed = match names.awaited(name) {
            Some(at) => names.awaited.swap_remove(at).0,
            None => self.empty(name),
        };
        names.feeds.push(feed.clone());
        let count = names.feeds.len();
        self.log.line(format_args!(
            "feed {name} created ({count} of at most {})",
            self.max
        ));
        Some(feed)
    }

    /// Whether the feed `name` exists or may be made now.
    #[cfg(feature = "redis")]
    pub fn may_create(&self, name: &str) -> bool {
        let names = super::lock(&self.names);
        names.feed(name).is_some() || names.feeds.len() < self.max
    }

    /// The feed a stream of `name` joins: the feed, or the awaited one. Each call must be
    /// followed by one [`Registry::unwatch`] when the stream ends.
    pub fn watch(&self, name: &str) -> Arc<Feed> {
        let mut names = super::lock(&self.names);
        if let Some(feed) = names.feed(name) {
            return feed.clone();
        }
        if let Some(at) = names.awaited(name) {
            let (feed, streams) = &mut names.awaited[at];
            *streams += 1;
            return feed.clone();
        }
        let feed = self.empty(name);
        names.awaited.push((feed.clone(), 1));
        feed
    }

    /// A stream of `name` ended: the last one forgets an awaited name.
    pub fn unwatch(&self, name: &str) {
        let mut names = super::lock(&self.names);
        if let Some(at) = names.awaited(name) {
            names.awaited[at].1 -= 1;
            if names.awaited[at].1 == 0 {
                names.awaited.swap_remove(at);
            }
        }
    }

    /// Every feed, oldest first.
    pub fn all(&self) -> Vec<Arc<Feed>> {
        super::lock(&self.names).feeds.clone()
    }

    pub fn max(&self) -> usize {
        self.max
    }

    fn empty(&self, name: &str) -> Arc<Feed> {
        let room = Room::new(self.bounds, SystemTime::now());
        Feed::new(name, room, self.shares)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry(max: usize) -> Registry {
        let chat = Room::new(Bounds::default(), SystemTime::now());
        Registry::new(
            vec![(CHAT.into(), chat)],
            max,
            Bounds::default(),
            2,
            Log { quiet: true },
        )
    }

    #[test]
    fn names_are_lowercase_letters_digits_and_dashes_not_first_up_to_64() {
        let (longest, too_long) = ("x".repeat(64), "x".repeat(65));
        for good in ["chat", "a", "0", "news-1", "a-", &longest] {
            assert!(valid_name(good), "{good}");
        }
        for bad in [
            "", "-a", "A", "a_b", "a.b", "a/b", "é", &too_long, "a b", "a%2F",
        ] {
            assert!(!valid_name(bad), "{bad}");
        }
    }

    #[test]
    fn a_feed_is_created_once_and_no_more_than_max_exist() {
        let feeds = registry(2);
        assert!(feeds.get("news").is_none());
        let news = feeds.create("news").expect("room for a second feed");
        assert!(Arc::ptr_eq(&news, &feeds.create("news").unwrap()));
        assert!(feeds.create("more").is_none(), "the chat and news are 2");
        let names: Vec<_> = feeds.all().iter().map(|f| f.name.to_string()).collect();
        assert_eq!(names, ["chat", "news"]);
    }

    #[test]
    fn a_watched_name_is_no_feed_until_published_and_keeps_its_streams() {
        let feeds = registry(2);
        let awaited = feeds.watch("soon");
        assert!(feeds.get("soon").is_none());
        assert_eq!(feeds.all().len(), 1);
        let again = feeds.watch("soon");
        assert!(Arc::ptr_eq(&awaited, &again));
        let created = feeds.create("soon").unwrap();
        assert!(
            Arc::ptr_eq(&awaited, &created),
            "the waiting streams are in it"
        );
        feeds.unwatch("soon");
        feeds.unwatch("soon");
        assert!(
            feeds.get("soon").is_some(),
            "a feed stays when its streams go"
        );
    }

    #[test]
    fn an_awaited_name_is_forgotten_with_its_last_stream() {
        let feeds = registry(2);
        let first = feeds.watch("gone");
        feeds.watch("gone");
        feeds.unwatch("gone");
        assert!(Arc::ptr_eq(&first, &feeds.watch("gone")));
        feeds.unwatch("gone");
        feeds.unwatch("gone");
        assert!(!Arc::ptr_eq(&first, &feeds.watch("gone")), "a new wait");
        assert!(crate::app::chat::lock(&feeds.names).awaited.len() == 1);
        feeds.unwatch("gone");
        assert!(crate::app::chat::lock(&feeds.names).awaited.is_empty());
    }

    #[test]
    fn a_note_names_each_feed_with_the_ids_around_its_messages() {
        let noted = Noted::read("chat,before=3,last=9;news,before=,last=12;Bad,last=1;;x");
        let expect = |feed: &str, before, last| Noted {
            feed: feed.into(),
            before,
            last,
        };
        assert_eq!(
            noted,
            [
                expect("chat", Some(3), Some(9)),
                expect("news", None, Some(12)),
                expect("x", None, None),
            ]
        );
    }

    #[test]
    fn rooms_put_the_chat_first_and_keep_a_noted_feed_with_nothing_held() {
        let now = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(10);
        let stored = vec![("news".to_owned(), Held::default())];
        let noted = Noted::read("quiet,before=,last=41;news,before=,last=7");
        let mut rooms = rooms(stored, &noted, Bounds::default(), now);
        let names: Vec<&str> = rooms.iter().map(|(name, _)| name.as_str()).collect();
        assert_eq!(names, ["chat", "news", "quiet"]);
        let draft = || super::super::message::Draft {
            name: "a".into(),
            text: "b".into(),
        };
        let next = |room: &mut Room| room.publish(draft(), now, |_| Ok(())).unwrap().id;
        assert_eq!(next(&mut rooms[1].1), 8, "news goes on from its last");
        assert_eq!(
            next(&mut rooms[2].1),
            42,
            "so does a feed with nothing held"
        );
        assert_eq!(
            next(&mut rooms[0].1),
            10_000_000,
            "the chat, not noted, at the clock"
        );
    }
}
