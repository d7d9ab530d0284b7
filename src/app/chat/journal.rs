//! `--store PATH`: an append-only journal of messages, read back at start.
//!
//! A file header, then one record per message, little-endian:
//!
//! ```text
//! header: FF 53 53 45 63 68 61 74 ("\xFFSSEchat") | version u32 (1)
//! record: magic FF 63 68 31 | len u32 | crc32 u32 of len and payload | payload (len bytes)
//! payload: id u64 | at_ms u64 | name_len u16 | name (UTF-8) | text (UTF-8, the rest)
//! ```
//!
//! Both magics start with `FF`, a byte UTF-8 text never contains, and the checksum covers the
//! length, so a record cut short or damaged is recognised and the reader finds the next one by
//! its magic. [`encode`] and [`decode`] turn one message into a record and back, for any other
//! use of the same bytes.
//!
//! # Only its own file
//! [`Journal::open`] writes only to a file that is a journal, so that a wrong `--store` (a text
//! file, `/etc/passwd`) costs an error and nothing else. It opens the path read-only first and
//! looks; only then does it open it for appending, and it never creates over or truncates an
//! existing file. It refuses, leaving the file as it was (content, size and time):
//! - anything that is not a regular file (a directory, a FIFO, a device, a socket, or a link
//!   to one of these);
//! - a file that does not begin with the header of this version.
//!
//! A path where nothing is yet is created with the header. So is an empty file (0 bytes): it
//! holds nothing to lose, and the journal's earlier format created one on every first start.
//! A file in that earlier format (records from its first byte, no header) is recognised by
//! its first record, whole and with a good checksum, and converted: the header and its bytes
//! go to `PATH.converting`, with the same permissions (and owner, where the server may set it),
//! which is renamed over it, and the log says so once. If `PATH.converting` is already there, a
//! conversion was interrupted: the journal is kept and the server stops, saying to remove it. A
//! file that begins with the record magic and a damaged record is refused like any other.
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
//! [`Journal::open`] reads the records once, front to back, keeping only the newest messages.
//! Once the header is good it never refuses to start over the records; each problem becomes a
//! line for the log:
//! - Bytes that are not a valid record, followed by a valid one, are skipped.
//! - Bytes that are not a valid record at the end (a write torn by a crash, or damage) are cut
//!   off, so that the next append starts on a record boundary. The header is never cut.
//! - A record whose id is not above the one before is skipped (two servers on one file).
//!
//! The journal is never compacted: it grows by one record per message (about 30 bytes plus
//! the name and text).

mod convert;
mod header;
mod opening;
mod record;

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use super::message::Message;
use header::Beginning;
use opening::{changed, open_to_append, open_to_read};

pub use record::{decode, encode};

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
    /// One line each for the log: a conversion, what was skipped or cut off, and where.
    pub problems: Vec<String>,
}

impl Journal {
    /// Opens or creates the journal and reads its newest `keep` messages.
    ///
    /// Fails, naming the path, if it is not a journal (see the module's doc) or cannot be
    /// opened, read, converted or cut (a missing directory, no permission).
    pub fn open(path: &Path, keep: usize) -> io::Result<(Journal, Loaded)> {
        let mut loaded = Loaded::default();
        let journal = Journal::open_and_read(path, keep, &mut loaded)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        for problem in &mut loaded.problems {
            *problem = format!("{}: {problem}", path.display());
        }
        Ok((journal, loaded))
    }

    fn open_and_read(path: &Path, keep: usize, loaded: &mut Loaded) -> io::Result<Journal> {
        let Some(reading) = open_to_read(path)? else {
            let mut file = OpenOptions::new()
                .append(true)
                .create_new(true)
                .open(path)?;
            file.write_all(&header::HEADER)?;
            return Ok(Journal::at(file, path));
        };
        let len = reading.metadata()?.len();
        match header::beginning(&reading, len)? {
            Beginning::Header => {}
            Beginning::Empty => {
                let mut file = open_to_append(path, &reading)?;
                file.write_all(&header::HEADER)?;
                return Ok(Journal::at(file, path));
            }
            // Opened again, the path is the converted file; once more, someone else's.
            Beginning::Predecessor if loaded.problems.is_empty() => {
                convert::convert(path, &reading)?;
                loaded.problems.push(format!(
                    "converted from the format without a file header to journal version {}",
                    header::VERSION
                ));
                return Journal::open_and_read(path, keep, loaded);
            }
            Beginning::Predecessor => return Err(changed("was replaced")),
            Beginning::Foreign(what) => {
                return Err(io::Error::new(io::ErrorKind::InvalidData, what));
            }
        }
        let file = open_to_append(path, &reading)?;
        if let Some(cut_at) = read(&reading, len, keep, loaded)? {
            file.set_len(cut_at)?;
            loaded.problems.push(format!(
                "cut off {} bytes at offset {cut_at} that are not a whole record \
                 (a write torn by a crash, or damage)",
                len - cut_at
            ));
        }
        Ok(Journal::at(file, path))
    }

    fn at(file: File, path: &Path) -> Journal {
        Journal {
            file,
            path: path.to_owned(),
        }
    }

    /// Appends one message as one write. A message too large to be read back (over 1 MiB; a
    /// valid one is under 9 KiB) is refused with `InvalidInput` and nothing is written.
    pub fn append(&mut self, message: &Message) -> io::Result<()> {
        let record = encode(message);
        if record.len() as u64 > record::PREFIX + u64::from(record::MAX_PAYLOAD) {
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

/// Reads every record after the header into `loaded`; returns where an unreadable tail starts.
fn read(file: &File, len: u64, keep: usize, loaded: &mut Loaded) -> io::Result<Option<u64>> {
    let mut r = BufReader::new(file);
    let mut pos = header::LEN;
    r.seek(SeekFrom::Start(pos))?;
    let mut kept = VecDeque::new();
    // Where the current stretch of unreadable bytes began.
    let mut bad_from = None;
    while pos < len {
        let Some((message, size)) = record::read(&mut r, len - pos)? else {
            bad_from.get_or_insert(pos);
            pos = record::next_magic(&mut r, pos + 1, len)?;
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
    Ok(bad_from)
}

#[cfg(test)]
pub(super) mod tests;

/// Messages as records, oldest first, with no file header: how the chat's messages are handed
/// to a new process image (see `tiny::handoff`). [`decode_all`] reads them back.
pub fn encode_all<'a>(messages: impl IntoIterator<Item = &'a Message>) -> Vec<u8> {
    messages.into_iter().flat_map(encode).collect()
}

/// The newest `keep` messages of what [`encode_all`] wrote, as [`Journal::open`] would load
/// them. These bytes come from this program, so anything that is not a record ends the reading,
/// with a line for the log.
pub fn decode_all(records: &[u8], keep: usize) -> Loaded {
    let mut loaded = Loaded::default();
    let mut kept = VecDeque::new();
    let mut pos = 0;
    while pos < records.len() {
        let Some((message, size)) = decode(&records[pos..]) else {
            let problem = format!(
                "{} bytes at offset {pos} are not a record",
                records.len() - pos
            );
            loaded.problems.push(problem);
            break;
        };
        if loaded.last_id.is_none_or(|last| message.id > last) {
            loaded.last_id = Some(message.id);
            kept.push_back(message);
            if kept.len() > keep {
                loaded.before = kept.pop_front().map(|m| m.id);
            }
        }
        pos += size;
    }
    loaded.messages = kept.into();
    loaded
}
