//! The text of `SLUICE_INHERITED`: what each Sluice socket that survives an
//! `execve` is, for the new image to re-create it (`exec.rs`).
//!
//! One entry per socket, `;`-separated; each entry is seven `,`-separated
//! fields:
//!
//! ```text
//! FDS,KIND,NONBLOCK,ADDR,BACKLOG,REUSEPORT,OPTIONS
//! 3+7,L,1,0.0.0.0:8080,511,0,1.2.01000000+6.1.01000000
//! ```
//!
//! * `FDS`: the descriptors naming the socket, `+`-separated (a `dup`ed
//!   listener stays one socket, as in the kernel);
//! * `KIND`: `L` listener, `C` connection, `U` unconnected (not listening,
//!   not connected);
//! * `NONBLOCK`: the descriptor's `O_NONBLOCK` (0 or 1);
//! * `ADDR`: the bound address (`-`: not bound; required for `L`);
//! * `BACKLOG`: `listen`'s backlog (0 unless `L`);
//! * `REUSEPORT`: `SO_REUSEPORT` (0 or 1);
//! * `OPTIONS`: the options the program set, as `getsockopt` reports them,
//!   `+`-separated `LEVEL.NAME.HEXBYTES` (empty: none).
//!
//! Parsing is strict: an entry that does not follow this is skipped whole
//! (its descriptors stay plain eventfds), never guessed at.

use std::fmt::Write;
use std::net::SocketAddrV4;
use std::os::fd::RawFd;

use sluice_vcl::fork::ExecForm;

/// One handed-over socket.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handover {
    pub fds: Vec<RawFd>,
    pub form: ExecForm,
    pub nonblocking: bool,
    /// `(level, name, value)` in the order to apply them.
    pub options: Vec<(i32, i32, Vec<u8>)>,
}

/// The variable's name.
pub const VARIABLE: &str = "SLUICE_INHERITED";

/// Largest option value handed over (the stored options are small values).
const OPTION_MAX: usize = 256;

pub fn encode(sockets: &[Handover]) -> String {
    let mut out = String::new();
    for (i, h) in sockets.iter().enumerate() {
        if i > 0 {
            out.push(';');
        }
        for (j, fd) in h.fds.iter().enumerate() {
            let _ = write!(out, "{}{fd}", if j > 0 { "+" } else { "" });
        }
        let (kind, addr, backlog, reuse) = match h.form {
            ExecForm::Listener { addr, backlog, reuse_port } => ('L', Some(addr), backlog, reuse_port),
            ExecForm::Connection => ('C', None, 0, false),
            ExecForm::Unconnected { bound, reuse_port } => ('U', bound, 0, reuse_port),
        };
        let addr = addr.map_or_else(|| "-".to_string(), |a| a.to_string());
        let _ = write!(out, ",{kind},{},{addr},{backlog},{},", u8::from(h.nonblocking), u8::from(reuse));
        for (j, (level, name, value)) in h.options.iter().enumerate() {
            let _ = write!(out, "{}{level}.{name}.", if j > 0 { "+" } else { "" });
            for b in value {
                let _ = write!(out, "{b:02x}");
            }
        }
    }
    out
}

/// The entries of `text` that parse; see the module docs.
pub fn decode(text: &str) -> Vec<Handover> {
    text.split(';').filter(|e| !e.is_empty()).filter_map(decode_entry).collect()
}

fn decode_entry(entry: &str) -> Option<Handover> {
    let fields: Vec<&str> = entry.split(',').collect();
    let [fds, kind, nonblocking, addr, backlog, reuse, options] = fields[..] else { return None };
    let fds = fds.split('+').map(|f| f.parse::<RawFd>().ok().filter(|fd| *fd >= 0)).collect::<Option<Vec<_>>>()?;
    let addr = match addr {
        "-" => None,
        a => Some(a.parse::<SocketAddrV4>().ok()?),
    };
    let reuse_port = flag(reuse)?;
    let form = match kind {
        "L" => ExecForm::Listener { addr: addr?, backlog: backlog.parse().ok()?, reuse_port },
        "C" => ExecForm::Connection,
        "U" => ExecForm::Unconnected { bound: addr, reuse_port },
        _ => return None,
    };
    let options = match options {
        "" => Vec::new(),
        o => o.split('+').map(decode_option).collect::<Option<Vec<_>>>()?,
    };
    Some(Handover { fds, form, nonblocking: flag(nonblocking)?, options })
}

fn flag(text: &str) -> Option<bool> {
    match text {
        "0" => Some(false),
        "1" => Some(true),
        _ => None,
    }
}

fn decode_option(text: &str) -> Option<(i32, i32, Vec<u8>)> {
    let mut parts = text.split('.');
    let level = parts.next()?.parse().ok()?;
    let name = parts.next()?.parse().ok()?;
    let hex = parts.next()?;
    if parts.next().is_some() || hex.len() % 2 != 0 || hex.len() / 2 > OPTION_MAX {
        return None;
    }
    let value = (0..hex.len())
        .step_by(2)
        .map(|i| hex.get(i..i + 2).and_then(|b| u8::from_str_radix(b, 16).ok()))
        .collect::<Option<Vec<u8>>>()?;
    Some((level, name, value))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn samples() -> Vec<Handover> {
        let addr = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 8080);
        vec![
            Handover {
                fds: vec![3, 7],
                form: ExecForm::Listener { addr, backlog: 511, reuse_port: true },
                nonblocking: true,
                options: vec![(libc::SOL_SOCKET, libc::SO_KEEPALIVE, 1i32.to_ne_bytes().to_vec()), (6, 1, vec![])],
            },
            Handover { fds: vec![4], form: ExecForm::Connection, nonblocking: false, options: vec![] },
            Handover {
                fds: vec![5],
                form: ExecForm::Unconnected { bound: None, reuse_port: false },
                nonblocking: false,
                options: vec![],
            },
            Handover {
                fds: vec![6],
                form: ExecForm::Unconnected { bound: Some(addr), reuse_port: false },
                nonblocking: true,
                options: vec![],
            },
        ]
    }

    #[test]
    fn entries_round_trip() {
        let sockets = samples();
        let text = encode(&sockets);
        assert!(text.starts_with("3+7,L,1,10.0.0.2:8080,511,1,1.9.01000000+6.1.;4,C,0,-,0,0,;"), "{text}");
        assert_eq!(decode(&text), sockets);
        assert!(decode("").is_empty());
    }

    #[test]
    fn malformed_entries_are_skipped_whole() {
        let good = "4,C,0,-,0,0,";
        for bad in [
            "x,C,0,-,0,0,",
            "-1,C,0,-,0,0,",
            "5,L,0,-,511,0,",
            "5,L,0,1.2.3.4:80,many,0,",
            "5,Q,0,-,0,0,",
            "5,C,2,-,0,0,",
            "5,C,0,-,0,0",
            "5,C,0,-,0,0,,",
            "5,U,0,1.2.3.4,0,0,",
            "5,C,0,-,0,0,1.2.0",
            "5,C,0,-,0,0,1.2.zz",
            "5,C,0,-,0,0,1.2",
        ] {
            let decoded = decode(&format!("{bad};{good}"));
            assert_eq!(decoded.len(), 1, "{bad}");
            assert_eq!(decoded[0].fds, [4], "{bad}");
        }
    }
}
