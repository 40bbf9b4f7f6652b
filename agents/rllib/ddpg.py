"""DDPG on RLlib's new API stack (RLlib >= 2.9 no longer ships it): LAW's DDPG, as on SB3.

:class:`DDPGConfig` (an ``AlgorithmConfig``) builds :class:`DDPG` (an ``Algorithm``). Its env
runners are LAW's N_a parallel searchers: each ``training_step`` is one *round* of LAW's
Algorithm 1, one complete episode per env (per runner), whatever ``batch_mode`` says; the
transitions go to one buffer; then, with the Full Data Update (the default), the
:class:`~reweight_gym.agents.rllib.learner.DDPGTorchLearner` (LAW eqs. 10-13) trains on every
buffered transition for ``fdu_epochs`` epochs, in the minibatches of
:class:`reweight_gym.agents.fdu.FDUSchedule` (the schedule SB3's ``LAWDDPG`` uses: same rounds,
same start of learning, same epochs over the whole buffer, minibatch order from a generator seeded
with the config's ``seed``), and the new actor is broadcast to the runners.
``full_data_update=False`` instead runs ``replay_ratio`` gradient steps per new transition on
minibatches sampled from the buffer.

The ``.training()`` keys of LAW's DDPG are the fields of
:class:`~reweight_gym.agents.settings.DDPGSettings` (the names of SB3's ``LAWDDPG`` keywords), with
the same defaults and the same validation; ``.training(settings=LAW_DDPG)`` is LAW's DDPG. Keys
DDPG does not use (``lr``: DDPG has ``actor_lr`` and ``critic_lr``; ``num_epochs``,
``minibatch_size``, ``shuffle_batch_per_epoch``: FDU's) raise a ``ValueError`` instead of being
ignored.

Reproducible by seed (``.debugging(seed=...)``): the networks, the exploration noise (seeded per
runner by RLlib), the random actions before learning starts and the episodes' seeds
(``agents/rllib/envs.py``), the minibatch order and the target smoothing noise.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
from ray.rllib.algorithms.algorithm import Algorithm
from ray.rllib.algorithms.algorithm_config import AlgorithmConfig, NotProvided
from ray.rllib.core import DEFAULT_MODULE_ID
from ray.rllib.core.columns import Columns
from ray.rllib.core.rl_module.rl_module import RLModuleSpec
from ray.rllib.policy.sample_batch import MultiAgentBatch, SampleBatch
from ray.rllib.utils.metrics import (
    ENV_RUNNER_RESULTS,
    ENV_RUNNER_SAMPLING_TIMER,
    LEARNER_RESULTS,
    LEARNER_UPDATE_TIMER,
    NUM_ENV_STEPS_SAMPLED_LIFETIME,
    SYNCH_WORKER_WEIGHTS_TIMER,
    TIMERS,
)
from ray.rllib.utils.spaces.space_utils import normalize_action
from ray.util import log_once

from reweight_gym.agents.fdu import FDUSchedule, visits
from reweight_gym.agents.rllib.envs import check_env, seed_action_space
from reweight_gym.agents.rllib.rl_module import DDPGTorchRLModule
from reweight_gym.agents.settings import DDPG_DEFAULTS, DDPGSettings
from reweight_gym.validation import check_bool, check_number

# RLlib warns once per process that an algorithm runs "on the new API stack"; this DDPG exists
# only there, so the warning would say nothing
log_once("DDPG_on_new_api_stack")

NUM_GRADIENT_STEPS_LIFETIME = "num_gradient_steps_lifetime"
DDPG_STATE = "ddpg"

#: DDPG's own ``.training()`` keys besides ``gamma`` (``AlgorithmConfig``'s): the fields of
#: :class:`DDPGSettings` and RLlib-only options.
RLLIB_ONLY_KEYS = ("replay_ratio", "random_warmup", "store_buffer_in_checkpoints")
DDPG_KEYS = tuple(n for n in DDPGSettings.names() if n != "gamma") + RLLIB_ONLY_KEYS
#: ``AlgorithmConfig.training()`` keys that DDPG does not use, and what to set instead.
UNUSED_KEYS = {
    "lr": "DDPG has two learning rates: set actor_lr and critic_lr",
    "num_epochs": "FDU's epochs are fdu_epochs",
    "minibatch_size": "FDU's minibatches are fdu_batch_size",
    "shuffle_batch_per_epoch": "FDU draws its own permutations (agents/fdu.py)",
    "num_sgd_iter": "FDU's epochs are fdu_epochs",
}


class TransitionBuffer:
    """The replay buffer: the newest ``capacity`` transitions (obs, action, reward, next obs,
    terminated) in arrays, oldest evicted first, as SB3's; its state is saved in checkpoints."""

    FIELDS = (Columns.OBS, Columns.ACTIONS, Columns.REWARDS, Columns.NEXT_OBS,
              Columns.TERMINATEDS)

    def __init__(self, capacity: int) -> None:
        self.capacity = int(capacity)
        self.data: dict[str, np.ndarray] = {}
        self.pos = 0  # next write position
        self.size = 0

    def add(self, batch: dict[str, np.ndarray]) -> None:
        n = len(batch[Columns.REWARDS])
        if not self.data:
            self.data = {k: np.zeros((self.capacity, *np.shape(v)[1:]), dtype=np.float32)
                         for k, v in batch.items()}
        for k in self.FIELDS:
            v = np.asarray(batch[k], dtype=np.float32)[-self.capacity:]
            idx = (self.pos + np.arange(len(v)) + max(0, n - self.capacity)) % self.capacity
            self.data[k][idx] = v
        self.pos = (self.pos + n) % self.capacity
        self.size = min(self.capacity, self.size + n)

    def all(self) -> dict[str, np.ndarray]:
        """Every buffered transition, oldest first."""
        start = (self.pos - self.size) % self.capacity
        idx = (start + np.arange(self.size)) % self.capacity
        return {k: v[idx] for k, v in self.data.items()}

    def get_state(self) -> dict[str, Any]:
        return {"capacity": self.capacity, "pos": self.pos, "size": self.size,
                "data": self.data}

    def set_state(self, state: dict[str, Any]) -> None:
        self.capacity, self.pos, self.size = state["capacity"], state["pos"], state["size"]
        self.data = state["data"]


