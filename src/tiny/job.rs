//! A job run on a thread of its own, which comes back if no thread can be had.

use std::io;
use std::sync::mpsc;

/// Runs `run(job)` on a new thread called `name`. If the thread cannot be spawned, the job
/// comes back with the error, to be answered.
pub fn spawn<T: Send + 'static>(
    name: &str,
    stack_size: usize,
    job: T,
    run: impl FnOnce(T) + Send + 'static,
) -> Result<(), (T, io::Error)> {
    // The job travels to the thread through a channel: a failed spawn drops the closure, and
    // the job must not go with it.
    let (hand_over, take) = mpsc::sync_channel::<T>(1);
    let run = Box::new(move || {
        if let Ok(job) = take.recv() {
            run(job);
        }
    });
    let spawned = crate::thread::spawn(name, Some(stack_size), run);
    if let Err(error) = spawned {
        return Err((job, error));
    }
    // The receiver lives until the thread has taken the job.
    let _ = hand_over.send(job);
    Ok(())
}
