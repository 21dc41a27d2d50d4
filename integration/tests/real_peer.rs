//! Sluice against the Linux kernel's TCP over a TAP device.
//!
//! Topology (scripts/netns-tap.sh): the kernel peer at 10.77.0.1 in namespace
//! `sl-peer`, a bridge in `sl-mid` joining its veth to the TAP device that
//! `sluice-peer` drives as 10.77.0.2. The kernel side is
//! `scripts/netns-peer.py` (or `ping`). Needs root and /dev/net/tun: without
//! them these tests fail, they do not skip.
//!
//! Every process runs under a deadline and is killed when it overruns it; the
//! topology is torn down when a test ends, also by panic.

use std::time::Duration;

use serde_json::Value;
use sluice_integration::netns::{
    in_namespace, python_peer, Finished, Process, Topology, MID_NS, PEER_IP, PEER_NS, PREFIX_LEN, SLUICE_IP,
    SLUICE_MAC, TAP,
};
use sluice_integration::peer::pattern;

const PORT: u16 = 5001;
const BULK: u64 = 8 << 20;
/// The driver gives up (and reports) by itself after this long ...
const DRIVER_DURATION_S: u64 = 100;
/// ... and is killed if it is still running after this long.
const STEP_TIMEOUT: Duration = Duration::from_secs(120);
const READY_TIMEOUT: Duration = Duration::from_secs(15);
/// Linux's MSS for a 1500-byte MTU with timestamps (1460 less 12 option bytes).
const MSS_WITH_TIMESTAMPS: u64 = 1448;

/// Start `sluice-peer` in the bridge namespace and wait until it is listening
/// or connecting.
fn start_driver(mode_args: &[String]) -> Process {
    let mut cmd = in_namespace(MID_NS, env!("CARGO_BIN_EXE_sluice-peer"));
    cmd.args(["--tap", TAP, "--mac", SLUICE_MAC, "--ip", &format!("{SLUICE_IP}/{PREFIX_LEN}")])
        .args(["--duration", &DRIVER_DURATION_S.to_string()])
        .args(mode_args);
    let mut driver = Process::spawn(cmd).expect("spawn sluice-peer");
    if driver.wait_for_line(r#""event":"ready""#, READY_TIMEOUT).is_none() {
        let finished = driver.wait(Duration::ZERO);
        panic!("sluice-peer never became ready: {finished:#?}");
    }
    driver
}

/// Start the Python peer listening in the kernel's namespace.
fn start_kernel_server(send: u64) -> Process {
    let mut cmd = python_peer();
    cmd.args(["serve", &PORT.to_string(), "--send", &send.to_string(), "--bind", &PEER_IP.to_string()]);
    let mut server = Process::spawn(cmd).expect("spawn netns-peer.py serve");
    if server.wait_for_line(r#""event": "ready""#, READY_TIMEOUT).is_none() {
        let finished = server.wait(Duration::ZERO);
        panic!("netns-peer.py serve never became ready: {finished:#?}");
    }
    server
}

fn run_kernel_client(args: &[String]) -> Value {
    let mut cmd = python_peer();
    cmd.args(args);
    let finished = Process::spawn(cmd).expect("spawn netns-peer.py").wait(STEP_TIMEOUT);
    done_json(&finished.expect_success("netns-peer.py"), "netns-peer.py")
}

/// The `done` report line of a finished process.
fn done_json(finished: &Finished, who: &str) -> Value {
    let line = finished
        .last_line_with(r#""event""#)
        .unwrap_or_else(|| panic!("{who} printed no report: {finished:#?}"));
    let value: Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("{who} report is not JSON ({e}): {line}"));
    assert_eq!(value["event"], "done", "{who} did not finish: {finished:#?}");
    value
}

fn finish_driver(driver: Process) -> Value {
    let finished = driver.wait(STEP_TIMEOUT).expect_success("sluice-peer");
    let report = done_json(&finished, "sluice-peer");
    assert_eq!(report["ok"], true, "sluice-peer reported failure: {report:#}");
    report
}

fn u64_of(v: &Value, what: &str) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("{what} is not a number: {v}"))
}

/// The driver's single connection record.
fn only_connection(report: &Value) -> &Value {
    let conns = report["connections"].as_array().expect("connections array");
    assert_eq!(conns.len(), 1, "expected one connection: {report:#}");
    let conn = &conns[0];
    assert!(conn["error"].is_null(), "connection failed: {conn:#}");
    conn
}

