//! Packet captures of the simulated wire, for inspecting a failing case in
//! Wireshark/tcpdump. Per run:
//! `<name>.node<N>.pcap` — what a capture on node N's interface would show:
//! every frame it sent (as sent) and every frame it received (as received,
//! corrupted frames and duplicates included), in time order;
//! `<name>.dropped.pcap` — every frame a pipe lost or tail-dropped (as
//! offered to that pipe) and every frame the switch filtered.
//! A frame sent by A that appears neither at its destination nor in the
//! dropped file is still in flight. Timestamps are the virtual clock.
//!
//! Enabled by `SLUICE_SIM_PCAP=<dir>`; `SLUICE_SIM_PCAP_SNAPLEN=<bytes>`
//! truncates captured frames (headers are usually all that is needed, and
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

/// Opens the output for one capture file, given its name suffix
/// (`node3`, `dropped`).
pub type OpenCapture<W> = Box<dyn FnMut(&str) -> io::Result<W>>;

/// Writes wire events to one capture per host plus one of drops; files are
/// opened when their first frame arrives.
pub struct PcapTap<W: Write> {
    open: OpenCapture<W>,
    hosts: Vec<Option<PcapWriter<W>>>,
    dropped: Option<PcapWriter<W>>,
    /// Captures in the order they were opened, for `into_writers`.
    names: Vec<String>,
    snaplen: u32,
    /// Set after the first error; the capture then stops (the run goes on).
    failed: bool,
}

fn header() -> PcapHeader {
    // The file header keeps the maximum snaplen: readers reject records whose
    // original length exceeds it; truncation is per record (incl_len).
    PcapHeader {
        version_major: 2,
        version_minor: 4,
        ts_correction: 0,
        ts_accuracy: 0,
        snaplen: MAX_SNAPLEN,
        datalink: DataLink::ETHERNET,
        ts_resolution: TsResolution::MicroSecond,
        endianness: Endianness::Little,
    }
}

impl<W: Write + 'static> PcapTap<W> {
    /// A tap opening its outputs through `open`; frames longer than
    /// `snaplen` are truncated.
    pub fn new(open: OpenCapture<W>, snaplen: u32) -> PcapTap<W> {
        PcapTap {
            open,
            hosts: Vec::new(),
            dropped: None,
            names: Vec::new(),
            snaplen: snaplen.clamp(1, MAX_SNAPLEN),
            failed: false,
        }
    }

    /// The outputs opened so far, with their name suffixes, in opening order.
    pub fn into_writers(self) -> Vec<(String, W)> {
        let mut by_name: Vec<(String, W)> = Vec::new();
        for (port, w) in self.hosts.into_iter().enumerate() {
            if let Some(w) = w {
                by_name.push((format!("node{port}"), w.into_writer()));
            }
        }
        if let Some(w) = self.dropped {
            by_name.push(("dropped".to_string(), w.into_writer()));
        }
        let order = |name: &String| self.names.iter().position(|n| n == name);
        by_name.sort_by_key(|(name, _)| order(name));
        by_name
    }

    fn writer(&mut self, target: Target) -> io::Result<&mut PcapWriter<W>> {
        let (slot, name) = match target {
            Target::Host(port) => {
                if self.hosts.len() <= port {
                    self.hosts.resize_with(port + 1, || None);
                }
                (&mut self.hosts[port], format!("node{port}"))
            }
            Target::Dropped => (&mut self.dropped, "dropped".to_string()),
        };
        if slot.is_none() {
            let out = (self.open)(&name)?;
            *slot = Some(PcapWriter::with_header(out, header()).map_err(io::Error::other)?);
            self.names.push(name);
        }
        Ok(slot.as_mut().expect("opened above"))
    }
}

#[derive(Clone, Copy)]
enum Target {
    Host(usize),
    Dropped,
}

