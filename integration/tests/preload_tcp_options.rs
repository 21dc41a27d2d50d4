//! TCP_CORK, TCP_NODELAY and keepalive take real effect (issue 4): a program
//! under the preload sets them on a connection to a kernel peer, and the
//! daemon's own capture (`sluice capture`) shows what went on the wire.
//!
//! * Cork: 400 writes of 10 bytes with TCP_CORK set leave as full segments
//!   (at most ceil(total/MSS) + 1 data segments), and clearing TCP_CORK sends
//!   the tail at once (the peer answers well before the probe timer's
//!   200 ms ceiling). TCP_CORK wins over TCP_NODELAY. The same writes sent
//!   with MSG_MORE (but the last) do the same. With TCP_NODELAY alone they go
//!   out as many small segments.
//! * Keepalive (TCP_KEEPIDLE = TCP_KEEPINTVL = 1 s, TCP_KEEPCNT = 2): with
//!   the peer alive, probes go out about every second, the peer answers
//!   them and the connection stays up; when the peer vanishes (nft in its
//!   namespace drops everything it receives), exactly TCP_KEEPCNT probes go out and the
//!   program's read fails with ETIMEDOUT within a few seconds.
//!
//! `integration/c/tcp_options.c` is both the program under the preload and
//! the kernel peer. Needs root.

mod daemon_support;
mod preload_bench;
mod preload_support;

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use daemon_support::*;
use preload_bench::*;
use sluice_integration::netns::{Finished, Process};

const PEER_IP: &str = "10.79.0.1";

/// `sluice capture` of everything the daemon sends and receives, until `stop`.
struct Capture {
    process: Process,
    file: std::path::PathBuf,
}

impl Capture {
    fn start(bench: &Bench) -> Capture {
        let file = bench.tmp.0.join("capture.pcap");
        let mut cmd = Command::new(sluice_binary());
        cmd.args(["capture", "-o"]).arg(&file).arg("--control-socket").arg(&bench.control);
        let mut process = Process::spawn(cmd).expect("spawn sluice capture");
        assert!(process.wait_for_line("capturing to", READY).is_some(), "sluice capture never started");
        Capture { process, file }
    }

    /// Stops the capture (SIGTERM flushes the file) and reads its TCP segments.
    fn stop(self) -> Vec<Segment> {
        self.process.terminate(Duration::from_secs(10)).expect_success("sluice capture");
        segments(&self.file)
    }
}

/// The TCP header fields the checks need, from one captured frame.
#[derive(Clone, Debug)]
struct Segment {
    src: (Ipv4Addr, u16),
    dst: (Ipv4Addr, u16),
    seq: u32,
    flags: u8,
    payload: usize,
}

const FIN: u8 = 0x01;
const SYN: u8 = 0x02;
const RST: u8 = 0x04;

/// Ethernet / IPv4 / TCP frames of a pcap file (a capture of the daemon's
/// frames: nothing else, no VLAN tags).
fn segments(path: &Path) -> Vec<Segment> {
    let file = std::fs::File::open(path).expect("open the capture");
    let mut reader = pcap_file::pcap::PcapReader::new(file).expect("a pcap file");
    let mut out = Vec::new();
    while let Some(packet) = reader.next_packet() {
        let packet = packet.expect("a pcap record");
        if let Some(segment) = parse(&packet.data) {
            out.push(segment);
        }
    }
    out
}

fn parse(frame: &[u8]) -> Option<Segment> {
    let be16 = |b: &[u8], at: usize| -> Option<u16> { Some(u16::from_be_bytes(b.get(at..at + 2)?.try_into().ok()?)) };
    if be16(frame, 12)? != 0x0800 {
        return None;
    }
    let ip = frame.get(14..)?;
    let ihl = (*ip.first()? as usize & 0x0f) * 4;
    if *ip.get(9)? != 6 {
        return None;
    }
    let total = be16(ip, 2)? as usize;
    let addr = |at: usize| -> Option<Ipv4Addr> { Some(Ipv4Addr::from(<[u8; 4]>::try_from(ip.get(at..at + 4)?).ok()?)) };
    let tcp = ip.get(ihl..total)?;
    let data_offset = (*tcp.get(12)? as usize >> 4) * 4;
    Some(Segment {
        src: (addr(12)?, be16(tcp, 0)?),
        dst: (addr(16)?, be16(tcp, 2)?),
        seq: u32::from_be_bytes(tcp.get(4..8)?.try_into().ok()?),
        flags: *tcp.get(13)?,
        payload: tcp.len().checked_sub(data_offset)?,
    })
}

/// Segments the daemon sent from local port `port`.
fn sent_from(segments: &[Segment], port: u16) -> Vec<&Segment> {
    let sluice: Ipv4Addr = SLUICE_IP.parse().unwrap();
    segments.iter().filter(|s| s.src == (sluice, port)).collect()
}

