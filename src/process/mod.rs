//! Programs this server starts: the `--exec` commands (`spawn_shell`) and the trial run of a
//! new program file before a re-exec (`version_of`, in `trial`); and the re-exec itself, this
//! process's image replaced (`image`). One `posix_spawn` starts both programs
//! (rather than `std::process::Command`, which would add 47 KB to the static binary): stdin
//! `/dev/null`, stdout (and a command's stderr) piped here, in a process group of its own so that
//! a signal reaches what it started. A command's group ends with this process, however it ends
//! ([`WATCHER`]).
//!
//! Outside the HTTP layer (`tiny`), this is the only code that names file descriptors: the
//! pipes' ends, the child's standard streams and those handed over across an exec.

mod image;
pub mod signals;
mod trial;

use std::ffi::OsString;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::ExitStatus;
use std::sync::{Mutex, MutexGuard};

pub use rustix::process::Signal;
use rustix::process::{Pid, WaitOptions, kill_process_group, waitpid};

use crate::lock;
use image::{c_strings, pointers};

pub use image::{HANDOFF_VAR, memory_file, replace_image, take_inherited};
pub use trial::version_of;

/// A started program, until it is reaped.
pub struct Child {
    pid: Pid,
    /// The read ends of its stdout and stderr, to be taken by their readers.
    pub stdout: Option<File>,
    pub stderr: Option<File>,
    /// Its watcher, and the write end of the pipe the watcher waits on (see [`WATCHER`]).
    watcher: Option<(Pid, OwnedFd)>,
}

/// A shell started beside each `--exec` program, in the program's process group, that sends
/// `SIGKILL` to the group once this process is gone, however it went (`SIGKILL`, a crash, the
/// OOM killer): what a parent-death signal would do, which `posix_spawn` cannot set. It waits
/// for the end of a pipe (its descriptor 3) whose other end only this process holds, which the
/// kernel closes when the process ends. The end of the pipe comes too when the program's
/// [`Child`] goes, after the `SIGTERM` the group is sent at a stop or once the program has
/// exited, which the watcher ignores: so what ignored that `SIGTERM` gets `SIGKILL` then (the
/// `b` of `a | b`, whose shell went at once), and the group's id, which the watcher holds while
/// it lives, names no other process meanwhile. It is this process's child, and reaped here, so
/// it leaves no zombie even when this process is a container's first (which inherits every
/// orphan).
const WATCHER: &str = "trap '' TERM; read -r _ <&3; kill -KILL 0";

/// The process groups of the programs `spawn_shell` started that are not reaped yet: what
/// [`kill_programs`] ends.
static PROGRAMS: Mutex<Vec<Pid>> = Mutex::new(Vec::new());

/// Starts `command` with `/bin/sh -c`, its stderr piped here too.
/// A program that cannot be given its watcher runs without one.
pub fn spawn_shell(command: &str) -> io::Result<Child> {
    let (sh, shell) = (Path::new("/bin/sh"), |command| {
        ["sh", "-c", command].map(OsString::from)
    });
    let mut child = spawn(sh, &shell(command), true, None)?;
    programs().push(child.pid);
    let pipe = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC);
    if let Ok((watched, end)) = pipe
        && let Ok(watcher) = spawn(sh, &shell(WATCHER), false, Some((&watched, child.pid)))
    {
        child.watcher = Some((watcher.pid, end));
    }
    Ok(child)
}

/// Sends `SIGKILL` to the group of every program still running: for a server that exits at
/// once (a second signal), which does not wait out their second's grace after `SIGTERM`. Left
/// running, they would outlive it in groups of their own, where a Ctrl-C does not reach them.
pub fn kill_programs() {
    for &pid in programs().iter() {
        let _ = kill_process_group(pid, Signal::KILL);
    }
}

fn programs() -> MutexGuard<'static, Vec<Pid>> {
    lock(&PROGRAMS)
}

