//! `--store PATH`: an append-only journal of every feed's messages, read back at start.
//!
//! One record per message, little-endian:
//!
//! ```text
//! magic FF 63 68 32 | len u32 | crc32 u32 of len and payload | payload (len bytes)
//! payload: feed_len u8 | feed (a feed's name) | id u64 | at_ms u64 | name_len u16 | name (UTF-8)
//!          | text (UTF-8, the rest)
//! ```
//!
//! Records written before there were feeds have the magic `FF 63 68 31` and no feed: they are
//! read as the chat's, so an older journal is read as it is, and new records follow its own.
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
//! - A record whose id is not above the one before in its feed is skipped (two servers on one
//!   file).
//!
//! The journal is never compacted: it grows by one record per message (about 30 bytes plus
//! the name and text).

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::feeds::{CHAT, valid_name};
use super::message::Message;

mod crc32;

const MAGIC: [u8; 4] = [0xFF, b'c', b'h', b'2'];
/// A record with no feed, the chat's.
const MAGIC_CHAT: [u8; 4] = [0xFF, b'c', b'h', b'1'];
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
    /// Each feed's messages, the feeds in the order they first appear.
    pub feeds: Vec<(String, Held)>,
    /// One line each for the log: what was skipped or cut off, and where.
    pub problems: Vec<String>,
}

/// One feed's messages in the journal.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Held {
    /// The newest messages (at most `keep`), oldest first.
    pub messages: Vec<Message>,
    /// The id of the newest message read but not kept: the one just before `messages`.
    pub before: Option<u64>,
    /// The largest id read; the next run's ids start above it.
    pub last_id: Option<u64>,
}

impl Journal {
    /// Opens or creates the journal and reads the newest `keep` messages of each feed.
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
        let (mut loaded, tail) = read(&file, keep).map_err(named)?;
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

