//! The load benchmark's event-stream parser. The client reads from non-blocking sockets, so a
//! read may end at any byte; these tests split responses at every offset and check that the
//! parser reports the same head, the same events and the same end, each in the piece that
//! completes it. The bench (`harness = false`) cannot run tests, so this file includes its
//! parser.

#[path = "../benches/load/parser.rs"]
mod parser;

use parser::{EventStreamParser, Fed, MAX_HEAD, MAX_LINE};

/// `GET /connect` as the server answered it with `--interval 400ms --keepalive 250ms --retry 2s`,
/// ended by SIGTERM: the head, a chunk with `retry:` and event 0, a keep-alive comment, event 1,
/// another comment, event 2, and the terminating chunk.
const RECORDED: &[u8] = b"HTTP/1.1 200 OK\r\n\
Transfer-Encoding: chunked\r\n\
Content-Type: text/event-stream\r\n\
Cache-Control: no-cache\r\n\
X-Accel-Buffering: no\r\n\
Connection: close\r\n\
X-Content-Type-Options: nosniff\r\n\
Content-Security-Policy: default-src 'self'; script-src 'self'; style-src 'self'; \
img-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; \
frame-ancestors 'none'\r\n\
Referrer-Policy: no-referrer\r\n\
\r\n\
2b\r\nid: 0\nretry: 2000\ndata: <p>This is 0.</p>\n\n\r\n\
e\r\n: keep-alive\n\n\r\n\
1f\r\nid: 1\ndata: <p>This is 1.</p>\n\n\r\n\
e\r\n: keep-alive\n\n\r\n\
1f\r\nid: 2\ndata: <p>This is 2.</p>\n\n\r\n\
0\r\n\r\n";

const HEAD: &str = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\
                    Content-Type: text/event-stream\r\n\r\n";

/// A response built to cover what the recording does not: a chunk with only `retry:`, CRLF and
/// CR line ends, `data:` that does not start a line, a chunk over 255 bytes with an uppercase
/// size and a chunk extension.
fn constructed() -> Vec<u8> {
    let chunk = |payload: &str| format!("{:x}\r\n{payload}\r\n", payload.len());
    let long = format!("data:{}\n\n", "x".repeat(300));
    [
        HEAD.to_owned(),
        chunk("retry: 3000\n\n"),
        chunk(": keep-alive\n\n"),
        chunk("id: 1\r\ndata: one\r\n\r\n"),
        chunk("event: tick\rdata: two\r\r"),
        chunk("id: data: no\n\n"),
        format!("{:X};name=value\r\n{long}\r\n", long.len()),
        chunk(":data: a comment\n\n"),
        "0\r\n\r\n".to_owned(),
    ]
    .concat()
    .into_bytes()
}

/// Where, reading a whole response at once, each thing the parser reports is complete: the
/// offset just past its last byte.
#[derive(Debug)]
struct Landmarks {
    head_end: usize,
    status: u16,
    /// One per chunk with a line that starts with `data:`.
    event_ends: Vec<usize>,
    /// Past the `0` chunk-size line.
    body_end: usize,
}

/// A plain reading of a complete chunked response, written apart from the parser.
fn landmarks(bytes: &[u8]) -> Landmarks {
    let find = |from: usize, needle: &[u8]| {
        from + bytes[from..]
            .windows(needle.len())
            .position(|w| w == needle)
            .expect("complete input")
    };
    let head_end = find(0, b"\r\n\r\n") + 4;
    let status_line = std::str::from_utf8(&bytes[..find(0, b"\r\n")]).unwrap();
    let status = status_line.split(' ').nth(1).unwrap().parse().unwrap();
    let mut event_ends = Vec::new();
    let mut at = head_end;
    loop {
        let line_end = find(at, b"\r\n");
        let line = std::str::from_utf8(&bytes[at..line_end]).unwrap();
        let size = usize::from_str_radix(line.split(';').next().unwrap(), 16).unwrap();
        at = line_end + 2;
        if size == 0 {
            return Landmarks {
                head_end,
                status,
                event_ends,
                body_end: at,
            };
        }
        let payload = &bytes[at..at + size];
        if payload
            .split(|&b| b == b'\n' || b == b'\r')
            .any(|line| line.starts_with(b"data:"))
        {
            event_ends.push(at + size);
        }
        assert_eq!(&bytes[at + size..at + size + 2], b"\r\n");
        at += size + 2;
    }
}

/// What the parser reported over all pieces.
#[derive(Debug, Default, PartialEq, Eq)]
struct Total {
    statuses: Vec<u16>,
    events: usize,
    tokens: Vec<u64>,
    ends: usize,
}

impl Total {
    fn add(&mut self, fed: &Fed) {
        self.statuses.extend(fed.status);
        self.events += fed.events;
        self.tokens.extend(&fed.tokens);
        self.ends += usize::from(fed.body_ended);
    }
}

