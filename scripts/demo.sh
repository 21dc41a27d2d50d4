#!/usr/bin/env bash
# `make demo`, for now: the Sluice daemon owns one end of a veth (AF_XDP;
# TAP where AF_XDP is unavailable), an HTTP server attached to it through
# vcl serves a 1 MiB file to Linux clients (curl and a load client with many
# concurrent connections) in another network namespace, first on a clean
# link, then through 5% random loss, and the demo prints what happened and
# the daemon's `sluice stats`. (nginx under the LD_PRELOAD interposer takes
# the test server's place with issue 5.) Everything it creates is removed on
# exit, on failure and on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

CONNECTIONS=${DEMO_CONNECTIONS:-100}
export SLUICE_NETNS_PREFIX=sldemo
PEER_NS=$SLUICE_NETNS_PREFIX-peer
DUT_NS=$SLUICE_NETNS_PREFIX-dut
IP=10.79.0.2
work=$(mktemp -d)
pids=()

cleanup() {
  # Apps first, then the daemon they are attached to.
  local i pid
  for ((i = ${#pids[@]} - 1; i >= 0; i--)); do
    pid=${pids[i]}
    if kill -0 "$pid" 2>/dev/null; then
      kill -TERM "$pid" 2>/dev/null || true
      wait "$pid" 2>/dev/null || true
    fi
  done
  bash scripts/netns-daemon.sh down 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'echo "demo: interrupted" >&2; exit 130' INT TERM

if [[ $(id -u) -ne 0 ]]; then
  echo "demo: needs root (it creates network namespaces and attaches XDP)" >&2
  exit 1
fi
SLUICE_DEPS_NO_FUZZ=1 bash scripts/install-deps.sh
echo "demo: building (release)"
cargo build --quiet --release -p sluice-daemon --bin sluice -p sluice-integration --bin sluice-server
bin_dir=${CARGO_TARGET_DIR:-target}/release
sluice=$bin_dir/sluice
control=$work/control.sock
mkdir -p "$work/www"
head -c $((1024 * 1024)) /dev/urandom >"$work/www/1m.bin"
sha=$(sha256sum "$work/www/1m.bin" | cut -d' ' -f1)

start_daemon() {
  local device=$1 iface=$2
  bash scripts/netns-daemon.sh up "$device" 2>/dev/null
  ip netns exec "$DUT_NS" "$sluice" daemon --device "$device" --iface "$iface" --ip "$IP/24" \
    --control-socket "$control" --log warn 2>"$work/daemon.log" &
  pids+=($!)
  for _ in $(seq 1 100); do
    "$sluice" stats --control-socket "$control" >/dev/null 2>&1 && return 0
    kill -0 "${pids[-1]}" 2>/dev/null || break
    sleep 0.1
  done
  return 1
}

if start_daemon xdp sddut0; then
  echo "demo: sluice daemon on AF_XDP (sddut0 in $DUT_NS) at $IP"
else
  echo "demo: AF_XDP unavailable here ($(tail -1 "$work/daemon.log")); falling back to TAP"
  bash scripts/netns-daemon.sh down 2>/dev/null
  start_daemon tap sdtap0 || { echo "demo: the daemon did not start:" >&2; cat "$work/daemon.log" >&2; exit 1; }
  echo "demo: sluice daemon on TAP (sdtap0 in $DUT_NS) at $IP"
fi

"$bin_dir/sluice-server" http --listen 0.0.0.0:80 --root "$work/www" --control-socket "$control" >"$work/server.out" &
pids+=($!)
for _ in $(seq 1 100); do
  grep -q '^ready' "$work/server.out" 2>/dev/null && break
  sleep 0.1
done
echo "demo: HTTP server (vcl) attached to the daemon, serving a 1 MiB file (sha256 ${sha:0:16}…)"

round() {
  local loss=$1
  bash scripts/netns-daemon.sh loss "$loss" 2>/dev/null
  local got
  got=$(ip netns exec "$PEER_NS" sh -c "curl -sS --max-time 60 http://$IP/1m.bin | sha256sum" | cut -d' ' -f1)
  local curl_ok=no
  [[ "$got" == "$sha" ]] && curl_ok=yes
  ip netns exec "$PEER_NS" python3 scripts/load-client.py http "$IP" 80 /1m.bin --sha256 "$sha" \
    --length $((1024 * 1024)) --connections "$CONNECTIONS" >"$work/load-$loss.json" || true
  python3 - "$loss" "$curl_ok" "$work/load-$loss.json" <<'PY'
import json, sys
loss, curl_ok, path = sys.argv[1], sys.argv[2], sys.argv[3]
r = json.load(open(path))
mib = r["bytes"] / (1 << 20)
print(f"demo: {loss:>2}% loss: curl 1 MiB hash {'matches' if curl_ok == 'yes' else 'DIFFERS'}; "
      f"{r['ok']}/{r['expected']} concurrent downloads verified ({mib:.0f} MiB in {r['seconds']} s, "
      f"{8 * mib / max(r['seconds'], 1e-9):.0f} Mbit/s), latency p50 {r['p50_ms']} ms p99 {r['p99_ms']} ms, "
      f"failures {r['failures'] or 'none'}")
sys.exit(0 if curl_ok == "yes" and r["ok"] == r["expected"] else 1)
PY
}

status=0
round 0 || status=1
round 5 || status=1
echo "demo: the daemon's view (sluice stats):"
"$sluice" stats --control-socket "$control" | sed 's/^/  /'
if ((status == 0)); then
  echo "demo: OK — every byte arrived intact, clean and at 5% loss"
else
  echo "demo: FAILED — see above" >&2
fi
exit $status
