//! Which files the journal opens, converts or refuses, and that a refused one is left as it was.

use super::super::convert::SUFFIX;
use super::super::rewrite::temporary_name;
use super::*;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt, symlink};
use std::process::Command;
use std::sync::mpsc;
use std::time::{Duration, SystemTime};

/// What must not change about a refused path: its bytes (none for a directory), size and time.
#[derive(Debug, PartialEq)]
struct Look {
    bytes: Option<Vec<u8>>,
    len: u64,
    modified: SystemTime,
}

/// Sets the path's time to a day long past, so that any write would show, and looks at it.
fn look_back_dated(path: &Path) -> Look {
    let past = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000_000);
    // Opened without waiting for a writer, which a FIFO would.
    let opened = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path);
    opened.unwrap().set_modified(past).unwrap();
    let look = look(path);
    assert_eq!(look.modified, past);
    look
}

fn look(path: &Path) -> Look {
    let meta = fs::metadata(path).unwrap();
    Look {
        bytes: meta.is_file().then(|| fs::read(path).unwrap()),
        len: meta.len(),
        modified: meta.modified().unwrap(),
    }
}

/// The error of opening `path`, which must come within seconds: a FIFO must not make it wait.
fn refusal(path: &Path) -> io::Error {
    let (tell, told) = mpsc::channel();
    let owned = path.to_owned();
    std::thread::spawn(move || {
        let _ = tell.send(Journal::open(&owned, 10).map(|_| ()));
    });
    let opened = told
        .recv_timeout(Duration::from_secs(10))
        .expect("opening returns instead of waiting");
    opened.expect_err("refused")
}

fn assert_refused_untouched(path: &Path, says: &str) {
    let before = look_back_dated(path);
    let error = refusal(path);
    assert_eq!(error.to_string(), format!("{}: {says}", path.display()));
    assert_eq!(look(path), before, "{} was touched", path.display());
}

fn mkfifo(path: &Path) {
    let made = Command::new("mkfifo").arg(path).status().unwrap();
    assert!(made.success());
}

#[test]
fn a_text_file_is_refused_and_left_as_it_is() {
    let dir = Dir::new("text");
    fs::write(dir.file(), "notes: buy milk\nand bread\n").unwrap();
    assert_refused_untouched(
        &dir.file(),
        "is not a journal: it does not begin with the journal header",
    );
    assert_eq!(refusal(&dir.file()).kind(), io::ErrorKind::InvalidData);
}

#[test]
fn a_header_cut_short_is_refused_not_cut() {
    let dir = Dir::new("short-header");
    fs::write(dir.file(), &header::HEADER[..7]).unwrap();
    assert_refused_untouched(
        &dir.file(),
        "is not a journal: it does not begin with the journal header",
    );
}

#[test]
fn a_journal_of_another_version_is_refused() {
    let dir = Dir::new("version");
    let mut bytes = header::MAGIC.to_vec();
    bytes.extend_from_slice(&3u32.to_le_bytes());
    bytes.extend_from_slice(&encode(CHAT, &msg(1, "a")));
    fs::write(dir.file(), &bytes).unwrap();
    assert_refused_untouched(
        &dir.file(),
        "is a journal of version 3; this build reads version 2",
    );
}

#[test]
fn a_file_that_begins_like_a_record_but_fails_its_checksum_is_refused() {
    let dir = Dir::new("bad-first");
    let mut bytes = encode_v1(&msg(1, "first"));
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    bytes.extend_from_slice(&encode_v1(&msg(2, "second, whole")));
    fs::write(dir.file(), &bytes).unwrap();
    assert_refused_untouched(
        &dir.file(),
        "is not a journal: it begins like a record, but that record is damaged",
    );
}

#[test]
fn what_is_not_a_regular_file_is_refused() {
    let dir = Dir::new("not-files");
    let sub = dir.0.join("a-directory");
    fs::create_dir(&sub).unwrap();
    assert_refused_untouched(&sub, "is a directory, not a journal file");
    assert_eq!(refusal(&sub).kind(), io::ErrorKind::InvalidInput);

    let fifo = dir.0.join("a-fifo");
    mkfifo(&fifo);
    assert_refused_untouched(&fifo, "is a FIFO, not a journal file");
    let link = dir.0.join("a-link-to-the-fifo");
    symlink(&fifo, &link).unwrap();
    assert_eq!(
        refusal(&link).to_string(),
        format!("{}: is a FIFO, not a journal file", link.display())
    );

    let null = Path::new("/dev/null");
    assert_eq!(
        refusal(null).to_string(),
        "/dev/null: is a character device, not a journal file"
    );
}