    /// Appends one message of `feed` (a valid name) as one write. A message too large to be
    /// read back (over 1 MiB; a valid one is under 9 KiB) is refused with `InvalidInput` and
    /// nothing is written.
    pub fn append(&mut self, feed: &str, message: &Message) -> io::Result<()> {
        let record = encode(feed, message);
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

/// One record's bytes: a message of `feed`.
pub fn encode(feed: &str, message: &Message) -> Vec<u8> {
    // A name is at most 40 characters, far below u16::MAX bytes; a longer one is cut at a
    // character boundary rather than written with a wrong length.
    let mut name_len = message.name.len().min(usize::from(u16::MAX));
    while !message.name.is_char_boundary(name_len) {
        name_len -= 1;
    }
    let name = &message.name.as_bytes()[..name_len];
    let mut payload = Vec::with_capacity(1 + feed.len() + FIXED + name.len() + message.text.len());
    // A feed's name is at most 64 bytes.
    payload.push(feed.len() as u8);
    payload.extend_from_slice(feed.as_bytes());
    payload.extend_from_slice(&message.id.to_le_bytes());
    payload.extend_from_slice(&message.at_ms.to_le_bytes());
    payload.extend_from_slice(&(name_len as u16).to_le_bytes());
    payload.extend_from_slice(name);
    payload.extend_from_slice(message.text.as_bytes());
    let len = u32::try_from(payload.len())
        .unwrap_or(u32::MAX)
        .to_le_bytes();
    let mut crc = crc32::Hasher::new();
    crc.update(&len);
    crc.update(&payload);
    let mut record = Vec::with_capacity(HEADER as usize + payload.len());
    record.extend_from_slice(&MAGIC);
    record.extend_from_slice(&len);
    record.extend_from_slice(&crc.finalize().to_le_bytes());
    record.extend_from_slice(&payload);
    record
}

/// Reads every record; also returns where an unreadable tail starts, and the file's length.
fn read(file: &File, keep: usize) -> io::Result<(Loaded, Option<(u64, u64)>)> {
    let len = file.metadata()?.len();
    let mut r = BufReader::new(file);
    // Each feed's held messages, kept in a queue while reading.
    let mut feeds: Vec<(String, Held, VecDeque<Message>)> = Vec::new();
    let mut problems = Vec::new();
    let mut pos = 0;
    // Where the current stretch of unreadable bytes began.
    let mut bad_from = None;
    while pos < len {
        let Some(((feed, message), size)) = record(&mut r, len - pos)? else {
            bad_from.get_or_insert(pos);
            pos = next_magic(&mut r, pos + 1, len)?;
            continue;
        };
        if let Some(start) = bad_from.take() {
            let skipped = pos - start;
            problems.push(format!(
                "skipped {skipped} unreadable bytes at offset {start}"
            ));
        }
        let at = match feeds.iter().position(|(name, ..)| *name == feed) {
            Some(at) => at,
            None => {
                feeds.push((feed, Held::default(), VecDeque::new()));
                feeds.len() - 1
            }
        };
        let (_, held, kept) = &mut feeds[at];
        match held.last_id {
            Some(last) if message.id <= last => problems.push(format!(
                "skipped the record at offset {pos}: its id {} is not above {last}",
                message.id
            )),
            _ => {
                held.last_id = Some(message.id);
                kept.push_back(message);
                if kept.len() > keep {
                    held.before = kept.pop_front().map(|m| m.id);
                }
            }
        }
        pos += size;
    }
    let feeds = feeds
        .into_iter()
        .map(|(name, held, kept)| {
            let messages = kept.into();
            (name, Held { messages, ..held })
        })
        .collect();
    let loaded = Loaded { feeds, problems };
    Ok((loaded, bad_from.map(|start| (start, len))))
}

/// The record at the reader's position and its size, or `None` if the bytes there are not one.
fn record(r: &mut impl Read, remaining: u64) -> io::Result<Option<((String, Message), u64)>> {
    if remaining < HEADER {
        return Ok(None);
    }
    let mut header = [0; HEADER as usize];
    r.read_exact(&mut header)?;
    let len_bytes: [u8; 4] = header[4..8].try_into().expect("4 bytes");
    let len = u32::from_le_bytes(len_bytes);
    let crc = u32::from_le_bytes(header[8..12].try_into().expect("4 bytes"));
    let with_feed = header[..4] == MAGIC;
    if !(with_feed || header[..4] == MAGIC_CHAT)
        || len > MAX_PAYLOAD
        || u64::from(len) > remaining - HEADER
    {
        return Ok(None);
    }
    let mut payload = vec![0; len as usize];
    r.read_exact(&mut payload)?;
    let mut hasher = crc32::Hasher::new();
    hasher.update(&len_bytes);
    hasher.update(&payload);
    if hasher.finalize() != crc {
        return Ok(None);
    }
    let decoded = if with_feed {
        decode_with_feed(payload)
    } else {
        decode(payload).map(|message| (CHAT.to_owned(), message))
    };
    Ok(decoded.map(|record| (record, HEADER + u64::from(len))))
}

/// A payload that starts with its feed's name.
fn decode_with_feed(mut payload: Vec<u8>) -> Option<(String, Message)> {
    let end = 1 + usize::from(*payload.first()?);
    let rest = payload.split_off(end.min(payload.len()));
    let feed = String::from_utf8(payload.split_off(1)).ok()?;
    Some((feed, decode(rest)?)).filter(|(feed, _)| valid_name(feed))
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
fn next_magic(r: &mut BufReader<&File>, from: u64, len: u64) -> io::Result<u64> {
    r.seek(SeekFrom::Start(from))?;
    let mut window = [0u8; 4];
    let mut pos = from;
    let mut byte = [0u8];
    while pos < len {
        r.read_exact(&mut byte)?;
        pos += 1;
        window = [window[1], window[2], window[3], byte[0]];
        if (window == MAGIC || window == MAGIC_CHAT) && pos >= from + 4 {
            r.seek(SeekFrom::Start(pos - 4))?;
            return Ok(pos - 4);
        }
    }
    Ok(len)
}

#[cfg(test)]
pub(super) mod tests;
