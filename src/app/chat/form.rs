//! The body of a publish request, read into a [`Submission`].
//!
//! ```text
//! Content-Type: application/x-www-form-urlencoded     name=ada&text=hello+w%C3%B6rld
//! Content-Type: text/plain; charset=utf-8              hello wörld      (URL: ?name=ada)
//! ```
//!
//! Decisions, each pinned by a test:
//! - The media type is compared without regard to case and its parameters are ignored, except a
//!   `charset`, which must name UTF-8 (`utf-8` or `utf8`, any case, quoted or not); any other
//!   charset, any other media type, or no `Content-Type` is a [`Refusal::MediaType`].
//! - In a form, `+` is a space and `%XY` a byte; names are decoded as values are. A `%` not
//!   followed by two hex digits is a [`Refusal::BadEscape`] (400): browsers always escape `%`,
//!   so a stray one means a client that encodes differently, and storing its bytes literally
//!   would show something other than what its user typed.
//! - A field sent twice: the first one counts, as `URLSearchParams.get` and most servers read
//!   it. Fields other than `name` and `text` are ignored.
//! - Bytes that are not UTF-8, raw or after decoding, are a [`Refusal::BadUtf8`]; nothing is
//!   replaced with U+FFFD.
//! - A plain-text body is the text; the name comes from the URL's query string, encoded as a form
//!   is. A form takes both fields from its body and ignores the query string.

use super::message::{Refusal, Submission};

