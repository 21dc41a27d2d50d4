#!/usr/bin/env python3
"""Kernel-side load client for Sluice's end-to-end tests: many concurrent
connections from one process (asyncio), every byte checked. Standard library
only. Prints one JSON object on stdout; exit status 0 only if every check
passed.

Modes:
  http HOST PORT PATH --sha256 HEX --length N [--connections C] [--requests R]
      C concurrent keep-alive connections, each sends R pipelined-free
      GETs of PATH one after another and checks status 200, Content-Length N
      and the body's SHA-256.
  echo HOST PORT [--connections C] [--bytes B]
      C concurrent connections, each writes B bytes of a per-connection
      pattern (while reading) then half-closes, and checks that exactly the
      same bytes come back before the server's FIN.

Failures are counted by kind (connect, reset, timeout, short, mismatch,
status) and the first few are described.
"""
import argparse
import asyncio
import hashlib
import json
import sys
import time

IO_TIMEOUT = 120.0


class Tally:
    def __init__(self):
        self.ok = 0
        self.failures = {}
        self.examples = []
        self.bytes = 0
        self.latencies = []

    def fail(self, kind, detail):
        self.failures[kind] = self.failures.get(kind, 0) + 1
        if len(self.examples) < 5:
            self.examples.append(f"{kind}: {detail}")


async def read_head(reader):
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1])
    headers = {}
    for line in lines[1:]:
        if ":" in line:
            k, v = line.split(":", 1)
            headers[k.strip().lower()] = v.strip()
    return status, headers


async def http_connection(args, tally, index):
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(args.host, args.port), IO_TIMEOUT)
    except Exception as e:  # noqa: BLE001 - every failure is reported
        tally.fail("connect", f"conn {index}: {e!r}")
        return
    try:
        for r in range(args.requests):
            start = time.monotonic()
            writer.write(f"GET {args.path} HTTP/1.1\r\nHost: {args.host}\r\n\r\n".encode())
            await writer.drain()
            status, headers = await asyncio.wait_for(read_head(reader), IO_TIMEOUT)
            if status != 200:
                tally.fail("status", f"conn {index} req {r}: {status}")
                return
            length = int(headers.get("content-length", "-1"))
            if length != args.length:
                tally.fail("short", f"conn {index} req {r}: content-length {length}")
                return
            digest = hashlib.sha256()
            left = length
            while left:
                chunk = await asyncio.wait_for(reader.read(min(left, 1 << 16)), IO_TIMEOUT)
                if not chunk:
                    tally.fail("short", f"conn {index} req {r}: EOF with {left} bytes left")
                    return
                digest.update(chunk)
                left -= len(chunk)
            if digest.hexdigest() != args.sha256:
                tally.fail("mismatch", f"conn {index} req {r}: body hash differs")
                return
            tally.latencies.append(time.monotonic() - start)
            tally.bytes += length
            tally.ok += 1
    except asyncio.TimeoutError:
        tally.fail("timeout", f"conn {index}")
    except ConnectionResetError as e:
        tally.fail("reset", f"conn {index}: {e!r}")
    except Exception as e:  # noqa: BLE001
        tally.fail("error", f"conn {index}: {e!r}")
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except Exception:  # noqa: BLE001 - a reset at close is counted above if it mattered
            pass


def pattern(index, length):
    seed = hashlib.sha256(f"sluice-echo-{index}".encode()).digest()
    out = bytearray()
    block = seed
    while len(out) < length:
        block = hashlib.sha256(block).digest()
        out += block
    return bytes(out[:length])


async def echo_connection(args, tally, index):
    data = pattern(index, args.bytes)
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(args.host, args.port), IO_TIMEOUT)
    except Exception as e:  # noqa: BLE001
        tally.fail("connect", f"conn {index}: {e!r}")
        return
    start = time.monotonic()

    async def send():
        for off in range(0, len(data), 1 << 16):
            writer.write(data[off:off + (1 << 16)])
            await writer.drain()
        writer.write_eof()

    try:
        sender = asyncio.ensure_future(send())
        got = bytearray()
        while True:
            chunk = await asyncio.wait_for(reader.read(1 << 16), IO_TIMEOUT)
            if not chunk:
                break
            got += chunk
            if len(got) > len(data):
                break
        await asyncio.wait_for(sender, IO_TIMEOUT)
        if bytes(got) != data:
            kind = "short" if len(got) < len(data) else "mismatch"
            tally.fail(kind, f"conn {index}: got {len(got)} of {len(data)} bytes")
            return
        tally.latencies.append(time.monotonic() - start)
        tally.bytes += len(data)
        tally.ok += 1
    except asyncio.TimeoutError:
        tally.fail("timeout", f"conn {index}")
    except ConnectionResetError as e:
        tally.fail("reset", f"conn {index}: {e!r}")
    except Exception as e:  # noqa: BLE001
        tally.fail("error", f"conn {index}: {e!r}")
    finally:
        writer.close()
        try:
            await writer.wait_closed()
        except Exception:  # noqa: BLE001
            pass


async def run(args):
    tally = Tally()
    work = http_connection if args.mode == "http" else echo_connection
    start = time.monotonic()
    await asyncio.gather(*(work(args, tally, i) for i in range(args.connections)))
    elapsed = time.monotonic() - start
    lat = sorted(tally.latencies)
    pct = lambda p: round(lat[min(len(lat) - 1, int(p * len(lat)))] * 1000, 3) if lat else None  # noqa: E731
    expected = args.connections * (args.requests if args.mode == "http" else 1)
    return {
        "mode": args.mode,
        "connections": args.connections,
        "expected": expected,
        "ok": tally.ok,
        "failures": tally.failures,
        "examples": tally.examples,
        "bytes": tally.bytes,
        "seconds": round(elapsed, 3),
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="mode", required=True)
    p = sub.add_parser("http")
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("path")
    p.add_argument("--sha256", required=True)
    p.add_argument("--length", type=int, required=True)
    p.add_argument("--connections", type=int, default=1)
    p.add_argument("--requests", type=int, default=1)
    p = sub.add_parser("echo")
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("--connections", type=int, default=1)
    p.add_argument("--bytes", type=int, default=1 << 20)
    args = parser.parse_args()
    result = asyncio.run(run(args))
    print(json.dumps(result))
    sys.exit(0 if result["ok"] == result["expected"] and not result["failures"] else 1)


if __name__ == "__main__":
    main()
