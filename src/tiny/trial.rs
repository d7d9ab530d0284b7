//! A trial run of a program file: `PROGRAM --version`, with a deadline, before the process
//! replaces its image with it. (Through `posix_spawn` rather than `std::process::Command`,
//! which would add 47 KB to the static binary.)

use std::ffi::{CString, OsString};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;
use std::time::{Duration, Instant};

use super::handoff::{c_strings, pointers};

/// Runs `program --version` (without the handoff's variable) and returns what it printed on
/// stdout (at most 1 KiB) if it exited 0 within `patience`. It is killed past that.
#[allow(unsafe_code)]
pub fn version_of(program: &Path, patience: Duration) -> Result<String, String> {
    let args = [program.as_os_str().to_owned(), OsString::from("--version")];
    let (path, args, env) =
        c_strings(program, &args, None).ok_or("a NUL byte in the program's path")?;
    let (argv, envp) = (pointers(&args), pointers(&env));
    let mut ends: [libc::c_int; 2] = [-1; 2];
    // SAFETY: pipe2 writes two descriptors into `ends`, which is alive and two long.
    if unsafe { libc::pipe2(ends.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        return Err(io::Error::last_os_error().to_string());
    }
    // SAFETY: both were just created by pipe2 and are known to nothing else.
    let (read_end, write_end) =
        unsafe { (OwnedFd::from_raw_fd(ends[0]), OwnedFd::from_raw_fd(ends[1])) };
    let pid = spawn(&path, &argv, &envp, &write_end)?;
    drop(write_end);
    let deadline = Instant::now() + patience;
    let status = loop {
        let mut status = 0;
        // SAFETY: waitpid writes the status into `status`, alive across the call; `pid` is the
        // child spawned above, not yet reaped.
        let done = unsafe { libc::waitpid(pid, &mut status, libc::WNOHANG) };
        if done == pid {
            break status;
        }
        if done < 0 || Instant::now() >= deadline {
            // SAFETY: as above; the child is ours and not yet reaped, so `pid` is still it.
            unsafe {
                libc::kill(pid, libc::SIGKILL);
                libc::waitpid(pid, &mut status, 0);
            }
            return Err(format!("`--version` took over {patience:?}"));
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let mut printed = String::new();
    let _ = File::from(read_end).take(1024).read_to_string(&mut printed);
    let exited_0 = libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0;
    if !exited_0 {
        return Err(format!(
            "`--version` failed (wait status {status}), printing {printed:?}"
        ));
    }
    Ok(printed)
}

/// Starts `path` with `argv` and `envp`, its stdout on `stdout`. Returns its PID.
#[allow(unsafe_code)]
fn spawn(
    path: &CString,
    argv: &[*const libc::c_char],
    envp: &[*const libc::c_char],
    stdout: &OwnedFd,
) -> Result<libc::pid_t, String> {
    use std::os::fd::AsRawFd;
    let mut pid: libc::pid_t = 0;
    // SAFETY: `actions` and `attributes` are initialised before use and destroyed after; every
    // pointer handed to posix_spawn points to a NUL-terminated string or a null-terminated list
    // of them (see `pointers`), all alive across the call. The child gets `stdout` as its
    // descriptor 1 (dup2 clears close-on-exec there) and an empty signal mask (this thread may
    // block SIGHUP, see `handoff`).
    let spawned = unsafe {
        let mut actions: libc::posix_spawn_file_actions_t = std::mem::zeroed();
        let mut attributes: libc::posix_spawnattr_t = std::mem::zeroed();
        let mut empty: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut empty);
        libc::posix_spawn_file_actions_init(&mut actions);
        libc::posix_spawn_file_actions_adddup2(&mut actions, stdout.as_raw_fd(), 1);
        libc::posix_spawnattr_init(&mut attributes);
        libc::posix_spawnattr_setsigmask(&mut attributes, &empty);
        libc::posix_spawnattr_setflags(&mut attributes, libc::POSIX_SPAWN_SETSIGMASK as _);
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
        return Err(io::Error::from_raw_os_error(spawned).to_string());
    }
    Ok(pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_what_the_program_prints_if_it_exits_0() {
        let printed = version_of(Path::new("/bin/echo"), Duration::from_secs(5)).unwrap();
        assert!(printed.starts_with("echo (GNU coreutils)"), "{printed:?}");
    }

    #[test]
    fn a_program_that_fails_or_is_missing_is_an_error() {
        assert!(version_of(Path::new("/bin/false"), Duration::from_secs(5)).is_err());
        assert!(version_of(Path::new("/no/such/file"), Duration::from_secs(5)).is_err());
    }

    #[test]
    fn a_program_that_takes_too_long_is_killed() {
        let dir = std::env::temp_dir().join(format!("sse-htmx-trial-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let script = dir.join("slow");
        std::fs::write(&script, "#!/bin/sh\nexec sleep 30\n").unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let started = Instant::now();
        let mut slow = version_of(&script, Duration::from_millis(100));
        // Another test's process may still hold the script's descriptor from its writing.
        while slow.as_ref().is_err_and(|e| e.contains("busy")) {
            slow = version_of(&script, Duration::from_millis(100));
        }
        let _ = std::fs::remove_dir_all(&dir);
        assert!(slow.unwrap_err().contains("took over"));
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}
