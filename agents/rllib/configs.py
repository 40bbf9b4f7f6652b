"""Ready RLlib configs (DDPG, SAC, PPO) for the reweight environments.

Every Reweight env step trains a classifier for one stage, which can take minutes with the
``cpu`` and ``paper`` presets. The configs therefore sample *complete episodes* (one episode =
one full training run per env runner and iteration; DDPG does so by construction), disable the
sample timeout (``sample_timeout_s=None``: wait for the runners however long a stage takes), give
each runner one CPU and optionally a GPU (``num_gpus_per_env_runner``), and restart failed
runners. ``num_env_runners`` runners are LAW's N_a parallel searchers that share one strategy
model (the learner's, broadcast after every update). DDPG's defaults are its config's
(``reweight_gym.agents.settings.DDPG_DEFAULTS``).
"""

from __future__ import annotations

from typing import Any, TypeVar

from ray.rllib.algorithms.algorithm_config import AlgorithmConfig
from ray.rllib.algorithms.ppo import PPOConfig
from ray.rllib.algorithms.sac import SACConfig
from ray.rllib.core.rl_module.default_model_config import DefaultModelConfig

from reweight_gym.agents.fdu import episode_length
from reweight_gym.agents.rllib.ddpg import DDPGConfig
from reweight_gym.agents.rllib.envs import check_env
from reweight_gym.agents.settings import DDPG_DEFAULTS
from reweight_gym.validation import check_number

RLLIB_ALGOS = ("ddpg", "sac", "ppo")

_Config = TypeVar("_Config", bound=AlgorithmConfig)


def _common(config: _Config, env_id: str, env_kwargs: dict[str, Any],
            num_env_runners: int, num_gpus_per_env_runner: float, seed: int | None
            ) -> _Config:
    check_env(env_id, env_kwargs)
    config = (
        config.environment(env_id, env_config=dict(env_kwargs))
        .framework("torch")
        .env_runners(num_env_runners=num_env_runners, num_envs_per_env_runner=1,
                     num_cpus_per_env_runner=1, num_gpus_per_env_runner=num_gpus_per_env_runner,
                     sample_timeout_s=None)
        .fault_tolerance(restart_failed_env_runners=True)
        .debugging(seed=seed, log_level="ERROR")
    )
    ep_len = episode_length(env_id=env_id, env_kwargs=env_kwargs)
    if ep_len is not None and env_id.startswith("Reweight-"):  # whole training runs, slow steps
        config = config.env_runners(batch_mode="complete_episodes",
                                    rollout_fragment_length=ep_len)
        # one training_step per iteration: SAC's defaults (>= 100 env steps and >= 1 s per
        # iteration) would loop over many slow training runs before returning
        config = config.reporting(min_time_s_per_iteration=0,
                                  min_sample_timesteps_per_iteration=0)
        config.evaluation_sample_timeout_s = None  # type: ignore[assignment]  # Ray: float
    return config


def _training(config: _Config, algo: str, training: dict[str, Any]) -> _Config:
    """``config.training(**training)`` with a one-line error naming an unknown key."""
    try:
        return config.training(**training)
    except TypeError as e:
        raise ValueError(f"invalid {algo} training key(s) {sorted(training)}: "
                         f"{' '.join(str(e).split())}") from None


def ddpg_config(env_id: str, env_kwargs: dict[str, Any] | None = None, num_env_runners: int = 0,
                num_gpus_per_env_runner: float = 0, seed: int | None = 0,
                **training: Any) -> DDPGConfig:
    """:class:`DDPGConfig` (defaults ``DDPG_DEFAULTS``; ``settings=LAW_DDPG`` for LAW's DDPG)."""
    cfg = _common(DDPGConfig(), env_id, dict(env_kwargs or {}), num_env_runners,
                  num_gpus_per_env_runner, seed)
    return _training(cfg, "ddpg", training)


def sac_config(env_id: str, env_kwargs: dict[str, Any] | None = None, num_env_runners: int = 0,
               num_gpus_per_env_runner: float = 0, seed: int | None = 0,
               **training: Any) -> SACConfig:
    """RLlib's SAC on the environment with LAW-sized networks (3 hidden layers of 64)."""
    env_kwargs = dict(env_kwargs or {})
    cfg = _common(SACConfig(), env_id, env_kwargs, num_env_runners, num_gpus_per_env_runner,
                  seed)
    hiddens = list(DDPG_DEFAULTS.net_arch)
    cfg = cfg.rl_module(model_config=DefaultModelConfig(fcnet_hiddens=hiddens,
                                                        head_fcnet_hiddens=[]))
    ep_len = episode_length(env_id=env_id, env_kwargs=env_kwargs)
    if ep_len is not None:
        cfg.training(num_steps_sampled_before_learning_starts=ep_len * max(1, num_env_runners),
                     train_batch_size_per_learner=32,
                     replay_buffer_config={"type": "EpisodeReplayBuffer", "capacity": 100_000},
                     training_intensity=4.0 * 32)
    return _training(cfg, "sac", training)


def ppo_config(env_id: str, env_kwargs: dict[str, Any] | None = None, num_env_runners: int = 0,
               num_gpus_per_env_runner: float = 0, seed: int | None = 0,
               **training: Any) -> PPOConfig:
    """RLlib's PPO on the environment: a train batch of 4 episodes per runner per iteration."""
    env_kwargs = dict(env_kwargs or {})
    cfg = _common(PPOConfig(), env_id, env_kwargs, num_env_runners, num_gpus_per_env_runner,
                  seed)
    hiddens = list(DDPG_DEFAULTS.net_arch)
    cfg = cfg.rl_module(model_config=DefaultModelConfig(fcnet_hiddens=hiddens,
                                                        head_fcnet_hiddens=[],
                                                        vf_share_layers=False))
    ep_len = episode_length(env_id=env_id, env_kwargs=env_kwargs)
    if ep_len is not None:
        batch = 4 * ep_len * max(1, num_env_runners)
        cfg.training(train_batch_size_per_learner=batch, minibatch_size=min(32, batch),
                     num_epochs=8, lr=3e-4)
    return _training(cfg, "ppo", training)


def make_config(algo: str, env_id: str, env_kwargs: dict[str, Any] | None = None,
                num_env_runners: int = 0, num_gpus_per_env_runner: float = 0,
                seed: int | None = 0, **training: Any) -> AlgorithmConfig:
    """The config of ``algo`` (``ddpg``, ``sac``, ``ppo``) for ``env_id``; ``training`` are
    ``.training()`` keys. Bad input (unknown algorithm, env id, env field or training key) is
    a one-line ``ValueError`` naming it."""
    key = algo.lower()
    makers = {"ddpg": ddpg_config, "sac": sac_config, "ppo": ppo_config}
    if key not in makers:
        raise ValueError(f"unknown algorithm {algo!r} for --lib rllib: allowed: "
                         f"{', '.join(RLLIB_ALGOS)}")
    check_number("num_env_runners", num_env_runners, 0, integer=True)
    check_number("num_gpus_per_env_runner", num_gpus_per_env_runner, 0.0)
    return makers[key](env_id, env_kwargs, num_env_runners=num_env_runners,
                       num_gpus_per_env_runner=num_gpus_per_env_runner, seed=seed, **training)
