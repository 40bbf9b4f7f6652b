"""Ready RLlib configs (DDPG, SAC, PPO) for the reweight environments, and env registration.

Every Reweight env step trains a classifier for one stage, which can take minutes with the
``cpu`` and ``paper`` presets. The configs therefore sample *complete episodes*
(``batch_mode="complete_episodes"``, one episode = one full training run per env runner and
iteration), disable the sample timeout (``sample_timeout_s=None``: wait for the runners however
long a stage takes), give each runner one CPU and optionally a GPU (``num_gpus_per_env_runner``),
and restart failed runners. ``num_env_runners`` runners are LAW's N_a parallel searchers that
share one strategy model (the learner's, broadcast after every update).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import ray
from ray.rllib.algorithms.algorithm_config import AlgorithmConfig
from ray.rllib.algorithms.ppo import PPOConfig
from ray.rllib.algorithms.sac import SACConfig
from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig
from ray.tune.registry import register_env as tune_register_env

from agents.rllib.ddpg import DDPGConfig

RLLIB_ALGOS = ("ddpg", "sac", "ppo")
LAW_HIDDENS = [64, 64, 64]


def _make_env(env_id: str) -> Any:
    def creator(env_config: dict[str, Any]) -> gym.Env:
        import torch

        import reweight_gym  # noqa: F401  (registers the Gymnasium ids in the runner process)

        torch.set_num_threads(1)
        return gym.make(env_id, **dict(env_config))

    return creator


def register_env(env_id: str) -> str:
    """Register ``env_id`` (a Gymnasium id, e.g. ``Reweight-Digits-v0``) with
    ``ray.tune.register_env`` under the same name; the runner's ``env_config`` dict is passed
    as keyword arguments (the fields of ``EnvConfig``)."""
    tune_register_env(env_id, _make_env(env_id))
    return env_id


def episode_length(env_id: str, env_kwargs: dict[str, Any]) -> int | None:
    """Steps per episode of a Reweight env (``num_stages - warmup_stages``), else ``None``."""
    import reweight_gym
    from reweight_gym.config import EnvConfig

    dataset = reweight_gym.ENV_IDS.get(env_id)
    if dataset is None:
        return None
    kwargs = {k: v for k, v in env_kwargs.items() if k != "dataset"}
    cfg = EnvConfig.resolve(dataset, **kwargs)
    return cfg.num_stages - cfg.warmup_stages


def init_ray(num_cpus: int = 2, num_gpus: int | None = None) -> None:
    """Start a local Ray instance (no dashboard) unless one is running."""
    if not ray.is_initialized():
        ray.init(num_cpus=num_cpus, num_gpus=num_gpus, include_dashboard=False,
                 log_to_driver=False, configure_logging=False)


def _common(config: AlgorithmConfig, env_id: str, env_kwargs: dict[str, Any],
            num_env_runners: int, num_gpus_per_env_runner: float, seed: int | None
            ) -> AlgorithmConfig:
    register_env(env_id)
    ep_len = episode_length(env_id, env_kwargs)
    config = (
        config.environment(env_id, env_config=dict(env_kwargs))
        .framework("torch")
        .env_runners(num_env_runners=num_env_runners, num_envs_per_env_runner=1,
                     num_cpus_per_env_runner=1, num_gpus_per_env_runner=num_gpus_per_env_runner,
                     sample_timeout_s=None)
        .fault_tolerance(restart_failed_env_runners=True)
        .debugging(seed=seed, log_level="ERROR")
    )
    if ep_len is not None:  # a Reweight env: whole training runs, slow steps
        config = config.env_runners(batch_mode="complete_episodes",
                                    rollout_fragment_length=ep_len)
        # one training_step per iteration: SAC's defaults (>= 100 env steps and >= 1 s per
        # iteration) would loop over many slow training runs before returning
        config = config.reporting(min_time_s_per_iteration=0,
                                  min_sample_timesteps_per_iteration=0)
        config.evaluation_sample_timeout_s = None
    return config


def ddpg_config(env_id: str, env_kwargs: dict[str, Any] | None = None, num_env_runners: int = 0,
                num_gpus_per_env_runner: float = 0, seed: int | None = 0,
                **training: Any) -> DDPGConfig:
    """:class:`DDPGConfig` with LAW's defaults; on a Reweight env learning starts after one
    episode per runner and each iteration runs 4 gradient steps per sampled transition."""
    env_kwargs = dict(env_kwargs or {})
    cfg = _common(DDPGConfig(), env_id, env_kwargs, num_env_runners, num_gpus_per_env_runner,
                  seed)
    ep_len = episode_length(env_id, env_kwargs)
    if ep_len is not None:
        cfg.training(num_steps_sampled_before_learning_starts=ep_len * max(1, num_env_runners),
                     train_batch_size_per_learner=32, replay_ratio=4.0,
                     exploration_noise=0.2)
    return cfg.training(**training)  # type: ignore[return-value]


def sac_config(env_id: str, env_kwargs: dict[str, Any] | None = None, num_env_runners: int = 0,
               num_gpus_per_env_runner: float = 0, seed: int | None = 0,
               **training: Any) -> SACConfig:
    """RLlib's SAC on the environment with LAW-sized networks (3 hidden layers of 64)."""
    env_kwargs = dict(env_kwargs or {})
    cfg = _common(SACConfig(), env_id, env_kwargs, num_env_runners, num_gpus_per_env_runner,
                  seed)
    cfg = cfg.rl_module(model_config=DefaultModelConfig(fcnet_hiddens=LAW_HIDDENS,
                                                        head_fcnet_hiddens=[]))
    ep_len = episode_length(env_id, env_kwargs)
    if ep_len is not None:
        cfg.training(num_steps_sampled_before_learning_starts=ep_len * max(1, num_env_runners),
                     train_batch_size_per_learner=32,
                     replay_buffer_config={"type": "EpisodeReplayBuffer", "capacity": 100_000},
                     training_intensity=4.0 * 32)
    return cfg.training(**training)  # type: ignore[return-value]


