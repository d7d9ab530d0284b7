//! A chat message, what a submission must satisfy to become one, and why one is refused.
//!
//! ```text
//! text  "  hello\r\nworld  "  ->  "hello\nworld"   (line breaks to \n, then trimmed)
//! text  "   "                 ->  Refusal::Empty (422)
//! name  None or "  "          ->  "anonymous"
//! name  45 characters         ->  its first 40 characters
//! ```
//!
//! The text is the content: it is never cut, a text over the limit is refused so the sender
//! knows. The name is a label: it is cut to [`Limits::max_name_chars`] rather than refused,
//! because the page's input already stops at that length, so only a hand-made request reaches
//! it, and a shortened name loses nothing the room needs. Line breaks and other control
//! characters in a name become spaces (a name is shown on one line).

use std::fmt;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The name given to a submission that has none.
pub const ANONYMOUS: &str = "anonymous";

/// One published message. Its id is unique across runs (see `ids`), so a client's
/// `Last-Event-ID` from an earlier run is never mistaken for one of this run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Message {
    pub id: u64,
    pub name: String,
    pub text: String,
    /// When it was published, in milliseconds since the Unix epoch.
    pub at_ms: u64,
}

impl Message {
    /// Bytes of name and text: what the history's byte bound counts.
    pub fn size(&self) -> usize {
        self.name.len() + self.text.len()
    }
}

/// Milliseconds since the Unix epoch; 0 for a clock set before 1970.
pub fn unix_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The fields of a publish request as sent, before validation. `None` is a field not sent.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Submission {
    pub name: Option<String>,
    pub text: Option<String>,
}

/// A valid submission: what a [`Message`] is made of, before it has an id and a time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Draft {
    pub name: String,
    pub text: String,
}

/// Bounds on a submission, in characters (Unicode scalar values, what `str::chars` yields).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    pub max_chars: usize,
    pub max_name_chars: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_chars: 2_000,
            max_name_chars: 40,
        }
    }
}

/// Why a publish request was not accepted. Each has a status code, a short message for the
/// person who sent it, and a label for metrics.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// No text, or only whitespace.
    Empty,
    /// More characters than allowed, after line breaks are normalised and the text trimmed.
    TooLong { max_chars: usize },
    /// The body, raw or percent-decoded, is not UTF-8.
    BadUtf8,
    /// A `%` in a form not followed by two hex digits. Browsers never send one.
    BadEscape,
    /// Not a form or plain text in UTF-8, or no `Content-Type` at all.
    MediaType,
    /// Too many messages from this address; a token is free again after `retry_after`.
    RateLimited { retry_after: Duration },
    /// The message would start a new feed, and `max_feeds` exist already (`--max-feeds`).
    TooManyFeeds { max_feeds: usize },
    /// The fan-out threads are that many messages behind: taking more would only queue them in
    /// memory, without bound while publishers outpace the delivery.
    Busy,
}

impl Refusal {
    /// The HTTP status to answer with.
    pub fn status(&self) -> u16 {
        match self {
            Refusal::Empty | Refusal::TooLong { .. } => 422,
            Refusal::BadUtf8 | Refusal::BadEscape => 400,
            Refusal::MediaType => 415,
            Refusal::RateLimited { .. } => 429,
            // The server has no room for one more feed (RFC 4918 §11.5): not the client's input
            // (4xx), not a rate (429), and no retry helps until the operator raises the bound.
            Refusal::TooManyFeeds { .. } => 507,
            Refusal::Busy => 503,
        }
    }

    /// A fixed label for a metrics counter.
    pub fn label(&self) -> &'static str {
        match self {
            Refusal::Empty => "empty",
            Refusal::TooLong { .. } => "too_long",
            Refusal::BadUtf8 => "bad_utf8",
            Refusal::BadEscape => "bad_escape",
            Refusal::MediaType => "media_type",
            Refusal::RateLimited { .. } => "rate_limited",
            Refusal::TooManyFeeds { .. } => "too_many_feeds",
            Refusal::Busy => "busy",
        }
    }

    /// The value of a `Retry-After` header, for a request that may be sent again as it is.
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Refusal::RateLimited { retry_after } => Some(whole_seconds(*retry_after)),
            Refusal::Busy => Some(1),
            _ => None,
        }
    }
}

