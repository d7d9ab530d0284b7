//! `--store PATH`: an append-only journal of every feed's messages, read back at start.
//!
//! A file header, then one record per message, little-endian:
//!
//! ```text
//! header: FF 53 53 45 63 68 61 74 ("\xFFSSEchat") | version u32 (2)
//! record: magic FF 63 68 32 | len u32 | crc32 u32 of len and payload | payload (len bytes)
//! payload: feed_len u8 | feed (a feed's name) | id u64 | at_ms u64 | name_len u16
//!          | name (UTF-8) | text (UTF-8, the rest)
//! ```
//!
//! Version 1 had only the chat: its records (magic `FF 63 68 31`) have no feed and are read as
//! the chat's. A version 1 journal is given the version 2 header in place when it is opened, and
//! its records are kept as they are.
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
//! - a file that does not begin with the header of this version or of version 1.
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
//! - A record whose id is not above the one before in its feed is skipped (two servers that
//!   wrote to one file, which the lock below now prevents).
//!
//! # One server per journal
//! The server holds an exclusive `flock` on the journal while it runs, and a second server
//! given the same file is refused at start. Each would otherwise append to the file that the
//! other's compaction had replaced, and those messages, answered `201`, would be lost. The lock
//! goes with the descriptor, which is closed on `exec`, so an upgrade in place (`SIGHUP`) takes
//! it again.
//!
//! # Compaction
//! The journal grows by one record per message (about 30 bytes plus the feed's name, the name
//! and the text). Once it is more than twice what it would load plus 1 MiB, the append that
//! took it there begins a compaction ([`Journal::begin_compaction`]): what a start would load,
//! and the message before each feed's oldest (so that a client that missed messages is still
//! told so), replace the file (`PATH.compacting`, renamed over it, like a conversion). A file
//! left under that name by a crash is removed by the next compaction. So the file stays within
//! about twice `--history` messages per feed plus 1 MiB, however fast a feed is published to.
//! Whether that file can be created is tried when the journal is opened
//! ([`Loaded::cannot_compact`]).
//!
//! The slow part, reading the file and writing the new one to disk ([`Compaction::write`]),
//! takes no lock, so appends go on meanwhile, to the old file. Under the lock,
//! [`Journal::finish_compaction`] copies what they added to the new file and renames it over
//! the old: a copy between two files in the page cache, with no wait for the disk. Those last
//! records go to disk as appends do, when the kernel writes the new file back, so a power cut
//! can lose up to the compaction's time more than the 35 s above. After [`Journal::sync`] (the
//! server stopping) a compaction still under way puts its whole new file on disk before the
//! rename, so that nothing synced can be lost by it; `sync` also puts a rename on disk.

mod convert;
mod crc32;
mod header;
mod opening;
mod record;
mod rewrite;

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Seek, SeekFrom, Write};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use super::history::Bounds;
use super::message::Message;
use header::Beginning;
use opening::{changed, open_to_append, open_to_read};

pub use record::{decode, encode};

/// Over what the journal would load, the bytes it may grow by before it is compacted.
const COMPACTION_SLACK: u64 = 1 << 20;

/// An open journal, appending.
#[derive(Debug)]
pub struct Journal {
    file: File,
    path: PathBuf,
    /// What each feed's history holds: what a start loads.
    keep: Bounds,
    /// The file's length, as appended to by this journal.
    len: u64,
    /// The length past which [`Journal::begin_compaction`] begins one.
    compact_at: u64,
    /// A compaction is under way.
    compacting: bool,
    /// [`Journal::sync`] was called since the compaction under way began: its new file goes to
    /// disk whole before it takes the old one's place.
    synced: bool,
}

/// A compaction begun: what it reads and keeps, written off the journal's lock
/// ([`Compaction::write`]), then put in place under it ([`Journal::finish_compaction`]).
#[derive(Debug)]
pub struct Compaction {
    path: PathBuf,
    keep: Bounds,
    /// The appending file's device, inode and length when it began.
    began: io::Result<(u64, u64, u64)>,
}

