//! Parsing an event stream from a chunked HTTP response, in pieces of any size, with the token
//! that names a published message when an event's data carries one.
//!
//! The client reads thousands of streams on one thread from non-blocking sockets, so a read may
//! end anywhere: inside the head, a chunk-size line, a chunk or its closing CRLF. The parser
//! keeps its place between reads and counts an event when its last byte arrives. It uses nothing
//! but `std`, so `tests/load_parser.rs` includes it with `#[path]` and tests it at every split.

/// Where the parser is in the response.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ParseState {
    Head,
    ChunkSize,
    ChunkData {
        left: usize,
    },
    /// The CRLF that ends a chunk's data.
    ChunkEnd,
    /// The body ended, or its status was not 200 and the rest does not matter.
    Done,
}

/// What one piece of input brought.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Fed {
    /// The status, in the piece that completed the head.
    pub status: Option<u16>,
    /// Events completed in this piece.
    pub events: usize,
    /// The tokens of the events completed in this piece that carry one, in order (see
    /// [`TokenFinder`]).
    pub tokens: Vec<u64>,
    /// The zero-length chunk came: the server ended the body.
    pub body_ended: bool,
}

/// Reads a chunked `text/event-stream` response and counts its events: an event is a chunk with
/// a `data:` line (keep-alive comments and `retry:` chunks are not events). Holds no more than
/// the response head and one chunk-size line, whatever the split of the input.
pub struct EventStreamParser {
    state: ParseState,
    /// The head, then a chunk-size line or a chunk's closing CRLF, as far as received.
    pending: Vec<u8>,
    data_line: DataLineFinder,
}

/// The longest response head the parser takes.
pub const MAX_HEAD: usize = 16 * 1024;
/// The longest chunk-size line the parser takes.
pub const MAX_LINE: usize = 1024;

impl EventStreamParser {
    pub fn new() -> EventStreamParser {
        EventStreamParser {
            state: ParseState::Head,
            pending: Vec::new(),
            data_line: DataLineFinder::default(),
        }
    }

    pub fn feed(&mut self, mut bytes: &[u8]) -> Result<Fed, String> {
        let mut fed = Fed::default();
        while !bytes.is_empty() {
            match self.state {
                ParseState::Head => {
                    let Some(used) = self.take_head(bytes)? else {
                        return Ok(fed);
                    };
                    bytes = &bytes[used..];
                    let head = parse_head(&self.pending)?;
                    self.pending.clear();
                    fed.status = Some(head.status);
                    if head.status != 200 {
                        self.state = ParseState::Done;
                    } else if !head.chunked {
                        return Err("a 200 response that is not chunked".into());
                    } else {
                        self.state = ParseState::ChunkSize;
                    }
                }
                ParseState::ChunkSize => {
                    let Some(used) = self.take_line(bytes)? else {
                        return Ok(fed);
                    };
                    bytes = &bytes[used..];
                    let size = parse_chunk_size(&self.pending)?;
                    self.pending.clear();
                    if size == 0 {
                        fed.body_ended = true;
                        self.state = ParseState::Done;
                    } else {
                        self.data_line = DataLineFinder::default();
                        self.state = ParseState::ChunkData { left: size };
                    }
                }
                ParseState::ChunkData { left } => {
                    let here = left.min(bytes.len());
                    bytes[..here].iter().for_each(|&b| self.data_line.push(b));
                    bytes = &bytes[here..];
                    if here == left {
                        // The event is complete when its last byte is; the CRLF after it is
                        // framing.
                        if self.data_line.found {
                            fed.events += 1;
                            fed.tokens.extend(self.data_line.token.found);
                        }
                        self.state = ParseState::ChunkEnd;
                    } else {
                        self.state = ParseState::ChunkData { left: left - here };
                    }
                }
                ParseState::ChunkEnd => {
                    let Some(used) = self.take_line(bytes)? else {
                        return Ok(fed);
                    };
                    bytes = &bytes[used..];
                    if !matches!(self.pending.as_slice(), b"" | b"\r") {
                        return Err("a chunk longer than its size".into());
                    }
                    self.pending.clear();
                    self.state = ParseState::ChunkSize;
                }
                ParseState::Done => break,
            }
        }
        Ok(fed)
    }

    /// Adds bytes to the head until its blank line; returns how many bytes it took once the head
    /// is complete. The limit is checked per byte, so a long head is refused whatever the split.
    fn take_head(&mut self, bytes: &[u8]) -> Result<Option<usize>, String> {
        for (i, &b) in bytes.iter().enumerate() {
            if self.pending.len() == MAX_HEAD {
                return Err("a response head over 16 KiB".into());
            }
            self.pending.push(b);
            if self.pending.ends_with(b"\r\n\r\n") {
                return Ok(Some(i + 1));
            }
        }
        Ok(None)
    }

