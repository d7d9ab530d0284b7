//! Feeds shared through Redis (`--redis URL`), so that several instances behind one load
//! balancer serve the same chat and feeds. Each feed is a stream, `sse-htmx:feed:NAME`.
//!
//! ```text
//! POST on any instance   SADD sse-htmx:feeds NAME
//!                        XADD sse-htmx:feed:NAME MAXLEN N * name .. text .. at ..  -> 201 ID
//! every instance         one follower thread: XREAD BLOCK on every feed's stream
//!                          -> Sink::receive -> the feed's history -> the local fan-out
//! ```
//!
//! A publish is answered `201` once Redis has the entry (in its memory: surviving a crash of
//! Redis itself is its persistence's job, e.g. `appendonly yes`). The instance does not deliver
//! its own publishes directly: they come back through the follower like everyone else's, so
//! every page on every instance sees the messages in the stream's order, which is the id order
//! (see `entry` for how a stream id becomes an SSE id). The history is filled from the stream,
//! so `Last-Event-ID` means the same on every instance.
//!
//! When Redis cannot be reached, a publish is `503` with `Retry-After`; open streams stay open
//! with what is held; the follower reconnects with back-off and reads on from the last id it
//! saw, so what other instances published meanwhile still arrives. `/healthz` and `/metrics`
//! say whether Redis is reachable.

pub mod entry;
mod feeds;
mod follow;
mod metrics;

use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use ::redis::{Client, Connection, RedisError};

use super::lock;
use super::message::{self, Draft, Message};

pub use follow::{Sink, follow};
use metrics::RedisMetrics;

/// The longest a connection attempt waits.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// The longest a publish waits for each of Redis's two answers (`SADD`, `XADD`: the client
/// reads both even after one timed out), so a publish waits at most 3 s with a new connection.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(1);
/// After a failed connection, publishes fail at once for this long instead of each waiting
/// for a connection that is likely to fail too; also their `Retry-After`.
const RETRY_AFTER: Duration = Duration::from_secs(2);

/// The set of every feed's name: each publish adds its feed's, and followers read it to find
/// feeds created through other instances.
pub const FEEDS: &str = "sse-htmx:feeds";

/// The stream of the feed `name`.
pub fn key(name: &str) -> String {
    format!("sse-htmx:feed:{name}")
}

/// The Redis every instance shares: where publishes go, and whether it is reachable.
pub struct Redis {
    client: Client,
    /// The URL as given, without a password, for log lines and `/healthz`.
    pub shown: String,
    /// Each stream keeps this many entries (`--history`).
    cap: usize,
    publisher: Mutex<Publisher>,
    /// Whether the follower is connected: what `/healthz` and `redis_up` say.
    reachable: AtomicBool,
    /// Counts the follower's connections: a publishers' connection made before the follower's
    /// last reconnect may be to a Redis that has since restarted, and is replaced unused.
    epoch: AtomicU64,
    stop: AtomicBool,
    metrics: RedisMetrics,
}

/// The connection publishes go through, one at a time (they are rate-limited and short).
#[derive(Default)]
struct Publisher {
    connection: Option<Connection>,
    /// The follower's epoch when `connection` was made.
    epoch: u64,
    /// When and why the last connection attempt, or the last command, failed.
    failed: Option<(Instant, String)>,
}

impl Publisher {
    /// After a command failed: a connection that failed mid-command is in an unknown state, so
    /// a new one is made next. If Redis did not answer in time (it stalls), not before
    /// [`RETRY_AFTER`] (or the follower's reconnection), so that the publishes queued behind
    /// this one are refused at once rather than each after a timeout of its own. Any other
    /// failure (a connection dropped, an error reply) is no sign of that.
    fn command_failed(&mut self, why: &str, timed_out: bool) {
        self.connection = None;
        if timed_out {
            self.failed = Some((Instant::now(), why.to_owned()));
        }
    }
}

/// Why a publish did not reach Redis: answered `503` with `Retry-After`.
#[derive(Debug)]
pub struct Unavailable {
    pub why: String,
    pub retry_after: Duration,
}

impl Redis {
    /// Checks the URL; connects later. A `rediss://` URL is refused: this build has no TLS.
    pub fn open(url: &str, cap: usize) -> Result<Redis, String> {
        let shown = without_password(url);
        if url.starts_with("rediss://") {
            return Err(format!(
                "{shown}: this build has no TLS for Redis; use redis:// on a private network or \
                 through a TLS tunnel"
            ));
        }
        let client = Client::open(url).map_err(|error| format!("{shown}: {error}"))?;
        Ok(Redis {
            client,
            shown,
            cap,
            publisher: Mutex::default(),
            reachable: AtomicBool::new(false),
            epoch: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            metrics: RedisMetrics::default(),
        })
    }

