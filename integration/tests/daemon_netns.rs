//! The Sluice daemon serving kernel clients (issue 3's demonstration): the
//! daemon on AF_XDP or TAP in one namespace, the echo and HTTP servers of
//! `sluice-server` attached to it through `vcl`, and Linux clients in
//! another namespace (`scripts/load-client.py`: asyncio, many concurrent
//! connections, every byte checked by hash; `curl`; `socat`) — clean, then with 5%
//! random loss dropped by nft on a bridge in between.
//!
//! Needs root (namespaces, XDP, TAP): without it these tests fail, they do
//! not skip. Every process runs under a deadline; topologies are removed
//! when a test ends, also by panic.

mod daemon_support;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use daemon_support::*;
use serde_json::Value;

const SERVER: &str = env!("CARGO_BIN_EXE_sluice-server");
const ECHO_PORT: u16 = 7;
const HTTP_PORT: u16 = 80;

fn expect_all_ok(what: &str, (finished, result): (sluice_integration::netns::Finished, Value)) -> Value {
    assert!(
        !finished.killed && finished.status.success() && result["ok"] == result["expected"],
        "{what}: {result}\n--- stdout\n{}\n--- stderr\n{}",
        finished.stdout,
        finished.stderr
    );
    assert_eq!(result["failures"], serde_json::json!({}), "{what}: {result}");
    result
}

fn echo(topo: &Topology, connections: u32, bytes: u32) -> Value {
    let args = ["echo".into(), SLUICE_IP.into(), ECHO_PORT.to_string()]
        .into_iter()
        .chain(["--connections".into(), connections.to_string(), "--bytes".into(), bytes.to_string()])
        .collect::<Vec<String>>();
    expect_all_ok(&format!("echo {connections}x{bytes}"), load_client(topo, &args))
}

fn http(topo: &Topology, path: &str, sha: &str, len: usize, connections: u32, requests: u32) -> Value {
    let args = http_args(HTTP_PORT, path, sha, len, connections, requests);
    expect_all_ok(&format!("http {path} {connections}x{requests}"), load_client(topo, &args))
}

