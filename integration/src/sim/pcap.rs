//! Packet captures of the simulated wire, for inspecting a failing case in
//! Wireshark/tcpdump. Three files per run:
//! `<name>.sent.pcap` (every frame a host put on its cable, as sent),
//! `<name>.delivered.pcap` (every frame a host received, as received: corrupted
//! frames and duplicates included) and `<name>.dropped.pcap` (frames lost,
//! tail-dropped or filtered). Timestamps are the virtual clock.
//!
//! Enabled by `SLUICE_SIM_PCAP=<dir>`; `SLUICE_SIM_PCAP_SNAPLEN=<bytes>`
//! truncates captured frames (headers are all that is usually needed, and
//! full captures of a multi-gigabyte run are multi-gigabyte).

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::{DataLink, Endianness, TsResolution};

use super::trace::{Tap, WireEvent, WireEventKind};

pub const PCAP_DIR_ENV: &str = "SLUICE_SIM_PCAP";
pub const PCAP_SNAPLEN_ENV: &str = "SLUICE_SIM_PCAP_SNAPLEN";
const MAX_SNAPLEN: u32 = 65_535;

/// Writes wire events to three pcap streams (sent, delivered, dropped).
pub struct PcapTap<W: Write> {
    sent: PcapWriter<W>,
    delivered: PcapWriter<W>,
    dropped: PcapWriter<W>,
    snaplen: u32,
    /// Set after the first write error; the capture then stops (the run goes on).
    failed: bool,
}

fn header(snaplen: u32) -> PcapHeader {
    PcapHeader {
        version_major: 2,
        version_minor: 4,
        ts_correction: 0,
        ts_accuracy: 0,
        snaplen,
        datalink: DataLink::ETHERNET,
        ts_resolution: TsResolution::MicroSecond,
        endianness: Endianness::Little,
    }
}

impl<W: Write + 'static> PcapTap<W> {
    /// A tap over three writers; frames longer than `snaplen` are truncated.
    pub fn new(sent: W, delivered: W, dropped: W, snaplen: u32) -> io::Result<PcapTap<W>> {
        let snaplen = snaplen.clamp(1, MAX_SNAPLEN);
        // The file header keeps the maximum: readers reject records whose
        // original length exceeds it; truncation is per record (incl_len).
        let open = |w| PcapWriter::with_header(w, header(MAX_SNAPLEN)).map_err(io::Error::other);
        Ok(PcapTap { sent: open(sent)?, delivered: open(delivered)?, dropped: open(dropped)?, snaplen, failed: false })
    }

    /// The three writers back (sent, delivered, dropped), e.g. to flush or inspect.
    pub fn into_writers(self) -> (W, W, W) {
        (self.sent.into_writer(), self.delivered.into_writer(), self.dropped.into_writer())
    }
}

impl PcapTap<BufWriter<File>> {
    /// Creates `<dir>/<name>.{sent,delivered,dropped}.pcap`.
    pub fn create(dir: &Path, name: &str, snaplen: u32) -> io::Result<PcapTap<BufWriter<File>>> {
        std::fs::create_dir_all(dir)?;
        let file = |kind: &str| File::create(dir.join(format!("{name}.{kind}.pcap"))).map(BufWriter::new);
        PcapTap::new(file("sent")?, file("delivered")?, file("dropped")?, snaplen)
    }
}

/// The capture requested through `SLUICE_SIM_PCAP`, if any, with the path
/// prefix of its files (`<dir>/<name>`). Prints why when it cannot be created.
pub fn pcap_from_env(name: &str) -> Option<(PcapTap<BufWriter<File>>, PathBuf)> {
    let dir = PathBuf::from(std::env::var_os(PCAP_DIR_ENV)?);
    let snaplen = std::env::var(PCAP_SNAPLEN_ENV).ok().and_then(|s| s.parse().ok()).unwrap_or(MAX_SNAPLEN);
    match PcapTap::create(&dir, name, snaplen) {
        Ok(tap) => Some((tap, dir.join(name))),
        Err(e) => {
            eprintln!("sim: cannot write pcap to {}: {e}", dir.display());
            None
        }
    }
}

impl<W: Write + 'static> Tap for PcapTap<W> {
    fn record(&mut self, e: &WireEvent<'_>) {
        if self.failed {
            return;
        }
        let writer = match e.kind {
            WireEventKind::Sent { .. } => &mut self.sent,
            WireEventKind::Delivered { .. } => &mut self.delivered,
            WireEventKind::Dropped { .. } | WireEventKind::Filtered { .. } => &mut self.dropped,
        };
        let micros = e.at.total_micros();
        let timestamp = std::time::Duration::from_micros(micros);
        let captured = &e.frame[..e.frame.len().min(self.snaplen as usize)];
        let packet = PcapPacket::new(timestamp, e.frame.len() as u32, captured);
        if let Err(err) = writer.write_packet(&packet) {
            eprintln!("sim: pcap write failed, capture stopped: {err}");
            self.failed = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sim::fault::DropReason;
    use crate::sim::trace::Direction;
    use pcap_file::pcap::PcapReader;
    use sluice_stack::time::Instant;

    fn read_all(bytes: Vec<u8>) -> Vec<(u64, u32, Vec<u8>)> {
        let mut r = PcapReader::new(io::Cursor::new(bytes)).unwrap();
        assert_eq!(r.header().datalink, DataLink::ETHERNET);
        let mut out = Vec::new();
        while let Some(p) = r.next_packet() {
            let p = p.unwrap();
            out.push((p.timestamp.as_micros() as u64, p.orig_len, p.data.into_owned()));
        }
        out
    }

    #[test]
    fn events_land_in_their_files_with_virtual_timestamps_and_truncation() {
        let mut tap = PcapTap::new(Vec::new(), Vec::new(), Vec::new(), 16).unwrap();
        let frame: Vec<u8> = (0..40).collect();
        let at = Instant::from_micros(3_000_007);
        tap.record(&WireEvent { at, kind: WireEventKind::Sent { port: 0 }, frame: &frame });
        tap.record(&WireEvent { at, kind: WireEventKind::Sent { port: 1 }, frame: &frame[..10] });
        tap.record(&WireEvent {
            at,
            kind: WireEventKind::Dropped { port: 0, direction: Direction::Uplink, reason: DropReason::Loss },
            frame: &frame,
        });
        let (sent, delivered, dropped) = tap.into_writers();
        let sent = read_all(sent);
        assert_eq!(sent.len(), 2);
        assert_eq!(sent[0], (3_000_007, 40, (0..16).collect()));
        assert_eq!(sent[1], (3_000_007, 10, (0..10).collect()));
        assert!(read_all(delivered).is_empty());
        assert_eq!(read_all(dropped).len(), 1);
    }

    #[test]
    fn create_writes_three_files() {
        let dir = std::env::temp_dir().join(format!("sluice-pcap-test-{}", std::process::id()));
        let mut tap = PcapTap::create(&dir, "case", 100).unwrap();
        tap.record(&WireEvent { at: Instant::ZERO, kind: WireEventKind::Delivered { port: 0, corrupted: false }, frame: &[1; 60] });
        let (a, b, c) = tap.into_writers();
        drop((a, c));
        b.into_inner().unwrap().sync_all().unwrap();
        let bytes = std::fs::read(dir.join("case.delivered.pcap")).unwrap();
        assert_eq!(read_all(bytes).len(), 1);
        assert!(dir.join("case.sent.pcap").exists() && dir.join("case.dropped.pcap").exists());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
