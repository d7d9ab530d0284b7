//! The HTTP/1.1 rules the server keeps (RFC 9112, 9110, 9111), over raw TCP.
//!
//! Requests: message framing, `Host`, methods, header syntax. Each case sends one request, then a
//! healthy request on the same connection, and checks the status, whether the connection was
//! closed, that nothing after a refused request was served, and that the server still answers.
//! Responses: the caching headers of every route, `HEAD` equal to `GET` without a body, `304`,
//! and the security headers on every response, refusals included.
//!
//! Some malformed input is parsed away by tiny_http before the server sees it; those cases pin
//! tiny_http's observable answer instead (`by_tiny_http` below).

mod common;

use std::collections::BTreeSet;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{EventStream, ServerProcess, TestServer, connect, request};

/// How long a case waits for the server to answer and close. A connection still open after this
/// was kept open.
const PATIENCE: Duration = Duration::from_secs(2);

/// Sent after every request under test, on the same connection.
const NEXT: &str = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";

/// The same, as the last request of a connection.
const NEXT_LAST: &str = "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";

const ASSETS: [&str; 6] = [
    "/assets/htmx.min.js",
    "/assets/sse.min.js",
    "/assets/htmx4.min.js",
    "/assets/hx-sse4.min.js",
    "/assets/app.css",
    "/assets/favicon.svg",
];

const IMMUTABLE: &str = "public, max-age=31536000, immutable";

// ---- the wire ------------------------------------------------------------------------------

/// What came back on one connection.
struct Exchange {
    bytes: Vec<u8>,
    /// The server closed (or reset) the connection within [`PATIENCE`].
    closed: bool,
}

/// Writes `bytes` and reads until the server closes or [`PATIENCE`] runs out.
fn exchange(addr: SocketAddr, bytes: &[u8]) -> Exchange {
    let mut socket = connect(addr);
    // The server may close before reading everything; that is an answer too.
    let _ = socket.write_all(bytes);
    read_until_closed(&mut socket)
}

fn read_until_closed(socket: &mut TcpStream) -> Exchange {
    let deadline = Instant::now() + PATIENCE;
    let mut bytes = Vec::new();
    let mut buf = [0; 16 * 1024];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Exchange {
                bytes,
                closed: false,
            };
        }
        socket.set_read_timeout(Some(left)).unwrap();
        match socket.read(&mut buf) {
            Ok(0) => {
                return Exchange {
                    bytes,
                    closed: true,
                };
            }
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                return Exchange {
                    bytes,
                    closed: false,
                };
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            // A reset closes too.
            Err(_) => {
                return Exchange {
                    bytes,
                    closed: true,
                };
            }
        }
    }
}

/// One parsed response.
#[derive(Debug, Clone)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Reply {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn all(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    /// The methods of `Allow`, as a set.
    fn allow(&self) -> BTreeSet<String> {
        self.all("Allow")
            .iter()
            .flat_map(|v| v.split(','))
            .map(|m| m.trim().to_owned())
            .filter(|m| !m.is_empty())
            .collect()
    }

    /// The headers but `Date`, sorted, for comparing two answers.
    fn comparable_headers(&self, also_ignore: &[&str]) -> Vec<(String, String)> {
        let mut headers: Vec<_> = self
            .headers
            .iter()
            .filter(|(n, _)| {
                !n.eq_ignore_ascii_case("Date")
                    && !also_ignore.iter().any(|i| n.eq_ignore_ascii_case(i))
            })
            .map(|(n, v)| (n.to_ascii_lowercase(), v.clone()))
            .collect();
        headers.sort();
        headers
    }
}

/// Parses the responses in `bytes`, one per entry of `heads` (`true`: the answer to a HEAD, so
/// without a body). Stops early if the bytes run out; returns the responses and what is left.
fn parse_replies(mut bytes: &[u8], heads: &[bool]) -> Result<(Vec<Reply>, Vec<u8>), String> {
    let mut replies = Vec::new();
    for &head in heads {
        if bytes.is_empty() {
            break;
        }
        let (reply, used) = parse_reply(bytes, head)?;
        replies.push(reply);
        bytes = &bytes[used..];
    }
    Ok((replies, bytes.to_vec()))
}

fn parse_reply(bytes: &[u8], head_request: bool) -> Result<(Reply, usize), String> {
    let shown = || String::from_utf8_lossy(&bytes[..bytes.len().min(300)]).into_owned();
    let end = find(bytes, b"\r\n\r\n").ok_or_else(|| format!("no end of head in {:?}", shown()))?;
    let head =
        std::str::from_utf8(&bytes[..end]).map_err(|_| format!("head not UTF-8: {:?}", shown()))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .strip_prefix("HTTP/1.1 ")
        .or_else(|| status_line.strip_prefix("HTTP/1.0 "))
        .and_then(|rest| rest.get(..3)?.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let mut headers = Vec::new();
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| format!("bad header line {line:?}"))?;
        headers.push((name.to_owned(), value.trim().to_owned()));
    }
    let mut reply = Reply {
        status,
        headers,
        body: Vec::new(),
    };
    let mut used = end + 4;
    let rest = &bytes[used..];
    let no_body = head_request || matches!(status, 100..=199 | 204 | 304);
    if no_body {
    } else if reply
        .header("Transfer-Encoding")
        .is_some_and(|te| te.eq_ignore_ascii_case("chunked"))
    {
        let mut at = 0;
        loop {
            let line_end = find(&rest[at..], b"\r\n").ok_or("cut chunk size")? + at;
            let size_text = std::str::from_utf8(&rest[at..line_end]).map_err(|_| "chunk size")?;
            let size = usize::from_str_radix(size_text, 16)
                .map_err(|_| format!("chunk size {size_text:?}"))?;
            at = line_end + 2;
            if size == 0 {
                if rest.get(at..at + 2) != Some(b"\r\n") {
                    return Err("no CRLF after the last chunk".into());
                }
                at += 2;
                break;
            }
            let data = rest.get(at..at + size).ok_or("cut chunk")?;
            reply.body.extend_from_slice(data);
            at += size + 2;
        }
        used += at;
    } else if let Some(length) = reply.header("Content-Length") {
        let length: usize = length
            .parse()
            .map_err(|_| format!("Content-Length {length:?}"))?;
        let body = rest.get(..length).ok_or("cut body")?;
        reply.body = body.to_vec();
        used += length;
    } else {
        // Delimited by the close.
        reply.body = rest.to_vec();
        used = bytes.len();
    }
    Ok((reply, used))
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

