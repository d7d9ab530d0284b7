//! The stop signal every stream thread sleeps on: a stream waits for its next deadline *or* for
//! the server to stop, whichever comes first, so a shutdown never waits out an interval.
//!
//! Threads that sleep by parking instead (so that another thread can wake just that one, see
//! `tiny::outlet`) register themselves with [`Stop::watch`] and are unparked by the stop.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, PoisonError};
use std::thread::{self, Thread, ThreadId};
use std::time::Instant;

use crate::lock;

#[derive(Default)]
pub struct Stop {
    stopped: AtomicBool,
    lock: Mutex<()>,
    wake: Condvar,
    parked: Mutex<HashMap<ThreadId, Thread>>,
}

/// Keeps the current thread registered with a [`Stop`] until dropped.
pub struct Watch<'a> {
    stop: &'a Stop,
    id: ThreadId,
}

impl Drop for Watch<'_> {
    fn drop(&mut self) {
        lock(&self.stop.parked).remove(&self.id);
    }
}

impl Stop {
    pub fn trigger(&self) {
        // Taking the lock orders the store before any waiter's check-then-wait.
        let _guard = lock(&self.lock);
        self.stopped.store(true, Ordering::SeqCst);
        self.wake.notify_all();
        for thread in lock(&self.parked).values() {
            thread.unpark();
        }
    }

    /// Has the current thread unparked when the stop comes, for as long as the guard lives. A
    /// parked thread checks [`Stop::is_triggered`] each time it wakes.
    pub fn watch(&self) -> Watch<'_> {
        let current = thread::current();
        let id = current.id();
        lock(&self.parked).insert(id, current);
        Watch { stop: self, id }
    }

    pub fn is_triggered(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }

    /// Sleeps until `deadline`. Returns `true` if the stop came first.
    pub fn wait_until(&self, deadline: Instant) -> bool {
        let mut guard = lock(&self.lock);
        loop {
            if self.is_triggered() {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            guard = self
                .wake
                .wait_timeout(guard, deadline - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn waits_until_the_deadline() {
        let stop = Stop::default();
        let deadline = Instant::now() + Duration::from_millis(20);
        assert!(!stop.wait_until(deadline));
        assert!(Instant::now() >= deadline);
    }

    #[test]
    fn trigger_wakes_a_sleeper_at_once() {
        let stop = Arc::new(Stop::default());
        let sleeper = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let started = Instant::now();
                let stopped = stop.wait_until(started + Duration::from_secs(30));
                (stopped, started.elapsed())
            })
        };
        std::thread::sleep(Duration::from_millis(20));
        stop.trigger();
        let (stopped, slept) = sleeper.join().unwrap();
        assert!(stopped);
        assert!(slept < Duration::from_secs(5));
    }

    #[test]
    fn trigger_unparks_a_watching_thread() {
        let stop = Arc::new(Stop::default());
        let (ready, watching) = std::sync::mpsc::channel();
        let parker = {
            let stop = stop.clone();
            std::thread::spawn(move || {
                let _watch = stop.watch();
                ready.send(()).unwrap();
                let started = Instant::now();
                while !stop.is_triggered() && started.elapsed() < Duration::from_secs(30) {
                    std::thread::park_timeout(Duration::from_secs(30));
                }
                started.elapsed()
            })
        };
        watching.recv().unwrap();
        stop.trigger();
        assert!(parker.join().unwrap() < Duration::from_secs(5));
        assert!(lock(&stop.parked).is_empty(), "the guard unregistered");
    }
}