    /// Adds bytes to `pending` up to the next `\n` (not kept); returns how many bytes it took
    /// once the line is complete.
    fn take_line(&mut self, bytes: &[u8]) -> Result<Option<usize>, String> {
        let end = bytes.iter().position(|&b| b == b'\n');
        self.pending
            .extend_from_slice(&bytes[..end.unwrap_or(bytes.len())]);
        // Checked whether or not the line is complete, so the split does not matter.
        if self.pending.len() > MAX_LINE {
            return Err("a chunk-size line over 1 KiB".into());
        }
        Ok(end.map(|end| end + 1))
    }
}

/// Tells whether a chunk has a line that starts with `data:`, one byte at a time, so that a chunk
/// split across reads needs no buffer; the rest of each such line goes to a [`TokenFinder`].
struct DataLineFinder {
    /// How much of `data:` the current line starts with; `None` when it starts otherwise.
    matched: Option<usize>,
    found: bool,
    token: TokenFinder,
}

impl Default for DataLineFinder {
    fn default() -> Self {
        DataLineFinder {
            matched: Some(0),
            found: false,
            token: TokenFinder::default(),
        }
    }
}

impl DataLineFinder {
    const FIELD: &'static [u8] = b"data:";

    fn push(&mut self, byte: u8) {
        // SSE ends lines with CRLF, LF or CR alone.
        if byte == b'\n' || byte == b'\r' {
            self.matched = Some(0);
            self.token.end_line();
            return;
        }
        match self.matched {
            Some(matched) if matched == Self::FIELD.len() => self.token.push(byte),
            Some(matched) if byte == Self::FIELD[matched] => {
                self.matched = Some(matched + 1);
                self.found |= matched + 1 == Self::FIELD.len();
            }
            Some(_) => self.matched = None,
            None => {}
        }
    }
}

/// Finds the token that names a published message in an event's data: the first `m` + decimal
/// digits found between a `>` and a `<` on one line, as in `<p>m17</p>` or
/// `<span class="text">m17</span>` (17). One byte at a time, like [`DataLineFinder`].
#[derive(Default)]
struct TokenFinder {
    scan: TokenScan,
    found: Option<u64>,
}

#[derive(Clone, Copy, Default)]
enum TokenScan {
    #[default]
    Outside,
    /// Just after a `>`.
    Opened,
    /// After `>m`.
    Letter,
    /// After `>m` and these digits so far.
    Digits(u64),
}

impl TokenFinder {
    fn push(&mut self, byte: u8) {
        if self.found.is_some() {
            return;
        }
        self.scan = match (self.scan, byte) {
            (_, b'>') => TokenScan::Opened,
            (TokenScan::Opened, b'm') => TokenScan::Letter,
            (TokenScan::Letter, b'0'..=b'9') => TokenScan::Digits(u64::from(byte - b'0')),
            // Too many digits for a u64 is not a token.
            (TokenScan::Digits(n), b'0'..=b'9') => n
                .checked_mul(10)
                .and_then(|n| n.checked_add(u64::from(byte - b'0')))
                .map_or(TokenScan::Outside, TokenScan::Digits),
            (TokenScan::Digits(n), b'<') => {
                self.found = Some(n);
                TokenScan::Outside
            }
            _ => TokenScan::Outside,
        };
    }

    fn end_line(&mut self) {
        self.scan = TokenScan::Outside;
    }
}

struct Head {
    status: u16,
    chunked: bool,
}

fn parse_head(head: &[u8]) -> Result<Head, String> {
    let text = std::str::from_utf8(head).map_err(|_| "a response head that is not UTF-8")?;
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| format!("a bad status line {status_line:?}"))?;
    let chunked = lines.any(|line| {
        line.split_once(':').is_some_and(|(name, value)| {
            name.trim().eq_ignore_ascii_case("transfer-encoding")
                && value.to_ascii_lowercase().contains("chunked")
        })
    });
    Ok(Head { status, chunked })
}

/// The size in a chunk-size line (hex digits, maybe extensions after `;`, maybe a trailing CR).
fn parse_chunk_size(line: &[u8]) -> Result<usize, String> {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let digits = line.split(|&b| b == b';').next().unwrap_or_default();
    std::str::from_utf8(digits)
        .ok()
        .and_then(|digits| usize::from_str_radix(digits.trim(), 16).ok())
        .ok_or_else(|| format!("a bad chunk size {:?}", String::from_utf8_lossy(line)))
}