def ppo_config(env_id: str, env_kwargs: dict[str, Any] | None = None, num_env_runners: int = 0,
               num_gpus_per_env_runner: float = 0, seed: int | None = 0,
               **training: Any) -> PPOConfig:
    """RLlib's PPO on the environment: a train batch of 4 episodes per runner per iteration."""
    env_kwargs = dict(env_kwargs or {})
    cfg = _common(PPOConfig(), env_id, env_kwargs, num_env_runners, num_gpus_per_env_runner,
                  seed)
    cfg = cfg.rl_module(model_config=DefaultModelConfig(fcnet_hiddens=LAW_HIDDENS,
                                                        head_fcnet_hiddens=[],
                                                        vf_share_layers=False))
    ep_len = episode_length(env_id, env_kwargs)
    if ep_len is not None:
        batch = 4 * ep_len * max(1, num_env_runners)
        cfg.training(train_batch_size_per_learner=batch, minibatch_size=min(32, batch),
                     num_epochs=8, lr=3e-4)
    return cfg.training(**training)  # type: ignore[return-value]


def make_config(algo: str, env_id: str, env_kwargs: dict[str, Any] | None = None,
                num_env_runners: int = 0, num_gpus_per_env_runner: float = 0,
                seed: int | None = 0, **training: Any) -> AlgorithmConfig:
    """The config of ``algo`` (``ddpg``, ``sac``, ``ppo``) for ``env_id``."""
    key = algo.lower()
    makers = {"ddpg": ddpg_config, "sac": sac_config, "ppo": ppo_config}
    if key not in makers:
        raise ValueError(f"unknown algorithm {algo!r} for --lib rllib: allowed: "
                         f"{', '.join(RLLIB_ALGOS)}")
    if not isinstance(num_env_runners, int) or num_env_runners < 0:
        raise ValueError(f"invalid num_env_runners={num_env_runners!r}: an integer >= 0")
    return makers[key](env_id, env_kwargs, num_env_runners=num_env_runners,
                       num_gpus_per_env_runner=num_gpus_per_env_runner, seed=seed, **training)
