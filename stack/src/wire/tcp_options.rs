//! Parsing and emission of the TCP options this stack understands: MSS
//! (RFC 9293 §3.2), window scale and timestamps (RFC 7323), SACK-permitted and
//! SACK (RFC 2018).

use super::view::be32;
use super::tcp::{SackBlocks, TcpOptions};
use crate::tcp::seq::SeqNum;

/// Option kinds (IANA "TCP Option Kind Numbers").
mod kind {
    pub const END: u8 = 0;
    pub const NOP: u8 = 1;
    pub const MSS: u8 = 2;
    pub const WINDOW_SCALE: u8 = 3;
    pub const SACK_PERMITTED: u8 = 4;
    pub const SACK: u8 = 5;
    pub const TIMESTAMPS: u8 = 8;
}

/// Option lengths, kind and length bytes included.
mod len {
    pub const MSS: usize = 4;
    pub const WINDOW_SCALE: usize = 3;
    pub const SACK_PERMITTED: usize = 2;
    pub const SACK_BLOCK: usize = 8;
    pub const TIMESTAMPS: usize = 10;
}

/// The data offset field is 4 bits of 32-bit words: 60 bytes of header, 40 of options.
pub const MAX_OPTIONS_LEN: usize = 40;

/// The largest shift a receiver may use (RFC 7323 §2.3).
pub const MAX_WINDOW_SCALE: u8 = 14;

impl TcpOptions {
    /// Parses the option area (the bytes between the fixed header and the
    /// data offset) as Linux's `tcp_parse_options` does, so a segment is never
    /// dropped for its options (RFC 9293 §3.1 asks that illegal option lengths
    /// be handled without crashing; RFC 1122 §4.2.2.5 that any option be
    /// accepted): unknown kinds and known kinds with the wrong length are
    /// skipped by their length; a missing, zero or one length byte, or an
    /// option running past the area, ends parsing (there is no way to
    /// resynchronise) and keeps what was parsed before it.
    pub fn parse(mut area: &[u8]) -> TcpOptions {
        // The layout of nearly every segment once timestamps are agreed
        // (RFC 7323 Appendix A: NOP, NOP, TS), matched in one comparison as
        // Linux's `tcp_parse_aligned_timestamp` does; the result is what the
        // general loop below produces for these bytes.
        if let [kind::NOP, kind::NOP, kind::TIMESTAMPS, 10, ts @ ..] = area {
            if ts.len() == 8 {
                return TcpOptions { timestamps: Some((be32(&ts[..4]), be32(&ts[4..]))), ..TcpOptions::default() };
            }
        }
        let mut options = TcpOptions::default();
        while let Some((&option_kind, rest)) = area.split_first() {
            match option_kind {
                kind::END => break,
                kind::NOP => {
                    area = rest;
                    continue;
                }
                _ => {}
            }
            let Some(&option_len) = rest.first() else { break };
            let option_len = option_len as usize;
            if option_len < 2 || option_len > area.len() {
                break;
            }
            let (option, after) = area.split_at(option_len);
            options.take(option_kind, &option[2..]);
            area = after;
        }
        options
    }

    /// Records one well-formed option of `option_kind` with `body` (the bytes
    /// after kind and length); a known option of the wrong length is ignored.
    fn take(&mut self, option_kind: u8, body: &[u8]) {
        match (option_kind, body.len() + 2) {
            (kind::MSS, len::MSS) => self.mss = Some(u16::from_be_bytes([body[0], body[1]])),
            // RFC 7323 §2.3: log a shift above 14 and use 14.
            (kind::WINDOW_SCALE, len::WINDOW_SCALE) => self.window_scale = Some(body[0].min(MAX_WINDOW_SCALE)),
            (kind::SACK_PERMITTED, len::SACK_PERMITTED) => self.sack_permitted = true,
            (kind::SACK, _) => {
                let blocks = body.chunks_exact(len::SACK_BLOCK);
                if body.is_empty() || !blocks.remainder().is_empty() {
                    return;
                }
                // Only 4 blocks fit the option space; push ignores extras.
                let mut sack = SackBlocks::default();
                for block in blocks {
                    sack.push(SeqNum(be32(&block[..4])), SeqNum(be32(&block[4..])));
                }
                self.sack = sack;
            }
            (kind::TIMESTAMPS, len::TIMESTAMPS) => self.timestamps = Some((be32(&body[..4]), be32(&body[4..]))),
            _ => {}
        }
    }

