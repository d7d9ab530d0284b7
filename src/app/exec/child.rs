//! One run of a program: `/bin/sh -c COMMAND` (started by `process`) in a process group of
//! its own, so that a signal reaches what the shell started (`tail` in `sh -c 'tail -F ...'`) and
//! a Ctrl-C at the terminal reaches only the server, which then stops its programs itself.

use std::io;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use crate::process::Child;
use crate::stop::Stop;

pub use crate::process::spawn_shell as spawn;

/// How long a program has to end after `SIGTERM` before it gets `SIGKILL`.
const GRACE: Duration = Duration::from_secs(1);

/// How often a running program is checked for having exited: there is no wait with a timeout,
/// and a tenth of a second is small beside the restart delay.
const POLL: Duration = Duration::from_millis(100);

/// Waits for `child` to exit, or for the stop; on the stop, ends it (`SIGTERM` to its group,
/// `SIGKILL` a second later if it is still there). `None` if it was stopped. Either way, what
/// is left of its group is sent `SIGTERM`, so that a program that put work in the background
/// and exited does not pile up copies as it is started again; what ignores it gets `SIGKILL`
/// when `child` goes, from its watcher (see `process`).
pub fn wait(child: &mut Child, stop: &Stop) -> io::Result<Option<ExitStatus>> {
    let exited = loop {
        if let Some(status) = child.try_wait()? {
            break Some(status);
        }
        if stop.wait_until(Instant::now() + POLL) {
            break None;
        }
    };
    child.signal_group(crate::process::Signal::TERM);
    if exited.is_none() {
        let deadline = Instant::now() + GRACE;
        while child.try_wait()?.is_none() {
            if Instant::now() >= deadline {
                child.signal_group(crate::process::Signal::KILL);
                child.wait()?;
                break;
            }
            std::thread::sleep(POLL / 10);
        }
    }
    Ok(exited)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    #[test]
    fn a_stop_ends_the_shell_and_what_it_started() {
        let stop = Stop::default();
        // `sleep` in the background keeps stdout open: only a signal to the group ends it.
        let mut child = spawn("sleep 30 & echo started; wait").unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let mut first = [0; 8];
        stdout.read_exact(&mut first).unwrap();
        stop.trigger();
        let started = Instant::now();
        assert!(wait(&mut child, &stop).unwrap().is_none(), "stopped");
        let mut rest = Vec::new();
        stdout.read_to_end(&mut rest).unwrap();
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn an_exit_is_its_status() {
        let stop = Stop::default();
        let mut child = spawn("exit 3").unwrap();
        let status = wait(&mut child, &stop).unwrap().expect("exited");
        assert_eq!(status.code(), Some(3));
    }

    #[test]
    fn a_program_that_ignores_sigterm_is_killed() {
        let stop = Stop::default();
        let mut child = spawn("trap '' TERM; echo ready; while :; do sleep 0.1; done").unwrap();
        let mut stdout = child.stdout.take().unwrap();
        let mut ready = [0; 6];
        stdout.read_exact(&mut ready).unwrap();
        stop.trigger();
        let started = Instant::now();
        assert!(wait(&mut child, &stop).unwrap().is_none());
        let took = started.elapsed();
        assert!(took >= GRACE && took < GRACE * 5, "{took:?}");
    }
}
