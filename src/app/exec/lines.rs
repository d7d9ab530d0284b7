//! A program's output cut into lines in bounded memory: a line is held up to a few bytes more
//! than `max_chars` characters can take; a longer one is sent cut as soon as it is that long, and
//! the rest of it is read and dropped, so a program that never writes a newline costs no more
//! than one long line, and is seen.
//!
//! ```text
//! "load 0.1\r\n"        ->  "load 0.1"
//! b"caf\xe9\n"          ->  "caf\u{FFFD}"     (invalid UTF-8 replaced)
//! 5000 'x' and "\n"     ->  1999 'x' and "…"  (with max_chars 2000: cut, marked)
//! ```

use std::io::{self, BufRead, BufReader, Read};

/// Ends a line that was cut to fit.
pub const CUT: char = '…';

/// Calls `each` with every line of `input`, until its end (a last line without a newline
/// included) or a read error. A line too long is sent, cut, as soon as that is known; the rest
/// of it is read and dropped.
pub fn for_each(
    input: impl Read,
    max_chars: usize,
    mut each: impl FnMut(String),
) -> io::Result<()> {
    // Enough bytes for `max_chars` characters of four bytes and one more: a line longer than
    // that has more than `max_chars` characters, whatever they are.
    let held = max_chars.saturating_add(1).saturating_mul(4);
    let mut input = BufReader::new(input);
    let mut line = Vec::new();
    // The line was sent cut: what is left of it is dropped.
    let mut cut = false;
    loop {
        let chunk = match input.fill_buf() {
            Ok(chunk) => chunk,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        };
        if chunk.is_empty() {
            if !line.is_empty() {
                each(text(&line, max_chars));
            }
            return Ok(());
        }
        let end = chunk.iter().position(|&b| b == b'\n');
        if !cut {
            let piece = &chunk[..end.unwrap_or(chunk.len())];
            let room = held - line.len();
            line.extend_from_slice(&piece[..piece.len().min(room)]);
        }
        let used = end.map_or(chunk.len(), |at| at + 1);
        input.consume(used);
        if !cut && (end.is_some() || line.len() == held) {
            each(text(&line, max_chars));
            cut = end.is_none();
            line.clear();
        } else if end.is_some() {
            cut = false;
        }
    }
}

/// The line as text: without a final `\r`, invalid UTF-8 replaced, and cut to `max_chars`
/// characters with [`CUT`] as the last if it has more.
fn text(bytes: &[u8], max_chars: usize) -> String {
    let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
    let mut text = String::from_utf8_lossy(bytes).into_owned();
    if text.char_indices().nth(max_chars).is_some() {
        let keep = max_chars.saturating_sub(1);
        let end = text
            .char_indices()
            .nth(keep)
            .map_or(text.len(), |(at, _)| at);
        text.truncate(end);
        text.push(CUT);
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8], max_chars: usize) -> Vec<String> {
        let mut out = Vec::new();
        for_each(input, max_chars, |line| out.push(line)).unwrap();
        out
    }

    #[test]
    fn lines_end_at_newlines_and_at_the_end() {
        assert_eq!(lines(b"a\r\nb\n\nc", 10), ["a", "b", "", "c"]);
        assert!(lines(b"", 10).is_empty());
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        assert_eq!(lines(b"caf\xe9 ok\n", 10), ["caf\u{FFFD} ok"]);
    }

    #[test]
    fn a_long_line_is_cut_with_a_marker_and_the_next_is_whole() {
        let mut input = "é".repeat(100_000).into_bytes();
        input.extend_from_slice(b"\nnext\n");
        let out = lines(&input, 5);
        assert_eq!(out, ["éééé…", "next"]);
        assert_eq!(lines(b"12345\n123456\n", 5), ["12345", "1234…"]);
    }

    /// `left` bytes of 'x', then an error: a program that never ends its line, then dies.
    struct Endless {
        left: usize,
    }

    impl Read for Endless {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.left == 0 {
                return Err(io::Error::other("gone"));
            }
            let n = buf.len().min(self.left);
            buf[..n].fill(b'x');
            self.left -= n;
            Ok(n)
        }
    }

    #[test]
    fn a_line_with_no_end_is_sent_cut_at_once_and_held_in_bounded_memory() {
        let mut out = Vec::new();
        let read = for_each(Endless { left: 64 << 20 }, 3, |line| out.push(line));
        assert!(read.is_err());
        assert_eq!(out, ["xx…"], "sent before any newline; the rest dropped");
        let mut input = "x".repeat(100).into_bytes();
        input.extend_from_slice(b"\nend");
        assert_eq!(lines(&input, 3), ["xx…", "end"]);
    }
}
