#!/usr/bin/env bash
# Reproduce and audit Linux -> Sluice loss recovery (see netns-sack-audit.py):
# Linux sends BYTES to a sluice-peer sink through LOSS% random loss, with
# captures on both sides of the lossy bridge, then the audit counts Linux's
# retransmissions of segments Sluice had already received.
#
#   scripts/netns-sack-audit.sh PATH/TO/sluice-peer [BYTES] [LOSS%]
#
# Needs root and tcpdump (a diagnostic, so not in install-deps.sh). Builds the
# netns-tap.sh topology and removes it, and everything else it started, on exit.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
driver=${1:?usage: $0 PATH/TO/sluice-peer [BYTES] [LOSS%]}
bytes=${2:-2000000}
loss=${3:-5}
command -v tcpdump >/dev/null || { echo "netns-sack-audit: needs tcpdump (apt-get install tcpdump)" >&2; exit 2; }

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  bash "$here/netns-tap.sh" down
  rm -rf "$work"
}
trap cleanup EXIT

bash "$here/netns-tap.sh" up "$loss"
ip netns exec sl-peer tcpdump -i slpeer0 -s 128 -w "$work/peer.pcap" tcp 2>/dev/null &
pids+=($!)
ip netns exec sl-mid tcpdump -i sltap0 -s 128 -w "$work/tap.pcap" tcp 2>/dev/null &
pids+=($!)
# tcpdump needs a moment to attach; wait until both files exist.
for _ in $(seq 50); do [[ -s "$work/peer.pcap" && -s "$work/tap.pcap" ]] && break; sleep 0.1; done

timeout 120 ip netns exec sl-mid "$driver" --tap sltap0 --mac 02:00:00:77:00:02 --ip 10.77.0.2/24 \
  --duration 100 --exit-after 1 serve-sink 5001 >"$work/driver.json" &
driver_pid=$!
pids+=("$driver_pid")
timeout 120 ip netns exec sl-peer python3 "$here/netns-peer.py" connect 10.77.0.2 5001 --send "$bytes" >"$work/peer.json"
wait "$driver_pid"
sleep 0.5  # let tcpdump write out the last packets
for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
wait 2>/dev/null || true
pids=()

python3 - "$work/peer.json" <<'PY'
import json, sys
r = json.loads(open(sys.argv[1]).read().splitlines()[-1])
i = r["tcp_info"]
print("transfer ok=%s %.1f Mbit/s; Linux total_retrans=%d reordering=%d" % (r["ok"], r["mbit_s"], i["total_retrans"], i["reordering"]))
PY
python3 "$here/netns-sack-audit.py" "$work/peer.pcap" "$work/tap.pcap"
