"""``reweight-gym train`` killed for real (SIGKILL) mid-run and started again with the same
``--out`` resumes from its newest checkpoint, for both libraries, losing only the rounds since
that checkpoint; checkpoints are written atomically, so the newest one always loads."""

from __future__ import annotations

import glob
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from procs import kill_session

pytestmark = pytest.mark.slow

ENV_KW = json.dumps({"preset": "tiny", "noise_rate": 0.4, "seed": 0})
EP_LEN = 4
CLI = [sys.executable, "-m", "reweight_gym.cli", "train", "--env", "Reweight-Digits-v0",
       "--env-kwargs", ENV_KW, "--n-envs", "1", "--checkpoint-every", "1"]


def _kill_when(cmd: list[str], ready, timeout_s: float = 300.0) -> None:
    """Start ``cmd`` in its own session, SIGKILL every process of the session once
    ``ready()`` is true."""
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + timeout_s
        while not ready():
            assert proc.poll() is None, "the training ended before it could be killed"
            assert time.monotonic() < deadline, "no checkpoint in time"
            time.sleep(0.05)
    finally:
        left = kill_session(proc.pid)
        proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    assert not left


def _run(cmd: list[str]) -> str:
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=600)
    assert res.returncode == 0, res.stderr[-3000:]
    return res.stdout


def _sb3_steps(out: str) -> list[int]:
    return sorted(int(re.search(r"_(\d+)_steps\.zip$", p).group(1))
                  for p in glob.glob(os.path.join(out, "law_ddpg_*_steps.zip")))


def test_sb3_train_killed_resumes_from_its_last_checkpoint(tmp_path: Path) -> None:
    pytest.importorskip("stable_baselines3")
    out = str(tmp_path / "sb3")
    cmd = [*CLI, "--lib", "sb3", "--episodes", "30", "--out", out]
    _kill_when(cmd, lambda: len(_sb3_steps(out)) >= 3)
    kept = _sb3_steps(out)
    newest = max(kept)
    assert newest < 30 * EP_LEN  # killed mid-run
    stdout = _run(cmd)
    # resumed from the newest checkpoint the kill left (its buffer complete beside it)
    assert f"resumed from {os.path.join(out, f'law_ddpg_{newest}_steps.zip')}" in stdout
    assert "trained sb3 ddpg: 30 episodes (120 env steps)" in stdout
    assert not [n for n in os.listdir(out) if n.startswith(".tmp-")]
    from reweight_gym.agents.sb3 import load_law_ddpg

    model = load_law_ddpg(os.path.join(out, "final.zip"))
    assert model.num_timesteps == 120
    assert set(_sb3_steps(out)) >= set(kept)  # earlier checkpoints untouched


def _rllib_iterations(out: str) -> list[int]:
    return sorted(int(os.path.basename(p)[len("checkpoint_"):])
                  for p in glob.glob(os.path.join(out, "checkpoint_*")))


def test_rllib_train_killed_resumes_from_its_last_checkpoint(tmp_path: Path) -> None:
    pytest.importorskip("ray")
    out = str(tmp_path / "rllib")
    cmd = [*CLI, "--lib", "rllib", "--episodes", "22", "--out", out]
    _kill_when(cmd, lambda: len(_rllib_iterations(out)) >= 3)
    newest = max(_rllib_iterations(out))
    assert newest < 22
    stdout = _run(cmd)
    assert f"resumed from {os.path.join(out, f'checkpoint_{newest:06d}')}" in stdout
    logs = [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]
    # one episode per iteration (one runner): the first resumed iteration is the one after
    # the checkpoint, nothing was replayed or lost before it
    assert logs[0]["iteration"] == newest + 1 and logs[0]["episodes"] == newest + 1
    assert logs[-1]["episodes"] == 22
    assert "trained rllib ddpg: 22 episodes" in stdout
    assert not [n for n in os.listdir(out) if n.startswith(".tmp-")]
    from reweight_gym.agents.rllib.agent import RLlibAgent

    assert RLlibAgent.from_checkpoint(out) is not None
