//! Segments that belong to no connection: RSTs answering segments for no
//! socket (RFC 9293 §3.10.7.1) and SYN-cookie SYN-ACKs (RFC 4987 §3.6). They
//! are built on receive and sent by the next `poll_transmit`; the queue is
//! bounded so a flood between two polls holds a fixed amount of memory.

use core::net::SocketAddrV4;
use std::collections::VecDeque;

use crate::tcp::seq::SeqNum;
use crate::wire::{TcpFlags, TcpRepr};

/// Control segments held between two polls, at the most.
const CAPACITY: usize = 4096;

#[derive(Clone, Copy, Debug)]
pub(crate) struct ControlSegment {
    pub local: SocketAddrV4,
    pub remote: SocketAddrV4,
    pub repr: TcpRepr,
}

pub(crate) struct ControlQueue {
    queue: VecDeque<ControlSegment>,
}

impl ControlQueue {
    pub fn new() -> Self {
        ControlQueue { queue: VecDeque::new() }
    }

    /// Queues a segment; false (and nothing queued) when full.
    pub fn push(&mut self, segment: ControlSegment) -> bool {
        if self.queue.len() >= CAPACITY {
            return false;
        }
        self.queue.push_back(segment);
        true
    }

    pub fn front(&self) -> Option<&ControlSegment> {
        self.queue.front()
    }
    pub fn pop(&mut self) {
        self.queue.pop_front();
    }
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }
}

/// The reset answering `seg` when no connection exists (RFC 9293 §3.10.7.1):
/// none for a RST; `<SEQ=SEG.ACK><CTL=RST>` if it carried an ACK, else
/// `<SEQ=0><ACK=SEG.SEQ+SEG.LEN><CTL=RST,ACK>`.
pub(crate) fn reset_for(seg: &TcpRepr) -> Option<TcpRepr> {
    if seg.flags.rst() {
        return None;
    }
    let mut rst = TcpRepr { src_port: seg.dst_port, dst_port: seg.src_port, ..TcpRepr::default() };
    if seg.flags.ack() {
        rst.seq = seg.ack;
        rst.flags = TcpFlags(TcpFlags::RST);
    } else {
        rst.seq = SeqNum(0);
        rst.ack = seg.seq + seg.segment_len();
        rst.flags = TcpFlags(TcpFlags::RST | TcpFlags::ACK);
    }
    Some(rst)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn segment(flags: u8, seq: u32, ack: u32, payload_len: usize) -> TcpRepr {
        TcpRepr {
            src_port: 40000,
            dst_port: 80,
            seq: SeqNum(seq),
            ack: SeqNum(ack),
            flags: TcpFlags(flags),
            payload_len,
            ..TcpRepr::default()
        }
    }

    #[test]
    fn reset_follows_rfc9293_closed_state_rules() {
        assert!(reset_for(&segment(TcpFlags::RST, 1, 0, 0)).is_none(), "never answer a RST");
        assert!(reset_for(&segment(TcpFlags::RST | TcpFlags::ACK, 1, 5, 0)).is_none());

        let syn = reset_for(&segment(TcpFlags::SYN, 1000, 0, 0)).unwrap();
        assert_eq!((syn.src_port, syn.dst_port), (80, 40000));
        assert_eq!(syn.seq, SeqNum(0));
        assert_eq!(syn.ack, SeqNum(1001), "SYN occupies one sequence number");
        assert_eq!(syn.flags, TcpFlags(TcpFlags::RST | TcpFlags::ACK));

        let fin_data = reset_for(&segment(TcpFlags::FIN, 1000, 0, 10)).unwrap();
        assert_eq!(fin_data.ack, SeqNum(1011));

        let ack = reset_for(&segment(TcpFlags::ACK, 1000, 777, 5)).unwrap();
        assert_eq!(ack.seq, SeqNum(777));
        assert_eq!(ack.flags, TcpFlags(TcpFlags::RST));
    }

    #[test]
    fn queue_is_bounded() {
        let mut q = ControlQueue::new();
        let a = SocketAddrV4::new(core::net::Ipv4Addr::new(10, 0, 0, 1), 1);
        let seg = ControlSegment { local: a, remote: a, repr: TcpRepr::default() };
        for _ in 0..CAPACITY {
            assert!(q.push(seg));
        }
        assert!(!q.push(seg));
        q.pop();
        assert!(q.push(seg));
    }
}
