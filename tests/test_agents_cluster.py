"""A real two-node Ray cluster on this machine: ``ray start --head`` plus a second
``ray start --address`` node (1 CPU each, their own ports and temp dirs, torn down after the
module), LAW's DDPG with one env runner on each node matching local mode bit for bit, and
``reweight-gym train --address`` connecting to it. Unreachable addresses fail at once, in one
line naming them (train and benchmark)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from procs import RAY_ENV as ENV
from procs import TwoNodeCluster, free_ports

pytestmark = pytest.mark.slow
pytest.importorskip("ray")

ENV_KW = {"preset": "tiny", "noise_rate": 0.4, "seed": 0}


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
import reweight_gym.agents.rllib
from reweight_gym.agents.rllib import make_config
from reweight_gym.cluster import connect_ray
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
         json.dumps(ENV_KW), "--agent-kwargs", '{"learning_starts_episodes": 2}', "--out", out],
        env=ENV, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    assert "trained rllib ddpg: 4 episodes" in res.stdout
    assert os.path.isdir(os.path.join(out, "checkpoint_000002"))


# An instance-set env by its registered id on two env runners, one per node: each runner's env
# loads the set from the config's keywords (a dict travels with the config), draws its
# instances, and trains.
INSTANCES_PROGRAM = """
import json, sys
import ray, torch
torch.set_num_threads(1)
import reweight_gym.agents.rllib
from reweight_gym.agents.rllib import make_config
from reweight_gym.cluster import connect_ray
connect_ray(sys.argv[1], num_cpus=2)
config = make_config("ddpg", "Reweight-Instances-v0", json.loads(sys.argv[2]),
                     num_env_runners=2, seed=0, learning_starts_episodes=1, fdu_batch_size=5)
algo = config.build_algo()
returns = [algo.train()["env_runners"]["episode_return_mean"] for _ in range(2)]
def seen(r):
    env = r.env.unwrapped.envs[0].unwrapped
    return [ray.get_runtime_context().get_node_id(), env.instance_set.name, env.instance]
print(json.dumps({"runners": algo.env_runner_group.foreach_env_runner(
    seen, local_env_runner=False), "returns": returns, "updates": algo.fdu_updates}))
algo.stop()
"""
INSTANCE_SET = {"name": "two-digits-runs",
                "defaults": {"preset": "tiny", "epochs": 2, "num_stages": 2, "train_size": 200,
                             "test_size": 100, "episode_seeds": 2},
                "instances": [{"name": "noise40", "noise_rate": 0.4},
                              {"name": "pairflip30", "noise_type": "pair_flip",
                               "noise_rate": 0.3}]}


def test_env_runners_on_a_remote_node_see_the_instance_set_by_id(
        cluster: TwoNodeCluster) -> None:
    res = subprocess.run([sys.executable, "-c", INSTANCES_PROGRAM, cluster.address,
                          json.dumps({"instance_set": INSTANCE_SET})], env=ENV,
                         capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    nodes = {node for node, _, _ in out["runners"]}
    assert len(nodes) == 2  # one env runner on each node
    assert all(name == "two-digits-runs" and inst in ("noise40", "pairflip30")
               for _, name, inst in out["runners"])
    assert out["updates"] == 2 and all(r == r for r in out["returns"])  # trained, no NaN


@pytest.mark.parametrize("argv", [
    ["train", "--lib", "rllib", "--env-kwargs", json.dumps(ENV_KW), "--episodes", "30",
     "--out", "unused", "--address"],
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