/// Reads a publish request into its fields.
///
/// `content_type` is the header's value, `query` the part of the URL after `?` (without it).
pub fn parse(
    content_type: Option<&str>,
    query: Option<&str>,
    body: &[u8],
) -> Result<Submission, Refusal> {
    match media_type(content_type.ok_or(Refusal::MediaType)?)? {
        Media::Form => fields(body),
        Media::Text => {
            let text = std::str::from_utf8(body).map_err(|_| Refusal::BadUtf8)?;
            let name = fields(query.unwrap_or("").as_bytes())?.name;
            Ok(Submission {
                name,
                text: Some(text.to_owned()),
            })
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Media {
    Form,
    Text,
}

fn media_type(header: &str) -> Result<Media, Refusal> {
    let mut parts = header.split(';');
    let essence = parts.next().unwrap_or("").trim();
    let media = if essence.eq_ignore_ascii_case("application/x-www-form-urlencoded") {
        Media::Form
    } else if essence.eq_ignore_ascii_case("text/plain") {
        Media::Text
    } else {
        return Err(Refusal::MediaType);
    };
    for parameter in parts {
        let (key, value) = parameter.split_once('=').unwrap_or((parameter, ""));
        if key.trim().eq_ignore_ascii_case("charset") {
            let value = value.trim().trim_matches('"');
            if !(value.eq_ignore_ascii_case("utf-8") || value.eq_ignore_ascii_case("utf8")) {
                return Err(Refusal::MediaType);
            }
        }
    }
    Ok(media)
}

/// The `name` and `text` fields of an urlencoded string; the first of each counts.
fn fields(encoded: &[u8]) -> Result<Submission, Refusal> {
    let mut submission = Submission::default();
    for pair in encoded.split(|&b| b == b'&').filter(|p| !p.is_empty()) {
        let (key, value) = match pair.iter().position(|&b| b == b'=') {
            Some(at) => (&pair[..at], &pair[at + 1..]),
            None => (pair, &b""[..]),
        };
        let key = decode(key)?;
        let value = decode(value)?;
        let slot = match key.as_str() {
            "name" => &mut submission.name,
            "text" => &mut submission.text,
            _ => continue,
        };
        slot.get_or_insert(value);
    }
    Ok(submission)
}

/// Percent-decoding with `+` as a space, then a strict UTF-8 check.
fn decode(encoded: &[u8]) -> Result<String, Refusal> {
    let mut bytes = Vec::with_capacity(encoded.len());
    let mut rest = encoded;
    while let Some((&b, tail)) = rest.split_first() {
        rest = tail;
        match b {
            b'+' => bytes.push(b' '),
            b'%' => {
                let (hi, lo) = match rest {
                    [hi, lo, ..] => (hex(*hi), hex(*lo)),
                    _ => (None, None),
                };
                let (Some(hi), Some(lo)) = (hi, lo) else {
                    return Err(Refusal::BadEscape);
                };
                bytes.push((hi << 4) | lo);
                rest = &rest[2..];
            }
            _ => bytes.push(b),
        }
    }
    String::from_utf8(bytes).map_err(|_| Refusal::BadUtf8)
}

fn hex(digit: u8) -> Option<u8> {
    char::from(digit).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    const FORM: &str = "application/x-www-form-urlencoded";

    fn sub(name: Option<&str>, text: Option<&str>) -> Result<Submission, Refusal> {
        Ok(Submission {
            name: name.map(str::to_owned),
            text: text.map(str::to_owned),
        })
    }

    fn form(body: &[u8]) -> Result<Submission, Refusal> {
        parse(Some(FORM), None, body)
    }

    #[test]
    fn a_form_gives_its_name_and_text() {
        assert_eq!(
            form(b"name=ada&text=hello"),
            sub(Some("ada"), Some("hello"))
        );
        assert_eq!(form(b"text=hello"), sub(None, Some("hello")));
        assert_eq!(form(b""), sub(None, None));
    }

    #[test]
    fn plus_is_a_space_and_escapes_are_bytes() {
        assert_eq!(
            form(b"text=a+b%2Bc%20d%0D%0Ae%26f%3Dg%25&name=w%c3%b6rld"),
            sub(Some("wörld"), Some("a b+c d\r\ne&f=g%"))
        );
    }

    #[test]
    fn field_names_are_decoded_too() {
        assert_eq!(form(b"te%78t=hi&%6Eame=ada"), sub(Some("ada"), Some("hi")));
    }

    #[test]
    fn a_field_without_equals_is_empty_and_empty_pairs_are_skipped() {
        assert_eq!(form(b"&&text&&name=ada&"), sub(Some("ada"), Some("")));
        assert_eq!(form(b"text=a=b"), sub(None, Some("a=b")));
    }

    #[test]
    fn the_first_of_a_repeated_field_counts_and_others_are_ignored() {
        assert_eq!(
            form(b"text=first&name=a&text=second&name=b&other=x"),
            sub(Some("a"), Some("first"))
        );
    }

    #[test]
    fn a_malformed_escape_is_a_bad_escape_anywhere_in_the_form() {
        for body in [
            &b"text=100%"[..],
            b"text=%zz",
            b"text=%4",
            b"text=%4g",
            b"text=ok&other=%",
            b"te%xt=hi",
        ] {
            assert_eq!(form(body), Err(Refusal::BadEscape), "{body:?}");
        }
    }

    #[test]
    fn invalid_utf8_raw_or_escaped_is_bad_utf8() {
        assert_eq!(form(b"text=%FF"), Err(Refusal::BadUtf8));
        assert_eq!(form(b"text=%C3"), Err(Refusal::BadUtf8));
        assert_eq!(form(b"text=\xC3\x28"), Err(Refusal::BadUtf8));
        assert_eq!(
            form(b"name=%ED%A0%80&text=surrogate"),
            Err(Refusal::BadUtf8)
        );
        // Raw UTF-8 in a form is not what browsers send, but it is text: accepted.
        assert_eq!(form("text=wörld".as_bytes()), sub(None, Some("wörld")));
    }

    #[test]
    fn plain_text_is_the_whole_body_and_the_name_comes_from_the_query() {
        let got = parse(
            Some("text/plain"),
            Some("name=ada+l%C3%BC&text=ignored"),
            b"a+b%20c&d=e\n",
        );
        assert_eq!(got, sub(Some("ada lü"), Some("a+b%20c&d=e\n")));
        assert_eq!(
            parse(Some("text/plain"), None, b"hi"),
            sub(None, Some("hi"))
        );
    }

    #[test]
    fn plain_text_that_is_not_utf8_is_bad_utf8() {
        assert_eq!(
            parse(Some("text/plain"), None, b"caf\xE9"),
            Err(Refusal::BadUtf8)
        );
        assert_eq!(
            parse(Some("text/plain"), Some("name=%FF"), b"hi"),
            Err(Refusal::BadUtf8)
        );
        assert_eq!(
            parse(Some("text/plain"), Some("name=%"), b"hi"),
            Err(Refusal::BadEscape)
        );
    }

    #[test]
    fn a_form_ignores_the_query_string() {
        let got = parse(Some(FORM), Some("name=bob"), b"text=hi");
        assert_eq!(got, sub(None, Some("hi")));
    }

    #[test]
    fn the_media_type_ignores_case_and_parameters_but_wants_utf8() {
        for header in [
            "Application/X-WWW-Form-Urlencoded",
            "application/x-www-form-urlencoded; charset=UTF-8",
            "application/x-www-form-urlencoded;charset=\"utf8\"",
            "application/x-www-form-urlencoded ; boundary=x ; CHARSET = Utf-8",
        ] {
            assert_eq!(
                parse(Some(header), None, b"text=hi"),
                sub(None, Some("hi")),
                "{header}"
            );
        }
        for header in ["TEXT/PLAIN", "text/plain;charset=utf-8", " text/plain "] {
            assert_eq!(
                parse(Some(header), None, b"hi"),
                sub(None, Some("hi")),
                "{header}"
            );
        }
    }

    #[test]
    fn another_charset_media_type_or_none_is_refused() {
        for header in [
            "text/plain; charset=iso-8859-1",
            "application/x-www-form-urlencoded; charset=utf-16",
            "text/plain; charset=",
            "application/json",
            "multipart/form-data; boundary=x",
            "text/html",
            "text/plainish",
            "",
        ] {
            assert_eq!(
                parse(Some(header), None, b"text=hi"),
                Err(Refusal::MediaType),
                "{header}"
            );
        }
        assert_eq!(parse(None, None, b"text=hi"), Err(Refusal::MediaType));
    }
}
