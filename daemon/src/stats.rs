//! What `sluice stats` and `sluice sessions` report (design §3.8): snapshot
//! types, filled by the workers and the control thread, and their rendering
//! as JSON (serde) or as text for people.

use std::fmt::Write as _;

use serde::Serialize;
use sluice_stack::Stats;

use crate::app::{AppStats, SessionRow};
use crate::device::{DeviceCounters, DeviceInfo};

/// The whole daemon, for `sluice stats`.
#[derive(Clone, Debug, Default, Serialize)]
pub struct DaemonStats {
    /// The stack's address, `ADDR/PREFIX`.
    pub address: String,
    pub mtu: u32,
    /// App workers attached over the control socket.
    pub apps_attached: u32,
    pub workers: Vec<WorkerStats>,
}

/// One worker thread: its device queue, engine, poller and apps.
#[derive(Clone, Debug, Default, Serialize)]
pub struct WorkerStats {
    pub worker: u32,
    pub mac: String,
    pub device: DeviceInfo,
    pub device_counters: DeviceCounters,
    pub engine: EngineStats,
    pub poller: PollerCounters,
    pub apps: Vec<AppStats>,
}

/// How a worker spent its iterations (design §3.3).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct PollerCounters {
    /// Loop iterations.
    pub iterations: u64,
    /// Iterations that found work.
    pub busy_iterations: u64,
    /// Times the worker blocked in `epoll_wait`.
    pub sleeps: u64,
    /// Sleeps ended by a descriptor rather than the timeout.
    pub wakeups: u64,
    /// Sleeps abandoned because the final re-check of the request rings found work.
    pub sleeps_skipped: u64,
    /// Device receive/flush errors.
    pub device_errors: u64,
}

/// The engine counters `sluice stats` shows (a selection of
/// `sluice_stack::Stats`, plus the live connection count).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct EngineStats {
    /// Live connections, including half-open, orphaned and TIME-WAIT.
    pub connections: u64,
    pub frames_in: u64,
    pub frames_out: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
    /// Frames dropped on input, every reason together (malformed, checksum,
    /// not for us, unsupported, bad source).
    pub frames_dropped: u64,
    pub tcp_segments_in: u64,
    pub tcp_segments_out: u64,
    pub tcp_retransmits: u64,
    pub tcp_fast_retransmits: u64,
    pub tcp_timeouts: u64,
    /// Fast retransmits the per-poll budget postponed to a later poll.
    pub tcp_fast_retransmits_postponed: u64,
    /// Postponed retransmits dropped because their connection was gone.
    pub tcp_postponed_dropped: u64,
    pub tcp_rst_out: u64,
    /// Segments for no connection or listener.
    pub tcp_no_socket: u64,
    pub syn_cookies_sent: u64,
    pub syn_cookies_accepted: u64,
    pub syn_cookies_rejected: u64,
    pub accept_queue_overflow: u64,
    pub syn_dropped_accept_queue_full: u64,
    pub half_open_dropped: u64,
    pub connections_opened: u64,
    pub connections_closed: u64,
    pub connections_reset: u64,
    pub connections_timed_out: u64,
    pub connection_limit_hit: u64,
    pub events_dropped_queue_full: u64,
    pub arp_failed: u64,
    pub ip_no_route: u64,
}

