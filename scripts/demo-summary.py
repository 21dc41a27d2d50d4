#!/usr/bin/env python3
"""Summarises one demo round: the kernel client's results and the engine's stats."""
import hashlib
import json
import statistics
import sys

loss, size, clients_path, driver_path, ping_path = sys.argv[1], int(sys.argv[2]), *sys.argv[3:]
expected = hashlib.sha256(bytes(i % 251 for i in range(size))).hexdigest()
clients = [json.loads(line) for line in open(clients_path) if line.strip()]
driver = [json.loads(line) for line in open(driver_path) if line.strip()]
done = next((d for d in driver if d.get("event") == "done"), {})
stats = done.get("stats", {})

good = [c for c in clients if c.get("ok") and c.get("received") == size and c.get("recv_sha256") == expected]
times = sorted(c["elapsed_s"] * 1000 for c in clients if "elapsed_s" in c)
linux_rtx = sum((c.get("tcp_info") or {}).get("total_retrans", 0) for c in clients)

def pct(p):
    return times[min(len(times) - 1, int(round(p / 100 * (len(times) - 1))))] if times else float("nan")

print(f"\n== {loss}% random loss on the bridge")
print(f"  downloads:    {len(good)}/{len(clients)} complete, every byte checked by SHA-256")
print(f"  bytes:        {sum(c.get('received', 0) for c in clients):,} received by Linux")
print(f"  latency:      p50 {pct(50):.1f} ms, p99 {pct(99):.1f} ms per 1 MiB download"
      + (f", mean {statistics.mean(times):.1f} ms" if times else ""))
print(f"  retransmits:  Sluice {stats.get('tcp_retransmits', '?')} (fast {stats.get('tcp_fast_retransmits', '?')}, "
      f"timeouts {stats.get('tcp_timeouts', '?')}); Linux {linux_rtx}")
print(f"  ping:         {open(ping_path).read().strip().splitlines()[0] if open(ping_path).read().strip() else 'no reply'}")
keys = ["frames_in", "frames_out", "tcp_segments_in", "tcp_segments_out", "connections_opened",
        "connections_closed", "tcp_fast_retransmits_postponed", "tcp_postponed_stale", "tcp_timer_stale", "events_stale"]
print("  engine stats: " + ", ".join(f"{k}={stats[k]}" for k in keys if k in stats))
if len(good) != len(clients) or not clients:
    print("  FAILED: not every download completed intact", file=sys.stderr)
    sys.exit(1)
