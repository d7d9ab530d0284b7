//! Publishing to a feed: from a request (`POST /feeds/NAME`, `/chat/messages`) or from code.
//!
//! A message is journaled and put in its feed's history under the feed's room lock, and queued
//! for the fan-out threads in the same step; the queue is handed over once the reply is written
//! (for a request) or at once (from code), so a `POST` is answered before any delivery starts.

use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};

use super::feeds::CHAT;
use super::journal::Compacted;
use super::live::Feeds;
use super::message::{self, Draft, Message, Refusal, Submission};
use super::{form, lock};
use crate::app::views;
use crate::log::Log;
use crate::tiny::{Reply, Request, shown_peer};

/// Messages the fan-out threads may be behind before a publisher from code waits (see
/// [`Feeds::publish`]) and a request to publish is refused with `503`: at most about this many
/// messages of up to `--max-message` characters wait in their queues, which a message the
/// history has dropped is still held by.
pub const MAX_BACKLOG: usize = 1024;

/// Why a publish did not happen.
#[derive(Debug)]
pub enum Failure {
    /// The sender's fault or the server's bounds: answer with the refusal's status.
    Refused(Refusal),
    /// The store could not take it (answer 500); its id is not used again.
    Store(std::io::Error),
    /// Redis did not take it (answer 503 with `Retry-After`).
    #[cfg(feature = "redis")]
    Unavailable(super::redis::Unavailable),
}

impl From<Refusal> for Failure {
    fn from(refusal: Refusal) -> Failure {
        Failure::Refused(refusal)
    }
}

impl Feeds {
    /// Publishes `draft` to the feed `name` (a valid name, see `feeds::valid_name`), creating
    /// the feed if this is its first message, and hands it to the subscribers. For code (a
    /// program's lines, `--exec`); a request goes through [`Feeds::publish_request`], which
    /// also applies the rate limit.
    ///
    /// Code has no rate limit; it is paced instead: while the fan-out threads are
    /// [`MAX_BACKLOG`] messages behind, this waits for them, so a publisher faster than the
    /// delivery is held up rather than queued without bound. Its messages are journaled like
    /// any others; the journal's compaction keeps a fast one from filling the disk.
    pub fn publish(&self, name: &str, draft: Draft) -> Result<Arc<Message>, Failure> {
        debug_assert!(super::feeds::valid_name(name), "{name:?}");
        self.wait_for_the_fan_out();
        let published = self.append(name, draft);
        self.hand_off();
        published
    }

