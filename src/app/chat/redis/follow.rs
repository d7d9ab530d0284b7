//! The follower: one thread per instance that reads every feed's stream and hands each new
//! message to the local fan-out.
//!
//! The feeds are the names in the set `sse-htmx:feeds` (each publish adds its feed's name), read
//! again before every `XREAD`, and the feeds this instance has; at most `--max-feeds` are
//! followed. It starts by loading each stream's last entries (what `--history` holds), then
//! blocks in one `XREAD` on all the streams, each from the last id it read; a feed named in the
//! set later has its history loaded the same way before the next `XREAD`. When Redis goes away it reconnects
//! with back-off (0.1 s doubling to 2 s) and reads on from those ids, so nothing added meanwhile
//! through another instance is lost, unless the stream's cap dropped it first (more than
//! `--history` messages during the outage) or Redis lost its data: then the last id read is
//! no longer in the stream, and the feed is told to skip to just before the oldest entry there
//! (its pages get the missed notice).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::Duration;

use ::redis::Connection;
use ::redis::streams::{StreamId, StreamRangeReply, StreamReadReply};

use super::{FEEDS, Redis, entry, key};
use crate::app::chat::feeds::valid_name;
use crate::app::chat::message::Message;
use crate::log::Log;

/// How long one `XREAD` blocks: also how soon the thread notices it should stop.
const BLOCK: Duration = Duration::from_secs(1);
/// Entries one `XREAD` returns at most, over all its streams; more are read by the next. Its
/// `COUNT` is per stream, so it is this shared out: with 64 feeds each far behind, a `COUNT` of
/// 500 would have one reply hold 32,000 messages.
const BATCH: usize = 500;
const FIRST_BACK_OFF: Duration = Duration::from_millis(100);
const MAX_BACK_OFF: Duration = Duration::from_secs(2);

/// Where the follower hands what it reads, by feed name.
pub trait Sink: Send + Sync {
    /// The feeds that exist here: followed from the start.
    fn names(&self) -> Vec<String>;
    /// At most this many feeds are followed (`--max-feeds`).
    fn max(&self) -> usize;
    /// The next message of the feed; `false` if the feed does not exist here and cannot be
    /// created (`--max-feeds` feeds exist).
    fn receive(&self, feed: &str, message: Message) -> bool;
    /// Messages of the feed up to the SSE id `before` were dropped before they were read.
    fn skip_to(&self, feed: &str, before: u64);
}

/// One feed as the follower knows it.
struct Followed {
    name: String,
    key: String,
    /// The stream id of the last entry read; `None` until the stream's history is loaded.
    last: Option<String>,
    /// Its messages had no feed to go to here: logged once.
    refused: bool,
}

impl Followed {
    fn new(name: &str) -> Followed {
        Followed {
            name: name.to_owned(),
            key: key(name),
            last: None,
            refused: false,
        }
    }
}

struct Follower {
    redis: Arc<Redis>,
    feeds: Vec<Followed>,
    history: usize,
    sink: Arc<dyn Sink>,
    log: Log,
    /// This outage is logged already.
    down_logged: bool,
}

/// Loads the feeds' histories now if Redis answers (so a page that opens right after the
/// start sees them), then follows the streams on a thread until [`Redis::stop`].
pub fn follow(
    redis: Arc<Redis>,
    history: usize,
    sink: Arc<dyn Sink>,
    log: Log,
) -> std::io::Result<()> {
    let mut follower = Follower {
        redis,
        feeds: sink
            .names()
            .iter()
            .map(|name| Followed::new(name))
            .collect(),
        history,
        sink,
        log,
        down_logged: false,
    };
    let first = follower.connect();
    crate::thread::spawn(
        "redis-follower",
        None,
        Box::new(move || follower.run(first)),
    )?;
    Ok(())
}

impl Follower {
    fn run(&mut self, mut connection: Option<Connection>) {
        let mut back_off = FIRST_BACK_OFF;
        while !self.redis.stop.load(Ordering::SeqCst) {
            let Some(mut open) = connection.take() else {
                self.pause(back_off);
                back_off = (back_off * 2).min(MAX_BACK_OFF);
                connection = self.connect();
                continue;
            };
            back_off = FIRST_BACK_OFF;
            match self.read(&mut open) {
                Ok(()) => connection = Some(open),
                Err(error) => self.lose(&format!("redis at {}: {error}", self.redis.shown)),
            }
        }
    }

    /// A connection with every feed's history loaded, or `None` (logged) if Redis does not
    /// answer.
    fn connect(&mut self) -> Option<Connection> {
        let result = self.redis.connect(BLOCK * 3).and_then(|mut connection| {
            self.load(&mut connection)
                .map_err(|error| format!("redis at {}: {error}", self.redis.shown))?;
            Ok(connection)
        });
        match result {
            Ok(connection) => {
                self.redis.reachable.store(true, Ordering::SeqCst);
                self.redis.epoch.fetch_add(1, Ordering::SeqCst);
                self.down_logged = false;
                self.log.line(format_args!(
                    "redis: following {} stream(s) at {}",
                    self.feeds.len(),
                    self.redis.shown
                ));
                Some(connection)
            }
            Err(why) => {
                self.lose(&why);
                None
            }
        }
    }

    /// Marks Redis unreachable; the first failure of an outage is logged and counted.
    fn lose(&mut self, why: &str) {
        self.redis.reachable.store(false, Ordering::SeqCst);
        if !self.down_logged {
            self.down_logged = true;
            self.redis.metrics.connection_lost();
            self.log.line(format_args!(
                "{why}; publishes get 503, streams keep what they hold, reconnecting"
            ));
        }
    }

