use super::record::{FIXED, MAGIC, MAGIC_CHAT, MAX_PAYLOAD, checksum};
use super::*;
use crate::app::chat::feeds::CHAT;
use std::fs;

mod compaction;
mod opening;

/// A directory of its own for one test, removed when dropped.
pub(in crate::app::chat) struct Dir(pub PathBuf);

impl Dir {
    pub fn new(test: &str) -> Dir {
        let path = std::env::temp_dir().join(format!("sse-htmx-{}-{test}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).unwrap();
        Dir(path)
    }

    pub fn file(&self) -> PathBuf {
        self.0.join("chat.journal")
    }
}

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn msg(id: u64, text: &str) -> Message {
    Message {
        id,
        name: format!("name{id}"),
        text: text.into(),
        at_ms: 1_764_000_000_000 + id,
    }
}

fn write(path: &Path, messages: &[Message]) {
    let (mut journal, _) = Journal::open(path, 0).unwrap();
    for m in messages {
        journal.append(CHAT, m).unwrap();
    }
}

fn load(path: &Path, keep: usize) -> Loaded {
    Journal::open(path, keep).unwrap().1
}

/// The chat's messages in `loaded` (none if it has no record of the chat).
fn chat(loaded: &Loaded) -> &Held {
    static NONE: Held = Held {
        messages: Vec::new(),
        before: None,
        last_id: None,
    };
    match loaded.feeds.iter().find(|(feed, _)| feed == CHAT) {
        Some((_, held)) => held,
        None => &NONE,
    }
}

fn ids(loaded: &Loaded) -> Vec<u64> {
    chat(loaded).messages.iter().map(|m| m.id).collect()
}

/// A record as version 1 wrote it: no feed, the chat's.
pub(super) fn encode_v1(message: &Message) -> Vec<u8> {
    let mut payload = message.id.to_le_bytes().to_vec();
    payload.extend_from_slice(&message.at_ms.to_le_bytes());
    payload.extend_from_slice(&(message.name.len() as u16).to_le_bytes());
    payload.extend_from_slice(message.name.as_bytes());
    payload.extend_from_slice(message.text.as_bytes());
    let len = (payload.len() as u32).to_le_bytes();
    [
        &MAGIC_CHAT[..],
        &len,
        &checksum(len, &payload).to_le_bytes(),
        &payload,
    ]
    .concat()
}

#[test]
fn a_record_has_the_documented_bytes() {
    let m = Message {
        id: 1,
        name: "a".into(),
        text: "b".into(),
        at_ms: 2,
    };
    let expected: Vec<u8> = [
        &[0xFF, b'c', b'h', b'2'][..],
        &[25, 0, 0, 0],       // payload length
        &[157, 143, 86, 174], // CRC-32 of the length and payload: 0xae568f9d
        &[4],
        b"news",
        &[1, 0, 0, 0, 0, 0, 0, 0],
        &[2, 0, 0, 0, 0, 0, 0, 0],
        &[1, 0],
        b"ab",
    ]
    .concat();
    assert_eq!(encode("news", &m), expected);
    // Version 1's record of the same message: no feed.
    let v1: Vec<u8> = [
        &[0xFF, b'c', b'h', b'1'][..],
        &[20, 0, 0, 0],      // payload length
        &[108, 179, 22, 91], // CRC-32 of the length and payload: 0x5b16b36c
        &[1, 0, 0, 0, 0, 0, 0, 0],
        &[2, 0, 0, 0, 0, 0, 0, 0],
        &[1, 0],
        b"ab",
    ]
    .concat();
    assert_eq!(encode_v1(&m), v1);
    assert_eq!(decode(&v1), Some(((CHAT.to_owned(), m), v1.len())));
}

#[test]
fn each_feed_keeps_its_own_newest_and_its_own_order() {
    let dir = Dir::new("feeds");
    let path = dir.file();
    let (mut journal, _) = Journal::open(&path, 2).unwrap();
    for (feed, id) in [("a", 5), ("b", 1), ("a", 6), ("b", 2), ("a", 7), ("b", 1)] {
        journal.append(feed, &msg(id, feed)).unwrap();
    }
    drop(journal);
    let loaded = load(&path, 2);
    let held = |at: usize| {
        let (feed, held) = &loaded.feeds[at];
        let ids: Vec<u64> = held.messages.iter().map(|m| m.id).collect();
        (feed.as_str(), ids, held.before, held.last_id)
    };
    assert_eq!(held(0), ("a", vec![6, 7], Some(5), Some(7)));
    assert_eq!(held(1), ("b", vec![1, 2], None, Some(2)));
    assert_eq!(
        loaded.problems.len(),
        1,
        "b's second 1: {:?}",
        loaded.problems
    );
}

#[test]
fn a_record_whose_feed_is_not_a_feed_name_is_damage() {
    let dir = Dir::new("bad-feed");
    let path = dir.file();
    let bad = encode("Not/A-Name", &msg(1, "x"));
    let good = encode(CHAT, &msg(2, "y"));
    fs::write(&path, journal_bytes(&[&bad[..], &good[..]].concat())).unwrap();
    let loaded = load(&path, 10);
    assert_eq!(ids(&loaded), [2]);
    assert_eq!(loaded.feeds.len(), 1);
    assert_eq!(
        loaded.problems,
        [format!(
            "{}: skipped {} unreadable bytes at offset 12",
            path.display(),
            bad.len()
        )]
    );
}

#[test]
fn decode_reads_back_what_encode_wrote_one_record_at_a_time() {
    let written = [msg(1, "one"), msg(2, "twö\nlines"), msg(3, "")];
    let buffer: Vec<u8> = written.iter().flat_map(|m| encode(CHAT, m)).collect();
    let mut rest = &buffer[..];
    let mut read = Vec::new();
    while let Some(((_, message), size)) = decode(rest) {
        read.push(message);
        rest = &rest[size..];
    }
    assert_eq!((read, rest.len()), (written.to_vec(), 0));
    let one = encode(CHAT, &msg(4, "cut"));
    for cut in 0..one.len() {
        assert_eq!(decode(&one[..cut]), None, "cut at {cut}");
    }
    let mut damaged = one.clone();
    damaged[20] ^= 1;
    assert_eq!(decode(&damaged), None);
}

#[test]
fn messages_read_back_as_written() {
    let dir = Dir::new("round-trip");
    let written = [msg(10, "hello"), msg(11, "wörld\nline two"), msg(15, "")];
    write(&dir.file(), &written);
    let loaded = load(&dir.file(), 100);
    assert_eq!(
        loaded,
        Loaded {
            feeds: vec![(
                CHAT.into(),
                Held {
                    messages: written.to_vec(),
                    before: None,
                    last_id: Some(15),
                }
            )],
            problems: vec![],
            cannot_compact: None,
        }
    );
}

#[test]
fn only_the_newest_are_kept_and_the_one_before_them_is_named() {
    let dir = Dir::new("keep");
    write(
        &dir.file(),
        &[msg(1, "a"), msg(2, "b"), msg(3, "c"), msg(4, "d")],
    );
    let loaded = load(&dir.file(), 2);
    assert_eq!(ids(&loaded), [3, 4]);
    assert_eq!(chat(&loaded).before, Some(2));
    assert_eq!(chat(&loaded).last_id, Some(4));
    let none_kept = load(&dir.file(), 0);
    assert_eq!(ids(&none_kept), [] as [u64; 0]);
    assert_eq!(
        (chat(&none_kept).before, chat(&none_kept).last_id),
        (Some(4), Some(4))
    );
}

/// A journal's bytes: the header, then `records`.
fn journal_bytes(records: &[u8]) -> Vec<u8> {
    [&header::HEADER[..], records].concat()
}

#[test]
fn a_missing_file_is_created_with_the_header_alone() {
    let dir = Dir::new("missing");
    assert!(!dir.file().exists());
    let loaded = load(&dir.file(), 10);
    assert_eq!(loaded, Loaded::default());
    assert_eq!(fs::read(dir.file()).unwrap(), b"\xFFSSEchat\x02\0\0\0");
    assert_eq!(load(&dir.file(), 10), Loaded::default(), "and opens again");
}

#[test]
fn an_empty_file_becomes_a_journal() {
    let dir = Dir::new("empty");
    fs::write(dir.file(), b"").unwrap();
    let (mut journal, loaded) = Journal::open(&dir.file(), 10).unwrap();
    assert_eq!(loaded, Loaded::default());
    assert_eq!(fs::read(dir.file()).unwrap(), header::HEADER);
    journal.append(CHAT, &msg(1, "first")).unwrap();
    drop(journal);
    assert_eq!(ids(&load(&dir.file(), 10)), [1]);
}

#[test]
fn a_second_server_on_the_same_journal_is_refused_until_the_first_closes_it() {
    let dir = Dir::new("locked");
    let path = dir.file();
    // A new file, and then an existing one, are locked as they are opened.
    for _ in 0..2 {
        let (journal, _) = Journal::open(&path, 10).unwrap();
        let refused = Journal::open(&path, 10).expect_err("a second open is refused");
        assert_eq!(refused.kind(), io::ErrorKind::WouldBlock);
        let said = refused.to_string();
        assert!(
            said.starts_with(&format!("{}: is in use by another server", path.display())),
            "{said}"
        );
        assert!(said.ends_with("give each its own --store"), "{said}");
        drop(journal);
    }
    // Refused, it wrote nothing: the journal loads as it was.
    assert_eq!(fs::read(&path).unwrap(), header::HEADER);
}

#[test]
fn a_path_in_a_missing_directory_is_an_error_that_names_it() {
    let dir = Dir::new("no-dir");
    let path = dir.0.join("absent").join("chat.journal");
    let err = Journal::open(&path, 10).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotFound);
    assert_eq!(
        err.to_string(),
        format!("{}: No such file or directory (os error 2)", path.display())
    );
}

#[test]
fn a_torn_tail_is_cut_off_and_reported_at_every_length() {
    let dir = Dir::new("torn");
    let path = dir.file();
    write(&path, &[msg(1, "first"), msg(2, "second")]);
    let good = fs::read(&path).unwrap();
    let last = encode(CHAT, &msg(3, "the third, torn"));
    for cut in 1..last.len() {
        let mut torn = good.clone();
        torn.extend_from_slice(&last[..cut]);
        fs::write(&path, &torn).unwrap();

        let (mut journal, loaded) = Journal::open(&path, 10).unwrap();
        assert_eq!(ids(&loaded), [1, 2], "cut at {cut}");
        assert_eq!(
            loaded.problems,
            [format!(
                "{}: cut off {cut} bytes at offset {} that are not a whole record \
                 (a write torn by a crash, or damage)",
                path.display(),
                good.len()
            )],
            "cut at {cut}"
        );
        assert_eq!(fs::read(&path).unwrap(), good, "cut at {cut}");

        journal.append(CHAT, &msg(4, "after the tear")).unwrap();
        drop(journal);
        let again = load(&path, 10);
        assert_eq!(ids(&again), [1, 2, 4], "cut at {cut}");
        assert_eq!(again.problems, [] as [String; 0], "cut at {cut}");
    }
}

#[test]
fn garbage_at_the_end_is_cut_off() {
    let dir = Dir::new("garbage");
    let path = dir.file();
    write(&path, &[msg(1, "a")]);
    let good_len = fs::metadata(&path).unwrap().len();
    let mut garbage = b"not a record ".to_vec();
    garbage.extend_from_slice(&MAGIC); // a magic with no valid record after it
    garbage.extend_from_slice(b"\x05\0\0\0junkjunk");
    fs::OpenOptions::new()
        .append(true)
        .open(&path)
        .unwrap()
        .write_all(&garbage)
        .unwrap();
    let loaded = load(&path, 10);
    assert_eq!(ids(&loaded), [1]);
    assert_eq!(
        loaded.problems,
        [format!(
            "{}: cut off {} bytes at offset {good_len} that are not a whole record \
             (a write torn by a crash, or damage)",
            path.display(),
            garbage.len()
        )]
    );
    assert_eq!(fs::metadata(&path).unwrap().len(), good_len);
}

#[test]
fn a_damaged_middle_record_is_skipped_whichever_byte_is_hit() {
    let dir = Dir::new("flip");
    let path = dir.file();
    let records = [msg(1, "one"), msg(2, "two, to be damaged"), msg(3, "three")];
    write(&path, &records);
    let good = fs::read(&path).unwrap();
    let start = header::HEADER.len() + encode(CHAT, &records[0]).len();
    let size = encode(CHAT, &records[1]).len();
    for at in start..start + size {
        let mut damaged = good.clone();
        damaged[at] ^= 0x20;
        fs::write(&path, &damaged).unwrap();
        let loaded = load(&path, 10);
        assert_eq!(ids(&loaded), [1, 3], "byte {at}");
        assert_eq!(
            loaded.problems,
            [format!(
                "{}: skipped {size} unreadable bytes at offset {start}",
                path.display()
            )],
            "byte {at}"
        );
        // Nothing is cut from a file whose end is whole.
        assert_eq!(fs::metadata(&path).unwrap().len(), good.len() as u64);
    }
}

#[test]
fn garbage_between_records_is_skipped() {
    let dir = Dir::new("between");
    let path = dir.file();
    let mut bytes = journal_bytes(&encode(CHAT, &msg(1, "a")));
    let start = bytes.len();
    bytes.extend_from_slice(b"\xFFch1\xFF\xFF\xFF\xFFnoise");
    bytes.extend_from_slice(&encode(CHAT, &msg(2, "b")));
    fs::write(&path, &bytes).unwrap();
    let loaded = load(&path, 10);
    assert_eq!(ids(&loaded), [1, 2]);
    assert_eq!(
        loaded.problems,
        [format!(
            "{}: skipped 13 unreadable bytes at offset {start}",
            path.display()
        )]
    );
}

#[test]
fn a_record_whose_id_is_not_above_the_last_is_skipped() {
    let dir = Dir::new("order");
    let path = dir.file();
    write(&path, &[msg(5, "a"), msg(3, "b"), msg(5, "c"), msg(6, "d")]);
    let second = header::HEADER.len() + encode(CHAT, &msg(5, "a")).len();
    let third = second + encode(CHAT, &msg(3, "b")).len();
    let loaded = load(&path, 10);
    assert_eq!(ids(&loaded), [5, 6]);
    assert_eq!(chat(&loaded).last_id, Some(6));
    assert_eq!(
        loaded.problems,
        [
            format!(
                "{}: skipped the record at offset {second}: its id 3 is not above 5",
                path.display()
            ),
            format!(
                "{}: skipped the record at offset {third}: its id 5 is not above 5",
                path.display()
            ),
        ]
    );
}

#[test]
fn a_length_beyond_the_largest_record_is_damage() {
    let dir = Dir::new("huge-length");
    let path = dir.file();
    let mut bytes = journal_bytes(&MAGIC);
    bytes.extend_from_slice(&(MAX_PAYLOAD + 1).to_le_bytes());
    bytes.extend_from_slice(&[0; 4]);
    let junk_len = bytes.len() - header::HEADER.len();
    bytes.extend_from_slice(&encode(CHAT, &msg(7, "fine")));
    fs::write(&path, &bytes).unwrap();
    let loaded = load(&path, 10);
    assert_eq!(ids(&loaded), [7]);
    assert_eq!(
        loaded.problems,
        [format!(
            "{}: skipped {junk_len} unreadable bytes at offset 12",
            path.display()
        )]
    );
}

#[test]
fn a_valid_checksum_over_a_malformed_payload_is_damage() {
    let dir = Dir::new("payload");
    let path = dir.file();
    // A name length past the payload's end, and text that is not UTF-8, each checksummed.
    let mut bytes = header::HEADER.to_vec();
    for payload in [
        [&7u64.to_le_bytes()[..], &0u64.to_le_bytes(), &[9, 0], b"ab"].concat(),
        [
            &8u64.to_le_bytes()[..],
            &0u64.to_le_bytes(),
            &[0, 0],
            b"\xC3",
        ]
        .concat(),
        vec![1, 2, 3],
    ] {
        let len = (payload.len() as u32).to_le_bytes();
        let mut crc = super::crc32::Hasher::new();
        crc.update(&len);
        crc.update(&payload);
        bytes.extend_from_slice(&MAGIC_CHAT);
        bytes.extend_from_slice(&len);
        bytes.extend_from_slice(&crc.finalize().to_le_bytes());
        bytes.extend_from_slice(&payload);
    }
    let junk_len = bytes.len() - header::HEADER.len();
    bytes.extend_from_slice(&encode(CHAT, &msg(9, "fine")));
    fs::write(&path, &bytes).unwrap();
    let loaded = load(&path, 10);
    assert_eq!(ids(&loaded), [9]);
    assert_eq!(
        loaded.problems,
        [format!(
            "{}: skipped {junk_len} unreadable bytes at offset 12",
            path.display()
        )]
    );
}

#[test]
fn appends_after_reopening_follow_the_earlier_records() {
    let dir = Dir::new("reopen");
    let path = dir.file();
    write(&path, &[msg(1, "a")]);
    write(&path, &[msg(2, "b")]);
    let (mut journal, loaded) = Journal::open(&path, 10).unwrap();
    assert_eq!(ids(&loaded), [1, 2]);
    assert_eq!(journal.path(), path);
    journal.sync().unwrap();
}

#[test]
fn a_message_too_large_to_read_back_is_not_written() {
    let dir = Dir::new("too-large");
    let path = dir.file();
    let (mut journal, _) = Journal::open(&path, 10).unwrap();
    let huge = msg(1, &"x".repeat(MAX_PAYLOAD as usize));
    let err = journal.append(CHAT, &huge).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
    assert_eq!(err.to_string(), "message 1 is too large for the journal");
    assert_eq!(fs::read(&path).unwrap(), header::HEADER);
    // The largest that fits is read back.
    let feed = 1 + CHAT.len();
    let fits = msg(
        2,
        &"x".repeat(MAX_PAYLOAD as usize - feed - FIXED - "name2".len()),
    );
    journal.append(CHAT, &fits).unwrap();
    drop(journal);
    assert_eq!(chat(&load(&path, 10)).messages, [fits]);
}

#[test]
fn records_in_memory_read_back_as_written_each_feed_apart() {
    let messages = [msg(5, "five"), msg(9, "nine"), msg(12, "twelve")];
    let records = [
        encode_all(CHAT, &messages),
        encode_all("news", &[msg(1, "one")]),
    ]
    .concat();
    let loaded = decode_all(&records, 2);
    assert_eq!(chat(&loaded).messages, messages[1..]);
    assert_eq!(chat(&loaded).before, Some(5));
    assert_eq!(chat(&loaded).last_id, Some(12));
    assert_eq!(loaded.feeds[1].0, "news");
    assert_eq!(loaded.feeds[1].1.messages, [msg(1, "one")]);
    let torn = decode_all(&records[..records.len() - 1], 9);
    assert_eq!(chat(&torn).messages, messages);
    assert_eq!(torn.feeds.len(), 1);
    assert_eq!(torn.problems.len(), 1);
}
