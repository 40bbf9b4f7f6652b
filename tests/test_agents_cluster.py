"""A real two-node Ray cluster on this machine: ``ray start --head`` plus a second
``ray start --address`` node (1 CPU each, their own ports and temp dirs, torn down after the
module), LAW's DDPG with one env runner on each node matching local mode bit for bit, and
``reweight-gym train --address`` connecting to it. Unreachable addresses fail at once, in one
line naming them (train and benchmark)."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from procs import kill_session

pytestmark = pytest.mark.slow
pytest.importorskip("ray")

RAY = os.path.join(os.path.dirname(sys.executable), "ray")
ENV_KW = {"preset": "tiny", "noise_rate": 0.4, "seed": 0}
# the cluster and its clients on this machine: no token authentication to share
ENV = dict(os.environ, RAY_AUTH_MODE="disabled")


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def node_flags(ports: list[int], temp_dir: str) -> list[str]:
    """What a second node on the *same* machine needs beyond the README's commands: its own
    ports and temp dir, one CPU, the loopback address (Ray publishes the host's own address
    for it), blocking so that the test owns the processes."""
    names = ("--node-manager-port", "--object-manager-port", "--dashboard-agent-listen-port",
             "--dashboard-agent-grpc-port", "--metrics-export-port", "--runtime-env-agent-port")
    flags = [f for name, port in zip(names, ports) for f in (name, str(port))]
    return [*flags, "--node-ip-address", "127.0.0.1", "--num-cpus", "1", "--temp-dir", temp_dir,
            "--min-worker-port", "0", "--max-worker-port", "0", "--disable-usage-stats",
            "--block"]


class TwoNodeCluster:
    """``ray start --head`` and ``ray start --address``, each in a session of its own."""

    def __init__(self) -> None:
        ports = free_ports(15)
        self.address = f"127.0.0.1:{ports[0]}"
        self.temp = [tempfile.mkdtemp(prefix="rg-ray-", dir="/tmp") for _ in range(2)]
        self.logs = [open(os.path.join(t, "start.log"), "w") for t in self.temp]  # noqa: SIM115
        self.procs: list[subprocess.Popen] = []
        self._start(["--head", "--port", str(ports[0]), "--include-dashboard", "false",
                     "--ray-client-server-port", str(ports[1])], ports[2:8], 0)
        self._wait_nodes(1)
        self._start(["--address", self.address], ports[8:14], 1)
        self._wait_nodes(2)

    def _start(self, args: list[str], ports: list[int], i: int) -> None:
        self.procs.append(subprocess.Popen([RAY, "start", *args, *node_flags(ports, self.temp[i])],
                                           start_new_session=True, env=ENV, stdout=self.logs[i],
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
                out = subprocess.run([sys.executable, "-c", code], env=ENV, text=True,
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


@pytest.fixture(scope="module")
def cluster() -> Iterator[TwoNodeCluster]:
    c = TwoNodeCluster()
    try:
        yield c
    finally:
        c.stop()
        assert not any(os.path.exists(t) for t in c.temp)


# Two rounds of LAW's DDPG with two env runners, in a fresh process: where each runner ran
# and a digest of the trained module.
PROGRAM = """
import hashlib, json, sys
import numpy as np, ray, torch
torch.set_num_threads(1)
import agents.rllib
from agents.rllib import make_config
from reweight_gym.benchmark.bench import connect_ray
connect_ray(sys.argv[1] or None, num_cpus=2)
config = make_config("ddpg", "Reweight-Digits-v0", json.loads(sys.argv[2]), num_env_runners=2,
                     seed=0, learning_starts_episodes=1, fdu_batch_size=5)
algo = config.build_algo()
nodes = algo.env_runner_group.foreach_env_runner(
    lambda r: ray.get_runtime_context().get_node_id(), local_env_runner=False)
returns = [algo.train()["env_runners"]["episode_return_mean"] for _ in range(2)]
state = algo.get_module().get_state()
digest = hashlib.sha256(b"".join(np.asarray(state[k]).tobytes() for k in sorted(state)))
print(json.dumps({"nodes": nodes, "returns": returns, "digest": digest.hexdigest(),
                  "updates": algo.fdu_updates}))
algo.stop()
"""


def _program(address: str) -> dict:
    res = subprocess.run([sys.executable, "-c", PROGRAM, address, json.dumps(ENV_KW)], env=ENV,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    return json.loads(res.stdout.strip().splitlines()[-1])


def test_env_runners_on_both_nodes_match_local_mode(cluster: TwoNodeCluster) -> None:
    on_cluster = _program(cluster.address)
    assert len(set(on_cluster["nodes"])) == 2  # one env runner on each node
    assert on_cluster["updates"] == 2
    local = _program("")
    assert on_cluster["returns"] == local["returns"]
    assert on_cluster["digest"] == local["digest"]


def test_cli_train_connects_to_the_cluster(cluster: TwoNodeCluster, tmp_path: Path) -> None:
    out = str(tmp_path / "run")
    res = subprocess.run(
        [sys.executable, "-m", "reweight_gym.cli", "train", "--lib", "rllib", "--address",
         cluster.address, "--n-envs", "2", "--episodes", "4", "--env-kwargs",
         json.dumps(ENV_KW), "--out", out], env=ENV, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "trained rllib ddpg: 4 episodes" in res.stdout
    assert os.path.isdir(os.path.join(out, "checkpoint_000002"))


@pytest.mark.parametrize("argv", [
    ["train", "--lib", "rllib", "--env-kwargs", json.dumps(ENV_KW), "--out", "unused",
     "--address"],
    ["benchmark", "--dataset", "digits", "--suite", "uniform-noise", "--settings",
     "noise_rate=0.4", "--methods", "uniform", "--seeds", "1", "--out", "unused", "--ray"],
])
def test_unreachable_cluster_is_one_line_naming_it(tmp_path: Path, argv: list[str]) -> None:
    address = f"127.0.0.1:{free_ports(1)[0]}"  # nothing listens there
    t0 = time.monotonic()
    res = subprocess.run([sys.executable, "-m", "reweight_gym.cli", *argv, address],
                         cwd=tmp_path, capture_output=True, text=True, timeout=300)
    assert res.returncode == 2
    err = res.stderr.strip()
    assert "\n" not in err and f"cannot reach the Ray cluster at '{address}'" in err, err
    assert time.monotonic() - t0 < 120  # at once, not Ray's minutes of retries
