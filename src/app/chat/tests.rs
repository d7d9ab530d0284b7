use super::journal::tests::Dir;
use super::*;
use std::time::{Duration, UNIX_EPOCH};

fn at(us: u64) -> SystemTime {
    UNIX_EPOCH + Duration::from_micros(us)
}

fn draft(text: &str) -> Draft {
    Draft {
        name: "ada".into(),
        text: text.into(),
    }
}

fn ids(messages: &[Arc<Message>]) -> Vec<u64> {
    messages.iter().map(|m| m.id).collect()
}

fn small() -> Bounds {
    Bounds {
        max_messages: 3,
        max_bytes: 1 << 20,
    }
}

#[test]
fn a_published_message_has_the_next_id_and_its_time() {
    let (mut room, problems) = Room::open(small(), None, at(1_000_000)).unwrap();
    assert_eq!(problems, [] as [String; 0]);
    let first = room.publish(draft("hi"), at(2_000_000)).unwrap();
    let second = room.publish(draft("again"), at(3_500_000)).unwrap();
    assert_eq!(
        *first,
        Message {
            id: 1_000_000,
            name: "ada".into(),
            text: "hi".into(),
            at_ms: 2_000,
        }
    );
    assert_eq!((second.id, second.at_ms), (1_000_001, 3_500));
    assert_eq!(ids(&room.recent(50)), [1_000_000, 1_000_001]);
    assert_eq!(room.last_id(), Some(1_000_001));
    room.sync().unwrap();
}

#[test]
fn a_new_page_gets_the_newest_and_misses_nothing() {
    let (mut room, _) = Room::open(small(), None, at(100)).unwrap();
    for text in ["a", "b", "c"] {
        room.publish(draft(text), at(100)).unwrap();
    }
    for header in [None, Some(""), Some("  ")] {
        let resume = room.resume(header, 2);
        assert!(!resume.missed, "{header:?}");
        assert_eq!(ids(&resume.messages), [101, 102], "{header:?}");
    }
}

#[test]
fn a_reconnect_gets_what_followed_its_last_event_id() {
    let (mut room, _) = Room::open(small(), None, at(100)).unwrap();
    for text in ["a", "b", "c", "d"] {
        room.publish(draft(text), at(100)).unwrap();
    }
    // Held: 101..=103; 100 was evicted last.
    let resume = room.resume(Some(" 101 "), 50);
    assert_eq!(
        (resume.missed, ids(&resume.messages)),
        (false, vec![102, 103])
    );
    let resume = room.resume(Some("100"), 50);
    assert_eq!(
        (resume.missed, ids(&resume.messages)),
        (false, vec![101, 102, 103])
    );
    let resume = room.resume(Some("99"), 50);
    assert_eq!(
        (resume.missed, ids(&resume.messages)),
        (true, vec![101, 102, 103])
    );
}

#[test]
fn a_last_event_id_that_is_not_a_number_missed_messages() {
    let (mut room, _) = Room::open(small(), None, at(100)).unwrap();
    room.publish(draft("a"), at(100)).unwrap();
    for header in ["abc", "-1", "1.5", "18446744073709551616"] {
        let resume = room.resume(Some(header), 0);
        assert_eq!(
            (resume.missed, ids(&resume.messages)),
            (true, vec![100]),
            "{header}"
        );
    }
}

#[test]
fn an_id_from_an_earlier_run_without_a_store_is_unknown() {
    let (mut earlier, _) = Room::open(small(), None, at(1_000)).unwrap();
    let seen = earlier
        .publish(draft("before the restart"), at(1_000))
        .unwrap();
    let (mut later, _) = Room::open(small(), None, at(2_000)).unwrap();
    later.publish(draft("after"), at(2_000)).unwrap();
    let resume = later.resume(Some(&seen.id.to_string()), 50);
    assert_eq!((resume.missed, ids(&resume.messages)), (true, vec![2_000]));
    // Even the very first reconnect, before anything new was said.
    let (empty, _) = Room::open(small(), None, at(3_000)).unwrap();
    let resume = empty.resume(Some(&seen.id.to_string()), 50);
    assert_eq!((resume.missed, ids(&resume.messages)), (true, vec![]));
}

