//! White-box checks of the seed-003 guarantees: handles left behind in the
//! postponed list or the timer wheel after their connection was freed are
//! dropped and counted, never applied to the connection reusing the slot.

use core::net::{Ipv4Addr, SocketAddrV4};

use super::{ConsumerId, Stack};
use crate::config::StackConfig;
use crate::time::{Duration, Instant};
use crate::wire::EthernetAddress;

fn stack(now: Instant) -> Stack {
    let config = StackConfig::new(EthernetAddress([2, 0, 0, 0, 0, 1]), Ipv4Addr::new(10, 0, 0, 1), 24, [9; 32]);
    Stack::new(config, now)
}

#[test]
fn stale_postponed_and_timer_entries_are_counted_and_skipped() {
    let mut now = Instant::from_secs(1);
    let mut s = stack(now);
    let peer = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 80);
    let old = s.tcp_connect(now, ConsumerId(1), peer, None, None).unwrap();
    let mut out = Vec::new();
    s.poll_transmit(now, &mut out);

    // Abort and let the poll send the RST and free the slot.
    s.tcp_abort(now, old).unwrap();
    s.poll_transmit(now, &mut out);
    assert_eq!(s.connection_count(), 0);

    // A new connection reuses the slot under a new generation.
    let new = s.tcp_connect(now, ConsumerId(1), peer, None, None).unwrap();
    assert_eq!(new.index(), old.index());
    assert_ne!(new.generation(), old.generation());

    // Leftovers pointing at the old connection, as VPP's postponed list had.
    s.postponed.push_back(old);
    s.timers.insert(now, old);
    s.poll_transmit(now, &mut out);
    assert_eq!(s.stats.tcp_postponed_stale, 1);
    assert!(!s.conns.get(new).unwrap().postponed, "nothing was applied to the new connection");
    now += Duration::from_millis(2);
    s.handle_timeout(now);
    assert_eq!(s.stats.tcp_timer_stale, 1);
    assert!(s.conns.contains(new));
    assert!(s.postponed.is_empty());
}

#[test]
fn closed_handle_stops_resolving_while_the_orphan_lives_on() {
    let now = Instant::from_secs(1);
    let mut s = stack(now);
    let peer = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 2), 80);
    let id = s.tcp_connect(now, ConsumerId(1), peer, None, None).unwrap();
    s.tcp_close(now, id).unwrap();
    assert_eq!(s.tcp_send(id, b"x"), Err(crate::Error::InvalidHandle));
    assert_eq!(s.tcp_close(now, id), Err(crate::Error::InvalidHandle));
    assert_eq!(s.tcp_info(id), Err(crate::Error::InvalidHandle));
    assert!(s.poll_event(ConsumerId(1)).is_none());
}
