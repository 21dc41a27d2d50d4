#!/usr/bin/env python3
"""Benchmark: the HTTP test server on Sluice (daemon on AF_XDP) against the
same server on kernel sockets, same topology, same run, same CPU pinning.

  bench-daemon.py --sluice BIN --server BIN [--out FILE] [--quick]

Topology: scripts/netns-daemon.sh (peer namespace with the wrk client, a
middle bridge, the server's namespace). Sluice run: `sluice daemon` on the
veth with AF_XDP and `sluice-server http` attached to it. Kernel run: the same
veth with 10.79.0.2 on the kernel and `sluice-server http --kernel`. The
server side is pinned to CPU 1 (daemon and app share it), wrk to CPU 0.

Also measured on the Sluice run: the daemon's CPU time over 10 s of no
traffic, and 1-byte echo round trips back to back and after 100 ms of
silence (wake-up latency), with the kernel's numbers for the same probe.
Writes a Markdown report (ratios Sluice/kernel); never pass/fail on numbers.
"""
import argparse
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
PREFIX = "sb"
PEER, DUT = f"{PREFIX}-peer", f"{PREFIX}-dut"
IP = "10.79.0.2"
SERVER_CPU, CLIENT_CPU = "1", "0"


def sh(*cmd, check=True, **kw):
    return subprocess.run(cmd, check=check, text=True, capture_output=True, **kw)


def topology(action, *args):
    env = dict(os.environ, SLUICE_NETNS_PREFIX=PREFIX)
    subprocess.run(["bash", os.path.join(HERE, "netns-daemon.sh"), action, *args], check=True, env=env)


