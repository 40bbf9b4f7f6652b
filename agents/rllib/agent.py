"""Train RLlib agents with checkpoints and resume; use a trained RLModule like an SB3 agent.

:func:`train_rllib` builds the config of :mod:`reweight_gym.agents.rllib.configs`, connects to Ray
(a local instance or a cluster), restores the newest checkpoint in the output directory if there is
one, trains until a number of episodes (or env steps), saving a checkpoint (atomically) every few
iterations. :class:`RLlibAgent` wraps the trained
``RLModule`` with SB3's ``predict(obs, deterministic=True) -> (action, state)`` so that
:mod:`reweight_gym.agents.evaluate` treats it like any agent; deterministic prediction uses the
module's inference forward pass (no exploration noise).
"""

from __future__ import annotations

import json
import os
from typing import Any, cast

import gymnasium as gym
import numpy as np
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.rl_module import RLModule
from ray.rllib.utils.spaces.space_utils import unsquash_action

from reweight_gym.agents.fdu import episode_length
from reweight_gym.agents.runs import (
    AGENT_META,
    RLLIB_CKPT_PREFIX,
    RLLIB_MODULE_SUBDIR,
    atomic_dir,
    check_resume,
    describe_run,
    find_rllib_checkpoint,
    is_rllib_checkpoint,
    remove_stale_temps,
    write_agent_meta,
)


class RLlibAgent:
    """An RLlib ``RLModule`` with SB3's ``predict`` interface.

    ``normalize_actions``: the module acts in [-1, 1] and actions are mapped to the env's box
    (RLlib's default); otherwise they are clipped to it.
    """

    def __init__(self, module: RLModule, normalize_actions: bool = True) -> None:
        self.module = module
        # a built module has its spaces (RLModule declares them optional)
        self.observation_space = cast(gym.spaces.Space, module.observation_space)
        self.action_space = cast(gym.spaces.Space, module.action_space)
        self.normalize_actions = normalize_actions

    @classmethod
    def from_checkpoint(cls, path: str) -> RLlibAgent:
        """Load the module of an algorithm checkpoint (or of the newest checkpoint in a
        training directory). Raises ``FileNotFoundError`` if there is none."""
        ckpt = find_rllib_checkpoint(path)
        if ckpt is None:
            raise FileNotFoundError(f"checkpoint not found: no RLlib checkpoint in {path!r}")
        module = RLModule.from_checkpoint(os.path.abspath(os.path.join(ckpt, RLLIB_MODULE_SUBDIR)))
        meta_dir = os.path.dirname(os.path.abspath(ckpt))
        normalize = True
        meta_path = os.path.join(meta_dir, AGENT_META)
        if os.path.exists(meta_path):
            with open(meta_path) as f:
                normalize = bool(json.load(f).get("normalize_actions", True))
        return cls(module, normalize_actions=normalize)

    def _actions(self, obs: np.ndarray, deterministic: bool) -> np.ndarray:
        batch = {Columns.OBS: torch.as_tensor(obs, dtype=torch.float32)}
        with torch.no_grad():
            out = (self.module.forward_inference(batch) if deterministic
                   else self.module.forward_exploration(batch))
            if Columns.ACTIONS in out:
                actions = out[Columns.ACTIONS]
            else:
                dist_cls = (self.module.get_inference_action_dist_cls() if deterministic
                            else self.module.get_exploration_action_dist_cls())
                dist = dist_cls.from_logits(out[Columns.ACTION_DIST_INPUTS])
                if deterministic:
                    dist = dist.to_deterministic()
                actions = dist.sample()
        a = actions.cpu().numpy()
        space = self.action_space
        if isinstance(space, gym.spaces.Box):
            if self.normalize_actions:
                a = np.stack([unsquash_action(x, space) for x in a])
            a = np.clip(a, space.low, space.high).astype(space.dtype)
        return a

    def predict(self, observation: np.ndarray, state: Any = None,
                episode_start: np.ndarray | None = None,
                deterministic: bool = True) -> tuple[np.ndarray, Any]:
        """Action(s) for one observation or a batch; ``deterministic=True`` is the noise-free
        inference pass, ``False`` the exploration pass."""
        obs = np.asarray(observation, dtype=np.float32)
        shape = tuple(self.observation_space.shape or ())
        single = obs.shape == shape
        if not single and obs.shape[1:] != shape:
            raise ValueError(f"incompatible observation shape {obs.shape}: the agent expects "
                             f"{shape} or a batch of them")
        a = self._actions(obs[None] if single else obs, deterministic)
        return (a[0] if single else a), state


def _env_steps(result: dict[str, Any]) -> int:
    return int(result.get("env_runners", {}).get("num_env_steps_sampled_lifetime", 0) or 0)


def _episodes(result: dict[str, Any]) -> int:
    return int(result.get("env_runners", {}).get("num_episodes_lifetime", 0) or 0)


def _gradient_updates(algorithm: Any) -> int:
    """The learner's gradient steps so far (DDPG counts them; other algorithms report their
    learner updates)."""
    from reweight_gym.agents.rllib.ddpg import NUM_GRADIENT_STEPS_LIFETIME

    peek = algorithm.metrics.peek
    for key in ((NUM_GRADIENT_STEPS_LIFETIME,), ("learners", "__all_modules__",
                                                 "num_module_steps_trained_lifetime")):
        try:
            value = peek(key, default=None)
        except (KeyError, TypeError):
            value = None
        if value is not None:
            return int(value)
    return 0


