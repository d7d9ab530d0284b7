//! Gives a journal written before the file header existed its header: the header and the old
//! bytes, unchanged, are written to a new file beside it, which is then renamed over it.
//!
//! The old file is never written to. Until the rename it is whole, and after it the new one is,
//! so a crash at any point leaves one of the two; if it leaves the new file behind under its
//! temporary name, the next start says so and stops rather than overwrite it.

use std::ffi::OsString;
use std::fs::{self, File, OpenOptions, Permissions};
use std::io::{self, Write};
use std::os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt, PermissionsExt, fchown};
use std::path::{Path, PathBuf};

use super::header;

/// Converts the journal at `path`, already open as `old`. A symbolic link stays one: the file
/// it points to is replaced.
pub fn convert(path: &Path, old: &File) -> io::Result<()> {
    let real = fs::canonicalize(path)?;
    let temporary = temporary_name(&real);
    let meta = old.metadata()?;
    let mode = meta.permissions().mode() & 0o7777;
    // `create_new` never follows a link nor reuses a file that is there.
    let mut new = match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&temporary)
    {
        Ok(new) => new,
        Err(error) if error.kind() == io::ErrorKind::AlreadyExists => {
            return Err(io::Error::new(
                error.kind(),
                format!(
                    "{} exists: an earlier conversion to the new journal format was \
                     interrupted; remove it (the journal itself is whole) and start again",
                    temporary.display()
                ),
            ));
        }
        Err(error) => return Err(in_temporary(&temporary, error)),
    };
    let written = fill(&mut new, old, &meta, mode).and_then(|()| fs::rename(&temporary, &real));
    if let Err(error) = written {
        let _ = fs::remove_file(&temporary);
        return Err(in_temporary(&temporary, error));
    }
    // The rename is what makes the new file the journal; if a power cut loses it, the old file
    // is still there, whole, and is converted again.
    if let Some(dir) = real.parent() {
        let _ = File::open(dir).and_then(|dir| dir.sync_all());
    }
    Ok(())
}

/// The header and the old file's bytes, with the old file's permissions and (where allowed)
/// owner, on disk before the rename.
fn fill(new: &mut File, old: &File, meta: &fs::Metadata, mode: u32) -> io::Result<()> {
    // The mode given at creation is narrowed by the umask; this sets it exactly.
    new.set_permissions(Permissions::from_mode(mode))?;
    let made = new.metadata()?;
    if (made.uid(), made.gid()) != (meta.uid(), meta.gid()) {
        fchown(&*new, Some(meta.uid()), Some(meta.gid()))?;
    }
    new.write_all(&header::HEADER)?;
    // A plain loop rather than `io::copy`, whose fast paths between two files cost the static
    // binary about 10 KB.
    let mut buffer = vec![0; 64 * 1024];
    let mut at = 0;
    loop {
        let n = old.read_at(&mut buffer, at)?;
        if n == 0 {
            break;
        }
        new.write_all(&buffer[..n])?;
        at += n as u64;
    }
    new.sync_all()
}

/// An error while writing the new file; the journal's own path is named by the caller.
fn in_temporary(temporary: &Path, error: io::Error) -> io::Error {
    let what = format!(
        "cannot convert it to the format with a file header in {}: {error}",
        temporary.display()
    );
    io::Error::new(error.kind(), what)
}

/// `NAME.converting`, beside `real`.
pub fn temporary_name(real: &Path) -> PathBuf {
    let mut name = real.file_name().map(OsString::from).unwrap_or_default();
    name.push(".converting");
    real.with_file_name(name)
}
