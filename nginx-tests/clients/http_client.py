#!/usr/bin/env python3
"""Raw-socket HTTP/1.1 client for nginx-tests: the requests curl cannot make
(pipelining, hand-made chunked bodies, huge headers, aborts, slow reads).
Standard library only. Prints one JSON object on stdout: what the server
answered, reduced to what two servers can be compared on (status, the
headers that matter, body length and SHA-256, the elapsed time).

Modes (HOST PORT first in each):
  get PATH [--header 'K: V']... [--gzip] [--rcvbuf N] [--rate BYTES/S] [--announce]
  keepalive PATH...            the requests one after another on one connection
  pipeline PATH...             all requests in one write, responses in order
  put-chunked PATH --length N --chunk C   a chunked PUT of N pseudo-random bytes
  header PATH --size N         one request header X-Big of N bytes
  abort PATH --after N --then PATH2   read N body bytes, close, then GET PATH2
  load PATH --sha256 HEX --threads T --stop-file F
                               connection-per-request GETs until F exists
"""
import argparse
import gzip
import hashlib
import json
import os
import random
import socket
import sys
import threading
import time

IO_TIMEOUT = 30.0
# Headers whose values the kernel and Sluice runs must agree on (Date, ETag
# and multipart boundaries legitimately differ and are left out).
KEPT = ("content-length", "content-type", "content-range", "transfer-encoding", "content-encoding",
        "location", "connection", "accept-ranges")


