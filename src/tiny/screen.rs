//! The rules a request's head must keep before anything else is done with it (RFC 9112, RFC
//! 9110): sizes, header syntax, `Host`, the request target, and the framing of the body.
//!
//! tiny_http has parsed the head already, and refused some malformed input itself (see
//! `docs/tiny_http.md`); these rules look at what it left: the request line and the
//! header lines, names and values trimmed. They are pure functions of the head, so each rule is a
//! unit test below. A request that breaks one is answered with the [`HttpRefusal`] and its
//! connection is closed (see `refuse.rs`): after a framing error nothing on that connection can
//! be trusted to start where the next request starts.

pub const MAX_HEADERS: usize = 100;
pub const MAX_HEADER_BYTES: usize = 16 * 1024;
/// The longest request target (path and query): far above any this server's routes use.
pub const MAX_TARGET_BYTES: usize = 8 * 1024;

/// A request's head, as tiny_http parsed it.
pub struct Head<'a> {
    pub method: &'a str,
    pub target: &'a str,
    pub version: (u8, u8),
    pub headers: Vec<(&'a str, &'a str)>,
}

/// How the body of a request that passed is delimited (a streamed reply's is
/// `chunked::Framing`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum RequestFraming {
    /// No body.
    None,
    /// `Content-Length`: exactly this many bytes.
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// What the head says about how the request is answered, worked out here once (for a refused
/// request too) and carried to whatever writes the answer.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Screened {
    /// `HEAD`: the answer has the head `GET` would get, and no body.
    pub head_only: bool,
    /// HTTP/1.0, which has no chunked coding.
    pub http_1_0: bool,
    /// An HTTP/1.0 client asked to keep the connection open, which HTTP/1.0 must be told.
    pub keep_alive_1_0: bool,
    /// The client waits for `100 Continue` before it sends the body.
    pub expects_continue: bool,
    /// The first `Connection` header names `upgrade`: tiny_http then hands over the connection
    /// itself as the body, neither read ahead however small, nor bounded by its length.
    pub upgrade: bool,
    /// The server closes the connection after the answer: never so from the head, but so for
    /// every refusal (`refuse.rs`).
    pub last: bool,
}

impl Screened {
    /// What `head` says. A client that asked to close is not told again: tiny_http ends the
    /// connection after such a request (RFC 9112 §9.6 makes the `close` in the answer a
    /// SHOULD), and `HEAD` then gets exactly the headers of `GET`.
    pub fn of(head: &Head<'_>) -> Screened {
        let http_1_0 = head.version == (1, 0);
        let connection = values(head, "Connection").next().unwrap_or_default();
        let connection = connection.to_ascii_lowercase();
        // tiny_http's test for an upgrade: the first `Connection` header names it, in any case.
        let upgrade = connection.contains("upgrade");
        Screened {
            head_only: head.method == "HEAD",
            http_1_0,
            keep_alive_1_0: http_1_0
                && connection.contains("keep-alive")
                && !connection.contains("close")
                && !upgrade,
            expects_continue: values(head, "Expect")
                .any(|v| v.eq_ignore_ascii_case("100-continue")),
            upgrade,
            last: false,
        }
    }
}

/// Why the layer refuses a request, in HTTP's terms: the status and a short body saying why.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpRefusal {
    pub status: u16,
    pub why: &'static str,
}

pub const fn refusal(status: u16, why: &'static str) -> HttpRefusal {
    HttpRefusal { status, why }
}

/// Checks every rule, in this order: sizes (431), the version (505), syntax (400), `Host`
/// (400), the target (400), framing (400, or 501 for a transfer coding the server does not
/// implement).
pub fn screen(head: &Head<'_>) -> Result<RequestFraming, HttpRefusal> {
    sizes(head)?;
    if !matches!(head.version, (1, 0) | (1, 1)) {
        // tiny_http takes `HTTP/0.9` (and answers versions above 1.1 itself).
        return Err(refusal(505, "HTTP/1.0 and HTTP/1.1 only\n"));
    }
    syntax(head)?;
    host(head)?;
    target(head)?;
    framing(head)
}

/// The values of every header line called `name`.
fn values<'h>(head: &'h Head<'_>, name: &'h str) -> impl Iterator<Item = &'h str> {
    head.headers
        .iter()
        .filter(move |(field, _)| field.eq_ignore_ascii_case(name))
        .map(|(_, value)| *value)
}

