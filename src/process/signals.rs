//! The signals the server acts on (`SIGHUP`, `SIGTERM`, `SIGINT`), taken by one thread.
//!
//! They are blocked in every thread from the first line of `main` on (a thread starts with the
//! mask of the thread that started it), and one thread takes them from a signalfd, one at a
//! time, under `TAKING`'s lock. So a signal is always either still pending in the kernel, or
//! taken and acted on by that thread, never in between: a handler's self-pipe, read later by
//! another thread, was lost when an exec came between the two.
//!
//! A re-exec holds the same lock ([`hold`]) from its last look for a stop to the exec. A signal
//! sent meanwhile stays pending; pending signals and the mask outlive `execve`, so the new image
//! takes it as soon as it takes signals at all.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::FromRawFd;
use std::sync::{Mutex, MutexGuard};

use rustix::event::{PollFd, PollFlags, poll};

use crate::lock;

/// Held while a signal is taken and acted on, and by a re-exec (see the module's docs).
static TAKING: Mutex<()> = Mutex::new(());

/// The signals the server takes.
const TAKEN: [libc::c_int; 3] = [libc::SIGHUP, libc::SIGTERM, libc::SIGINT];

/// Blocks the signals the server takes in the calling thread, and so in every thread it starts
/// from now on: to be called first thing in `main`. An image started by a re-exec has them
/// blocked already.
#[allow(unsafe_code)]
pub fn block() {
    let set = taken_set();
    // SAFETY: `set` is a live, initialised `sigset_t`; a null old-set pointer asks for nothing
    // back. It cannot fail with a valid `how`.
    unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
}

/// No signal is taken from the pending ones while the guard lives: a re-exec holds it from its
/// last look for a stop to the exec.
pub fn hold() -> MutexGuard<'static, ()> {
    lock(&TAKING)
}

/// Where the signals the server takes are read from.
pub struct Signals(File);

impl Signals {
    #[allow(unsafe_code)]
    pub fn new() -> io::Result<Signals> {
        let set = taken_set();
        // SAFETY: `set` is a live, initialised `sigset_t`. On success the call returns a new
        // descriptor that nothing else owns, which the `File` takes.
        unsafe {
            let fd = libc::signalfd(-1, &set, libc::SFD_CLOEXEC | libc::SFD_NONBLOCK);
            if fd < 0 {
                return Err(io::Error::last_os_error());
            }
            Ok(Signals(File::from_raw_fd(fd)))
        }
    }

    /// Takes the signals as they come, one at a time, and acts on each with `act`, holding
    /// `TAKING`'s lock: a signal waits, pending, until then. Returns only on an error.
    pub fn forever(&self, mut act: impl FnMut(libc::c_int)) -> io::Error {
        let mut info = [0u8; size_of::<libc::signalfd_siginfo>()];
        loop {
            // Waiting takes nothing: the signal is taken (read) with the lock held.
            let mut ready = [PollFd::new(&self.0, PollFlags::IN)];
            if let Err(error) = poll(&mut ready, None) {
                if error != rustix::io::Errno::INTR {
                    return error.into();
                }
                continue;
            }
            let _taking = hold();
            match (&self.0).read(&mut info) {
                // `ssi_signo`, the first field: a `u32` in the kernel's byte order.
                Ok(read) if read == info.len() => {
                    let number = u32::from_ne_bytes([info[0], info[1], info[2], info[3]]);
                    act(number as libc::c_int);
                }
                Ok(_) => {}
                // Taken by no one else: only a spurious wake-up.
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                Err(error) if error.kind() == io::ErrorKind::Interrupted => {}
                Err(error) => return error,
            }
        }
    }
}

#[allow(unsafe_code)]
fn taken_set() -> libc::sigset_t {
    // SAFETY: `set` is initialised by sigemptyset before sigaddset reads it; both only write the
    // local `sigset_t` and cannot fail for these signal numbers.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for signal in TAKEN {
            libc::sigaddset(&mut set, signal);
        }
        set
    }
}
