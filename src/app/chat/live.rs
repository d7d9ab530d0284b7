//! The feeds live: publishing, and one event stream per open page, for every feed.
//!
//! A publish is journaled and put in the feed's history under its room's lock, answered, and
//! only then handed to the fan-out threads (one per core, shared by every feed, each with its
//! share of each feed's subscribers), so the `POST` is not answered from a core those threads
//! keep busy. A fan-out thread encodes the event once and offers it to each of its subscribers'
//! outlets: a non-blocking write, made on the fan-out thread, so delivering a message wakes none
//! of the stream threads. A subscriber whose client falls behind by more than its outlet holds
//! is marked lagging and skipped; its own thread, once it has written what was queued, catches
//! it up from the history (with the missed notice if what it needs is gone).
//!
//! Each subscriber remembers the id of the last message queued to it, and only a larger id is
//! ever queued, so a message reaches a page once whether it came from the history or live.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::feeds::{CHAT, Feed, Registry};
use super::history::{Bounds, Resume};
use super::journal::Journal;
use super::limiter::Limiter;
use super::message::{Limits, Message};
use super::metrics::{self, Refusals};
#[cfg(feature = "redis")]
use super::redis::Redis;
use super::{Room, lock};
use crate::app::utc_time::UtcTime;
use crate::app::views;
use crate::log::Log;
use crate::sse::Event;
use crate::tiny::{Ended, Events, Offered, Outlet, Reply, Request};

/// Messages a page gets when it connects with no `Last-Event-ID`.
const RECENT: usize = 50;

/// How the feeds run: what the server's flags set.
pub struct Settings {
    /// At most this many feeds exist (`--max-feeds`), the chat among them.
    pub max_feeds: usize,
    /// What each feed's history holds.
    pub bounds: Bounds,
    pub limits: Limits,
    /// Messages a second from one client address, over all feeds; 0 for no limit.
    pub publish_limit: u32,
    pub retry: Duration,
    pub log: Log,
}

/// Every feed, and the fan-out threads they share.
pub struct Feeds {
    pub(super) registry: Registry,
    /// One channel per fan-out thread; each thread writes to its own share of each feed's
    /// subscribers.
    pub(super) fan_out: Vec<Sender<(Arc<Feed>, Arc<Message>)>>,
    /// Published, answered or about to be, and not yet handed to the fan-out threads; in
    /// publish order within each feed (pushed under the feed's room lock).
    pub(super) unsent: Mutex<VecDeque<(Arc<Feed>, Arc<Message>)>>,
    /// The share the next subscriber joins.
    next_share: AtomicUsize,
    /// Messages handed to the fan-out threads and not yet offered to their subscribers, over
    /// all threads: how far delivery is behind publishing.
    pub(super) backlog: Arc<AtomicUsize>,
    /// The store every feed's messages go to (`--store`), if there is one.
    pub(super) journal: Option<Arc<Mutex<Journal>>>,
    /// Per client address, over all feeds: more feeds are no way around the rate.
    pub(super) limiter: Mutex<Limiter>,
    pub(super) limits: Limits,
    retry: Duration,
    pub(super) log: Log,
    pub(super) refusals: Refusals,
    /// Where messages are appended when several instances share the feeds (`--redis`);
    /// `None` appends to the feeds' rooms.
    #[cfg(feature = "redis")]
    pub(super) redis: Option<std::sync::Arc<Redis>>,
}

/// One open stream of a feed.
pub struct Subscriber {
    pub(super) outlet: Arc<Outlet>,
    /// Which fan-out thread writes to it: always the same one, so its messages go out in order.
    share: usize,
    pub(super) state: Mutex<Delivery>,
}

pub(super) struct Delivery {
    /// Every message up to this id has been queued to the client.
    pub(super) last_queued: u64,
    /// The client fell behind; live messages skip it until its thread has caught it up.
    pub(super) lagging: bool,
    /// The `retry:` hint goes on the first event with data.
    retry_sent: bool,
}

