#!/usr/bin/env python3
"""Kernel-side peer for Sluice's real-peer tests (runs inside the sl-peer
network namespace, see netns-tap.sh). Uses only the standard library.

Modes (each prints JSON lines on stdout; the last one is the result):
  connect HOST PORT --send BYTES         active open; send BYTES of the test
                                         pattern then FIN while reading and
                                         hashing everything until the peer's FIN
  serve PORT --send BYTES [--bind ADDR]  listen (prints {"event":"ready"}),
                                         accept one connection, same exchange
  echo HOST PORT --messages N [--connections C]
                                         C parallel connections, each sends N
                                         messages of varying size and checks
                                         that each comes back intact

The pattern is byte i = i mod 251 (integration/src/peer/pattern.rs).
TCP_INFO of each connection (what Linux negotiated) is reported as "tcp_info".
"""
import argparse
import hashlib
import json
import socket
import struct
import sys
import threading
import time

PERIOD = 251
CHUNK = 64 * 1024
# Enough repetitions that any offset's chunk is one slice of it.
PATTERN = bytes(range(PERIOD)) * (CHUNK // PERIOD + 2)
IO_TIMEOUT = 60.0

TCPI_OPT_TIMESTAMPS = 1
TCPI_OPT_SACK = 2
TCPI_OPT_WSCALE = 4


def pattern_chunk(offset, length):
    start = offset % PERIOD
    return memoryview(PATTERN)[start:start + length]


def tcp_info(sock):
    """The fields of Linux's struct tcp_info the tests look at."""
    raw = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 232)
    (state, ca_state, retransmits, probes, backoff, options, wscale, _flags) = struct.unpack_from("8B", raw, 0)
    names = ("rto ato snd_mss rcv_mss unacked sacked lost retrans fackets last_data_sent last_ack_sent "
             "last_data_recv last_ack_recv pmtu rcv_ssthresh rtt rttvar snd_ssthresh snd_cwnd advmss "
             "reordering rcv_rtt rcv_space total_retrans").split()
    info = dict(zip(names, struct.unpack_from("24I", raw, 8)))
    info.update(
        state=state,
        ca_state=ca_state,
        options=options,
        timestamps=bool(options & TCPI_OPT_TIMESTAMPS),
        sack=bool(options & TCPI_OPT_SACK),
        wscale=bool(options & TCPI_OPT_WSCALE),
        # Bit-fields: tcpi_snd_wscale is the low nibble on little-endian.
        snd_wscale=wscale & 0x0F,
        rcv_wscale=wscale >> 4,
    )
    if len(raw) >= 136:
        info["bytes_acked"], info["bytes_received"] = struct.unpack_from("2Q", raw, 120)
    if len(raw) >= 216:
        info["bytes_retrans"], = struct.unpack_from("Q", raw, 208)
    return info


def emit(obj):
    print(json.dumps(obj), flush=True)


def bulk_exchange(sock, send_bytes):
    """Send the pattern (then FIN) on a thread while reading to EOF here."""
    sock.settimeout(IO_TIMEOUT)
    sent_hash = hashlib.sha256()
    send_error = []

    def sender():
        try:
            offset = 0
            while offset < send_bytes:
                chunk = pattern_chunk(offset, min(CHUNK, send_bytes - offset))
                sock.sendall(chunk)
                sent_hash.update(chunk)
                offset += len(chunk)
            sock.shutdown(socket.SHUT_WR)
        except OSError as e:
            send_error.append(repr(e))

    start = time.monotonic()
    thread = threading.Thread(target=sender)
    thread.start()
    recv_hash = hashlib.sha256()
    received = 0
    recv_error = None
    try:
        while True:
            data = sock.recv(CHUNK)
            if not data:
                break
            recv_hash.update(data)
            received += len(data)
    except OSError as e:
        recv_error = repr(e)
    thread.join()
    elapsed = time.monotonic() - start
    info = tcp_info(sock)
    return {
        "event": "done",
        "ok": not send_error and recv_error is None,
        "error": (send_error[0] if send_error else recv_error),
        "sent": send_bytes if not send_error else None,
        "received": received,
        "sent_sha256": sent_hash.hexdigest(),
        "recv_sha256": recv_hash.hexdigest(),
        "elapsed_s": elapsed,
        "mbit_s": (max(send_bytes, received) * 8 / elapsed / 1e6) if elapsed > 0 else 0.0,
        "tcp_info": info,
    }


def cmd_connect(args):
    sock = socket.create_connection((args.host, args.port), timeout=IO_TIMEOUT)
    with sock:
        result = bulk_exchange(sock, args.send)
    emit(result)
    return 0 if result["ok"] else 1


def cmd_serve(args):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((args.bind, args.port))
        listener.listen(1)
        listener.settimeout(IO_TIMEOUT)
        emit({"event": "ready", "port": args.port})
        sock, peer = listener.accept()
    with sock:
        result = bulk_exchange(sock, args.send)
    result["peer"] = "%s:%d" % peer
    emit(result)
    return 0 if result["ok"] else 1


def message(conn_index, i):
    """Message i of a connection: 1..1400 bytes, contents unique per message."""
    size = 1 + (i * 97 + conn_index * 13) % 1400
    seed = (i * 31 + conn_index) % PERIOD
    return bytes(PATTERN[seed:seed + size])


def echo_connection(args, conn_index, results):
    out = {"connection": conn_index, "ok": False, "messages": 0, "bytes": 0, "error": None}
    try:
        sock = socket.create_connection((args.host, args.port), timeout=IO_TIMEOUT)
        with sock:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            worst = 0.0
            for i in range(args.messages):
                msg = message(conn_index, i)
                t0 = time.monotonic()
                sock.sendall(msg)
                got = bytearray()
                while len(got) < len(msg):
                    data = sock.recv(len(msg) - len(got))
                    if not data:
                        raise ConnectionError("EOF after %d of %d echoed bytes of message %d" % (len(got), len(msg), i))
                    got += data
                worst = max(worst, time.monotonic() - t0)
                if bytes(got) != msg:
                    raise ValueError("message %d came back altered" % i)
                out["messages"] += 1
                out["bytes"] += len(msg)
            out["worst_rtt_ms"] = worst * 1000
            out["tcp_info"] = tcp_info(sock)
            sock.shutdown(socket.SHUT_WR)
            tail = sock.recv(1)
            if tail:
                raise ValueError("peer sent unexpected bytes after the last echo")
        out["ok"] = True
    except (OSError, ValueError) as e:
        out["error"] = repr(e)
    results[conn_index] = out


def cmd_echo(args):
    results = [None] * args.connections
    start = time.monotonic()
    threads = [threading.Thread(target=echo_connection, args=(args, c, results)) for c in range(args.connections)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ok = all(r is not None and r["ok"] for r in results)
    emit({"event": "done", "ok": ok, "elapsed_s": time.monotonic() - start, "connections": results})
    return 0 if ok else 1


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="mode", required=True)
    p = sub.add_parser("connect")
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("--send", type=int, default=0)
    p.set_defaults(run=cmd_connect)
    p = sub.add_parser("serve")
    p.add_argument("port", type=int)
    p.add_argument("--send", type=int, default=0)
    p.add_argument("--bind", default="0.0.0.0")
    p.set_defaults(run=cmd_serve)
    p = sub.add_parser("echo")
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("--messages", type=int, default=100)
    p.add_argument("--connections", type=int, default=1)
    p.set_defaults(run=cmd_echo)
    args = parser.parse_args()
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