impl EngineStats {
    /// The selection from an engine's counters; `connections` is
    /// `Stack::connection_count()`.
    pub fn new(s: &Stats, connections: usize) -> EngineStats {
        EngineStats {
            connections: connections as u64,
            frames_in: s.frames_in,
            frames_out: s.frames_out,
            bytes_in: s.bytes_in,
            bytes_out: s.bytes_out,
            frames_dropped: s.drop_malformed_ethernet
                + s.drop_malformed_arp
                + s.drop_malformed_ipv4
                + s.drop_malformed_tcp
                + s.drop_malformed_icmp
                + s.drop_bad_checksum
                + s.drop_not_for_us
                + s.drop_unsupported
                + s.drop_bad_source,
            tcp_segments_in: s.tcp_segments_in,
            tcp_segments_out: s.tcp_segments_out,
            tcp_retransmits: s.tcp_retransmits,
            tcp_fast_retransmits: s.tcp_fast_retransmits,
            tcp_timeouts: s.tcp_timeouts,
            tcp_fast_retransmits_postponed: s.tcp_fast_retransmits_postponed,
            tcp_postponed_dropped: s.tcp_postponed_stale,
            tcp_rst_out: s.tcp_rst_out,
            tcp_no_socket: s.tcp_no_socket,
            syn_cookies_sent: s.syn_cookies_sent,
            syn_cookies_accepted: s.syn_cookies_accepted,
            syn_cookies_rejected: s.syn_cookies_rejected,
            accept_queue_overflow: s.accept_queue_overflow,
            syn_dropped_accept_queue_full: s.syn_dropped_accept_queue_full,
            half_open_dropped: s.half_open_dropped,
            connections_opened: s.connections_opened,
            connections_closed: s.connections_closed,
            connections_reset: s.connections_reset,
            connections_timed_out: s.connections_timed_out,
            connection_limit_hit: s.connection_limit_hit,
            events_dropped_queue_full: s.events_dropped_queue_full,
            arp_failed: s.arp_failed,
            ip_no_route: s.ip_no_route,
        }
    }
}

/// `sluice sessions`: every session of every worker.
#[derive(Clone, Debug, Default, Serialize)]
pub struct SessionList {
    pub sessions: Vec<SessionRow>,
}

/// Pretty JSON of a snapshot (serialising these plain structs cannot fail;
/// if it ever did, the error text is returned instead of a panic).
pub fn to_json<T: Serialize>(value: &T) -> String {
    match serde_json::to_string_pretty(value) {
        Ok(mut s) => {
            s.push('\n');
            s
        }
        Err(e) => format!("{{\"error\": \"{e}\"}}\n"),
    }
}

/// `aa:bb:cc:dd:ee:ff`.
pub fn format_mac(mac: [u8; 6]) -> String {
    let [a, b, c, d, e, f] = mac;
    format!("{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{f:02x}")
}