/// Larger than any browser sends. (tiny_http has read them all by now: the bound is on what
/// the server keeps and looks at, not on what a client can send; see `sweep.rs`.)
fn sizes(head: &Head<'_>) -> Result<(), HttpRefusal> {
    let bytes: usize = head
        .headers
        .iter()
        .map(|(name, value)| name.len() + value.len() + 4)
        .sum();
    if head.headers.len() > MAX_HEADERS || bytes > MAX_HEADER_BYTES {
        return Err(refusal(431, "request headers too large\n"));
    }
    // Kept, echoed in a 404 page and logged as it came: not without a bound.
    if head.target.len() > MAX_TARGET_BYTES {
        return Err(refusal(414, "request target too long\n"));
    }
    Ok(())
}

/// RFC 9110 §5.1, §5.5 and §9.1: methods and field names are tokens, field values hold no
/// control characters but tab. (tiny_http has already refused a name with whitespace, a line
/// without a colon, and any byte above 0x7f.)
fn syntax(head: &Head<'_>) -> Result<(), HttpRefusal> {
    if !is_token(head.method) {
        return Err(refusal(400, "bad method\n"));
    }
    for (name, value) in &head.headers {
        if !is_token(name) {
            return Err(refusal(400, "bad header name\n"));
        }
        if value.bytes().any(|b| (b < b' ' && b != b'\t') || b == 0x7f) {
            return Err(refusal(400, "bad header value\n"));
        }
    }
    Ok(())
}

fn is_token(text: &str) -> bool {
    !text.is_empty() && only(text, b"!#$%&'*+-.^_`|~")
}

/// Whether every byte of `text` is an ASCII letter, a digit or one of `others`.
fn only(text: &str, others: &[u8]) -> bool {
    text.bytes()
        .all(|b| b.is_ascii_alphanumeric() || others.contains(&b))
}

/// RFC 9112 §3.2: an HTTP/1.1 request has exactly one `Host`; no request has two.
fn host(head: &Head<'_>) -> Result<(), HttpRefusal> {
    let mut hosts = values(head, "Host");
    match (hosts.next(), hosts.next()) {
        (Some(_), Some(_)) => Err(refusal(400, "more than one Host\n")),
        (None, None) if head.version >= (1, 1) => Err(refusal(400, "no Host\n")),
        (Some(host), None) if !is_host(host) => Err(refusal(400, "bad Host\n")),
        _ => Ok(()),
    }
}

/// `uri-host [ ":" port ]` (RFC 3986 §3.2.2), loosely: the characters it may hold. Empty is
/// allowed (RFC 9112 §3.2).
fn is_host(value: &str) -> bool {
    only(value, b"-._~!$&'()*+,;=%:[]")
}

/// RFC 9112 §3.2: the target is visible ASCII; the asterisk form is for `OPTIONS` only.
fn target(head: &Head<'_>) -> Result<(), HttpRefusal> {
    if head.target.is_empty() || !head.target.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(refusal(400, "bad request target\n"));
    }
    if head.target == "*" && head.method != "OPTIONS" {
        return Err(refusal(400, "the * target is for OPTIONS only\n"));
    }
    Ok(())
}

/// RFC 9112 §6.1 and §6.3, RFC 9110 §8.6.
fn framing(head: &Head<'_>) -> Result<RequestFraming, HttpRefusal> {
    let mut lengths = values(head, "Content-Length");
    if values(head, "Transfer-Encoding").next().is_some() {
        if lengths.next().is_some() {
            return Err(refusal(400, "Content-Length with Transfer-Encoding\n"));
        }
        if head.version < (1, 1) {
            return Err(refusal(400, "Transfer-Encoding in HTTP/1.0\n"));
        }
        if Screened::of(head).upgrade {
            // tiny_http would hand over the connection, the chunks undecoded.
            return Err(refusal(
                501,
                "a chunked body under Connection: upgrade is not implemented\n",
            ));
        }
        return chunked(head);
    }
    let Some(first) = lengths.next() else {
        return Ok(RequestFraming::None);
    };
    // Only plain digits: tiny_http would take `+5` as 5, and read `5, 5` or `x` as no body at
    // all, leaving the body to be read as the next request.
    let first = content_length(first)?;
    if lengths.any(|other| content_length(other) != Ok(first)) {
        return Err(refusal(400, "differing Content-Length values\n"));
    }
    Ok(RequestFraming::Length(first))
}

fn content_length(value: &str) -> Result<u64, HttpRefusal> {
    match value.parse() {
        Ok(length) if value.bytes().all(|b| b.is_ascii_digit()) => Ok(length),
        _ => Err(refusal(400, "bad Content-Length\n")),
    }
}

