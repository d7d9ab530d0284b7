//! `--store PATH`: an append-only journal of messages, read back at start.
//!
//! One record per message, little-endian:
//!
//! ```text
//! magic FF 63 68 31 | len u32 | crc32 u32 of len and payload | payload (len bytes)
//! payload: id u64 | at_ms u64 | name_len u16 | name (UTF-8) | text (UTF-8, the rest)
//! ```
//!
//! The magic starts with `FF`, a byte UTF-8 text never contains, and the checksum covers the
//! length, so a record cut short or damaged is recognised and the reader finds the next one by
//! its magic.
//!
//! # What survives what
//! [`Journal::append`] is one `write_all` to a file opened with `O_APPEND`: when it returns (and
//! the request is answered `201`) the record is in the kernel's page cache, so a `kill -9` of the
//! server loses nothing. There is no fsync per message. A power cut or kernel crash loses what
//! the kernel had not yet written back: on Linux, data older than `vm.dirty_expire_centisecs`
//! (30 s) is written by a flusher that wakes every `vm.dirty_writeback_centisecs` (5 s), so up to
//! about 35 s of messages. [`Journal::sync`] narrows that: called every S seconds it bounds the
//! loss to S; the server should at least call it when it stops.
//!
//! # Reading back
//! [`Journal::open`] reads the file once, front to back, keeping only the newest messages. It
//! never refuses to start over the file's content; each problem becomes a line for the log:
//! - Bytes that are not a valid record, followed by a valid one, are skipped.
//! - Bytes that are not a valid record at the end (a write torn by a crash, or damage) are cut
//!   off, so that the next append starts on a record boundary.
//! - A record whose id is not above the one before is skipped (two servers on one file).
//!
//! The journal is never compacted: it grows by one record per message (about 30 bytes plus
//! the name and text).

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::message::Message;

const MAGIC: [u8; 4] = [0xFF, b'c', b'h', b'1'];
const HEADER: u64 = 12;
/// Far above any real record (a 2,000-character text is at most 8,000 bytes); a length above it
/// is damage, and it bounds what a damaged length makes the reader allocate.
const MAX_PAYLOAD: u32 = 1 << 20;
const FIXED: usize = 18;

/// An open journal, appending.
#[derive(Debug)]
pub struct Journal {
    file: File,
    path: PathBuf,
}

/// What [`Journal::open`] read.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Loaded {
    /// The newest messages (at most `keep`), oldest first.
    pub messages: Vec<Message>,
    /// The id of the newest message read but not kept: the one just before `messages`.
    pub before: Option<u64>,
    /// The largest id read; the next run's ids start above it.
    pub last_id: Option<u64>,
    /// One line each for the log: what was skipped or cut off, and where.
    pub problems: Vec<String>,
}

impl Journal {
    /// Opens or creates the journal and reads its newest `keep` messages.
    ///
    /// Fails only if the file cannot be opened, read, or cut (a missing directory, no
    /// permission); the error names the path.
    pub fn open(path: &Path, keep: usize) -> io::Result<(Journal, Loaded)> {
        let named = |e: io::Error| io::Error::new(e.kind(), format!("{}: {e}", path.display()));
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(named)?;
        let len = file.metadata().map_err(named)?.len();
        let (mut loaded, tail) = read(&mut &file, len, keep).map_err(named)?;
        if let Some((cut_at, len)) = tail {
            file.set_len(cut_at).map_err(named)?;
            loaded.problems.push(format!(
                "cut off {} bytes at offset {cut_at} that are not a whole record \
                 (a write torn by a crash, or damage)",
                len - cut_at
            ));
        }
        for problem in &mut loaded.problems {
            *problem = format!("{}: {problem}", path.display());
        }
        let journal = Journal {
            file,
            path: path.to_owned(),
        };
        Ok((journal, loaded))
    }

    /// Appends one message as one write. A message too large to be read back (over 1 MiB; a
    /// valid one is under 9 KiB) is refused with `InvalidInput` and nothing is written.
    pub fn append(&mut self, message: &Message) -> io::Result<()> {
        let record = encode(message);
        if record.len() as u64 > HEADER + u64::from(MAX_PAYLOAD) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("message {} is too large for the journal", message.id),
            ));
        }
        self.file.write_all(&record)
    }

    /// Asks the disk to hold what was appended (`fdatasync`).
    pub fn sync(&self) -> io::Result<()> {
        self.file.sync_data()
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// One record's bytes.
pub fn encode(message: &Message) -> Vec<u8> {
    // A name is at most 40 characters, far below u16::MAX bytes; a longer one is cut at a
    // character boundary rather than written with a wrong length.
    let mut name_len = message.name.len().min(usize::from(u16::MAX));
    while !message.name.is_char_boundary(name_len) {
        name_len -= 1;
    }
    let name = &message.name.as_bytes()[..name_len];
    let mut payload = Vec::with_capacity(FIXED + name.len() + message.text.len());
    payload.extend_from_slice(&message.id.to_le_bytes());
    payload.extend_from_slice(&message.at_ms.to_le_bytes());
    payload.extend_from_slice(&(name_len as u16).to_le_bytes());
    payload.extend_from_slice(name);
    payload.extend_from_slice(message.text.as_bytes());
    let len = u32::try_from(payload.len())
        .unwrap_or(u32::MAX)
        .to_le_bytes();
    let mut crc = crc32fast::Hasher::new();
    crc.update(&len);
    crc.update(&payload);
    let mut record = Vec::with_capacity(HEADER as usize + payload.len());
    record.extend_from_slice(&MAGIC);
    record.extend_from_slice(&len);
    record.extend_from_slice(&crc.finalize().to_le_bytes());
    record.extend_from_slice(&payload);
    record
}

/// A file or bytes in memory, read as one type (one copy of the reading code in the binary).
trait ReadSeek: Read + Seek {}
impl<T: Read + Seek> ReadSeek for T {}

/// Messages as records, oldest first: what [`decode_all`] reads back.
pub fn encode_all<'a>(messages: impl IntoIterator<Item = &'a Message>) -> Vec<u8> {
    messages.into_iter().flat_map(encode).collect()
}

