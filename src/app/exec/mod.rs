//! Programs whose output is a feed (`--exec NAME=COMMAND`): each line a program writes to stdout
//! is a message in the feed `NAME`, each line on its stderr a line of the log.
//!
//! ```text
//! --exec 'load=while sleep 1; do cat /proc/loadavg; done'
//!   stdout "0.08 0.03 0.01 1/123 4567\n"  ->  a message "0.08 0.03 ..." in the feed load
//!   stderr "cat: ...: No such file\n"      ->  log "exec load: cat: ...: No such file"
//! ```
//!
//! A supervisor thread per program starts it (see `child`), waits for it to exit, and starts it
//! again one second after it exits. A program that fails (a status other than 0, a signal, or
//! no start at all) within ten seconds of its start waits twice as long as the last time, up to
//! a minute, so one that cannot run costs a log line a minute, not a busy loop. When the server
//! stops, each program's process group gets `SIGTERM`, and `SIGKILL` a second later.
//!
//! Memory stays bounded however fast a program writes: a line is held up to its cut (see
//! `lines`), and each is handed on before the next is read. The feeds take a line into their
//! history (bounded by `--history` and 1 MiB) and pace a publisher that outruns their fan-out
//! threads (see `Feeds::publish`); a page that reads slower than the program writes falls
//! behind and is caught up from the history, or told it missed messages. So a program that
//! writes faster than all that waits on its full pipe.

mod child;
mod lines;

use std::io::{self, Read};
use std::process::ExitStatus;
use std::sync::Arc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use crate::log::Log;
use crate::stop::Stop;

/// The delay before a program is started again after it exits, the first of a run of fast
/// failures.
const FIRST: Duration = Duration::from_secs(1);
/// The longest delay, however often it failed.
const LONGEST: Duration = Duration::from_secs(60);
/// A failure sooner than this after the start is a fast one, and doubles the delay.
const FAST: Duration = Duration::from_secs(10);

/// Takes each line a program writes to stdout: `(feed, line)`. It may block: the program then
/// waits on its pipe.
pub type Sink = Arc<dyn Fn(&str, String) + Send + Sync>;

/// The supervisors of the programs, until [`Programs::stop`].
pub struct Programs {
    stop: Arc<Stop>,
    supervisors: Vec<JoinHandle<()>>,
}

impl Programs {
    /// Starts each `(feed, command)`; a line is cut at `max_chars` characters.
    pub fn start(
        programs: &[(String, String)],
        max_chars: usize,
        sink: &Sink,
        log: Log,
    ) -> io::Result<Programs> {
        let stop = Arc::new(Stop::default());
        let mut supervisors = Vec::with_capacity(programs.len());
        for (feed, command) in programs {
            let program = Program {
                feed: feed.clone(),
                command: command.clone(),
                max_chars,
                sink: sink.clone(),
                log,
            };
            let stopped = stop.clone();
            let supervise = Box::new(move || program.supervise(&stopped));
            let spawned = crate::thread::spawn("exec", None, supervise);
            match spawned {
                Ok(supervisor) => supervisors.push(supervisor),
                Err(error) => {
                    Programs { stop, supervisors }.stop();
                    return Err(error);
                }
            }
        }
        Ok(Programs { stop, supervisors })
    }

    /// Ends every program and waits for it (a second or so for one that ignores `SIGTERM`).
    pub fn stop(self) {
        self.stop.trigger();
        for supervisor in self.supervisors {
            let _ = supervisor.join();
        }
    }
}

struct Program {
    feed: String,
    command: String,
    max_chars: usize,
    sink: Sink,
    log: Log,
}

impl Program {
    /// Runs the program again and again until the stop.
    fn supervise(&self, stop: &Stop) {
        let feed = &self.feed;
        let mut failures = 0;
        loop {
            let started = Instant::now();
            let (failed, status) = match self.run(stop) {
                Ok(None) => break,
                Ok(Some(status)) => (!status.success(), crate::process::describe(status)),
                Err(error) => (true, format!("cannot run: {error}")),
            };
            let exited = Instant::now();
            let delay = if failed && exited - started < FAST {
                failures += 1;
                delay_after(failures)
            } else {
                failures = 0;
                FIRST
            };
            self.log.line(format_args!(
                "exec {feed}: {status} after {}s; starting again in {}s",
                crate::log::seconds(exited - started),
                delay.as_secs()
            ));
            if stop.wait_until(exited + delay) {
                break;
            }
        }
        self.log.line(format_args!("exec {feed}: stopped"));
    }

    /// One run: starts the program and its readers, and waits for it to exit (its status) or
    /// for the stop (`None`, once it has ended).
    fn run(&self, stop: &Stop) -> io::Result<Option<ExitStatus>> {
        let mut child = child::spawn(&self.command)?;
        let feed = &self.feed;
        self.log
            .line(format_args!("exec {feed}: started, pid {}", child.id()));
        let mut readers = Vec::with_capacity(2);
        if let Some(stdout) = child.stdout.take() {
            let (sink, feed) = (self.sink.clone(), feed.clone());
            readers.extend(self.reader(
                "stdout",
                Box::new(stdout),
                Box::new(move |line: String| {
                    // A message has text; a blank line has none.
                    if !line.trim().is_empty() {
                        sink(&feed, line);
                    }
                }),
            ));
        }
        if let Some(stderr) = child.stderr.take() {
            let (log, feed) = (self.log, feed.clone());
            readers.extend(self.reader(
                "stderr",
                Box::new(stderr),
                Box::new(move |line: String| {
                    // Escaped, as the request lines are: a control character (an escape
                    // sequence's start, a carriage return) cannot forge or garble other lines.
                    log.line(format_args!("exec {feed}: {}", line.escape_debug()));
                }),
            ));
        }
        let ended = child::wait(&mut child, stop);
        // What it wrote before it ended comes before the line that says so, unless something
        // it started holds its outputs open (given a second).
        let deadline = Instant::now() + Duration::from_secs(1);
        while readers.iter().any(|reader| !reader.is_finished()) && Instant::now() < deadline {
            thread::sleep(Duration::from_millis(1));
        }
        ended
    }

    /// Reads one of the program's outputs on a thread of its own, each line to `each`, until
    /// the program and whatever it started close it. A reader that cannot start drops its pipe,
    /// so the program is not blocked on it: its writes fail. (Boxed: one copy of the reading
    /// code serves both outputs.)
    fn reader(
        &self,
        which: &'static str,
        input: Box<dyn Read + Send>,
        each: Box<dyn FnMut(String) + Send>,
    ) -> Option<thread::JoinHandle<()>> {
        let (feed, log, max_chars) = (self.feed.clone(), self.log, self.max_chars);
        let read = Box::new(move || {
            if let Err(error) = lines::for_each(input, max_chars, each) {
                log.line(format_args!("exec {feed}: {which}: {error}"));
            }
        });
        let spawned = crate::thread::spawn(which, None, read);
        spawned
            .inspect_err(|error| {
                let feed = &self.feed;
                self.log
                    .line(format_args!("exec {feed}: {which} unread: {error}"));
            })
            .ok()
    }
}

/// The delay after the `failures`-th fast failure in a row: 1 s, 2 s, 4 s... 60 s.
fn delay_after(failures: u32) -> Duration {
    let doublings = failures.saturating_sub(1).min(6);
    (FIRST * (1 << doublings)).min(LONGEST)
}

#[cfg(test)]
mod tests;
