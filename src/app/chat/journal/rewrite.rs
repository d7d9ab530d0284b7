//! Replacing the journal's file with new bytes: they are written to a new file beside it, with
//! the same permissions (and owner, where the server may set it), which is then renamed over it.
//!
//! The old file is never written to. Until the rename it is whole, and after it the new one is,
//! so a crash at any point leaves one of the two, and perhaps the new file under its temporary
//! name (`NAME.SUFFIX`), which the caller deals with. A symbolic link stays one: the file it
//! points to is replaced.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt, fchown};
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
    let beside = write_beside(path, old, suffix, fill)?;
    let real = beside.real.clone();
    let new = beside.rename(|_| Ok(()))?;
    sync_directory(&real);
    Ok(new)
}

/// A new file, written and on disk beside the one it is to replace, under its temporary name.
pub struct Beside {
    file: File,
    temporary: PathBuf,
    /// The file it replaces, links followed.
    pub real: PathBuf,
}

/// Writes the file that is to replace `path` (open as `old`): what `fill` writes, on disk (see
/// [`replace`]).
pub fn write_beside(
    path: &Path,
    old: &File,
    suffix: &str,
    fill: impl FnOnce(&mut File) -> io::Result<()>,
) -> io::Result<Beside> {
    let real = fs::canonicalize(path)?;
    let temporary = temporary_name(&real, suffix);
    let meta = old.metadata()?;
    let mode = meta.permissions().mode() & 0o7777;
    // `create_new` never follows a link nor reuses a file that is there.
    let mut file = OpenOptions::new()
        .append(true)
        .create_new(true)
        .mode(mode)
        .open(&temporary)
        .map_err(|error| match error.kind() {
            io::ErrorKind::AlreadyExists => {
                let what = format!("{} exists", temporary.display());
                io::Error::new(error.kind(), what)
            }
            _ => in_file(&temporary, error),
        })?;
    // The mode given at creation is narrowed by the umask; this sets it exactly.
    let written = file
        .set_permissions(Permissions::from_mode(mode))
        .and_then(|()| file.metadata())
        .and_then(|made| match (made.uid(), made.gid()) {
            owner if owner == (meta.uid(), meta.gid()) => Ok(()),
            _ => fchown(&file, Some(meta.uid()), Some(meta.gid())),
        })
        .and_then(|()| fill(&mut file))
        .and_then(|()| file.sync_all());
    let beside = Beside {
        file,
        temporary,
        real,
    };
    match written {
        Ok(()) => Ok(beside),
        Err(error) => Err(beside.remove(error)),
    }
}

impl Beside {
    /// Appends what `last` writes (not waited onto the disk: as an append to the journal is
    /// not) and renames the new file over the old; returns it, open for appending. On an error
    /// the new file is removed, and the old one stays.
    pub fn rename(mut self, last: impl FnOnce(&mut File) -> io::Result<()>) -> io::Result<File> {
        match last(&mut self.file).and_then(|()| fs::rename(&self.temporary, &self.real)) {
            Ok(()) => Ok(self.file),
            Err(error) => Err(self.remove(error)),
        }
    }

    /// Removes the new file, after `error`, which comes back naming it.
    fn remove(self, error: io::Error) -> io::Error {
        let _ = fs::remove_file(&self.temporary);
        in_file(&self.temporary, error)
    }
}

/// Puts a rename in the directory of `real` on disk. Until then a power cut can lose it, and
/// leave the old file there, whole.
pub fn sync_directory(real: &Path) {
    if let Some(dir) = real.parent() {
        let _ = File::open(dir).and_then(|dir| dir.sync_all());
    }
}

/// Appends to `to` what `from` holds after `at`; returns how many bytes.
pub fn copy(from: &File, at: u64, to: &mut File) -> io::Result<u64> {
    // A plain loop rather than `io::copy`, whose fast paths between two files cost the static
    // binary about 10 KB.
    let mut buffer = vec![0; 64 * 1024];
    let mut copied = 0;
    loop {
        let n = from.read_at(&mut buffer, at + copied)?;
        if n == 0 {
            return Ok(copied);
        }
        to.write_all(&buffer[..n])?;
        copied += n as u64;
    }
}

/// `error`, naming `file`.
fn in_file(file: &Path, error: io::Error) -> io::Error {
    io::Error::new(error.kind(), format!("{}: {error}", file.display()))
}

/// `NAME.SUFFIX`, beside `real`.
pub fn temporary_name(real: &Path, suffix: &str) -> PathBuf {
    let mut name = real.file_name().map(OsString::from).unwrap_or_default();
    name.push(suffix);
    real.with_file_name(name)
}