/// What [`Journal::open`] read.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Loaded {
    /// Each feed's messages, the feeds in the order they first appear.
    pub feeds: Vec<(String, Held)>,
    /// One line each for the log: a conversion, what was skipped or cut off, and where.
    pub problems: Vec<String>,
    /// Why the journal could never be compacted (see [`cannot_compact`]), if so: a start
    /// refuses it.
    pub cannot_compact: Option<String>,
}

/// One feed's messages in the journal.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Held {
    /// The newest messages (those the history holds), oldest first.
    pub messages: Vec<Message>,
    /// The id of the newest message read but not kept: the one just before `messages`.
    pub before: Option<u64>,
    /// The largest id read; the next run's ids start above it.
    pub last_id: Option<u64>,
}

impl Journal {
    /// Opens or creates the journal and reads the newest messages of each feed: those its
    /// history holds (`keep`: at most so many, and so many bytes).
    ///
    /// Fails, naming the path, if it is not a journal (see the module's doc) or cannot be
    /// opened, read, converted or cut (a missing directory, no permission).
    pub fn open(path: &Path, keep: impl Into<Bounds>) -> io::Result<(Journal, Loaded)> {
        let (keep, mut loaded) = (keep.into(), Loaded::default());
        let journal = Journal::open_and_read(path, keep, &mut loaded)
            .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))?;
        let problems = loaded.problems.iter_mut().chain(&mut loaded.cannot_compact);
        for problem in problems {
            *problem = format!("{}: {problem}", path.display());
        }
        Ok((journal, loaded))
    }

    fn open_and_read(path: &Path, keep: Bounds, loaded: &mut Loaded) -> io::Result<Journal> {
        let Some(reading) = open_to_read(path)? else {
            let mut file = OpenOptions::new()
                .append(true)
                .create_new(true)
                .open(path)?;
            opening::lock(&file)?;
            file.write_all(&header::HEADER)?;
            return Ok(Journal::at(file, path, keep, &Loaded::default()));
        };
        let len = reading.metadata()?.len();
        match header::beginning(&reading, len)? {
            Beginning::Header => {}
            Beginning::Version1 => {
                header::upgrade(path, &reading)?;
                loaded.problems.push(format!(
                    "journal version 1 is now version {}: its messages are the chat's",
                    header::VERSION
                ));
            }
            Beginning::Empty => {
                let mut file = open_to_append(path, &reading)?;
                loaded.cannot_compact = cannot_compact(path);
                file.write_all(&header::HEADER)?;
                return Ok(Journal::at(file, path, keep, loaded));
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
        loaded.cannot_compact = cannot_compact(path);
        if let Some(cut_at) = read(&reading, len, keep, false, loaded)? {
            file.set_len(cut_at)?;
            loaded.problems.push(format!(
                "cut off {} bytes at offset {cut_at} that are not a whole record \
                 (a write torn by a crash, or damage)",
                len - cut_at
            ));
        }
        Ok(Journal::at(file, path, keep, loaded))
    }

    /// The journal appending to `file`, which holds what `loaded` says.
    fn at(file: File, path: &Path, keep: Bounds, loaded: &Loaded) -> Journal {
        let len = file.metadata().map_or(0, |meta| meta.len());
        let held = loaded.feeds.iter();
        let held = held.flat_map(|(feed, held)| held.messages.iter().map(move |m| (feed, m)));
        let loads = held.map(|(feed, m)| encode(feed, m).len() as u64).sum();
        Journal {
            file,
            path: path.to_owned(),
            keep,
            len,
            compact_at: compaction_due(loads),
            compacting: false,
            synced: false,
        }
    }

    /// Appends one message of `feed` (a feed's name) as one write. A message too large to be
    /// read back (over 1 MiB; a valid one is under 9 KiB) is refused with `InvalidInput` and
    /// nothing is written.
    pub fn append(&mut self, feed: &str, message: &Message) -> io::Result<()> {
        let record = encode(feed, message);
        if record.len() as u64 > record::PREFIX + u64::from(record::MAX_PAYLOAD) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("message {} is too large for the journal", message.id),
            ));
        }
        self.file.write_all(&record)?;
        self.len += record.len() as u64;
        Ok(())
    }

    /// Begins a compaction if the journal has grown past twice what it would load plus 1 MiB
    /// (see the module's doc) and none is under way. Appends go on meanwhile, into this file
    /// and for the new one.
    pub fn begin_compaction(&mut self) -> Option<Compaction> {
        if self.len <= self.compact_at || self.compacting {
            return None;
        }
        (self.compacting, self.synced) = (true, false);
        let began = self.file.metadata();
        Some(Compaction {
            path: self.path.clone(),
            keep: self.keep,
            began: began.map(|meta| (meta.dev(), meta.ino(), meta.len())),
        })
    }

    /// Puts the file that `written` is in place, with what was appended since the compaction
    /// began copied to its end; or says why it could not be done (the file is kept as it was,
    /// and compaction is tried again once it has doubled).
    pub fn finish_compaction(&mut self, written: io::Result<Written>) -> io::Result<Compacted> {
        self.compacting = false;
        let (before, synced) = (self.len, self.synced);
        let replaced = written.and_then(|Written { new, len, old }| {
            let real = new.real.clone();
            let mut tail = 0;
            let file = new.rename(|new| {
                // Looked at again: the file may have been replaced while the new one was written.
                let now = std::fs::metadata(&real).map_err(|error| match error.kind() {
                    io::ErrorKind::NotFound => compacting("was removed"),
                    _ => error,
                })?;
                let was = old.file.metadata()?;
                if (now.dev(), now.ino()) != (was.dev(), was.ino()) {
                    return Err(compacting("was replaced"));
                }
                // From the page cache, which the appends have just written: no wait for the disk,
                // unless the old file was synced meanwhile (the server is stopping).
                tail = rewrite::copy(&old.file, old.len, new)?;
                if synced { new.sync_data() } else { Ok(()) }
            })?;
            Ok((file, len, tail, real))
        });
        match replaced {
            Ok((file, kept, tail, real)) => {
                let after = kept + tail;
                (self.file, self.len) = (file, after);
                // From what it keeps: a long tail (a fast feed, a slow disk) is due again soon.
                self.compact_at = compaction_due(kept);
                Ok(Compacted {
                    before,
                    after,
                    real,
                })
            }
            Err(error) => {
                self.compact_at = self.len.saturating_mul(2);
                Err(error)
            }
        }
    }

    /// A whole compaction, on the caller's thread.
    #[cfg(test)]
    pub fn compact_if_due(&mut self) -> Option<io::Result<(u64, u64)>> {
        let written = self.begin_compaction()?.write();
        let compacted = self.finish_compaction(written);
        Some(compacted.map(|done| (done.before, done.after)))
    }

    /// Asks the disk to hold what was appended (`fdatasync`), and the journal's directory, in
    /// case a compaction's rename is not settled yet.
    pub fn sync(&mut self) -> io::Result<()> {
        self.synced = true;
        self.file.sync_data()?;
        rewrite::sync_directory(&std::fs::canonicalize(&self.path)?);
        Ok(())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

/// A compaction done: the journal's length before and after.
#[derive(Debug)]
pub struct Compacted {
    pub before: u64,
    pub after: u64,
    real: PathBuf,
}

impl Compacted {
    /// Puts the rename on disk: until then a power cut can bring the old file back, as the disk
    /// holds it. Needs no lock, and may take a while on a slow disk.
    pub fn settle(&self) {
        rewrite::sync_directory(&self.real);
    }
}

/// A compaction's new file, written and on disk, not yet in place.
pub struct Written {
    new: rewrite::Beside,
    len: u64,
    /// The file it replaces, and its length when the compaction began: appends go on after it.
    old: Old,
}

struct Old {
    file: File,
    len: u64,
}

impl Compaction {
    /// Writes, beside the journal, what a start would load and the message before each feed's
    /// oldest, as the journal was when the compaction began. Takes no lock: this is the slow
    /// part (a read of the whole file, a write and an `fsync`).
    pub fn write(self) -> io::Result<Written> {
        let (dev, ino, began) = self.began?;
        let reading = open_to_read(&self.path)?.ok_or_else(|| compacting("was removed"))?;
        let looked = reading.metadata()?;
        if (dev, ino) != (looked.dev(), looked.ino()) {
            return Err(compacting("was replaced"));
        }
        // With the newest message of each feed not held: on loading, it is `Held::before`.
        let mut kept = Loaded::default();
        read(&reading, began, self.keep, true, &mut kept)?;
        let mut bytes = header::HEADER.to_vec();
        for (feed, held) in &kept.feeds {
            bytes.extend(encode_all(feed, &held.messages));
        }
        // A file under the temporary name was left by a compaction that a crash cut short.
        let real = std::fs::canonicalize(&self.path)?;
        let _ = std::fs::remove_file(rewrite::temporary_name(&real, COMPACTING));
        // Locked before the rename, so that no other server can take the new file meanwhile.
        let new = rewrite::write_beside(&self.path, &reading, COMPACTING, |new| {
            opening::lock(new)?;
            new.write_all(&bytes)
        })?;
        let len = bytes.len() as u64;
        let old = Old {
            file: reading,
            len: began,
        };
        Ok(Written { new, len, old })
    }
}

/// The journal `what` (was replaced, was removed) while it was being compacted.
fn compacting(what: &str) -> io::Error {
    io::Error::other(format!("{what} while it was being compacted"))
}

/// The suffix of the file a compaction writes before it is renamed over the journal.
const COMPACTING: &str = ".compacting";

/// Why a compaction could not write its new file beside the journal at `path`, if it could
/// not: in a directory the server may not create files in (a read-only mount, or permissions
/// that let it write the journal alone), none ever could, and the journal would grow by every
/// message for good. Tried, not read from permissions, which do not tell (root, ACLs, read-only
/// mounts). Called with the journal's lock held: a file under the temporary name is then one
/// that a compaction cut short by a crash left, as [`Compaction::write`] takes it.
fn cannot_compact(path: &Path) -> Option<String> {
    let temporary = match std::fs::canonicalize(path) {
        Ok(real) => rewrite::temporary_name(&real, COMPACTING),
        Err(error) => return Some(format!("cannot be compacted: {error}")),
    };
    let _ = std::fs::remove_file(&temporary);
    let created = OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&temporary);
    let error = created
        .and_then(|_| std::fs::remove_file(&temporary))
        .err()?;
    Some(format!(
        "cannot be compacted: cannot create {} beside it ({error}), so it would grow by every \
         message for good",
        temporary.display()
    ))
}

