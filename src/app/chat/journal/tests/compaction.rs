//! A journal that grew is compacted to what a start would load, and loads the same afterwards.

use super::*;
use crate::app::chat::history::History;
use std::os::unix::fs::PermissionsExt;

/// Appends `count` messages of `feed`, ids from `first`, each with about 500 bytes of text.
fn append_many(journal: &mut Journal, feed: &str, first: u64, count: u64) {
    let text = "x".repeat(500);
    for id in first..first + count {
        journal.append(feed, &msg(id, &text)).unwrap();
    }
}

#[test]
fn a_journal_is_compacted_once_past_twice_what_it_loads_and_one_mebibyte() {
    let dir = Dir::new("compact");
    let path = dir.file();
    let (mut journal, _) = Journal::open(&path, 10).unwrap();
    // About 0.5 MiB: not due.
    append_many(&mut journal, CHAT, 1, 1000);
    assert!(journal.compact_if_due().is_none());
    append_many(&mut journal, "load", 1, 1200);
    let before = fs::metadata(&path).unwrap().len();
    let (was, now) = journal.compact_if_due().unwrap().unwrap();
    assert_eq!(was, before);
    assert_eq!(now, fs::metadata(&path).unwrap().len());
    assert!(
        now < 12_000,
        "{now} bytes: 11 messages of each of the two feeds"
    );
    assert!(journal.compact_if_due().is_none());
    // The compacted file is locked as the one it replaced was: another server is refused.
    let refused = Journal::open(&path, 10).expect_err("the compacted file is locked");
    assert_eq!(refused.kind(), io::ErrorKind::WouldBlock);

    // Appends go on into the compacted file, and a start loads what it would have loaded.
    journal.append(CHAT, &msg(1001, "after")).unwrap();
    drop(journal);
    let loaded = load(&path, 10);
    assert_eq!(loaded.problems, Vec::<String>::new());
    assert_eq!(ids(&loaded), (992..=1001).collect::<Vec<_>>());
    // The message before the oldest is still known: a client behind it is told it missed some.
    assert_eq!(chat(&loaded).before, Some(991));
    assert_eq!(chat(&loaded).last_id, Some(1001));
    let (feed, load) = &loaded.feeds[1];
    assert_eq!(feed, "load");
    let load_ids: Vec<u64> = load.messages.iter().map(|m| m.id).collect();
    assert_eq!(load_ids, (1191..=1200).collect::<Vec<_>>());
    assert_eq!(load.before, Some(1190));
}

#[test]
fn a_journal_already_too_large_when_opened_is_compacted_at_its_next_append() {
    let dir = Dir::new("compact-at-open");
    let path = dir.file();
    let (mut journal, _) = Journal::open(&path, 1000).unwrap();
    // About 1.3 MiB, never compacted (as a journal of an earlier version was).
    append_many(&mut journal, CHAT, 1, 2500);
    drop(journal);
    let (mut journal, _) = Journal::open(&path, 5).unwrap();
    journal.append(CHAT, &msg(2501, "next")).unwrap();
    let (_, now) = journal.compact_if_due().unwrap().unwrap();
    assert!(now < 4_000, "{now}");
    drop(journal);
    assert_eq!(ids(&load(&path, 5)), (2497..=2501).collect::<Vec<_>>());
}

#[test]
fn compaction_keeps_the_permissions_and_removes_what_a_crash_left_behind() {
    let dir = Dir::new("compact-left");
    let path = dir.file();
    let (mut journal, _) = Journal::open(&path, 3).unwrap();
    fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
    let left = super::super::rewrite::temporary_name(&path, ".compacting");
    fs::write(&left, b"half").unwrap();
    append_many(&mut journal, CHAT, 1, 2200);
    assert!(journal.compact_if_due().unwrap().is_ok());
    assert!(!left.exists());
    let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o7777;
    assert_eq!(mode, 0o640);
    drop(journal);
    assert_eq!(ids(&load(&path, 3)), [2198, 2199, 2200]);
}

#[test]
fn a_journal_replaced_under_it_is_not_compacted_and_says_so() {
    let dir = Dir::new("compact-replaced");
    let path = dir.file();
    let (mut journal, _) = Journal::open(&path, 3).unwrap();
    append_many(&mut journal, CHAT, 1, 2200);
    fs::rename(&path, dir.0.join("moved")).unwrap();
    fs::write(&path, b"someone else's").unwrap();
    let error = journal.compact_if_due().unwrap().unwrap_err();
    assert!(error.to_string().contains("was replaced"), "{error}");
    assert_eq!(fs::read(&path).unwrap(), b"someone else's");
    // Not tried again at every append, but once the journal has doubled.
    journal.append(CHAT, &msg(2201, "next")).unwrap();
    assert!(journal.compact_if_due().is_none());
    append_many(&mut journal, CHAT, 2202, 2300);
    assert!(journal.begin_compaction().is_some());
}

