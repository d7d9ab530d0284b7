//! The chatroom live: publishing, and one event stream per open page.
//!
//! A publish is journaled and put in the history under the room's lock, answered, and only then
//! handed to the fan-out threads (one per core, each with its share of the subscribers), so the
//! `POST` is not answered from a core those threads keep busy. A fan-out thread encodes the
//! event once and offers it to each of its subscribers' outlets: a non-blocking write, made on
//! the fan-out thread, so delivering a message wakes none of the stream threads. A subscriber
//! whose client falls behind by more than its outlet holds is marked lagging and skipped; its
//! own thread, once it has written what was queued, catches it up from the history (with the
//! missed notice if what it needs is gone).
//!
//! Each subscriber remembers the id of the last message queued to it, and only a larger id is
//! ever queued, so a message reaches a page once whether it came from the history or live.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime};

use super::form;
use super::history::Resume;
use super::limiter::Limiter;
use super::message::{self, Limits, Message, Refusal};
use super::metrics::ChatMetrics;
#[cfg(feature = "redis")]
use super::redis::{Redis, Unavailable};
use super::{Room, lock};
use crate::app::utc_time::UtcTime;
use crate::app::views;
use crate::log::Log;
use crate::sse::Event;
use crate::tiny::{Ended, Events, Offered, Outlet, Reply, Request, Woken};

/// Messages a page gets when it connects with no `Last-Event-ID`.
const RECENT: usize = 50;

pub struct Chat {
    pub(super) room: Mutex<Room>,
    pub(super) subscribers: Arc<Mutex<Vec<Arc<Subscriber>>>>,
    /// One channel per fan-out thread; each thread writes to its own share of the subscribers.
    fan_out: Vec<Sender<Arc<Message>>>,
    /// Published, answered or about to be, and not yet handed to the fan-out threads; in
    /// publish order (pushed under the room's lock).
    pub(super) unsent: Mutex<VecDeque<Arc<Message>>>,
    /// The share the next subscriber joins.
    next_share: AtomicUsize,
    limiter: Mutex<Limiter>,
    limits: Limits,
    retry: Duration,
    log: Log,
    pub metrics: ChatMetrics,
    /// Where messages are appended when several instances share the room (`--redis`); `None`
    /// appends to the room itself.
    #[cfg(feature = "redis")]
    pub(super) redis: Option<Arc<Redis>>,
}

/// One open `/chat/stream`.
pub(super) struct Subscriber {
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

/// Why a publish did not happen.
enum Failure {
    Refused(Refusal),
    Store(std::io::Error),
    /// Redis did not take the message (answer 503).
    #[cfg(feature = "redis")]
    Unavailable(Unavailable),
}

impl From<Refusal> for Failure {
    fn from(refusal: Refusal) -> Failure {
        Failure::Refused(refusal)
    }
}

impl Chat {
    /// Starts the fan-out threads for `room`, one per core.
    pub fn start(
        room: Room,
        limits: Limits,
        publish_limit: u32,
        retry: Duration,
        log: Log,
    ) -> std::io::Result<Chat> {
        let subscribers = Arc::new(Mutex::new(Vec::new()));
        // One writer per core: a message to 10,000 subscribers is 10,000 sends, which one thread
        // would make one after the other.
        let shares = thread::available_parallelism().map_or(1, usize::from);
        let mut senders = Vec::with_capacity(shares);
        for share in 0..shares {
            let (sender, receiver) = mpsc::channel();
            let fan_out_to = subscribers.clone();
            thread::Builder::new()
                .name("chat-fan-out".into())
                .spawn(move || fan_out(&receiver, &fan_out_to, share, retry))?;
            senders.push(sender);
        }
        Ok(Chat {
            room: Mutex::new(room),
            subscribers,
            fan_out: senders,
            unsent: Mutex::new(VecDeque::new()),
            next_share: AtomicUsize::new(0),
            limiter: Mutex::new(Limiter::new(publish_limit)),
            limits,
            retry,
            log,
            metrics: ChatMetrics::default(),
            #[cfg(feature = "redis")]
            redis: None,
        })
    }

    /// Ends the Redis follower, if there is one, when the server stops.
    pub fn stop_following(&self) {
        #[cfg(feature = "redis")]
        if let Some(redis) = &self.redis {
            redis.stop();
        }
    }

    /// `/healthz`: the process answers (always `200`), and whether Redis is reachable when
    /// the room is shared through it (readiness to publish).
    pub fn health(&self) -> String {
        #[cfg(feature = "redis")]
        if let Some(redis) = &self.redis {
            return format!("ok\n{}", redis.health());
        }
        "ok\n".into()
    }