/// Each side got exactly the pattern stream the other sent.
fn assert_streams(sluice: &Value, kernel: &Value, sluice_sent: u64, kernel_sent: u64) {
    let sluice_hash = pattern::sha256_hex(sluice_sent);
    let kernel_hash = pattern::sha256_hex(kernel_sent);
    assert_eq!(u64_of(&sluice["sent"], "sluice sent"), sluice_sent);
    assert_eq!(sluice["sent_sha256"], sluice_hash.as_str());
    assert_eq!(u64_of(&kernel["received"], "kernel received"), sluice_sent, "kernel received short");
    assert_eq!(kernel["recv_sha256"], sluice_hash.as_str(), "kernel received corrupted data");
    assert_eq!(u64_of(&kernel["sent"], "kernel sent"), kernel_sent);
    assert_eq!(u64_of(&sluice["received"], "sluice received"), kernel_sent, "sluice received short");
    assert_eq!(sluice["recv_sha256"], kernel_hash.as_str(), "sluice received corrupted data");
}

/// What Linux and Sluice agreed on in the handshake, seen from both ends.
fn assert_negotiated(sluice_conn: &Value, kernel: &Value) {
    let ours = &sluice_conn["info"];
    let linux = &kernel["tcp_info"];
    assert!(ours.is_object(), "no tcp_info from sluice: {sluice_conn:#}");
    assert_eq!(linux["sack"], true, "Linux did not enable SACK: {linux:#}");
    assert_eq!(linux["timestamps"], true, "Linux did not enable timestamps: {linux:#}");
    assert_eq!(linux["wscale"], true, "Linux did not enable window scaling: {linux:#}");
    assert_eq!(ours["sack"], true, "Sluice did not enable SACK: {ours:#}");
    assert_eq!(ours["timestamps"], true, "Sluice did not enable timestamps: {ours:#}");
    // Each side's send scale is the other's receive scale (RFC 7323 §2.2).
    assert_eq!(ours["snd_wscale"], linux["rcv_wscale"], "ours {ours:#} linux {linux:#}");
    assert_eq!(ours["rcv_wscale"], linux["snd_wscale"], "ours {ours:#} linux {linux:#}");
    assert!(u64_of(&linux["rcv_wscale"], "linux rcv_wscale") > 0, "Linux offers a scale for its large buffers");
    // Sluice offered MSS 1460 (MTU 1500); Linux sends 1448-byte segments with timestamps on.
    assert_eq!(u64_of(&linux["snd_mss"], "linux snd_mss"), MSS_WITH_TIMESTAMPS, "{linux:#}");
    let our_mss = u64_of(&ours["snd_mss"], "sluice snd_mss");
    assert!(our_mss == 1460 || our_mss == MSS_WITH_TIMESTAMPS, "Sluice's send MSS {our_mss} from Linux's 1460");
}

fn assert_clean_input(report: &Value) {
    let stats = &report["stats"];
    // The kernel's veth has tx checksumming off (netns-tap.sh): nothing may fail a checksum.
    assert_eq!(u64_of(&stats["drop_bad_checksum"], "drop_bad_checksum"), 0, "{stats:#}");
    assert_eq!(u64_of(&stats["drop_malformed_tcp"], "drop_malformed_tcp"), 0, "{stats:#}");
}

fn summary(name: &str, sluice_conn: &Value, kernel: &Value) {
    let info = &sluice_conn["info"];
    eprintln!(
        "{name}: sluice {:.1} Mbit/s (sent {} received {}, retransmits {}), linux {:.1} Mbit/s (total_retrans {}); \
         mss sluice {} linux {}, wscale sluice snd {} rcv {}, sack {}, ts {}",
        sluice_conn["mbit_s"].as_f64().unwrap_or(0.0),
        sluice_conn["sent"],
        sluice_conn["received"],
        info["retransmits"],
        kernel["mbit_s"].as_f64().unwrap_or(0.0),
        kernel["tcp_info"]["total_retrans"],
        info["snd_mss"],
        kernel["tcp_info"]["snd_mss"],
        info["snd_wscale"],
        info["rcv_wscale"],
        info["sack"],
        info["timestamps"],
    );
}

fn args(words: &[&str]) -> Vec<String> {
    words.iter().map(|w| w.to_string()).collect()
}

/// Kernel client, Sluice server: both directions at once.
fn kernel_to_sluice_bulk(name: &str, loss: u8, sluice_sends: u64, kernel_sends: u64) -> (Value, Value) {
    let _topology = Topology::up(loss);
    let driver = start_driver(&args(&["--exit-after", "1", "serve-bulk", &PORT.to_string(), &sluice_sends.to_string()]));
    let kernel = run_kernel_client(&args(&[
        "connect",
        &SLUICE_IP.to_string(),
        &PORT.to_string(),
        "--send",
        &kernel_sends.to_string(),
    ]));
    let report = finish_driver(driver);
    let conn = only_connection(&report).clone();
    assert_streams(&conn, &kernel, sluice_sends, kernel_sends);
    summary(name, &conn, &kernel);
    (report, kernel)
}