/// The length past which a journal that would load `loads` bytes of records is compacted.
fn compaction_due(loads: u64) -> u64 {
    header::LEN + 2 * loads + COMPACTION_SLACK
}

/// Reads every record after the header into `loaded`, each feed's newest within `keep` (and,
/// with `spare`, the newest message not held before them); returns where an unreadable tail
/// starts.
fn read(
    file: &File,
    len: u64,
    keep: Bounds,
    spare: bool,
    loaded: &mut Loaded,
) -> io::Result<Option<u64>> {
    let mut r = BufReader::new(file);
    let mut pos = header::LEN;
    r.seek(SeekFrom::Start(pos))?;
    let mut gathered = Gathered::new(keep);
    // Where the current stretch of unreadable bytes began.
    let mut bad_from = None;
    while pos < len {
        let Some(((feed, message), size)) = record::read(&mut r, len - pos)? else {
            bad_from.get_or_insert(pos);
            pos = record::next_magic(&mut r, pos + 1, len)?;
            continue;
        };
        if let Some(start) = bad_from.take() {
            let skipped = pos - start;
            let problem = format!("skipped {skipped} unreadable bytes at offset {start}");
            loaded.problems.push(problem);
        }
        let id = message.id;
        if let Err(last) = gathered.take(feed, message) {
            loaded.problems.push(format!(
                "skipped the record at offset {pos}: its id {id} is not above {last}"
            ));
        }
        pos += size;
    }
    loaded.feeds = gathered.feeds(spare);
    Ok(bad_from)
}

