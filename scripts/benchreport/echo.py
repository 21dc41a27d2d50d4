"""Echo RPC latency at a fixed load: an echo server serving
scripts/echo-rate-client.py, which sends fixed-size requests on a fixed
schedule and records every round trip.

Servers (VARIANTS), each on the kernel and on Sluice:
* `mio`: `sluice-server echo --kernel`, the workspace's test server (one mio
  event loop over kernel socket calls; Nagle's algorithm left on, as mio
  leaves it), on kernel sockets and under `sluice run`;
* `nodelay`: scripts/echo-server.py, TCP_NODELAY on each connection as RPC
  servers set it, on kernel sockets and under `sluice run`;
* `native` (Sluice only): `sluice-server echo` built on vcl, no preload: the
  preload's own share of the latency.
"""
import json
import os
import subprocess
import sys

from .env import HERE, IP, SERVER_CPU, BenchError, wait_for

PORT = 7


def percentile(sorted_values, p):
    return sorted_values[min(len(sorted_values) - 1, int(p * len(sorted_values)))]


def summary(rtt_us):
    return {"n": len(rtt_us), **{f"p{k}_us": percentile(rtt_us, p) for k, p in
                                 (("50", 0.50), ("99", 0.99), ("99.9", 0.999))}}


def client(topo, plan, what):
    cmd = topo.client([sys.executable, os.path.join(HERE, "echo-rate-client.py"), IP, str(PORT),
                       "--rate", str(plan["echo_rate"]), "--connections", str(plan["echo_connections"]),
                       "--size", str(plan["echo_size"]), "--seconds", str(plan["echo_seconds"])])
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=plan["echo_seconds"] + 60)
    if out.returncode != 0:
        raise BenchError(f"echo client {what}: exit {out.returncode}\n{out.stderr}")
    return json.loads(out.stdout)["rtt_us"]


VARIANTS = ("mio", "nodelay", "native")


def server_cmd(side, server_bin, variant):
    if variant == "native":
        return ["taskset", "-c", SERVER_CPU, server_bin, "echo", "--listen", f"0.0.0.0:{PORT}",
                "--control-socket", side.control]
    if variant == "nodelay":
        return side.server([sys.executable, os.path.join(HERE, "echo-server.py"), str(PORT)])
    return side.server([server_bin, "echo", "--kernel", "--listen", f"0.0.0.0:{PORT}"])


def run(side, topo, procs, tmp, server_bin, variant, plan):
    """Round trips to the `variant` echo server on `side`, sorted."""
    label = f"{side.name}-{variant}"
    d = os.path.join(tmp, label)
    os.makedirs(d, exist_ok=True)
    server = procs.spawn(server_cmd(side, server_bin, variant), os.path.join(d, "echo.out"))
    try:
        wait_for(lambda: topo.connect_ok(PORT), f"echo server {label}", server)
        rtt = client(topo, plan, label)
        side.check_alive()
        if server.poll() is not None:
            raise BenchError(f"echo server {label} exited during the run")
        return rtt
    finally:
        procs.stop(server)
