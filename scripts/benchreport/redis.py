"""redis-server (Debian's, unmodified, no persistence) on one side:
`redis-benchmark` SET and GET, plain (one request in flight per connection)
and pipelined (-P 16). redis-benchmark exits non-zero and writes to stderr
on an error reply or a lost connection; either fails the run.
"""
import csv
import io
import os
import subprocess

from .env import IP, BenchError, wait_for

PORT = 6379
TESTS = "set,get"


def write_conf(d):
    os.makedirs(d, exist_ok=True)
    conf = os.path.join(d, "redis.conf")
    with open(conf, "w") as f:
        f.write(f'port {PORT}\nbind 0.0.0.0\nprotected-mode no\ndaemonize no\ndir {d}\nlogfile ""\n'
                'save ""\nappendonly no\n')
    return conf


def benchmark(topo, clients, requests, pipeline, what):
    cmd = topo.client(["redis-benchmark", "-h", IP, "-p", str(PORT), "-c", str(clients), "-n", str(requests),
                       "-P", str(pipeline), "-t", TESTS, "--csv"])
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if out.returncode != 0 or out.stderr.strip():
        raise BenchError(f"redis-benchmark {what}: exit {out.returncode}\n{out.stderr}\n{out.stdout}")
    rows = {}
    for row in csv.DictReader(io.StringIO(out.stdout)):
        rows[row["test"]] = {"rps": float(row["rps"]), "p50_ms": float(row["p50_latency_ms"]),
                             "p99_ms": float(row["p99_latency_ms"])}
    if set(rows) != {t.upper() for t in TESTS.split(",")}:
        raise BenchError(f"redis-benchmark {what}: unexpected output\n{out.stdout}")
    return rows


def cli(topo, *args):
    out = subprocess.run(topo.client(["redis-cli", "-h", IP, "-p", str(PORT), *args]), capture_output=True,
                         text=True, timeout=30)
    return out.stdout.strip() if out.returncode == 0 else None


def run(side, topo, procs, tmp, plan):
    d = os.path.join(tmp, side.name, "redis")
    conf = write_conf(d)
    server = procs.spawn(side.server(["redis-server", conf]), os.path.join(d, "redis.out"))
    try:
        wait_for(lambda: cli(topo, "ping") == "PONG", f"redis on {side.name}", server)
        res = {}
        for name, pipeline, requests in (("plain", 1, plan["redis_requests"]),
                                         ("pipelined", 16, plan["redis_requests"] * 8)):
            res[name] = benchmark(topo, plan["redis_clients"], requests, pipeline, f"{name} on {side.name}")
            side.check_alive()
        # Every SET's value arrived: the key redis-benchmark writes holds its 3-byte value.
        if cli(topo, "get", "key:__rand_int__") != "VXK":
            raise BenchError(f"redis on {side.name}: the benchmark's key does not hold its value")
        if server.poll() is not None:
            raise BenchError(f"redis on {side.name} exited during the run")
        return res
    finally:
        procs.stop(server)