/// Sluice client, kernel server: both directions at once.
fn sluice_to_kernel_bulk(name: &str, loss: u8, sluice_sends: u64, kernel_sends: u64) -> (Value, Value) {
    let _topology = Topology::up(loss);
    let server = start_kernel_server(kernel_sends);
    let driver =
        start_driver(&args(&["connect-bulk", &format!("{PEER_IP}:{PORT}"), &sluice_sends.to_string()]));
    let report = finish_driver(driver);
    let kernel = done_json(&server.wait(STEP_TIMEOUT).expect_success("netns-peer.py serve"), "netns-peer.py serve");
    let conn = only_connection(&report).clone();
    assert_streams(&conn, &kernel, sluice_sends, kernel_sends);
    summary(name, &conn, &kernel);
    (report, kernel)
}

#[test]
fn linux_connects_to_sluice_and_both_agree_on_mss_wscale_sack_timestamps() {
    let (report, kernel) = kernel_to_sluice_bulk("kernel→sluice handshake", 0, 100_000, 100_000);
    assert_negotiated(only_connection(&report), &kernel);
    assert_clean_input(&report);
}

#[test]
fn sluice_connects_to_linux_and_both_agree_on_mss_wscale_sack_timestamps() {
    let (report, kernel) = sluice_to_kernel_bulk("sluice→kernel handshake", 0, 100_000, 100_000);
    assert_negotiated(only_connection(&report), &kernel);
    assert_clean_input(&report);
}

#[test]
fn bulk_8_mib_each_way_with_linux_as_client() {
    let (report, _) = kernel_to_sluice_bulk("bulk, kernel client", 0, BULK, BULK);
    assert_clean_input(&report);
}

#[test]
fn bulk_8_mib_each_way_with_linux_as_server() {
    let (report, _) = sluice_to_kernel_bulk("bulk, kernel server", 0, BULK, BULK);
    assert_clean_input(&report);
}

/// Losses on the bridge both ways: data must still arrive intact, and both
/// ends must have retransmitted to get it there.
fn assert_recovered_from_loss(report: &Value, kernel: &Value) {
    let conn = only_connection(report);
    let ours = u64_of(&conn["info"]["retransmits"], "sluice retransmits");
    let stack_total = u64_of(&report["stats"]["tcp_retransmits"], "stats.tcp_retransmits");
    let linux = u64_of(&kernel["tcp_info"]["total_retrans"], "linux total_retrans");
    assert!(ours > 0 && stack_total >= ours, "Sluice sent 8 MiB through 5% loss without retransmitting: {report:#}");
    assert!(linux > 0, "Linux sent 8 MiB through 5% loss without retransmitting: {kernel:#}");
}

#[test]
fn bulk_8_mib_each_way_through_5_percent_loss_with_linux_as_client() {
    let (report, kernel) = kernel_to_sluice_bulk("bulk 5% loss, kernel client", 5, BULK, BULK);
    assert_recovered_from_loss(&report, &kernel);
}

#[test]
fn bulk_8_mib_each_way_through_5_percent_loss_with_linux_as_server() {
    let (report, kernel) = sluice_to_kernel_bulk("bulk 5% loss, kernel server", 5, BULK, BULK);
    assert_recovered_from_loss(&report, &kernel);
}

#[test]
fn echo_of_many_small_messages_on_parallel_connections() {
    const CONNECTIONS: usize = 4;
    const MESSAGES: u64 = 500;
    let _topology = Topology::up(0);
    let driver = start_driver(&args(&["--exit-after", &CONNECTIONS.to_string(), "serve-echo", &PORT.to_string()]));
    let kernel = run_kernel_client(&args(&[
        "echo",
        &SLUICE_IP.to_string(),
        &PORT.to_string(),
        "--messages",
        &MESSAGES.to_string(),
        "--connections",
        &CONNECTIONS.to_string(),
    ]));
    let report = finish_driver(driver);

    assert_eq!(kernel["ok"], true, "{kernel:#}");
    let clients = kernel["connections"].as_array().expect("client connections");
    let mut client_bytes: Vec<u64> = clients
        .iter()
        .map(|c| {
            assert_eq!(u64_of(&c["messages"], "messages"), MESSAGES, "{c:#}");
            u64_of(&c["bytes"], "bytes")
        })
        .collect();
    let conns = report["connections"].as_array().expect("connections");
    assert_eq!(conns.len(), CONNECTIONS, "{report:#}");
    let mut echoed: Vec<u64> = conns
        .iter()
        .map(|c| {
            assert!(c["error"].is_null(), "{c:#}");
            // What came in went back out, byte for byte.
            assert_eq!(c["sent"], c["received"], "{c:#}");
            assert_eq!(c["sent_sha256"], c["recv_sha256"], "{c:#}");
            u64_of(&c["received"], "received")
        })
        .collect();
    client_bytes.sort_unstable();
    echoed.sort_unstable();
    assert_eq!(client_bytes, echoed, "each client's bytes were echoed by one Sluice connection");
    assert_clean_input(&report);
}

