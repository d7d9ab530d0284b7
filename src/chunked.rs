//! HTTP/1.1 chunked transfer coding (RFC 9112, section 7.1), one frame at a time.
//!
//! ```
//! use sse_htmx::chunked::Framing;
//!
//! let mut wire = Vec::new();
//! let mut scratch = Vec::new();
//! Framing::Chunked.write_frame(&mut wire, &mut scratch, b"data: x\n\n")?;
//! Framing::Chunked.finish(&mut wire)?;
//! assert_eq!(wire, b"9\r\ndata: x\n\n\r\n0\r\n\r\n");
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! Each frame goes out in a single `write_all` followed by a flush, so a frame is never left
//! half in a buffer and never waits for the next one.

use std::io::{self, Write};

/// The longest bytes that go before a frame's payload: a chunk's size (16 hex digits) and CRLF.
pub const MAX_HEAD: usize = 18;

/// How a streamed body is delimited on the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// HTTP/1.1: each frame is a chunk; the body ends with the zero-length chunk.
    Chunked,
    /// HTTP/1.0 has no chunked coding: frames are written as they are and the body ends when the
    /// connection closes.
    CloseDelimited,
}

impl Framing {
    /// The bytes that go before and after a payload of `len` bytes to make it one frame, the
    /// first written into `head`: a frame can then be sent from three parts (a vectored write)
    /// without copying the payload.
    pub fn around(self, len: usize, head: &mut [u8; MAX_HEAD]) -> (&[u8], &'static [u8]) {
        match self {
            Framing::Chunked => {
                let mut cursor = io::Cursor::new(&mut head[..]);
                // The size of a usize in hex and CRLF always fit.
                let _ = write!(cursor, "{len:x}\r\n");
                let end = cursor.position() as usize;
                (&head[..end], b"\r\n")
            }
            Framing::CloseDelimited => (&[], &[]),
        }
    }

    /// Appends `payload` as one frame to `out`; nothing for an empty payload, which as a chunk
    /// would end the body.
    pub fn frame_into(self, out: &mut Vec<u8>, payload: &[u8]) {
        if payload.is_empty() {
            return;
        }
        let mut head = [0; MAX_HEAD];
        let (head, tail) = self.around(payload.len(), &mut head);
        out.extend_from_slice(head);
        out.extend_from_slice(payload);
        out.extend_from_slice(tail);
    }

    /// Writes `payload` as one frame and flushes it; returns the bytes written. `scratch` is
    /// reused between calls so that a frame costs no allocation once it has grown to size.
    pub fn write_frame(
        self,
        w: &mut impl Write,
        scratch: &mut Vec<u8>,
        payload: &[u8],
    ) -> io::Result<usize> {
        if payload.is_empty() {
            // An empty chunk would end the body.
            return Ok(0);
        }
        let frame = match self {
            Framing::Chunked => {
                scratch.clear();
                self.frame_into(scratch, payload);
                &scratch[..]
            }
            Framing::CloseDelimited => payload,
        };
        w.write_all(frame)?;
        w.flush()?;
        Ok(frame.len())
    }

    /// Ends the body: the zero-length chunk for chunked coding, nothing otherwise (closing the
    /// connection ends a close-delimited body); returns the bytes written.
    pub fn finish(self, w: &mut impl Write) -> io::Result<usize> {
        let end: &[u8] = match self {
            Framing::Chunked => b"0\r\n\r\n",
            Framing::CloseDelimited => b"",
        };
        w.write_all(end)?;
        w.flush()?;
        Ok(end.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(framing: Framing, payload: &[u8]) -> Vec<u8> {
        let mut wire = Vec::new();
        framing
            .write_frame(&mut wire, &mut Vec::new(), payload)
            .unwrap();
        wire
    }

    #[test]
    fn chunk_size_is_hex() {
        let payload = vec![b'x'; 300];
        let wire = frame(Framing::Chunked, &payload);
        assert!(wire.starts_with(b"12c\r\nxxx"));
        assert!(wire.ends_with(b"xxx\r\n"));
        assert_eq!(wire.len(), 5 + 300 + 2);
    }

    #[test]
    fn empty_payload_writes_nothing() {
        assert!(frame(Framing::Chunked, b"").is_empty());
    }

    #[test]
    fn close_delimited_writes_payload_as_is() {
        assert_eq!(
            frame(Framing::CloseDelimited, b"data: x\n\n"),
            b"data: x\n\n"
        );
        let mut wire = Vec::new();
        assert_eq!(Framing::CloseDelimited.finish(&mut wire).unwrap(), 0);
        assert!(wire.is_empty());
    }

    #[test]
    fn scratch_is_reused() {
        let mut wire = Vec::new();
        let mut scratch = Vec::new();
        Framing::Chunked
            .write_frame(&mut wire, &mut scratch, b"ab")
            .unwrap();
        Framing::Chunked
            .write_frame(&mut wire, &mut scratch, b"c")
            .unwrap();
        assert_eq!(wire, b"2\r\nab\r\n1\r\nc\r\n");
    }

    /// A writer that records each flush, to show one frame is one write and one flush.
    #[derive(Default)]
    struct Recorder {
        writes: Vec<Vec<u8>>,
        flushes: usize,
    }

    impl Write for Recorder {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.writes.push(buf.to_vec());
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            self.flushes += 1;
            Ok(())
        }
    }

    #[test]
    fn each_frame_is_one_write_and_one_flush() {
        let mut recorder = Recorder::default();
        let mut scratch = Vec::new();
        Framing::Chunked
            .write_frame(&mut recorder, &mut scratch, b"one")
            .unwrap();
        Framing::Chunked
            .write_frame(&mut recorder, &mut scratch, b"two")
            .unwrap();
        assert_eq!(
            recorder.writes,
            vec![b"3\r\none\r\n".to_vec(), b"3\r\ntwo\r\n".to_vec()]
        );
        assert_eq!(recorder.flushes, 2);
    }
}
