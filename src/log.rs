//! One line on stderr per request and per stream, unless `--quiet`.

use std::fmt::Display;
use std::time::Duration;

#[derive(Clone, Copy, Debug)]
pub struct Log {
    pub quiet: bool,
}

impl Log {
    /// `GET /connect 200 312B 0.2ms`. The path is escaped: it comes from the client and must not be
    /// able to forge log lines.
    pub fn request(
        &self,
        method: &dyn Display,
        path: &str,
        status: u16,
        bytes: usize,
        took: Duration,
    ) {
        if self.quiet {
            return;
        }
        eprintln!(
            "{method} {} {status} {bytes}B {:.1}ms",
            path.escape_debug(),
            took.as_secs_f64() * 1e3
        );
    }

    pub fn line(&self, line: std::fmt::Arguments<'_>) {
        if !self.quiet {
            eprintln!("{line}");
        }
    }
}