/// A journal replaced while a compaction wrote its new file is left as it is, and so is the
/// file it was replaced with; the new file is removed.
#[test]
fn a_journal_replaced_while_its_compaction_wrote_is_not_replaced_again() {
    let dir = Dir::new("compact-replaced-meanwhile");
    let path = dir.file();
    let (mut journal, _) = Journal::open(&path, 3).unwrap();
    append_many(&mut journal, CHAT, 1, 2200);
    let written = journal.begin_compaction().expect("due").write();
    fs::rename(&path, dir.0.join("moved")).unwrap();
    fs::write(&path, b"someone else's").unwrap();
    let error = journal.finish_compaction(written).unwrap_err();
    assert!(error.to_string().contains("was replaced"), "{error}");
    assert_eq!(fs::read(&path).unwrap(), b"someone else's");
    let left = super::super::rewrite::temporary_name(&path, ".compacting");
    assert!(!left.exists());
}

/// A compaction writes its file with no lock held (on a thread of its own in the server):
/// appends go on meanwhile, to the old file, and are copied to the new one as it takes the old
/// one's place. None is lost, none read twice.
#[test]
fn what_is_appended_while_a_compaction_writes_is_in_the_compacted_file() {
    let dir = Dir::new("compact-meanwhile");
    let path = dir.file();
    let (mut journal, _) = Journal::open(&path, 10).unwrap();
    append_many(&mut journal, CHAT, 1, 2200);
    let compaction = journal.begin_compaction().expect("due");
    // After it began and before it reads: not for it to read.
    append_many(&mut journal, "late", 1, 3);
    assert!(journal.begin_compaction().is_none(), "one at a time");
    let written = compaction.write();
    append_many(&mut journal, "late", 4, 3);
    journal.append(CHAT, &msg(2201, "last")).unwrap();
    let before = fs::metadata(&path).unwrap().len();
    let done = journal.finish_compaction(written).unwrap();
    assert_eq!(done.before, before);
    assert_eq!(done.after, fs::metadata(&path).unwrap().len());
    assert!(
        done.after < 10_000,
        "{} bytes: 17 messages and 1",
        done.after
    );
    journal.append(CHAT, &msg(2202, "after")).unwrap();
    drop(journal);

    let loaded = load(&path, 10);
    assert_eq!(loaded.problems, Vec::<String>::new());
    assert_eq!(ids(&loaded), (2193..=2202).collect::<Vec<_>>());
    assert_eq!(chat(&loaded).before, Some(2192));
    let (feed, late) = &loaded.feeds[1];
    assert_eq!(feed, "late");
    let late_ids: Vec<u64> = late.messages.iter().map(|m| m.id).collect();
    assert_eq!(late_ids, (1..=6).collect::<Vec<_>>());
}

/// What a compaction keeps sets when the next is due, not what was appended meanwhile: a tail
/// of more than 1 MiB (a fast feed while the disk was slow) is compacted away next.
#[test]
fn a_compaction_whose_tail_is_long_is_followed_by_another() {
    let dir = Dir::new("compact-long-tail");
    let path = dir.file();
    let (mut journal, _) = Journal::open(&path, 10).unwrap();
    append_many(&mut journal, CHAT, 1, 2200);
    let written = journal.begin_compaction().expect("due").write();
    append_many(&mut journal, CHAT, 2201, 2200);
    let done = journal.finish_compaction(written).unwrap();
    assert!(done.after > 1 << 20, "{}", done.after);
    assert!(journal.begin_compaction().is_some(), "due again");
}

/// A feed's history holds at most 1 MiB of text, whatever `--history` says: a start loads no
/// more, and a compaction keeps no more (and one message before it), so that the journal stays
/// within twice what memory holds plus 1 MiB, as the docs say.
#[test]
fn what_is_loaded_and_kept_is_within_the_historys_bytes_too() {
    let dir = Dir::new("compact-bytes");
    let path = dir.file();
    let bounds = Bounds {
        max_messages: 1000,
        max_bytes: 100_000,
    };
    let (mut journal, _) = Journal::open(&path, bounds).unwrap();
    // 400 messages of 8 KB: 3.2 MB of text, 400 within the count.
    let text = "y".repeat(8000);
    for id in 1..=400 {
        journal.append(CHAT, &msg(id, &text)).unwrap();
    }
    let (was, now) = journal.compact_if_due().expect("due").unwrap();
    assert!(was > 3_000_000, "{was}");
    // The history holds 12 of them (each 8,000 bytes of text and a 5- or 6-byte name), and
    // one more is kept for what was before.
    assert!(now < 14 * 8_100, "{now} bytes");
    drop(journal);
    let mut history = History::new(bounds);
    for id in 1..=400 {
        history.push(msg(id, &text)).unwrap();
    }
    let held: Vec<u64> = history.recent(usize::MAX).iter().map(|m| m.id).collect();
    assert_eq!(held.len(), 12);
    let (_, loaded) = Journal::open(&path, bounds).unwrap();
    assert_eq!(ids(&loaded), held);
    assert_eq!(chat(&loaded).before, history.before_oldest());
    assert_eq!(chat(&loaded).last_id, Some(400));
}
