//! Messages on the control socket (design §2.1): attach and admin commands.
//!
//! The control socket is `AF_UNIX, SOCK_SEQPACKET`: one message per datagram,
//! descriptors passed with `SCM_RIGHTS` (see [`crate::unix_socket`]). Every
//! message starts with a 12-byte header
//! `magic u16 = 0x534C | version u8 | kind u8 | body_len u32 | request_id u32`,
//! little-endian, then a body per kind. The codec is hand-written so nothing
//! generic parses untrusted input, and [`Message::decode`] checks the
//! header's length against the datagram's.
//!
//! | kind | direction | body | descriptors |
//! |---|---|---|---|
//! | `Hello` | client → daemon | pid u32, role u8 | – |
//! | `AttachOk` | daemon → app | app worker id u32, geometry (24 B) | down memfd, up memfd, app wake eventfd, one doorbell eventfd per daemon worker |
//! | `Admin` | client → daemon | command u8, json u8 | – |
//! | `Text` | daemon → admin | last u8, UTF-8 bytes | – |
//! | `Error` | daemon → client | errno i32, UTF-8 message | – |
//! | `CaptureFrame` | daemon → admin | timestamp ns u64, original length u32, frame bytes | – |

use crate::layout::{Geometry, GeometryError, GEOMETRY_BYTES};

/// `b"SL"` as a little-endian u16.
pub const MAGIC: u16 = 0x534C;
/// Control protocol version.
pub const VERSION: u8 = 1;
/// Header bytes.
pub const HEADER_BYTES: usize = 12;
/// Largest message (header included): admin text comes in chunks below it.
pub const MAX_MESSAGE: usize = 64 * 1024;
/// Largest `Text` chunk.
pub const MAX_TEXT_CHUNK: usize = MAX_MESSAGE - HEADER_BYTES - 1;

/// What a connecting client is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// An app worker: gets segments.
    App = 1,
    /// `sluice stats` and friends: admin commands only.
    Admin = 2,
}

/// Admin commands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AdminCommand {
    Stats = 1,
    Sessions = 2,
    /// Stream every frame the workers receive and send as `CaptureFrame`s
    /// until the client hangs up.
    Capture = 3,
}

/// One control message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    Hello { pid: u32, role: Role },
    AttachOk { app_worker_id: u32, geometry: Geometry },
    Admin { command: AdminCommand, json: bool },
    Text { last: bool, text: String },
    Error { errno: i32, message: String },
    /// One captured frame: wall-clock time (ns since the Unix epoch), its
    /// length on the wire, and its bytes (at most [`MAX_CAPTURE_BYTES`]).
    CaptureFrame { timestamp_ns: u64, orig_len: u32, data: Vec<u8> },
}

/// Most bytes of a frame a `CaptureFrame` carries (the snap length).
pub const MAX_CAPTURE_BYTES: usize = MAX_MESSAGE - HEADER_BYTES - 12;

/// Why a datagram is not a valid message.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ControlError {
    Truncated,
    BadMagic,
    BadVersion(u8),
    UnknownKind(u8),
    /// The header's body length disagrees with the datagram.
    BadLength,
    BadField(&'static str),
    Geometry(GeometryError),
}

impl std::fmt::Display for ControlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ControlError::Truncated => write!(f, "message shorter than its header"),
            ControlError::BadMagic => write!(f, "not a Sluice control message"),
            ControlError::BadVersion(v) => write!(f, "control protocol version {v}, expected {VERSION}"),
            ControlError::UnknownKind(k) => write!(f, "unknown message kind {k}"),
            ControlError::BadLength => write!(f, "body length disagrees with the message"),
            ControlError::BadField(name) => write!(f, "invalid field {name}"),
            ControlError::Geometry(e) => write!(f, "invalid geometry: {e}"),
        }
    }
}

impl std::error::Error for ControlError {}

mod kind {
    pub const HELLO: u8 = 1;
    pub const ATTACH_OK: u8 = 2;
    pub const ADMIN: u8 = 3;
    pub const TEXT: u8 = 4;
    pub const ERROR: u8 = 5;
    pub const CAPTURE_FRAME: u8 = 6;
}

