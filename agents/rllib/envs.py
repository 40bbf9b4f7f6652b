"""The Reweight environments on Ray: registration, checks and seeding.

``import reweight_gym.agents.rllib`` calls :func:`register_reweight_envs`: every ``Reweight-*`` id
is registered with ``ray.tune.register_env`` under its Gymnasium name, so RLlib's idioms
(``config.environment("Reweight-Digits-v0", env_config={...})``, PPO, SAC, Tune) find it in the
driver and in every env runner, on any node (Ray keeps the registry in the cluster's key-value
store; each node needs the package installed, and the data where ``data_root`` points).

Two things RLlib 2.x's ``SingleAgentEnvRunner`` does not do for an env of whole training runs,
handled here for the registered ids:

- it re-seeds the env at *every* ``sample(num_episodes=...)`` with the runner's seed, so every
  episode of a runner would replay the same training run (same initialisation and batch order).
  :class:`SeedOnce` passes the first seed on and drops the repeats, so episodes draw their seeds
  from the env's own generator (as with SB3's vectorised envs);
- its random actions (``random_actions=True``, the exploration before learning starts) come from
  the vector env's unseeded action space. :func:`seed_action_space` (an
  ``on_environment_created`` callback) seeds it with the runner's seed.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
from ray.tune.registry import ENV_CREATOR, _global_registry
from ray.tune.registry import register_env as tune_register_env

import reweight_gym


class SeedOnce(gym.Wrapper):
    """Pass the first ``reset(seed=...)`` on to the env and drop the seed of later resets (see
    the module docstring)."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self._seeded = False

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
        if self._seeded:
            seed = None
        self._seeded = self._seeded or seed is not None
        return self.env.reset(seed=seed, options=options)


def _make_env(env_id: str) -> Any:
    def creator(env_config: dict[str, Any]) -> gym.Env:
        import torch

        import reweight_gym as rg  # registers the Gymnasium ids in the runner process

        torch.set_num_threads(1)
        rg.tune_cpu_allocator()
        return SeedOnce(gym.make(env_id, **dict(env_config)))

    return creator


def register_env(env_id: str) -> str:
    """Register a Reweight ``env_id`` with ``ray.tune.register_env`` under the same name; the
    runner's ``env_config`` dict is passed as keyword arguments (the fields of ``EnvConfig``)."""
    tune_register_env(env_id, _make_env(env_id))
    return env_id


def register_reweight_envs() -> list[str]:
    """Register every ``Reweight-*`` id (``reweight_gym.ENV_IDS`` and the instance-set env)
    with Ray."""
    from reweight_gym.envs import INSTANCES_ENV_ID

    return [register_env(env_id) for env_id in (*reweight_gym.ENV_IDS, INSTANCES_ENV_ID)]


def check_env(env: Any, env_config: dict[str, Any] | None) -> None:
    """Raise a one-line ``ValueError`` for an env id that is neither registered with Ray nor a
    Gymnasium id, or a Reweight env config with a bad field (checked without loading data)."""
    if env is None or not isinstance(env, str):
        return
    from reweight_gym.envs.resolve import resolve_env

    if resolve_env(env, dict(env_config or {})) is not None:  # a Reweight id: checked
        return
    if _global_registry.contains(ENV_CREATOR, env):
        return
    try:
        gym.spec(env)
    except gym.error.Error:
        raise ValueError(
            f"unknown environment {env!r}: neither a Gymnasium id nor registered with "
            f"ray.tune.register_env; the Reweight ids are {', '.join(reweight_gym.ENV_IDS)}"
        ) from None


def seed_action_space(*, env_runner: Any, env: gym.Env, **kwargs: Any) -> None:
    """``on_environment_created`` callback: seed the runner's (vector) env action space with
    the runner's seed, so that random actions are reproducible."""
    seed = env_runner.config.seed
    if seed is not None:
        env.action_space.seed(int(seed) + int(env_runner.worker_index or 0))
