//! The stop signal every stream thread sleeps on: a stream waits for its next deadline *or* for
//! the server to stop, whichever comes first, so a shutdown never waits out an interval.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex, PoisonError};
use std::time::Instant;

#[derive(Default)]
pub struct Stop {
    stopped: AtomicBool,
    lock: Mutex<()>,
    wake: Condvar,
}

impl Stop {
    pub fn trigger(&self) {
        // Taking the lock orders the store before any waiter's check-then-wait.
        let _guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
        self.stopped.store(true, Ordering::SeqCst);
        self.wake.notify_all();
    }

    pub fn is_triggered(&self) -> bool {
        self.stopped.load(Ordering::SeqCst)
    }

    /// Sleeps until `deadline`. Returns `true` if the stop came first.
    pub fn wait_until(&self, deadline: Instant) -> bool {
        let mut guard = self.lock.lock().unwrap_or_else(PoisonError::into_inner);
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
}