    /// `POST /chat/messages`. A published message goes out to the subscribers once the reply
    /// is written.
    pub fn publish(self: &Arc<Chat>, request: &Request) -> Reply {
        let for_htmx = request.header("HX-Request") == Some("true");
        let name = form::parse(
            request.header("Content-Type"),
            request.query.as_deref(),
            &request.body,
        )
        .ok()
        .and_then(|submission| submission.name)
        .unwrap_or_default();
        match self.try_publish(request) {
            Ok(message) => {
                self.metrics.published();
                let peer = request.peer.map_or_else(|| "-".into(), |p| p.to_string());
                self.log.line(format_args!(
                    "chat message {} from {peer}, {} bytes",
                    message.id,
                    message.size()
                ));
                let reply = if for_htmx {
                    Reply::html(201, views::chat_form(&name, None))
                } else {
                    Reply::text(201, format!("{}\n", message.id))
                };
                let chat = self.clone();
                reply.then(move || chat.hand_off())
            }
            Err(Failure::Refused(refusal)) => {
                self.count_refusal(refusal.label());
                let why = refusal.to_string();
                let reply = if for_htmx {
                    Reply::html(refusal.status(), views::chat_form(&name, Some(&why)))
                } else {
                    Reply::text(refusal.status(), format!("{why}\n"))
                };
                match refusal.retry_after_secs() {
                    Some(secs) => reply.with_header("Retry-After", secs.to_string()),
                    None => reply,
                }
            }
            Err(Failure::Store(error)) => {
                self.log
                    .line(format_args!("chat message not stored: {error}"));
                Reply::text(500, "the message could not be stored\n")
            }
            #[cfg(feature = "redis")]
            Err(Failure::Unavailable(unavailable)) => {
                self.log.line(format_args!(
                    "chat message not published: {}",
                    unavailable.why
                ));
                let why = format!("the message was not published: {}", unavailable.why);
                let reply = if for_htmx {
                    Reply::html(503, views::chat_form(&name, Some(&why)))
                } else {
                    Reply::text(503, format!("{why}\n"))
                };
                let secs = unavailable.retry_after.as_secs().max(1);
                reply.with_header("Retry-After", secs.to_string())
            }
        }
    }

    fn try_publish(&self, request: &Request) -> Result<Arc<Message>, Failure> {
        let submission = form::parse(
            request.header("Content-Type"),
            request.query.as_deref(),
            &request.body,
        )?;
        let draft = message::validate(&submission, &self.limits)?;
        if let Some(peer) = request.peer {
            lock(&self.limiter)
                .check(peer.ip(), Instant::now())
                .map_err(|retry_after| Refusal::RateLimited { retry_after })?;
        }
        #[cfg(feature = "redis")]
        if let Some(redis) = &self.redis {
            // Not under the room's lock: Redis may take seconds to fail, and streams that open
            // meanwhile read the room.
            return redis
                .append(super::CHAT, &draft, SystemTime::now())
                .map(Arc::new)
                .map_err(Failure::Unavailable);
        }
        let mut room = lock(&self.room);
        let message = room
            .publish(draft, SystemTime::now())
            .map_err(Failure::Store)?;
        // Queued under the room's lock, so the queue holds messages in publish order.
        lock(&self.unsent).push_back(message.clone());
        Ok(message)
    }

    /// Hands every message not yet handed over to every fan-out thread, oldest first. Each
    /// call takes all there is, so a message whose hand-off was lost (its reply's thread
    /// panicked) goes with the next.
    pub(super) fn hand_off(&self) {
        let mut unsent = lock(&self.unsent);
        while let Some(message) = unsent.pop_front() {
            for sender in &self.fan_out {
                let _ = sender.send(message.clone());
            }
        }
    }

    /// Counts a refusal by its label (also for refusals made before the request reached
    /// [`Chat::publish`], such as a body too large to read).
    pub fn count_refusal(&self, label: &str) {
        self.metrics.refused(label);
    }

    /// The chat's families for `/metrics`.
    pub fn render_metrics(&self) -> String {
        let chat = self.metrics.render(self.held());
        #[cfg(feature = "redis")]
        if let Some(redis) = &self.redis {
            return chat + &redis.render_metrics();
        }
        chat
    }

    /// `GET /chat/stream`.
    pub fn stream(self: &Arc<Chat>, request: &Request) -> Reply {
        let last_event_id = request.header("Last-Event-ID").map(str::to_owned);
        let chat = self.clone();
        Reply::events("to the chat", move |events| {
            chat.subscribe(last_event_id.as_deref(), events)
        })
    }

