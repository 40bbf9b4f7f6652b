"""DDPG on RLlib's new API stack (RLlib >= 2.9 no longer ships DDPG).

:class:`DDPGConfig` (an ``AlgorithmConfig``) builds :class:`DDPG` (an ``Algorithm``) whose
``training_step`` samples from the env runners (each runner of the LAW env is one parallel
searcher, LAW's N_a), stores the episodes in an ``EpisodeReplayBuffer``, and runs
``replay_ratio * sampled_steps`` gradient steps of the
:class:`~agents.rllib.learner.DDPGTorchLearner` (LAW eqs. 10-13) on minibatches sampled from it,
then broadcasts the new actor weights to the runners. The RLModule is
:class:`~agents.rllib.rl_module.DDPGTorchRLModule` (deterministic actor, critic, targets,
Gaussian exploration noise in the exploration forward pass only).

Defaults follow LAW: Adam 1e-5 (actor) / 1e-4 (critic), 4-layer MLPs. For standard control
tasks (Pendulum) larger learning rates are usual; everything is set through ``.training()``.
"""

from __future__ import annotations

import math
from typing import Any

from ray.rllib.algorithms.algorithm import Algorithm
from ray.rllib.algorithms.algorithm_config import AlgorithmConfig, NotProvided
from ray.rllib.connectors.common.add_observations_from_episodes_to_batch import (
    AddObservationsFromEpisodesToBatch,
)
from ray.rllib.connectors.learner.add_next_observations_from_episodes_to_train_batch import (
    AddNextObservationsFromEpisodesToTrainBatch,
)
from ray.rllib.core.rl_module.rl_module import RLModuleSpec
from ray.rllib.execution.rollout_ops import synchronous_parallel_sample
from ray.rllib.utils.metrics import (
    ENV_RUNNER_RESULTS,
    ENV_RUNNER_SAMPLING_TIMER,
    LEARNER_RESULTS,
    LEARNER_UPDATE_TIMER,
    NUM_ENV_STEPS_SAMPLED_LIFETIME,
    REPLAY_BUFFER_ADD_DATA_TIMER,
    REPLAY_BUFFER_SAMPLE_TIMER,
    SYNCH_WORKER_WEIGHTS_TIMER,
    TIMERS,
)

from agents.rllib.rl_module import DEFAULT_HIDDENS, DDPGTorchRLModule

NUM_GRADIENT_STEPS_LIFETIME = "num_gradient_steps_lifetime"
REPLAY_BUFFER_STATE = "ddpg_replay_buffer"
GRADIENT_STEPS_STATE = "ddpg_num_gradient_steps"


