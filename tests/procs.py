"""Processes a test starts in sessions of their own: list and kill them (by pid), and a
two-node Ray cluster on this machine."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RAY = os.path.join(os.path.dirname(sys.executable), "ray")
# the cluster and its clients on this machine: no token authentication to share
RAY_ENV = dict(os.environ, RAY_AUTH_MODE="disabled")


def session_pids(sid: int) -> list[int]:
    """The live processes of the session ``sid`` (a command started with
    ``start_new_session=True`` and everything it started); zombies are dead already."""
    pids = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                stat = f.read()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()
        if int(fields[3]) == sid and fields[0] != "Z":
            pids.append(int(d))
    return pids


def kill_session(sid: int, sig: int = signal.SIGKILL, timeout_s: float = 30.0) -> list[int]:
    """Send ``sig`` to every process of the session until none is left (processes may fork
    while we kill), at most ``timeout_s``; returns those still alive."""
    deadline = time.monotonic() + timeout_s
    while session_pids(sid) and time.monotonic() < deadline:
        for pid in session_pids(sid):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                pass
        time.sleep(0.2)
    return session_pids(sid)


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def node_flags(ports: list[int], temp_dir: str) -> list[str]:
    """What a second node on the *same* machine needs beyond the cluster commands of
    docs/agents.md: its own ports and temp dir, the loopback address (Ray publishes the host's
    own address for it), blocking so that the test owns the processes."""
    names = ("--node-manager-port", "--object-manager-port", "--dashboard-agent-listen-port",
             "--dashboard-agent-grpc-port", "--metrics-export-port", "--runtime-env-agent-port")
    flags = [f for name, port in zip(names, ports) for f in (name, str(port))]
    return [*flags, "--node-ip-address", "127.0.0.1", "--temp-dir", temp_dir,
            "--min-worker-port", "0", "--max-worker-port", "0", "--disable-usage-stats",
            "--block"]


class TwoNodeCluster:
    """``ray start --head`` and ``ray start --address`` on this machine, each in a session of
    its own, with 1 CPU each. ``head`` and ``worker`` are the arguments after ``ray start``
    (docs/agents.md's), where ``HEAD`` stands for the head's address and 6379 for its port."""

    def __init__(self, head: tuple[str, ...] = ("--head", "--port", "6379", "--num-cpus", "1"),
                 worker: tuple[str, ...] = ("--address", "HEAD:6379", "--num-cpus", "1")
                 ) -> None:
        ports = free_ports(15)
        self.address = f"127.0.0.1:{ports[0]}"
        self.temp = [tempfile.mkdtemp(prefix="rg-ray-", dir="/tmp") for _ in range(2)]
        self.logs = [open(os.path.join(t, "start.log"), "w") for t in self.temp]  # noqa: SIM115
        self.procs: list[subprocess.Popen] = []
        self._start([*self.resolve(head), "--include-dashboard", "false",
                     "--ray-client-server-port", str(ports[1])], ports[2:8], 0)
        self._wait_nodes(1)
        self._start(self.resolve(worker), ports[8:14], 1)
        self._wait_nodes(2)

    def resolve(self, args: tuple[str, ...] | list[str]) -> list[str]:
        """``HEAD:6379`` -> the head's address, ``6379`` -> its port."""
        port = self.address.split(":")[1]
        return [a.replace("HEAD:6379", self.address).replace("6379", port) for a in args]

    def _start(self, args: list[str], ports: list[int], i: int) -> None:
        self.procs.append(subprocess.Popen([RAY, "start", *args, *node_flags(ports, self.temp[i])],
                                           start_new_session=True, env=RAY_ENV, stdout=self.logs[i],
                                           stderr=subprocess.STDOUT))

    def _wait_nodes(self, n: int, timeout_s: float = 180.0) -> None:
        code = (f"import ray; ray.init(address={self.address!r}, log_to_driver=False); "
                "print(sum(1 for x in ray.nodes() if x['Alive']))")
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            for p in self.procs:
                if p.poll() is not None:
                    raise RuntimeError(f"ray start exited: {self.log_tail()}")
            try:
                socket.create_connection(("127.0.0.1", int(self.address.split(":")[1])),
                                         timeout=1).close()
                out = subprocess.run([sys.executable, "-c", code], env=RAY_ENV, text=True,
                                     capture_output=True, timeout=60).stdout.split()
                if out and int(out[-1]) >= n:
                    return
            except (OSError, subprocess.TimeoutExpired):
                pass
            time.sleep(1)
        raise RuntimeError(f"the cluster has not {n} nodes: {self.log_tail()}")

    def log_tail(self) -> str:
        return " | ".join(Path(t, "start.log").read_text()[-800:] for t in self.temp)

    def stop(self) -> None:
        for p in reversed(self.procs):  # ray start --block drains and stops its node
            p.send_signal(signal.SIGTERM)
        for p in reversed(self.procs):
            try:
                p.wait(60)
            except subprocess.TimeoutExpired:
                pass
        for p in self.procs:
            kill_session(p.pid)
            p.wait(10)
        for f in self.logs:
            f.close()
        for t in self.temp:
            shutil.rmtree(t, ignore_errors=True)
