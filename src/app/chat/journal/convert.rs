//! Gives a journal written before the file header existed its header: the header and the old
//! bytes, unchanged, replace it (see `rewrite`). If the new file is left behind under its
//! temporary name by a crash, the next start says so and stops rather than overwrite it.

use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

use super::{header, rewrite};

/// The suffix of the file a conversion writes before it is renamed over the journal.
pub const SUFFIX: &str = ".converting";

/// Converts the journal at `path`, already open as `old`.
pub fn convert(path: &Path, old: &File) -> io::Result<()> {
    rewrite::replace(path, old, SUFFIX, |new| {
        new.write_all(&header::HEADER)?;
        rewrite::copy(old, 0, new).map(drop)
    })
    .map_err(|error| {
        let what = match error.kind() {
            io::ErrorKind::AlreadyExists => format!(
                "{error}: an earlier conversion to the new journal format was interrupted; \
                 remove it (the journal itself is whole) and start again"
            ),
            _ => format!("cannot convert it to the format with a file header in {error}"),
        };
        io::Error::new(error.kind(), what)
    })?;
    // Opened again as the journal by the caller, which locks it then.
    Ok(())
}
