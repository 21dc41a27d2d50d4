#!/usr/bin/env python3
"""Wake-up latency probe: round trips of 1-byte messages to an echo server.

  latency-probe.py HOST PORT [--samples N] [--idle-ms MS]

Measures, on one connection, N round trips sent back to back ("busy") and N
sent after MS milliseconds of silence each ("after idle"), which is when a
sleeping daemon worker and a sleeping app must be woken. Prints one JSON
object with p50/p99/max in microseconds for both. Standard library only.
"""
import argparse
import json
import socket
import time


def percentile(sorted_us, p):
    return round(sorted_us[min(len(sorted_us) - 1, int(p * len(sorted_us)))], 1)


def summary(samples):
    s = sorted(samples)
    return {"p50_us": percentile(s, 0.50), "p99_us": percentile(s, 0.99), "max_us": round(s[-1], 1), "n": len(s)}


def round_trip(sock):
    start = time.perf_counter_ns()
    sock.sendall(b"x")
    got = sock.recv(1)
    if got != b"x":
        raise RuntimeError(f"echo returned {got!r}")
    return (time.perf_counter_ns() - start) / 1000.0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--idle-ms", type=int, default=100)
    args = parser.parse_args()
    sock = socket.create_connection((args.host, args.port), timeout=10)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    for _ in range(20):  # warm up caches and the connection
        round_trip(sock)
    busy = [round_trip(sock) for _ in range(args.samples)]
    idle = []
    for _ in range(args.samples):
        time.sleep(args.idle_ms / 1000.0)
        idle.append(round_trip(sock))
    sock.close()
    print(json.dumps({"busy": summary(busy), "after_idle": summary(idle), "idle_ms": args.idle_ms}))


if __name__ == "__main__":
    main()