/// Payload sizes of the data segments the daemon sent from `port`.
fn data_sizes(segments: &[Segment], port: u16) -> Vec<usize> {
    sent_from(segments, port).iter().filter(|s| s.payload > 0).map(|s| s.payload).collect()
}

/// Keepalive probes the daemon sent from `port`: empty segments one below
/// the highest sequence number sent so far (RFC 9293 §3.8.4, SEG.SEQ =
/// SND.NXT - 1), which no other segment carries.
fn keepalive_probes(segments: &[Segment], port: u16) -> usize {
    let mut next: Option<u32> = None;
    let mut probes = 0;
    for s in sent_from(segments, port) {
        let len = s.payload as u32 + (s.flags & SYN != 0) as u32 + (s.flags & FIN != 0) as u32;
        if len == 0 && s.flags & RST == 0 && next == Some(s.seq.wrapping_add(1)) {
            probes += 1;
        }
        let end = s.seq.wrapping_add(len);
        next = Some(match next {
            Some(n) if (end.wrapping_sub(n) as i32) < 0 => n,
            _ => end,
        });
    }
    probes
}

/// The program's local port ("port P").
fn local_port(finished: &Finished) -> u16 {
    let line = finished.last_line_with("port ").unwrap_or_else(|| panic!("no port line: {finished:#?}"));
    line.trim_start_matches("port ").trim().parse().expect("a port number")
}

/// "answer 1 after N ms": how long after clearing TCP_CORK the peer's answer came.
fn answer_ms(finished: &Finished) -> f64 {
    let line = finished.last_line_with("answer 1 after ").unwrap_or_else(|| panic!("no answer: {finished:#?}"));
    line.trim_start_matches("answer 1 after ").trim_end_matches(" ms").parse().expect("milliseconds")
}

const PIECES: usize = 400;
const PIECE: usize = 10;

#[test]
fn cork_coalesces_small_writes_and_nodelay_sends_them_as_they_come() {
    let bench = Bench::up("pck");
    let program = preload_support::c_program("tcp_options");
    let capture = Capture::start(&bench);
    let total = PIECES * PIECE;
    let modes = ["cork", "cork-nodelay", "more", "more-nodelay", "nodelay"];
    let mut server = Process::spawn({
        let mut cmd = bench.peer(program.to_str().unwrap());
        cmd.args(["serve", "7400", &total.to_string(), &modes.len().to_string()]);
        cmd
    })
    .expect("spawn the peer's server");
    assert!(server.wait_for_line("listening", READY).is_some(), "the peer's server never listened");

    let mut runs = HashMap::new();
    for mode in modes {
        let mut cmd = bench.run(&program);
        cmd.args(["write", PEER_IP, "7400", mode, &PIECES.to_string(), &PIECE.to_string(), "100"]);
        let finished = run_done(cmd, mode);
        let ok = !finished.killed && finished.status.success() && finished.stdout.contains("done");
        assert!(ok, "{mode}: {finished:#?}");
        if mode.starts_with("cork") {
            // getsockopt reports what was set, then cleared.
            let out = &finished.stdout;
            assert!(out.contains("TCP_CORK = 1\n") && out.contains("TCP_CORK = 0\n"), "{finished:#?}");
        }
        runs.insert(mode, finished);
    }
    let served = server.wait(STEP);
    assert!(served.status.success(), "the peer's server: {served:#?}");
    assert_eq!(served.stdout.matches(&format!("received {total}\n")).count(), modes.len(), "{served:#?}");
    let segments = capture.stop();

    for mode in ["cork", "cork-nodelay", "more", "more-nodelay"] {
        let finished = &runs[mode];
        let sizes = data_sizes(&segments, local_port(finished));
        assert_eq!(sizes.iter().sum::<usize>(), total, "{mode}: {sizes:?}");
        let mss = *sizes.iter().max().unwrap();
        assert!(mss >= 1000, "{mode}: corked writes were not coalesced into full segments: {sizes:?}");
        assert!(sizes.len() <= total.div_ceil(mss) + 1, "{mode}: {} data segments: {sizes:?}", sizes.len());
        // Clearing TCP_CORK (or the write without MSG_MORE) sent the tail at
        // once; the ceiling would have held it for max(RTO, 200 ms) after
        // the last ACK.
        let ms = answer_ms(finished);
        eprintln!("{mode}: data segments {sizes:?}, answer {ms} ms after the last call");
        assert!(ms < 150.0, "{mode}: the peer's answer came {ms} ms after the last call");
    }
    let sizes = data_sizes(&segments, local_port(&runs["nodelay"]));
    assert_eq!(sizes.iter().sum::<usize>(), total, "nodelay: {sizes:?}");
    eprintln!("nodelay: {} data segments", sizes.len());
    assert!(sizes.len() >= PIECES / 4, "nodelay: only {} data segments for {PIECES} writes: {sizes:?}", sizes.len());
    bench.finish();
}

