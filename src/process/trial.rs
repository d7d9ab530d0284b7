//! A trial run of a program file: `PROGRAM --version`, with a deadline, before the process
//! replaces its image with it.

use std::ffi::OsString;
use std::io::Read;
use std::path::Path;
use std::time::{Duration, Instant};

/// Runs `program` with `args` (its name first, left out) and `--version` after them (without the
/// handoff's variable), and returns what it printed on stdout (at most 1 KiB) if it exited 0
/// within `patience`. It is killed past that. Its stderr is this process's, so that why it
/// failed reaches the server's stderr. (This server's own flags are read in order, so its
/// `--version` after them is answered only if it takes them all.)
pub fn version_of(program: &Path, args: &[OsString], patience: Duration) -> Result<String, String> {
    let mut args = args.to_vec();
    match args.first_mut() {
        Some(name) => *name = program.into(),
        None => args.push(program.into()),
    }
    args.push("--version".into());
    let mut child = super::spawn(program, &args, false, None).map_err(|e| e.to_string())?;
    let deadline = Instant::now() + patience;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        if Instant::now() >= deadline {
            child.signal_group(super::Signal::KILL);
            let _ = child.wait();
            return Err(format!("`--version` took over {patience:?}"));
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    // What it left running (in its group, which they keep from being given to another process)
    // would hold its stdout open, and the read below with it.
    child.signal_group(super::Signal::KILL);
    let mut printed = String::new();
    if let Some(stdout) = child.stdout.take() {
        let _ = stdout.take(1024).read_to_string(&mut printed);
    }
    if !status.success() {
        return Err(format!(
            "`--version` failed ({}), printing {printed:?}",
            super::describe(status)
        ));
    }
    Ok(printed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prints_what_the_program_prints_if_it_exits_0() {
        let printed = version_of(Path::new("/bin/echo"), &[], Duration::from_secs(5)).unwrap();
        assert!(printed.starts_with("echo (GNU coreutils)"), "{printed:?}");
    }

    /// The arguments come before `--version`, the program's name left out.
    #[test]
    fn the_arguments_come_first() {
        let args = ["sse-htmx", "a", "b c"].map(OsString::from);
        let printed = version_of(Path::new("/bin/echo"), &args, Duration::from_secs(5)).unwrap();
        assert_eq!(printed, "a b c --version\n");
    }

    /// The trial of a script of `body`, written in a directory of its own for the test `name`.
    fn trial_of_script(name: &str, body: &str, patience: Duration) -> Result<String, String> {
        let dir = std::env::temp_dir().join(format!("sse-htmx-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let script = dir.join("script");
        std::fs::write(&script, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755))
            .unwrap();
        let mut tried = version_of(&script, &[], patience);
        // Another test's process may still hold the script's descriptor from its writing.
        while tried.as_ref().is_err_and(|e| e.contains("busy")) {
            tried = version_of(&script, &[], patience);
        }
        let _ = std::fs::remove_dir_all(&dir);
        tried
    }

    /// A program that exits and leaves something running that holds its stdout open.
    #[test]
    fn what_it_left_running_does_not_hold_the_trial() {
        let started = Instant::now();
        let body = "sleep 30 &\necho sse-htmx 9";
        let printed = trial_of_script("trial-bg", body, Duration::from_secs(5));
        assert_eq!(printed.unwrap(), "sse-htmx 9\n");
        assert!(started.elapsed() < Duration::from_secs(10));
    }

    #[test]
    fn a_program_that_fails_or_is_missing_is_an_error() {
        assert!(version_of(Path::new("/bin/false"), &[], Duration::from_secs(5)).is_err());
        assert!(version_of(Path::new("/no/such/file"), &[], Duration::from_secs(5)).is_err());
    }

    #[test]
    fn a_program_that_takes_too_long_is_killed() {
        let started = Instant::now();
        let slow = trial_of_script("trial", "exec sleep 30", Duration::from_millis(100));
        assert!(slow.unwrap_err().contains("took over"));
        assert!(started.elapsed() < Duration::from_secs(10));
    }
}