class DDPGConfig(AlgorithmConfig):
    """Configuration of :class:`DDPG`.

    ``.training()`` keys beyond ``AlgorithmConfig``'s: ``actor_lr`` (LAW 1e-5), ``critic_lr``
    (LAW 1e-4), ``tau`` (Polyak coefficient of the target networks; 1.0 = LAW's online TD
    target), ``actor_hiddens`` / ``critic_hiddens`` (LAW: 4 layers = 3 hidden),
    ``exploration_noise`` (sigma of the Gaussian action noise in normalised units),
    ``replay_buffer_config``, ``num_steps_sampled_before_learning_starts``, ``random_warmup``
    (uniform random actions until learning starts), ``replay_ratio`` (gradient steps per sampled
    env step, at least one step per iteration), ``store_buffer_in_checkpoints``.

    Example::

        config = DDPGConfig().environment("Pendulum-v1").training(actor_lr=1e-3)
        algo = config.build_algo()
        algo.train()
    """

    def __init__(self, algo_class: type | None = None) -> None:
        super().__init__(algo_class=algo_class or DDPG)
        self.actor_lr: float = 1e-5
        self.critic_lr: float = 1e-4
        self.lr = None  # unused: actor_lr / critic_lr
        self.tau: float = 0.005
        self.gamma = 0.99
        self.actor_hiddens: list[int] = list(DEFAULT_HIDDENS)
        self.critic_hiddens: list[int] = list(DEFAULT_HIDDENS)
        self.exploration_noise: float = 0.1
        self.replay_buffer_config: dict[str, Any] = {"type": "EpisodeReplayBuffer",
                                                     "capacity": 100_000}
        self.num_steps_sampled_before_learning_starts: int = 1000
        self.random_warmup: bool = True
        self.replay_ratio: float = 1.0
        self.store_buffer_in_checkpoints: bool = True
        self.train_batch_size_per_learner = 128
        self.rollout_fragment_length = 50
        self.min_time_s_per_iteration = None
        self.min_sample_timesteps_per_iteration = 0

    def training(self, *, actor_lr: float | Any = NotProvided,
                 critic_lr: float | Any = NotProvided, tau: float | Any = NotProvided,
                 actor_hiddens: list[int] | Any = NotProvided,
                 critic_hiddens: list[int] | Any = NotProvided,
                 exploration_noise: float | Any = NotProvided,
                 replay_buffer_config: dict[str, Any] | Any = NotProvided,
                 num_steps_sampled_before_learning_starts: int | Any = NotProvided,
                 random_warmup: bool | Any = NotProvided,
                 replay_ratio: float | Any = NotProvided,
                 store_buffer_in_checkpoints: bool | Any = NotProvided,
                 **kwargs: Any) -> DDPGConfig:
        """Set DDPG's training settings (see the class docstring) and ``AlgorithmConfig``'s."""
        super().training(**kwargs)
        for name, value in (("actor_lr", actor_lr), ("critic_lr", critic_lr), ("tau", tau),
                            ("actor_hiddens", actor_hiddens), ("critic_hiddens", critic_hiddens),
                            ("exploration_noise", exploration_noise),
                            ("num_steps_sampled_before_learning_starts",
                             num_steps_sampled_before_learning_starts),
                            ("random_warmup", random_warmup), ("replay_ratio", replay_ratio),
                            ("store_buffer_in_checkpoints", store_buffer_in_checkpoints)):
            if value is not NotProvided:
                setattr(self, name, value)
        if replay_buffer_config is not NotProvided:
            self.replay_buffer_config = {**self.replay_buffer_config, **replay_buffer_config}
        return self

    def validate(self) -> None:
        super().validate()
        for name in ("actor_lr", "critic_lr"):
            v = getattr(self, name)
            if not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                self._value_error(f"invalid {name}={v!r}: must be a number > 0")
        if not (0.0 < float(self.tau) <= 1.0):
            self._value_error(f"invalid tau={self.tau!r}: must be in (0, 1]")
        if float(self.exploration_noise) < 0:
            self._value_error(f"invalid exploration_noise={self.exploration_noise!r}: >= 0")
        if float(self.replay_ratio) <= 0:
            self._value_error(f"invalid replay_ratio={self.replay_ratio!r}: must be > 0")
        if "EpisodeReplayBuffer" not in str(self.replay_buffer_config.get("type")):
            self._value_error("DDPG on the new API stack needs an EpisodeReplayBuffer "
                              f"(replay_buffer_config type {self.replay_buffer_config['type']!r})")

    def get_default_rl_module_spec(self) -> RLModuleSpec:
        return RLModuleSpec(module_class=DDPGTorchRLModule)

    def get_default_learner_class(self) -> type:
        from agents.rllib.learner import DDPGTorchLearner

        return DDPGTorchLearner

    @property
    def _model_config_auto_includes(self) -> dict[str, Any]:
        return super()._model_config_auto_includes | {
            "actor_hiddens": list(self.actor_hiddens),
            "critic_hiddens": list(self.critic_hiddens),
            "exploration_noise": float(self.exploration_noise),
        }

    def build_learner_connector(self, input_observation_space: Any, input_action_space: Any,
                                device: Any = None) -> Any:
        pipeline = super().build_learner_connector(
            input_observation_space=input_observation_space,
            input_action_space=input_action_space, device=device)
        pipeline.insert_after(AddObservationsFromEpisodesToBatch,
                              AddNextObservationsFromEpisodesToTrainBatch())
        return pipeline


