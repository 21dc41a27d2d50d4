//! The deterministic byte stream bulk transfers send, so each side can check
//! what it received without the other having to ship a copy.
//!
//! Byte `i` of the stream is `i mod 251`. The period is prime, so it shares no
//! factor with segment sizes: a segment delivered twice, dropped, or placed at
//! the wrong offset changes the stream's hash. The Python peer
//! (`scripts/netns-peer.py`) builds the same stream as `bytes(range(251))`.

use sha2::{Digest, Sha256};

/// Length of the repeating block.
pub const PERIOD: u64 = 251;

/// Fill `buf` with the stream's bytes starting at stream offset `offset`.
pub fn fill(offset: u64, buf: &mut [u8]) {
    let mut value = offset % PERIOD;
    for byte in buf {
        // `value` < 251, so the cast is exact.
        *byte = value as u8;
        value += 1;
        if value == PERIOD {
            value = 0;
        }
    }
}

/// Lower-case hex SHA-256 of the first `len` bytes of the stream.
pub fn sha256_hex(len: u64) -> String {
    let mut hasher = Sha256::new();
    let mut chunk = [0u8; 64 * 1024];
    let mut offset = 0;
    while offset < len {
        let n = (len - offset).min(chunk.len() as u64) as usize;
        fill(offset, &mut chunk[..n]);
        hasher.update(&chunk[..n]);
        offset += n as u64;
    }
    hex(&hasher.finalize())
}

/// Lower-case hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(DIGITS[usize::from(b >> 4)] as char);
        out.push(DIGITS[usize::from(b & 0xf)] as char);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_continues_the_stream_at_any_offset() {
        let mut whole = vec![0u8; 1000];
        fill(0, &mut whole);
        let mut tail = vec![0u8; 300];
        fill(700, &mut tail);
        assert_eq!(&whole[700..], &tail[..]);
        assert_eq!(whole[250], 250);
        assert_eq!(whole[251], 0);
    }

    #[test]
    fn stream_hash_matches_a_one_shot_hash() {
        let mut bytes = vec![0u8; 200_000];
        fill(0, &mut bytes);
        assert_eq!(sha256_hex(200_000), hex(&Sha256::digest(&bytes)));
        // Known value of SHA-256 over the empty input.
        assert_eq!(sha256_hex(0), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    }
}
