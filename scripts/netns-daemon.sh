#!/usr/bin/env bash
# Topology for the Sluice daemon against kernel clients, over AF_XDP or TAP,
# with optional random loss in the middle.
#
#   PREFIX-peer             PREFIX-mid                        PREFIX-dut
#   ┌───────────────┐      ┌─────────────────────────┐      ┌──────────────────────────────┐
#   │ sdpeer0       ├──────┤ sdmidp ─ br0 ─ sdmidd   ├──────┤ sddut0                        │
#   │ 10.79.0.1/24  │ veth │   (nft: drop N%)        │ veth │  xdp: the daemon's AF_XDP     │
#   │ kernel TCP    │      └─────────────────────────┘      │  tap: br1 joins sddut0+sdtap0 │
#   └───────────────┘                                       │       and the daemon's TAP    │
#                                                           └──────────────────────────────┘
# Sluice's address 10.79.0.2 is on no kernel interface: the daemon answers
# for it. Loss is dropped by nftables on the middle bridge, in both
# directions (netem is not available here; XDP runs before netfilter, so the
# drop cannot be in the daemon's own namespace).
#
# Usage:
#   netns-daemon.sh up xdp|tap [LOSS%]   build (tearing down leftovers first)
#   netns-daemon.sh loss LOSS%           change the drop rate
#   netns-daemon.sh down                 remove everything; idempotent
# SLUICE_NETNS_PREFIX (default "sd") names the namespaces, so tests can run
# topologies side by side; interface names are per namespace.
# The daemon then runs as:
#   ip netns exec PREFIX-dut sluice daemon --device xdp --iface sddut0 --ip 10.79.0.2/24
#   ip netns exec PREFIX-dut sluice daemon --device tap --iface sdtap0 --ip 10.79.0.2/24
set -euo pipefail

PREFIX=${SLUICE_NETNS_PREFIX:-sd}
PEER_NS=$PREFIX-peer
MID_NS=$PREFIX-mid
DUT_NS=$PREFIX-dut
PEER_ADDR=10.79.0.1/24

log() { echo "netns-daemon: $*" >&2; }

exists() { ip netns list | awk '{print $1}' | grep -qx -- "$1"; }

down() {
  for ns in "$PEER_NS" "$MID_NS" "$DUT_NS"; do
    if exists "$ns"; then
      ip netns del "$ns"
    fi
  done
}

set_loss() {
  local loss=$1
  if ! [[ "$loss" =~ ^[0-9]+$ ]] || ((loss > 100)); then
    log "loss must be an integer percentage 0..100, got '$loss'"
    return 2
  fi
  ip netns exec "$MID_NS" nft flush ruleset
  if ((loss > 0)); then
    ip netns exec "$MID_NS" nft -f - <<NFT
table bridge loss {
  chain forward {
    type filter hook forward priority 0; policy accept;
    numgen random mod 100 < $loss drop
  }
}
NFT
  fi
}

up() {
  local device=$1 loss=${2:-0}
  case "$device" in xdp | tap) ;; *)
    log "device must be xdp or tap, got '$device'"
    return 2
    ;;
  esac
  down
  for ns in "$PEER_NS" "$MID_NS" "$DUT_NS"; do
    ip netns add "$ns"
    ip -n "$ns" link set lo up
    # No IPv6: nothing but the test's IPv4 traffic on the wire.
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
  done
  ip link add sdpeer0 netns "$PEER_NS" type veth peer name sdmidp netns "$MID_NS"
  ip link add sdmidd netns "$MID_NS" type veth peer name sddut0 netns "$DUT_NS"
  ip -n "$MID_NS" link add br0 type bridge
  for dev in sdmidp sdmidd; do
    ip -n "$MID_NS" link set "$dev" master br0
    ip -n "$MID_NS" link set "$dev" up
  done
  ip -n "$MID_NS" link set br0 up
  ip -n "$PEER_NS" addr add "$PEER_ADDR" dev sdpeer0
  ip -n "$PEER_NS" link set sdpeer0 up
  # The kernel would hand the veth partially checksummed frames.
  ip netns exec "$PEER_NS" ethtool -K sdpeer0 tx off >/dev/null
  ip -n "$DUT_NS" link set sddut0 up
  if [[ "$device" == tap ]]; then
    ip -n "$DUT_NS" tuntap add dev sdtap0 mode tap
    ip -n "$DUT_NS" link add br1 type bridge
    ip -n "$DUT_NS" link set sddut0 master br1
    ip -n "$DUT_NS" link set sdtap0 master br1
    ip -n "$DUT_NS" link set sdtap0 up
    ip -n "$DUT_NS" link set br1 up
  fi
  set_loss "$loss"
  log "up ($device, $PEER_NS/sdpeer0 10.79.0.1 <-> $MID_NS (loss $loss%) <-> $DUT_NS, Sluice at 10.79.0.2)"
}

case "${1:-}" in
  up) up "${2:-}" "${3:-0}" ;;
  loss) set_loss "${2:-}" ;;
  down) down ;;
  *)
    echo "usage: $0 up xdp|tap [LOSS%] | loss LOSS% | down" >&2
    exit 2
    ;;
esac
