#!/usr/bin/env bash
# Test topology for Sluice's AF_XDP device against the Linux kernel's TCP.
#
#   sx-peer                         sx-dut
#   ┌───────────────────┐  veth    ┌──────────────────────────────────┐
#   │ sxpeer0           ├──────────┤ sxdut0   (no kernel IPv4 address) │
#   │ 10.78.0.1/24      │          │   AF_XDP socket, queue 0..Q-1    │
#   │ kernel TCP, ping  │          │   Sluice answers for 10.78.0.2   │
#   └───────────────────┘          └──────────────────────────────────┘
#
# The device under test opens sxdut0 from inside sx-dut:
#   ip netns exec sx-dut sluice --device xdp --iface sxdut0 --ip 10.78.0.2/24 ...
# Sluice's address is configured on no kernel interface: the kernel in sx-dut
# must never answer for it (and with IPv6 off it puts nothing on the wire).
#
# Usage:
#   netns-xdp.sh up [QUEUES]   build everything (tearing down leftovers first);
#                              QUEUES rx/tx queues on each veth end (default 1)
#   netns-xdp.sh down          remove everything; idempotent
#
# SLUICE_XDP_NETNS_PREFIX (default "sx") names the namespaces PREFIX-peer and
# PREFIX-dut, so tests can build topologies side by side. The interface names
# are the same in every topology: each lives inside its own namespace.
set -euo pipefail

PREFIX=${SLUICE_XDP_NETNS_PREFIX:-sx}
PEER_NS=$PREFIX-peer
DUT_NS=$PREFIX-dut
PEER_IF=sxpeer0
DUT_IF=sxdut0
PEER_ADDR=10.78.0.1/24

log() { echo "netns-xdp: $*" >&2; }

down() {
  # Deleting a namespace deletes the veth pair with it (either end takes the
  # other along), and with it any XDP program attached to sxdut0.
  for ns in "$PEER_NS" "$DUT_NS"; do
    if ip netns list | grep -qw -- "$ns"; then
      ip netns del "$ns"
    fi
  done
}

up() {
  local queues=${1:-1}
  if ! [[ "$queues" =~ ^[0-9]+$ ]] || ((queues < 1 || queues > 64)); then
    log "QUEUES must be an integer 1..64, got '$queues'"
    return 2
  fi
  down
  # Undo a partial build if any step fails.
  trap 'rc=$?; if ((rc != 0)); then log "setup failed, tearing down"; down; fi' EXIT

  ip netns add "$PEER_NS"
  ip netns add "$DUT_NS"
  for ns in "$PEER_NS" "$DUT_NS"; do
    # IPv6 autoconfiguration would put router solicitations and MLD reports on
    # the wire; Sluice is IPv4-only and would only count them as drops.
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    ip -n "$ns" link set lo up
  done

  # Both ends are created straight inside their namespaces, so nothing of a
  # half-built run is ever left in the root namespace.
  ip link add "$PEER_IF" netns "$PEER_NS" numrxqueues "$queues" numtxqueues "$queues" type veth \
    peer name "$DUT_IF" netns "$DUT_NS" numrxqueues "$queues" numtxqueues "$queues"

  ip -n "$PEER_NS" addr add "$PEER_ADDR" dev "$PEER_IF"
  # A veth sends CHECKSUM_PARTIAL frames (the checksum is left to a NIC that
  # does not exist); Sluice verifies checksums, so the kernel must fill them
  # in before the frame leaves sxpeer0.
  ip netns exec "$PEER_NS" ethtool -K "$PEER_IF" tx off >/dev/null
  ip -n "$PEER_NS" link set "$PEER_IF" up
  ip -n "$DUT_NS" link set "$DUT_IF" up

  trap - EXIT
  log "up ($PEER_NS/$PEER_IF $PEER_ADDR <-> $DUT_NS/$DUT_IF, $queues queue(s))"
}

case "${1:-}" in
  up) up "${2:-1}" ;;
  down) down; log "down" ;;
  *) echo "usage: $0 up [QUEUES] | down" >&2; exit 2 ;;
esac