    /// Loads the last `history` entries of each stream not loaded yet, oldest first; for one
    /// loaded before, checks that the stream still holds its last id.
    fn load(&mut self, connection: &mut Connection) -> ::redis::RedisResult<()> {
        self.discover(connection)?;
        for at in 0..self.feeds.len() {
            if let Some(last) = self.feeds[at].last.clone() {
                self.check_gap(connection, at, &last)?;
                continue;
            }
            self.load_history(connection, at)?;
        }
        Ok(())
    }

    /// Adds the feeds named in the set that are not followed yet (their history is loaded
    /// next), up to `--max-feeds` in all; a name that is no feed's is left out.
    fn discover(&mut self, connection: &mut Connection) -> ::redis::RedisResult<()> {
        let names: Vec<String> = ::redis::cmd("SMEMBERS").arg(FEEDS).query(connection)?;
        let max = self.sink.max();
        for name in names {
            if self.feeds.len() >= max {
                break;
            }
            if valid_name(&name) && !self.feeds.iter().any(|feed| feed.name == name) {
                self.feeds.push(Followed::new(&name));
            }
        }
        Ok(())
    }

    /// Loads the history of each feed added since the last `XREAD`.
    fn load_new(&mut self, connection: &mut Connection) -> ::redis::RedisResult<()> {
        self.discover(connection)?;
        for at in 0..self.feeds.len() {
            if self.feeds[at].last.is_none() {
                self.load_history(connection, at)?;
            }
        }
        Ok(())
    }

    /// The last `history` entries of the stream of feed `at`, oldest first, handed on.
    fn load_history(&mut self, connection: &mut Connection, at: usize) -> ::redis::RedisResult<()> {
        let reply: StreamRangeReply = ::redis::cmd("XREVRANGE")
            .arg(&self.feeds[at].key)
            .arg("+")
            .arg("-")
            .arg("COUNT")
            .arg(self.history)
            .query(connection)?;
        let mut entries = reply.ids;
        entries.reverse();
        self.feeds[at].last = Some("0-0".into());
        self.hand(at, &entries);
        Ok(())
    }

    /// After a reconnection: if the stream no longer holds `last` (it was trimmed past it, or
    /// Redis lost its data), entries between it and the oldest one held may never be read; the
    /// feed skips to just before that one.
    fn check_gap(
        &mut self,
        connection: &mut Connection,
        at: usize,
        last: &str,
    ) -> ::redis::RedisResult<()> {
        let key = &self.feeds[at].key;
        if last == "0-0" {
            return Ok(());
        }
        let still: StreamRangeReply = ::redis::cmd("XRANGE")
            .arg(key)
            .arg(last)
            .arg(last)
            .query(connection)?;
        if !still.ids.is_empty() {
            return Ok(());
        }
        let oldest: StreamRangeReply = ::redis::cmd("XRANGE")
            .arg(key)
            .arg("-")
            .arg("+")
            .arg("COUNT")
            .arg(1)
            .query(connection)?;
        let Some(before) = oldest
            .ids
            .first()
            .and_then(|entry| entry::sse_id(&entry.id))
            .map(|id| id.saturating_sub(1))
        else {
            // Empty: what comes next is all there is; nothing to skip over yet.
            return Ok(());
        };
        self.log.line(format_args!(
            "redis: {key} no longer holds {last}, the last entry read: messages up to {before} \
             are lost to this instance (trimmed while it was away, or Redis lost its data)"
        ));
        self.redis.metrics.gap();
        self.sink.skip_to(&self.feeds[at].name, before);
        Ok(())
    }

    /// One `XREAD` on every stream from its last id: returns after `BLOCK` with nothing, or
    /// with what was added.
    fn read(&mut self, connection: &mut Connection) -> ::redis::RedisResult<()> {
        self.load_new(connection)?;
        let mut command = ::redis::cmd("XREAD");
        command
            .arg("COUNT")
            .arg((BATCH / self.feeds.len().max(1)).max(1))
            .arg("BLOCK")
            .arg(BLOCK.as_millis() as u64)
            .arg("STREAMS");
        for feed in &self.feeds {
            command.arg(&feed.key);
        }
        for feed in &self.feeds {
            command.arg(feed.last.as_deref().unwrap_or("$"));
        }
        let reply: Option<StreamReadReply> = command.query(connection)?;
        for stream in reply.map(|reply| reply.keys).unwrap_or_default() {
            if let Some(at) = self.feeds.iter().position(|feed| feed.key == stream.key) {
                self.hand(at, &stream.ids);
            }
        }
        Ok(())
    }

    /// Hands the entries of feed `at` to the fan-out, in order, and moves its last id on.
    fn hand(&mut self, at: usize, entries: &[StreamId]) {
        for stream_entry in entries {
            self.feeds[at].last = Some(stream_entry.id.clone());
            match entry::message(&stream_entry.id, &stream_entry.map) {
                Some(message) => {
                    let feed = &mut self.feeds[at];
                    if !self.sink.receive(&feed.name, message) && !feed.refused {
                        feed.refused = true;
                        self.log.line(format_args!(
                            "redis: {} not followed here: --max-feeds feeds exist",
                            feed.key
                        ));
                    }
                }
                None => {
                    self.redis.metrics.entry_skipped();
                    self.log.line(format_args!(
                        "redis: entry {} of {} skipped: not a message of this server",
                        stream_entry.id, self.feeds[at].key
                    ));
                }
            }
        }
    }

    /// Sleeps `how_long` in short steps, so that a stop is noticed.
    fn pause(&self, how_long: Duration) {
        let step = Duration::from_millis(50);
        let mut left = how_long;
        while !left.is_zero() && !self.redis.stop.load(Ordering::SeqCst) {
            thread::sleep(step.min(left));
            left = left.saturating_sub(step);
        }
    }
}