/// Starts `program` with `args` (its name first) and this process's environment (without the
/// handoff's variable), default signal actions and no signal blocked. Its stderr is this
/// process's unless `pipe_stderr`. It leads a process group of its own, unless it is a watcher
/// (`watch`: its descriptor 3, and the group it joins), whose stdout is `/dev/null`.
#[allow(unsafe_code)]
fn spawn(
    program: &Path,
    args: &[OsString],
    pipe_stderr: bool,
    watch: Option<(&OwnedFd, Pid)>,
) -> io::Result<Child> {
    let (path, args, env) = c_strings(program, args, None)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "a NUL byte in an argument"))?;
    let (argv, envp) = (pointers(&args), pointers(&env));
    let (stdout, stdout_end) = pipe()?;
    let (stderr, stderr_end) = if pipe_stderr {
        pipe().map(|(read, write)| (Some(read), Some(write)))?
    } else {
        (None, None)
    };
    let mut pid: libc::pid_t = 0;
    // SAFETY: `actions`, `attributes` and the signal sets are initialised before use and the
    // first two destroyed after; every pointer handed to posix_spawn points to a NUL-terminated
    // string or a null-terminated list of them (see `pointers`), all alive across the call. The
    // child gets the write ends as its descriptors 1 and 2 (a watcher: its pipe's read end as 3,
    // and /dev/null as 1; dup2 clears close-on-exec there, and the pipes' own descriptors close
    // at its exec), `SIGPIPE` back to its default action (Rust ignores it in this process, and an
    // ignored signal stays ignored across exec), no signal blocked (every thread here blocks the
    // signals the server takes, see `signals`), and a process group of its own (a watcher: its
    // program's, which exists while the program is not reaped).
    let spawned = unsafe {
        let mut actions: libc::posix_spawn_file_actions_t = std::mem::zeroed();
        let mut attributes: libc::posix_spawnattr_t = std::mem::zeroed();
        let mut empty: libc::sigset_t = std::mem::zeroed();
        let mut default: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::sigemptyset(&mut default);
        libc::sigaddset(&mut default, libc::SIGPIPE);
        libc::posix_spawn_file_actions_init(&mut actions);
        libc::posix_spawn_file_actions_addopen(
            &mut actions,
            0,
            c"/dev/null".as_ptr(),
            libc::O_RDONLY,
            0,
        );
        libc::posix_spawn_file_actions_adddup2(&mut actions, stdout_end.as_raw_fd(), 1);
        if let Some(end) = &stderr_end {
            libc::posix_spawn_file_actions_adddup2(&mut actions, end.as_raw_fd(), 2);
        }
        let mut group = 0;
        if let Some((fd, program)) = watch {
            libc::posix_spawn_file_actions_adddup2(&mut actions, fd.as_raw_fd(), 3);
            libc::posix_spawn_file_actions_addopen(
                &mut actions,
                1,
                c"/dev/null".as_ptr(),
                libc::O_WRONLY,
                0,
            );
            group = program.as_raw_nonzero().get();
        }
        libc::posix_spawnattr_init(&mut attributes);
        libc::posix_spawnattr_setsigmask(&mut attributes, &empty);
        libc::posix_spawnattr_setsigdefault(&mut attributes, &default);
        libc::posix_spawnattr_setpgroup(&mut attributes, group);
        let flags = libc::POSIX_SPAWN_SETSIGMASK
            | libc::POSIX_SPAWN_SETSIGDEF
            | libc::POSIX_SPAWN_SETPGROUP;
        libc::posix_spawnattr_setflags(&mut attributes, flags as _);
        let spawned = libc::posix_spawn(
            &mut pid,
            path.as_ptr(),
            &actions,
            &attributes,
            argv.as_ptr().cast(),
            envp.as_ptr().cast(),
        );
        libc::posix_spawnattr_destroy(&mut attributes);
        libc::posix_spawn_file_actions_destroy(&mut actions);
        spawned
    };
    if spawned != 0 {
        return Err(io::Error::from_raw_os_error(spawned));
    }
    Ok(Child {
        pid: Pid::from_raw(pid).ok_or_else(|| io::Error::other("posix_spawn gave no pid"))?,
        stdout: Some(stdout),
        stderr,
        watcher: None,
    })
}

impl Drop for Child {
    /// Its watcher goes with it: told to go (the end of its pipe), it sends what is left of the
    /// group `SIGKILL`, itself included, and is reaped.
    fn drop(&mut self) {
        if let Some((watcher, end)) = self.watcher.take() {
            drop(end);
            while let Err(rustix::io::Errno::INTR) = waitpid(Some(watcher), WaitOptions::empty()) {}
        }
    }
}

/// A pipe: its read end as a file, and its write end.
fn pipe() -> io::Result<(File, OwnedFd)> {
    let (read, write) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)?;
    Ok((File::from(read), write))
}

impl Child {
    /// Its process id, which is also its process group's.
    pub fn id(&self) -> u32 {
        self.pid.as_raw_nonzero().get().unsigned_abs()
    }

    /// Its status if it has exited (and is reaped now), `None` if it runs.
    pub fn try_wait(&mut self) -> io::Result<Option<ExitStatus>> {
        self.wait_with(WaitOptions::NOHANG)
    }