impl Feeds {
    /// Starts the fan-out threads, one per core, for the feeds of `rooms` (the chat's, and any
    /// the store held) and those published to later; their messages go to `journal` if given.
    pub fn start(
        rooms: Vec<(String, Room)>,
        journal: Option<Journal>,
        settings: Settings,
    ) -> std::io::Result<Feeds> {
        // One writer per core: a message to 10,000 subscribers is 10,000 sends, which one thread
        // would make one after the other. The threads serve every feed: ten feeds cost no more
        // threads than one. The cores this process may run on: std's count also reads cgroup
        // quotas, which costs the binary 13 KB; under a quota below the cores, they share it.
        let shares = rustix::thread::sched_getaffinity(None)
            .map_or(1, |cores| cores.count().max(1) as usize);
        let mut senders = Vec::with_capacity(shares);
        let backlog = Arc::new(AtomicUsize::new(0));
        for share in 0..shares {
            let (sender, receiver) = mpsc::channel();
            let retry = settings.retry;
            let backlog = backlog.clone();
            let run = Box::new(move || fan_out(&receiver, share, retry, &backlog));
            crate::thread::spawn("feed-fan-out", None, run)?;
            senders.push(sender);
        }
        let registry = Registry::new(
            rooms,
            settings.max_feeds,
            settings.bounds,
            shares,
            settings.log,
        );
        Ok(Feeds {
            registry,
            fan_out: senders,
            journal: journal.map(|journal| Arc::new(Mutex::new(journal))),
            unsent: Mutex::new(VecDeque::new()),
            next_share: AtomicUsize::new(0),
            backlog,
            limiter: Mutex::new(Limiter::new(settings.publish_limit)),
            limits: settings.limits,
            retry: settings.retry,
            log: settings.log,
            refusals: Refusals::default(),
            #[cfg(feature = "redis")]
            redis: None,
        })
    }

    /// The feeds' families for `/metrics`, and Redis's when the feeds are shared through it.
    pub fn render_metrics(&self) -> String {
        let feeds = metrics::render(&self.registry.all(), &self.refusals);
        #[cfg(feature = "redis")]
        if let Some(redis) = &self.redis {
            return feeds + &redis.render_metrics();
        }
        feeds
    }

    /// Ends the Redis follower, if there is one, when the server stops.
    pub fn stop_following(&self) {
        #[cfg(feature = "redis")]
        if let Some(redis) = &self.redis {
            redis.stop();
        }
    }

    /// `/healthz`: the process answers (always `200`), and whether Redis is reachable when
    /// the feeds are shared through it (readiness to publish).
    pub fn health(&self) -> String {
        #[cfg(feature = "redis")]
        if let Some(redis) = &self.redis {
            return format!("ok\n{}", redis.health());
        }
        "ok\n".into()
    }

    /// Every feed's name and the messages it holds, oldest feed first.
    pub fn list(&self) -> Vec<(Box<str>, usize)> {
        let feeds = self.registry.all();
        let held = |feed: &Feed| lock(&feed.room).held();
        feeds.iter().map(|f| (f.name.clone(), held(f))).collect()
    }

    pub fn max_feeds(&self) -> usize {
        self.registry.max()
    }

    /// Makes the feed `name` now, before its first message (a program's feed, so that it is
    /// listed from the start and holds its place under `--max-feeds`); `false` if it does not
    /// exist and `--max-feeds` do.
    pub fn create(&self, name: &str) -> bool {
        self.registry.create(name).is_some()
    }

    /// `GET /feeds/NAME/stream` (and `/chat/stream`). A feed nobody has published to yet is
    /// waited for (see `feeds`).
    pub fn stream(self: &Arc<Feeds>, name: &str, request: &Request) -> Reply {
        let last_event_id = request.header("Last-Event-ID").map(str::to_owned);
        let feeds = self.clone();
        let name = name.to_owned();
        Reply::events(format!("to feed {name}"), move |events| {
            let feed = feeds.registry.watch(&name);
            // Forgets an awaited name however the stream ends, a panic included.
            let _watching = Watching(&feeds.registry, &name);
            feeds.subscribe(&feed, last_event_id.as_deref(), events)
        })
        .with_outlet()
    }

