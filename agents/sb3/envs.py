"""The vectorised environment of the SB3 agents: LAW's N_a parallel searchers."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium as gym
import torch as th
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv

from reweight_gym.validation import check_number


def _make_env_thunk(env_id: str, env_kwargs: dict[str, Any],
                    in_subprocess: bool) -> Callable[[], gym.Env]:
    def thunk() -> gym.Env:
        import reweight_gym  # registers the Reweight-* ids in subprocesses

        if in_subprocess:  # a worker process of ours: one torch thread, tuned allocator
            th.set_num_threads(1)
            reweight_gym.tune_cpu_allocator()
        return Monitor(gym.make(env_id, **env_kwargs))

    return thunk


def make_reweight_vec_env(env_id: str, env_kwargs: dict[str, Any] | None = None,
                          n_envs: int = 1, seed: int | None = 0,
                          subprocess: bool | None = None) -> VecEnv:
    """N parallel searchers (LAW's N_a) of a Reweight environment: a ``SubprocVecEnv`` of
    ``n_envs`` environments (each a complete training run, in its own process with one torch
    thread and the CPU allocator tuning of ``reweight_gym/allocator.py``) or a ``DummyVecEnv``
    in this process when ``n_envs == 1`` or ``subprocess=False``. Env ``i`` is seeded with
    ``seed + i``."""
    check_number("n_envs", n_envs, 1, integer=True)
    kwargs = dict(env_kwargs or {})
    use_proc = (n_envs > 1) if subprocess is None else subprocess
    thunks = [_make_env_thunk(env_id, kwargs, in_subprocess=use_proc) for _ in range(n_envs)]
    venv: VecEnv = (SubprocVecEnv(thunks, start_method="forkserver") if use_proc
                    else DummyVecEnv(thunks))
    if seed is not None:
        venv.seed(seed)
    return venv
