//! The program file this process runs, kept so that the process can replace its own image:
//! `SIGHUP` runs the file again (a new version, if it was replaced), once it is known to start.
//!
//! An upgrade: put the new file in place of the old one (`install`, or copy and `mv`), then
//! `kill -HUP PID`. The PID does not change, so under systemd the unit says
//! `ExecReload=/bin/kill -HUP $MAINPID` and `systemctl reload sse-htmx` upgrades.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

/// How long a new program file may take to print its version.
const CHECK_TIME: Duration = Duration::from_secs(5);

/// A program file, and the arguments to run it with.
#[derive(Clone, Debug)]
pub struct Program {
    pub path: PathBuf,
    /// The whole argument list, the program's name first.
    pub args: Vec<OsString>,
}

impl Program {
    /// The file this process was started from, resolved now (the name may point to another
    /// file later), and the arguments it was given.
    pub fn current() -> std::io::Result<Program> {
        let mut path = std::env::current_exe()?;
        // Once the file is replaced, the kernel names the one still running "PATH (deleted)",
        // and an image started from it again sees that name. The file to run next is PATH.
        if let Some(replaced) = path.to_str().and_then(|p| p.strip_suffix(" (deleted)")) {
            path = replaced.into();
        }
        Ok(Program {
            path,
            args: std::env::args_os().collect(),
        })
    }

    /// Does the file start, and take this server's flags? Run with them and `--version` after
    /// them, it must print `sse-htmx VERSION` and exit 0 within five seconds, so that a broken
    /// or foreign file, or a version that would refuse the flags, never replaces a working
    /// server.
    pub fn check(&self) -> Result<String, String> {
        let printed = crate::process::version_of(&self.path, &self.args, CHECK_TIME)?;
        let version = printed.trim();
        match version.strip_prefix("sse-htmx ") {
            Some(_) => Ok(version.to_owned()),
            None => Err(format!("`--version` printed {version:?}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_that_is_not_the_server_fails_the_check() {
        let program = |path: &str| Program {
            path: path.into(),
            args: Vec::new(),
        };
        assert!(program("/bin/false").check().is_err());
        assert!(program("/bin/echo").check().is_err(), "prints no version");
        assert!(program("/no/such/file").check().is_err());
    }
}