fn u32_at(b: &[u8], at: usize) -> Result<u32, ControlError> {
    b.get(at..at + 4)
        .map(|s| u32::from_le_bytes([s[0], s[1], s[2], s[3]]))
        .ok_or(ControlError::BadLength)
}

fn byte_at(b: &[u8], at: usize) -> Result<u8, ControlError> {
    b.get(at).copied().ok_or(ControlError::BadLength)
}

fn text_from(b: &[u8], field: &'static str) -> Result<String, ControlError> {
    String::from_utf8(b.to_vec()).map_err(|_| ControlError::BadField(field))
}

impl Message {
    /// Encodes with `request_id` in the header. `Text`/`Error` bodies longer
    /// than a message are cut (at a character boundary) to fit.
    pub fn encode(&self, request_id: u32) -> Vec<u8> {
        let (k, body): (u8, Vec<u8>) = match self {
            Message::Hello { pid, role } => {
                let mut b = pid.to_le_bytes().to_vec();
                b.push(*role as u8);
                (kind::HELLO, b)
            }
            Message::AttachOk { app_worker_id, geometry } => {
                let mut b = app_worker_id.to_le_bytes().to_vec();
                b.extend_from_slice(&geometry.encode());
                (kind::ATTACH_OK, b)
            }
            Message::Admin { command, json } => (kind::ADMIN, vec![*command as u8, u8::from(*json)]),
            Message::Text { last, text } => {
                let mut b = vec![u8::from(*last)];
                b.extend_from_slice(truncate(text, MAX_TEXT_CHUNK).as_bytes());
                (kind::TEXT, b)
            }
            Message::Error { errno, message } => {
                let mut b = errno.to_le_bytes().to_vec();
                b.extend_from_slice(truncate(message, MAX_TEXT_CHUNK - 3).as_bytes());
                (kind::ERROR, b)
            }
            Message::CaptureFrame { timestamp_ns, orig_len, data } => {
                let mut b = timestamp_ns.to_le_bytes().to_vec();
                b.extend_from_slice(&orig_len.to_le_bytes());
                b.extend_from_slice(&data[..data.len().min(MAX_CAPTURE_BYTES)]);
                (kind::CAPTURE_FRAME, b)
            }
        };
        let mut out = Vec::with_capacity(HEADER_BYTES + body.len());
        out.extend_from_slice(&MAGIC.to_le_bytes());
        out.push(VERSION);
        out.push(k);
        out.extend_from_slice(&(body.len() as u32).to_le_bytes());
        out.extend_from_slice(&request_id.to_le_bytes());
        out.extend_from_slice(&body);
        out
    }

