//! Property test of the SSE writer: any event is either refused with an error, or read back by an
//! independent parser (the WHATWG rules, written separately in `common`) with the same fields.

mod common;

use proptest::prelude::*;
use sse_htmx::sse::{Event, FieldError};

/// Text with the characters that matter to the format: line breaks of every kind, NUL, colons,
/// spaces, and anything else.
fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            Just("\n".to_owned()),
            Just("\r".to_owned()),
            Just("\r\n".to_owned()),
            Just("\0".to_owned()),
            Just(":".to_owned()),
            Just(" ".to_owned()),
            Just("data: x".to_owned()),
            any::<char>().prop_map(String::from),
            "[a-z<>/.]{1,8}",
        ],
        0..12,
    )
    .prop_map(|parts| parts.concat())
}

/// What a client must see for `data`: lines split on any line ending, joined with LF.
fn data_as_seen(data: &str) -> String {
    data.replace("\r\n", "\n").replace('\r', "\n")
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn every_event_is_refused_or_round_trips(
        event in proptest::option::of(text()),
        id in proptest::option::of(text()),
        data in proptest::option::of(text()),
        retry_ms in proptest::option::of(0u64..10_000_000),
    ) {
        let mut built = Ok(Event::new());
        if let Some(name) = &event {
            built = built.and_then(|e| e.event(name.clone()));
        }
        if let Some(id) = &id {
            built = built.and_then(|e| e.id(id.clone()));
        }
        let built = built.map(|mut e| {
            if let Some(data) = &data {
                e = e.data(data.clone());
            }
            if let Some(ms) = retry_ms {
                e = e.retry(std::time::Duration::from_millis(ms));
            }
            e
        });
        match built {
            Err(FieldError::LineBreakInEvent) => {
                prop_assert!(event.unwrap().contains(['\n', '\r']));
            }
            Err(FieldError::LineBreakInId) => prop_assert!(id.unwrap().contains(['\n', '\r'])),
            Err(FieldError::NulInId) => prop_assert!(id.unwrap().contains('\0')),
            Ok(built) => {
                let mut wire = Vec::new();
                built.write_to(&mut wire).unwrap();
                let parsed = common::parse_events(std::str::from_utf8(&wire).unwrap());
                let has_fields = event.is_some() || id.is_some() || data.is_some() || retry_ms.is_some();
                prop_assert_eq!(parsed.len(), usize::from(has_fields));
                if let Some(seen) = parsed.first() {
                    prop_assert_eq!(&seen.event, &event);
                    prop_assert_eq!(&seen.id, &id);
                    prop_assert_eq!(seen.retry, retry_ms);
                    prop_assert_eq!(&seen.data, &data.as_deref().map(data_as_seen));
                }
            }
        }
    }
}