def _transitions(episodes: list[Any], space: Any, squash: bool) -> dict[str, np.ndarray]:
    """The transitions of complete (or truncated) episodes; a truncation is not terminal.
    ``squash``: the actions are RLlib's random actions, sampled in the env's action ``space``,
    while the module acts in [-1, 1] (RLlib's ``normalize_actions``): map them there."""
    cols: dict[str, list[np.ndarray]] = {k: [] for k in TransitionBuffer.FIELDS}
    for ep in episodes:
        obs = np.asarray(ep.get_observations(), dtype=np.float32)
        acts = np.asarray(ep.get_actions(), dtype=np.float32)
        if squash:
            acts = np.stack([normalize_action(a, space) for a in acts]).astype(np.float32)
        t = len(acts)
        term = np.zeros(t, dtype=np.float32)
        if ep.is_terminated:
            term[-1] = 1.0
        cols[Columns.OBS].append(obs[:t].reshape(t, -1))
        cols[Columns.NEXT_OBS].append(obs[1:t + 1].reshape(t, -1))
        cols[Columns.ACTIONS].append(acts.reshape(t, -1))
        cols[Columns.REWARDS].append(np.asarray(ep.get_rewards(), dtype=np.float32))
        cols[Columns.TERMINATEDS].append(term)
    return {k: np.concatenate(v) for k, v in cols.items()}


def _base_training_keys() -> set[str]:
    return set(inspect.signature(AlgorithmConfig.training).parameters) - {"self"}