    /// Adds `draft` to the stream of the feed `name`; the message, with its id, once Redis has
    /// it. It reaches this instance's pages through the follower, like everyone else's.
    pub fn append(
        &self,
        name: &str,
        draft: &Draft,
        now: SystemTime,
    ) -> Result<Message, Unavailable> {
        let at_ms = message::unix_ms(now);
        let mut publisher = lock(&self.publisher);
        let mut timed_out = false;
        let result = self.connected(&mut publisher).and_then(|connection| {
            // One round trip: the feed's name in the set (so other instances follow it), then
            // the entry.
            ::redis::pipe()
                .cmd("SADD")
                .arg(FEEDS)
                .arg(name)
                .ignore()
                .cmd("XADD")
                .arg(key(name))
                .arg("MAXLEN")
                .arg(self.cap)
                .arg("*")
                .arg(&entry::fields(draft, at_ms)[..])
                .query::<(String,)>(connection)
                .map(|(stream_id,)| stream_id)
                .map_err(|error| {
                    timed_out = error.is_timeout();
                    format!("redis at {}: {error}", self.shown)
                })
        });
        let stream_id = match result {
            Ok(stream_id) => stream_id,
            Err(why) => {
                publisher.command_failed(&why, timed_out);
                self.metrics.publish_failed();
                return Err(Unavailable {
                    why,
                    retry_after: RETRY_AFTER,
                });
            }
        };
        let Some(id) = entry::sse_id(&stream_id) else {
            // The thousandth entry in one millisecond (see `entry`): readers skip it; taking it
            // back makes the 503 true.
            if let Some(connection) = publisher.connection.as_mut() {
                let _ = ::redis::cmd("XDEL")
                    .arg(key(name))
                    .arg(&stream_id)
                    .query::<i64>(connection);
            }
            self.metrics.publish_failed();
            return Err(Unavailable {
                why: "too many messages in one millisecond".into(),
                retry_after: Duration::from_secs(1),
            });
        };
        Ok(Message {
            id,
            name: draft.name.clone(),
            text: draft.text.clone(),
            at_ms,
        })
    }

    /// Whether the stream of the feed `name` has the entry whose SSE id is `id`; `false` when
    /// Redis does not answer.
    pub fn holds(&self, name: &str, id: u64) -> bool {
        let stream_id = entry::stream_id(id);
        let mut publisher = lock(&self.publisher);
        let Ok(connection) = self.connected(&mut publisher) else {
            return false;
        };
        let found = ::redis::cmd("XRANGE")
            .arg(key(name))
            .arg(&stream_id)
            .arg(&stream_id)
            .query::<Vec<::redis::Value>>(connection);
        match found {
            Ok(entries) => !entries.is_empty(),
            Err(error) => {
                let why = format!("redis at {}: {error}", self.shown);
                publisher.command_failed(&why, error.is_timeout());
                false
            }
        }
    }

    /// The publishers' connection, made now if there is none, unless the last attempt failed
    /// less than [`RETRY_AFTER`] ago.
    fn connected<'a>(&self, publisher: &'a mut Publisher) -> Result<&'a mut Connection, String> {
        let epoch = self.epoch.load(Ordering::SeqCst);
        if publisher.epoch != epoch {
            // The follower has reconnected since: a connection made before may be to a Redis
            // that has restarted (its next command would fail), and a failure before is past.
            publisher.connection = None;
            publisher.failed = None;
            publisher.epoch = epoch;
        }
        if publisher.connection.is_none() {
            if let Some((at, why)) = &publisher.failed
                && at.elapsed() < RETRY_AFTER
            {
                return Err(why.clone());
            }
            match self.connect(PUBLISH_TIMEOUT) {
                Ok(connection) => {
                    publisher.failed = None;
                    publisher.connection = Some(connection);
                }
                Err(why) => {
                    publisher.failed = Some((Instant::now(), why.clone()));
                    return Err(why);
                }
            }
        }
        publisher
            .connection
            .as_mut()
            .ok_or_else(|| "no connection".to_owned())
    }

    /// A new connection whose commands wait at most `timeout` for an answer.
    fn connect(&self, timeout: Duration) -> Result<Connection, String> {
        let connection = self
            .client
            .get_connection_with_timeout(CONNECT_TIMEOUT)
            .map_err(|error| self.unreachable(&error))?;
        connection
            .set_read_timeout(Some(timeout))
            .and_then(|()| connection.set_write_timeout(Some(timeout)))
            .map_err(|error| self.unreachable(&error))?;
        Ok(connection)
    }

    fn unreachable(&self, error: &RedisError) -> String {
        format!("redis at {} is unreachable: {error}", self.shown)
    }

    /// Whether the follower is connected to Redis now.
    pub fn reachable(&self) -> bool {
        self.reachable.load(Ordering::SeqCst)
    }

    /// Ends the follower at its next wake-up (within a second).
    pub fn stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
    }

    /// The line `/healthz` adds.
    pub fn health(&self) -> String {
        let state = if self.reachable() {
            "reachable"
        } else {
            "unreachable"
        };
        format!("redis: {state}\n")
    }

    /// The families for `/metrics`.
    pub fn render_metrics(&self) -> String {
        self.metrics.render(self.reachable())
    }
}

/// `redis://user:secret@host/0` shown as `redis://user:***@host/0`.
fn without_password(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let Some((credentials, host)) = rest.rsplit_once('@') else {
        return url.to_owned();
    };
    match credentials.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}"),
        None => format!("{scheme}://***@{host}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_is_never_shown() {
        assert_eq!(
            without_password("redis://u:secret@host:6379/0"),
            "redis://u:***@host:6379/0"
        );
        assert_eq!(without_password("redis://:secret@h/1"), "redis://:***@h/1");
        assert_eq!(without_password("redis://secret@h"), "redis://***@h");
        assert_eq!(without_password("redis://h:6379/2"), "redis://h:6379/2");
    }

    #[test]
    fn a_tls_url_is_refused_in_this_build_and_a_bad_one_named() {
        let refused = Redis::open("rediss://h:6380/0", 10).err().unwrap();
        assert!(refused.contains("no TLS"), "{refused}");
        assert!(Redis::open("http://h/", 10).is_err());
        assert!(Redis::open("redis://127.0.0.1:1/0", 10).is_ok());
    }

    #[test]
    fn a_feed_is_one_stream_key() {
        assert_eq!(key("chat"), "sse-htmx:feed:chat");
    }
}