#[test]
fn linux_pings_sluice() {
    let _topology = Topology::up(0);
    let driver = start_driver(&args(&["--exit-after", "1", "serve-echo", &PORT.to_string()]));
    let mut ping = in_namespace(PEER_NS, "ping");
    ping.args(["-c", "3", "-i", "0.2", "-W", "2", &SLUICE_IP.to_string()]);
    let ping = Process::spawn(ping).expect("spawn ping").wait(Duration::from_secs(30)).expect_success("ping");
    assert!(ping.stdout.contains("3 received"), "{ping:#?}");
    // One echo exchange ends the driver so it reports its counters.
    let kernel = run_kernel_client(&args(&["echo", &SLUICE_IP.to_string(), &PORT.to_string(), "--messages", "1"]));
    assert_eq!(kernel["ok"], true, "{kernel:#}");
    let report = finish_driver(driver);
    assert!(u64_of(&report["stats"]["icmp_echo_replies"], "icmp_echo_replies") >= 3, "{report:#}");
}

/// The topology and TAP device alone, without the engine: Linux's ARP request
/// reaches the device, a reply written to it teaches Linux our MAC, and pings
/// and TCP SYNs then arrive addressed to that MAC with complete, valid
/// checksums (never the partial ones a veth hands on with offload on).
#[test]
fn tap_plumbing_carries_linux_arp_and_pings_without_the_engine() {
    let _topology = Topology::up(0);
    let mut cmd = in_namespace(MID_NS, env!("CARGO_BIN_EXE_sluice-tap-probe"));
    cmd.args(["--tap", TAP, "--mac", SLUICE_MAC, "--ip", &SLUICE_IP.to_string()])
        .args(["--echo-requests", "3", "--tcp-segments", "1", "--duration", "20"]);
    let mut probe = Process::spawn(cmd).expect("spawn sluice-tap-probe");
    if probe.wait_for_line(r#""event":"ready""#, READY_TIMEOUT).is_none() {
        panic!("sluice-tap-probe never became ready: {:#?}", probe.wait(Duration::ZERO));
    }

    let mut ping = in_namespace(PEER_NS, "ping");
    ping.args(["-c", "3", "-i", "0.2", "-W", "1", &SLUICE_IP.to_string()]);
    let ping = Process::spawn(ping).expect("spawn ping").wait(Duration::from_secs(30));
    // The probe answers ARP only, so every echo request goes unanswered.
    assert!(!ping.killed && ping.stdout.contains("3 packets transmitted, 0 received"), "{ping:#?}");

    // A connection attempt nobody answers: its SYN is all the probe needs.
    let mut syn = in_namespace(PEER_NS, "python3");
    syn.args(["-c", &format!("import socket; s = socket.socket(); s.settimeout(0.5); s.connect_ex(('{SLUICE_IP}', {PORT}))")]);
    Process::spawn(syn).expect("spawn python3").wait(Duration::from_secs(30)).expect_success("python3 connect_ex");

    let report = done_json(&probe.wait(Duration::from_secs(30)).expect_success("sluice-tap-probe"), "sluice-tap-probe");
    assert!(u64_of(&report["tcp_segments_for_us"], "tcp_segments_for_us") >= 1, "{report:#}");
    assert_eq!(u64_of(&report["tcp_bad_checksum"], "tcp_bad_checksum"), 0, "{report:#}");
    assert!(u64_of(&report["arp_requests_for_us"], "arp_requests_for_us") >= 1, "{report:#}");
    assert!(u64_of(&report["arp_replies_sent"], "arp_replies_sent") >= 1, "{report:#}");
    assert_eq!(u64_of(&report["echo_requests_for_us"], "echo_requests_for_us"), 3, "{report:#}");
    assert_eq!(u64_of(&report["malformed_for_us"], "malformed_for_us"), 0, "{report:#}");

    let mut neigh = in_namespace(PEER_NS, "ip");
    neigh.args(["neigh", "show", &SLUICE_IP.to_string()]);
    let neigh = Process::spawn(neigh).expect("spawn ip neigh").wait(Duration::from_secs(10)).expect_success("ip neigh");
    assert!(neigh.stdout.contains(SLUICE_MAC), "Linux did not learn our MAC: {neigh:#?}");
}
