//! A chat message as a Redis stream entry, and a stream id as an SSE id.
//!
//! Redis gives each entry an id `MS-SEQ`: the millisecond of Redis's clock when it was added
//! (never less than the stream's last), and a sequence number within that millisecond. The SSE
//! id is the number `MS × 1000 + SEQ`:
//!
//! ```text
//! stream id  1764000000123-0   ->  SSE id 1764000000123000
//! stream id  1764000000123-7   ->  SSE id 1764000000123007
//! ```
//!
//! It increases with the stream id, it is in the range of a run's ids without Redis (the clock
//! in microseconds, see `ids`), so ids of both kinds compare sensibly, and it stays under 2⁵³
//! (JavaScript holds it exactly) until the year 2255. It is one-to-one for `SEQ < 1000`: the
//! thousandth message on one feed within one millisecond has no SSE id; its publisher deletes
//! it and answers `503`, and every reader skips it.

use std::collections::HashMap;

use ::redis::Value;

use crate::Config;
use crate::app::chat::message::{Draft, Message};

/// Sequence numbers within a millisecond that have an SSE id.
const PER_MS: u64 = 1000;

/// The SSE id of the stream id `MS-SEQ`; `None` for a sequence of 1000 or more, or a string
/// that is no stream id.
pub fn sse_id(stream_id: &str) -> Option<u64> {
    let (ms, seq) = stream_id.split_once('-')?;
    let (ms, seq): (u64, u64) = (ms.parse().ok()?, seq.parse().ok()?);
    if seq >= PER_MS {
        return None;
    }
    ms.checked_mul(PER_MS)?.checked_add(seq)
}

/// The stream id of an SSE id: where a reader that has it resumes.
pub fn stream_id(sse_id: u64) -> String {
    format!("{}-{}", sse_id / PER_MS, sse_id % PER_MS)
}

/// The fields of an entry, in the order `XADD` takes them.
pub fn fields(draft: &Draft, at_ms: u64) -> [(&'static str, String); 3] {
    [
        ("name", draft.name.clone()),
        ("text", draft.text.clone()),
        ("at", at_ms.to_string()),
    ]
}

/// The message an entry holds; `None` for an id without an SSE id, or a field missing, not
/// UTF-8 or longer than any message of this server ([`Config::MAX_MESSAGE`] characters): an
/// entry another program wrote, skipped, not guessed at.
pub fn message(stream_id: &str, map: &HashMap<String, Value>) -> Option<Message> {
    let text_of = |field: &str| {
        let text = match map.get(field)? {
            Value::BulkString(bytes) => String::from_utf8(bytes.clone()).ok()?,
            Value::SimpleString(text) => text.clone(),
            _ => return None,
        };
        (text.chars().count() <= Config::MAX_MESSAGE).then_some(text)
    };
    Some(Message {
        id: sse_id(stream_id)?,
        name: text_of("name")?,
        text: text_of("text")?,
        at_ms: text_of("at")?.parse().ok()?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stream_id_becomes_milliseconds_times_a_thousand_plus_its_sequence() {
        assert_eq!(sse_id("1764000000123-0"), Some(1_764_000_000_123_000));
        assert_eq!(sse_id("1764000000123-7"), Some(1_764_000_000_123_007));
        assert_eq!(sse_id("1764000000123-999"), Some(1_764_000_000_123_999));
        assert_eq!(sse_id("0-1"), Some(1));
    }

    #[test]
    fn the_mapping_keeps_the_order_of_stream_ids() {
        let ids = ["5-0", "5-1", "5-999", "6-0", "1000-0"];
        let mapped: Vec<u64> = ids.iter().map(|id| sse_id(id).unwrap()).collect();
        assert!(
            mapped.windows(2).all(|pair| pair[0] < pair[1]),
            "{mapped:?}"
        );
    }

    #[test]
    fn a_thousandth_sequence_or_garbage_has_no_sse_id() {
        assert_eq!(sse_id("5-1000"), None);
        assert_eq!(sse_id("5"), None);
        assert_eq!(sse_id("a-1"), None);
        assert_eq!(sse_id("5-"), None);
        assert_eq!(sse_id(&format!("{}-0", u64::MAX)), None);
    }

    #[test]
    fn an_sse_id_goes_back_to_its_stream_id() {
        for id in ["1764000000123-0", "1764000000123-7", "0-1", "9-999"] {
            assert_eq!(stream_id(sse_id(id).unwrap()), id);
        }
    }

    #[test]
    fn an_entry_with_every_field_is_a_message_and_one_without_is_skipped() {
        let draft = Draft {
            name: "ann".into(),
            text: "hi\nthere".into(),
        };
        let mut map: HashMap<String, Value> = fields(&draft, 42)
            .into_iter()
            .map(|(field, value)| (field.to_owned(), Value::BulkString(value.into_bytes())))
            .collect();
        let message = super::message("7-3", &map).unwrap();
        assert_eq!(
            message,
            Message {
                id: 7003,
                name: "ann".into(),
                text: "hi\nthere".into(),
                at_ms: 42,
            }
        );
        assert_eq!(super::message("7-1000", &map), None);
        // As long as a message may be, and one character longer.
        let longest = "é".repeat(Config::MAX_MESSAGE);
        map.insert(
            "text".into(),
            Value::BulkString(longest.clone().into_bytes()),
        );
        assert_eq!(super::message("7-3", &map).unwrap().text, longest);
        map.insert("text".into(), Value::SimpleString(longest.clone() + "x"));
        assert_eq!(super::message("7-3", &map), None);
        map.insert("name".into(), Value::SimpleString(longest + "x"));
        map.insert("text".into(), Value::SimpleString("hi".into()));
        assert_eq!(super::message("7-3", &map), None);
        map.insert("text".into(), Value::BulkString(vec![0xff]));
        assert_eq!(super::message("7-3", &map), None);
        map.remove("text");
        assert_eq!(super::message("7-3", &map), None);
    }
}
