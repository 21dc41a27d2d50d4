#!/usr/bin/env python3
"""Echo RPC latency at a fixed load: an open-loop client for an echo server.

  echo-rate-client.py HOST PORT [--rate R] [--connections C] [--size B]
                      [--seconds S] [--warmup S]

C connections share R requests per second, sent on a fixed schedule (each
connection every C/R seconds, the connections staggered). A request is B
bytes of a per-request pattern; its reply must be the same B bytes. The
round trip is measured from the request's *scheduled* time, so a reply that
comes late delays the requests queued behind it and they are counted late
too (no coordinated omission, as in wrk2). Requests of the warm-up are not
recorded. Prints one JSON object: the sorted round trips in microseconds
and their count; exits 1 on a wrong byte, a lost connection or a timeout.
Standard library only.
"""
import argparse
import json
import selectors
import socket
import sys
import time

TIMEOUT_S = 10.0


class Conn:
    def __init__(self, sock, period, first):
        self.sock = sock
        self.period = period
        self.next_send = first
        self.inflight = []  # (scheduled time, expected bytes), oldest first
        self.received = b""


def pattern(seq, size):
    stamp = seq.to_bytes(8, "big")
    return (stamp * (size // 8 + 1))[:size]


def wait_s(until):
    """How long select() may block before the next send is due."""
    return max(0.0, until - time.perf_counter())


def run(args):
    period = args.connections / args.rate
    start = time.perf_counter() + 0.05
    end_warmup = start + args.warmup
    end = end_warmup + args.seconds
    # select(2), not epoll: epoll's timeout is in whole milliseconds
    # (rounded up), so sends would go out late and the delay would count as
    # latency; select's is in microseconds. The client sleeps between sends
    # rather than spinning: a spinning client would starve the softirq work
    # (ksoftirqd) of the CPU it shares with it.
    sel = selectors.SelectSelector()
    conns = []
    for i in range(args.connections):
        sock = socket.create_connection((args.host, args.port), timeout=TIMEOUT_S)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        conn = Conn(sock, period, start + i * period / args.connections)
        conns.append(conn)
        sel.register(sock, selectors.EVENT_READ, conn)
    samples, seq = [], 0
    while True:
        now = time.perf_counter()
        sending = now < end
        for conn in conns:
            while sending and conn.next_send <= now:
                request = pattern(seq, args.size)
                seq += 1
                conn.inflight.append((conn.next_send, request))
                # Requests are small: the socket buffer takes them whole.
                if conn.sock.send(request) != len(request):
                    raise RuntimeError("short send")
                conn.next_send += conn.period
        pending = [c for c in conns if c.inflight]
        if not sending and not pending:
            break
        oldest = min((c.inflight[0][0] for c in pending), default=now)
        if now - oldest > TIMEOUT_S:
            raise RuntimeError(f"no reply within {TIMEOUT_S} s")
        for key, _ in sel.select(wait_s(min(c.next_send for c in conns) if sending else now + 0.1)):
            conn = key.data
            data = conn.sock.recv(65536)
            if not data:
                raise RuntimeError("the server closed a connection")
            conn.received += data
            arrived = time.perf_counter()
            while conn.inflight and len(conn.received) >= args.size:
                scheduled, expected = conn.inflight.pop(0)
                got, conn.received = conn.received[: args.size], conn.received[args.size :]
                if got != expected:
                    raise RuntimeError("the echo returned other bytes than were sent")
                if scheduled >= end_warmup:
                    samples.append((arrived - scheduled) * 1e6)
            if conn.received and not conn.inflight:
                raise RuntimeError("the echo returned more bytes than were sent")
    for conn in conns:
        conn.sock.close()
    return samples


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("--rate", type=float, default=2000.0, help="requests per second, all connections")
    parser.add_argument("--connections", type=int, default=8)
    parser.add_argument("--size", type=int, default=64, help="bytes per request (at least 8)")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--warmup", type=float, default=1.0)
    args = parser.parse_args()
    if args.size < 8 or args.rate <= 0 or args.connections < 1:
        parser.error("--size must be >= 8, --rate > 0, --connections >= 1")
    try:
        samples = run(args)
    except (OSError, RuntimeError) as e:
        print(f"echo-rate-client: {e}", file=sys.stderr)
        sys.exit(1)
    samples.sort()
    print(json.dumps({"rate": args.rate, "connections": args.connections, "size": args.size, "n": len(samples),
                      "rtt_us": [round(s, 1) for s in samples]}))


if __name__ == "__main__":
    main()