fn security_headers_missing(reply: &Reply) -> Option<String> {
    let csp = reply.header("Content-Security-Policy").unwrap_or_default();
    let ok = reply.header("X-Content-Type-Options") == Some("nosniff")
        && reply.header("Referrer-Policy") == Some("no-referrer")
        && csp.contains("default-src 'self'");
    (!ok).then(|| format!("security headers missing: {:?}", reply.headers))
}

fn healthy(addr: SocketAddr) -> Result<(), String> {
    let reply = request(addr, "GET", "/healthz", "");
    if reply.status == 200 && reply.text() == "ok\n" {
        Ok(())
    } else {
        Err(format!(
            "the server no longer answers: {} {:?}",
            reply.status,
            reply.text()
        ))
    }
}

// ---- request rules -------------------------------------------------------------------------

/// What must happen to a request.
#[derive(Clone, Copy, Debug)]
enum Expect {
    /// Refused with this status; the connection is closed and the request after it is never
    /// answered. The answer carries the security headers.
    Refused(u16),
    /// Refused by tiny_http before the server sees the request: this status (or none, for
    /// `None`), then the close. The answer is tiny_http's and has none of our headers.
    RefusedByTinyHttp(Option<u16>),
    /// Answered with this status, and the connection goes on: the next request is answered.
    Answered(u16),
}

struct Case {
    name: &'static str,
    request: Vec<u8>,
    expect: Expect,
}

fn case(name: &'static str, request: &str, expect: Expect) -> Case {
    Case {
        name,
        request: request.as_bytes().to_vec(),
        expect,
    }
}

/// `POST /ping` with these extra header lines and this body.
fn post(name: &'static str, headers: &str, body: &str, expect: Expect) -> Case {
    case_owned(
        name,
        format!("POST /ping HTTP/1.1\r\nHost: x\r\n{headers}\r\n{body}"),
        expect,
    )
}

fn case_owned(name: &'static str, request: String, expect: Expect) -> Case {
    Case {
        name,
        request: request.into_bytes(),
        expect,
    }
}

/// Runs every case on its own connection, one after the other (connections opened all at once
/// can wait on each other inside tiny_http; see
/// `a_burst_of_keepalive_connections_is_answered_at_once`), and returns what went wrong.
fn run_cases(addr: SocketAddr, cases: Vec<Case>) -> Vec<String> {
    cases
        .iter()
        .filter_map(|case| {
            check(addr, case)
                .err()
                .map(|e| format!("{}: {e}", case.name))
        })
        .collect()
}

fn check(addr: SocketAddr, case: &Case) -> Result<(), String> {
    let head_request = case.request.starts_with(b"HEAD ");
    let mut wire = case.request.clone();
    let next = match case.expect {
        Expect::Answered(_) => NEXT_LAST,
        _ => NEXT,
    };
    wire.extend_from_slice(next.as_bytes());
    let answer = exchange(addr, &wire);
    let (replies, rest) = parse_replies(&answer.bytes, &[head_request, false])?;
    let statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
    match case.expect {
        Expect::Refused(status) => {
            if statuses != [status] || !rest.is_empty() {
                return Err(format!(
                    "expected only {status}, got {statuses:?}{}",
                    if rest.is_empty() {
                        String::new()
                    } else {
                        format!(" and {} more bytes", rest.len())
                    }
                ));
            }
            if let Some(missing) = security_headers_missing(&replies[0]) {
                return Err(missing);
            }
            if !answer.closed {
                return Err(format!("{status} sent, but the connection was left open"));
            }
        }
        Expect::RefusedByTinyHttp(status) => {
            let expected: Vec<u16> = status.into_iter().collect();
            if statuses != expected || !rest.is_empty() {
                return Err(format!("expected {expected:?} only, got {statuses:?}"));
            }
            if !answer.closed {
                return Err("the connection was left open".into());
            }
        }
        Expect::Answered(status) => {
            if statuses != [status, 200] || replies[1].body != b"ok\n" || !rest.is_empty() {
                return Err(format!(
                    "expected {status} then the next request's 200, got {statuses:?}"
                ));
            }
            if let Some(missing) = security_headers_missing(&replies[0]) {
                return Err(missing);
            }
        }
    }
    healthy(addr)
}