class DDPGConfig(AlgorithmConfig):
    """Configuration of :class:`DDPG` (module docstring).

    ``.training()`` keys beyond ``AlgorithmConfig``'s: every field of
    :class:`~reweight_gym.agents.settings.DDPGSettings` (defaults ``DDPG_DEFAULTS``; ``gamma``
    is ``AlgorithmConfig``'s own key; ``fdu_batch_size=None`` means
    ``train_batch_size_per_learner``), or ``settings=`` a whole ``DDPGSettings``; and
    ``replay_ratio`` (without FDU only: gradient steps per new transition, default 1),
    ``random_warmup`` (random actions before learning starts, as SB3), and
    ``store_buffer_in_checkpoints``.

    Example::

        config = (DDPGConfig().environment("Reweight-Digits-v0", env_config={"preset": "tiny"})
                  .env_runners(num_env_runners=2).debugging(seed=0))
        algo = config.build_algo()
        algo.train()  # one round: one episode per env runner, then an update once learning
                      # has started
    """

    def __init__(self, algo_class: type | None = None) -> None:
        super().__init__(algo_class=algo_class or DDPG)
        self.lr = None  # type: ignore[assignment]  # unused: actor_lr / critic_lr
        d = DDPG_DEFAULTS
        self.actor_lr: float = d.actor_lr
        self.critic_lr: float = d.critic_lr
        self.net_arch: list[int] = list(d.net_arch)
        self.noise_sigma: float = d.noise_sigma
        self.n_critics: int = d.n_critics
        self.target_policy_noise: float = d.target_policy_noise
        self.target_noise_clip: float = d.target_noise_clip
        self.action_l2: float = d.action_l2
        self.full_data_update: bool = d.full_data_update
        self.fdu_epochs: int = d.fdu_epochs
        self.fdu_batch_size: int | None = d.fdu_batch_size
        self.learning_starts_episodes: int = d.learning_starts_episodes
        self.buffer_size: int = d.buffer_size
        self.tau: float = d.tau
        self.gamma = d.gamma
        self.replay_ratio: float | None = None
        self.random_warmup: bool = True
        self.store_buffer_in_checkpoints: bool = True
        self.train_batch_size_per_learner = 64
        # an env step of a Reweight env trains a classifier for a stage: wait however long
        # it takes, and one training_step (one round) per iteration
        self.sample_timeout_s = None  # type: ignore[assignment]  # no timeout; Ray: float
        self.min_time_s_per_iteration = None
        self.min_sample_timesteps_per_iteration = 0
        self.callbacks(on_environment_created=seed_action_space)

    def training(self, settings: DDPGSettings | None = None,
                 **kwargs: Any) -> DDPGConfig:
        """Set DDPG's training settings (class docstring) and ``AlgorithmConfig``'s; a key
        DDPG does not use, or no key at all, is a one-line ``ValueError`` naming it.
        ``settings`` sets every field of a :class:`DDPGSettings` (``kwargs`` on top)."""
        if settings is not None:
            if not isinstance(settings, DDPGSettings):
                raise ValueError(f"invalid settings={settings!r}: must be a DDPGSettings")
            kwargs = {**settings.to_dict(), **kwargs}
        for key in kwargs:
            if key in UNUSED_KEYS:
                raise ValueError(f"DDPG does not use the training key {key!r}: "
                                 f"{UNUSED_KEYS[key]}")
            if key not in DDPG_KEYS and key not in _base_training_keys():
                allowed = sorted(set(DDPG_KEYS) | _base_training_keys() - set(UNUSED_KEYS))
                raise ValueError(f"unknown DDPG training key {key!r}: allowed: "
                                 f"{', '.join(allowed)}")
        base = {k: v for k, v in kwargs.items() if k not in DDPG_KEYS}
        super().training(**base)
        for key in DDPG_KEYS:
            value = kwargs.get(key, NotProvided)
            if value is not NotProvided:
                setattr(self, key, list(value) if key == "net_arch" else value)
        return self

    @property
    def settings(self) -> DDPGSettings:
        """This config's :class:`DDPGSettings` (validated: a bad field is a ``ValueError``)."""
        return DDPGSettings(**{n: getattr(self, n) for n in DDPGSettings.names()})

    def validate(self) -> None:
        if self.lr is not None:
            raise ValueError(f"DDPG does not use lr={self.lr!r}: {UNUSED_KEYS['lr']}")
        super().validate()
        self.settings  # noqa: B018  (validates every DDPG field, with the SB3 agent's messages)
        check_bool("random_warmup", self.random_warmup)
        if self.replay_ratio is not None:
            if self.full_data_update:
                raise ValueError(f"invalid replay_ratio={self.replay_ratio!r}: used only with "
                                 "full_data_update=False (FDU trains on the whole buffer)")
            check_number("replay_ratio", self.replay_ratio, 0.0, lo_open=True)
        check_env(self.env, self.env_config)

    @property
    def fdu_minibatch(self) -> int:
        return int(self.fdu_batch_size or self.train_batch_size_per_learner)

    def get_default_rl_module_spec(self) -> RLModuleSpec:
        return RLModuleSpec(module_class=DDPGTorchRLModule)

    def get_default_learner_class(self) -> type:
        from reweight_gym.agents.rllib.learner import DDPGTorchLearner

        return DDPGTorchLearner

    @property
    def _model_config_auto_includes(self) -> dict[str, Any]:
        return super()._model_config_auto_includes | {
            "net_arch": list(self.net_arch),
            "n_critics": int(self.n_critics),
            "noise_sigma": float(self.noise_sigma),
        }


