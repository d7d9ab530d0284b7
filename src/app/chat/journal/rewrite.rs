//! Replacing the journal's file with new bytes: they are written to a new file beside it, with
//! the same permissions (and owner, where the server may set it), which is then renamed over it.
//!
//! The old file is never written to. Until the rename it is whole, and after it the new one is,
//! so a crash at any point leaves one of the two, and perhaps the new file under its temporary
//! name (`NAME.SUFFIX`), which the caller deals with. A symbolic link stays one: the file it
//! points to is replaced.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt, PermissionsExt, fchown};
use std::path::{Path, PathBuf};

/// Replaces the file at `path`, open as `old`, with what `fill` writes to the new one, which
/// is on disk before the rename; returns the new file, open for appending. An error names the
/// temporary file; one of kind `AlreadyExists` ("NAME.SUFFIX exists") means that file was there
/// already, and nothing was done.
pub fn replace(
    path: &Path,
    old: &File,
    suffix: &str,
    fill: impl FnOnce(&mut File) -> io::Result<()>,
) -> io::Result<File> {
    let real = fs::canonicalize(path)?;
    let temporary = temporary_name(&real, suffix);
    let in_temporary = |error: io::Error| {
        let what = format!("{}: {error}", temporary.display());
        io::Error::new(error.kind(), what)
    };
    let meta = old.metadata()?;
    let mode = meta.permissions().mode() & 0o7777;
    // `create_new` never follows a link nor reuses a file that is there.
    let mut new = OpenOptions::new()
        .append(true)
        .create_new(true)
        .mode(mode)
        .open(&temporary)
        .map_err(|error| match error.kind() {
            io::ErrorKind::AlreadyExists => {
                let what = format!("{} exists", temporary.display());
                io::Error::new(error.kind(), what)
            }
            _ => in_temporary(error),
        })?;
    // The mode given at creation is narrowed by the umask; this sets it exactly.
    let written = new
        .set_permissions(Permissions::from_mode(mode))
        .and_then(|()| new.metadata())
        .and_then(|made| match (made.uid(), made.gid()) {
            owner if owner == (meta.uid(), meta.gid()) => Ok(()),
            _ => fchown(&new, Some(meta.uid()), Some(meta.gid())),
        })
        .and_then(|()| fill(&mut new))
        .and_then(|()| new.sync_all())
        .and_then(|()| fs::rename(&temporary, &real));
    if let Err(error) = written {
        let _ = fs::remove_file(&temporary);
        return Err(in_temporary(error));
    }
    // The rename is what makes the new file the journal; if a power cut loses it, the old file
    // is still there, whole.
    if let Some(dir) = real.parent() {
        let _ = File::open(dir).and_then(|dir| dir.sync_all());
    }
    Ok(new)
}

/// `NAME.SUFFIX`, beside `real`.
pub fn temporary_name(real: &Path, suffix: &str) -> PathBuf {
    let mut name = real.file_name().map(OsString::from).unwrap_or_default();
    name.push(suffix);
    real.with_file_name(name)
}
