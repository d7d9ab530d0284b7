//! The one thread that writes the process's lines to stdout and stderr. Every other thread hands
//! it a line through a bounded queue and goes on at once, so what stdout and stderr are connected
//! to can never stop the server:
//!
//! - A closed pipe (`sse-htmx | true`, `sse-htmx 2>&1 | head -1`) makes a write fail with `EPIPE`
//!   (Rust ignores `SIGPIPE`). `println!` and `eprintln!` would turn that into a panic: the
//!   start line would end the process, and the signal thread, dying in its `stopping` line,
//!   would leave SIGTERM ignored. Here the error is dropped with the line.
//! - A pipe that is open but not read (`2>&1 | sleep 1000`) fills, and then a write blocks until
//!   the reader reads. Only this thread ever waits on it; meanwhile the queue fills and further
//!   lines are dropped and counted, and the count is written once the pipe takes lines again.
//!   No request, stream or stop waits for a write, nor for a lock that a write holds.
//!
//! A line that could not be written is not an error of the server: its job is to serve, and
//! whoever closed or stopped reading its output chose not to see the log (ripgrep treats a broken
//! pipe as a normal end for the same reason). The server neither stops nor reports it.
//!
//! Why not make stderr non-blocking instead: `O_NONBLOCK` is a flag of the open file
//! description, which the shell and every other process on the same terminal or pipe share. It
//! would make their writes fail with `EAGAIN`, even after this process has exited.

use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::{Condvar, Mutex, OnceLock, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use crate::lock;

/// Lines held for the writer before new ones are dropped: a burst such as a thousand streams
/// ending at once fits.
const QUEUE_LINES: usize = 4096;

/// Bytes held for the writer before new lines are dropped: a line can be kilobytes long (a
/// refused request's escaped path), and 4,096 of them held for a pipe nobody reads would be tens
/// of MiB.
const QUEUE_BYTES: usize = 512 * 1024;

/// How long the writer, once woken by a line, lets more gather before it writes: a burst of
/// lines (a thousand streams opening at once) then costs a wake-up and a write per this much
/// time rather than per line, which the logging threads would feel (a wake-up costs as much CPU
/// as a stream's first event). A line reaches the output at most this much later.
const GATHER: Duration = Duration::from_millis(10);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum To {
    Stdout,
    Stderr,
}

struct Line {
    to: To,
    text: String,
}

/// The queue and what the writer has done with it. The lock is never held across a write.
struct Printer {
    state: Mutex<State>,
    /// Wakes the writer when a line is queued.
    line_queued: Condvar,
    /// Wakes a [`flush`] when the writer has finished a line.
    line_done: Condvar,
    /// Whether the writer thread runs; if it could not be started, lines are dropped.
    writing: bool,
}

#[derive(Default)]
struct State {
    lines: VecDeque<Line>,
    /// The bytes of the lines not yet written: `lines`, and those the writer is writing.
    bytes: usize,
    /// Lines ever queued, and lines the writer has finished with (written or failed).
    queued: u64,
    done: u64,
    /// Lines dropped because the queue was full, since the count was last written.
    dropped: u64,
    /// Whether the writer waits for a line, and so needs waking for the next one.
    writer_waits: bool,
}

static PRINTER: OnceLock<Printer> = OnceLock::new();

/// The printer, and its thread, from the first line on: a quiet server has neither.
fn printer() -> &'static Printer {
    PRINTER.get_or_init(|| {
        // The thread waits in `printer()` until this returns.
        let started = crate::thread::spawn("printer", None, Box::new(|| write_lines(printer())));
        Printer {
            state: Mutex::default(),
            line_queued: Condvar::new(),
            line_done: Condvar::new(),
            writing: started.is_ok(),
        }
    })
}