/// A wait in whole seconds, rounded up and at least 1, as `Retry-After` wants it.
pub fn whole_seconds(wait: Duration) -> u64 {
    let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
    secs.max(1)
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::Empty => f.write_str("the message is empty"),
            Refusal::TooLong { max_chars } => {
                write!(f, "the message is longer than {max_chars} characters")
            }
            Refusal::BadUtf8 => f.write_str("the message is not valid UTF-8"),
            Refusal::BadEscape => f.write_str("the form has a malformed percent escape"),
            Refusal::MediaType => {
                f.write_str("send application/x-www-form-urlencoded or text/plain, in UTF-8")
            }
            Refusal::RateLimited { retry_after } => write!(
                f,
                "too many messages; try again in {} s",
                whole_seconds(*retry_after)
            ),
            Refusal::TooManyFeeds { max_feeds } => write!(
                f,
                "this server holds at most {max_feeds} feeds; publish to one that exists"
            ),
            Refusal::Busy => f.write_str(
                "the server is still sending earlier messages to their subscribers; try again in 1 s",
            ),
        }
    }
}

/// Checks a submission and returns what the message will hold.
///
/// The text's line breaks (`\r\n` as forms send them, or a lone `\r`) become `\n`, then
/// whitespace around it is trimmed; what is left must be 1 to `max_chars` characters.
pub fn validate(submission: &Submission, limits: &Limits) -> Result<Draft, Refusal> {
    let text = normalise_text(submission.text.as_deref().unwrap_or(""));
    if text.is_empty() {
        return Err(Refusal::Empty);
    }
    if text.chars().count() > limits.max_chars {
        return Err(Refusal::TooLong {
            max_chars: limits.max_chars,
        });
    }
    let name = normalise_name(submission.name.as_deref().unwrap_or(""), limits);
    Ok(Draft { name, text })
}

fn normalise_text(text: &str) -> String {
    text.replace("\r\n", "\n")
        .replace('\r', "\n")
        .trim()
        .to_owned()
}