fn feed_pieces<'a>(pieces: impl IntoIterator<Item = &'a [u8]>) -> Result<Total, String> {
    let mut parser = EventStreamParser::new();
    let mut total = Total::default();
    for piece in pieces {
        total.add(&parser.feed(piece)?);
    }
    Ok(total)
}

/// Splits `bytes` at every offset, and feeds it byte by byte and in pieces of every size.
/// `tokens` has one entry per event: the token it carries, if any.
fn check_every_split(bytes: &[u8], tokens: &[Option<u64>]) {
    let marks = landmarks(bytes);
    assert_eq!(marks.event_ends.len(), tokens.len(), "the fixture");
    let whole = Total {
        statuses: vec![marks.status],
        events: tokens.len(),
        tokens: tokens.iter().flatten().copied().collect(),
        ends: 1,
    };
    assert_eq!(feed_pieces([bytes]).unwrap(), whole);

    for split in 0..=bytes.len() {
        let mut parser = EventStreamParser::new();
        let first = parser.feed(&bytes[..split]).unwrap();
        let second = parser.feed(&bytes[split..]).unwrap();
        let events = marks.event_ends.iter().filter(|&&end| end <= split).count();
        let in_first = Fed {
            status: (marks.head_end <= split).then_some(marks.status),
            events,
            tokens: tokens[..events].iter().flatten().copied().collect(),
            body_ended: marks.body_end <= split,
        };
        assert_eq!(first, in_first, "first piece, split at {split}");
        let mut total = Total::default();
        total.add(&first);
        total.add(&second);
        assert_eq!(total, whole, "split at {split}");
    }

    // Byte by byte: each report comes with the byte that completes it.
    let mut parser = EventStreamParser::new();
    let mut event_ends = Vec::new();
    let mut event_tokens = Vec::new();
    for (i, byte) in bytes.iter().enumerate() {
        let fed = parser.feed(std::slice::from_ref(byte)).unwrap();
        let end = i + 1;
        assert!(fed.tokens.len() <= fed.events, "tokens at {end}");
        if fed.events == 1 {
            event_tokens.push(fed.tokens.first().copied());
        }
        assert_eq!(
            fed.status.is_some(),
            end == marks.head_end,
            "status at {end}"
        );
        assert_eq!(fed.body_ended, end == marks.body_end, "end at {end}");
        assert!(fed.events <= 1);
        event_ends.extend(std::iter::repeat_n(end, fed.events));
    }
    assert_eq!(event_ends, marks.event_ends);
    assert_eq!(event_tokens, tokens);

    for size in 1..=bytes.len() {
        assert_eq!(
            feed_pieces(bytes.chunks(size)).unwrap(),
            whole,
            "pieces of {size}"
        );
    }
}

#[test]
fn a_recorded_response_reads_the_same_whatever_the_split() {
    check_every_split(RECORDED, &[None; 3]);
}

#[test]
fn retry_and_comment_chunks_are_not_events_whatever_the_split() {
    check_every_split(&constructed(), &[None; 3]);
}

/// Chatroom events as the fan-out scenario reads them: the server's (an `id:`, an `<article>`
/// with the text in a `<span>`, the first one after an empty `#chat-log`), an axum peer's
/// (`<p>text</p>`, no id), and data that looks like a token but is not one.
fn chat_events() -> (Vec<u8>, Vec<Option<u64>>) {
    let chunk = |payload: &str| format!("{:x}\r\n{payload}\r\n", payload.len());
    let article = |id: u64, text: &str| {
        format!(
            "<article id=\"msg-{id}\" class=\"msg\"><b class=\"name\">anonymous</b> \
             <span class=\"text\">{text}</span></article>"
        )
    };
    let events = [
        (
            format!(
                "id: 1764069123456789\nretry: 2000\ndata: <div id=\"chat-log\" \
                 hx-swap-oob=\"innerHTML\"></div>{}\n\n",
                article(1764069123456789, "m1")
            ),
            Some(1),
        ),
        (": keep-alive\n\n".to_owned(), None),
        (
            format!(
                "id: 1764069123456790\ndata: {}\n\n",
                article(1764069123456790, "m17")
            ),
            Some(17),
        ),
        ("data: <p>m18</p>\n\n".to_owned(), Some(18)),
        ("data:<p>m0042</p>\r\n\r\n".to_owned(), Some(42)),
        // A token on the second data line; the first has none.
        (
            "data: <p>one\ndata: two</p><p>m19</p>\n\n".to_owned(),
            Some(19),
        ),
        // The first token counts.
        (
            "data: <b>m</b><i>m20</i><i>m21</i>\n\n".to_owned(),
            Some(20),
        ),
        // Not tokens: no digits, not right after `>`, not followed by `<`, over a line end,
        // too many digits for a u64, outside a data line.
        ("data: <p>m</p><p> m5</p><p>m6x</p>\n\n".to_owned(), None),
        ("data: <p>m7\ndata: </p>\n\n".to_owned(), None),
        ("data: <p>m99999999999999999999999</p>\n\n".to_owned(), None),
        (
            format!(
                "id: >m8<\n: >m9<\nevent: >m10<\rdata: {}\n\n",
                "x".repeat(300)
            ),
            None,
        ),
        (
            "data: <span class=\"text\">m23</span>\n\n".to_owned(),
            Some(23),
        ),
    ];
    let bytes = [HEAD.to_owned()]
        .into_iter()
        .chain(events.iter().map(|(payload, _)| chunk(payload)))
        .chain(["0\r\n\r\n".to_owned()])
        .collect::<String>()
        .into_bytes();
    let tokens = events
        .iter()
        .filter(|(payload, _)| payload.contains("data:"))
        .map(|&(_, token)| token)
        .collect();
    (bytes, tokens)
}

