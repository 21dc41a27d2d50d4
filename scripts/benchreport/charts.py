"""The report's PNG charts (matplotlib, headless Agg backend)."""
import os

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

STYLE = {"sluice": ("Sluice (preload)", "tab:blue"), "kernel": ("Linux kernel", "tab:orange")}
ECHO_STYLE = {
    "sluice-mio": ("Sluice, sluice-server echo under the preload", "tab:blue", "-"),
    "sluice-native": ("Sluice, sluice-server echo on vcl (native)", "tab:green", "-"),
    "sluice-nodelay": ("Sluice, echo-server.py (TCP_NODELAY) under the preload", "tab:blue", "--"),
    "kernel-mio": ("kernel, sluice-server echo --kernel", "tab:orange", "-"),
    "kernel-nodelay": ("kernel, echo-server.py (TCP_NODELAY)", "tab:orange", "--"),
}


def nginx_rps(results, path):
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for side in ("sluice", "kernel"):
        points = sorted(results[side]["nginx"]["small"].items())
        label, color = STYLE[side]
        ax.plot([c for c, _ in points], [r["rps"] for _, r in points], marker="o", label=label, color=color)
    ax.set_xscale("log")
    connections = sorted(results["kernel"]["nginx"]["small"])
    ax.set_xticks(connections, [str(c) for c in connections])
    ax.minorticks_off()
    ax.set_xlabel("keep-alive connections (wrk, 1 thread)")
    ax.set_ylabel("requests/s")
    ax.set_title("nginx, 1 KiB file: requests/s vs connections")
    ax.set_ylim(bottom=0)
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def echo_cdf(rtts, plan, path):
    fig, ax = plt.subplots(figsize=(8, 5))
    for key, (label, color, dash) in ECHO_STYLE.items():
        rtt = rtts[key]
        n = len(rtt)
        ax.plot(rtt, [(i + 1) / n for i in range(n)], label=label, color=color, linestyle=dash)
    ax.set_xscale("log")
    ax.set_xlabel("round trip (µs, from the scheduled send)")
    ax.set_ylabel("fraction of requests")
    ax.set_title(f"echo RPC latency CDF: {plan['echo_size']} B requests at {plan['echo_rate']:.0f}/s "
                 f"over {plan['echo_connections']} connections")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(loc="lower right", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def redis_bars(results, path):
    names = [(mode, test) for mode in ("plain", "pipelined") for test in ("SET", "GET")]
    fig, ax = plt.subplots(figsize=(7, 4.5))
    width = 0.38
    for i, side in enumerate(("sluice", "kernel")):
        label, color = STYLE[side]
        values = [results[side]["redis"][mode][test]["rps"] for mode, test in names]
        ax.bar([x + (i - 0.5) * width for x in range(len(names))], values, width, label=label, color=color)
    ax.set_xticks(range(len(names)), [f"{test}\n{'-P 16' if mode == 'pipelined' else 'plain'}" for mode, test in names])
    ax.set_ylabel("requests/s")
    ax.set_title("redis-benchmark")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def write_all(results, rtts, plan, out_dir):
    files = {"nginx": "nginx-rps-vs-connections.png", "echo": "echo-latency-cdf.png", "redis": "redis-rps.png"}
    nginx_rps(results, os.path.join(out_dir, files["nginx"]))
    echo_cdf(rtts, plan, os.path.join(out_dir, files["echo"]))
    redis_bars(results, os.path.join(out_dir, files["redis"]))
    return files
