"""LAW's state s_T = [e_T, l_smooth, acc_smooth] (eq. 5) of an episode (:mod:`.episode`)."""

from __future__ import annotations

import math

import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding

from reweight_gym.config import EnvConfig
from reweight_gym.training.characteristics import feature_dim
from reweight_gym.training.trainer import DuplicateTrainer

LOSS_BOUND = 100.0  # losses in the observation are clipped to [0, LOSS_BOUND]


def episode_seed(np_random: np.random.Generator | int) -> int:
    """The training-run seed of an episode, drawn from the env's ``np_random`` (or from a
    generator seeded like Gymnasium's ``reset(seed=...)`` when an int is given)."""
    if isinstance(np_random, int):
        np_random = seeding.np_random(np_random)[0]
    return int(np_random.integers(0, 2**31 - 1))


def observation_space(cfg: EnvConfig) -> spaces.Box:
    """Stage one-hot (``num_stages``), smoothed loss, smoothed accuracy; ``extended`` adds
    progress, LR ratio, reference accuracy and loss gap."""
    n_extra = 4 if cfg.obs_mode == "extended" else 0
    n = cfg.num_stages + 2 + n_extra
    low = np.zeros(n, np.float32)
    high = np.ones(n, np.float32)
    high[cfg.num_stages] = LOSS_BOUND
    if n_extra:
        low[-1], high[-1] = -LOSS_BOUND, LOSS_BOUND
    return spaces.Box(low, high, dtype=np.float32)


def action_space(cfg: EnvConfig, num_classes: int) -> spaces.Box:
    """LAW's action [theta (one entry per sample feature), b] in [-1, 1] (eq. 3, scaled by
    ``action_scale``)."""
    return spaces.Box(-1.0, 1.0, (feature_dim(cfg.features, num_classes) + 1,), np.float32)


class StageObserver:
    """Tracks LAW's smoothed training loss and validation accuracy and builds observations.

    l_smooth is a bias-corrected EMA of the target's batch loss over iterations
    (``loss_smoothing``); before any training it is the untrained target's validation loss.
    acc_smooth is an EMA over stage-end validation accuracies (``acc_smoothing``), started at the
    first measured value.
    """

    def __init__(self, cfg: EnvConfig) -> None:
        self.cfg = cfg
        self.space = observation_space(cfg)
        self.reset()

    def reset(self) -> None:
        self.acc_smooth: float | None = None
        self.acc_reference = 0.0
        self.loss_gap = 0.0
        self.smoothed_loss = math.nan
        self._loss_ema, self._loss_ema_n = 0.0, 0

    def start(self, acc_target: float, acc_reference: float, loss_target: float) -> None:
        """The state before any training: accuracies and loss of the untrained nets (on the
        validation split)."""
        self.smoothed_loss = loss_target
        self.update(acc_target, acc_reference, 0.0)

    def record_losses(self, batch_losses: list[float]) -> None:
        """Feed the target's mean batch loss of every iteration of a stage to l_smooth."""
        beta = self.cfg.loss_smoothing
        for loss in batch_losses:
            self._loss_ema = beta * self._loss_ema + (1 - beta) * loss
            self._loss_ema_n += 1
            self.smoothed_loss = self._loss_ema / (1 - beta ** self._loss_ema_n)

    def update(self, acc_target: float, acc_reference: float, loss_gap: float) -> None:
        """Stage-end validation accuracies and the target - reference training-loss gap."""
        a = self.cfg.acc_smoothing
        if self.acc_smooth is None:
            self.acc_smooth = acc_target
        else:
            self.acc_smooth = a * self.acc_smooth + (1 - a) * acc_target
        self.acc_reference = acc_reference
        self.loss_gap = loss_gap

    def observe(self, run: DuplicateTrainer) -> np.ndarray:
        """The observation before the stage ``run`` trains next."""
        cfg = self.cfg
        obs = np.zeros(self.space.shape, np.float32)
        if run.stage < cfg.num_stages:
            obs[run.stage] = 1.0
        loss = self.smoothed_loss
        obs[cfg.num_stages] = min(loss, LOSS_BOUND) if math.isfinite(loss) else LOSS_BOUND
        obs[cfg.num_stages + 1] = self.acc_smooth or 0.0
        if cfg.obs_mode == "extended":
            obs[cfg.num_stages + 2] = run.iteration / run.total_iterations
            last = min(run.iteration, run.total_iterations - 1)
            obs[cfg.num_stages + 3] = run.lr_at(last) / cfg.lr
            obs[cfg.num_stages + 4] = self.acc_reference
            gap = self.loss_gap if math.isfinite(self.loss_gap) else LOSS_BOUND
            obs[cfg.num_stages + 5] = float(np.clip(gap, -LOSS_BOUND, LOSS_BOUND))
        return obs