class DDPG(Algorithm):
    """Deep Deterministic Policy Gradient (Lillicrap et al. 2016; LAW eqs. 10-13) with replay."""

    @classmethod
    def get_default_config(cls) -> DDPGConfig:
        return DDPGConfig()

    def setup(self, config: AlgorithmConfig) -> None:
        super().setup(config)
        self._num_gradient_steps = 0

    def get_state(self, components: Any = None, *, not_components: Any = None,
                  **kwargs: Any) -> dict[str, Any]:
        """Algorithm state plus, with ``store_buffer_in_checkpoints``, the replay buffer (the
        new API stack's ``Algorithm.get_state`` leaves it out) and the gradient-step count."""
        state = super().get_state(components, not_components=not_components, **kwargs)
        if components is None:
            state[GRADIENT_STEPS_STATE] = int(self._num_gradient_steps)
            if self.config.store_buffer_in_checkpoints and self.local_replay_buffer is not None:
                state[REPLAY_BUFFER_STATE] = self.local_replay_buffer.get_state()
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        if GRADIENT_STEPS_STATE in state:
            self._num_gradient_steps = int(state[GRADIENT_STEPS_STATE])
        if REPLAY_BUFFER_STATE in state and self.local_replay_buffer is not None:
            self.local_replay_buffer.set_state(state[REPLAY_BUFFER_STATE])

    def training_step(self) -> None:
        """Sample (random actions until learning starts, if ``random_warmup``), store in the
        episode replay buffer, run the gradient steps, sync the actor to the env runners."""
        cfg: DDPGConfig = self.config  # type: ignore[assignment]
        sampled_before = self.metrics.peek(
            (ENV_RUNNER_RESULTS, NUM_ENV_STEPS_SAMPLED_LIFETIME), default=0)
        random_actions = bool(cfg.random_warmup
                              and sampled_before < cfg.num_steps_sampled_before_learning_starts)
        with self.metrics.log_time((TIMERS, ENV_RUNNER_SAMPLING_TIMER)):
            episodes, env_runner_results = synchronous_parallel_sample(
                worker_set=self.env_runner_group, concat=True,
                sample_timeout_s=cfg.sample_timeout_s, random_actions=random_actions,
                _uses_new_env_runners=True, _return_metrics=True,
            )
        self.metrics.aggregate(env_runner_results, key=ENV_RUNNER_RESULTS)
        new_steps = int(sum(len(e) for e in episodes))
        with self.metrics.log_time((TIMERS, REPLAY_BUFFER_ADD_DATA_TIMER)):
            self.local_replay_buffer.add(episodes)
        current_ts = self.metrics.peek(
            (ENV_RUNNER_RESULTS, NUM_ENV_STEPS_SAMPLED_LIFETIME), default=0)
        if current_ts < cfg.num_steps_sampled_before_learning_starts or new_steps == 0:
            return
        batch_size = cfg.total_train_batch_size
        n_updates = max(1, round(cfg.replay_ratio * new_steps))
        with self.metrics.log_time((TIMERS, REPLAY_BUFFER_SAMPLE_TIMER)):
            episodes = self.local_replay_buffer.sample(
                num_items=batch_size * n_updates, n_step=1, gamma=cfg.gamma,
                batch_length_T=0, lookback=0, sample_episodes=True,
            )
        with self.metrics.log_time((TIMERS, LEARNER_UPDATE_TIMER)):
            learner_results = self.learner_group.update(
                episodes=episodes,
                timesteps={NUM_ENV_STEPS_SAMPLED_LIFETIME: current_ts},
                minibatch_size=batch_size, num_epochs=1, shuffle_batch_per_epoch=True,
            )
        self.metrics.aggregate(learner_results, key=LEARNER_RESULTS)
        self._num_gradient_steps += n_updates
        self.metrics.log_value(NUM_GRADIENT_STEPS_LIFETIME, n_updates, reduce="lifetime_sum")
        with self.metrics.log_time((TIMERS, SYNCH_WORKER_WEIGHTS_TIMER)):
            self.env_runner_group.sync_weights(
                from_worker_or_learner_group=self.learner_group, inference_only=True)