/// The codings must end in exactly one `chunked`, which is the only one the server implements.
fn chunked(head: &Head<'_>) -> Result<RequestFraming, HttpRefusal> {
    let codings: Vec<&str> = values(head, "Transfer-Encoding")
        .flat_map(|value| value.split(','))
        .map(str::trim)
        .filter(|coding| !coding.is_empty())
        .collect();
    let is_chunked = |coding: &&str| coding.eq_ignore_ascii_case("chunked");
    let Some((_, before)) = codings.split_last().filter(|(last, _)| is_chunked(last)) else {
        return Err(refusal(400, "Transfer-Encoding does not end in chunked\n"));
    };
    if before.iter().any(is_chunked) {
        Err(refusal(400, "chunked twice\n"))
    } else if before.is_empty() {
        Ok(RequestFraming::Chunked)
    } else {
        Err(refusal(501, "transfer coding not implemented\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head<'a>(method: &'a str, version: (u8, u8), headers: &[(&'a str, &'a str)]) -> Head<'a> {
        Head {
            method,
            target: "/ping",
            version,
            headers: headers.to_vec(),
        }
    }

    fn status(
        method: &str,
        version: (u8, u8),
        headers: &[(&str, &str)],
    ) -> Result<RequestFraming, u16> {
        screen(&head(method, version, headers)).map_err(|r| r.status)
    }

    const HOST: (&str, &str) = ("Host", "x");

    #[test]
    fn content_length_is_plain_digits_and_one_value() {
        let post = |lengths: &[&'static str]| {
            let mut headers = vec![HOST];
            headers.extend(lengths.iter().map(|l| ("Content-Length", *l)));
            status("POST", (1, 1), &headers)
        };
        assert_eq!(post(&["5"]), Ok(RequestFraming::Length(5)));
        assert_eq!(post(&["5", "5"]), Ok(RequestFraming::Length(5)));
        assert_eq!(post(&["005", "5"]), Ok(RequestFraming::Length(5)));
        for bad in [
            &["0", "5"][..],
            &["0, 5"],
            &["5, 5"],
            &["+0"],
            &["-1"],
            &["0 0"],
            &["0x0"],
            &[""],
            &["99999999999999999999999"],
        ] {
            assert_eq!(post(bad), Err(400), "{bad:?}");
        }
        assert_eq!(post(&[]), Ok(RequestFraming::None));
    }

    #[test]
    fn transfer_codings_end_in_one_chunked() {
        let post = |codings: &[&'static str]| {
            let mut headers = vec![HOST];
            headers.extend(codings.iter().map(|c| ("Transfer-Encoding", *c)));
            status("POST", (1, 1), &headers)
        };
        assert_eq!(post(&["chunked"]), Ok(RequestFraming::Chunked));
        assert_eq!(post(&["Chunked"]), Ok(RequestFraming::Chunked));
        assert_eq!(post(&[", chunked"]), Ok(RequestFraming::Chunked));
        assert_eq!(post(&["gzip"]), Err(400));
        assert_eq!(post(&["chunked, gzip"]), Err(400));
        assert_eq!(post(&["chunked, chunked"]), Err(400));
        assert_eq!(post(&[""]), Err(400));
        assert_eq!(post(&["gzip, chunked"]), Err(501));
        assert_eq!(post(&["gzip", "chunked"]), Err(501));
    }

    #[test]
    fn an_upgrade_is_told_as_tiny_http_tells_it_and_takes_no_chunked_body() {
        let screened = |connection: &'static str| {
            let headers = [HOST, ("Connection", connection), ("Connection", "upgrade")];
            Screened::of(&head("POST", (1, 1), &headers)).upgrade
        };
        assert!(screened("keep-alive, Upgrade"));
        assert!(screened("UPGRADE"));
        // Only the first header counts, as in tiny_http.
        assert!(!screened("keep-alive"));
        let chunked = [
            HOST,
            ("Connection", "Upgrade"),
            ("Transfer-Encoding", "chunked"),
        ];
        assert_eq!(status("POST", (1, 1), &chunked), Err(501));
        let sized = [HOST, ("Connection", "Upgrade"), ("Content-Length", "5")];
        assert_eq!(
            status("POST", (1, 1), &sized),
            Ok(RequestFraming::Length(5))
        );
    }

    #[test]
    fn transfer_encoding_goes_with_nothing_else() {
        let both = [
            HOST,
            ("Content-Length", "0"),
            ("Transfer-Encoding", "chunked"),
        ];
        assert_eq!(status("POST", (1, 1), &both), Err(400));
        let old = [("Transfer-Encoding", "chunked")];
        assert_eq!(status("POST", (1, 0), &old), Err(400));
    }

    #[test]
    fn host_once_and_required_in_http_1_1() {
        assert_eq!(status("GET", (1, 1), &[]), Err(400));
        assert_eq!(status("GET", (1, 1), &[HOST, HOST]), Err(400));
        assert_eq!(status("GET", (1, 0), &[HOST, ("host", "y")]), Err(400));
        assert_eq!(status("GET", (1, 0), &[]), Ok(RequestFraming::None));
        assert_eq!(
            status("GET", (1, 1), &[("Host", "")]),
            Ok(RequestFraming::None)
        );
        assert_eq!(
            status("GET", (1, 1), &[("Host", "[::1]:8000")]),
            Ok(RequestFraming::None)
        );
        assert_eq!(status("GET", (1, 1), &[("Host", "a b")]), Err(400));
        assert_eq!(status("GET", (1, 1), &[("Host", "a/b")]), Err(400));
    }

    #[test]
    fn names_are_tokens_and_values_have_no_controls() {
        for bad in [("X(a)@", "v"), ("", "v"), ("X-A", "a\0b"), ("X-A", "a\rb")] {
            assert_eq!(status("GET", (1, 1), &[HOST, bad]), Err(400), "{bad:?}");
        }
        assert_eq!(status("GET", (1, 1), &[HOST, ("X-A", "a\x07b")]), Err(400));
        assert_eq!(
            status("GET", (1, 1), &[HOST, ("X-A", "a\tb c")]),
            Ok(RequestFraming::None)
        );
        assert_eq!(status("G(T", (1, 1), &[HOST]), Err(400));
        assert_eq!(status("get", (1, 1), &[HOST]), Ok(RequestFraming::None));
    }

    #[test]
    fn too_many_or_too_large_headers_are_431() {
        let many: Vec<(&str, &str)> = (0..=MAX_HEADERS).map(|_| ("X-A", "v")).collect();
        assert_eq!(status("GET", (1, 1), &many), Err(431));
        let big = "v".repeat(MAX_HEADER_BYTES);
        assert_eq!(status("GET", (1, 1), &[HOST, ("X-A", &big)]), Err(431));
    }

    #[test]
    fn a_request_target_longer_than_8_kib_is_414() {
        let status_of = |target: &str| {
            let mut request = head("GET", (1, 1), &[HOST]);
            request.target = target;
            screen(&request).map_err(|r| r.status)
        };
        let longest = format!("/{}", "a".repeat(MAX_TARGET_BYTES - 1));
        assert_eq!(status_of(&longest), Ok(RequestFraming::None));
        assert_eq!(status_of(&format!("{longest}a")), Err(414));
    }

    #[test]
    fn only_http_1_0_and_1_1() {
        assert_eq!(status("GET", (0, 9), &[]), Err(505));
        assert_eq!(status("GET", (2, 0), &[HOST]), Err(505));
    }

    #[test]
    fn the_asterisk_is_for_options_only() {
        let asterisk = |method| {
            screen(&Head {
                method,
                target: "*",
                version: (1, 1),
                headers: vec![HOST],
            })
            .map_err(|r| r.status)
        };
        assert!(asterisk("OPTIONS").is_ok());
        assert_eq!(asterisk("GET"), Err(400));
        let control = Head {
            method: "GET",
            target: "/a\x01",
            version: (1, 1),
            headers: vec![HOST],
        };
        assert_eq!(screen(&control).map_err(|r| r.status), Err(400));
    }

    #[test]
    fn what_the_head_says_is_noted() {
        let post = head(
            "POST",
            (1, 1),
            &[HOST, ("Content-Length", "9"), ("Expect", "100-Continue")],
        );
        assert!(Screened::of(&post).expects_continue);
        assert_eq!(screen(&post), Ok(RequestFraming::Length(9)));
        let keep = |version, value| Screened::of(&head("HEAD", version, &[("Connection", value)]));
        let kept = keep((1, 0), "Keep-Alive");
        assert!(kept.head_only && kept.http_1_0 && kept.keep_alive_1_0);
        assert!(!keep((1, 1), "keep-alive").keep_alive_1_0);
        assert!(!keep((1, 0), "keep-alive, close").keep_alive_1_0);
    }
}