    /// Runs on the stream's thread: sends what the client should see first, joins the
    /// feed's subscribers, then serves the outlet until the client goes or the server stops.
    fn subscribe(
        &self,
        feed: &Feed,
        last_event_id: Option<&str>,
        events: &mut Events<'_>,
    ) -> Result<(), Ended> {
        let outlet = events.outlet()?;
        let shares = self.fan_out.len();
        let subscriber = Arc::new(Subscriber {
            outlet,
            share: self.next_share.fetch_add(1, Ordering::Relaxed) % shares,
            state: Mutex::new(Delivery {
                last_queued: 0,
                lagging: false,
                retry_sent: false,
            }),
        });
        let share = &feed.shares[subscriber.share];
        let ahead = self.ahead_of_room(feed, last_event_id);
        {
            let room = lock(&feed.room);
            let mut resume = room.resume(last_event_id, RECENT);
            let mut delivery = lock(&subscriber.state);
            delivery.last_queued = room.last_id().unwrap_or(0);
            if let Some(seen) = ahead.filter(|seen| resume.missed && Some(*seen) > room.last_id()) {
                // Still ahead: it gets what comes after its id, live.
                resume.missed = false;
                resume.messages.clear();
                delivery.last_queued = seen;
            }
            // A page that comes back with a position it can resume from keeps what it shows;
            // any other gets the list replaced.
            // (A blank id is none, as `resume` reads it.)
            let position = last_event_id.map(str::trim).filter(|id| !id.is_empty());
            let replace = position.is_none() || resume.missed;
            if let Some(first) = resume.messages.first() {
                delivery.last_queued = first.id.saturating_sub(1);
            }
            self.queue(feed, &subscriber, &mut delivery, &resume, replace, &room);
            if resume.messages.is_empty() && !resume.missed {
                // Nothing to send yet: a comment, so that the client sees the stream is open
                // (browsers and curl show nothing of a response before its first body bytes).
                subscriber.outlet.offer_comment(b": connected\n\n");
            }
            lock(share).push(subscriber.clone());
        }
        feed.metrics.subscribed();
        // Leaves however the stream ends, a panic included: a subscriber left behind would keep
        // its outlet, and the connection's two descriptors, for as long as the server runs.
        let _joined = Joined {
            feed,
            share,
            subscriber: &subscriber,
        };
        loop {
            match events.serve() {
                // An event was refused for lack of room: the client is behind.
                Ok(()) => self.catch_up(feed, &subscriber),
                Err(ended) => return Err(ended),
            }
        }
    }

    /// The id a page comes back with, if this instance has not read it yet but it exists (see
    /// `redis`); never without Redis.
    fn ahead_of_room(&self, feed: &Feed, last_event_id: Option<&str>) -> Option<u64> {
        #[cfg(feature = "redis")]
        if self.redis.is_some() {
            return self.ahead_of_room_in_redis(feed, last_event_id?);
        }
        let _ = (feed, last_event_id);
        None
    }

    /// Queues the notice (if `resume.missed`) and the messages of `resume` that are newer than
    /// what the subscriber has, until its outlet is full. Holds the room's lock (`_room`), so no
    /// message is published meanwhile.
    fn queue(
        &self,
        feed: &Feed,
        subscriber: &Subscriber,
        delivery: &mut Delivery,
        resume: &Resume,
        replace: bool,
        _room: &Room,
    ) {
        if resume.missed {
            feed.metrics.missed_notice();
            let notice = Event::new().data(views::chat_missed(targets(feed).1).into_string());
            subscriber.outlet.offer(&encode(&notice));
        }
        let mut reset = replace;
        let after = delivery.last_queued;
        // Rendered now, for this page: a message from before today is shown with its date.
        let now = UtcTime::now();
        for message in resume.messages.iter().filter(|m| m.id > after) {
            let retry = (!delivery.retry_sent).then_some(self.retry);
            let event = message_event(feed, message, reset, retry, &now);
            match subscriber.outlet.offer(&encode(&event)) {
                Offered::Sent | Offered::Queued => {
                    delivery.last_queued = message.id;
                    delivery.retry_sent = true;
                    reset = false;
                }
                Offered::Full => {
                    delivery.lagging = true;
                    return;
                }
                Offered::Gone => return,
            }
        }
        if let Some(last) = resume.messages.last() {
            delivery.last_queued = delivery.last_queued.max(last.id);
        }
    }

    /// Runs on a subscriber's thread once its outlet has drained after refusing a message:
    /// queues, from the history, what it missed since its last queued message.
    fn catch_up(&self, feed: &Feed, subscriber: &Subscriber) {
        let room = lock(&feed.room);
        let mut delivery = lock(&subscriber.state);
        if !delivery.lagging {
            return;
        }
        delivery.lagging = false;
        let resume = room.since(delivery.last_queued);
        self.queue(
            feed,
            subscriber,
            &mut delivery,
            &resume,
            resume.missed,
            &room,
        );
    }

    /// What is handed to the image that replaces the process: every feed's held messages and
    /// the ids around them (see [`Room::carry`]).
    pub fn carry(&self) -> super::Carried {
        let mut carried = super::Carried::default();
        for feed in self.registry.all() {
            lock(&feed.room).carry(&feed.name, &mut carried);
        }
        carried
    }

    /// Writes the journal to disk (`fdatasync`), when the server stops and before it replaces
    /// its image: until then a power cut can lose the last half minute or so (see `journal`).
    pub fn sync(&self) {
        let Some(journal) = &self.journal else { return };
        let mut journal = lock(journal);
        if let Err(error) = journal.sync() {
            let path = journal.path().display();
            self.log.line(format_args!("store: {path}: {error}"));
        }
    }
}

/// A subscriber in its feed's share, taken out when this is dropped.
struct Joined<'a> {
    feed: &'a Feed,
    share: &'a Mutex<Vec<Arc<Subscriber>>>,
    subscriber: &'a Arc<Subscriber>,
}

