//! The threads that write answers for the request loop, and for the sweep a refusal behind
//! answers still being written to its connection (`refuse.rs`): neither may wait for a client,
//! and one that reads none of its answers (pipelined requests it never reads) would hold them
//! for the write timeout at each write, and every other client with them. (tiny_http has an
//! answer wait until the ones before it on its connection are written.)
//!
//! A thread per answer would cost a thread's start and end each time, about as much as the rest
//! of a request; these threads stay, so that an answer costs the loop one hand-over. An answer
//! goes to a thread that waits for one, or to a new thread if none waits; a thread that waits
//! for five seconds in vain ends. A connection's answers are written one after the other by one
//! thread (tiny_http would make each wait for the one before anyway): a client that pipelines
//! requests and reads nothing holds one thread, for the write timeout, and at most
//! [`MAX_BEHIND`] answers, past which the layer closes its connection.

use std::collections::VecDeque;
use std::io::Write;
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::Duration;

use super::respond::Wire;
use crate::lock;

/// A writing thread's stack: it only writes bytes made before they reach it.
const STACK_SIZE: usize = 64 * 1024;

/// How long a thread waits for an answer to write before it ends.
const IDLE: Duration = Duration::from_secs(5);

/// The answers that may wait behind the one being written to a connection.
pub const MAX_BEHIND: usize = 16;

/// An answer: tiny_http's writer for the request, and every byte of the response.
type Answer = (Box<dyn Write + Send>, Wire);

/// The writing threads that wait, and the answers on their way to them.
#[derive(Clone, Default)]
pub struct Writers(Arc<(Mutex<Waiting>, Condvar)>);

/// Every waiting thread is either free or promised one of `answers`.
#[derive(Default)]
struct Waiting {
    answers: VecDeque<(SocketAddr, Answer)>,
    /// Below 0 while answers wait with no thread promised to them (none could be started).
    free: isize,
    /// The connections an answer is being written to.
    writing: Vec<SocketAddr>,
    /// The answers waiting behind those, in order, each with its connection.
    behind: Vec<(SocketAddr, Answer)>,
}

impl Writers {
    /// Has `answer` to the connection from `peer` written after those before it, by a waiting
    /// thread or a new one. Refused, and the answer dropped, if [`MAX_BEHIND`] answers wait
    /// behind the one being written to `peer` already: its client reads none of them.
    pub fn write(&self, peer: SocketAddr, answer: Answer) -> Result<(), SocketAddr> {
        let mut waiting = lock(&self.0.0);
        if waiting.writing.contains(&peer) {
            if waiting.behind.iter().filter(|(of, _)| *of == peer).count() >= MAX_BEHIND {
                // Dropped with the lock let go: dropping tiny_http's writer may write.
                drop(waiting);
                drop(answer);
                return Err(peer);
            }
            waiting.behind.push((peer, answer));
            return Ok(());
        }
        waiting.writing.push(peer);
        waiting.answers.push_back((peer, answer));
        if waiting.free > 0 {
            waiting.free -= 1;
            drop(waiting);
            self.0.1.notify_one();
            return Ok(());
        }
        // Promised to a new thread.
        drop(waiting);
        let writers = self.clone();
        // If no thread can be had, the answer waits for the next thread that is (one is started
        // for each answer while none waits). The thread that takes it counts itself free when
        // done with its own: one fewer is free, or it would count twice.
        let serve = Box::new(move || writers.serve());
        let spawned = crate::thread::spawn("sse-write", Some(STACK_SIZE), serve);
        if spawned.is_err() {
            lock(&self.0.0).free -= 1;
        }
        Ok(())
    }

    /// Whether no answer is being written or waits to be.
    pub fn idle(&self) -> bool {
        let waiting = lock(&self.0.0);
        waiting.answers.is_empty() && waiting.writing.is_empty()
    }

    /// Whether an answer to the connection from `peer` is being written, or waits to be.
    pub fn writing_to(&self, peer: SocketAddr) -> bool {
        lock(&self.0.0).writing.contains(&peer)
    }

    /// Writes the answer it was promised, then those that come, until none has come for
    /// [`IDLE`].
    fn serve(&self) {
        let mut waiting = lock(&self.0.0);
        loop {
            waiting = self
                .0
                .1
                .wait_timeout_while(waiting, IDLE, |waiting| waiting.answers.is_empty())
                .unwrap_or_else(PoisonError::into_inner)
                .0;
            // No answer queued after all that time: this thread is not promised one, so it is
            // free to go.
            let Some(answer) = waiting.answers.pop_front() else {
                waiting.free -= 1;
                return;
            };
            drop(waiting);
            self.write_out(answer);
            waiting = lock(&self.0.0);
            waiting.free += 1;
        }
    }

