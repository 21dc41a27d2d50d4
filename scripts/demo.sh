#!/usr/bin/env bash
# `make demo`, for now: the Sluice engine on a TAP device serves 1 MiB
# downloads to the Linux kernel's TCP in another network namespace, first on a
# clean link, then through 5% random loss, and prints what happened. (nginx
# under the LD_PRELOAD interposer replaces the engine's own test server here
# once the preload exists.) Everything it creates is removed on exit, on
# failure and on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

ROUNDS=${DEMO_ROUNDS:-20}
BYTES=$((1024 * 1024))
export SLUICE_NETNS_PREFIX=sldemo
PEER_NS=$SLUICE_NETNS_PREFIX-peer
MID_NS=$SLUICE_NETNS_PREFIX-mid
work=$(mktemp -d)
driver_pid=

cleanup() {
  if [[ -n "$driver_pid" ]] && kill -0 "$driver_pid" 2>/dev/null; then
    kill "$driver_pid" 2>/dev/null || true
    wait "$driver_pid" 2>/dev/null || true
  fi
  bash scripts/netns-tap.sh down 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'echo "demo: interrupted" >&2; exit 130' INT TERM

if [[ $(id -u) -ne 0 ]]; then
  echo "demo: needs root (it creates network namespaces and a TAP device)" >&2
  exit 1
fi
SLUICE_DEPS_NO_FUZZ=1 bash scripts/install-deps.sh
echo "demo: building (release)"
cargo build --quiet --release -p sluice-integration --bin sluice-peer

run_round() {
  local loss=$1
  bash scripts/netns-tap.sh up "$loss" 2>/dev/null
  ip netns exec "$MID_NS" target/release/sluice-peer --tap sltap0 --mac 02:00:00:77:00:02 \
    --ip 10.77.0.2/24 --exit-after "$ROUNDS" --duration 300 serve-bulk 80 "$BYTES" >"$work/driver-$loss.jsonl" &
  driver_pid=$!
  # The driver prints its "ready" line once it listens.
  for _ in $(seq 1 100); do
    grep -q '"ready"' "$work/driver-$loss.jsonl" 2>/dev/null && break
    kill -0 "$driver_pid" 2>/dev/null || { echo "demo: the engine exited early" >&2; return 1; }
    sleep 0.1
  done
  ip netns exec "$PEER_NS" ping -c 3 -i 0.2 -q 10.77.0.2 | tail -2 >"$work/ping-$loss.txt"
  : >"$work/clients-$loss.jsonl"
  for _ in $(seq 1 "$ROUNDS"); do
    ip netns exec "$PEER_NS" python3 scripts/netns-peer.py connect 10.77.0.2 80 --send 0 | tail -1 >>"$work/clients-$loss.jsonl"
  done
  wait "$driver_pid"
  driver_pid=
  bash scripts/netns-tap.sh down 2>/dev/null
  python3 scripts/demo-summary.py "$loss" "$BYTES" "$work/clients-$loss.jsonl" "$work/driver-$loss.jsonl" "$work/ping-$loss.txt"
}

echo "demo: Linux (10.77.0.1, namespace $PEER_NS) downloads $ROUNDS x 1 MiB from Sluice (10.77.0.2, TAP in $MID_NS)"
run_round 0
run_round 5
echo "demo: done; namespaces and TAP device removed"