/// Each feed's newest messages, gathered record by record, within the history's bounds.
struct Gathered {
    keep: Bounds,
    feeds: Vec<Gathering>,
}

/// One feed's, so far.
#[derive(Default)]
struct Gathering {
    name: String,
    held: Held,
    kept: VecDeque<Message>,
    /// Of the names and texts kept ([`Message::size`]).
    bytes: usize,
    /// The newest message not kept.
    spare: Option<Message>,
}

impl Gathered {
    fn new(keep: Bounds) -> Gathered {
        Gathered {
            keep,
            feeds: Vec::new(),
        }
    }

    /// Holds `message` of `feed`, and of the feed's what its history would hold (as
    /// `History::push` evicts: past either bound); a message whose id is not above the feed's
    /// last is not taken, and the last is given back.
    fn take(&mut self, feed: String, message: Message) -> Result<(), u64> {
        let at = match self
            .feeds
            .iter()
            .position(|gathering| gathering.name == feed)
        {
            Some(at) => at,
            None => {
                let name = feed;
                self.feeds.push(Gathering {
                    name,
                    ..Gathering::default()
                });
                self.feeds.len() - 1
            }
        };
        let gathering = &mut self.feeds[at];
        let held = &mut gathering.held;
        if let Some(last) = held.last_id.filter(|&last| message.id <= last) {
            return Err(last);
        }
        held.last_id = Some(message.id);
        gathering.bytes += message.size();
        gathering.kept.push_back(message);
        let Bounds {
            max_messages,
            max_bytes,
        } = self.keep;
        while gathering.kept.len() > max_messages || gathering.bytes > max_bytes {
            let Some(oldest) = gathering.kept.pop_front() else {
                break;
            };
            gathering.bytes -= oldest.size();
            held.before = Some(oldest.id);
            gathering.spare = Some(oldest);
        }
        Ok(())
    }