    /// Bytes of everything but the SACK blocks, laid out as Linux does
    /// (`tcp_options_write`), each item padded with NOPs to 32 bits.
    fn fixed_len(&self) -> usize {
        let mss = if self.mss.is_some() { 4 } else { 0 };
        let ts_and_sack_perm = match (self.timestamps.is_some(), self.sack_permitted) {
            (true, _) => 12,
            (false, true) => 4,
            (false, false) => 0,
        };
        let window_scale = if self.window_scale.is_some() { 4 } else { 0 };
        mss + ts_and_sack_perm + window_scale
    }

    /// How many SACK blocks [`Self::emit`] writes: as many as fit the 40-byte
    /// option space after the other options (3 with timestamps, RFC 2018 §3).
    pub fn sack_blocks_emitted(&self) -> usize {
        if self.sack.is_empty() {
            return 0;
        }
        // Two NOPs, kind and length take 4 bytes before the blocks.
        let room = MAX_OPTIONS_LEN.saturating_sub(self.fixed_len() + 4);
        self.sack.len().min(room / len::SACK_BLOCK)
    }

    /// Length of the option area [`Self::emit`] writes; always a multiple of 4.
    pub fn emitted_len(&self) -> usize {
        let blocks = self.sack_blocks_emitted();
        self.fixed_len() + if blocks > 0 { 4 + blocks * len::SACK_BLOCK } else { 0 }
    }

    /// Writes the options in Linux's order — MSS; SACK-permitted and
    /// timestamps; window scale; SACK blocks — padded with NOPs so each item
    /// is 32-bit aligned. Returns the bytes written ([`Self::emitted_len`]);
    /// `out` must be at least that long.
    pub fn emit(&self, out: &mut [u8]) -> usize {
        self.emit_summed(out).0
    }

    /// [`Self::emit`], also returning the ones-complement sum of the bytes
    /// written as 16-bit words (unfolded), computed from the values rather
    /// than read back (see `TcpRepr::emit`). Every item is a whole number of
    /// 16-bit words, so the words line up with the option area's.
    pub(crate) fn emit_summed(&self, out: &mut [u8]) -> (usize, u32) {
        let mut w = Writer { out, at: 0, sum: 0 };
        if let Some(mss) = self.mss {
            w.put(&[kind::MSS, len::MSS as u8]);
            w.put(&mss.to_be_bytes());
        }
        match (self.timestamps, self.sack_permitted) {
            (Some((tsval, tsecr)), sack_permitted) => {
                if sack_permitted {
                    w.put(&[kind::SACK_PERMITTED, len::SACK_PERMITTED as u8]);
                } else {
                    w.put(&[kind::NOP, kind::NOP]);
                }
                w.put(&[kind::TIMESTAMPS, len::TIMESTAMPS as u8]);
                w.put(&tsval.to_be_bytes());
                w.put(&tsecr.to_be_bytes());
            }
            (None, true) => w.put(&[kind::NOP, kind::NOP, kind::SACK_PERMITTED, len::SACK_PERMITTED as u8]),
            (None, false) => {}
        }
        if let Some(shift) = self.window_scale {
            w.put(&[kind::NOP, kind::WINDOW_SCALE, len::WINDOW_SCALE as u8, shift]);
        }
        let blocks = self.sack_blocks_emitted();
        if blocks > 0 {
            w.put(&[kind::NOP, kind::NOP, kind::SACK, (2 + blocks * len::SACK_BLOCK) as u8]);
            for &(left, right) in &self.sack.as_slice()[..blocks] {
                w.put(&left.0.to_be_bytes());
                w.put(&right.0.to_be_bytes());
            }
        }
        (w.at, w.sum)
    }
}