    /// Runs on the stream's thread: sends what the client should see first, joins the
    /// subscribers, then serves the outlet until the client goes or the server stops.
    fn subscribe(&self, last_event_id: Option<&str>, events: &mut Events<'_>) -> Result<(), Ended> {
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
        let ahead = self.ahead_of_room(last_event_id);
        {
            let room = lock(&self.room);
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
            let replace = last_event_id.is_none() || resume.missed;
            if let Some(first) = resume.messages.first() {
                delivery.last_queued = first.id.saturating_sub(1);
            }
            self.queue(&subscriber, &mut delivery, &resume, replace, &room);
            if resume.messages.is_empty() && !resume.missed {
                // Nothing to send yet: a comment, so that the client sees the stream is open
                // (browsers and curl show nothing of a response before its first body bytes).
                subscriber.outlet.offer_comment(b": connected\n\n");
            }
            lock(&self.subscribers).push(subscriber.clone());
        }
        self.metrics.subscribed();
        let ended = loop {
            match events.serve() {
                Ok(Woken::Full) => self.catch_up(&subscriber),
                Err(ended) => break ended,
            }
        };
        lock(&self.subscribers).retain(|other| !Arc::ptr_eq(other, &subscriber));
        self.metrics.unsubscribed();
        Err(ended)
    }

    /// The id a page comes back with, if this instance has not read it yet but it exists (see
    /// `redis`); never without Redis.
    fn ahead_of_room(&self, last_event_id: Option<&str>) -> Option<u64> {
        #[cfg(feature = "redis")]
        if self.redis.is_some() {
            return self.ahead_of_room_in_redis(last_event_id?);
        }
        let _ = last_event_id;
        None
    }

    /// Queues the notice (if `resume.missed`) and the messages of `resume` that are newer than
    /// what the subscriber has, until its outlet is full. Holds the room's lock (`_room`), so no
    /// message is published meanwhile.
    fn queue(
        &self,
        subscriber: &Subscriber,
        delivery: &mut Delivery,
        resume: &Resume,
        replace: bool,
        _room: &Room,
    ) {
        if resume.missed {
            self.metrics.missed_notice();
            let notice = Event::new().data(views::chat_missed().into_string());
            subscriber.outlet.offer(&encode(&notice));
        }
        let mut reset = replace;
        let after = delivery.last_queued;
        // Rendered now, for this page: a message from before today is shown with its date.
        let now = UtcTime::now();
        for message in resume.messages.iter().filter(|m| m.id > after) {
            let retry = (!delivery.retry_sent).then_some(self.retry);
            let event = message_event(message, reset, retry, &now);
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
    fn catch_up(&self, subscriber: &Subscriber) {
        let room = lock(&self.room);
        let mut delivery = lock(&subscriber.state);
        if !delivery.lagging {
            return;
        }
        delivery.lagging = false;
        let resume = room.since(delivery.last_queued);
        self.queue(subscriber, &mut delivery, &resume, resume.missed, &room);
    }

    /// Writes the journal to disk, when the server stops.
    pub fn sync(&self) {
        if let Err(error) = lock(&self.room).sync() {
            self.log.line(format_args!("store: {error}"));
        }
    }

    pub fn held(&self) -> usize {
        lock(&self.room).held()
    }

    /// The messages for the image that replaces the process (see [`Room::carry`]).
    pub fn carry(&self) -> super::Carried {
        lock(&self.room).carry()
    }
}

/// The event for one message: its id, and its fragment as data (inside the list reset when the
/// page's list should be replaced), its time shown as it reads on the day of `now`.
fn message_event(message: &Message, reset: bool, retry: Option<Duration>, now: &UtcTime) -> Event {
    let published = UtcTime::of_unix_ms(message.at_ms);
    let mut html = views::chat_message(message.id, &message.name, &message.text, &published, now);
    if reset {
        html = views::chat_reset(html);
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

/// A fan-out thread: each message, encoded once, offered to every subscriber of its `share`.
fn fan_out(
    messages: &Receiver<Arc<Message>>,
    subscribers: &Mutex<Vec<Arc<Subscriber>>>,
    share: usize,
    retry: Duration,
) {
    for message in messages {
        // Sent as it is published, so "today" is now: every page shows the same fragment.
        let now = UtcTime::now();
        let encoded = encode(&message_event(&message, false, None, &now));
        let mine: Vec<_> = lock(subscribers)
            .iter()
            .filter(|subscriber| subscriber.share == share)
            .cloned()
            .collect();
        for subscriber in mine {
            let mut delivery = lock(&subscriber.state);
            if delivery.lagging || message.id <= delivery.last_queued {
                continue;
            }
            let offered = if delivery.retry_sent {
                subscriber.outlet.offer(&encoded)
            } else {
                subscriber
                    .outlet
                    .offer(&encode(&message_event(&message, false, Some(retry), &now)))
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
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 2026-12-02 14:03:07 UTC.
    const AFTERNOON_MS: u64 = 1_796_220_187_000;

    fn event_data(at_ms: u64, now_ms: u64) -> String {
        let message = Message {
            id: 5,
            name: "ada".into(),
            text: "hi".into(),
            at_ms,
        };
        let event = message_event(&message, false, None, &UtcTime::of_unix_ms(now_ms));
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
