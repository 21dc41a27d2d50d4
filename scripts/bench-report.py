#!/usr/bin/env python3
"""The benchmark report (`make bench`, needs root): unmodified servers on
Sluice against the same servers on the Linux kernel, in one run, on the same
topology with the same CPU pinning.

  bench-report.py --sluice BIN --server BIN [--out-dir DIR] [--quick]

Workloads (scripts/benchreport/): nginx 1 KiB at several keep-alive
connection counts, nginx 1 MiB, nginx connection-per-request; redis SET/GET
plain and pipelined; echo RPC round trips at a fixed rate. Writes
DIR/report.md (a table of ratios Sluice/kernel and how it was measured) and
PNG charts next to it. Never pass/fail on numbers: exits non-zero only if a
run fails (a process dies, a client reports errors or wrong bytes).
Everything it creates (namespaces, processes, files) is removed on exit,
on failure and on Ctrl-C. `sluice run` finds the preload next to BIN.
"""
import argparse
import os
import shutil
import signal
import sys
import tempfile
import time

# The package next to this script; no __pycache__ left in the source tree.
sys.dont_write_bytecode = True
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from benchreport import echo, nginx, redis  # noqa: E402
from benchreport.env import BenchError, KernelSide, Processes, SluiceSide, Topology  # noqa: E402

PREFIX = "sbr"

FULL = {"connections": [1, 10, 50, 100, 200], "seconds": 8, "large_connections": 10, "ab_requests": 20000,
        "ab_concurrency": 10, "nginx_workers": 1, "redis_clients": 50, "redis_requests": 100000,
        "echo_rate": 2000.0, "echo_connections": 8, "echo_size": 64, "echo_seconds": 15, "rounds": 2}
QUICK = dict(FULL, rounds=1, connections=[1, 50], seconds=3, ab_requests=3000, redis_requests=20000, echo_seconds=4)


def best(a, b):
    """The better of two rounds' measurements, point by point: the one with
    more MiB/s or requests/s (background work only ever slows a run down)."""
    if "rps" in a:
        key = "mib_s" if "mib_s" in a else "rps"
        return a if a[key] >= b[key] else b
    return {k: best(a[k], b[k]) for k in a}


def measure(args, plan, topo, procs, tmp):
    www, digests = nginx.make_www(tmp)
    results = {"sluice": {}, "kernel": {}}
    rtts = {}
    sluice = SluiceSide(topo, procs, args.sluice, tmp)
    kernel = KernelSide(topo, procs)
    for n in range(plan["rounds"]):
        for side in (sluice, kernel):
            with side:
                print(f"bench-report: round {n + 1}: nginx and redis on {side.name}", flush=True)
                got = {"nginx": nginx.run(side, topo, procs, tmp, www, digests, plan),
                       "redis": redis.run(side, topo, procs, tmp, plan)}
                results[side.name] = best(results[side.name], got) if results[side.name] else got
    for side in (sluice, kernel):
        with side:
            for variant in echo.VARIANTS:
                if variant == "native" and side is kernel:
                    continue
                print(f"bench-report: echo RPC on {side.name} ({variant})", flush=True)
                rtts[f"{side.name}-{variant}"] = echo.run(side, topo, procs, tmp, args.server, variant, plan)
    return results, rtts


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sluice", required=True, help="the sluice binary (the preload lib next to it)")
    ap.add_argument("--server", required=True, help="the sluice-server binary")
    ap.add_argument("--out-dir", default="bench/results")
    ap.add_argument("--quick", action="store_true", help="fewer points, shorter runs (about 2 minutes)")
    ap.add_argument("--nice", type=int, default=0,
                    help="niceness change for the run and all it starts, both sides alike (default 0; a negative "
                         "one makes other work disturb less, but the CPU-bound clients then starve ksoftirqd, "
                         "which carries part of both sides' packet work)")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench-report: needs root (network namespaces, AF_XDP)")
    missing = [t for t in ("wrk", "ab", "nginx", "redis-server", "redis-benchmark", "taskset") if not shutil.which(t)]
    if missing:
        sys.exit(f"bench-report: missing {', '.join(missing)} (scripts/install-deps.sh installs them)")
    from benchreport import charts, markdown  # matplotlib only once the run can start

    plan = dict(QUICK if args.quick else FULL, quick=args.quick, nice=os.nice(args.nice))
    # SIGTERM unwinds like Ctrl-C, through the cleanup below.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    started = time.monotonic()
    tmp = tempfile.mkdtemp(prefix="sluice-bench-report-")
    # nginx's workers run as an unprivileged user: they must reach the
    # files, the control socket and the temp directories in here.
    os.chmod(tmp, 0o755)
    topo, procs = Topology(PREFIX), Processes()
    try:
        topo.up()
        results, rtts = measure(args, plan, topo, procs, tmp)
    except BenchError as e:
        print(f"bench-report: FAILED: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("bench-report: interrupted; cleaning up", file=sys.stderr)
        return 130
    finally:
        procs.stop_all()
        topo.down()
        shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(args.out_dir, exist_ok=True)
    files = charts.write_all(results, rtts, plan, args.out_dir)
    text = markdown.report(results, rtts, plan, files, {"cpus": os.cpu_count()}, time.monotonic() - started)
    with open(os.path.join(args.out_dir, "report.md"), "w") as f:
        f.write(text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