class DDPG(Algorithm):
    """LAW's DDPG (Li et al., AAAI 2020, eqs. 10-13 and Algorithm 1) with env runners as the
    parallel searchers; ``algo.train()`` is one round (module docstring).

    ``fdu`` is the schedule; after each FDU update ``last_fdu_visits`` counts, for each
    buffered transition, the minibatches it entered, and ``fdu_updates`` counts updates."""

    @classmethod
    def get_default_config(cls) -> DDPGConfig:
        return DDPGConfig()

    def setup(self, config: AlgorithmConfig) -> None:  # type: ignore[override]  # as Algorithm's
        super().setup(config)
        cfg: DDPGConfig = self.config  # type: ignore[assignment]
        self.fdu = FDUSchedule(cfg.fdu_epochs, cfg.fdu_minibatch, cfg.learning_starts_episodes,
                               seed=cfg.seed)
        self.buffer = TransitionBuffer(cfg.buffer_size)
        self.episodes_total = 0
        self.fdu_updates = 0
        self.num_gradient_steps = 0
        self.last_fdu_visits: np.ndarray | None = None
        self._action_space: Any = None

    # ------------------------------------------------------------------ checkpoints
    def get_state(self, components: Any = None, *, not_components: Any = None,
                  **kwargs: Any) -> dict[str, Any]:
        """Algorithm state plus DDPG's: episode and update counters, the FDU generator and,
        with ``store_buffer_in_checkpoints``, the replay buffer."""
        state = super().get_state(components, not_components=not_components, **kwargs)
        if components is None:
            cfg: DDPGConfig = self.config  # type: ignore[assignment]
            state[DDPG_STATE] = {
                "episodes_total": self.episodes_total, "fdu_updates": self.fdu_updates,
                "num_gradient_steps": self.num_gradient_steps, "fdu": self.fdu.get_state(),
                "buffer": self.buffer.get_state() if cfg.store_buffer_in_checkpoints else None}
        return state

    def set_state(self, state: dict[str, Any]) -> None:
        super().set_state(state)
        own = state.get(DDPG_STATE)
        if own is not None:
            self.episodes_total = int(own["episodes_total"])
            self.fdu_updates = int(own["fdu_updates"])
            self.num_gradient_steps = int(own["num_gradient_steps"])
            self.fdu.set_state(own["fdu"])
            if own["buffer"] is not None:
                self.buffer.set_state(own["buffer"])

    # ------------------------------------------------------------------ one round
    def _sample_round(self, random_actions: bool) -> tuple[list[Any], list[dict[str, Any]]]:
        """One complete episode per env of every env runner (the local one if there are no
        remote runners), in runner order."""
        cfg: DDPGConfig = self.config  # type: ignore[assignment]
        k = int(cfg.num_envs_per_env_runner)
        group = self.env_runner_group
        assert group is not None  # an online algorithm: built in Algorithm.setup
        if group.num_remote_env_runners() == 0:
            runner = self.env_runner
            return runner.sample(num_episodes=k, random_actions=random_actions), [
                runner.get_metrics()]
        out = group.foreach_env_runner(
            lambda r: (r.sample(num_episodes=k, random_actions=random_actions), r.get_metrics()),
            local_env_runner=False, timeout_seconds=cfg.sample_timeout_s)
        return [e for eps, _ in out for e in eps], [m for _, m in out]

    def _learn(self, batches: list[dict[str, np.ndarray]], sampled_lifetime: int) -> None:
        results = None
        learners, metrics = self.learner_group, self.metrics
        assert learners is not None and metrics is not None  # built in Algorithm.setup/__init__
        for i, mb in enumerate(batches):
            batch = MultiAgentBatch({DEFAULT_MODULE_ID: SampleBatch(mb)},
                                    env_steps=len(mb[Columns.REWARDS]))
            last = i == len(batches) - 1
            results = learners.update(
                batch=batch, timesteps={NUM_ENV_STEPS_SAMPLED_LIFETIME: sampled_lifetime},
                _no_metrics_reduce=not last)
        self.num_gradient_steps += len(batches)
        if results is not None:
            metrics.aggregate(results, key=LEARNER_RESULTS)
        metrics.log_value(NUM_GRADIENT_STEPS_LIFETIME, len(batches), reduce="lifetime_sum")

    def training_step(self) -> None:
        """One round of Algorithm 1: one episode per searcher (random actions while exploring,
        ``random_warmup``), the transitions into the buffer, then, if due, the update (FDU over
        the whole buffer, or sampled minibatches), and the new actor to the runners."""
        cfg: DDPGConfig = self.config  # type: ignore[assignment]
        group, metrics = self.env_runner_group, self.metrics
        assert group is not None and metrics is not None  # built in Algorithm.setup/__init__
        random_actions = bool(cfg.random_warmup
                              and self.fdu.explores_randomly(self.episodes_total))
        with metrics.log_time((TIMERS, ENV_RUNNER_SAMPLING_TIMER)):
            episodes, runner_metrics = self._sample_round(random_actions)
        metrics.aggregate(runner_metrics, key=ENV_RUNNER_RESULTS)
        if not episodes:
            return
        if self._action_space is None:
            self._action_space = group.get_spaces()[DEFAULT_MODULE_ID][1]
        new = _transitions(episodes, self._action_space,
                           squash=random_actions and bool(cfg.normalize_actions))
        self.buffer.add(new)
        self.episodes_total += len(episodes)
        if not self.fdu.update_due(self.episodes_total):
            return
        sampled = int(metrics.peek((ENV_RUNNER_RESULTS, NUM_ENV_STEPS_SAMPLED_LIFETIME),
                                   default=0))
        data = self.buffer.all()
        n = self.buffer.size
        if cfg.full_data_update:
            plan = list(self.fdu.minibatches(n))
            self.last_fdu_visits = visits(plan, n)
            self.fdu_updates += 1
        else:
            steps = max(1, round((cfg.replay_ratio or 1.0) * len(new[Columns.REWARDS])))
            size = int(cfg.train_batch_size_per_learner)
            plan = [self.fdu.rng.integers(0, n, size) for _ in range(steps)]
        with metrics.log_time((TIMERS, LEARNER_UPDATE_TIMER)):
            self._learn([{k: v[idx] for k, v in data.items()} for idx in plan], sampled)
        with metrics.log_time((TIMERS, SYNCH_WORKER_WEIGHTS_TIMER)):
            group.sync_weights(from_worker_or_learner_group=self.learner_group,
                               inference_only=True)
