"""nginx (Debian's, unmodified) on one side: small-file requests/s against
the number of keep-alive connections (wrk), 1 MiB throughput (wrk), and
connection-per-request (ab without -k: a new TCP connection per request).

Every body is checked before the load (curl, SHA-256) and after it, so a run
that served wrong bytes fails; wrk's socket errors and non-2xx answers and
ab's failed requests fail it too.
"""
import hashlib
import os
import re
import subprocess

from .env import IP, BenchError, wait_for

PORT = 80
FILES = {"1k.bin": 1024, "1m.bin": 1 << 20}


def make_www(tmp):
    www = os.path.join(tmp, "www")
    os.makedirs(www, exist_ok=True)
    digests = {}
    for name, size in FILES.items():
        data = os.urandom(size)
        with open(os.path.join(www, name), "wb") as f:
            f.write(data)
        digests[name] = hashlib.sha256(data).hexdigest()
    return www, digests


def write_conf(tmp, www, workers):
    """One configuration for both sides: master + `workers` workers,
    sendfile, keep-alive, no access log (it would measure the disk)."""
    d = os.path.join(tmp, "nginx")
    os.makedirs(os.path.join(d, "tmp"), exist_ok=True)
    conf = os.path.join(d, "nginx.conf")
    with open(conf, "w") as f:
        f.write(f"""daemon off;
master_process on;
worker_processes {workers};
error_log {d}/error.log warn;
pid {d}/nginx.pid;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {d}/tmp; proxy_temp_path {d}/tmp; fastcgi_temp_path {d}/tmp;
  uwsgi_temp_path {d}/tmp; scgi_temp_path {d}/tmp;
  sendfile on; tcp_nopush on; tcp_nodelay on;
  keepalive_timeout 60; keepalive_requests 1000000;
  server {{ listen {PORT} backlog=4096; root {www}; }}
}}
""")
    return d, conf


def check_bodies(topo, digests, side):
    for name, digest in digests.items():
        cmd = topo.client(["bash", "-c", f"set -o pipefail; curl -sSf --max-time 30 http://{IP}/{name} | sha256sum"])
        out = subprocess.run(cmd, capture_output=True, text=True)
        got = out.stdout.split()[0] if out.returncode == 0 and out.stdout else f"curl failed: {out.stderr.strip()}"
        if got != digest:
            raise BenchError(f"nginx on {side.name}: /{name} served other bytes ({got})")


def _ms(value, unit):
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[unit]


def wrk(topo, path, connections, seconds, what):
    cmd = topo.client(["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "--latency",
                       f"http://{IP}{path}"])
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 60)
    text = out.stdout + out.stderr
    rps = re.search(r"Requests/sec:\s+([\d.]+)", text)
    errors = re.findall(r"Non-2xx or 3xx responses: \d+|Socket errors: [^\n]*", text)
    if out.returncode != 0 or rps is None or errors:
        raise BenchError(f"wrk {what}: exit {out.returncode}, {errors or 'no result'}\n{text}")
    lat = {p: _ms(*re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)\b", text).groups()) for p in ("50", "99")}
    moved = re.search(r"requests in ([\d.]+)(us|ms|s|m), ([\d.]+)(B|KB|MB|GB) read", text)
    elapsed = _ms(moved.group(1), moved.group(2)) / 1e3 if moved.group(2) != "m" else float(moved.group(1)) * 60
    mib = float(moved.group(3)) * {"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30}[moved.group(4)] / (1 << 20)
    return {"rps": float(rps.group(1)), "p50_ms": lat["50"], "p99_ms": lat["99"],
            "mib_s": mib / elapsed}


def ab(topo, path, requests, concurrency, length):
    cmd = topo.client(["ab", "-q", "-n", str(requests), "-c", str(concurrency), "-s", "10", f"http://{IP}{path}"])
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    text = out.stdout + out.stderr
    field = lambda name: re.search(rf"{name}:\s+([\d.]+)", text)  # noqa: E731
    done, failed, rps = field("Complete requests"), field("Failed requests"), field("Requests per second")
    doc_len = field("Document Length")
    non2xx = field("Non-2xx responses")
    if (out.returncode != 0 or not done or int(done.group(1)) != requests or int(failed.group(1)) != 0
            or non2xx or int(doc_len.group(1)) != length):
        raise BenchError(f"ab -c {concurrency} {path}: exit {out.returncode}\n{text}")
    pct = {p: float(re.search(rf"^\s+{p}%\s+(\d+)", text, re.M).group(1)) for p in ("50", "99")}
    return {"rps": float(rps.group(1)), "p50_ms": pct["50"], "p99_ms": pct["99"]}


def run(side, topo, procs, tmp, www, digests, plan):
    """All nginx measurements on `side`; returns them by name."""
    d, conf = write_conf(os.path.join(tmp, side.name), www, plan["nginx_workers"])
    nginx = procs.spawn(side.server(["/usr/sbin/nginx", "-p", d, "-c", conf]), os.path.join(d, "nginx.out"))
    try:
        wait_for(lambda: topo.connect_ok(PORT), f"nginx on {side.name}", nginx)
        check_bodies(topo, digests, side)
        res = {"small": {}}
        for c in plan["connections"]:
            res["small"][c] = wrk(topo, "/1k.bin", c, plan["seconds"], f"1 KiB -c{c} on {side.name}")
            side.check_alive()
        res["large"] = wrk(topo, "/1m.bin", plan["large_connections"], plan["seconds"], f"1 MiB on {side.name}")
        res["close"] = ab(topo, "/1k.bin", plan["ab_requests"], plan["ab_concurrency"], FILES["1k.bin"])
        check_bodies(topo, digests, side)
        side.check_alive()
        if nginx.poll() is not None:
            raise BenchError(f"nginx on {side.name} exited during the run")
        return res
    finally:
        procs.stop(nginx)
