//! Opening the journal's path without harm: read-only first, so that a FIFO, a device or a
//! directory is refused before anything is written, then for appending, and only if it is
//! still the same file.

use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

use rustix::fs::{FlockOperation, flock};
use rustix::io::Errno;

/// The existing regular file at `path` opened read-only, or `None` if there is nothing there.
pub fn open_to_read(path: &Path) -> io::Result<Option<File>> {
    // Without O_NONBLOCK, opening a FIFO waits for a writer: the server would hang before it
    // could say that the path is not a file. It changes nothing for a regular file.
    let opened = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path);
    let file = match opened {
        Ok(file) => file,
        Err(error) if error.kind() == io::ErrorKind::NotFound => return Ok(None),
        // A socket cannot be opened at all; say what it is rather than "no such device".
        Err(error) => match std::fs::metadata(path) {
            Ok(meta) if !meta.is_file() => return Err(not_a_file(meta)),
            _ => return Err(error),
        },
    };
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Err(not_a_file(meta));
    }
    Ok(Some(file))
}

/// The file at `path` opened for appending, if it is still the one `reading` looked at.
pub fn open_to_append(path: &Path, reading: &File) -> io::Result<File> {
    // Not O_NONBLOCK: it would stay on the handle that every append writes through. The path was a
    // regular file an instant ago, and the comparison below catches one swapped in since.
    let file = OpenOptions::new().append(true).open(path)?;
    let (looked, opened) = (reading.metadata()?, file.metadata()?);
    if (looked.dev(), looked.ino()) != (opened.dev(), opened.ino()) {
        return Err(changed("was replaced"));
    }
    lock(&file)?;
    Ok(file)
}

/// Takes the journal's lock (`flock`, exclusive, held as long as `file` is open), or says that
/// another server holds it: two servers on one journal would each append to the file the other's
/// compaction replaced, and lose those messages. A file system without locks (some network
/// ones) goes without, as before.
pub fn lock(file: &File) -> io::Result<()> {
    match flock(file, FlockOperation::NonBlockingLockExclusive) {
        Err(Errno::WOULDBLOCK) => Err(io::Error::new(
            io::ErrorKind::WouldBlock,
            "is in use by another server; give each its own --store",
        )),
        Ok(()) | Err(_) => Ok(()),
    }
}

/// The error for a path that is something other than a regular file.
fn not_a_file(meta: Metadata) -> io::Error {
    let kind = meta.file_type();
    let what = if kind.is_dir() {
        "a directory"
    } else if kind.is_fifo() {
        "a FIFO"
    } else if kind.is_char_device() {
        "a character device"
    } else if kind.is_block_device() {
        "a block device"
    } else if kind.is_socket() {
        "a socket"
    } else {
        return io::Error::other("is not a regular file");
    };
    io::Error::new(
        io::ErrorKind::InvalidInput,
        format!("is {what}, not a journal file"),
    )
}

pub fn changed(what: &str) -> io::Error {
    io::Error::other(format!("{what} while the journal was being opened"))
}
