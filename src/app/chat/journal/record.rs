//! One message as bytes: the journal's record, also usable on its own (a buffer of records is a
//! journal without its file header).
//!
//! ```text
//! magic FF 63 68 31 | len u32 | crc32 u32 of len and payload | payload (len bytes)
//! payload: id u64 | at_ms u64 | name_len u16 | name (UTF-8) | text (UTF-8, the rest)
//! ```

use std::io::{self, BufReader, Read, Seek, SeekFrom};

use super::super::message::Message;

pub const MAGIC: [u8; 4] = [0xFF, b'c', b'h', b'1'];
/// Magic, length and checksum: the bytes before the payload.
pub const PREFIX: u64 = 12;
/// Far above any real record (a 2,000-character text is at most 8,000 bytes); a length above it
/// is damage, and it bounds what a damaged length makes the reader allocate.
pub const MAX_PAYLOAD: u32 = 1 << 20;
/// id, at_ms and name_len: the payload before the name.
pub const FIXED: usize = 18;

/// One record's bytes.
pub fn encode(message: &Message) -> Vec<u8> {
    // A name is at most 40 characters, far below u16::MAX bytes; a longer one is cut at a
    // character boundary rather than written with a wrong length.
    let mut name_len = message.name.len().min(usize::from(u16::MAX));
    while !message.name.is_char_boundary(name_len) {
        name_len -= 1;
    }
    let name = &message.name.as_bytes()[..name_len];
    let mut payload = Vec::with_capacity(FIXED + name.len() + message.text.len());
    payload.extend_from_slice(&message.id.to_le_bytes());
    payload.extend_from_slice(&message.at_ms.to_le_bytes());
    payload.extend_from_slice(&(name_len as u16).to_le_bytes());
    payload.extend_from_slice(name);
    payload.extend_from_slice(message.text.as_bytes());
    let len = u32::try_from(payload.len())
        .unwrap_or(u32::MAX)
        .to_le_bytes();
    let mut record = Vec::with_capacity(PREFIX as usize + payload.len());
    record.extend_from_slice(&MAGIC);
    record.extend_from_slice(&len);
    record.extend_from_slice(&checksum(len, &payload).to_le_bytes());
    record.extend_from_slice(&payload);
    record
}

/// The message of the whole, valid record at the start of `bytes`, and that record's size; `None`
/// if `bytes` do not begin with one (too short, another magic, a bad checksum or payload).
pub fn decode(bytes: &[u8]) -> Option<(Message, usize)> {
    let prefix: &[u8; PREFIX as usize] = bytes.get(..PREFIX as usize)?.try_into().ok()?;
    let (len, crc) = parse_prefix(prefix, bytes.len() as u64 - PREFIX)?;
    let size = PREFIX as usize + len as usize;
    let payload = bytes.get(PREFIX as usize..size)?;
    if checksum(len.to_le_bytes(), payload) != crc {
        return None;
    }
    decode_payload(payload.to_vec()).map(|message| (message, size))
}

/// The record at the reader's position and its size, or `None` if the `remaining` bytes there
/// do not begin with one. Reads at most one record's bytes.
pub fn read(r: &mut impl Read, remaining: u64) -> io::Result<Option<(Message, u64)>> {
    if remaining < PREFIX {
        return Ok(None);
    }
    let mut prefix = [0; PREFIX as usize];
    r.read_exact(&mut prefix)?;
    let Some((len, crc)) = parse_prefix(&prefix, remaining - PREFIX) else {
        return Ok(None);
    };
    let mut payload = vec![0; len as usize];
    r.read_exact(&mut payload)?;
    if checksum(len.to_le_bytes(), &payload) != crc {
        return Ok(None);
    }
    Ok(decode_payload(payload).map(|m| (m, PREFIX + u64::from(len))))
}

/// Positions the reader at the first magic at or after `from` and returns its offset, or `len`.
pub fn next_magic<R: Read + Seek>(r: &mut BufReader<R>, from: u64, len: u64) -> io::Result<u64> {
    r.seek(SeekFrom::Start(from))?;
    let mut window = [0u8; 4];
    let mut pos = from;
    let mut byte = [0u8];
    while pos < len {
        r.read_exact(&mut byte)?;
        pos += 1;
        window = [window[1], window[2], window[3], byte[0]];
        if window == MAGIC && pos >= from + 4 {
            r.seek(SeekFrom::Start(pos - 4))?;
            return Ok(pos - 4);
        }
    }
    Ok(len)
}

/// The payload's length and checksum, if the prefix has the magic and a length that fits in
/// `available` bytes and under [`MAX_PAYLOAD`].
fn parse_prefix(prefix: &[u8; PREFIX as usize], available: u64) -> Option<(u32, u32)> {
    let len = u32::from_le_bytes(prefix[4..8].try_into().ok()?);
    let crc = u32::from_le_bytes(prefix[8..12].try_into().ok()?);
    let fits = len <= MAX_PAYLOAD && u64::from(len) <= available;
    (prefix[..4] == MAGIC && fits).then_some((len, crc))
}

fn checksum(len: [u8; 4], payload: &[u8]) -> u32 {
    let mut crc = crc32fast::Hasher::new();
    crc.update(&len);
    crc.update(payload);
    crc.finalize()
}

fn decode_payload(mut payload: Vec<u8>) -> Option<Message> {
    if payload.len() < FIXED {
        return None;
    }
    let id = u64::from_le_bytes(payload[0..8].try_into().ok()?);
    let at_ms = u64::from_le_bytes(payload[8..16].try_into().ok()?);
    let name_len = usize::from(u16::from_le_bytes(payload[16..18].try_into().ok()?));
    let text = payload.split_off(
        FIXED
            .checked_add(name_len)
            .filter(|&end| end <= payload.len())?,
    );
    let name = String::from_utf8(payload.split_off(FIXED)).ok()?;
    let text = String::from_utf8(text).ok()?;
    Some(Message {
        id,
        name,
        text,
        at_ms,
    })
}
