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
    let mut pos = offset;
    let mut rest = buf;
    while !rest.is_empty() {
        let w = word(key, pos / 8);
        let start = (pos % 8) as usize;
        let n = (8 - start).min(rest.len());
        rest[..n].copy_from_slice(&w[start..start + n]);
        rest = &mut rest[n..];
        pos += n as u64;
    }
}

/// The stream offset of the first byte of `buf` (which claims to be bytes
/// `offset..` of stream `key`) that does not match, if any.
pub fn first_mismatch(key: u64, offset: u64, buf: &[u8]) -> Option<u64> {
    let mut pos = offset;
    let mut rest = buf;
    while !rest.is_empty() {
        let w = word(key, pos / 8);
        let start = (pos % 8) as usize;
        let n = (8 - start).min(rest.len());
        if rest[..n] != w[start..start + n] {
            let i = (0..n).find(|&i| rest[i] != w[start + i]).unwrap_or(0);
            return Some(pos + i as u64);
        }
        rest = &rest[n..];
        pos += n as u64;
    }
    None
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
    fn mismatch_reports_the_stream_offset_of_the_bad_byte() {
        let mut buf = vec![0u8; 100];
        fill(5, 1000, &mut buf);
        buf[37] ^= 0x10;
        assert_eq!(first_mismatch(5, 1000, &buf), Some(1037));
        // Right bytes at the wrong offset (a segment placed one byte off) are caught too.
        let mut shifted = vec![0u8; 100];
        fill(5, 1001, &mut shifted);
        assert!(first_mismatch(5, 1000, &shifted).is_some());
    }

    #[test]
    fn keys_differ_by_client_and_direction() {
        let a = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 40000);
        let b = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 40001);
        assert_ne!(stream_key(a, Flow::ClientToServer), stream_key(a, Flow::ServerToClient));
        assert_ne!(stream_key(a, Flow::ClientToServer), stream_key(b, Flow::ClientToServer));
        let (mut x, mut y) = ([0u8; 64], [0u8; 64]);
        fill(stream_key(a, Flow::ClientToServer), 0, &mut x);
        fill(stream_key(b, Flow::ClientToServer), 0, &mut y);
        assert_ne!(x, y);
    }
}
