//! The journal's file header, and what an existing file begins with: the header, nothing, the
//! first record of a journal from before the header, or something that is not a journal.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use super::record;

/// `FF` (never in UTF-8 text) and `SSEchat`.
pub const MAGIC: [u8; 8] = *b"\xFFSSEchat";
/// The version of the journal's format; records follow the header.
pub const VERSION: u32 = 1;
/// The bytes a journal begins with: [`MAGIC`], then [`VERSION`] as a little-endian u32.
pub const HEADER: [u8; 12] = *b"\xFFSSEchat\x01\x00\x00\x00";
pub const LEN: u64 = HEADER.len() as u64;

/// What an existing regular file begins with.
#[derive(Debug, PartialEq, Eq)]
pub enum Beginning {
    /// No bytes at all.
    Empty,
    /// The header of this version.
    Header,
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
        return Ok(Beginning::Foreign(format!(
            "is a journal of version {version}; this build reads version {VERSION}"
        )));
    }
    if start.starts_with(&record::MAGIC) {
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
