//! The deterministic byte pattern every bulk transfer carries, so each byte
//! received can be checked without keeping a copy of what was sent: byte `o`
//! of stream `key` is byte `o % 8` of `mix(key, o / 8)`.

use core::net::SocketAddrV4;

/// Which way a stream flows, relative to the client that opened the connection.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Flow {
    ClientToServer,
    ServerToClient,
}

/// SplitMix64's finalizer: a bijective, well-mixed function of its input.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The key of one direction of the connection opened from `client`: both
/// ends can compute it (the client from its local address, the server from
/// the peer address), so no side channel is needed.
pub fn stream_key(client: SocketAddrV4, flow: Flow) -> u64 {
    let addr = u64::from(u32::from(*client.ip())) << 16 | u64::from(client.port());
    mix(addr.wrapping_mul(4).wrapping_add(flow as u64 + 1))
}

fn word(key: u64, index: u64) -> [u8; 8] {
    mix(key ^ index.wrapping_mul(0x9e37_79b9_7f4a_7c15)).to_le_bytes()
}

/// Fills `buf` with bytes `offset..offset + buf.len()` of stream `key`.
pub fn fill(key: u64, offset: u64, buf: &mut [u8]) {
    // Unaligned head, then whole words (the hot path), then the tail.
    let head = (((8 - offset % 8) % 8) as usize).min(buf.len());
    let (first, rest) = buf.split_at_mut(head);
    fill_bytes(key, offset, first);
    let mut pos = offset + head as u64;
    let mut words = rest.chunks_exact_mut(8);
    for chunk in &mut words {
        chunk.copy_from_slice(&word(key, pos / 8));
        pos += 8;
    }
    fill_bytes(key, pos, words.into_remainder());
}

/// Byte by byte, for the few bytes around word boundaries.
fn fill_bytes(key: u64, offset: u64, buf: &mut [u8]) {
    for (i, b) in buf.iter_mut().enumerate() {
        let pos = offset + i as u64;
        *b = word(key, pos / 8)[(pos % 8) as usize];
    }
}

/// The stream offset of the first byte of `buf` (which claims to be bytes
/// `offset..` of stream `key`) that does not match, if any.
pub fn first_mismatch(key: u64, offset: u64, buf: &[u8]) -> Option<u64> {
    let head = (((8 - offset % 8) % 8) as usize).min(buf.len());
    let (first, rest) = buf.split_at(head);
    if let Some(at) = mismatch_bytes(key, offset, first) {
        return Some(at);
    }
    let mut pos = offset + head as u64;
    let mut words = rest.chunks_exact(8);
    for chunk in &mut words {
        let expected = u64::from_le_bytes(word(key, pos / 8));
        let got = u64::from_le_bytes(chunk.try_into().expect("chunks_exact(8)"));
        if got != expected {
            // The lowest differing byte (little-endian: lowest bits first).
            return Some(pos + u64::from((got ^ expected).trailing_zeros() / 8));
        }
        pos += 8;
    }
    mismatch_bytes(key, pos, words.remainder())
}

fn mismatch_bytes(key: u64, offset: u64, buf: &[u8]) -> Option<u64> {
    buf.iter().enumerate().find_map(|(i, &b)| {
        let pos = offset + i as u64;
        (b != word(key, pos / 8)[(pos % 8) as usize]).then_some(pos)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use core::net::Ipv4Addr;

    #[test]
    fn pieces_at_any_offset_match_the_whole() {
        let key = 0x1234;
        let mut whole = vec![0u8; 1000];
        fill(key, 0, &mut whole);
        for (off, len) in [(0, 1), (3, 5), (7, 9), (8, 8), (13, 400), (999, 1)] {
            let mut piece = vec![0u8; len];
            fill(key, off as u64, &mut piece);
            assert_eq!(piece, whole[off..off + len]);
            assert_eq!(first_mismatch(key, off as u64, &piece), None);
        }
    }

    #[test]
    fn word_fast_path_matches_the_bytewise_definition() {
        for offset in 0..17u64 {
            for len in 0..41 {
                let (mut fast, mut slow) = (vec![0u8; len], vec![0u8; len]);
                fill(9, offset, &mut fast);
                fill_bytes(9, offset, &mut slow);
                assert_eq!(fast, slow, "offset {offset} len {len}");
                assert_eq!(first_mismatch(9, offset, &slow), None);
            }
        }
    }

    #[test]
    fn mismatch_reports_the_stream_offset_of_the_bad_byte() {
        for start in [1000u64, 1003] {
            for bad in [0usize, 1, 5, 37, 96, 99] {
                let mut buf = vec![0u8; 100];
                fill(5, start, &mut buf);
                buf[bad] ^= 0x10;
                assert_eq!(
                    first_mismatch(5, start, &buf),
                    Some(start + bad as u64),
                    "start {start} bad {bad}"
                );
            }
        }
        let mut buf = vec![0u8; 100];
        fill(5, 1000, &mut buf);
        // Right bytes at the wrong offset (a segment placed one byte off) are caught too.
        let mut shifted = vec![0u8; 100];
        fill(5, 1001, &mut shifted);
        assert!(first_mismatch(5, 1000, &shifted).is_some());
    }

    #[test]
    fn keys_differ_by_client_and_direction() {
        let a = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 40000);
        let b = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 40001);
        assert_ne!(
            stream_key(a, Flow::ClientToServer),
            stream_key(a, Flow::ServerToClient)
        );
        assert_ne!(
            stream_key(a, Flow::ClientToServer),
            stream_key(b, Flow::ClientToServer)
        );
        let (mut x, mut y) = ([0u8; 64], [0u8; 64]);
        fill(stream_key(a, Flow::ClientToServer), 0, &mut x);
        fill(stream_key(b, Flow::ClientToServer), 0, &mut y);
        assert_ne!(x, y);
    }
}