    /// Waits while the fan-out threads are [`MAX_BACKLOG`] messages behind.
    pub(super) fn wait_for_the_fan_out(&self) {
        while self.behind() {
            // Rarely here, and only while the fan-out threads work through the backlog.
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    fn behind(&self) -> bool {
        // Each message is queued once for every fan-out thread, and counted so.
        self.backlog.load(Ordering::Relaxed) >= MAX_BACKLOG * self.fan_out.len()
    }

    /// `POST /feeds/NAME` (and `/chat/messages` for the chat). A published message goes out to
    /// the subscribers once the reply is written.
    pub fn publish_request(self: &Arc<Feeds>, name: &str, request: &Request) -> Reply {
        // Only the chat's page has a form; an htmx request gets it back, fresh.
        let form_reply = name == CHAT && request.header("HX-Request") == Some("true");
        let submission = form::parse(
            request.header("Content-Type"),
            request.query.as_deref(),
            &request.body,
        );
        // The name the form is given back with, if the request could be read.
        let sender = match &submission {
            Ok(submission) => submission.name.clone().unwrap_or_default(),
            Err(_) => String::new(),
        };
        match self.try_publish(name, submission, request) {
            Ok(message) => {
                let peer = shown_peer(request.peer);
                self.log.line(format_args!(
                    "feed {name} message {} from {peer}, {} bytes",
                    message.id,
                    message.size()
                ));
                let reply = if form_reply {
                    Reply::html(201, views::chat_form(&sender, None))
                } else {
                    Reply::text(201, format!("{}\n", message.id))
                };
                let feeds = self.clone();
                reply.then(move || feeds.hand_off())
            }
            Err(Failure::Refused(refusal)) => {
                self.count_refusal(refusal.label());
                let why = refusal.to_string();
                let reply = if form_reply {
                    Reply::html(refusal.status(), views::chat_form(&sender, Some(&why)))
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
                    .line(format_args!("feed {name} message not stored: {error}"));
                Reply::text(500, "the message could not be stored\n")
            }
            #[cfg(feature = "redis")]
            Err(Failure::Unavailable(unavailable)) => {
                self.log.line(format_args!(
                    "feed {name} message not published: {}",
                    unavailable.why
                ));
                let why = format!("the message was not published: {}", unavailable.why);
                let reply = if form_reply {
                    Reply::html(503, views::chat_form(&sender, Some(&why)))
                } else {
                    Reply::text(503, format!("{why}\n"))
                };
                let secs = unavailable.retry_after.as_secs().max(1);
                reply.with_header("Retry-After", secs.to_string())
            }
        }
    }

    fn try_publish(
        &self,
        name: &str,
        submission: Result<Submission, Refusal>,
        request: &Request,
    ) -> Result<Arc<Message>, Failure> {
        let submission = submission?;
        let draft = message::validate(&submission, &self.limits)?;
        // Before the rate limit, so that a refusal for the server's sake takes none of the
        // client's rate.
        if self.behind() {
            return Err(Refusal::Busy.into());
        }
        lock(&self.limiter)
            .check(request.peer.ip(), Instant::now())
            .map_err(|retry_after| Refusal::RateLimited { retry_after })?;
        self.append(name, draft)
    }

    /// Creates the feed if needed, and publishes to it (in the journal too, if there is one);
    /// the message waits in `unsent` for [`Feeds::hand_off`]. With `--redis` it goes to the
    /// feed's stream instead (capped at `--history`), and comes back through the follower (see
    /// `redis`).
    fn append(&self, name: &str, draft: Draft) -> Result<Arc<Message>, Failure> {
        let too_many = Refusal::TooManyFeeds {
            max_feeds: self.registry.max(),
        };
        #[cfg(feature = "redis")]
        if let Some(redis) = &self.redis {
            // The feed is made once Redis has the message, so that one refused with 503 leaves
            // no empty feed behind.
            if !self.registry.may_create(name) {
                return Err(too_many.into());
            }
            // Not under the room's lock: Redis may take seconds to fail, and streams that open
            // meanwhile read the room.
            let message = redis
                .append(name, &draft, SystemTime::now())
                .map_err(Failure::Unavailable)?;
            if let Some(feed) = self.registry.create(name) {
                feed.metrics.published();
            }
            return Ok(Arc::new(message));
        }
        let feed = self.registry.create(name).ok_or(too_many)?;
        let mut room = lock(&feed.room);
        // Under the room's lock: the feed's records are in the journal in the order of its ids.
        let store = |message: &Message| match &self.journal {
            Some(journal) => lock(journal).append(name, message),
            None => Ok(()),
        };
        let message = room
            .publish(draft, SystemTime::now(), store)
            .map_err(Failure::Store)?;
        feed.metrics.published();
        // Queued under the room's lock, so the queue holds each feed's messages in order.
        lock(&self.unsent).push_back((feed.clone(), message.clone()));
        drop(room);
        self.compact_journal();
        Ok(message)
    }

    /// Compacts the journal if it is due (see `journal`): on a thread of its own, since the
    /// publishing thread may be the request loop, and a compaction reads the whole file, writes
    /// what it keeps and waits for the disk. Publishes go on meanwhile; they wait only while
    /// the new file takes the old one's place.
    fn compact_journal(&self) {
        let Some(journal) = &self.journal else { return };
        let (compaction, path) = {
            let mut journal = lock(journal);
            let Some(compaction) = journal.begin_compaction() else {
                return;
            };
            (compaction, journal.path().to_owned())
        };
        let log = self.log;
        let compact = {
            let (journal, path) = (journal.clone(), path.clone());
            move || {
                // A panic would leave the journal compacting for good, growing without bound.
                let write = std::panic::AssertUnwindSafe(|| compaction.write());
                let written = std::panic::catch_unwind(write)
                    .unwrap_or_else(|_| Err(io::Error::other("the compaction panicked")));
                let compacted = lock(&journal).finish_compaction(written);
                report_compaction(&path, compacted, log);
            }
        };
        let spawned = crate::thread::spawn("journal", None, Box::new(compact));
        if let Err(error) = spawned {
            let compacted = lock(journal).finish_compaction(Err(error));
            report_compaction(&path, compacted, log);
        }
    }

    /// Hands every message not yet handed over to every fan-out thread, oldest first. Each
    /// call takes all there is, so a message whose hand-off was lost (its reply's thread
    /// panicked) goes with the next.
    pub(super) fn hand_off(&self) {
        let mut unsent = lock(&self.unsent);
        while let Some((feed, message)) = unsent.pop_front() {
            for sender in &self.fan_out {
                // Counted before it is sent, so the thread's count down never comes first.
                self.backlog.fetch_add(1, Ordering::Relaxed);
                if sender.send((feed.clone(), message.clone())).is_err() {
                    self.backlog.fetch_sub(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// A publish refused for its token: it counts against its client's rate as a message does,
    /// so that guessing the token goes no faster than `--publish-limit`. `None` within the rate
    /// (the caller answers `401`); past it, the `429` a message would get, counted as
    /// unauthorized all the same, so that the count shows every guess.
    pub fn token_refused(&self, request: &Request) -> Option<Reply> {
        let peer = request.peer.ip();
        let retry_after = lock(&self.limiter).check(peer, Instant::now()).err()?;
        let refusal = Refusal::RateLimited { retry_after };
        self.count_refusal("unauthorized");
        let secs = refusal.retry_after_secs()?.to_string();
        Some(Reply::text(429, format!("{refusal}\n")).with_header("Retry-After", secs))
    }

    /// Counts a refusal by its label (also for refusals made before the request reached
    /// [`Feeds::publish_request`], such as a body too large to read).
    pub fn count_refusal(&self, label: &str) {
        self.refusals.count(label);
    }
}

/// Says in the log how a compaction of the journal at `path` went, and puts a done one on disk.
fn report_compaction(path: &Path, compacted: io::Result<Compacted>, log: Log) {
    let path = path.display();
    match compacted {
        Ok(done) => {
            done.settle();
            let Compacted { before, after, .. } = done;
            log.line(format_args!(
                "journal {path} compacted from {before} to {after} bytes"
            ));
        }
        Err(error) => log.line(format_args!(
            "journal {path} not compacted, kept as it was: {error}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::app::chat::Settings;
    use crate::app::chat::history::Bounds;
    use crate::app::chat::message::Limits;
    use crate::log::Log;
    use std::time::Duration;

    fn draft(text: &str) -> Draft {
        Draft {
            name: "cron".into(),
            text: text.into(),
        }
    }

    fn settings(max_feeds: usize) -> Settings {
        Settings {
            max_feeds,
            bounds: Bounds::default(),
            limits: Limits::default(),
            publish_limit: 1,
            retry: Duration::from_secs(3),
            log: Log { quiet: true },
        }
    }

    #[test]
    fn code_publishes_to_a_feed_it_creates_within_the_bound() {
        let feeds = Feeds::start(Vec::new(), None, settings(1)).unwrap();
        let first = feeds.publish("jobs", draft("started")).unwrap();
        let second = feeds.publish("jobs", draft("done")).unwrap();
        assert_eq!(second.id, first.id + 1, "no rate limit for code");
        assert_eq!(feeds.list(), [("jobs".into(), 2)]);
        assert!(matches!(
            feeds.publish("other", draft("x")),
            Err(Failure::Refused(Refusal::TooManyFeeds { max_feeds: 1 }))
        ));
    }

    #[test]
    fn a_request_is_refused_with_503_while_the_fan_out_is_behind_and_takes_no_rate() {
        let feeds = Arc::new(Feeds::start(Vec::new(), None, settings(4)).unwrap());
        let post = || {
            let mut request =
                Request::fake("POST", "/feeds/temp", &[("Content-Type", "text/plain")]);
            request.body = b"21.5".to_vec();
            feeds.publish_request("temp", &request)
        };
        // As if the fan-out threads had that many messages still to send: none is sent here.
        let threads = feeds.fan_out.len();
        feeds
            .backlog
            .store(MAX_BACKLOG * threads, Ordering::Relaxed);
        let refused = post();
        assert_eq!(refused.status, 503);
        assert_eq!(refused.header("Retry-After"), Some("1"));
        assert!(feeds.list().is_empty(), "nothing published, no feed made");
        feeds
            .backlog
            .store(MAX_BACKLOG * threads - 1, Ordering::Relaxed);
        // The publish limit (1 a second, bursts of 4) is untouched by the refusal.
        let statuses: Vec<u16> = (0..5).map(|_| post().status).collect();
        assert_eq!(statuses, [201, 201, 201, 201, 429]);
        assert_eq!(feeds.list(), [("temp".into(), 4)]);
    }
}
