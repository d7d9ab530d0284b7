//! The threads that write answers for the request loop, which must never wait for a client: one
//! that reads none of its answers (pipelined requests it never reads) would hold the loop for the
//! write timeout at each write, and every other client with it.
//!
//! A thread per answer would cost a thread's start and end each time, about as much as the rest
//! of a request; these threads stay, so that an answer costs the loop one hand-over. An answer
//! goes to a thread that waits for one, or to a new thread if none waits (a client that reads
//! nothing holds one for the write timeout); a thread that waits for five seconds in vain ends.
//! tiny_http keeps a connection's answers in order, whichever thread writes them.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

/// A writing thread's stack: it only writes bytes made before they reach it.
const STACK_SIZE: usize = 64 * 1024;

/// How long a thread waits for an answer to write before it ends.
const IDLE: Duration = Duration::from_secs(5);

/// An answer: tiny_http's writer for the request, and every byte of the response.
type Answer = (Box<dyn Write + Send>, Vec<u8>);

/// The writing threads that wait, and the answers on their way to them.
#[derive(Clone, Default)]
pub struct Writers(Arc<(Mutex<Waiting>, Condvar)>);

/// Every waiting thread is either free or promised one of `answers`.
#[derive(Default)]
struct Waiting {
    answers: VecDeque<Answer>,
    free: usize,
}

impl Writers {
    /// Has `answer` written by a waiting thread, or a new one; by this thread if none can be had.
    pub fn write(&self, answer: Answer) {
        let mut waiting = self.lock();
        waiting.answers.push_back(answer);
        if waiting.free > 0 {
            waiting.free -= 1;
            drop(waiting);
            self.0.1.notify_one();
            return;
        }
        // Promised to a new thread.
        drop(waiting);
        let writers = self.clone();
        let spawned = thread::Builder::new()
            .name("sse-write".into())
            .stack_size(STACK_SIZE)
            .spawn(move || writers.serve());
        if spawned.is_err() {
            // Any one of them: every answer queued is promised to a thread that waits.
            let answer = self.lock().answers.pop_back();
            if let Some(answer) = answer {
                send(answer);
            }
        }
    }

    /// Writes the answer it was promised, then those that come, until none has come for
    /// [`IDLE`].
    fn serve(&self) {
        let mut waiting = self.lock();
        loop {
            let deadline = Instant::now() + IDLE;
            let answer = loop {
                if let Some(answer) = waiting.answers.pop_front() {
                    break answer;
                }
                // No answer queued: this thread is not promised one, so it is free to go.
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    waiting.free -= 1;
                    return;
                }
                waiting = self
                    .0
                    .1
                    .wait_timeout(waiting, left)
                    .unwrap_or_else(PoisonError::into_inner)
                    .0;
            };
            drop(waiting);
            send(answer);
            waiting = self.lock();
            waiting.free += 1;
        }
    }

    fn lock(&self) -> MutexGuard<'_, Waiting> {
        self.0.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

fn send((mut writer, bytes): Answer) {
    let _ = writer.write_all(&bytes).and_then(|()| writer.flush());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Default)]
    struct Record {
        bytes: Vec<u8>,
        held: bool,
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
        writers.write((Box::new(stuck.clone()), b"one".to_vec()));
        for _ in 0..3 {
            free.0.0.lock().unwrap().bytes.clear();
            writers.write((Box::new(free.clone()), b"two".to_vec()));
            assert!(free.wait_for(b"two"));
        }
        stuck.hold(false);
        assert!(stuck.wait_for(b"one"));
    }

    #[test]
    fn a_thread_that_waits_takes_the_next_answer() {
        let writers = Writers::default();
        let first = Recorder::default();
        writers.write((Box::new(first.clone()), b"a".to_vec()));
        assert!(first.wait_for(b"a"));
        // The thread that wrote it now waits, promised nothing.
        let deadline = Instant::now() + Duration::from_secs(5);
        while writers.lock().free == 0 && Instant::now() < deadline {
            std::thread::yield_now();
        }
        assert_eq!(writers.lock().free, 1);
        let second = Recorder::default();
        writers.write((Box::new(second.clone()), b"b".to_vec()));
        assert!(second.wait_for(b"b"));
    }
}
