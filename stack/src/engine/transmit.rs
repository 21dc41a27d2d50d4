//! `poll_transmit`: frames out in a fixed order — ARP (released frames,
//! replies, requests), ICMP replies, control segments (RSTs, SYN cookies),
//! then the postponed fast-retransmit list, then every connection touched
//! since the last poll, and last the ARP requests those needed. Only touched connections are visited: the cost of a
//! poll is proportional to activity, not to the number of connections.
//!
//! Seed 003: VPP caps fast retransmits per dispatch and postpones the rest
//! in a list of connection indices, which could outlive the connections. Here
//! the list holds generation-checked handles: an entry whose connection was
//! freed (or whose slot was reused) does not resolve and is dropped and
//! counted, never applied.

use super::control::ControlSegment;
use super::egress::{tcp_ip_len, write_tcp_ip, SendOutcome};
use super::{ConnId, FrameSink, Stack};
use crate::tcp::conn::TxBudget;
use crate::time::Instant;
use crate::wire::TcpRepr;

/// Counts what passes to the caller's sink.
struct CountingSink<'a> {
    inner: &'a mut dyn FrameSink,
    frames: usize,
    bytes: u64,
}

impl FrameSink for CountingSink<'_> {
    fn emit(&mut self, len: usize, fill: &mut dyn FnMut(&mut [u8])) -> bool {
        let sent = self.inner.emit(len, fill);
        if sent {
            self.frames += 1;
            self.bytes += len as u64;
        }
        sent
    }
}

/// Why a connection's transmission stopped early.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum ConnTx {
    /// It sent what it could.
    Done,
    /// The sink is full: stop polling until next time.
    SinkFull,
}

impl Stack {
    /// Emit every frame that is due into `sink` (ARP, ICMP replies, TCP), until
    /// nothing is due or the sink is full. Returns the number of frames emitted.
    pub fn poll_transmit(&mut self, now: Instant, sink: &mut dyn FrameSink) -> usize {
        let mut sink = CountingSink { inner: sink, frames: 0, bytes: 0 };
        let _ = self.transmit_all(now, &mut sink);
        // Resolution may have failed while requests were polled.
        self.report_link_failures(now);
        self.wake_neighbour_waiters();
        self.stats.frames_out += sink.frames as u64;
        self.stats.bytes_out += sink.bytes;
        sink.frames
    }

    /// Whether `poll_transmit` has something to do right now (a caller that
    /// polls adaptively may sleep until `poll_timeout` when this is false).
    pub fn wants_transmit(&self) -> bool {
        !self.dirty.is_empty()
            || !self.postponed.is_empty()
            || !self.control.is_empty()
            || !self.icmp.is_empty()
            || self.egress.arp.has_output()
    }

    fn transmit_all(&mut self, now: Instant, sink: &mut dyn FrameSink) -> Result<(), ()> {
        self.transmit_arp(now, sink)?;
        self.transmit_icmp(now, sink)?;
        self.transmit_control(now, sink)?;
        let mut budget = TxBudget { fast_retransmits: self.config.fast_retransmit_budget };
        self.transmit_postponed(now, &mut budget, sink)?;
        self.transmit_dirty(now, &mut budget, sink)?;
        // Requests for neighbours first needed during this poll.
        self.transmit_arp_messages(now, sink)
    }

    fn transmit_arp(&mut self, now: Instant, sink: &mut dyn FrameSink) -> Result<(), ()> {
        while let Some(frame) = self.egress.arp.ready_frame() {
            if !sink.emit(frame.len(), &mut |buf| buf.copy_from_slice(frame)) {
                return Err(());
            }
            self.egress.arp.pop_ready_frame();
        }
        self.transmit_arp_messages(now, sink)
    }

    fn transmit_arp_messages(&mut self, now: Instant, sink: &mut dyn FrameSink) -> Result<(), ()> {
        while let Some(message) = self.egress.arp.poll_message(now, &mut self.stats) {
            if !self.egress.emit_arp(sink, message, &mut self.stats) {
                return Err(());
            }
        }
        Ok(())
    }

    fn transmit_icmp(&mut self, now: Instant, sink: &mut dyn FrameSink) -> Result<(), ()> {
        while let Some((dst, packet)) = self.icmp.front() {
            let outcome = self.egress.send_ip(now, &mut self.stats, sink, dst, packet.len(), &mut |buf| {
                buf.copy_from_slice(packet)
            });
            match outcome {
                SendOutcome::SinkFull => return Err(()),
                SendOutcome::Sent | SendOutcome::Held => {}
                SendOutcome::QueueFull(_) | SendOutcome::Unresolved | SendOutcome::NoRoute => {
                    self.stats.icmp_dropped += 1
                }
            }
            self.icmp.pop();
        }
        Ok(())
    }

    fn transmit_control(&mut self, now: Instant, sink: &mut dyn FrameSink) -> Result<(), ()> {
        while let Some(&segment) = self.control.front() {
            let ident = self.egress.next_ident();
            let len = tcp_ip_len(&segment.repr, 0);
            let outcome = self.egress.send_ip(now, &mut self.stats, sink, *segment.remote.ip(), len, &mut |buf| {
                write_tcp_ip(buf, segment.local, segment.remote, ident, &segment.repr, &[], &[])
            });
            match outcome {
                SendOutcome::SinkFull => return Err(()),
                SendOutcome::Sent | SendOutcome::Held => {
                    self.stats.tcp_segments_out += 1;
                    if segment.repr.flags.rst() {
                        self.stats.tcp_rst_out += 1;
                    }
                }
                SendOutcome::QueueFull(_) | SendOutcome::Unresolved | SendOutcome::NoRoute => {
                    self.stats.tcp_control_dropped += 1
                }
            }
            self.control.pop();
        }
        Ok(())
    }

