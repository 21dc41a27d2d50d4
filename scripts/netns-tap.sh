#!/usr/bin/env bash
# Test topology for running Sluice against the Linux kernel's TCP.
#
#   sl-peer                      sl-mid
#   ┌──────────────────┐        ┌──────────────────────────────────────┐
#   │ slpeer0          │ veth   │ slmid0 ──┐                           │
#   │ 10.77.0.1/24     ├────────┤          br0 (nft loss rule) ── sltap0 ◄── sluice-peer
#   │ kernel TCP       │        │                                      │    (TAP fd)
#   └──────────────────┘        └──────────────────────────────────────┘
#
# sltap0 is a persistent TAP device created here and enslaved to br0; the
# driver attaches to it by name from inside sl-mid:
#   ip netns exec sl-mid sluice-peer --tap sltap0 --ip 10.77.0.2/24 ...
# Sluice's address (10.77.0.2) is not configured on any kernel interface: the
# kernel in sl-mid only bridges, it never answers for Sluice.
#
# Usage:
#   netns-tap.sh up [LOSS%]   build everything (tearing down leftovers first)
#   netns-tap.sh loss LOSS%   change the random drop rate on the bridge
#   netns-tap.sh down         remove everything; idempotent
#
# Loss is injected by nftables on the bridge's forward hook, so it applies to
# both directions (netem is not available on every test machine).
set -euo pipefail

# SLUICE_NETNS_PREFIX lets two users of this script (a test run and the demo)
# build their topologies side by side.
PREFIX=${SLUICE_NETNS_PREFIX:-sl}
PEER_NS=$PREFIX-peer
MID_NS=$PREFIX-mid
PEER_IF=slpeer0
MID_IF=slmid0
BRIDGE=br0
TAP=sltap0
PEER_ADDR=10.77.0.1/24

log() { echo "netns-tap: $*" >&2; }

down() {
  # Deleting a namespace deletes every interface inside it (the veth pair goes
  # with either end, the TAP and bridge with sl-mid, nft tables with their netns).
  for ns in "$PEER_NS" "$MID_NS"; do
    if ip netns list | grep -qw "$ns"; then
      ip netns del "$ns"
    fi
  done
  # A half-built run may have left the veth pair in the root namespace.
  for dev in "$PEER_IF" "$MID_IF"; do
    if ip link show "$dev" >/dev/null 2>&1; then
      ip link del "$dev"
    fi
  done
}

set_loss() {
  local loss=$1
  if ! [[ "$loss" =~ ^[0-9]+$ ]] || ((loss > 100)); then
    log "loss must be an integer percentage 0..100, got '$loss'"
    return 2
  fi
  ip netns exec "$MID_NS" nft delete table bridge sluice_loss 2>/dev/null || true
  if ((loss > 0)); then
    ip netns exec "$MID_NS" nft add table bridge sluice_loss
    ip netns exec "$MID_NS" nft add chain bridge sluice_loss random_drop '{ type filter hook forward priority 0; }'
    ip netns exec "$MID_NS" nft add rule bridge sluice_loss random_drop numgen random mod 100 "<" "$loss" counter drop
  fi
}

up() {
  local loss=${1:-0}
  down
  # Undo a partial build if any step fails.
  trap 'rc=$?; if ((rc != 0)); then log "setup failed, tearing down"; down; fi' EXIT

  ip netns add "$PEER_NS"
  ip netns add "$MID_NS"
  for ns in "$PEER_NS" "$MID_NS"; do
    # IPv6 autoconfiguration would put router solicitations and MLD reports on
    # the wire; Sluice is IPv4-only and would only count them as drops.
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    ip -n "$ns" link set lo up
  done

  ip link add "$PEER_IF" netns "$PEER_NS" type veth peer name "$MID_IF" netns "$MID_NS"

  ip -n "$MID_NS" link add "$BRIDGE" type bridge
  # Forward at once: no STP listening/learning delay before frames pass.
  ip -n "$MID_NS" link set "$BRIDGE" type bridge forward_delay 0 stp_state 0
  ip netns exec "$MID_NS" ip tuntap add dev "$TAP" mode tap
  ip -n "$MID_NS" link set "$MID_IF" master "$BRIDGE"
  ip -n "$MID_NS" link set "$TAP" master "$BRIDGE"
  ip -n "$MID_NS" link set "$MID_IF" up
  ip -n "$MID_NS" link set "$TAP" up
  ip -n "$MID_NS" link set "$BRIDGE" up

  ip -n "$PEER_NS" addr add "$PEER_ADDR" dev "$PEER_IF"
  # A veth sends CHECKSUM_PARTIAL frames (the checksum is left to a NIC that
  # does not exist); Sluice verifies checksums, so make the kernel fill them
  # in at the source. (A TAP without vnet headers also gets them completed on
  # the way out of the bridge; this keeps the peer's frames correct whatever
  # sits in between.)
  ip netns exec "$PEER_NS" ethtool -K "$PEER_IF" tx off >/dev/null
  ip -n "$PEER_NS" link set "$PEER_IF" up

  set_loss "$loss"
  trap - EXIT
  log "up (loss ${loss}%)"
}

case "${1:-}" in
  up) up "${2:-0}" ;;
  loss) set_loss "${2:?usage: $0 loss LOSS%}" ;;
  down) down; log "down" ;;
  *) echo "usage: $0 up [LOSS%] | loss LOSS% | down" >&2; exit 2 ;;
esac