impl Drop for Joined<'_> {
    fn drop(&mut self) {
        lock(self.share).retain(|other| !Arc::ptr_eq(other, self.subscriber));
        self.feed.metrics.unsubscribed();
    }
}

/// A stream's hold on its feed's name (see [`feeds::Registry::watch`](super::feeds)).
struct Watching<'a>(&'a Registry, &'a str);

impl Drop for Watching<'_> {
    fn drop(&mut self) {
        self.0.unwatch(self.1);
    }
}

/// The ids a feed's events swap out of band: its list and its notice. The chat's page has its
/// own; every other feed's page has the same ones.
pub(super) fn targets(feed: &Feed) -> (&'static str, &'static str) {
    if &*feed.name == CHAT {
        ("chat-log", "chat-notice")
    } else {
        ("feed-log", "feed-notice")
    }
}

/// The event for one message: its id, and its fragment as data (inside the list reset when the
/// page's list should be replaced), its time shown as it reads on the day of `now`. A feed's
/// page also shows its newest message large.
fn message_event(
    feed: &Feed,
    message: &Message,
    reset: bool,
    retry: Option<Duration>,
    now: &UtcTime,
) -> Event {
    let published = UtcTime::of_unix_ms(message.at_ms);
    let mut html = views::chat_message(message.id, &message.name, &message.text, &published, now);
    if reset {
        html = views::chat_reset(targets(feed).0, html);
    }
    if &*feed.name != CHAT {
        html = views::feed_newest(html, &message.name, &message.text);
    }
    let event = Event::new().id_number(message.id).data(html.into_string());
    match retry {
        Some(retry) => event.retry(retry),
        None => event,
    }
}

pub(super) fn encode(event: &Event) -> Vec<u8> {
    let mut bytes = Vec::with_capacity(256);
    event.encode_into(&mut bytes);
    bytes
}

/// A fan-out thread: each message, encoded once, offered to every subscriber of its feed in
/// this thread's `share`.
fn fan_out(
    messages: &Receiver<(Arc<Feed>, Arc<Message>)>,
    share: usize,
    retry: Duration,
    backlog: &AtomicUsize,
) {
    for (feed, message) in messages {
        offer(&feed, &message, share, retry);
        backlog.fetch_sub(1, Ordering::Relaxed);
    }
}

/// Offers `message` to every subscriber of `feed` in `share`.
fn offer(feed: &Feed, message: &Message, share: usize, retry: Duration) {
    // Sent as it is published, so "today" is now: every page shows the same fragment.
    let now = UtcTime::now();
    let encoded = encode(&message_event(feed, message, false, None, &now));
    let mine = lock(&feed.shares[share]).clone();
    for subscriber in mine {
        let mut delivery = lock(&subscriber.state);
        if delivery.lagging || message.id <= delivery.last_queued {
            continue;
        }
        let offered = if delivery.retry_sent {
            subscriber.outlet.offer(&encoded)
        } else {
            subscriber.outlet.offer(&encode(&message_event(
                feed,
                message,
                false,
                Some(retry),
                &now,
            )))
        };
        match offered {
            Offered::Sent | Offered::Queued => {
                delivery.last_queued = message.id;
                delivery.retry_sent = true;
            }
            Offered::Full => delivery.lagging = true,
            Offered::Gone => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::UNIX_EPOCH;

    /// 2026-12-02 14:03:07 UTC.
    const AFTERNOON_MS: u64 = 1_796_220_187_000;

    fn event_data(at_ms: u64, now_ms: u64) -> String {
        let message = Message {
            id: 5,
            name: "ada".into(),
            text: "hi".into(),
            at_ms,
        };
        let feed = Feed::new(CHAT, Room::new(Bounds::default(), UNIX_EPOCH), 1);
        let event = message_event(&feed, &message, false, None, &UtcTime::of_unix_ms(now_ms));
        String::from_utf8(encode(&event)).expect("UTF-8")
    }

    #[test]
    fn a_message_is_shown_at_its_publish_time_dated_when_sent_another_day() {
        let same_day = event_data(AFTERNOON_MS, AFTERNOON_MS + 3_600_000);
        assert!(
            same_day.contains(r#"<time datetime="2026-12-02T14:03:07Z" title="2026-12-02 14:03:07 UTC">14:03</time>"#),
            "{same_day}"
        );
        // History sent to a page that connects the next day.
        let next_day = event_data(AFTERNOON_MS, AFTERNOON_MS + 86_400_000);
        assert!(next_day.contains(">2026-12-02 14:03</time>"), "{next_day}");
    }
}
