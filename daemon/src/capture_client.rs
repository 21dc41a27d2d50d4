//! The client side of `sluice capture`: asks the daemon for its frame
//! stream (`Admin{Capture}`) and writes each `CaptureFrame` to a pcap file
//! (`pcap-file`), until SIGINT/SIGTERM, the frame count, or the daemon
//! hanging up. Prints `capturing to FILE` once the daemon has started
//! recording. The file is created by this process, so it belongs to the
//! user who ran the command.

use std::fs::File;
use std::io::{self, BufWriter};
use std::os::fd::AsFd;
use std::path::Path;
use std::time::Duration;

use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::DataLink;
use sluice_shm::control::{AdminCommand, Message, Role, MAX_CAPTURE_BYTES, MAX_MESSAGE};
use sluice_shm::unix_socket;

use crate::control::signals::{TerminationSignals, Wake};

/// Captures into `output` until stopped; returns the number of frames written.
pub fn run(socket: &Path, output: &Path, count: Option<u64>) -> io::Result<u64> {
    // Blocked before any thread exists, so Ctrl-C ends the capture cleanly
    // (the pcap buffer is flushed) instead of killing the process.
    let signals = TerminationSignals::block()?;
    let sock = unix_socket::connect(socket)
        .map_err(|e| io::Error::new(e.kind(), format!("cannot reach the daemon at {}: {e}", socket.display())))?;
    let hello = Message::Hello { pid: std::process::id(), role: Role::Admin };
    unix_socket::send(sock.as_fd(), &hello.encode(1), &[])?;
    unix_socket::send(sock.as_fd(), &Message::Admin { command: AdminCommand::Capture, json: false }.encode(2), &[])?;

    let file = File::create(output).map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", output.display())))?;
    let header = PcapHeader { snaplen: MAX_CAPTURE_BYTES as u32, datalink: DataLink::ETHERNET, ..Default::default() };
    let mut writer = PcapWriter::with_header(BufWriter::new(file), header).map_err(io::Error::other)?;
    let mut buf = vec![0u8; MAX_MESSAGE];
    let mut written = 0u64;
    while count.is_none_or(|c| written < c) {
        if let Wake::Signal(_) = signals.wait(sock.as_fd())? {
            break;
        }
        let (n, _fds) = unix_socket::recv(sock.as_fd(), &mut buf, 0)?;
        if n == 0 {
            break; // the daemon stopped
        }
        match Message::decode(&buf[..n]).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e.to_string()))? {
            (_, Message::CaptureFrame { timestamp_ns, orig_len, data }) => {
                let packet = PcapPacket::new(Duration::from_nanos(timestamp_ns), orig_len, &data);
                writer.write_packet(&packet).map_err(io::Error::other)?;
                written += 1;
            }
            (_, Message::Text { .. }) => {
                // The daemon records from now on; tell whoever waits for it.
                println!("capturing to {}", output.display());
                let _ = std::io::Write::flush(&mut std::io::stdout());
            }
            (_, Message::Error { errno, message }) => {
                return Err(io::Error::new(io::Error::from_raw_os_error(errno).kind(), message));
            }
            (_, other) => {
                return Err(io::Error::new(io::ErrorKind::InvalidData, format!("unexpected message {other:?}")));
            }
        }
    }
    writer.into_writer().into_inner().map_err(|e| e.into_error())?.sync_all()?;
    Ok(written)
}
