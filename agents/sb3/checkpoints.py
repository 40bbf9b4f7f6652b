"""Checkpoints of the SB3 agents: periodic saves (model and replay buffer), finding the
newest one, loading."""

from __future__ import annotations

import glob
import json
import os
import re
from typing import Any

import gymnasium as gym
from stable_baselines3.common.callbacks import CheckpointCallback
from stable_baselines3.common.vec_env import VecEnv

from agents.sb3.ddpg import LAWDDPG

CHECKPOINT_PREFIX = "law_ddpg"

SB3_ALGOS = ("ddpg", "sac", "ppo")


def algo_class(algo: str) -> type:
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


def checkpoint_callback(out_dir: str, save_freq_steps: int, n_envs: int = 1,
                        algo: str = "ddpg") -> CheckpointCallback:
    """Save model *and* replay buffer every ``save_freq_steps`` environment steps (summed over
    the ``n_envs`` parallel envs) to ``out_dir`` (``law_ddpg_<steps>_steps.zip``)."""
    return CheckpointCallback(save_freq=max(1, save_freq_steps // max(1, n_envs)),
                              save_path=out_dir, name_prefix=_prefix(algo),
                              save_replay_buffer=algo.lower() != "ppo", verbose=0)


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
