//! The follower: one thread per instance that reads every feed's stream and hands each new
//! message to the local fan-out.
//!
//! It starts by loading each stream's last entries (what `--history` holds), then blocks in one
//! `XREAD` on all the streams, each from the last id it read. When Redis goes away it reconnects
//! with back-off (0.1 s doubling to 2 s) and reads on from those ids, so nothing added meanwhile
//! through another instance is lost, unless the stream's cap dropped it first (more than
//! `--history` messages during the outage).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread;
use std::time::Duration;

use ::redis::Connection;
use ::redis::streams::{StreamId, StreamRangeReply, StreamReadReply};

use super::{Redis, entry, key};
use crate::app::chat::message::Message;
use crate::log::Log;

/// How long one `XREAD` blocks: also how soon the thread notices it should stop.
const BLOCK: Duration = Duration::from_secs(1);
/// Entries one `XREAD` returns at most; more are read by the next.
const BATCH: usize = 500;
const FIRST_BACK_OFF: Duration = Duration::from_millis(100);
const MAX_BACK_OFF: Duration = Duration::from_secs(2);

/// What the follower hands each message to: the feed's name and the message.
pub type Deliver = Box<dyn Fn(&str, Message) + Send>;

/// One feed as the follower knows it.
struct Followed {
    name: String,
    key: String,
    /// The stream id of the last entry read; `None` until the stream's history is loaded.
    last: Option<String>,
}

struct Follower {
    redis: Arc<Redis>,
    feeds: Vec<Followed>,
    history: usize,
    deliver: Deliver,
    log: Log,
    /// This outage is logged already.
    down_logged: bool,
}

/// Loads the feeds' histories now if Redis answers (so a page that opens right after the
/// start sees them), then follows the streams on a thread until [`Redis::stop`].
pub fn follow(
    redis: Arc<Redis>,
    names: &[&str],
    history: usize,
    deliver: Deliver,
    log: Log,
) -> std::io::Result<()> {
    let mut follower = Follower {
        redis,
        feeds: names
            .iter()
            .map(|name| Followed {
                name: (*name).to_owned(),
                key: key(name),
                last: None,
            })
            .collect(),
        history,
        deliver,
        log,
        down_logged: false,
    };
    let first = follower.connect();
    thread::Builder::new()
        .name("redis-follower".into())
        .spawn(move || follower.run(first))?;
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

    /// Loads the last `history` entries of each stream not loaded yet, oldest first.
    fn load(&mut self, connection: &mut Connection) -> ::redis::RedisResult<()> {
        for at in 0..self.feeds.len() {
            if self.feeds[at].last.is_some() {
                continue;
            }
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
        }
        Ok(())
    }

    /// One `XREAD` on every stream from its last id: returns after `BLOCK` with nothing, or
    /// with what was added.
    fn read(&mut self, connection: &mut Connection) -> ::redis::RedisResult<()> {
        let mut command = ::redis::cmd("XREAD");
        command
            .arg("COUNT")
            .arg(BATCH)
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
                Some(message) => (self.deliver)(&self.feeds[at].name, message),
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
