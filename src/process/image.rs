//! Replacing this process's image with `execve`, descriptors kept open across it: the same PID,
//! and what the image before hands over is taken back by number in the next.
//!
//! Every descriptor the process opens is close-on-exec (Rust's std, socket2 and rustix open them
//! so), so the new image starts with its standard streams and the descriptors named here only.

use std::ffi::{CString, OsString};
use std::fs::File;
use std::io;
use std::os::fd::{BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

use rustix::io::{FdFlags, fcntl_setfd};

/// The environment variable that names what an image hands over to the next.
pub const HANDOFF_VAR: &str = "SSE_HTMX_HANDOFF";

pub(super) type CStrings = (CString, Vec<CString>, Vec<CString>);

/// The program, its arguments and this process's environment, with [`HANDOFF_VAR`] set to
/// `handoff` if there is one, and without it otherwise.
pub(super) fn c_strings(
    program: &Path,
    args: &[OsString],
    handoff: Option<&str>,
) -> Option<CStrings> {
    let program = CString::new(program.as_os_str().as_bytes()).ok()?;
    let args = args
        .iter()
        .map(|arg| CString::new(arg.as_bytes()).ok())
        .collect::<Option<Vec<_>>>()?;
    let mut env = Vec::new();
    for (name, value) in std::env::vars_os() {
        if name.as_bytes() != HANDOFF_VAR.as_bytes() {
            let mut pair = name.as_bytes().to_vec();
            pair.push(b'=');
            pair.extend_from_slice(value.as_bytes());
            env.push(CString::new(pair).ok()?);
        }
    }
    if let Some(handoff) = handoff {
        env.push(CString::new(format!("{HANDOFF_VAR}={handoff}")).ok()?);
    }
    Some((program, args, env))
}

/// The pointers to `strings`, and a null pointer after them, as `execve` takes them.
pub(super) fn pointers(strings: &[CString]) -> Vec<*const libc::c_char> {
    let mut list: Vec<*const libc::c_char> = strings.iter().map(|s| s.as_ptr()).collect();
    list.push(std::ptr::null());
    list
}

/// Runs `program` with `args` (its name first) in place of this image, `handoff` in its
/// environment and `inherited` open across the exec. Returns only on failure, with every
/// descriptor close-on-exec again.
///
/// The signals the server takes stay blocked across it, as they are in every thread (see
/// `signals`): one that comes meanwhile waits, pending, for the new image to take it.
pub fn replace_image(
    program: &Path,
    args: &[OsString],
    handoff: &str,
    inherited: &[BorrowedFd<'_>],
) -> io::Error {
    let Some((program, args, env)) = c_strings(program, args, Some(handoff)) else {
        return io::Error::new(io::ErrorKind::InvalidInput, "a NUL byte in an argument");
    };
    let (argv, envp) = (pointers(&args), pointers(&env));
    let close_on_exec = |flags: FdFlags| {
        for fd in inherited {
            // Cannot fail on a descriptor the caller holds open.
            let _ = fcntl_setfd(fd, flags);
        }
    };
    close_on_exec(FdFlags::empty());
    // SAFETY: `program` and every pointer in `argv` and `envp` point to NUL-terminated strings
    // owned by `program`, `args` and `env`, which outlive the call; both lists end with a null
    // pointer. On success the call does not return; on failure it changes nothing but errno.
    #[allow(unsafe_code)]
    unsafe {
        libc::execve(program.as_ptr(), argv.as_ptr(), envp.as_ptr())
    };
    let error = io::Error::last_os_error();
    close_on_exec(FdFlags::CLOEXEC);
    error
}

/// Owns descriptor number `fd`, handed over by the image before, close-on-exec again. To be
/// called at start, once for each number, before any other descriptor is opened.
#[allow(unsafe_code)]
pub fn take_inherited(fd: RawFd) -> Result<OwnedFd, String> {
    if fd < 3 {
        return Err(format!("descriptor {fd} is a standard stream"));
    }
    // SAFETY: fcntl(F_SETFD) takes the number as a plain integer, touches no memory, and fails
    // with EBADF if nothing is open there. If it is open, it was opened by the image before this
    // one for this image alone: nothing else in this process knows the number, and the caller
    // takes each once, so this `OwnedFd` is its only owner.
    unsafe {
        if libc::fcntl(fd, libc::F_SETFD, libc::FD_CLOEXEC) != 0 {
            return Err(format!("descriptor {fd}: {}", io::Error::last_os_error()));
        }
        Ok(OwnedFd::from_raw_fd(fd))
    }
}

/// An anonymous file in memory, close-on-exec, or `None` if the kernel has no `memfd_create`.
pub fn memory_file(name: &std::ffi::CStr) -> Option<File> {
    rustix::fs::memfd_create(name, rustix::fs::MemfdFlags::CLOEXEC)
        .ok()
        .map(File::from)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::FileExt;

    #[test]
    fn a_memory_file_reads_back_what_was_written() {
        let file = memory_file(c"test").expect("memfd_create");
        file.write_all_at(b"held messages", 0).unwrap();
        let mut read = [0; 13];
        file.read_exact_at(&mut read, 0).unwrap();
        assert_eq!(&read, b"held messages");
    }

    #[test]
    fn a_standard_stream_or_a_closed_number_is_not_taken() {
        assert!(take_inherited(1).is_err());
        assert!(take_inherited(RawFd::MAX - 1).is_err());
    }

    #[test]
    fn the_handoff_variable_is_set_or_left_out() {
        let args = [OsString::from("x")];
        let (_, _, env) = c_strings(Path::new("/bin/true"), &args, Some("listener=3")).unwrap();
        let set = |env: &[CString]| {
            env.iter()
                .filter(|pair| pair.as_bytes().starts_with(HANDOFF_VAR.as_bytes()))
                .count()
        };
        assert_eq!(set(&env), 1);
        let (_, _, env) = c_strings(Path::new("/bin/true"), &args, None).unwrap();
        assert_eq!(set(&env), 0);
    }
}
