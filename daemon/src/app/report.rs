//! What `sluice stats` and `sluice sessions` show of an app worker.

use std::net::SocketAddrV4;
use std::sync::atomic::Ordering;

use sluice_shm::layout::{app_words, desc};
use sluice_stack::tcp::conn::TcpState;
use sluice_stack::Stack;

use super::session::{Role, Session};
use super::state::App;
use super::{AppStats, SessionRow};

/// A state as `ss` names it.
fn state_name(state: TcpState) -> &'static str {
    match state {
        TcpState::Closed => "CLOSED",
        TcpState::SynSent => "SYN-SENT",
        TcpState::SynReceived => "SYN-RECV",
        TcpState::Established => "ESTABLISHED",
        TcpState::FinWait1 => "FIN-WAIT-1",
        TcpState::FinWait2 => "FIN-WAIT-2",
        TcpState::CloseWait => "CLOSE-WAIT",
        TcpState::Closing => "CLOSING",
        TcpState::LastAck => "LAST-ACK",
        TcpState::TimeWait => "TIME-WAIT",
    }
}

/// Bytes between a fifo's two index words, for display only: the app's
/// word is not trusted, so the value is capped at the fifo size.
fn fifo_bytes(tail: u32, head: u32, size: u32) -> u32 {
    tail.wrapping_sub(head).min(size)
}

impl App {
    pub(super) fn stats(&self) -> AppStats {
        let listeners = self.sessions.iter().filter(|(_, s)| matches!(s.role, Role::Listener(_))).count();
        AppStats {
            id: self.identity.id.0,
            pid: self.identity.pid,
            uid: self.identity.uid,
            sessions: (self.sessions.len() - listeners) as u64,
            listeners: listeners as u64,
            requests: self.requests_taken,
            events: self.outbox.published(),
            backlog: self.outbox.backlog_len() as u64,
            backlog_high_water: self.outbox.backlog_high_water() as u64,
            bad_requests: self.bad_requests,
            violations: self.violations.total(),
        }
    }

    pub(super) fn rows(&self, stack: &Stack) -> Vec<SessionRow> {
        self.sessions.iter().map(|(_, s)| self.row(stack, s)).collect()
    }

    fn row(&self, stack: &Stack, session: &Session) -> SessionRow {
        let address = |ip_word, port_word| {
            let ip = session.desc.word(ip_word).load(Ordering::Relaxed);
            let port = session.desc.word(port_word).load(Ordering::Relaxed) as u16;
            SocketAddrV4::new(ip.into(), port).to_string()
        };
        let mut row = SessionRow {
            app: self.identity.id.0,
            pid: self.identity.pid,
            local: address(desc::LOCAL_IP, desc::LOCAL_PORT),
            ..SessionRow::default()
        };
        match &session.role {
            Role::Listener(_) => {
                row.state = "LISTEN".into();
                row.remote = "0.0.0.0:*".into();
            }
            Role::Conn(conn) => {
                row.remote = address(desc::REMOTE_IP, desc::REMOTE_PORT);
                let desc_word = |offset| session.desc.word(offset).load(Ordering::Relaxed);
                let app_word = |offset| session.words.word(offset).load(Ordering::Relaxed);
                row.rx_fifo = fifo_bytes(desc_word(desc::RX_TAIL), app_word(app_words::RX_HEAD), conn.rx.size());
                row.tx_fifo = fifo_bytes(app_word(app_words::TX_TAIL), desc_word(desc::TX_HEAD), conn.tx.size());
                match stack.tcp_info(conn.id) {
                    Ok(info) => {
                        row.state = info.state.map_or("UNKNOWN", state_name).into();
                        row.cwnd = info.cwnd_bytes;
                        row.ssthresh = info.ssthresh_bytes;
                        row.srtt_us = info.srtt_us;
                        row.rttvar_us = info.rttvar_us;
                        row.rto_us = info.rto_us;
                        row.bytes_acked = info.bytes_acked;
                        row.bytes_received = info.bytes_received;
                        row.retransmits = info.retransmits;
                    }
                    Err(_) => row.state = "CLOSED".into(),
                }
            }
            Role::Cut(end) => {
                row.remote = address(desc::REMOTE_IP, desc::REMOTE_PORT);
                let desc_word = |offset| session.desc.word(offset).load(Ordering::Relaxed);
                let app_word = |offset| session.words.word(offset).load(Ordering::Relaxed);
                row.rx_fifo = fifo_bytes(desc_word(desc::RX_TAIL), app_word(app_words::RX_HEAD), end.rx.size());
                row.tx_fifo = fifo_bytes(app_word(app_words::TX_TAIL), desc_word(desc::TX_HEAD), end.tx.size());
                row.state = end.state_name().into();
                row.cut_through = true;
            }
        }
        row
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_bytes_wrap_and_are_capped() {
        assert_eq!(fifo_bytes(10, 4, 4096), 6);
        assert_eq!(fifo_bytes(3, u32::MAX - 2, 4096), 6, "wrapping indices");
        assert_eq!(fifo_bytes(0, 1, 4096), 4096, "a head past the tail is capped");
    }
}
