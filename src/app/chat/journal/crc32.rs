//! CRC-32 (IEEE 802.3, the checksum of zlib, gzip and PNG), one byte at a time from a 1 KiB
//! table built at compile time.
//!
//! A journal record is at most a few KiB, and the journal is read once at start, so the speed of
//! a 16 KiB slice-by-16 table (what checksum crates use) buys nothing here, while its table would
//! take 1.5 % of a binary that must stay under 1 MiB.

/// The reflected polynomial 0x04C11DB7.
const POLYNOMIAL: u32 = 0xEDB8_8320;

const TABLE: [u32; 256] = {
    let mut table = [0; 256];
    let mut byte = 0;
    while byte < 256 {
        let mut crc = byte as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ POLYNOMIAL
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[byte] = crc;
        byte += 1;
    }
    table
};

/// A running checksum: [`Hasher::update`] with each piece, then [`Hasher::finalize`].
pub struct Hasher(u32);

impl Hasher {
    pub fn new() -> Hasher {
        Hasher(!0)
    }

    pub fn update(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.0 = TABLE[usize::from(self.0 as u8 ^ byte)] ^ (self.0 >> 8);
        }
    }

    pub fn finalize(self) -> u32 {
        !self.0
    }
}

#[cfg(test)]
mod tests {
    use super::Hasher;

    fn crc(pieces: &[&[u8]]) -> u32 {
        let mut hasher = Hasher::new();
        for piece in pieces {
            hasher.update(piece);
        }
        hasher.finalize()
    }

    #[test]
    fn the_standard_check_values() {
        // The check value of the catalogue of CRCs ("CRC-32/ISO-HDLC"), and zlib's crc32 of
        // other known inputs.
        assert_eq!(crc(&[b"123456789"]), 0xCBF4_3926);
        assert_eq!(crc(&[b""]), 0);
        assert_eq!(crc(&[b"a"]), 0xE8B7_BE43);
        assert_eq!(
            crc(&[b"The quick brown fox jumps over the lazy dog"]),
            0x414F_A339
        );
    }

    #[test]
    fn pieces_give_the_checksum_of_the_whole() {
        assert_eq!(crc(&[b"1234", b"", b"56789"]), crc(&[b"123456789"]));
    }

    #[test]
    fn it_agrees_with_another_implementation_on_every_length_and_byte() {
        let bytes: Vec<u8> = (0..2_000u32).map(|i| (i * 7 + i / 255) as u8).collect();
        for end in [0, 1, 2, 3, 7, 8, 15, 16, 17, 255, 256, 1_000, 2_000] {
            assert_eq!(
                crc(&[&bytes[..end]]),
                crc32fast::hash(&bytes[..end]),
                "{end}"
            );
        }
    }
}
