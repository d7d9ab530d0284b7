//! Writing a reply with a byte body: the layer writes every such response itself, through
//! tiny_http's raw writer for the request.
//!
//! tiny_http's own `Response` decides the framing from the request: it answers chunked to any
//! request that sends `TE: chunked`, drops a `Connection` header, and writes a `Server` header.
//! Here every byte body is in memory, so every response says its `Content-Length` (none for
//! `204` and `304`, RFC 9110 §8.6), `HEAD` gets the head `GET` would get, and the security
//! headers are on every one.

use std::io::Write;
use std::time::SystemTime;

use super::reply::{Body, Reply, SECURITY_HEADERS};
use super::screen::Screened;

/// Writes `reply` as the answer to `request`; returns the status and the body bytes sent.
/// A write that fails means the client left before the answer: there is no one to tell.
pub fn respond(request: tiny_http::Request, reply: &Reply, screened: Screened) -> (u16, usize) {
    write(&mut request.into_writer(), reply, screened)
}

/// Writes `reply` to `writer` and flushes it. (A `dyn` writer: one copy of this code serves
/// tiny_http's writer and a socket, in a binary kept under 1 MiB.)
pub fn write(writer: &mut dyn Write, reply: &Reply, screened: Screened) -> (u16, usize) {
    let wire = encode(reply, screened, SystemTime::now());
    let _ = writer.write_all(&wire).and_then(|()| writer.flush());
    (reply.status, body_bytes(reply, screened))
}

/// The body bytes `reply` puts on the wire.
pub fn body_bytes(reply: &Reply, screened: Screened) -> usize {
    if screened.head_only || !has_body(reply.status) {
        0
    } else {
        reply.bytes().len()
    }
}

/// A status whose response never has a body (RFC 9110 §6.4.1).
fn has_body(status: u16) -> bool {
    !matches!(status, 100..=199 | 204 | 304)
}

/// The whole response: status line, headers and (unless `HEAD`) the body.
fn encode(reply: &Reply, screened: Screened, now: SystemTime) -> Vec<u8> {
    let body: &[u8] = match &reply.body {
        Body::Bytes(bytes) => bytes,
        Body::Events(_) => &[],
    };
    let mut head = String::with_capacity(512);
    head.push_str("HTTP/1.1 ");
    head.push_str(&reply.status.to_string());
    head.push(' ');
    head.push_str(reason(reply.status));
    head.push_str("\r\nDate: ");
    head.push_str(&http_date(now));
    head.push_str("\r\n");
    // The framing is the layer's to say, whatever the reply holds.
    let framing = ["Content-Length", "Transfer-Encoding", "Connection"];
    let extra = reply
        .headers
        .iter()
        .map(|(name, value)| (*name, value.as_ref()))
        .filter(|(name, _)| !framing.iter().any(|f| f.eq_ignore_ascii_case(name)));
    for (name, value) in extra.chain(SECURITY_HEADERS) {
        head.push_str(name);
        head.push_str(": ");
        head.push_str(value);
        head.push_str("\r\n");
    }
    if has_body(reply.status) {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    if screened.last {
        head.push_str("Connection: close\r\n");
    } else if screened.keep_alive_1_0 {
        head.push_str("Connection: keep-alive\r\n");
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    if !screened.head_only && has_body(reply.status) {
        bytes.extend_from_slice(body);
    }
    bytes
}

fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        304 => "Not Modified",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        413 => "Content Too Large",
        415 => "Unsupported Media Type",
        422 => "Unprocessable Content",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        _ => "",
    }
}

/// `Date`'s value (RFC 9110 §5.6.7), e.g. `Sun, 06 Nov 1994 08:49:37 GMT`.
fn http_date(now: SystemTime) -> String {
    let secs = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |since| since.as_secs());
    let days = secs / 86_400;
    let (hour, minute, second) = (secs % 86_400 / 3600, secs % 3600 / 60, secs % 60);
    let weekday = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"][(days % 7) as usize];
    let (year, month, day) = civil_from_days(days);
    let month = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ][(month - 1) as usize];
    format!("{weekday}, {day:02} {month} {year} {hour:02}:{minute:02}:{second:02} GMT")
}

/// Year, month (1–12) and day (1–31) of the day `days` after 1970-01-01, in the proleptic
/// Gregorian calendar (Howard Hinnant's `civil_from_days`, for days on or after the epoch).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let shifted_month = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * shifted_month + 2) / 5 + 1;
    let month = if shifted_month < 10 {
        shifted_month + 3
    } else {
        shifted_month - 9
    };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    const EPOCH: SystemTime = SystemTime::UNIX_EPOCH;

    fn text(reply: &Reply, screened: Screened) -> String {
        String::from_utf8(encode(reply, screened, EPOCH)).unwrap()
    }

    #[test]
    fn a_reply_has_its_length_the_security_headers_and_its_body() {
        let wire = text(&Reply::text(200, "ok\n"), Screened::default());
        assert!(wire.starts_with(
            "HTTP/1.1 200 OK\r\nDate: Thu, 01 Jan 1970 00:00:00 GMT\r\n\
             Content-Type: text/plain; charset=utf-8\r\n"
        ));
        assert!(wire.contains("\r\nX-Content-Type-Options: nosniff\r\n"));
        assert!(
            wire.ends_with("\r\nContent-Length: 3\r\n\r\nok\n"),
            "{wire}"
        );
    }

    #[test]
    fn head_says_the_length_and_sends_no_body() {
        let wire = Screened {
            head_only: true,
            ..Screened::default()
        };
        let head = text(&Reply::text(200, "ok\n"), wire);
        assert!(head.ends_with("\r\nContent-Length: 3\r\n\r\n"), "{head}");
    }

    #[test]
    fn no_length_and_no_body_for_204_and_304() {
        for status in [204, 304] {
            let wire = text(&Reply::text(status, "x"), Screened::default());
            assert!(!wire.contains("Content-Length"), "{wire}");
            assert!(wire.ends_with("\r\n\r\n"), "{wire}");
        }
    }

    #[test]
    fn the_connection_header_says_what_happens_next() {
        let last = Screened {
            last: true,
            ..Screened::default()
        };
        assert!(text(&Reply::text(400, "no\n"), last).contains("\r\nConnection: close\r\n"));
        let kept = Screened {
            keep_alive_1_0: true,
            ..Screened::default()
        };
        assert!(text(&Reply::text(200, ""), kept).contains("\r\nConnection: keep-alive\r\n"));
        assert!(!text(&Reply::text(200, ""), Screened::default()).contains("Connection"));
    }

    #[test]
    fn framing_headers_of_a_reply_are_dropped() {
        let reply = Reply::text(200, "ok\n")
            .with_header("Content-Length", "99")
            .with_header("transfer-encoding", "chunked")
            .with_header("Connection", "keep-alive");
        let wire = text(&reply, Screened::default());
        assert!(!wire.contains("99") && !wire.contains("chunked"), "{wire}");
        assert!(!wire.contains("keep-alive"), "{wire}");
    }

    #[test]
    fn dates_are_imf_fixdate() {
        assert_eq!(http_date(EPOCH), "Thu, 01 Jan 1970 00:00:00 GMT");
        let at = |secs| http_date(EPOCH + Duration::from_secs(secs));
        assert_eq!(at(420_895_020), "Wed, 04 May 1983 11:17:00 GMT");
        assert_eq!(at(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(at(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(at(4_102_444_799), "Thu, 31 Dec 2099 23:59:59 GMT");
    }
}