/// The newest `keep` messages of records made by [`encode_all`] (or read from a journal file).
pub fn decode_all(records: &[u8], keep: usize) -> Loaded {
    let len = records.len() as u64;
    // Reading from memory fails only at an unexpected end, which `record` rules out.
    let Ok((mut loaded, tail)) = read(&mut io::Cursor::new(records), len, keep) else {
        return Loaded::default();
    };
    if let Some((start, len)) = tail {
        let problem = format!("{} bytes at offset {start} are not a record", len - start);
        loaded.problems.push(problem);
    }
    loaded
}

/// Reads every record of the `len` bytes of `source`; also returns where an unreadable tail
/// starts, and `len`.
fn read(
    source: &mut dyn ReadSeek,
    len: u64,
    keep: usize,
) -> io::Result<(Loaded, Option<(u64, u64)>)> {
    let mut r = BufReader::new(source);
    let mut kept = VecDeque::new();
    let mut loaded = Loaded::default();
    let mut pos = 0;
    // Where the current stretch of unreadable bytes began.
    let mut bad_from = None;
    while pos < len {
        let Some((message, size)) = record(&mut r, len - pos)? else {
            bad_from.get_or_insert(pos);
            pos = next_magic(&mut r, pos + 1, len)?;
            continue;
        };
        if let Some(start) = bad_from.take() {
            let skipped = pos - start;
            let problem = format!("skipped {skipped} unreadable bytes at offset {start}");
            loaded.problems.push(problem);
        }
        match loaded.last_id {
            Some(last) if message.id <= last => loaded.problems.push(format!(
                "skipped the record at offset {pos}: its id {} is not above {last}",
                message.id
            )),
            _ => {
                loaded.last_id = Some(message.id);
                kept.push_back(message);
                if kept.len() > keep {
                    loaded.before = kept.pop_front().map(|m| m.id);
                }
            }
        }
        pos += size;
    }
    loaded.messages = kept.into();
    Ok((loaded, bad_from.map(|start| (start, len))))
}

/// The record at the reader's position and its size, or `None` if the bytes there are not one.
fn record(r: &mut impl Read, remaining: u64) -> io::Result<Option<(Message, u64)>> {
    if remaining < HEADER {
        return Ok(None);
    }
    let mut header = [0; HEADER as usize];
    r.read_exact(&mut header)?;
    let len_bytes: [u8; 4] = header[4..8].try_into().expect("4 bytes");
    let len = u32::from_le_bytes(len_bytes);
    let crc = u32::from_le_bytes(header[8..12].try_into().expect("4 bytes"));
    if header[..4] != MAGIC || len > MAX_PAYLOAD || u64::from(len) > remaining - HEADER {
        return Ok(None);
    }
    let mut payload = vec![0; len as usize];
    r.read_exact(&mut payload)?;
    let mut hasher = crc32fast::Hasher::new();
    hasher.update(&len_bytes);
    hasher.update(&payload);
    if hasher.finalize() != crc {
        return Ok(None);
    }
    Ok(decode(payload).map(|m| (m, HEADER + u64::from(len))))
}

fn decode(mut payload: Vec<u8>) -> Option<Message> {
    if payload.len() < FIXED {
        return None;
    }
    let id = u64::from_le_bytes(payload[0..8].try_into().ok()?);
    let at_ms = u64::from_le_bytes(payload[8..16].try_into().ok()?);
    let name_len = usize::from(u16::from_le_bytes(payload[16..18].try_into().ok()?));
    let text = payload.split_off(
        FIXED
            .checked_add(name_len)
            .filter(|&end| end <= payload.len())?,
    );
    let name = String::from_utf8(payload.split_off(FIXED)).ok()?;
    let text = String::from_utf8(text).ok()?;
    Some(Message {
        id,
        name,
        text,
        at_ms,
    })
}

/// Positions the reader at the first magic at or after `from` and returns its offset, or `len`.
fn next_magic(r: &mut BufReader<&mut dyn ReadSeek>, from: u64, len: u64) -> io::Result<u64> {
    r.seek(SeekFrom::Start(from))?;
    let mut window = [0u8; 4];
    let mut pos = from;
    let mut byte = [0u8];
    while pos < len {
        r.read_exact(&mut byte)?;
        pos += 1;
        window = [window[1], window[2], window[3], byte[0]];
        if window == MAGIC && pos >= from + 4 {
            r.seek(SeekFrom::Start(pos - 4))?;
            return Ok(pos - 4);
        }
    }
    Ok(len)
}

#[cfg(test)]
pub(super) mod tests;