fn assert_no_failures(failures: Vec<String>) {
    assert!(
        failures.is_empty(),
        "{} failing case(s):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

/// RFC 9112 §6.1 and §6.3; RFC 9110 §8.6.
#[test]
fn request_framing() {
    use Expect::*;
    let server = TestServer::start(Duration::from_millis(50));
    let cases = vec![
        post(
            "Content-Length and Transfer-Encoding",
            "Content-Length: 0\r\nTransfer-Encoding: chunked\r\n",
            "",
            Refused(400),
        ),
        post(
            "Transfer-Encoding and Content-Length",
            "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
            "0\r\n\r\n",
            Refused(400),
        ),
        post(
            "two different Content-Lengths",
            "Content-Length: 0\r\nContent-Length: 5\r\n",
            "",
            Refused(400),
        ),
        post(
            "Content-Length list of different values",
            "Content-Length: 0, 5\r\n",
            "",
            Refused(400),
        ),
        post(
            "Content-Length +0",
            "Content-Length: +0\r\n",
            "",
            Refused(400),
        ),
        post(
            "Content-Length -1",
            "Content-Length: -1\r\n",
            "",
            Refused(400),
        ),
        post(
            "Content-Length 0 0",
            "Content-Length: 0 0\r\n",
            "",
            Refused(400),
        ),
        post(
            "Content-Length 0x0",
            "Content-Length: 0x0\r\n",
            "",
            Refused(400),
        ),
        post(
            "empty Content-Length",
            "Content-Length:\r\n",
            "",
            Refused(400),
        ),
        post(
            "Transfer-Encoding gzip",
            "Transfer-Encoding: gzip\r\n",
            "",
            Refused(400),
        ),
        post(
            "Transfer-Encoding chunked, gzip",
            "Transfer-Encoding: chunked, gzip\r\n",
            "0\r\n\r\n",
            Refused(400),
        ),
        post(
            "Transfer-Encoding chunked twice",
            "Transfer-Encoding: chunked, chunked\r\n",
            "0\r\n\r\n",
            Refused(400),
        ),
        post(
            "Transfer-Encoding gzip, chunked",
            "Transfer-Encoding: gzip, chunked\r\n",
            "0\r\n\r\n",
            Refused(501),
        ),
        post(
            "Transfer-Encoding gzip + chunked in two lines",
            "Transfer-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n",
            "0\r\n\r\n",
            Refused(501),
        ),
        case(
            "Transfer-Encoding in HTTP/1.0",
            "POST /ping HTTP/1.0\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
            Refused(400),
        ),
        post(
            "chunk size not hex",
            "Transfer-Encoding: chunked\r\n",
            "xyz\r\nhello\r\n0\r\n\r\n",
            Refused(400),
        ),
        post(
            "chunk size overflows",
            "Transfer-Encoding: chunked\r\n",
            "fffffffffffffffffffffff\r\nhello\r\n0\r\n\r\n",
            Refused(400),
        ),
        post(
            "chunk longer than its size",
            "Transfer-Encoding: chunked\r\n",
            "5\r\nhelloX\r\n0\r\n\r\n",
            Refused(400),
        ),
        post(
            "trailer fields after the last chunk",
            "Transfer-Encoding: chunked\r\n",
            "5\r\nhello\r\n0\r\nX-T: 1\r\n\r\n",
            Refused(400),
        ),
        post(
            "a chunk size line ended by LF alone",
            "Transfer-Encoding: chunked\r\n",
            "5\nhello\r\n0\r\n\r\n",
            Refused(400),
        ),
        // Limits of tiny_http's chunk decoder (chunked_transfer), pinned: a sign or spaces
        // around a chunk size, and chunk extensions, are read past.
        post(
            "a chunk size with a sign and spaces",
            "Transfer-Encoding: chunked\r\n",
            "+5 \r\nhello\r\n0\r\n\r\n",
            Answered(200),
        ),
        post(
            "a chunk extension",
            "Transfer-Encoding: chunked\r\n",
            "5;a=\"b\"\r\nhello\r\n0\r\n\r\n",
            Answered(200),
        ),
        // A well-formed chunked body is read as a body, never as the next request.
        post(
            "chunked body",
            "Transfer-Encoding: chunked\r\n",
            "5\r\nhello\r\n0\r\n\r\n",
            Answered(200),
        ),
        post(
            "empty chunked body",
            "Transfer-Encoding: chunked\r\n",
            "0\r\n\r\n",
            Answered(200),
        ),
        post(
            "Content-Length body",
            "Content-Length: 5\r\n",
            "hello",
            Answered(200),
        ),
        post(
            "the same Content-Length twice",
            "Content-Length: 5\r\nContent-Length: 5\r\n",
            "hello",
            Answered(200),
        ),
    ];
    assert_no_failures(run_cases(server.addr, cases));
}

/// A request smuggled in a body that framing says is not one is never answered.
#[test]
fn a_request_hidden_behind_conflicting_framing_is_never_answered() {
    let server = TestServer::start(Duration::from_millis(50));
    // Read by Content-Length, the body is the second request; read as chunked, the second
    // request starts right after the head. Either way only one answer may come.
    let answer = exchange(
        server.addr,
        b"POST /ping HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nContent-Length: 36\r\n\r\n\
          GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    let (replies, rest) = parse_replies(&answer.bytes, &[false, false]).unwrap();
    let statuses: Vec<u16> = replies.iter().map(|r| r.status).collect();
    assert_eq!(statuses, [400], "only the refusal");
    assert!(rest.is_empty());
    assert!(answer.closed, "the connection is closed");
    healthy(server.addr).unwrap();
}

/// RFC 9112 §3.2.
#[test]
fn host_header() {
    use Expect::*;
    let server = TestServer::start(Duration::from_millis(50));
    let cases = vec![
        case(
            "HTTP/1.1 without Host",
            "GET /healthz HTTP/1.1\r\n\r\n",
            Refused(400),
        ),
        case(
            "two Host lines",
            "GET /healthz HTTP/1.1\r\nHost: x\r\nHost: y\r\n\r\n",
            Refused(400),
        ),
        case(
            "two equal Host lines",
            "GET /healthz HTTP/1.1\r\nHost: x\r\nHost: x\r\n\r\n",
            Refused(400),
        ),
        // tiny_http trims the continuation line and reads it as a header of its own.
        case(
            "a second Host in a folded line",
            "GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\r\n Host: y\r\n\r\n",
            Refused(400),
        ),
        case(
            "HTTP/1.1 with Host",
            "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
            Answered(200),
        ),
        case(
            "HTTP/1.0 without Host",
            "GET /healthz HTTP/1.0\r\nConnection: keep-alive\r\n\r\n",
            Answered(200),
        ),
    ];
    assert_no_failures(run_cases(server.addr, cases));
}

/// RFC 9110 §9.1 (501 for a method no route implements), §15.5.6 (405 with `Allow`), §9.3.7
/// (OPTIONS). The server implements GET, HEAD, POST and OPTIONS.
#[test]
fn methods() {
    use Expect::*;
    let server = TestServer::start(Duration::from_millis(50));
    let cases = vec![
        case(
            "PATCH",
            "PATCH /ping HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
            Answered(501),
        ),
        case(
            "PUT",
            "PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
            Answered(501),
        ),
        case(
            "DELETE",
            "DELETE / HTTP/1.1\r\nHost: x\r\n\r\n",
            Answered(501),
        ),
        case(
            "TRACE",
            "TRACE / HTTP/1.1\r\nHost: x\r\n\r\n",
            Answered(501),
        ),
        case(
            "CONNECT",
            "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n",
            Answered(501),
        ),
        case(
            "BREW",
            "BREW /pot HTTP/1.1\r\nHost: x\r\n\r\n",
            Answered(501),
        ),
        case(
            "PROPFIND",
            "PROPFIND / HTTP/1.1\r\nHost: x\r\n\r\n",
            Answered(501),
        ),
        // Methods are case-sensitive.
        case(
            "get in lower case",
            "get / HTTP/1.1\r\nHost: x\r\n\r\n",
            Answered(501),
        ),
        case(
            "PATCH on an unknown path",
            "PATCH /nope HTTP/1.1\r\nHost: x\r\n\r\n",
            Answered(501),
        ),
        case(
            "GET of a POST route",
            "GET /ping HTTP/1.1\r\nHost: x\r\n\r\n",
            Answered(405),
        ),
        case(
            "POST to a page",
            "POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
            Answered(405),
        ),
        case(
            "POST to the stream",
            "POST /connect HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
            Answered(405),
        ),
        case(
            "OPTIONS of an unknown path",
            "OPTIONS /nope HTTP/1.1\r\nHost: x\r\n\r\n",
            Answered(404),
        ),
    ];
    assert_no_failures(run_cases(server.addr, cases));

    // 405 names what the path takes, OPTIONS included.
    for (method, path, allow) in [
        ("GET", "/ping", "OPTIONS, POST"),
        ("HEAD", "/pong", "OPTIONS, POST"),
        ("POST", "/", "GET, HEAD, OPTIONS"),
        ("POST", "/metrics", "GET, HEAD, OPTIONS"),
        ("POST", "/connect", "GET, HEAD, OPTIONS"),
        ("POST", "/assets/app.css", "GET, HEAD, OPTIONS"),
    ] {
        let reply = request(server.addr, method, path, "");
        assert_eq!(reply.status, 405, "{method} {path}");
        let reply = Reply {
            status: reply.status,
            headers: reply.headers,
            body: reply.body,
        };
        assert_eq!(reply.allow(), set(allow), "{method} {path}: Allow");
    }
}

fn set(methods: &str) -> BTreeSet<String> {
    methods.split(", ").map(str::to_owned).collect()
}

/// RFC 9110 §9.3.7: `OPTIONS` names the methods of a path; `OPTIONS *` those of the server.
/// A 204 carries no `Content-Length` (§8.6); a 200 says its length.
#[test]
fn options_lists_the_allowed_methods() {
    let server = TestServer::start(Duration::from_millis(50));
    let mut failures = Vec::new();
    for (target, allow) in [
        ("/", "GET, HEAD, OPTIONS"),
        ("/on-demand", "GET, HEAD, OPTIONS"),
        ("/connect", "GET, HEAD, OPTIONS"),
        ("/healthz", "GET, HEAD, OPTIONS"),
        ("/metrics", "GET, HEAD, OPTIONS"),
        ("/assets/htmx.min.js", "GET, HEAD, OPTIONS"),
        ("/ping", "OPTIONS, POST"),
        ("/pong", "OPTIONS, POST"),
        ("/start-connection", "OPTIONS, POST"),
        ("*", "GET, HEAD, OPTIONS, POST"),
    ] {
        let wire = format!("OPTIONS {target} HTTP/1.1\r\nHost: x\r\n\r\n{NEXT_LAST}");
        let answer = exchange(server.addr, wire.as_bytes());
        let result = parse_replies(&answer.bytes, &[false, false]).and_then(|(replies, rest)| {
            let [options, next] = replies.as_slice() else {
                return Err(format!("{} answers", replies.len()));
            };
            if !matches!(options.status, 200 | 204) {
                return Err(format!("status {}", options.status));
            }
            if options.allow() != set(allow) {
                return Err(format!(
                    "Allow {:?}, expected {allow}",
                    options.all("Allow")
                ));
            }
            match (options.status, options.header("Content-Length")) {
                (204, Some(length)) => return Err(format!("204 with Content-Length: {length}")),
                (200, None) if options.header("Transfer-Encoding").is_none() => {
                    return Err("200 without a length".into());
                }
                _ => {}
            }
            if let Some(missing) = security_headers_missing(options) {
                return Err(missing);
            }
            if next.status != 200 || !rest.is_empty() {
                return Err("the next request was not answered right after".into());
            }
            Ok(())
        });
        if let Err(e) = result {
            failures.push(format!("OPTIONS {target}: {e}"));
        }
    }
    assert_no_failures(failures);
}

/// Header syntax (RFC 9110 §5.1, §5.5; RFC 9112 §5, §5.2, §2.2). The cases marked tiny_http are
/// refused before the server sees them and pin what tiny_http answers; the others are refused
/// by the server from what tiny_http leaves visible.
#[test]
fn header_syntax() {
    use Expect::*;
    let server = TestServer::start(Duration::from_millis(50));
    let cases = vec![
        // tiny_http: a header name with whitespace before the colon (common.rs, HeaderField).
        case(
            "whitespace before the colon",
            "GET /healthz HTTP/1.1\r\nHost : x\r\n\r\n",
            RefusedByTinyHttp(Some(400)),
        ),
        // tiny_http: a folded line without a colon is a bad header line.
        case(
            "obsolete line folding",
            "GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n",
            RefusedByTinyHttp(Some(400)),
        ),
        // tiny_http reads lines up to CRLF only: bare LFs make one long request line.
        case(
            "bare LF line ends",
            "GET /healthz HTTP/1.1\nHost: x\n\n",
            RefusedByTinyHttp(Some(400)),
        ),
        // tiny_http: a byte above 0x7f in a header line ends the connection without an answer.
        case(
            "obs-text in a value",
            "GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: \u{e9}\r\n\r\n",
            RefusedByTinyHttp(None),
        ),
        // tiny_http: any Expect but 100-continue.
        case(
            "Expect: nonsense",
            "GET /healthz HTTP/1.1\r\nHost: x\r\nExpect: nonsense\r\n\r\n",
            RefusedByTinyHttp(Some(417)),
        ),
        // tiny_http: two spaces in the request line make an empty target.
        case(
            "two spaces in the request line",
            "GET  /healthz HTTP/1.1\r\nHost: x\r\n\r\n",
            RefusedByTinyHttp(Some(400)),
        ),
        // tiny_http reads the first three words of the request line and ignores the rest.
        case(
            "a fourth word in the request line",
            "GET /healthz HTTP/1.1 extra\r\nHost: x\r\n\r\n",
            Answered(200),
        ),
        case(
            "HTTP/0.9",
            "GET /healthz HTTP/0.9\r\nHost: x\r\n\r\n",
            Refused(505),
        ),
        case(
            "a separator in a name",
            "GET /healthz HTTP/1.1\r\nHost: x\r\nX(a)@: v\r\n\r\n",
            Refused(400),
        ),
        case(
            "an empty name",
            "GET /healthz HTTP/1.1\r\nHost: x\r\n: v\r\n\r\n",
            Refused(400),
        ),
        case(
            "NUL in a value",
            "GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\0b\r\n\r\n",
            Refused(400),
        ),
        case(
            "bare CR in a value",
            "GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\rb\r\n\r\n",
            Refused(400),
        ),
        case(
            "a control character in a value",
            "GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\x07b\r\n\r\n",
            Refused(400),
        ),
        case(
            "Expect: 100-continue with no body",
            "GET /healthz HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n\r\n",
            Answered(200),
        ),
    ];
    assert_no_failures(run_cases(server.addr, cases));
}

// ---- response rules ------------------------------------------------------------------------

/// Every route's answer to GET and to POST, with the cache policy each must carry.
fn routes() -> Vec<(&'static str, &'static str, &'static str)> {
    let mut routes = vec![
        ("GET", "/", "no-cache"),
        ("GET", "/on-demand", "no-cache"),
        ("POST", "/ping", "no-cache"),
        ("POST", "/pong", "no-cache"),
        ("POST", "/start-connection", "no-cache"),
        ("GET", "/nope", "no-cache"),
        ("GET", "/ping", "no-cache"),
        ("GET", "/healthz", "no-store"),
        ("GET", "/metrics", "no-store"),
        ("GET", "/chat", "no-cache"),
        // No body and no Content-Type: refused (415), and never stored.
        ("POST", "/chat/messages", "no-store"),
        ("GET", "/htmx4/", "no-cache"),
        ("GET", "/htmx4/on-demand", "no-cache"),
        ("POST", "/htmx4/start-connection", "no-cache"),
        ("GET", "/htmx4/chat", "no-cache"),
    ];
    routes.extend(ASSETS.map(|asset| ("GET", asset, IMMUTABLE)));
    routes
}

/// RFC 9111 §5.2.2: pages and fragments are revalidated, probes and metrics never stored,
/// assets kept for a year.
#[test]
fn every_route_says_how_to_cache_it() {
    let server = TestServer::start(Duration::from_millis(50));
    let mut failures = Vec::new();
    for (method, path, cache) in routes() {
        let reply = request(server.addr, method, path, "");
        if reply.header("Cache-Control") != Some(cache) {
            failures.push(format!(
                "{method} {path} ({}): Cache-Control {:?}, expected {cache:?}",
                reply.status,
                reply.header("Cache-Control")
            ));
        }
    }
    for path in ["/connect", "/chat/stream"] {
        let stream = EventStream::open_path(server.addr, path, "");
        if stream.head.header("Cache-Control") != Some("no-cache") {
            failures.push(format!(
                "GET {path}: Cache-Control {:?}",
                stream.head.header("Cache-Control")
            ));
        }
    }
    assert_no_failures(failures);
}

/// Assets are sent with their length, never chunked: HTTP/1.1, HTTP/1.0, and even when the
/// client says it takes chunked (`TE: chunked`).
#[test]
fn assets_have_a_content_length_and_are_never_chunked() {
    let server = TestServer::start(Duration::from_millis(50));
    let mut failures = Vec::new();
    for asset in ASSETS {
        for (version, extra) in [("1.1", ""), ("1.1", "TE: chunked\r\n"), ("1.0", "")] {
            let wire = format!(
                "GET {asset} HTTP/{version}\r\nHost: x\r\nConnection: close\r\n{extra}\r\n"
            );
            let answer = exchange(server.addr, wire.as_bytes());
            let what = format!("GET {asset} HTTP/{version} {extra:?}");
            match parse_replies(&answer.bytes, &[false]) {
                Ok((replies, _)) if replies.len() == 1 => {
                    let reply = &replies[0];
                    if reply.header("Transfer-Encoding").is_some() {
                        failures.push(format!(
                            "{what}: Transfer-Encoding {:?}",
                            reply.header("Transfer-Encoding")
                        ));
                    }
                    if reply.header("Content-Length") != Some(&reply.body.len().to_string()) {
                        failures.push(format!(
                            "{what}: Content-Length {:?} for {} bytes",
                            reply.header("Content-Length"),
                            reply.body.len()
                        ));
                    }
                    if reply.header("ETag").is_none()
                        || reply.header("Cache-Control") != Some(IMMUTABLE)
                    {
                        failures.push(format!("{what}: ETag or Cache-Control missing"));
                    }
                }
                other => failures.push(format!("{what}: {other:?}")),
            }
        }
    }
    assert_no_failures(failures);
}

/// GET and HEAD of the same target, each on a new connection; the HEAD is followed by another
/// request on its connection, whose answer must start right after the HEAD's head.
fn get_and_head(addr: SocketAddr, path: &str, extra: &str) -> Result<(Reply, Reply), String> {
    let get = exchange(
        addr,
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n{extra}\r\n").as_bytes(),
    );
    let (get, _) = parse_replies(&get.bytes, &[false])?;
    let get = get.into_iter().next().ok_or("no answer to GET")?;
    let head = exchange(
        addr,
        format!("HEAD {path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n{NEXT_LAST}").as_bytes(),
    );
    let (replies, rest) = parse_replies(&head.bytes, &[true, false])?;
    let [head, next] = replies.as_slice() else {
        return Err(format!(
            "{} answers to HEAD then GET /healthz",
            replies.len()
        ));
    };
    if next.status != 200 || next.body != b"ok\n" || !rest.is_empty() {
        return Err(format!(
            "the request after HEAD was not parsed right after its head (body bytes sent?): {} {:?}",
            next.status,
            String::from_utf8_lossy(&next.body)
        ));
    }
    Ok((get, head.clone()))
}

/// RFC 9110 §9.3.2: HEAD answers exactly the headers GET would, and no body.
#[test]
fn head_has_the_headers_of_get_and_no_body() {
    let server = TestServer::start(Duration::from_millis(50));
    let mut failures = Vec::new();
    let targets = [
        "/",
        "/on-demand",
        "/chat",
        "/htmx4/",
        "/htmx4/on-demand",
        "/htmx4/chat",
        "/healthz",
        "/metrics",
        "/nope",
        "/ping",
    ]
    .into_iter()
    .chain(ASSETS);
    for path in targets {
        // The metrics change from one request to the next, and their length with them.
        let ignore: &[&str] = if path == "/metrics" {
            &["Content-Length"]
        } else {
            &[]
        };
        match get_and_head(server.addr, path, "") {
            Ok((get, head)) => {
                if get.status != head.status {
                    failures.push(format!(
                        "{path}: GET {} but HEAD {}",
                        get.status, head.status
                    ));
                }
                if get.comparable_headers(ignore) != head.comparable_headers(ignore) {
                    failures.push(format!(
                        "{path}: headers differ\n  GET  {:?}\n  HEAD {:?}",
                        get.comparable_headers(&[]),
                        head.comparable_headers(&[])
                    ));
                }
                if head.header("Content-Length").is_none() {
                    failures.push(format!("{path}: HEAD without Content-Length"));
                }
            }
            Err(e) => failures.push(format!("{path}: {e}")),
        }
    }
    assert_no_failures(failures);
}

/// `HEAD /connect` has the stream's head. That head says `Connection: close`, so the server
/// closes the connection after it (RFC 9112 §9.6).
#[test]
fn head_of_the_stream_has_its_head_and_then_the_close() {
    let server = TestServer::start(Duration::from_millis(50));
    let stream = EventStream::open(server.addr);
    let answer = exchange(server.addr, b"HEAD /connect HTTP/1.1\r\nHost: x\r\n\r\n");
    let (replies, rest) = parse_replies(&answer.bytes, &[true]).unwrap();
    let head = &replies[0];
    let get = Reply {
        status: stream.head.status,
        headers: stream.head.headers.clone(),
        body: Vec::new(),
    };
    assert_eq!(head.status, 200);
    assert_eq!(head.comparable_headers(&[]), get.comparable_headers(&[]));
    assert!(rest.is_empty(), "no body: {rest:?}");
    assert_eq!(head.header("Connection"), Some("close"));
    assert!(
        answer.closed,
        "Connection: close, but the connection stayed open"
    );
}

/// A request sent behind a stream's request, on its connection, is never answered: the stream
/// has the connection, and an answer would wait behind it for the stream's life.
#[test]
fn a_request_behind_a_streams_request_is_never_answered() {
    let server = ServerProcess::start(&["--interval", "50ms"]);
    let mut socket = connect(server.addr);
    let stream = "GET /connect HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\n\r\n";
    socket
        .write_all(format!("{stream}{NEXT}").as_bytes())
        .unwrap();
    let deadline = Instant::now() + PATIENCE;
    let mut bytes = Vec::new();
    let mut buffer = [0; 4096];
    // Three ticks at 50 ms: the second request had time to be read, and answered if it were.
    while bytes.windows(5).filter(|w| w == b"data:").count() < 3 && Instant::now() < deadline {
        let read = socket.read(&mut buffer).expect("the stream goes on");
        assert!(read > 0, "the stream goes on");
        bytes.extend_from_slice(&buffer[..read]);
    }
    let text = String::from_utf8_lossy(&bytes);
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert_eq!(text.matches("HTTP/1.1").count(), 1, "{text}");
    assert!(text.contains("This is 2."), "{text}");
    // Nothing waits to answer it, and the server answers others while the stream is on.
    healthy(server.addr).unwrap();
    assert_eq!(common::threads_named(server.child.id(), "sse-body"), 0);
}

/// Under `Connection: upgrade` tiny_http hands over the connection itself as the body, however
/// small: read to its end, it would wait for the client to close, and hold the request loop that
/// long. The body is read to its length, and the server answers others meanwhile.
#[test]
fn a_small_body_under_connection_upgrade_is_read_to_its_length_not_to_the_connections_end() {
    let server = TestServer::start(Duration::from_millis(50));
    let mut socket = connect(server.addr);
    let upgrade = "POST /ping HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings\r\n\
                   Upgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\
                   Content-Length: 5\r\n\r\nhello";
    socket.write_all(upgrade.as_bytes()).unwrap();
    // The client keeps the connection open.
    socket.set_read_timeout(Some(PATIENCE)).unwrap();
    let answer = common::read_head(&mut std::io::BufReader::new(&socket));
    assert_eq!(answer.status, 200, "{}", answer.status_line);
    healthy(server.addr).unwrap();
    // A chunked body there would be handed over undecoded: refused.
    let chunked = "POST /ping HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\n\
                   Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n";
    let refused = exchange(server.addr, chunked.as_bytes());
    let text = String::from_utf8_lossy(&refused.bytes);
    assert!(text.starts_with("HTTP/1.1 501"), "{text}");
    healthy(server.addr).unwrap();
}

/// RFC 9110 §15.4.5 and RFC 9111 §4.3.4: a 304 carries the ETag and Cache-Control the 200 would,
/// and no body; also for HEAD.
#[test]
fn a_304_carries_the_validators_of_the_200() {
    let server = TestServer::start(Duration::from_millis(50));
    let mut failures = Vec::new();
    for asset in ASSETS {
        let full = request(server.addr, "GET", asset, "");
        let etag = full.header("ETag").expect("ETag").to_owned();
        for method in ["GET", "HEAD"] {
            let wire = format!(
                "{method} {asset} HTTP/1.1\r\nHost: x\r\nIf-None-Match: {etag}\r\n\r\n{NEXT_LAST}"
            );
            let answer = exchange(server.addr, wire.as_bytes());
            let what = format!("{method} {asset} If-None-Match");
            match parse_replies(&answer.bytes, &[method == "HEAD", false]) {
                Ok((replies, rest)) if replies.len() == 2 && rest.is_empty() => {
                    let fresh = &replies[0];
                    if fresh.status != 304 {
                        failures.push(format!("{what}: {}", fresh.status));
                    }
                    if fresh.header("ETag") != Some(&etag) {
                        failures.push(format!("{what}: ETag {:?}", fresh.header("ETag")));
                    }
                    if fresh.header("Cache-Control") != full.header("Cache-Control") {
                        failures.push(format!(
                            "{what}: Cache-Control {:?}",
                            fresh.header("Cache-Control")
                        ));
                    }
                    if let Some(missing) = security_headers_missing(fresh) {
                        failures.push(format!("{what}: {missing}"));
                    }
                    if replies[1].status != 200 || replies[1].body != b"ok\n" {
                        failures.push(format!(
                            "{what}: the next request was not answered right after"
                        ));
                    }
                }
                other => failures.push(format!("{what}: {other:?}")),
            }
        }
    }
    assert_no_failures(failures);
}

/// RFC 9110 §8.6: a 304 has no `Content-Length` but the one the 200 would have.
#[test]
fn a_304_has_no_content_length_but_that_of_the_200() {
    let server = TestServer::start(Duration::from_millis(50));
    let mut failures = Vec::new();
    for asset in ASSETS {
        let full = request(server.addr, "GET", asset, "");
        let etag = full.header("ETag").expect("ETag");
        let fresh = request(
            server.addr,
            "GET",
            asset,
            &format!("If-None-Match: {etag}\r\n"),
        );
        assert_eq!(fresh.status, 304, "{asset}");
        let length = fresh.header("Content-Length");
        if length.is_some_and(|l| l != full.body.len().to_string()) {
            failures.push(format!(
                "{asset}: 304 with Content-Length {length:?}, the 200 has {}",
                full.body.len()
            ));
        }
    }
    assert_no_failures(failures);
}

/// `HEAD` of a stream at capacity is refused as its `GET` would be.
#[test]
fn head_of_a_stream_at_capacity_is_503_as_its_get() {
    let server = TestServer::with(|c| {
        c.interval = Duration::from_millis(50);
        c.max_streams = Some(1);
    });
    let head = b"HEAD /connect HTTP/1.1\r\nHost: x\r\n\r\n";
    let (reply, _) = parse_reply(&exchange(server.addr, head).bytes, true).unwrap();
    assert_eq!(reply.status, 200, "with room");
    let _stream = EventStream::open(server.addr);
    let (reply, _) = parse_reply(&exchange(server.addr, head).bytes, true).unwrap();
    assert_eq!(reply.status, 503);
    assert_eq!(reply.header("Retry-After"), Some("5"));
    healthy(server.addr).unwrap();
}

/// Every answer carries the security headers, the refusals made before routing included.
#[test]
fn refusals_carry_the_security_headers() {
    let server = TestServer::with(|c| {
        c.interval = Duration::from_millis(50);
        c.max_streams = Some(1);
    });
    let _stream = EventStream::open(server.addr);
    let many_headers = format!(
        "GET / HTTP/1.1\r\nHost: x\r\n{}\r\n",
        (0..500)
            .map(|i| format!("X-H{i}: v\r\n"))
            .collect::<String>()
    );
    let big_body = format!(
        "POST /ping HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\n\r\n{}",
        "x".repeat(2000)
    );
    let refusals: Vec<(&str, String, u16)> = vec![
        ("no Host", "GET / HTTP/1.1\r\n\r\n".into(), 400),
        (
            "bad Content-Length",
            "POST /ping HTTP/1.1\r\nHost: x\r\nContent-Length: x\r\n\r\n".into(),
            400,
        ),
        ("too many headers", many_headers, 431),
        ("a body", big_body, 413),
        (
            "a body larger than memory",
            "POST /ping HTTP/1.1\r\nHost: x\r\nContent-Length: 1000000000000000\r\n\r\n".into(),
            413,
        ),
        (
            "an unknown method",
            "BREW / HTTP/1.1\r\nHost: x\r\n\r\n".into(),
            501,
        ),
        (
            "an unknown transfer coding",
            "POST /ping HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n"
                .into(),
            501,
        ),
        (
            "the stream at capacity",
            "GET /connect HTTP/1.1\r\nHost: x\r\n\r\n".into(),
            503,
        ),
        (
            "a wrong method",
            "GET /ping HTTP/1.1\r\nHost: x\r\n\r\n".into(),
            405,
        ),
        (
            "an unknown path",
            "GET /nope HTTP/1.1\r\nHost: x\r\n\r\n".into(),
            404,
        ),
    ];
    let mut failures = Vec::new();
    for (what, wire, status) in refusals {
        let answer = exchange(server.addr, wire.as_bytes());
        match parse_reply(&answer.bytes, false) {
            Ok((reply, _)) if reply.status == status => {
                if let Some(missing) = security_headers_missing(&reply) {
                    failures.push(format!("{what} ({status}): {missing}"));
                }
            }
            Ok((reply, _)) => {
                failures.push(format!("{what}: {} instead of {status}", reply.status))
            }
            Err(e) => failures.push(format!("{what}: {e}")),
        }
    }
    assert_no_failures(failures);
    healthy(server.addr).unwrap();
}

/// A refused request's connection is closed even when the client keeps it open for more: what
/// it sends next is never read as a request.
#[test]
fn after_a_refusal_later_bytes_are_not_served() {
    let server = TestServer::start(Duration::from_millis(50));
    let mut socket = connect(server.addr);
    socket
        .write_all(b"POST /ping HTTP/1.1\r\nHost: x\r\nContent-Length: x\r\n\r\n")
        .unwrap();
    let mut first = [0; 12];
    socket.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 400");
    // Sent after the answer arrived: not in any buffer of the server's yet.
    let _ = socket.write_all(NEXT.as_bytes());
    let rest = read_until_closed(&mut socket);
    let text = String::from_utf8_lossy(&rest.bytes);
    assert!(!text.contains("HTTP/1.1 200"), "{text}");
    assert!(rest.closed, "the connection is closed");
    let _ = socket.shutdown(Shutdown::Both);
    healthy(server.addr).unwrap();
}

/// Connections opened together are each answered at once, even while the others stay open.
/// tiny_http hands a new connection to a waiting pool thread by counting waiting threads, and
/// counts one that was woken but has not yet taken its task; the second connection then waits
/// in the queue until some other connection ends (util/task_pool.rs, `spawn`). It happens in
/// some bursts only, so several fresh servers each take one.
#[test]
fn a_burst_of_keepalive_connections_is_answered_at_once() {
    for round in 0..6 {
        let server = TestServer::start(Duration::from_millis(50));
        let sockets: Vec<TcpStream> = (0..20).map(|_| connect(server.addr)).collect();
        for mut socket in &sockets {
            socket.write_all(NEXT.as_bytes()).unwrap();
        }
        let started = Instant::now();
        let deadline = started + Duration::from_secs(2);
        let unanswered = sockets
            .iter()
            .filter(|socket| {
                let left = deadline.saturating_duration_since(Instant::now());
                socket
                    .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                    .unwrap();
                let mut status = [0; 12];
                let mut socket: &TcpStream = socket;
                socket.read_exact(&mut status).is_err()
            })
            .count();
        assert_eq!(
            unanswered,
            0,
            "round {round}: {unanswered} of 20 keep-alive connections unanswered after {:?}",
            started.elapsed()
        );
    }
}

/// RFC 9110 §10.1.1: a client that sends `Expect: 100-continue` may wait for the interim answer
/// before it sends its body. tiny_http does not read such a body before the request is handed
/// over, whatever its size (request.rs, `new_request`), and reads it when the request is dropped:
/// a client that never sends it must not stall anyone else.
#[test]
fn a_body_that_waits_for_100_continue_stalls_no_one() {
    let server = TestServer::start(Duration::from_millis(50));
    let mut waiting = connect(server.addr);
    waiting
        .write_all(
            b"POST /ping HTTP/1.1\r\nHost: x\r\nContent-Length: 500\r\nExpect: 100-continue\r\n\r\n",
        )
        .unwrap();
    let mut first = [0; 9];
    waiting.read_exact(&mut first).unwrap();
    let started = Instant::now();
    let mut other = connect(server.addr);
    other
        .set_read_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    other.write_all(NEXT_LAST.as_bytes()).unwrap();
    let mut answer = String::new();
    let _ = other.read_to_string(&mut answer);
    assert!(
        answer.ends_with("ok\n"),
        "another client waited {:?} for nothing: {answer:?}",
        started.elapsed()
    );
    drop(waiting);
}