/// `curl` from the peer namespace; the body's SHA-256.
fn curl_sha(topo: &Topology, path: &str) -> String {
    let out = Command::new("ip")
        .args(["netns", "exec", &topo.peer_ns(), "sh", "-c"])
        .arg(format!("curl -sS --max-time 60 http://{SLUICE_IP}:{HTTP_PORT}{path} | sha256sum"))
        .output()
        .expect("run curl");
    assert!(out.status.success(), "curl failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).split_whitespace().next().unwrap_or("").to_string()
}

/// The pcap file holds `frames` Ethernet frames of the test's traffic.
fn check_capture(path: &Path, frames: usize) {
    let file = std::fs::File::open(path).expect("open the capture");
    let mut reader = pcap_file::pcap::PcapReader::new(file).expect("a pcap file");
    assert_eq!(reader.header().datalink, pcap_file::DataLink::ETHERNET);
    let mut count = 0;
    let mut tcp = 0;
    while let Some(packet) = reader.next_packet() {
        let packet = packet.expect("a whole pcap record");
        assert_eq!(packet.orig_len as usize, packet.data.len(), "frames are captured whole");
        let ethertype = u16::from_be_bytes([packet.data[12], packet.data[13]]);
        assert!(ethertype == 0x0800 || ethertype == 0x0806, "not IPv4 or ARP: {ethertype:#x}");
        if ethertype == 0x0800 && packet.data[23] == 6 {
            tcp += 1;
        }
        count += 1;
    }
    assert_eq!(count, frames, "sluice capture -c {frames} wrote {count} frames");
    assert!(tcp > frames / 2, "only {tcp} of {count} captured frames are TCP");
}

/// `socat` in the peer namespace sends `len` random bytes to the echo
/// server, half-closes, and everything must come back before the server's FIN.
fn socat_echo(topo: &Topology, dir: &Path, len: usize) {
    let sent = dir.join("socat-in.bin");
    let got = dir.join("socat-out.bin");
    random_file(dir, "socat-in.bin", len, 3);
    let out = Command::new("ip")
        .args(["netns", "exec", &topo.peer_ns(), "sh", "-c"])
        .arg(format!(
            "socat -t 30 - TCP:{SLUICE_IP}:{ECHO_PORT} < '{}' > '{}'",
            sent.display(),
            got.display()
        ))
        .output()
        .expect("run socat");
    assert!(out.status.success(), "socat failed: {}", String::from_utf8_lossy(&out.stderr));
    assert!(std::fs::read(&sent).unwrap() == std::fs::read(&got).unwrap(), "socat's echo differs");
}

fn engine(stats: &Value) -> &Value {
    &stats["workers"][0]["engine"]
}

fn serve_kernel_clients(prefix: &str, device: &'static str) {
    let topo = Topology::up(prefix, device, 0);
    let tmp = TempDir::new(prefix);
    let control = tmp.0.join("control.sock");
    let www = tmp.0.join("www");
    std::fs::create_dir_all(&www).unwrap();
    let big = random_file(&www, "1m.bin", 1 << 20, 1);
    let small = random_file(&www, "64k.bin", 64 << 10, 2);

    let daemon = start_daemon(&topo, &control, &[]);
    let echo_server = start_server(SERVER, "echo", ECHO_PORT, Path::new("."), &control);
    let http_server = start_server(SERVER, "http", HTTP_PORT, &www, &control);

    // `sluice capture` records the first frames of the run.
    let capture_file = tmp.0.join("capture.pcap");
    let mut capture_cmd = Command::new(sluice_binary());
    capture_cmd.args(["capture", "-c", "200", "-o"]).arg(&capture_file).arg("--control-socket").arg(&control);
    let mut capture = sluice_integration::netns::Process::spawn(capture_cmd).expect("spawn sluice capture");
    assert!(capture.wait_for_line("capturing to", READY).is_some(), "sluice capture never started");

    // Clean: many connections at once, every byte checked.
    echo(&topo, 200, 256 << 10);
    capture.wait(Duration::from_secs(30)).expect_success("sluice capture");
    check_capture(&capture_file, 200);
    http(&topo, "/64k.bin", &small, 64 << 10, 2000, 2);
    http(&topo, "/1m.bin", &big, 1 << 20, 100, 2);
    assert_eq!(curl_sha(&topo, "/1m.bin"), big, "curl's body differs");
    socat_echo(&topo, &tmp.0, 300_000);
    let clean = stats(&control).expect("stats after the clean runs");

    // 5% random loss in both directions.
    topo.set_loss(5);
    echo(&topo, 50, 1 << 20);
    http(&topo, "/1m.bin", &big, 1 << 20, 50, 1);
    topo.set_loss(0);
    let lossy = stats(&control).expect("stats after the lossy runs");
    let retransmits = |s: &Value| engine(s)["tcp_retransmits"].as_u64().unwrap_or(0);
    assert!(retransmits(&lossy) > retransmits(&clean), "5% loss caused no retransmission: {lossy:#}");
    for app in lossy["workers"][0]["apps"].as_array().expect("apps in stats") {
        assert_eq!(app["violations"], 0, "a well-behaved app was flagged: {app}");
        assert_eq!(app["bad_requests"], 0, "a well-behaved app sent bad requests: {app}");
    }

    for (name, server) in [("echo", echo_server), ("http", http_server)] {
        server.terminate(Duration::from_secs(10)).expect_success(&format!("sluice-server {name}"));
    }
    let finished = daemon.terminate(Duration::from_secs(10)).expect_success("sluice daemon");
    assert!(!control.exists(), "the daemon left its control socket behind: {finished:#?}");
}

#[test]
fn daemon_on_af_xdp_serves_kernel_clients_clean_and_at_5_percent_loss() {
    serve_kernel_clients("sdx", "xdp");
}

#[test]
fn daemon_on_tap_serves_kernel_clients_clean_and_at_5_percent_loss() {
    serve_kernel_clients("sdt", "tap");
}

/// A hostile app scribbles over its shared memory, floods garbage requests
/// and rings the doorbell non-stop while a well-behaved echo server serves
/// kernel clients: every client byte still comes back, and the daemon
/// lives on.
#[test]
fn a_hostile_app_cannot_disturb_a_well_behaved_one() {
    let topo = Topology::up("sdh", "xdp", 0);
    let tmp = TempDir::new("sdh");
    let control = tmp.0.join("control.sock");
    let daemon = start_daemon(&topo, &control, &[]);
    let echo_server = start_server(SERVER, "echo", ECHO_PORT, Path::new("."), &control);

    let mut hostile_cmd = Command::new(env!("CARGO_BIN_EXE_sluice-hostile"));
    hostile_cmd.args(["--seconds", "20", "--seed", "7", "--control-socket"]).arg(&control);
    let hostile = sluice_integration::netns::Process::spawn(hostile_cmd).expect("spawn sluice-hostile");
    for _ in 0..3 {
        echo(&topo, 100, 256 << 10);
    }
    let hostile = hostile.wait(Duration::from_secs(60)).expect_success("sluice-hostile");
    let report: Value = serde_json::from_str(hostile.last_line_with("scribbles").expect("hostile report")).unwrap();
    assert!(report["requests"].as_u64().unwrap_or(0) > 0, "the hostile app pushed nothing: {report}");

    // The daemon still answers and still serves.
    let after = stats(&control).expect("the daemon answers after the hostile app");
    echo(&topo, 20, 64 << 10);
    let apps = after["workers"][0]["apps"].as_array().cloned().unwrap_or_default();
    let hostile_seen = report["cut_off"] == true
        || apps.iter().any(|a| a["violations"].as_u64().unwrap_or(0) + a["bad_requests"].as_u64().unwrap_or(0) > 0);
    assert!(hostile_seen, "the daemon neither cut the hostile app off nor counted its garbage: {after:#}\n{report}");

    echo_server.terminate(Duration::from_secs(10)).expect_success("sluice-server echo");
    daemon.terminate(Duration::from_secs(10)).expect_success("sluice daemon");
}
