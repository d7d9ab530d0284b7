//! The journal's file header, and what an existing file begins with: the header, the header of
//! version 1, nothing, the first record of a journal from before the header, or something that
//! is not a journal.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::Path;

use super::record;

/// `FF` (never in UTF-8 text) and `SSEchat`.
pub const MAGIC: [u8; 8] = *b"\xFFSSEchat";
/// The version of the journal's format; records follow the header. Version 2 records name
/// their feed; version 1 had only the chat's (see `record`).
pub const VERSION: u32 = 2;
/// The bytes a journal begins with: [`MAGIC`], then [`VERSION`] as a little-endian u32.
pub const HEADER: [u8; 12] = *b"\xFFSSEchat\x02\x00\x00\x00";
pub const LEN: u64 = HEADER.len() as u64;

/// What an existing regular file begins with.
#[derive(Debug, PartialEq, Eq)]
pub enum Beginning {
    /// No bytes at all.
    Empty,
    /// The header of this version.
    Header,
    /// The header of version 1: its records are all the chat's, and read as they are.
    Version1,
    /// A whole, valid record: a journal written before the header existed.
    Predecessor,
    /// Anything else; the string says what, for the error.
    Foreign(String),
}

/// Reads the start of `file` (of `len` bytes) without moving its position.
pub fn beginning(file: &File, len: u64) -> io::Result<Beginning> {
    if len == 0 {
        return Ok(Beginning::Empty);
    }
    let mut start = vec![0; len.min(LEN) as usize];
    file.read_exact_at(&mut start, 0)?;
    if start == HEADER {
        return Ok(Beginning::Header);
    }
    if start.len() == HEADER.len() && start[..MAGIC.len()] == MAGIC {
        let version = u32::from_le_bytes(start[MAGIC.len()..].try_into().expect("4 bytes"));
        if version == 1 {
            return Ok(Beginning::Version1);
        }
        return Ok(Beginning::Foreign(format!(
            "is a journal of version {version}; this build reads version {VERSION}"
        )));
    }
    if start.starts_with(&record::MAGIC_CHAT) {
        // The length field bounds what this reads to one record, at most about 1 MiB.
        let whole = len.min(record::PREFIX + u64::from(record::MAX_PAYLOAD));
        let mut first = vec![0; whole as usize];
        file.read_exact_at(&mut first, 0)?;
        if super::decode(&first).is_some() {
            return Ok(Beginning::Predecessor);
        }
        return Ok(Beginning::Foreign(
            "is not a journal: it begins like a record, but that record is damaged".into(),
        ));
    }
    Ok(Beginning::Foreign(
        "is not a journal: it does not begin with the journal header".into(),
    ))
}

/// Gives a version 1 journal, already open as `reading`, this version's header, in place: its
/// records stay as they are, and new ones follow them. The four bytes are written before any
/// record of this version, so a build that reads only version 1 never meets one; it refuses
/// the file instead.
pub fn upgrade(path: &Path, reading: &File) -> io::Result<()> {
    let file = OpenOptions::new().write(true).open(path)?;
    let (looked, opened) = (reading.metadata()?, file.metadata()?);
    if (looked.dev(), looked.ino()) != (opened.dev(), opened.ino()) {
        return Err(super::opening::changed("was replaced"));
    }
    file.write_all_at(&HEADER[MAGIC.len()..], MAGIC.len() as u64)?;
    file.sync_data()
}