def spawn(cmd, ns=None, cpu=None):
    if cpu is not None:
        cmd = ["taskset", "-c", cpu] + cmd
    if ns is not None:
        cmd = ["ip", "netns", "exec", ns] + cmd
    return subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def wait_ready(proc, what, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        line = proc.stdout.readline()
        if line.startswith("ready"):
            return
        if not line and proc.poll() is not None:
            break
    raise RuntimeError(f"{what} never became ready: {proc.stderr.read() if proc.poll() is not None else ''}")


def stop(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def cpu_ticks(pid):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return int(fields[11]) + int(fields[12])  # utime + stime


def wrk(url, connections, seconds):
    out = sh("ip", "netns", "exec", PEER, "taskset", "-c", CLIENT_CPU, "wrk", "-t1", f"-c{connections}",
             f"-d{seconds}s", "--latency", url).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    lat = {}
    for p in ("50", "99"):
        m = re.search(rf"\s{p}%\s+([\d.]+)(us|ms|s)", out)
        scale = {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)]
        lat[p] = float(m.group(1)) * scale
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", out)
    return {"rps": rps, "p50_ms": lat["50"], "p99_ms": lat["99"], "errors": errors.group(0) if errors else ""}


def probe(port):
    out = sh("ip", "netns", "exec", PEER, "python3", os.path.join(HERE, "latency-probe.py"), IP, str(port),
             "--samples", "100", "--idle-ms", "100").stdout
    return json.loads(out)


def run_side(label, start_servers, www, quick):
    seconds = 3 if quick else 10
    results = {}
    procs = start_servers()
    try:
        for name, path, conns in (("small", "/1k.bin", 50), ("1 MiB", "/1m.bin", 10)):
            results[name] = wrk(f"http://{IP}{path}", conns, seconds)
        results["probe"] = probe(7)
    finally:
        for p in reversed(procs):
            stop(p)
    return results


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sluice", required=True)
    ap.add_argument("--server", required=True)
    ap.add_argument("--out", default=None)
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    if not shutil.which("wrk"):
        sys.exit("bench-daemon: wrk is not installed (apt-get install wrk)")
    tmp = tempfile.mkdtemp(prefix="sluice-bench-")
    www = os.path.join(tmp, "www")
    os.makedirs(www)
    for name, size in (("1k.bin", 1024), ("1m.bin", 1 << 20)):
        with open(os.path.join(www, name), "wb") as f:
            f.write(os.urandom(size))
    control = os.path.join(tmp, "control.sock")
    report = {}
    topology("up", "xdp")
    try:
        daemon_box = {}

        def sluice_servers():
            d = spawn([args.sluice, "daemon", "--device", "xdp", "--iface", "sddut0", "--ip", f"{IP}/24",
                       "--control-socket", control, "--log", "warn"], ns=DUT, cpu=SERVER_CPU)
            deadline = time.time() + 20
            while not os.path.exists(control) and time.time() < deadline:
                time.sleep(0.05)
            daemon_box["proc"] = d
            idle_s = 3 if args.quick else 10
            t0 = cpu_ticks(d.pid)
            time.sleep(idle_s)
            ticks = cpu_ticks(d.pid) - t0
            report["idle_cpu_percent"] = round(100.0 * ticks / os.sysconf("SC_CLK_TCK") / idle_s, 2)
            report["idle_seconds"] = idle_s
            http = spawn([args.server, "http", "--listen", "0.0.0.0:80", "--root", www, "--control-socket", control],
                         cpu=SERVER_CPU)
            wait_ready(http, "sluice-server http")
            echo = spawn([args.server, "echo", "--listen", "0.0.0.0:7", "--control-socket", control], cpu=SERVER_CPU)
            wait_ready(echo, "sluice-server echo")
            return [d, http, echo]

        report["sluice"] = run_side("sluice", sluice_servers, www, args.quick)
        time.sleep(0.3)  # the veth queue is free again only ~0.2 s after the last AF_XDP owner left

        def kernel_servers():
            sh("ip", "-n", DUT, "addr", "add", f"{IP}/24", "dev", "sddut0")
            http = spawn([args.server, "http", "--kernel", "--listen", "0.0.0.0:80", "--root", www], ns=DUT,
                         cpu=SERVER_CPU)
            wait_ready(http, "kernel http server")
            echo = spawn([args.server, "echo", "--kernel", "--listen", "0.0.0.0:7"], ns=DUT, cpu=SERVER_CPU)
            wait_ready(echo, "kernel echo server")
            return [http, echo]

        report["kernel"] = run_side("kernel", kernel_servers, www, args.quick)
    finally:
        topology("down")
        shutil.rmtree(tmp, ignore_errors=True)

    s, k = report["sluice"], report["kernel"]
    lines = [
        "# Daemon benchmark: HTTP server on Sluice (AF_XDP) vs on kernel sockets",
        "",
        f"Same veth topology, same server code (`sluice-server http`), server side pinned to CPU {SERVER_CPU} "
        f"(Sluice: daemon and app share it), wrk pinned to CPU {CLIENT_CPU}. "
        f"{'Quick run (3 s per point).' if args.quick else '10 s per point.'}",
        "",
        "| workload | Sluice req/s | kernel req/s | ratio | Sluice p99 ms | kernel p99 ms | p99 ratio |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name in ("small", "1 MiB"):
        a, b = s[name], k[name]
        lines.append(f"| GET {name} | {a['rps']:.0f} | {b['rps']:.0f} | {a['rps'] / b['rps']:.2f}x | "
                     f"{a['p99_ms']:.2f} | {b['p99_ms']:.2f} | {a['p99_ms'] / b['p99_ms']:.2f}x |")
    lines += [
        "",
        "| 1-byte echo round trip (µs) | Sluice p50 | Sluice p99 | kernel p50 | kernel p99 |",
        "|---|---:|---:|---:|---:|",
    ]
    for phase in ("busy", "after_idle"):
        a, b = s["probe"][phase], k["probe"][phase]
        lines.append(f"| {phase.replace('_', ' ')} | {a['p50_us']} | {a['p99_us']} | {b['p50_us']} | {b['p99_us']} |")
    errors = [f"{side} {name}: {r[name]['errors']}" for side, r in (("sluice", s), ("kernel", k))
              for name in ("small", "1 MiB") if r[name]["errors"]]
    lines += ["", f"Daemon CPU over {report['idle_seconds']} s with no traffic: {report['idle_cpu_percent']}% of one core.",
              "", "Errors reported by wrk: " + (", ".join(errors) if errors else "none.")]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)


if __name__ == "__main__":
    main()