    /// Connections whose fast retransmits were postponed, oldest first.
    fn transmit_postponed(&mut self, now: Instant, budget: &mut TxBudget, sink: &mut dyn FrameSink) -> Result<(), ()> {
        // Entries re-postponed during this pass wait for the next poll.
        for _ in 0..self.postponed.len() {
            let Some(id) = self.postponed.pop_front() else { break };
            let Some(slot) = self.conns.get_mut(id) else {
                self.stats.tcp_postponed_stale += 1;
                continue;
            };
            slot.postponed = false;
            // Served now: its place in the dirty queue (if any) is skipped.
            slot.dirty = false;
            if self.transmit_conn(now, id, budget, sink) == ConnTx::SinkFull {
                return Err(());
            }
        }
        Ok(())
    }

    fn transmit_dirty(&mut self, now: Instant, budget: &mut TxBudget, sink: &mut dyn FrameSink) -> Result<(), ()> {
        for _ in 0..self.dirty.len() {
            let Some(id) = self.dirty.pop_front() else { break };
            let Some(slot) = self.conns.get_mut(id) else { continue };
            if !slot.dirty {
                continue;
            }
            slot.dirty = false;
            if self.transmit_conn(now, id, budget, sink) == ConnTx::SinkFull {
                return Err(());
            }
        }
        Ok(())
    }

    /// Lets one connection send what is due, then settles it.
    fn transmit_conn(&mut self, now: Instant, id: ConnId, budget: &mut TxBudget, sink: &mut dyn FrameSink) -> ConnTx {
        let Some(slot) = self.conns.get_mut(id) else { return ConnTx::Done };
        let (local, remote) = (slot.conn.local(), slot.conn.remote());
        let egress = &mut self.egress;
        let stats = &mut self.stats;
        let mut sink_full = false;
        // A RST the sink refused: the connection forgets it once offered
        // (`TcpConn` never retransmits one), so the engine keeps it.
        let mut refused_rst = None;
        // The neighbour an opening SYN is to wait for (see below).
        let mut wait_for_neighbour = None;
        let fast_before = budget.fast_retransmits;
        let mut segment_sink = |repr: &TcpRepr, first: &[u8], second: &[u8]| -> bool {
            let payload_len = first.len() + second.len();
            let len = tcp_ip_len(repr, payload_len);
            let ident = egress.next_ident();
            let outcome = egress.send_ip(now, stats, sink, *remote.ip(), len, &mut |buf| {
                write_tcp_ip(buf, local, remote, ident, repr, first, second)
            });
            match outcome {
                SendOutcome::Sent | SendOutcome::Held => {
                    stats.tcp_segments_out += 1;
                    if repr.flags.rst() {
                        stats.tcp_rst_out += 1;
                    }
                    true
                }
                SendOutcome::SinkFull => {
                    sink_full = true;
                    if repr.flags.rst() {
                        refused_rst = Some(*repr);
                    }
                    false
                }
                // Dropped below TCP (like a full neighbour queue in Linux)
                // and counted there: the connection treats it as sent and its
                // retransmission timer covers it, so it neither stalls
                // waiting to be polled nor retries without bound.
                SendOutcome::Unresolved | SendOutcome::NoRoute => true,
                // An opening SYN is not sent but waits for the resolution
                // to settle, then goes out at once: dropping it would cost
                // the client a whole initial RTO (1 s) for a neighbour about
                // to answer. Other segments are dropped as above.
                SendOutcome::QueueFull(next_hop) if repr.flags.syn() && !repr.flags.ack() => {
                    wait_for_neighbour = Some(next_hop);
                    false
                }
                SendOutcome::QueueFull(_) => true,
            }
        };
        let report = slot.conn.poll_transmit(now, budget, &mut segment_sink);
        self.stats.tcp_fast_retransmits += fast_before.saturating_sub(budget.fast_retransmits) as u64;
        if report.fast_retransmit_postponed {
            self.stats.tcp_fast_retransmits_postponed += 1;
            if !slot.postponed {
                slot.postponed = true;
                self.postponed.push_back(id);
            }
        }
        if let Some(repr) = refused_rst {
            // The peer must still learn the connection is gone: the RST waits
            // in the control queue (sent first at the next poll) until the
            // sink takes it, while the slot is freed as usual.
            if !self.control.push(ControlSegment { local, remote, repr }) {
                self.stats.tcp_control_dropped += 1;
            }
        }
        if sink_full {
            // Polled first next time: it still has segments to send.
            slot.dirty = true;
            self.dirty.push_front(id);
        }
        if let Some(next_hop) = wait_for_neighbour {
            self.stats.arp_syn_waits += 1;
            self.wait_for_neighbour(id, next_hop);
        }
        if report.segments > 0 {
            // Retransmissions only happen when something was sent.
            self.record_counters(id);
        }
        self.settle(now, id);
        if sink_full {
            return ConnTx::SinkFull;
        }
        // Everything it had to send (a final RST included) is out.
        self.reap(id);
        ConnTx::Done
    }
}