#[test]
fn chat_events_give_their_tokens_whatever_the_split() {
    let (bytes, tokens) = chat_events();
    assert_eq!(tokens.iter().flatten().count(), 7, "the fixture");
    check_every_split(&bytes, &tokens);
}

#[test]
fn input_after_the_last_chunk_is_ignored() {
    let mut bytes = RECORDED.to_vec();
    bytes.extend_from_slice(b"HTTP/1.1 200 OK\r\n\r\nnot a chunk\r\n");
    let total = feed_pieces([bytes.as_slice()]).unwrap();
    assert_eq!((total.events, total.ends), (3, 1));
}

#[test]
fn a_refusal_reports_its_status_and_no_events() {
    let bytes = b"HTTP/1.1 503 Service Unavailable\r\nContent-Length: 5\r\n\r\nfull\n";
    let head_end = bytes.len() - 5;
    for split in 0..=bytes.len() {
        let mut parser = EventStreamParser::new();
        let first = parser.feed(&bytes[..split]).unwrap();
        let second = parser.feed(&bytes[split..]).unwrap();
        let status_first = head_end <= split;
        assert_eq!(
            first.status,
            status_first.then_some(503),
            "split at {split}"
        );
        assert_eq!(second.status, (!status_first).then_some(503));
        assert_eq!(first.events + second.events, 0);
        assert!(!first.body_ended && !second.body_ended);
    }
}

/// The parser returns an error, at the latest with the last byte, for the whole input, byte by
/// byte, and split in two at every `stride`-th offset.
fn check_refused(bytes: &[u8], stride: usize, why: &str) {
    assert!(refuses([bytes]), "{why}: whole");
    assert!(refuses(bytes.chunks(1)), "{why}: byte by byte");
    for split in (0..=bytes.len()).step_by(stride) {
        assert!(
            refuses([&bytes[..split], &bytes[split..]]),
            "{why}: split at {split}"
        );
    }
}

fn refuses<'a>(pieces: impl IntoIterator<Item = &'a [u8]>) -> bool {
    let mut parser = EventStreamParser::new();
    pieces.into_iter().any(|piece| parser.feed(piece).is_err())
}

#[test]
fn malformed_responses_are_errors_not_panics() {
    let head = HEAD;
    let long_head = format!(
        "HTTP/1.1 200 OK\r\nX-Long: {}\r\n\r\n",
        "a".repeat(MAX_HEAD)
    );
    let long_size = format!("{head}{}1\r\nx\r\n", "0".repeat(MAX_LINE + 1));
    let cases: [(&str, Vec<u8>); 9] = [
        (
            "bad chunk size",
            format!("{head}zz\r\ndata: x\n\n\r\n").into(),
        ),
        (
            "chunk size overflows",
            format!("{head}{}\r\n", "f".repeat(40)).into(),
        ),
        ("empty chunk size", format!("{head}\r\n").into()),
        (
            "chunk longer than its size",
            format!("{head}3\r\nabcdef\r\n").into(),
        ),
        ("head over 16 KiB", long_head.into()),
        ("chunk-size line over 1 KiB", long_size.into()),
        (
            "a 200 that is not chunked",
            b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\nabc".to_vec(),
        ),
        ("bad status line", b"HTTP/1.1 OK\r\n\r\n".to_vec()),
        (
            "head not UTF-8",
            b"HTTP/1.1 200 OK\r\nX: \xff\xfe\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec(),
        ),
    ];
    for (why, bytes) in &cases {
        // Every offset for the short inputs; for the long ones, enough to cross every state.
        let stride = if bytes.len() > 2000 { 61 } else { 1 };
        check_refused(bytes, stride, why);
    }
}

#[test]
fn any_one_byte_changed_gives_a_result_not_a_panic() {
    for at in 0..RECORDED.len() {
        for replacement in [b'\0', b'\r', b'\n', b'0', b'f', b':', 0xff] {
            let mut bytes = RECORDED.to_vec();
            bytes[at] = replacement;
            let mut parser = EventStreamParser::new();
            let _ = parser.feed(&bytes);
            let mut parser = EventStreamParser::new();
            for byte in &bytes {
                if parser.feed(std::slice::from_ref(byte)).is_err() {
                    break;
                }
            }
        }
    }
}
