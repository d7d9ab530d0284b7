//! One line on stderr per request and per stream, unless `--quiet`; panics of the code the layer
//! fences are logged the same way. Every line goes through the `printer` thread, so a closed or
//! full stderr neither panics nor blocks the thread that logs.

use std::any::Any;
use std::cell::Cell;
use std::fmt::Display;
use std::panic;
use std::sync::Once;
use std::thread;
use std::time::Duration;

use crate::printer::{self, To};

/// Where the server's lines go: stderr for the log, stdout for what the binary announces.
/// `quiet` silences both; only [`Log::fatal`] is always written. No call waits for the output or
/// fails with it: a line that cannot be written at once is queued or dropped (see `printer`).
#[derive(Clone, Copy, Debug, Default)]
pub struct Log {
    pub quiet: bool,
}

impl Log {
    /// `GET /connect 200 312B 0.2ms`. The path is escaped: it comes from the client and must not be
    /// able to forge log lines. Only its first KiB is shown, so that no client can grow the log
    /// by as much as it sends.
    pub(crate) fn request(
        &self,
        method: &dyn Display,
        path: &str,
        status: u16,
        bytes: usize,
        took: Duration,
    ) {
        let mut shown = path.len().min(1024);
        while !path.is_char_boundary(shown) {
            shown -= 1;
        }
        self.line(format_args!(
            "{method} {} {status} {bytes}B {}ms",
            path[..shown].escape_debug(),
            milliseconds(took)
        ));
    }

    /// One line on stderr, unless quiet.
    pub fn line(&self, line: std::fmt::Arguments<'_>) {
        if !self.quiet {
            printer::print(To::Stderr, line);
        }
    }

    /// One line on stdout, unless quiet.
    pub fn stdout(&self, line: std::fmt::Arguments<'_>) {
        if !self.quiet {
            printer::print(To::Stdout, line);
        }
    }

    /// One line on stderr, quiet or not, for an error that ends the process; waits up to a
    /// second for it to be written.
    pub fn fatal(line: std::fmt::Arguments<'_>) {
        printer::print(To::Stderr, line);
        Log::flush(Duration::from_secs(1));
    }

    /// Waits until the lines logged so far are written, but no longer than `within`: a stderr
    /// that nobody reads must not hold up a stop. Returns whether they were.
    pub fn flush(within: Duration) -> bool {
        printer::flush(within)
    }
}

thread_local! {
    /// Where a panic on this thread goes, while the layer runs application code on it.
    static PANICS_TO: Cell<Option<Log>> = const { Cell::new(None) };
}

/// While it lives, a panic on this thread is one line in `log` (nothing when quiet) instead of
/// Rust's message on stderr. The layer holds one while it runs a handler or a stream's body,
/// which it fences: such a panic costs one request or one stream, and is the server's to report.
/// Needs [`route_panics`].
#[must_use]
pub struct PanicsToLog {
    previous: Option<Log>,
}

impl PanicsToLog {
    pub fn enter(log: Log) -> PanicsToLog {
        PanicsToLog {
            previous: PANICS_TO.with(|to| to.replace(Some(log))),
        }
    }
}

impl Drop for PanicsToLog {
    fn drop(&mut self) {
        // Restored after the panic hook has run: unwinding drops this only then.
        let _ = PANICS_TO.try_with(|to| to.set(self.previous));
    }
}

/// Installs, once per process, the panic hook that [`PanicsToLog`] needs. A panic outside the
/// code the layer fences goes to the log `elsewhere` names, given the file it happened in (the
/// layer's answer for tiny_http's own threads), or else to the hook that was in place (Rust's
/// default: the message on stderr, `--quiet` or not): it is a bug, as fatal as an error can be.
/// Rust's hook ignores a failed write, so a closed stderr does not make it panic again.
pub fn route_panics(elsewhere: fn(&str) -> Option<Log>) {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = panic::take_hook();
        panic::set_hook(Box::new(move |info| {
            let elsewhere = || info.location().and_then(|at| elsewhere(at.file()));
            match PANICS_TO
                .try_with(Cell::get)
                .ok()
                .flatten()
                .or_else(elsewhere)
            {
                Some(log) => log.line(format_args!(
                    "panic in {}{}: {}",
                    thread::current().name().unwrap_or("a thread"),
                    info.location()
                        .map(|at| format!(" at {}:{}", at.file(), at.line()))
                        .unwrap_or_default(),
                    message(info.payload()).escape_debug()
                )),
                None => previous(info),
            }
        }));
    });
}

/// A panic's message, when it is text (as `panic!` with a message makes it).
fn message(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)")
}

/// A figure with one decimal (`2.5`), kept in tenths.
pub struct OneDecimal(u64);

impl Display for OneDecimal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.0 / 10, self.0 % 10)
    }
}

/// `took` in seconds, to one decimal, for a log line. In integers: formatting a float would
/// link the float formatter, about 9 KB of the static binary, for a few log lines.
pub fn seconds(took: Duration) -> OneDecimal {
    OneDecimal((took.as_millis() as u64).saturating_add(50) / 100)
}

/// `took` in milliseconds, to one decimal (see [`seconds`]).
pub fn milliseconds(took: Duration) -> OneDecimal {
    OneDecimal((took.as_micros() as u64).saturating_add(50) / 100)
}
