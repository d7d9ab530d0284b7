//! A program's output cut into lines in bounded memory: a line is held up to a few bytes more
//! than `max_chars` characters can take, and the rest of a longer one is read and dropped, so a
//! program that never writes a newline costs no more than one long line.
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
/// included) or a read error.
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
        let piece = &chunk[..end.unwrap_or(chunk.len())];
        let room = held.saturating_sub(line.len());
        line.extend_from_slice(&piece[..piece.len().min(room)]);
        let used = end.map_or(chunk.len(), |at| at + 1);
        input.consume(used);
        if end.is_some() {
            each(text(&line, max_chars));
            line.clear();
        }
    }
}

/// The line as text: without a final `\r`, invalid UTF-8 replaced, and cut to `max_chars`
/// characters with [`CUT`] as the last if it has more.
fn text(bytes: &[u8], max_chars: usize) -> String {
    let bytes = bytes.strip_suffix(b"\r").unwrap_or(bytes);
    let text = String::from_utf8_lossy(bytes);
    match text.char_indices().nth(max_chars) {
        None => text.into_owned(),
        Some(_) => {
            let keep = max_chars.saturating_sub(1);
            let mut cut: String = text.chars().take(keep).collect();
            cut.push(CUT);
            cut
        }
    }
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

    #[test]
    fn a_line_with_no_end_is_held_in_bounded_memory() {
        // A reader that never ends a line: 64 MiB of 'x', then EOF.
        let endless = io::repeat(b'x').take(64 << 20);
        let mut out = Vec::new();
        for_each(endless, 3, |line| out.push(line)).unwrap();
        assert_eq!(out, ["xx…"]);
    }
}