struct Writer<'a> {
    out: &'a mut [u8],
    at: usize,
    /// Sum of the big-endian 16-bit words written so far.
    sum: u32,
}

impl Writer<'_> {
    /// Appends `bytes` (an even number: every option item here is).
    fn put(&mut self, bytes: &[u8]) {
        debug_assert_eq!(bytes.len() & 1, 0, "option items are whole 16-bit words");
        self.out[self.at..self.at + bytes.len()].copy_from_slice(bytes);
        self.at += bytes.len();
        for pair in bytes.chunks_exact(2) {
            self.sum += u16::from_be_bytes([pair[0], pair[1]]) as u32;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sack(blocks: &[(u32, u32)]) -> SackBlocks {
        let mut s = SackBlocks::default();
        for &(l, r) in blocks {
            s.push(SeqNum(l), SeqNum(r));
        }
        s
    }

    #[test]
    fn parses_linux_syn_options() {
        let area = [2, 4, 5, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7];
        let o = TcpOptions::parse(&area);
        assert_eq!(o.mss, Some(1460));
        assert!(o.sack_permitted);
        assert_eq!(o.timestamps, Some((1, 0)));
        assert_eq!(o.window_scale, Some(7));
        assert!(o.sack.is_empty());
    }

    #[test]
    fn aligned_timestamps_parse_like_any_other_layout() {
        let aligned = [1, 1, 8, 10, 0, 0, 1, 2, 0xfe, 0xdc, 0xba, 0x98];
        let trailing_nops = [8, 10, 0, 0, 1, 2, 0xfe, 0xdc, 0xba, 0x98, 1, 1];
        let expected = TcpOptions { timestamps: Some((0x102, 0xfedc_ba98)), ..Default::default() };
        assert_eq!(TcpOptions::parse(&aligned), expected);
        assert_eq!(TcpOptions::parse(&trailing_nops), expected);
        // Same prefix, more options after it: the general parser handles them.
        let with_sack = [1, 1, 8, 10, 0, 0, 1, 2, 0xfe, 0xdc, 0xba, 0x98, 1, 1, 5, 10, 0, 0, 0, 5, 0, 0, 0, 9];
        let parsed = TcpOptions::parse(&with_sack);
        assert_eq!(parsed.timestamps, expected.timestamps);
        assert_eq!(parsed.sack, sack(&[(5, 9)]));
        // Same prefix, truncated: the timestamps option runs past the area,
        // which ends parsing with nothing recorded, as in the general loop.
        assert_eq!(TcpOptions::parse(&aligned[..10]), TcpOptions::default());
    }

    #[test]
    fn window_scale_is_clamped() {
        let o = TcpOptions::parse(&[3, 3, 15, 0]);
        assert_eq!(o.window_scale, Some(14));
        assert_eq!(TcpOptions::parse(&[3, 3, 255, 0]).window_scale, Some(14));
    }

    #[test]
    fn unknown_options_are_skipped_and_end_stops() {
        // Kind 30 (MPTCP) of length 6, then MSS, then END followed by garbage.
        let area = [30, 6, 1, 2, 3, 4, 2, 4, 0x05, 0x78, 0, 0xff, 0xff, 0xff];
        let o = TcpOptions::parse(&area);
        assert_eq!(o.mss, Some(1400));
    }

    #[test]
    fn more_than_four_sack_blocks_keep_the_first_four() {
        let mut area = vec![5, 2 + 5 * 8];
        for i in 0..5u32 {
            area.extend((i * 10).to_be_bytes());
            area.extend((i * 10 + 5).to_be_bytes());
        }
        let o = TcpOptions::parse(&area);
        assert_eq!(o.sack, sack(&[(0, 5), (10, 15), (20, 25), (30, 35)]));
    }

    /// Linux (`tcp_parse_options`) skips a known option of the wrong length
    /// and goes on with the next one.
    #[test]
    fn known_option_of_the_wrong_length_is_skipped() {
        let ts = [8, 10, 0, 0, 0, 7, 0, 0, 0, 9];
        let cases: &[&[u8]] = &[
            &[2, 3, 5],                   // MSS of the wrong length
            &[3, 4, 7, 0],                // window scale of the wrong length
            &[4, 3, 0],                   // SACK-permitted of the wrong length
            &[5, 9, 0, 0, 0, 0, 0, 0, 0], // SACK with half a block
            &[5, 2],                      // SACK with no block
            &[8, 8, 0, 0, 0, 0, 0, 0],    // short timestamps
        ];
        for bad in cases {
            let area = [*bad, &ts[..]].concat();
            let o = TcpOptions::parse(&area);
            assert_eq!(o, TcpOptions { timestamps: Some((7, 9)), ..Default::default() }, "{area:?}");
        }
    }

    /// A length that cannot be followed ends parsing; what came before stays.
    #[test]
    fn unusable_length_ends_parsing_and_keeps_earlier_options() {
        let cases: &[&[u8]] = &[
            &[2],           // kind without length byte
            &[2, 0, 0, 0],  // zero length
            &[30, 1, 0, 0], // length one
            &[30, 9, 0, 0], // runs past the area
        ];
        for bad in cases {
            let area = [&[1, 3, 3, 7][..], *bad, &[2, 4, 5, 0xb4][..]].concat();
            let o = TcpOptions::parse(&area);
            assert_eq!(o, TcpOptions { window_scale: Some(7), ..Default::default() }, "{area:?}");
        }
    }

    #[test]
    fn sack_blocks_are_truncated_to_fit() {
        let four = sack(&[(1, 2), (3, 4), (5, 6), (7, 8)]);
        let alone = TcpOptions { sack: four, ..Default::default() };
        assert_eq!(alone.sack_blocks_emitted(), 4);
        assert_eq!(alone.emitted_len(), 36);
        let with_ts = TcpOptions { sack: four, timestamps: Some((1, 2)), ..Default::default() };
        assert_eq!(with_ts.sack_blocks_emitted(), 3);
        assert_eq!(with_ts.emitted_len(), 40);
        let full_syn = TcpOptions {
            mss: Some(1460),
            window_scale: Some(7),
            sack_permitted: true,
            timestamps: Some((1, 2)),
            sack: four,
        };
        assert_eq!(full_syn.sack_blocks_emitted(), 2);
        assert_eq!(full_syn.emitted_len(), 40);

        let mut out = [0u8; 40];
        assert_eq!(with_ts.emit(&mut out), 40);
        let parsed = TcpOptions::parse(&out);
        assert_eq!(parsed.sack, sack(&[(1, 2), (3, 4), (5, 6)]));
        assert_eq!(parsed.timestamps, Some((1, 2)));
    }

    #[test]
    fn emits_linux_ack_layout() {
        let o = TcpOptions { timestamps: Some((5, 6)), sack: sack(&[(100, 200)]), ..Default::default() };
        let mut out = [0u8; 40];
        let n = o.emit(&mut out);
        assert_eq!(&out[..n], &[1, 1, 8, 10, 0, 0, 0, 5, 0, 0, 0, 6, 1, 1, 5, 10, 0, 0, 0, 100, 0, 0, 0, 200]);
        let sack_perm_only = TcpOptions { sack_permitted: true, ..Default::default() };
        assert_eq!(sack_perm_only.emit(&mut out), 4);
        assert_eq!(&out[..4], &[1, 1, 4, 2]);
    }
}
