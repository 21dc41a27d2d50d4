//! The driver's JSON output lines.

use sluice_stack::tcp::conn::TcpInfo;
use sluice_stack::Stats;

use super::driver::Outcome;
use super::json::JsonObject;
use super::transfer::TransferReport;

/// Printed once the application is listening or connecting.
pub fn ready_line(tap: &str, mode: &str) -> String {
    JsonObject::new().str("event", "ready").str("tap", tap).str("mode", mode).finish()
}

/// Printed when the run ends: per-connection results and engine counters.
pub fn done_line(outcome: &Outcome) -> String {
    let app = &outcome.app;
    let secs = outcome.elapsed.as_secs_f64();
    let mut line = JsonObject::new()
        .str("event", "done")
        .str("mode", app.mode().name())
        .bool("ok", succeeded(outcome))
        .bool("timed_out", outcome.timed_out)
        .float("elapsed_s", secs)
        .num("finished", app.finished().len() as u64)
        .num("unfinished", app.unfinished() as u64);
    line = match app.fatal() {
        Some(reason) => line.str("fatal", reason),
        None => line.null("fatal"),
    };
    line.array("connections", app.finished().iter().map(transfer))
        .object("stats", stats(outcome.stack.stats()))
        .object(
            "device",
            JsonObject::new()
                .num("frames_read", outcome.device.frames_read)
                .num("frames_written", outcome.device.frames_written)
                .num("write_blocked", outcome.device.write_blocked)
                .num("loop_turns", outcome.device.loop_turns),
        )
        .finish()
}

/// Every requested connection finished without error.
pub fn succeeded(outcome: &Outcome) -> bool {
    let app = &outcome.app;
    !outcome.timed_out
        && app.fatal().is_none()
        && app.finished().iter().all(|t| t.error.is_none())
        && !matches!(app.exit_after(), Some(n) if app.finished().len() < n)
}

fn transfer(t: &TransferReport) -> JsonObject {
    let secs = t.elapsed_us as f64 / 1e6;
    let moved = t.sent.max(t.received) as f64;
    let mbit_s = if secs > 0.0 { moved * 8.0 / secs / 1e6 } else { 0.0 };
    let mut o = JsonObject::new().str("peer", &t.peer.to_string());
    o = match &t.error {
        Some(e) => o.str("error", e),
        None => o.null("error"),
    };
    o = o
        .num("sent", t.sent)
        .num("received", t.received)
        .str("sent_sha256", &t.sent_sha256)
        .str("recv_sha256", &t.recv_sha256)
        .num("elapsed_us", t.elapsed_us)
        .float("mbit_s", mbit_s);
    match &t.info {
        Some(info) => o.object("info", tcp_info(info)),
        None => o.null("info"),
    }
}

fn tcp_info(i: &TcpInfo) -> JsonObject {
    JsonObject::new()
        .str("state", &format!("{:?}", i.state))
        .num("snd_mss", i.snd_mss)
        .num("rcv_mss", i.rcv_mss)
        .num("snd_wscale", i.snd_wscale)
        .num("rcv_wscale", i.rcv_wscale)
        .bool("sack", i.sack_enabled)
        .bool("timestamps", i.timestamps_enabled)
        .num("cwnd_bytes", i.cwnd_bytes)
        .num("ssthresh_bytes", i.ssthresh_bytes)
        .num("srtt_us", i.srtt_us)
        .num("rto_us", i.rto_us)
        .num("bytes_sent", i.bytes_sent)
        .num("bytes_acked", i.bytes_acked)
        .num("bytes_received", i.bytes_received)
        .num("segs_out", i.segs_out)
        .num("segs_in", i.segs_in)
        .num("retransmits", i.retransmits)
        .num("fast_retransmits", i.fast_retransmits)
        .num("timeouts", i.timeouts)
}

fn stats(s: &Stats) -> JsonObject {
    JsonObject::new()
        .num("frames_in", s.frames_in)
        .num("frames_out", s.frames_out)
        .num("bytes_in", s.bytes_in)
        .num("bytes_out", s.bytes_out)
        .num("drop_malformed_ethernet", s.drop_malformed_ethernet)
        .num("drop_malformed_arp", s.drop_malformed_arp)
        .num("drop_malformed_ipv4", s.drop_malformed_ipv4)
        .num("drop_malformed_tcp", s.drop_malformed_tcp)
        .num("drop_malformed_icmp", s.drop_malformed_icmp)
        .num("drop_bad_checksum", s.drop_bad_checksum)
        .num("drop_not_for_us", s.drop_not_for_us)
        .num("drop_unsupported", s.drop_unsupported)
        .num("arp_requests_out", s.arp_requests_out)
        .num("arp_replies_out", s.arp_replies_out)
        .num("icmp_echo_replies", s.icmp_echo_replies)
        .num("tcp_segments_in", s.tcp_segments_in)
        .num("tcp_segments_out", s.tcp_segments_out)
        .num("tcp_rst_out", s.tcp_rst_out)
        .num("tcp_no_socket", s.tcp_no_socket)
        .num("tcp_retransmits", s.tcp_retransmits)
        .num("tcp_fast_retransmits", s.tcp_fast_retransmits)
        .num("tcp_timeouts", s.tcp_timeouts)
        .num("tcp_fast_retransmits_postponed", s.tcp_fast_retransmits_postponed)
        .num("tcp_postponed_stale", s.tcp_postponed_stale)
        .num("tcp_timer_stale", s.tcp_timer_stale)
        .num("events_stale", s.events_stale)
        .num("connections_opened", s.connections_opened)
        .num("connections_closed", s.connections_closed)
        .num("connections_reset", s.connections_reset)
        .num("connections_timed_out", s.connections_timed_out)
}