/// Lays `rows` out in left-aligned columns two spaces apart, each line
/// prefixed with `indent`.
fn table(indent: &str, rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| rows.iter().filter_map(|r| r.get(c)).map(|s| s.chars().count()).max().unwrap_or(0))
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::from(indent);
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == row.len() {
                line.push_str(cell);
            } else {
                let _ = write!(line, "{cell:<width$}  ", width = widths[c]);
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// The human form of `sluice stats`.
pub fn render_stats(s: &DaemonStats) -> String {
    let mut out = String::new();
    let workers = s.workers.len();
    let _ = writeln!(
        out,
        "sluice {} mtu {}: {} worker{}, {} app worker{} attached",
        s.address,
        s.mtu,
        workers,
        if workers == 1 { "" } else { "s" },
        s.apps_attached,
        if s.apps_attached == 1 { "" } else { "s" },
    );
    for w in &s.workers {
        let d = &w.device;
        let _ =
            writeln!(out, "worker {}: {} {} queue {} ({}), mac {}", w.worker, d.kind, d.name, d.queue, d.mode, w.mac);
        let c = &w.device_counters;
        let _ = writeln!(
            out,
            "  device  rx {} frames {} bytes, tx {} frames {} bytes, dropped rx {} tx {}, kicks {}",
            c.rx_frames, c.rx_bytes, c.tx_frames, c.tx_bytes, c.rx_dropped, c.tx_dropped, c.kicks
        );
        let e = &w.engine;
        let _ = writeln!(
            out,
            "  engine  {} connections; opened {}, closed {}, reset {}, timed out {}, limit hit {}",
            e.connections,
            e.connections_opened,
            e.connections_closed,
            e.connections_reset,
            e.connections_timed_out,
            e.connection_limit_hit
        );
        let _ = writeln!(
            out,
            "          frames in {} out {} (dropped {}), segments in {} out {}, rst out {}, no socket {}",
            e.frames_in,
            e.frames_out,
            e.frames_dropped,
            e.tcp_segments_in,
            e.tcp_segments_out,
            e.tcp_rst_out,
            e.tcp_no_socket
        );
        let _ = writeln!(
            out,
            "          retransmits {} (fast {}, timeouts {}), fast retransmits postponed {}, postponed dropped {}",
            e.tcp_retransmits,
            e.tcp_fast_retransmits,
            e.tcp_timeouts,
            e.tcp_fast_retransmits_postponed,
            e.tcp_postponed_dropped
        );
        let _ = writeln!(
            out,
            "          syn cookies sent {} accepted {} rejected {}, accept queue overflow {}, syn dropped {}, half-open dropped {}",
            e.syn_cookies_sent,
            e.syn_cookies_accepted,
            e.syn_cookies_rejected,
            e.accept_queue_overflow,
            e.syn_dropped_accept_queue_full,
            e.half_open_dropped
        );
        let _ = writeln!(
            out,
            "          events dropped {}, arp failed {}, no route {}",
            e.events_dropped_queue_full, e.arp_failed, e.ip_no_route
        );
        let p = &w.poller;
        let _ = writeln!(
            out,
            "  poller  iterations {}, busy {}, sleeps {}, wake-ups {}, sleeps skipped {}, device errors {}",
            p.iterations, p.busy_iterations, p.sleeps, p.wakeups, p.sleeps_skipped, p.device_errors
        );
        if w.apps.is_empty() {
            out.push_str("  apps    none\n");
            continue;
        }
        let mut rows = vec![[
            "APP",
            "PID",
            "UID",
            "SESSIONS",
            "LISTENERS",
            "REQUESTS",
            "EVENTS",
            "BACKLOG",
            "BACKLOG-MAX",
            "BAD",
            "VIOLATIONS",
        ]
        .iter()
        .map(|h| h.to_string())
        .collect::<Vec<_>>()];
        for a in &w.apps {
            rows.push(
                [
                    a.id.into(),
                    a.pid as i64,
                    a.uid.into(),
                    a.sessions as i64,
                    a.listeners as i64,
                    a.requests as i64,
                    a.events as i64,
                    a.backlog as i64,
                    a.backlog_high_water as i64,
                    a.bad_requests as i64,
                    a.violations as i64,
                ]
                .iter()
                .map(i64::to_string)
                .collect(),
            );
        }
        out.push_str(&table("  ", &rows));
    }
    out
}

/// The human form of `sluice sessions`, in the manner of `ss -tin`: one
/// line per session, then its TCP details indented below (not for listeners).
pub fn render_sessions(rows: &[SessionRow]) -> String {
    let mut lines = vec![["State", "Recv-Q", "Send-Q", "Local Address:Port", "Peer Address:Port", "Process"]
        .iter()
        .map(|h| h.to_string())
        .collect::<Vec<_>>()];
    let mut details = vec![None];
    for r in rows {
        lines.push(vec![
            r.state.clone(),
            r.rx_fifo.to_string(),
            r.tx_fifo.to_string(),
            r.local.clone(),
            r.remote.clone(),
            format!("app={},pid={}", r.app, r.pid),
        ]);
        details.push((r.state != "LISTEN").then(|| {
            if r.cut_through {
                // No TCP below it: the peer is another app of this daemon.
                return "\t cut-through".to_string();
            }
            format!(
                "\t cwnd:{} ssthresh:{} rtt:{:.3}/{:.3} rto:{:.0} bytes_acked:{} bytes_received:{} retrans:{}",
                r.cwnd,
                r.ssthresh,
                f64::from(r.srtt_us) / 1000.0,
                f64::from(r.rttvar_us) / 1000.0,
                f64::from(r.rto_us) / 1000.0,
                r.bytes_acked,
                r.bytes_received,
                r.retransmits
            )
        }));
    }
    let mut out = String::new();
    for (line, detail) in table("", &lines).lines().zip(details) {
        out.push_str(line);
        out.push('\n');
        if let Some(detail) = detail {
            out.push_str(&detail);
            out.push('\n');
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> DaemonStats {
        DaemonStats {
            address: "10.0.0.2/24".into(),
            mtu: 1500,
            apps_attached: 1,
            workers: vec![WorkerStats {
                worker: 0,
                mac: format_mac([2, 0, 10, 0, 0, 2]),
                device: DeviceInfo { kind: "tap".into(), name: "sltap0".into(), queue: 0, mode: "tap".into() },
                device_counters: DeviceCounters { rx_frames: 5, ..Default::default() },
                engine: EngineStats { tcp_retransmits: 7, tcp_postponed_dropped: 2, ..Default::default() },
                poller: PollerCounters { sleeps: 3, ..Default::default() },
                apps: vec![AppStats { id: 1, pid: 4242, uid: 1000, sessions: 2, ..Default::default() }],
            }],
        }
    }

    #[test]
    fn stats_json_has_the_documented_fields() {
        let v: serde_json::Value = serde_json::from_str(&to_json(&sample())).unwrap();
        assert_eq!(v["address"], "10.0.0.2/24");
        let w = &v["workers"][0];
        assert_eq!(w["mac"], "02:00:0a:00:00:02");
        assert_eq!(w["device"]["kind"], "tap");
        assert_eq!(w["device_counters"]["rx_frames"], 5);
        assert_eq!(w["engine"]["tcp_retransmits"], 7);
        assert_eq!(w["engine"]["tcp_postponed_dropped"], 2);
        assert_eq!(w["poller"]["sleeps"], 3);
        assert_eq!(w["apps"][0]["pid"], 4242);
    }

    #[test]
    fn engine_stats_sum_every_input_drop() {
        let s = Stats {
            drop_bad_checksum: 1,
            drop_not_for_us: 2,
            drop_malformed_tcp: 4,
            tcp_postponed_stale: 9,
            ..Default::default()
        };
        let e = EngineStats::new(&s, 3);
        assert_eq!((e.frames_dropped, e.tcp_postponed_dropped, e.connections), (7, 9, 3));
    }

    #[test]
    fn stats_text_shows_each_section_and_the_app_table() {
        let text = render_stats(&sample());
        assert!(text.starts_with("sluice 10.0.0.2/24 mtu 1500: 1 worker, 1 app worker attached\n"), "{text}");
        assert!(text.contains("worker 0: tap sltap0 queue 0 (tap), mac 02:00:0a:00:00:02"), "{text}");
        assert!(text.contains("retransmits 7 (fast 0, timeouts 0)"), "{text}");
        assert!(text.contains("postponed dropped 2"), "{text}");
        let header = text.lines().find(|l| l.trim_start().starts_with("APP")).unwrap();
        let row = text.lines().find(|l| l.trim_start().starts_with("1 ")).unwrap();
        // Columns line up: the PID value starts where its header does.
        assert_eq!(header.find("PID"), row.find("4242"), "{text}");
    }

    #[test]
    fn sessions_text_is_aligned_and_details_follow_connections_only() {
        let rows = vec![
            SessionRow {
                app: 1,
                pid: 9,
                state: "LISTEN".into(),
                local: "0.0.0.0:80".into(),
                remote: "0.0.0.0:*".into(),
                ..Default::default()
            },
            SessionRow {
                app: 1,
                pid: 9,
                state: "ESTAB".into(),
                local: "10.0.0.2:80".into(),
                remote: "10.0.0.1:40000".into(),
                cwnd: 10,
                srtt_us: 1500,
                rx_fifo: 12,
                ..Default::default()
            },
        ];
        let text = render_sessions(&rows);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 4, "{text}");
        assert!(lines[0].starts_with("State"));
        assert!(lines[1].starts_with("LISTEN"));
        assert!(lines[2].starts_with("ESTAB"));
        assert!(lines[3].contains("cwnd:10") && lines[3].contains("rtt:1.500/"), "{text}");
        assert_eq!(lines[0].find("Local"), lines[2].find("10.0.0.2:80"));
        assert_eq!(lines[0].find("Process"), lines[1].find("app=1,pid=9"));
    }

    #[test]
    fn cut_through_sessions_are_marked_instead_of_tcp_details() {
        let row = SessionRow {
            state: "ESTABLISHED".into(),
            local: "127.0.0.1:40000".into(),
            remote: "127.0.0.1:80".into(),
            cut_through: true,
            ..Default::default()
        };
        let text = render_sessions(&[row]);
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text}");
        assert_eq!(lines[2].trim(), "cut-through");
    }

    #[test]
    fn an_empty_session_list_is_just_the_header() {
        assert_eq!(render_sessions(&[]).lines().count(), 1);
    }
}