fn normalise_name(name: &str, limits: &Limits) -> String {
    let one_line: String = name
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect();
    let cut: String = one_line
        .trim()
        .chars()
        .take(limits.max_name_chars)
        .collect();
    let cut = cut.trim_end();
    if cut.is_empty() {
        ANONYMOUS.to_owned()
    } else {
        cut.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn submit(name: Option<&str>, text: Option<&str>) -> Result<Draft, Refusal> {
        let submission = Submission {
            name: name.map(str::to_owned),
            text: text.map(str::to_owned),
        };
        validate(&submission, &Limits::default())
    }

    fn draft(name: &str, text: &str) -> Result<Draft, Refusal> {
        Ok(Draft {
            name: name.to_owned(),
            text: text.to_owned(),
        })
    }

    #[test]
    fn a_plain_message_is_kept_as_sent() {
        assert_eq!(submit(Some("ada"), Some("hello")), draft("ada", "hello"));
    }

    #[test]
    fn a_missing_empty_or_blank_text_is_refused_as_empty() {
        assert_eq!(submit(Some("ada"), None), Err(Refusal::Empty));
        assert_eq!(submit(Some("ada"), Some("")), Err(Refusal::Empty));
        assert_eq!(submit(None, Some(" \t\r\n \u{3000}")), Err(Refusal::Empty));
    }

    #[test]
    fn line_breaks_become_newlines_and_the_text_is_trimmed() {
        assert_eq!(
            submit(None, Some("  one\r\ntwo\rthree\n\n  ")),
            draft("anonymous", "one\ntwo\nthree")
        );
    }

    #[test]
    fn the_length_limit_counts_characters_not_bytes() {
        let at_limit = "é".repeat(2_000);
        assert_eq!(at_limit.len(), 4_000);
        assert_eq!(submit(None, Some(&at_limit)), draft("anonymous", &at_limit));
        let over = "😀".repeat(2_001);
        assert_eq!(
            submit(None, Some(&over)),
            Err(Refusal::TooLong { max_chars: 2_000 })
        );
    }

    #[test]
    fn surrounding_whitespace_does_not_count_towards_the_limit() {
        let text = format!("   {}\r\n", "a".repeat(2_000));
        assert_eq!(
            submit(None, Some(&text)),
            draft("anonymous", &"a".repeat(2_000))
        );
    }

    #[test]
    fn a_missing_or_blank_name_is_anonymous() {
        assert_eq!(submit(None, Some("hi")), draft("anonymous", "hi"));
        assert_eq!(submit(Some("  \t"), Some("hi")), draft("anonymous", "hi"));
    }

    #[test]
    fn a_name_is_trimmed_and_cut_to_forty_characters() {
        assert_eq!(submit(Some("  ada  "), Some("hi")), draft("ada", "hi"));
        let long = format!("{}xyz", "ü".repeat(40));
        assert_eq!(
            submit(Some(&long), Some("hi")),
            draft(&"ü".repeat(40), "hi")
        );
        // Cutting can leave a space at the end; it is trimmed too.
        let spaced = format!("{} tail", "b".repeat(39));
        assert_eq!(
            submit(Some(&spaced), Some("hi")),
            draft(&"b".repeat(39), "hi")
        );
    }

    #[test]
    fn control_characters_in_a_name_become_spaces() {
        assert_eq!(
            submit(Some("ada\nlove\u{7}lace\r"), Some("hi")),
            draft("ada love lace", "hi")
        );
        assert_eq!(submit(Some("\n\r\0"), Some("hi")), draft("anonymous", "hi"));
    }

    #[test]
    fn every_refusal_has_its_status_label_and_message() {
        let cases = [
            (Refusal::Empty, 422, "empty", "the message is empty"),
            (
                Refusal::TooLong { max_chars: 2_000 },
                422,
                "too_long",
                "the message is longer than 2000 characters",
            ),
            (
                Refusal::BadUtf8,
                400,
                "bad_utf8",
                "the message is not valid UTF-8",
            ),
            (
                Refusal::BadEscape,
                400,
                "bad_escape",
                "the form has a malformed percent escape",
            ),
            (
                Refusal::MediaType,
                415,
                "media_type",
                "send application/x-www-form-urlencoded or text/plain, in UTF-8",
            ),
            (
                Refusal::RateLimited {
                    retry_after: Duration::from_millis(1_200),
                },
                429,
                "rate_limited",
                "too many messages; try again in 2 s",
            ),
        ];
        for (refusal, status, label, message) in cases {
            assert_eq!(refusal.status(), status, "{refusal:?}");
            assert_eq!(refusal.label(), label, "{refusal:?}");
            assert_eq!(refusal.to_string(), message, "{refusal:?}");
        }
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds_and_is_at_least_one() {
        let after = |ms| {
            Refusal::RateLimited {
                retry_after: Duration::from_millis(ms),
            }
            .retry_after_secs()
        };
        assert_eq!(after(0), Some(1));
        assert_eq!(after(1), Some(1));
        assert_eq!(after(1_000), Some(1));
        assert_eq!(after(1_001), Some(2));
        assert_eq!(after(3_000), Some(3));
        assert_eq!(Refusal::Empty.retry_after_secs(), None);
    }

    #[test]
    fn unix_ms_counts_from_the_epoch_and_is_zero_before_it() {
        assert_eq!(
            unix_ms(UNIX_EPOCH + Duration::from_micros(1_500_999)),
            1_500
        );
        assert_eq!(unix_ms(UNIX_EPOCH - Duration::from_secs(1)), 0);
    }

    #[test]
    fn a_message_size_is_the_bytes_of_name_and_text() {
        let m = Message {
            id: 1,
            name: "ü".into(),
            text: "abc".into(),
            at_ms: 0,
        };
        assert_eq!(m.size(), 5);
    }
}