/// Queues `line` (a newline is added) for `to`; never waits for the output. When the queue is
/// full the line is dropped and counted.
pub fn print(to: To, line: std::fmt::Arguments<'_>) {
    let text = format!("{line}\n");
    let printer = printer();
    let mut state = lock(&printer.state);
    let held = state.queued - state.done;
    let full = held >= QUEUE_LINES as u64 || state.bytes + text.len() > QUEUE_BYTES;
    if !printer.writing || full {
        state.dropped += 1;
        return;
    }
    state.bytes += text.len();
    state.lines.push_back(Line { to, text });
    state.queued += 1;
    if std::mem::take(&mut state.writer_waits) {
        printer.line_queued.notify_one();
    }
}

/// Waits until every line queued so far is written (or has failed), but no longer than
/// `within`: a pipe that is not read must not hold up the exit. Returns whether they were.
pub fn flush(within: Duration) -> bool {
    let Some(printer) = PRINTER.get() else {
        return true;
    };
    let deadline = Instant::now() + within;
    let mut state = lock(&printer.state);
    let target = state.queued;
    while state.done < target {
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        state = printer
            .line_done
            .wait_timeout(state, deadline - now)
            .unwrap_or_else(PoisonError::into_inner)
            .0;
    }
    true
}

/// The writer thread: writes the queued lines, all it finds at a time, ignoring errors (see the
/// module doc). When it has caught up, it says how many lines were dropped meanwhile, before it
/// counts the last ones done, so that a [`flush`] covers the count too.
fn write_lines(printer: &Printer) {
    let mut state = lock(&printer.state);
    loop {
        if state.lines.is_empty() {
            state.writer_waits = true;
            state = printer
                .line_queued
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
            drop(state);
            thread::sleep(GATHER);
            state = lock(&printer.state);
            continue;
        }
        // Still counted in the queue's bounds (`bytes`, and `queued - done`) until written.
        let lines = std::mem::take(&mut state.lines);
        drop(state);
        write_runs(&lines, write);
        state = lock(&printer.state);
        state.bytes -= lines.iter().map(|line| line.text.len()).sum::<usize>();
        let dropped = if state.lines.is_empty() {
            std::mem::take(&mut state.dropped)
        } else {
            0
        };
        if dropped > 0 {
            drop(state);
            let notice = format!("log: {dropped} lines dropped: the output was not being read\n");
            write(To::Stderr, notice.as_bytes());
            state = lock(&printer.state);
        }
        state.done += lines.len() as u64;
        printer.line_done.notify_all();
    }
}

/// Each run of lines for the same output in one `write`, in their order.
fn write_runs(lines: &VecDeque<Line>, mut write: impl FnMut(To, &[u8])) {
    let mut run = String::new();
    for (i, line) in lines.iter().enumerate() {
        run.push_str(&line.text);
        if lines.get(i + 1).is_none_or(|next| next.to != line.to) {
            write(line.to, run.as_bytes());
            run.clear();
        }
    }
}

/// One write and flush; an error (`EPIPE`, or any other) loses these lines only.
fn write(to: To, bytes: &[u8]) {
    let _ = match to {
        To::Stdout => {
            let mut out = io::stdout().lock();
            out.write_all(bytes).and_then(|()| out.flush())
        }
        To::Stderr => io::stderr().lock().write_all(bytes),
    };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_written_a_run_per_output_in_their_order() {
        let line = |to, text: &str| Line {
            to,
            text: format!("{text}\n"),
        };
        let lines = VecDeque::from([
            line(To::Stderr, "a"),
            line(To::Stderr, "b"),
            line(To::Stdout, "c"),
            line(To::Stderr, "d"),
        ]);
        let mut writes = Vec::new();
        write_runs(&lines, |to, bytes| {
            writes.push((to, String::from_utf8(bytes.to_vec()).unwrap()))
        });
        assert_eq!(
            writes,
            [
                (To::Stderr, "a\nb\n".to_string()),
                (To::Stdout, "c\n".to_string()),
                (To::Stderr, "d\n".to_string()),
            ]
        );
    }
}