    /// Writes `answer`, then every answer that came behind it for the same connection.
    fn write_out(&self, (peer, answer): (SocketAddr, Answer)) {
        send(answer);
        loop {
            let mut waiting = lock(&self.0.0);
            let Some(at) = waiting.behind.iter().position(|(of, _)| *of == peer) else {
                waiting.writing.retain(|of| *of != peer);
                return;
            };
            let (_, next) = waiting.behind.remove(at);
            drop(waiting);
            send(next);
        }
    }
}

fn send((mut writer, wire): Answer) {
    let _ = wire.write_to(&mut *writer);
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[derive(Default)]
    struct Record {
        bytes: Vec<u8>,
        held: bool,
    }

    /// An answer of `bytes`, the way an embedded file's body is held.
    fn wire(bytes: &'static [u8]) -> Wire {
        Wire {
            made: Vec::new(),
            kept: bytes,
        }
    }

    /// A writer that records what it is given, and can be held up.
    #[derive(Clone, Default)]
    struct Recorder(Arc<(Mutex<Record>, Condvar)>);

    impl Write for Recorder {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            let (state, changed) = &*self.0;
            let mut state = state.lock().unwrap();
            while state.held {
                state = changed.wait(state).unwrap();
            }
            state.bytes.extend_from_slice(bytes);
            changed.notify_all();
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    impl Recorder {
        fn hold(&self, held: bool) {
            self.0.0.lock().unwrap().held = held;
            self.0.1.notify_all();
        }

        fn wait_for(&self, bytes: &[u8]) -> bool {
            let deadline = Instant::now() + Duration::from_secs(5);
            let (state, changed) = &*self.0;
            let mut state = state.lock().unwrap();
            while state.bytes != bytes {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return false;
                }
                state = changed.wait_timeout(state, left).unwrap().0;
            }
            true
        }
    }

    #[test]
    fn an_answer_held_up_holds_up_no_other() {
        let writers = Writers::default();
        let (stuck, free) = (Recorder::default(), Recorder::default());
        stuck.hold(true);
        let peer = |port| SocketAddr::from(([127, 0, 0, 1], port));
        let _ = writers.write(peer(1), (Box::new(stuck.clone()), wire(b"one")));
        for port in 2..5 {
            free.0.0.lock().unwrap().bytes.clear();
            let _ = writers.write(peer(port), (Box::new(free.clone()), wire(b"two")));
            assert!(free.wait_for(b"two"));
        }
        stuck.hold(false);
        assert!(stuck.wait_for(b"one"));
    }

    #[test]
    fn answers_to_one_connection_wait_behind_one_thread() {
        let writers = Writers::default();
        let peer = SocketAddr::from(([127, 0, 0, 1], 9));
        let stuck = Recorder::default();
        stuck.hold(true);
        // One being written, and MAX_BEHIND behind it.
        for _ in 0..=MAX_BEHIND {
            let written = writers.write(peer, (Box::new(stuck.clone()), wire(b"x")));
            assert_eq!(written, Ok(()));
        }
        let refused = writers.write(peer, (Box::new(stuck.clone()), wire(b"y")));
        assert_eq!(refused, Err(peer));
        // The one thread took the first, and is held up writing it; none waits.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !lock(&writers.0.0).answers.is_empty() && Instant::now() < deadline {
            std::thread::yield_now();
        }
        assert_eq!(lock(&writers.0.0).free, 0);
        stuck.hold(false);
        assert!(stuck.wait_for(&[b'x'; MAX_BEHIND + 1]));
    }

    #[test]
    fn a_thread_that_waits_takes_the_next_answer() {
        let writers = Writers::default();
        let first = Recorder::default();
        let peer = |port| SocketAddr::from(([127, 0, 0, 1], port));
        let _ = writers.write(peer(1), (Box::new(first.clone()), wire(b"a")));
        assert!(first.wait_for(b"a"));
        // The thread that wrote it now waits, promised nothing.
        let deadline = Instant::now() + Duration::from_secs(5);
        while lock(&writers.0.0).free == 0 && Instant::now() < deadline {
            std::thread::yield_now();
        }
        assert_eq!(lock(&writers.0.0).free, 1);
        let second = Recorder::default();
        let _ = writers.write(peer(2), (Box::new(second.clone()), wire(b"b")));
        assert!(second.wait_for(b"b"));
    }
}
