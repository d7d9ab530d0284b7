//! Starting a thread through one function that is not generic: std's `Builder::spawn` is
//! compiled anew for every closure it is given, about 1.5 KB of the static binary each.

use std::io;
use std::thread::{Builder, JoinHandle};

/// What a thread runs.
pub type Run = Box<dyn FnOnce() + Send>;

/// Starts `run` on a new thread called `name`, with a stack of `stack_size` bytes if given
/// (else std's default).
pub fn spawn(name: &str, stack_size: Option<usize>, run: Run) -> io::Result<JoinHandle<()>> {
    let builder = Builder::new().name(name.into());
    match stack_size {
        Some(size) => builder.stack_size(size),
        None => builder,
    }
    .spawn(run)
}
