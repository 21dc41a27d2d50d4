"""The benchmark's bench: the netns-daemon.sh topology, the processes the
report starts (each in its own session, so a stop reaches its children:
nginx's workers), and the two sides a server runs on.

Sluice side: `sluice daemon` owns the dut namespace's veth with AF_XDP and
answers for 10.79.0.2; the server runs under `sluice run` (the LD_PRELOAD
interposer), reaching the daemon through its control socket only.
Kernel side: no daemon; the same veth gets 10.79.0.2 on the kernel and the
same server runs in the dut namespace on kernel sockets. The two sides take
turns on the one veth (the daemon's XDP program redirects every frame of the
queue, so they cannot share it), with the same address, clients and pinning.
"""
import os
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IP = "10.79.0.2"
IFACE = "sddut0"
# Two cores: the server side (daemon and app for Sluice, the app for the
# kernel) on CPU 1, every client on CPU 0.
SERVER_CPU, CLIENT_CPU = "1", "0"
READY_S = 20.0


class BenchError(RuntimeError):
    """A run failed: a process died, a client reported errors or bad bytes."""


class Processes:
    """Every long-running process the report started, stopped in reverse."""

    def __init__(self):
        self.live = []

    def spawn(self, cmd, log_path):
        log = open(log_path, "ab")
        proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
        log.close()
        proc.log_path = log_path
        self.live.append(proc)
        return proc

    def stop(self, proc, within=10.0):
        """SIGTERM to the process's session, SIGKILL if it outlives `within`."""
        if proc in self.live:
            self.live.remove(proc)
        for sig, wait in ((signal.SIGTERM, within), (signal.SIGKILL, 5.0)):
            if proc.poll() is not None:
                break
            try:
                os.killpg(proc.pid, sig)
            except ProcessLookupError:
                break
            try:
                proc.wait(wait)
            except subprocess.TimeoutExpired:
                continue
        # Children left in the session (a worker whose master died first).
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        return proc.returncode

    def stop_all(self):
        for proc in reversed(list(self.live)):
            self.stop(proc)


def log_tail(path, lines=20):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-lines:])
    except OSError:
        return ""


def wait_for(cond, what, proc=None, within=READY_S):
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if cond():
            return
        if proc is not None and proc.poll() is not None:
            raise BenchError(f"{what}: the process exited ({proc.returncode}):\n{log_tail(proc.log_path)}")
        time.sleep(0.05)
    raise BenchError(f"{what}: not ready within {within} s")


class Topology:
    def __init__(self, prefix):
        self.prefix = prefix
        self.peer, self.dut = f"{prefix}-peer", f"{prefix}-dut"

    def _script(self, *args):
        env = dict(os.environ, SLUICE_NETNS_PREFIX=self.prefix)
        subprocess.run(["bash", os.path.join(HERE, "netns-daemon.sh"), *args], check=True, env=env,
                       stdout=subprocess.DEVNULL)

    def up(self):
        self._script("up", "xdp")
        # Connection-per-request runs open tens of thousands of connections.
        subprocess.run(["ip", "netns", "exec", self.peer, "sysctl", "-qw",
                        "net.ipv4.ip_local_port_range=1024 65000"], check=True)

    def down(self):
        self._script("down")

    def client(self, cmd):
        """`cmd` in the peer namespace on the client CPU."""
        return ["ip", "netns", "exec", self.peer, "taskset", "-c", CLIENT_CPU] + cmd

    def connect_ok(self, port):
        """A kernel TCP connect from the peer namespace to IP:port succeeds."""
        probe = f"import socket; socket.create_connection(('{IP}', {port}), timeout=1).close()"
        return subprocess.run(self.client([sys.executable, "-c", probe]), stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL).returncode == 0


class SluiceSide:
    """The daemon on AF_XDP; servers under `sluice run`."""

    name = "sluice"

    def __init__(self, topo, procs, sluice, tmp):
        self.topo, self.procs, self.sluice, self.tmp = topo, procs, sluice, tmp
        self.control = os.path.join(tmp, "control.sock")
        self.daemon = None

    def __enter__(self):
        # After the last AF_XDP socket of a previous daemon closed, the veth
        # queue is free again only a moment later: retry the start.
        for attempt in range(5):
            if os.path.exists(self.control):
                os.unlink(self.control)
            cmd = ["ip", "netns", "exec", self.topo.dut, "taskset", "-c", SERVER_CPU, self.sluice, "daemon",
                   "--device", "xdp", "--iface", IFACE, "--ip", f"{IP}/24", "--control-socket", self.control,
                   "--log", "warn"]
            self.daemon = self.procs.spawn(cmd, os.path.join(self.tmp, "daemon.log"))
            try:
                wait_for(self.stats_ok, "sluice daemon", self.daemon)
                return self
            except BenchError:
                self.procs.stop(self.daemon)
                if attempt == 4:
                    raise
                time.sleep(0.3)

    def stats_ok(self):
        return subprocess.run([self.sluice, "stats", "--control-socket", self.control], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL).returncode == 0

    def __exit__(self, *exc):
        code = self.procs.stop(self.daemon)
        self.daemon = None
        if code not in (0, -signal.SIGTERM) and exc[0] is None:
            raise BenchError(f"sluice daemon exited with {code}:\n{log_tail(os.path.join(self.tmp, 'daemon.log'))}")

    def server(self, cmd):
        return ["taskset", "-c", SERVER_CPU, self.sluice, "run", "--control-socket", self.control, "--"] + cmd

    def check_alive(self):
        if self.daemon is None or self.daemon.poll() is not None:
            raise BenchError(f"the sluice daemon died:\n{log_tail(os.path.join(self.tmp, 'daemon.log'))}")


class KernelSide:
    """The veth's address on the kernel; servers on kernel sockets."""

    name = "kernel"

    def __init__(self, topo, procs):
        self.topo, self.procs = topo, procs

    def __enter__(self):
        subprocess.run(["ip", "-n", self.topo.dut, "addr", "add", f"{IP}/24", "dev", IFACE], check=True)
        return self

    def __exit__(self, *exc):
        subprocess.run(["ip", "-n", self.topo.dut, "addr", "del", f"{IP}/24", "dev", IFACE], check=False)

    def server(self, cmd):
        return ["ip", "netns", "exec", self.topo.dut, "taskset", "-c", SERVER_CPU] + cmd

    def check_alive(self):
        pass