class Conn:
    """A socket with a read buffer; `rate` (bytes/s) paces the reads."""

    def __init__(self, host, port, rcvbuf=0, rate=0):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(IO_TIMEOUT)
        self.sock.connect((host, port))
        self.buf = b""
        self.rate = rate
        self.started = time.monotonic()
        self.read_total = 0

    def fill(self):
        size = 65536
        if self.rate:
            # Read no faster than `rate`: wait until the bytes read so far are due.
            due = self.started + self.read_total / self.rate
            pause = due - time.monotonic()
            if pause > 0:
                time.sleep(pause)
            size = max(1024, self.rate // 20)
        data = self.sock.recv(size)
        if not data:
            raise EOFError("connection closed")
        self.read_total += len(data)
        self.buf += data

    def until(self, marker):
        while marker not in self.buf:
            self.fill()
        head, self.buf = self.buf.split(marker, 1)
        return head

    def exactly(self, n):
        while len(self.buf) < n:
            self.fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def to_close(self):
        while True:
            try:
                self.fill()
            except EOFError:
                out, self.buf = self.buf, b""
                return out


def request(method, path, host, headers=(), body=b""):
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"] + list(headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def read_response(conn, method="GET", on_head=None):
    head = conn.until(b"\r\n\r\n").decode("latin-1").split("\r\n")
    if on_head:
        on_head()
    status = int(head[0].split(" ")[1])
    headers = {}
    for line in head[1:]:
        k, _, v = line.partition(":")
        headers[k.strip().lower()] = v.strip()
    chunked = "chunked" in headers.get("transfer-encoding", "").lower()
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        body = b""
    elif chunked:
        body = b""
        while True:
            size = int(conn.until(b"\r\n").split(b";")[0], 16)
            if size == 0:
                conn.until(b"\r\n")  # no trailers from nginx: the empty line
                break
            body += conn.exactly(size)
            conn.exactly(2)
    elif "content-length" in headers:
        body = conn.exactly(int(headers["content-length"]))
    else:
        body = conn.to_close()
    return status, headers, body


def summary(status, headers, body, gunzip=False):
    decoded = gzip.decompress(body) if gunzip and headers.get("content-encoding") == "gzip" else body
    out = {
        "status": status,
        "headers": {k: headers[k] for k in KEPT if k in headers},
        "length": len(decoded),
        "sha256": hashlib.sha256(decoded).hexdigest(),
    }
    if headers.get("content-type", "").startswith("multipart/byteranges"):
        out["parts"] = byteranges(headers["content-type"], body)
    return out


def byteranges(content_type, body):
    """The parts of a multipart/byteranges body (RFC 9110 §14.6) as
    [Content-Range, SHA-256 of the part]: the boundary itself differs."""
    boundary = content_type.split("boundary=", 1)[1].strip('"').encode("latin-1")
    parts = []
    for piece in body.split(b"--" + boundary)[1:]:
        if piece.startswith(b"--"):
            break
        head, _, data = piece.partition(b"\r\n\r\n")
        rng = [l.split(b":", 1)[1].strip().decode() for l in head.split(b"\r\n") if l.lower().startswith(b"content-range")]
        parts.append([rng[0] if rng else "", hashlib.sha256(data[:-2]).hexdigest(), len(data) - 2])
    return parts


def pseudo_random(length, seed):
    return random.Random(seed).randbytes(length)


def mode_get(a):
    conn = Conn(a.host, a.port, a.rcvbuf, a.rate)
    headers = list(a.header) + (["Accept-Encoding: gzip"] if a.gzip else [])
    conn.sock.sendall(request("GET", a.path, a.host, headers + ["Connection: close"]))
    # --announce: one line once the head is in, so that the harness knows
    # the request is in flight (graceful quit).
    on_head = (lambda: print("head", flush=True)) if a.announce else None
    status, headers, body = read_response(conn, on_head=on_head)
    out = summary(status, headers, body, a.gzip)
    out["elapsed"] = time.monotonic() - conn.started
    return out


def mode_keepalive(a):
    conn = Conn(a.host, a.port)
    responses = []
    for path in a.paths:
        conn.sock.sendall(request("GET", path, a.host))
        responses.append(summary(*read_response(conn)))
    return {"responses": responses, "connections": 1}


def mode_pipeline(a):
    conn = Conn(a.host, a.port)
    conn.sock.sendall(b"".join(request("GET", p, a.host) for p in a.paths))
    return {"responses": [summary(*read_response(conn)) for _ in a.paths]}


def mode_put_chunked(a):
    body = pseudo_random(a.length, a.length)
    conn = Conn(a.host, a.port)
    conn.sock.sendall(request("PUT", a.path, a.host, ["Transfer-Encoding: chunked", "Connection: close"]))
    for at in range(0, len(body), a.chunk):
        piece = body[at:at + a.chunk]
        conn.sock.sendall(b"%x\r\n" % len(piece) + piece + b"\r\n")
    conn.sock.sendall(b"0\r\n\r\n")
    status, headers, _ = read_response(conn, "PUT")
    return {"status": status, "sent_sha256": hashlib.sha256(body).hexdigest(), "sent": len(body)}


def mode_header(a):
    conn = Conn(a.host, a.port)
    conn.sock.sendall(request("GET", a.path, a.host, ["X-Big: " + "a" * a.size, "Connection: close"]))
    status, headers, body = read_response(conn)
    return {"status": status, "length": len(body)}


def mode_abort(a):
    conn = Conn(a.host, a.port, rcvbuf=65536)
    conn.sock.sendall(request("GET", a.path, a.host))
    head = conn.until(b"\r\n\r\n").decode("latin-1")
    status = int(head.split(" ")[1])
    conn.exactly(a.after)
    # Unread data in the receive buffer: close(2) sends a RST (RFC 2525 §2.17).
    conn.sock.close()
    nxt = Conn(a.host, a.port)
    nxt.sock.sendall(request("GET", a.then, a.host, ["Connection: close"]))
    out = summary(*read_response(nxt))
    return {"aborted_status": status, "read": a.after, "next": out}


def mode_load(a):
    tally = {"ok": 0, "failed": 0, "errors": []}
    lock = threading.Lock()

    def worker():
        while not os.path.exists(a.stop_file):
            step = "connect"
            try:
                conn = Conn(a.host, a.port)
                step = "request"
                conn.sock.sendall(request("GET", a.path, a.host, ["Connection: close"]))
                step = "response"
                status, _, body = read_response(conn)
                conn.sock.close()
                good = status == 200 and hashlib.sha256(body).hexdigest() == a.sha256
                err = None if good else f"status {status} length {len(body)}"
            except Exception as e:  # noqa: BLE001 - every failure is counted
                good, err = False, f"{step}: {e!r}"
            with lock:
                if good:
                    tally["ok"] += 1
                else:
                    tally["failed"] += 1
                    if len(tally["errors"]) < 5:
                        tally["errors"].append(err)

    threads = [threading.Thread(target=worker) for _ in range(a.threads)]
    for t in threads:
        t.start()
    print("started", flush=True)
    for t in threads:
        t.join()
    return tally


def main():
    p = argparse.ArgumentParser()
    p.add_argument("host")
    p.add_argument("port", type=int)
    sub = p.add_subparsers(dest="mode", required=True)
    g = sub.add_parser("get")
    g.add_argument("path")
    g.add_argument("--header", action="append", default=[])
    g.add_argument("--gzip", action="store_true")
    g.add_argument("--rcvbuf", type=int, default=0)
    g.add_argument("--rate", type=int, default=0)
    g.add_argument("--announce", action="store_true")
    for name in ("keepalive", "pipeline"):
        s = sub.add_parser(name)
        s.add_argument("paths", nargs="+")
    c = sub.add_parser("put-chunked")
    c.add_argument("path")
    c.add_argument("--length", type=int, required=True)
    c.add_argument("--chunk", type=int, default=4096)
    h = sub.add_parser("header")
    h.add_argument("path")
    h.add_argument("--size", type=int, required=True)
    b = sub.add_parser("abort")
    b.add_argument("path")
    b.add_argument("--after", type=int, required=True)
    b.add_argument("--then", required=True)
    l = sub.add_parser("load")
    l.add_argument("path")
    l.add_argument("--sha256", required=True)
    l.add_argument("--threads", type=int, default=4)
    l.add_argument("--stop-file", required=True)
    a = p.parse_args()
    try:
        out = globals()["mode_" + a.mode.replace("-", "_")](a)
    except Exception as e:  # noqa: BLE001 - the harness compares the error kind
        out = {"error": type(e).__name__, "detail": str(e)}
    print(json.dumps(out, sort_keys=True), flush=True)


if __name__ == "__main__":
    sys.exit(main())
