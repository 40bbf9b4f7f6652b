"""Checkpoints of the SB3 agents: periodic atomic saves (model and replay buffer), finding the
newest one, loading.

A checkpoint is ``<prefix>_<steps>_steps.zip`` (the model; every one is kept, for learning
curves) and ``<prefix>_replay_buffer_<steps>_steps.pkl`` (kept for the newest checkpoint only:
buffers are large). Both are written atomically (``agents/runs.py``), the replay buffer first, so
the newest model file always has a complete buffer beside it and a killed run resumes from it.
"""

from __future__ import annotations

import glob
import json
import os
import re
from typing import TYPE_CHECKING, Any

import gymnasium as gym
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecEnv

from reweight_gym.agents.runs import atomic_file
from reweight_gym.agents.sb3.ddpg import LAWDDPG

if TYPE_CHECKING:
    from stable_baselines3.common.base_class import BaseAlgorithm

CHECKPOINT_PREFIX = "law_ddpg"

SB3_ALGOS = ("ddpg", "sac", "ppo")


def algo_class(algo: str) -> type[BaseAlgorithm]:
    """The SB3 algorithm of ``--algo``: :class:`LAWDDPG` for ``ddpg``, SB3's SAC and PPO."""
    key = algo.lower()
    if key == "ddpg":
        return LAWDDPG
    if key == "sac":
        from stable_baselines3 import SAC

        return SAC
    if key == "ppo":
        from stable_baselines3 import PPO

        return PPO
    raise ValueError(f"unknown algorithm {algo!r} for --lib sb3: allowed: {', '.join(SB3_ALGOS)}")


def _prefix(algo: str) -> str:
    return CHECKPOINT_PREFIX if algo.lower() == "ddpg" else f"sb3_{algo.lower()}"


def save_atomic(model: Any, path: str, replay_path: str | None = None) -> None:
    """Save ``model`` to ``path`` (and its replay buffer to ``replay_path``), each through a
    temporary file renamed into place; the buffer first."""
    if replay_path is not None and getattr(model, "replay_buffer", None) is not None:
        with atomic_file(replay_path) as tmp:
            model.save_replay_buffer(tmp)
    with atomic_file(path) as tmp:
        model.save(tmp)


class AtomicCheckpointCallback(BaseCallback):
    """Save model and replay buffer atomically whenever the env steps (summed over the envs)
    pass a multiple of ``every_steps``; keep the replay buffer of the newest checkpoint only."""

    def __init__(self, out_dir: str, every_steps: int, algo: str = "ddpg") -> None:
        super().__init__()
        self.out_dir, self.every, self.algo = out_dir, max(1, int(every_steps)), algo.lower()
        self._last = -1
        self.saved_steps: int | None = None

    def _init_callback(self) -> None:
        self._last = int(self.model.num_timesteps) // self.every

    def _on_step(self) -> bool:
        mark = int(self.model.num_timesteps) // self.every
        if mark > self._last:
            self._last = mark
            self.save()
        return True

    def save(self) -> str:
        steps = int(self.model.num_timesteps)
        prefix = _prefix(self.algo)
        path = os.path.join(self.out_dir, f"{prefix}_{steps}_steps.zip")
        replay = (os.path.join(self.out_dir, f"{prefix}_replay_buffer_{steps}_steps.pkl")
                  if self.algo != "ppo" else None)
        save_atomic(self.model, path, replay)
        self.saved_steps = steps
        for old in glob.glob(os.path.join(self.out_dir, f"{prefix}_replay_buffer_*_steps.pkl")):
            if old != replay:
                os.remove(old)
        return path


def latest_checkpoint(out_dir: str, algo: str = "ddpg") -> str | None:
    """Path of the checkpoint with the most steps in ``out_dir`` (``final.zip`` if it is the
    newest), ``None`` if there is none."""
    best: tuple[int, str] | None = None
    for path in glob.glob(os.path.join(out_dir, f"{_prefix(algo)}_*_steps.zip")):
        m = re.search(r"_(\d+)_steps\.zip$", path)
        if m and (best is None or int(m.group(1)) > best[0]):
            best = (int(m.group(1)), path)
    final = os.path.join(out_dir, "final.zip")
    meta = os.path.join(out_dir, "final.json")
    if os.path.exists(final) and os.path.exists(meta):
        with open(meta) as f:
            steps = int(json.load(f).get("num_timesteps", 0))
        if best is None or steps >= best[0]:
            best = (steps, final)
    return None if best is None else best[1]


def _replay_path(model_path: str) -> str | None:
    if model_path.endswith("final.zip"):
        cand = model_path[: -len("final.zip")] + "final_replay_buffer.pkl"
    else:
        cand = re.sub(r"_(\d+)_steps\.zip$", r"_replay_buffer_\1_steps.pkl", model_path)
    return cand if os.path.exists(cand) else None


def load_sb3(path: str, algo: str = "ddpg", env: gym.Env | VecEnv | None = None,
             device: str = "cpu") -> Any:
    """Load a saved SB3 agent (:class:`LAWDDPG` for ``ddpg``) and, with an env, its replay
    buffer if saved beside it. Raises ``FileNotFoundError`` naming a missing path."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    model = algo_class(algo).load(path, env=env, device=device)
    rb = _replay_path(path)
    if rb is not None and env is not None and hasattr(model, "load_replay_buffer"):
        model.load_replay_buffer(rb)
    if isinstance(model, LAWDDPG):
        model._set_learning_rates()
    return model


def load_law_ddpg(path: str, env: gym.Env | VecEnv | None = None,
                  device: str = "cpu") -> LAWDDPG:
    """Load a saved :class:`LAWDDPG` (see :func:`load_sb3`)."""
    return load_sb3(path, "ddpg", env=env, device=device)
