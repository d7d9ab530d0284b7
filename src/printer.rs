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

use std::io::{self, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TryRecvError, TrySendError, sync_channel};
use std::sync::{Condvar, Mutex, OnceLock, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

/// Lines held for the writer before new ones are dropped: a burst such as a thousand streams
/// ending at once fits, and at most a few hundred KiB wait.
const QUEUE_LINES: usize = 4096;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum To {
    Stdout,
    Stderr,
}

struct Line {
    to: To,
    text: String,
}

/// The queue and what the writer has done with it.
struct Printer {
    /// `None` if the writer thread could not be started: lines are then dropped.
    queue: Option<SyncSender<Line>>,
    /// Lines accepted into the queue, ever.
    queued: AtomicU64,
    /// Lines the writer has finished with (written or failed), ever; [`flush`] waits on it.
    done: Mutex<u64>,
    done_changed: Condvar,
    /// Lines dropped because the queue was full, since the count was last written.
    dropped: AtomicU64,
}

fn printer() -> &'static Printer {
    static PRINTER: OnceLock<Printer> = OnceLock::new();
    PRINTER.get_or_init(|| {
        let (queue, lines) = sync_channel(QUEUE_LINES);
        let started = thread::Builder::new()
            .name("printer".into())
            .spawn(move || write_lines(lines));
        Printer {
            queue: started.is_ok().then_some(queue),
            queued: AtomicU64::new(0),
            done: Mutex::new(0),
            done_changed: Condvar::new(),
            dropped: AtomicU64::new(0),
        }
    })
}

/// Queues `line` (a newline is added) for `to`; never waits. When the queue is full the line is
/// dropped and counted.
pub fn print(to: To, line: std::fmt::Arguments<'_>) {
    let printer = printer();
    let Some(queue) = &printer.queue else {
        printer.dropped.fetch_add(1, Ordering::Relaxed);
        return;
    };
    // Counted before it is sent, so the writer can never be done with more than was queued.
    printer.queued.fetch_add(1, Ordering::SeqCst);
    let line = Line {
        to,
        text: format!("{line}\n"),
    };
    if let Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) = queue.try_send(line) {
        printer.queued.fetch_sub(1, Ordering::SeqCst);
        printer.dropped.fetch_add(1, Ordering::Relaxed);
    }
}

/// Waits until every line queued so far is written (or has failed), but no longer than
/// `within`: a pipe that is not read must not hold up the exit. Returns whether they were.
pub fn flush(within: Duration) -> bool {
    let printer = printer();
    let target = printer.queued.load(Ordering::SeqCst);
    let deadline = Instant::now() + within;
    let mut done = printer.done.lock().unwrap_or_else(PoisonError::into_inner);
    while *done < target {
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        done = printer
            .done_changed
            .wait_timeout(done, deadline - now)
            .unwrap_or_else(PoisonError::into_inner)
            .0;
    }
    true
}

/// The writer thread: writes each line, ignoring errors (see the module doc). When it has caught
/// up, it says how many lines were dropped meanwhile, before it counts the last line done, so
/// that a [`flush`] covers the count too.
fn write_lines(lines: Receiver<Line>) {
    let Ok(mut line) = lines.recv() else { return };
    loop {
        write(line.to, line.text.as_bytes());
        let next = match lines.try_recv() {
            Ok(next) => Some(next),
            Err(TryRecvError::Empty) => {
                write_dropped();
                None
            }
            Err(TryRecvError::Disconnected) => return,
        };
        let printer = printer();
        *printer.done.lock().unwrap_or_else(PoisonError::into_inner) += 1;
        printer.done_changed.notify_all();
        line = match next {
            Some(next) => next,
            None => match lines.recv() {
                Ok(next) => next,
                Err(_) => return,
            },
        };
    }
}

fn write_dropped() {
    let dropped = printer().dropped.swap(0, Ordering::Relaxed);
    if dropped > 0 {
        let text = format!("log: {dropped} lines dropped: the output was not being read\n");
        write(To::Stderr, text.as_bytes());
    }
}

/// One write and flush; an error (`EPIPE`, or any other) loses this line only.
fn write(to: To, bytes: &[u8]) {
    let _ = match to {
        To::Stdout => {
            let mut out = io::stdout().lock();
            out.write_all(bytes).and_then(|()| out.flush())
        }
        To::Stderr => io::stderr().lock().write_all(bytes),
    };
}
