//! `LineBuf`: one output line formatted on the stack, for the trace and log
//! writers, which must not allocate (they run inside hooks, possibly while the
//! allocator itself is calling us).

use std::fmt;

/// Longest line written; longer lines are cut and end in `...`.
pub const LINE_MAX: usize = 512;

/// A line being formatted into a fixed buffer.
pub struct LineBuf {
    bytes: [u8; LINE_MAX],
    len: usize,
    truncated: bool,
}

impl LineBuf {
    pub fn new() -> LineBuf {
        LineBuf { bytes: [0; LINE_MAX], len: 0, truncated: false }
    }

    /// The finished line: what was written, `...` if it was cut, and `\n`.
    pub fn finish(&mut self) -> &[u8] {
        const TAIL: &[u8] = b"...\n";
        if self.truncated {
            self.len = self.len.min(LINE_MAX - TAIL.len());
            self.bytes[self.len..self.len + TAIL.len()].copy_from_slice(TAIL);
            self.len += TAIL.len();
        } else if self.len == LINE_MAX {
            self.bytes[LINE_MAX - 1] = b'\n';
        } else {
            self.bytes[self.len] = b'\n';
            self.len += 1;
        }
        &self.bytes[..self.len]
    }
}

impl Default for LineBuf {
    fn default() -> LineBuf {
        LineBuf::new()
    }
}

impl fmt::Write for LineBuf {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // One byte stays free for the newline.
        let room = LINE_MAX - 1 - self.len;
        let take = s.len().min(room);
        self.bytes[self.len..self.len + take].copy_from_slice(&s.as_bytes()[..take]);
        self.len += take;
        if take < s.len() {
            self.truncated = true;
        }
        Ok(())
    }
}

/// Shows bytes from the environment as text without allocating: valid UTF-8
/// as is, anything else as `\xNN` escapes.
pub struct ShowBytes<'a>(pub &'a [u8]);

impl fmt::Display for ShowBytes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for chunk in self.0.utf8_chunks() {
            f.write_str(chunk.valid())?;
            for byte in chunk.invalid() {
                write!(f, "\\x{byte:02x}")?;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt::Write;

    #[test]
    fn bytes_show_as_text_with_escapes() {
        assert_eq!(ShowBytes(b"ab\xffc").to_string(), "ab\\xffc");
    }

    #[test]
    fn short_lines_get_a_newline() {
        let mut line = LineBuf::new();
        write!(line, "read({}) = {}", 3, -1).unwrap();
        assert_eq!(line.finish(), b"read(3) = -1\n");
    }

    #[test]
    fn long_lines_are_cut_visibly() {
        let mut line = LineBuf::new();
        for _ in 0..100 {
            line.write_str("0123456789").unwrap();
        }
        let out = line.finish();
        assert_eq!(out.len(), LINE_MAX);
        assert!(out.ends_with(b"...\n"));
        assert!(out.starts_with(b"0123456789"));
    }
}