/// One `nft` command in the peer's namespace (removed with it at the end).
fn peer_firewall(bench: &Bench, rule: &str) {
    let out = bench.peer("nft").arg(rule).output().expect("run nft");
    assert!(out.status.success(), "nft {rule}: {}", String::from_utf8_lossy(&out.stderr));
}

/// Runs `tcp_options keepalive` against a `hold` peer on `port`; `vanish`
/// makes the peer vanish once the connection is up: its namespace drops
/// every packet it receives, so it neither sees nor answers the probes.
fn keepalive_run(bench: &Bench, program: &Path, port: u16, wait_ms: u32, vanish: bool) -> Finished {
    let mut holder = Process::spawn({
        let mut cmd = bench.peer(program.to_str().unwrap());
        cmd.args(["hold", "0.0.0.0", &port.to_string()]);
        cmd
    })
    .expect("spawn the peer");
    assert!(holder.wait_for_line("listening", READY).is_some(), "the peer never listened");
    let mut client = Process::spawn({
        let mut cmd = bench.run(program);
        cmd.args(["keepalive", PEER_IP, &port.to_string(), "1", "1", "2", &wait_ms.to_string()]);
        cmd
    })
    .expect("spawn tcp_options keepalive");
    assert!(client.wait_for_line("keepalive on", READY).is_some(), "keepalive was never switched on");
    assert!(holder.wait_for_line("accepted", READY).is_some(), "the peer never accepted");
    if vanish {
        let drop_all = "add table inet vanish { chain input { type filter hook input priority 0; policy drop; }; }";
        peer_firewall(bench, drop_all);
    }
    let finished = client.wait(STEP);
    if vanish {
        peer_firewall(bench, "delete table inet vanish");
    }
    assert!(!finished.killed && finished.status.success() && finished.stdout.contains("done"), "{finished:#?}");
    // The alive peer reads the client's FIN and exits; the vanished one never sees it.
    let held = if vanish { holder.terminate(Duration::from_secs(10)) } else { holder.wait(READY) };
    assert!(!held.killed, "the peer: {held:#?}");
    finished
}

#[test]
fn keepalive_probes_keep_a_live_connection_and_time_out_a_vanished_peer() {
    let bench = Bench::up("pcl");
    let program = preload_support::c_program("tcp_options");
    let capture = Capture::start(&bench);

    let alive = keepalive_run(&bench, &program, 7401, 5000, false);
    assert!(alive.stdout.contains("SO_KEEPALIVE = 1\nTCP_KEEPIDLE = 1\n"), "{alive:#?}");
    assert!(alive.stdout.contains("SO_ERROR = 0\nup after 5000 ms\n"), "the connection did not stay up: {alive:#?}");

    let gone = keepalive_run(&bench, &program, 7402, 30_000, true);
    let line = gone.last_line_with("read = ").unwrap_or_else(|| panic!("{gone:#?}"));
    let ms: f64 = line
        .strip_prefix("read = -1 ETIMEDOUT after ")
        .and_then(|rest| rest.strip_suffix(" ms"))
        .unwrap_or_else(|| panic!("the read did not fail with ETIMEDOUT: {gone:#?}"))
        .parse()
        .expect("milliseconds");
    // Idle 1 s, then 2 probes 1 s apart, then 1 s for the last answer: 3 s.
    assert!((2_000.0..10_000.0).contains(&ms), "ETIMEDOUT after {ms} ms");

    let segments = capture.stop();
    let probes = keepalive_probes(&segments, local_port(&alive));
    eprintln!("alive: {probes} probes; vanished: ETIMEDOUT after {ms} ms");
    assert!(probes >= 3, "{probes} keepalive probes in 5 s of idle with TCP_KEEPIDLE = TCP_KEEPINTVL = 1");
    let (peer, sluice): (Ipv4Addr, Ipv4Addr) = (PEER_IP.parse().unwrap(), SLUICE_IP.parse().unwrap());
    let to_alive = (sluice, local_port(&alive));
    let answers = segments
        .iter()
        .filter(|s| s.src == (peer, 7401) && s.dst == to_alive && s.payload == 0 && s.flags & (FIN | SYN) == 0)
        .count();
    assert!(answers >= probes, "the peer answered {answers} of {probes} probes");
    assert_eq!(keepalive_probes(&segments, local_port(&gone)), 2, "TCP_KEEPCNT probes before ETIMEDOUT");
    bench.finish();
}