    /// Each feed's, with its newest message not held first if `spare` (what a compaction
    /// writes, so that a load finds what was held before: [`Held::before`]).
    fn feeds(self, spare: bool) -> Vec<(String, Held)> {
        let held = |gathering: Gathering| {
            let spare = gathering.spare.filter(|_| spare);
            let messages = spare.into_iter().chain(gathering.kept).collect();
            (
                gathering.name,
                Held {
                    messages,
                    ..gathering.held
                },
            )
        };
        self.feeds.into_iter().map(held).collect()
    }
}

#[cfg(test)]
pub(super) mod tests;

/// Messages of `feed` as records, oldest first, with no file header: how the feeds' messages
/// are handed to a new process image (see `tiny::handoff`). [`decode_all`] reads them back.
pub fn encode_all<'a>(feed: &str, messages: impl IntoIterator<Item = &'a Message>) -> Vec<u8> {
    messages.into_iter().flat_map(|m| encode(feed, m)).collect()
}

/// The newest messages of each feed of what [`encode_all`] wrote, within `keep`, as
/// [`Journal::open`] would load them. These bytes come from this program, so anything that is
/// not a record ends the reading, with a line for the log.
pub fn decode_all(records: &[u8], keep: impl Into<Bounds>) -> Loaded {
    let mut loaded = Loaded::default();
    let mut gathered = Gathered::new(keep.into());
    let mut pos = 0;
    while pos < records.len() {
        let Some(((feed, message), size)) = decode(&records[pos..]) else {
            let problem = format!(
                "{} bytes at offset {pos} are not a record",
                records.len() - pos
            );
            loaded.problems.push(problem);
            break;
        };
        // One out of order is left out, as from the journal.
        let _ = gathered.take(feed, message);
        pos += size;
    }
    loaded.feeds = gathered.feeds(false);
    loaded
}