    /// Waits for it to exit.
    pub fn wait(&mut self) -> io::Result<ExitStatus> {
        loop {
            if let Some(status) = self.wait_with(WaitOptions::empty())? {
                return Ok(status);
            }
        }
    }

    fn wait_with(&mut self, options: WaitOptions) -> io::Result<Option<ExitStatus>> {
        loop {
            match waitpid(Some(self.pid), options) {
                Ok(None) => return Ok(None),
                Ok(Some((_, status))) => {
                    programs().retain(|&pid| pid != self.pid);
                    return Ok(Some(ExitStatus::from_raw(status.as_raw())));
                }
                Err(rustix::io::Errno::INTR) => {}
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// Sends `signal` to every process in its group. A group that is gone is no error. (Which
    /// processes it reaches: a group's id is not given to a new process while any member of the
    /// group lives, so after the leader is reaped it names its leftovers or, if there are none,
    /// most likely nothing: a new group would need the pid to come round again.)
    pub fn signal_group(&self, signal: Signal) {
        let _ = kill_process_group(self.pid, signal);
    }
}

/// How a program ended, for the log: `exit status 1`, `signal 9`. (Not std's text, which
/// names signals from a table the binary need not carry.)
pub fn describe(status: ExitStatus) -> String {
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => format!("signal {signal}"),
        (None, None) => "ended".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, Read};

    /// Everything a program writes to `pipe` until it closes it.
    fn all_of(pipe: Option<impl Read>) -> String {
        let mut text = String::new();
        pipe.unwrap().read_to_string(&mut text).unwrap();
        text
    }

    #[test]
    fn stdin_is_empty_and_stdout_and_stderr_are_apart() {
        let mut child = spawn_shell("cat; echo out; echo err >&2; exit 3").unwrap();
        let (out, err) = (all_of(child.stdout.take()), all_of(child.stderr.take()));
        assert_eq!((out.as_str(), err.as_str()), ("out\n", "err\n"));
        assert_eq!(child.wait().unwrap().code(), Some(3));
    }

    #[test]
    fn a_program_whose_pipe_is_closed_ends_by_sigpipe() {
        // Rust ignores SIGPIPE in this process; the program has it back as it was.
        let mut child = spawn_shell("exec yes").unwrap();
        drop(child.stdout.take());
        assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGPIPE));
    }

    /// Whether process `pid` is gone, its exit status taken: not even a zombie is left.
    fn reaped(pid: Pid) -> bool {
        !Path::new(&format!("/proc/{}", pid.as_raw_nonzero())).exists()
    }

    /// Whether process `pid` has ended: gone, or a zombie whose status nobody took yet.
    fn ended(pid: Pid) -> bool {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid.as_raw_nonzero()));
        stat.map_or(true, |stat| {
            stat.rsplit_once(") ")
                .is_some_and(|(_, state)| state.starts_with('Z'))
        })
    }

    #[test]
    fn a_watcher_ends_its_programs_group_when_its_pipe_ends() {
        // As when the server is gone: the program still runs, and the pipe's end closes.
        let mut child = spawn_shell("sleep 30 & echo $!; wait").unwrap();
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let sleep = Pid::from_raw(line.trim().parse().unwrap()).unwrap();
        let (watcher, end) = child.watcher.take().expect("a watcher");
        assert!(!ended(watcher) && !ended(sleep));
        drop(end);
        assert_eq!(child.wait().unwrap().signal(), Some(libc::SIGKILL));
        let (_, status) = waitpid(Some(watcher), WaitOptions::empty())
            .unwrap()
            .unwrap();
        assert_eq!(status.terminating_signal(), Some(libc::SIGKILL));
        // Not this process's child, and reaped by whoever inherited it.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
        while !ended(sleep) && std::time::Instant::now() < deadline {
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert!(ended(sleep), "what the program started runs on");
    }

    #[test]
    fn a_programs_watcher_is_reaped_with_it() {
        let mut child = spawn_shell("exit 0").unwrap();
        let watcher = child.watcher.as_ref().expect("a watcher").0;
        assert!(child.wait().unwrap().success());
        drop(child);
        assert!(reaped(watcher), "no zombie left");
    }

    #[test]
    fn it_leads_a_process_group_of_its_own() {
        let mut child = spawn_shell("ps -o pgid= -p $$").unwrap();
        let out = all_of(child.stdout.take());
        assert_eq!(out.trim().parse::<u32>().ok(), Some(child.id()));
        assert!(child.wait().unwrap().success());
    }
}