    /// Decodes one datagram into `(request_id, message)`.
    pub fn decode(datagram: &[u8]) -> Result<(u32, Message), ControlError> {
        if datagram.len() < HEADER_BYTES {
            return Err(ControlError::Truncated);
        }
        if u16::from_le_bytes([datagram[0], datagram[1]]) != MAGIC {
            return Err(ControlError::BadMagic);
        }
        if datagram[2] != VERSION {
            return Err(ControlError::BadVersion(datagram[2]));
        }
        let k = datagram[3];
        let body_len = u32_at(datagram, 4)? as usize;
        let request_id = u32_at(datagram, 8)?;
        let body = &datagram[HEADER_BYTES..];
        if body.len() != body_len {
            return Err(ControlError::BadLength);
        }
        let msg = match k {
            kind::HELLO => {
                if body.len() != 5 {
                    return Err(ControlError::BadLength);
                }
                let role = match body[4] {
                    1 => Role::App,
                    2 => Role::Admin,
                    _ => return Err(ControlError::BadField("role")),
                };
                Message::Hello { pid: u32_at(body, 0)?, role }
            }
            kind::ATTACH_OK => {
                if body.len() != 4 + GEOMETRY_BYTES {
                    return Err(ControlError::BadLength);
                }
                Message::AttachOk {
                    app_worker_id: u32_at(body, 0)?,
                    geometry: Geometry::decode(&body[4..]).map_err(ControlError::Geometry)?,
                }
            }
            kind::ADMIN => {
                if body.len() != 2 {
                    return Err(ControlError::BadLength);
                }
                let command = match body[0] {
                    1 => AdminCommand::Stats,
                    2 => AdminCommand::Sessions,
                    3 => AdminCommand::Capture,
                    _ => return Err(ControlError::BadField("command")),
                };
                let json = match body[1] {
                    0 => false,
                    1 => true,
                    _ => return Err(ControlError::BadField("json")),
                };
                Message::Admin { command, json }
            }
            kind::TEXT => Message::Text {
                last: match byte_at(body, 0)? {
                    0 => false,
                    1 => true,
                    _ => return Err(ControlError::BadField("last")),
                },
                text: text_from(&body[1..], "text")?,
            },
            kind::ERROR => Message::Error {
                errno: u32_at(body, 0)? as i32,
                message: text_from(&body[4..], "message")?,
            },
            kind::CAPTURE_FRAME => {
                if body.len() < 12 {
                    return Err(ControlError::BadLength);
                }
                let timestamp_ns = u64::from(u32_at(body, 0)?) | (u64::from(u32_at(body, 4)?) << 32);
                Message::CaptureFrame { timestamp_ns, orig_len: u32_at(body, 8)?, data: body[12..].to_vec() }
            }
            other => return Err(ControlError::UnknownKind(other)),
        };
        Ok((request_id, msg))
    }
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character
/// boundary.
fn truncate(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// Splits admin output into `Text` messages that each fit in a datagram.
pub fn text_chunks(text: &str) -> Vec<Message> {
    let mut out = Vec::new();
    let mut rest = text;
    loop {
        let chunk = truncate(rest, MAX_TEXT_CHUNK);
        rest = &rest[chunk.len()..];
        out.push(Message::Text { last: rest.is_empty(), text: chunk.to_string() });
        if rest.is_empty() {
            return out;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        let geometry = Geometry { workers: 1, event_cap: 1024, request_cap: 256, max_sessions: 16, rx_fifo: 65536, tx_fifo: 65536 };
        for m in [
            Message::Hello { pid: 42, role: Role::App },
            Message::AttachOk { app_worker_id: 3, geometry },
            Message::Admin { command: AdminCommand::Sessions, json: true },
            Message::Text { last: false, text: "héllo".into() },
            Message::Error { errno: 13, message: "port 80 needs CAP_NET_BIND_SERVICE".into() },
            Message::Admin { command: AdminCommand::Capture, json: false },
            Message::CaptureFrame { timestamp_ns: 1_700_000_000_123_456_789, orig_len: 60, data: vec![0xab; 60] },
        ] {
            assert_eq!(Message::decode(&m.encode(77)), Ok((77, m.clone())));
        }
    }

    #[test]
    fn malformed_datagrams_are_refused() {
        let good = Message::Hello { pid: 1, role: Role::Admin }.encode(0);
        assert_eq!(Message::decode(&good[..5]), Err(ControlError::Truncated));
        assert_eq!(Message::decode(&good[..good.len() - 1]), Err(ControlError::BadLength));
        let mut bad = good.clone();
        bad[0] = 0;
        assert_eq!(Message::decode(&bad), Err(ControlError::BadMagic));
        let mut bad = good.clone();
        bad[3] = 99;
        assert_eq!(Message::decode(&bad), Err(ControlError::UnknownKind(99)));
        let mut bad = good;
        *bad.last_mut().unwrap() = 9;
        assert_eq!(Message::decode(&bad), Err(ControlError::BadField("role")));
    }

    #[test]
    fn long_text_is_chunked_on_character_boundaries() {
        let text = "é".repeat(MAX_TEXT_CHUNK);
        let chunks = text_chunks(&text);
        assert!(chunks.len() >= 2);
        let mut joined = String::new();
        for (i, c) in chunks.iter().enumerate() {
            let bytes = c.encode(1);
            assert!(bytes.len() <= MAX_MESSAGE);
            match Message::decode(&bytes).unwrap().1 {
                Message::Text { last, text } => {
                    assert_eq!(last, i + 1 == chunks.len());
                    joined.push_str(&text);
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(joined, text);
    }
}
