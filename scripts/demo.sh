#!/usr/bin/env bash
# `make demo`: the Sluice daemon owns one end of a veth (AF_XDP; TAP where
# AF_XDP is unavailable), Debian's unmodified nginx (a master and two
# workers) runs on it under the LD_PRELOAD interposer (`sluice run`), and
# Linux clients in another network namespace (curl, and a load client with
# many concurrent connections) download from it, first on a clean link,
# then through 5% random loss. The demo prints what happened (requests,
# bytes, latency, retransmissions, each worker's share) and the daemon's
# `sluice stats`. Everything it creates is removed on exit, on failure and
# on Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."

CONNECTIONS=${DEMO_CONNECTIONS:-100}
export SLUICE_NETNS_PREFIX=sldemo
PEER_NS=$SLUICE_NETNS_PREFIX-peer
DUT_NS=$SLUICE_NETNS_PREFIX-dut
IP=10.79.0.2
work=$(mktemp -d)
# nginx's workers run as an unprivileged user: they must reach the
# control socket, the files and the temp directories in here.
chmod 755 "$work"
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
cargo build --quiet --release -p sluice-daemon --bin sluice -p sluice-preload --lib
bin_dir=${CARGO_TARGET_DIR:-target}/release
sluice=$bin_dir/sluice
control=$work/control.sock
mkdir -p "$work/www" "$work/nginx/tmp"
head -c $((1024 * 1024)) /dev/urandom >"$work/www/1m.bin"
head -c $((16 * 1024)) /dev/urandom >"$work/www/16k.bin"
sha=$(sha256sum "$work/www/1m.bin" | cut -d' ' -f1)
sha_small=$(sha256sum "$work/www/16k.bin" | cut -d' ' -f1)

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

n=$work/nginx
cat >"$n/nginx.conf" <<EOF
daemon off;
master_process on;
worker_processes 2;
error_log $n/error.log warn;
pid $n/nginx.pid;
events { worker_connections 4096; }
http {
  log_format bypid '\$pid';
  access_log $n/access.log bypid;
  client_body_temp_path $n/tmp; proxy_temp_path $n/tmp; fastcgi_temp_path $n/tmp;
  uwsgi_temp_path $n/tmp; scgi_temp_path $n/tmp;
  sendfile on; tcp_nopush on; tcp_nodelay on; keepalive_timeout 60;
  server { listen 80; root $work/www; }
}
EOF
# `sluice run` loads the interposer into nginx: every TCP/IPv4 socket it
# opens is a Sluice session on the daemon (its log and pid files stay files).
"$sluice" run --control-socket "$control" -- nginx -p "$n" -c "$n/nginx.conf" 2>"$work/nginx.err" &
pids+=($!)
up=no
for _ in $(seq 1 100); do
  if ip netns exec "$PEER_NS" curl -sf --max-time 2 -o /dev/null "http://$IP/16k.bin"; then
    up=yes
    break
  fi
  kill -0 "${pids[-1]}" 2>/dev/null || break
  sleep 0.1
done
if [[ $up != yes ]]; then
  echo "demo: nginx did not come up under Sluice:" >&2
  cat "$work/nginx.err" "$n/error.log" >&2 2>/dev/null || true
  exit 1
fi
echo "demo: nginx $(nginx -v 2>&1 | sed 's|.*/||') (a master and 2 workers) on Sluice through the preload," \
  "serving 1 MiB (sha256 ${sha:0:16}…) and 16 KiB files"

retransmits() {
  "$sluice" stats --json --control-socket "$control" |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["workers"][0]["engine"]["tcp_retransmits"])'
}

# One run of `load-client.py http` with these arguments; prints one line.
load() {
  local label=$1 out=$2
  shift 2
  ip netns exec "$PEER_NS" python3 scripts/load-client.py http "$IP" 80 "$@" >"$out" || true
  python3 - "$label" "$out" <<'PY'
import json, sys
label, path = sys.argv[1], sys.argv[2]
r = json.load(open(path))
mib = r["bytes"] / (1 << 20)
print(f"demo:   {label}: {r['ok']}/{r['expected']} verified, {mib:.0f} MiB in {r['seconds']} s "
      f"({8 * mib / max(r['seconds'], 1e-9):.0f} Mbit/s), latency p50 {r['p50_ms']} ms p99 {r['p99_ms']} ms, "
      f"failures {r['failures'] or 'none'}")
sys.exit(0 if r["ok"] == r["expected"] else 1)
PY
}

round() {
  local loss=$1 ok=0 before got
  bash scripts/netns-daemon.sh loss "$loss" 2>/dev/null
  before=$(retransmits)
  echo "demo: ${loss}% random loss each way:"
  got=$(ip netns exec "$PEER_NS" sh -c "curl -sS --max-time 60 http://$IP/1m.bin | sha256sum" | cut -d' ' -f1)
  if [[ "$got" == "$sha" ]]; then
    echo "demo:   curl: 1 MiB, hash matches"
  else
    echo "demo:   curl: 1 MiB, hash DIFFERS"
    ok=1
  fi
  load "$CONNECTIONS concurrent 1 MiB downloads" "$work/big-$loss.json" /1m.bin --sha256 "$sha" \
    --length $((1024 * 1024)) --connections "$CONNECTIONS" || ok=1
  load "500 keep-alive connections x 4 GETs of 16 KiB" "$work/small-$loss.json" /16k.bin \
    --sha256 "$sha_small" --length $((16 * 1024)) --connections 500 --requests 4 || ok=1
  echo "demo:   TCP retransmissions by Sluice: $(($(retransmits) - before))"
  return $ok
}

status=0
round 0 || status=1
round 5 || status=1
echo "demo: requests served by each nginx worker: $(sort "$n/access.log" | uniq -c | awk '{printf "%s%s", sep, $1; sep=", "}')"
echo "demo: the daemon's view (sluice stats):"
"$sluice" stats --control-socket "$control" | sed 's/^/  /'
if ((status == 0)); then
  echo "demo: OK — nginx on Sluice delivered every byte intact, clean and at 5% loss"
else
  echo "demo: FAILED — see above" >&2
fi
exit $status