#[test]
fn garbage_right_after_the_header_is_cut_back_to_the_header() {
    let dir = Dir::new("after-header");
    fs::write(dir.file(), journal_bytes(b"\xFFch1 torn")).unwrap();
    let loaded = load(&dir.file(), 10);
    assert_eq!(
        loaded.problems,
        [format!(
            "{}: cut off 9 bytes at offset 12 that are not a whole record \
             (a write torn by a crash, or damage)",
            dir.file().display()
        )]
    );
    assert_eq!(fs::read(dir.file()).unwrap(), header::HEADER);
}

#[test]
fn a_journal_without_the_header_is_converted_in_place() {
    let dir = Dir::new("convert");
    let path = dir.file();
    let old = [encode_v1(&msg(1, "one")), encode_v1(&msg(2, "two"))].concat();
    fs::write(&path, &old).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();

    let (mut journal, loaded) = Journal::open(&path, 10).unwrap();
    assert_eq!(ids(&loaded), [1, 2]);
    assert_eq!(
        loaded.problems,
        [format!(
            "{}: converted from the format without a file header to journal version 2",
            path.display()
        )]
    );
    assert_eq!(fs::read(&path).unwrap(), journal_bytes(&old));
    let mode = fs::metadata(&path).unwrap().permissions().mode();
    assert_eq!(mode & 0o7777, 0o640);
    assert!(!temporary_name(&path, SUFFIX).exists());

    journal.append(CHAT, &msg(3, "three")).unwrap();
    drop(journal);
    let again = load(&path, 10);
    assert_eq!((ids(&again), again.problems), (vec![1, 2, 3], vec![]));
}

#[test]
fn a_converted_journal_still_loses_its_torn_tail() {
    let dir = Dir::new("convert-torn");
    let path = dir.file();
    let first = encode_v1(&msg(1, "one"));
    fs::write(
        &path,
        [&first[..], &encode_v1(&msg(2, "two"))[..5]].concat(),
    )
    .unwrap();
    let loaded = load(&path, 10);
    assert_eq!(ids(&loaded), [1]);
    assert_eq!(loaded.problems.len(), 2, "{:?}", loaded.problems);
    assert!(loaded.problems[1].ends_with(&format!(
        "cut off 5 bytes at offset {} that are not a whole record \
         (a write torn by a crash, or damage)",
        12 + first.len()
    )));
    assert_eq!(fs::read(&path).unwrap(), journal_bytes(&first));
}

#[test]
fn a_link_to_an_old_journal_stays_a_link_to_the_converted_one() {
    let dir = Dir::new("convert-link");
    let target = dir.file();
    let link = dir.0.join("link.journal");
    let old = encode_v1(&msg(4, "four"));
    fs::write(&target, &old).unwrap();
    symlink(&target, &link).unwrap();
    assert_eq!(ids(&load(&link, 10)), [4]);
    assert!(fs::symlink_metadata(&link).unwrap().is_symlink());
    assert_eq!(fs::read(&target).unwrap(), journal_bytes(&old));
}

#[test]
fn a_conversion_left_behind_stops_the_next_one_and_the_journal_is_kept() {
    let dir = Dir::new("convert-left");
    let path = dir.file();
    fs::write(&path, encode_v1(&msg(1, "one"))).unwrap();
    let left = temporary_name(&path, SUFFIX);
    fs::write(&left, b"half").unwrap();
    let before = look_back_dated(&path);
    let error = Journal::open(&path, 10).unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::AlreadyExists);
    assert!(
        error
            .to_string()
            .contains(&format!("{} exists", left.display())),
        "{error}"
    );
    assert_eq!(look(&path), before);
    assert_eq!(fs::read(&left).unwrap(), b"half");
}

#[test]
fn a_version_1_journal_gets_the_version_2_header_in_place_and_its_messages_are_the_chats() {
    let dir = Dir::new("version-1");
    let path = dir.file();
    let mut v1 = header::MAGIC.to_vec();
    v1.extend_from_slice(&1u32.to_le_bytes());
    let records = [encode_v1(&msg(1, "one")), encode_v1(&msg(2, "two"))].concat();
    fs::write(&path, [&v1[..], &records[..]].concat()).unwrap();

    let (mut journal, loaded) = Journal::open(&path, 10).unwrap();
    assert_eq!(ids(&loaded), [1, 2]);
    assert_eq!(loaded.feeds.len(), 1);
    assert_eq!(
        loaded.problems,
        [format!(
            "{}: journal version 1 is now version 2: its messages are the chat's",
            path.display()
        )]
    );
    assert_eq!(fs::read(&path).unwrap(), journal_bytes(&records));
    journal.append(CHAT, &msg(3, "three")).unwrap();
    journal.append("news", &msg(1, "a feed")).unwrap();
    drop(journal);
    let again = load(&path, 10);
    assert_eq!((ids(&again), again.problems), (vec![1, 2, 3], vec![]));
    assert_eq!(again.feeds[1].0, "news");
}