def save_checkpoint(algorithm: Any, out_dir: str) -> str:
    """``out_dir/checkpoint_<iteration>``, written to a temporary directory and renamed into
    place (``agents/runs.py``): a kill mid-save leaves the previous checkpoints intact."""
    path = os.path.abspath(os.path.join(out_dir, f"{RLLIB_CKPT_PREFIX}{algorithm.iteration:06d}"))
    if not is_rllib_checkpoint(path):
        with atomic_dir(path) as tmp:
            algorithm.save_to_path(tmp)
    return path


def train_rllib(algo: str, env_id: str, env_kwargs: dict[str, Any] | None, out_dir: str,
                episodes: int | None = None, env_steps: int | None = None,
                num_env_runners: int = 2, num_gpus_per_env_runner: float = 0, seed: int = 0,
                checkpoint_every: int = 5, num_cpus: int | None = None,
                address: str | None = None, training: dict[str, Any] | None = None,
                log: Any = None, settings: Any = None, restart: bool = False) -> dict[str, Any]:
    """Train ``algo`` on ``env_id`` until ``episodes`` episodes (or ``env_steps`` steps) are
    sampled, resuming from the newest checkpoint in ``out_dir``; a checkpoint
    (``out_dir/checkpoint_<iteration>``, written atomically) every ``checkpoint_every``
    iterations (for DDPG an iteration is one round: one episode per env runner) and at the
    end. Ray: the cluster at ``address`` (or ``RAY_ADDRESS``), else a local instance with
    ``num_cpus`` CPUs. For ``ddpg``, ``settings`` is a
    :class:`~reweight_gym.agents.settings.DDPGSettings` (default ``DDPG_DEFAULTS``) and its
    fields in ``training`` go on top. A run resumes only a run of the same algorithm, env config,
    runners, seed and settings (``agent.json``; another is a ``ValueError``, or deleted first
    with ``restart``). Returns the last result summary; its ``resumed_from`` is the checkpoint
    the run started from (``None`` for a fresh run) and ``gradient_updates`` the learner's
    updates so far."""
    from reweight_gym.agents.rllib.configs import make_config
    from reweight_gym.cluster import connect_ray

    if episodes is None and env_steps is None:
        raise ValueError("train_rllib needs episodes or env_steps")
    from reweight_gym.agents.settings import DDPG_DEFAULTS

    env_kwargs = dict(env_kwargs or {})
    training = dict(training or {})
    if algo.lower() == "ddpg":
        settings, training = (settings or DDPG_DEFAULTS).split(training)
        training["settings"] = settings
    elif settings is not None:
        raise ValueError(f"settings are LAW-DDPG's: not for algo={algo!r}")
    config = make_config(algo, env_id, env_kwargs, num_env_runners=num_env_runners,
                         num_gpus_per_env_runner=num_gpus_per_env_runner, seed=seed,
                         **training)
    config.validate()
    training.pop("settings", None)
    meta = describe_run("rllib", algo.lower(), env_id, env_kwargs, num_env_runners, seed,
                        settings.to_dict() if settings is not None else None,
                        normalize_actions=bool(config.normalize_actions), training=training,
                        episode_steps=episode_length(env_id=env_id, env_kwargs=env_kwargs))
    os.makedirs(out_dir, exist_ok=True)
    removed = check_resume(out_dir, meta, restart)
    if removed and log is not None:
        log({"restart": f"deleted the earlier run in {out_dir}", "removed": removed})
    connect_ray(address, num_cpus=num_cpus or max(2, num_env_runners))
    remove_stale_temps(out_dir)
    write_agent_meta(out_dir, meta)
    algorithm = config.build_algo()
    try:
        last = find_rllib_checkpoint(out_dir)
        if last is not None:
            algorithm.restore_from_path(os.path.abspath(last))
        summary: dict[str, Any] = {"resumed_from": last}
        while True:
            assert algorithm.metrics is not None  # set in Algorithm.__init__
            state = algorithm.metrics.peek
            done_eps = int(state(("env_runners", "num_episodes_lifetime"), default=0) or 0)
            done_steps = int(state(("env_runners", "num_env_steps_sampled_lifetime"),
                                   default=0) or 0)
            if (episodes is not None and done_eps >= episodes) or (
                    env_steps is not None and done_steps >= env_steps):
                break
            result = algorithm.train()
            summary.update({"iteration": algorithm.iteration, "env_steps": _env_steps(result),
                            "episodes": _episodes(result),
                            "gradient_updates": _gradient_updates(algorithm),
                            "episode_return_mean": result.get("env_runners", {}).get(
                                "episode_return_mean")})
            if log is not None:
                log(summary)
            if algorithm.iteration % max(1, checkpoint_every) == 0:
                save_checkpoint(algorithm, out_dir)
        summary["checkpoint"] = save_checkpoint(algorithm, out_dir)
        summary.setdefault("episodes", done_eps)
        summary["gradient_updates"] = _gradient_updates(algorithm)
        return summary
    finally:
        algorithm.stop()