#[test]
fn a_store_carries_messages_and_ids_across_a_restart() {
    let dir = Dir::new("room-restart");
    let path = dir.file();
    let (mut room, _) = Room::open(small(), Some(&path), at(5_000)).unwrap();
    for text in ["a", "b", "c", "d"] {
        room.publish(draft(text), at(5_000)).unwrap();
    }
    drop(room);
    // The clock went backwards: ids continue above the stored ones.
    let (mut room, problems) = Room::open(small(), Some(&path), at(10)).unwrap();
    assert_eq!(problems, [] as [String; 0]);
    assert_eq!(ids(&room.recent(50)), [5_001, 5_002, 5_003]);
    assert_eq!(room.recent(50)[0].text, "b");
    let resume = room.resume(Some("5000"), 50);
    assert_eq!(
        (resume.missed, ids(&resume.messages)),
        (false, vec![5_001, 5_002, 5_003])
    );
    let next = room.publish(draft("e"), at(10)).unwrap();
    assert_eq!(next.id, 5_004);
    // A client that saw the last message before the restart missed nothing.
    let resume = room.resume(Some("5003"), 50);
    assert_eq!((resume.missed, ids(&resume.messages)), (false, vec![5_004]));
}

#[test]
fn a_store_that_cannot_be_opened_stops_the_room_from_opening() {
    let dir = Dir::new("room-no-dir");
    let path = dir.0.join("absent/chat.journal");
    let err = Room::open(small(), Some(&path), at(1)).unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::NotFound);
}

#[test]
fn a_carried_room_holds_the_same_messages_and_goes_on_from_the_last_id() {
    let (mut room, _) = Room::open(small(), None, at(1_000_000)).unwrap();
    for text in ["a", "b", "c", "d"] {
        room.publish(draft(text), at(2_000_000)).unwrap();
    }
    // Held: 1,000,001 to 1,000,003; 1,000,000 was evicted.
    let carried = room.carry();
    assert_eq!(carried.note, "before=1000000,last=1000003");
    let later = at(9_000_000);
    let (mut next, problems) = Room::carried(small(), None, &carried, later).unwrap();
    assert!(problems.is_empty());
    assert_eq!(ids(&next.recent(10)), ids(&room.recent(10)));
    assert_eq!(next.recent(10)[0].text, "b");
    // A page that saw the evicted one missed nothing; one that saw 1,000,002 gets the rest.
    assert_eq!(
        next.resume(Some("1000000"), 10),
        room.resume(Some("1000000"), 10)
    );
    assert_eq!(ids(&next.resume(Some("1000002"), 10).messages), [1_000_003]);
    // The clock is far ahead, yet the next id is the one after the last.
    assert_eq!(next.publish(draft("e"), later).unwrap().id, 1_000_004);
}

#[test]
fn an_empty_room_carries_nothing_and_starts_at_the_clock() {
    let (room, _) = Room::open(small(), None, at(1_000)).unwrap();
    let carried = room.carry();
    assert_eq!(carried.note, "before=,last=");
    let (mut next, _) = Room::carried(small(), None, &carried, at(5_000)).unwrap();
    assert_eq!(next.held(), 0);
    assert_eq!(next.publish(draft("x"), at(5_000)).unwrap().id, 5_000);
}

#[test]
fn a_carried_room_with_a_store_reads_the_store_and_goes_on_from_the_last_id() {
    let dir = Dir::new("carried");
    let path = dir.file();
    let (mut room, _) = Room::open(small(), Some(&path), at(1_000_000)).unwrap();
    room.publish(draft("kept"), at(1_000_000)).unwrap();
    let carried = room.carry();
    drop(room);
    let (mut next, _) = Room::carried(small(), Some(&path), &carried, at(7_000_000)).unwrap();
    assert_eq!(next.recent(10)[0].text, "kept");
    assert_eq!(
        next.publish(draft("n"), at(7_000_000)).unwrap().id,
        1_000_001
    );
}