impl PcapTap<BufWriter<File>> {
    /// Captures into `<dir>/<name>.<suffix>.pcap`.
    pub fn create(dir: &Path, name: &str, snaplen: u32) -> io::Result<PcapTap<BufWriter<File>>> {
        std::fs::create_dir_all(dir)?;
        let (dir, name) = (dir.to_path_buf(), name.to_string());
        let open = move |suffix: &str| {
            File::create(dir.join(format!("{name}.{suffix}.pcap"))).map(BufWriter::new)
        };
        Ok(PcapTap::new(Box::new(open), snaplen))
    }
}

/// The capture requested through `SLUICE_SIM_PCAP`, if any, with the path
/// prefix of its files (`<dir>/<name>`). Prints why when it cannot be created.
pub fn pcap_from_env(name: &str) -> Option<(PcapTap<BufWriter<File>>, PathBuf)> {
    let dir = PathBuf::from(std::env::var_os(PCAP_DIR_ENV)?);
    let snaplen = std::env::var(PCAP_SNAPLEN_ENV)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(MAX_SNAPLEN);
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
        let target = match e.kind {
            WireEventKind::Sent { port } | WireEventKind::Delivered { port, .. } => {
                Target::Host(port)
            }
            WireEventKind::Dropped { .. } | WireEventKind::Filtered { .. } => Target::Dropped,
        };
        let timestamp = std::time::Duration::from_micros(e.at.total_micros());
        let captured = &e.frame[..e.frame.len().min(self.snaplen as usize)];
        let packet = PcapPacket::new(timestamp, e.frame.len() as u32, captured);
        let written = self
            .writer(target)
            .and_then(|w| w.write_packet(&packet).map_err(io::Error::other));
        if let Err(err) = written {
            eprintln!("sim: pcap capture stopped: {err}");
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
            out.push((
                p.timestamp.as_micros() as u64,
                p.orig_len,
                p.data.into_owned(),
            ));
        }
        out
    }

    #[test]
    fn each_host_sees_its_sends_and_receipts_and_drops_go_apart() {
        let mut tap = PcapTap::new(Box::new(|_: &str| Ok(Vec::new())), 16);
        let frame: Vec<u8> = (0..40).collect();
        let at = Instant::from_micros(3_000_007);
        let later = Instant::from_micros(3_000_100);
        tap.record(&WireEvent {
            at,
            kind: WireEventKind::Sent { port: 0 },
            frame: &frame,
        });
        tap.record(&WireEvent {
            at,
            kind: WireEventKind::Sent { port: 1 },
            frame: &frame[..10],
        });
        tap.record(&WireEvent {
            at,
            kind: WireEventKind::Dropped {
                port: 1,
                direction: Direction::Uplink,
                reason: DropReason::Loss,
            },
            frame: &frame[..10],
        });
        tap.record(&WireEvent {
            at: later,
            kind: WireEventKind::Delivered {
                port: 0,
                corrupted: false,
            },
            frame: &frame[..20],
        });
        let files = tap.into_writers();
        let names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["node0", "node1", "dropped"]);
        let mut files = files.into_iter().map(|(_, w)| read_all(w));
        let host0 = files.next().unwrap();
        assert_eq!(
            host0,
            vec![
                (3_000_007, 40, (0..16).collect()),
                (3_000_100, 20, (0..16).collect())
            ]
        );
        assert_eq!(
            files.next().unwrap(),
            vec![(3_000_007, 10, (0..10).collect())]
        );
        assert_eq!(files.next().unwrap().len(), 1);
    }

    #[test]
    fn create_writes_files_named_after_the_run() {
        let dir = std::env::temp_dir().join(format!("sluice-pcap-test-{}", std::process::id()));
        let mut tap = PcapTap::create(&dir, "case", 100).unwrap();
        tap.record(&WireEvent {
            at: Instant::ZERO,
            kind: WireEventKind::Delivered {
                port: 2,
                corrupted: false,
            },
            frame: &[1; 60],
        });
        for (_, w) in tap.into_writers() {
            w.into_inner().unwrap().sync_all().unwrap();
        }
        let bytes = std::fs::read(dir.join("case.node2.pcap")).unwrap();
        assert_eq!(read_all(bytes).len(), 1);
        assert!(
            !dir.join("case.dropped.pcap").exists(),
            "opened only when something is dropped"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
