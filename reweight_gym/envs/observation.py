"""LAW's state s_T = [e_T, l_smooth, acc_smooth] (eq. 5) of an episode (:mod:`.episode`), and
the extended and transfer observation modes that append to it.

``obs_mode="law"``: LAW's state. ``"extended"`` appends the training progress, the LR ratio, the
reference's validation accuracy and the target - reference loss gap. ``"transfer"`` appends what a
policy meant for other datasets and training setups needs to tell whether weighting can help:
whether the network is memorising its (noisy) training labels. The signs of memorisation are the
target network's own, so the mode needs no reference network and no dataset identity:

- the training progress t/T and the LR ratio lr/lr_0 (memorisation sets in after LR decays);
- the accuracy on the observed training labels of the last stage, the validation accuracy, and
  their gap (near 1 - noise rate while the network fits only the clean samples; rising towards 1
  while it memorises the mislabelled ones, with validation accuracy falling behind);
- the validation loss and its change over the last stage (rising while it memorises);
- the share of the last stage's per-sample training losses above ln C, a uniform prediction's
  loss (the samples not fitted: roughly the mislabelled share while they are not memorised,
  shrinking as they are), and its change over the stage.

Before any training (no warm-up) the training-side values are the untrained network's on the
validation split and the changes are 0.
"""

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


#: The entries each mode appends to LAW's state, with their bounds (module docstring).
EXTRA_ENTRIES: dict[str, tuple[tuple[str, float, float], ...]] = {
    "law": (),
    "extended": (("progress", 0.0, 1.0), ("lr_ratio", 0.0, 1.0), ("acc_reference", 0.0, 1.0),
                 ("loss_gap", -LOSS_BOUND, LOSS_BOUND)),
    "transfer": (("progress", 0.0, 1.0), ("lr_ratio", 0.0, 1.0), ("train_acc", 0.0, 1.0),
                 ("val_acc", 0.0, 1.0), ("fit_gap", -1.0, 1.0), ("val_loss", 0.0, LOSS_BOUND),
                 ("val_loss_change", -LOSS_BOUND, LOSS_BOUND), ("high_loss_share", 0.0, 1.0),
                 ("high_loss_share_change", -1.0, 1.0)),
}


def observation_names(cfg: EnvConfig) -> list[str]:
    """The name of every entry of the observation."""
    return ([f"stage_{i}" for i in range(cfg.num_stages)] + ["loss_smooth", "acc_smooth"]
            + [name for name, _, _ in EXTRA_ENTRIES[cfg.obs_mode]])


def observation_space(cfg: EnvConfig) -> spaces.Box:
    """Stage one-hot (``num_stages``), smoothed loss, smoothed accuracy, then the entries of
    ``obs_mode`` (:data:`EXTRA_ENTRIES`)."""
    extra = EXTRA_ENTRIES[cfg.obs_mode]
    n = cfg.num_stages + 2 + len(extra)
    low = np.zeros(n, np.float32)
    high = np.ones(n, np.float32)
    high[cfg.num_stages] = LOSS_BOUND
    for i, (_, lo, hi) in enumerate(extra):
        low[cfg.num_stages + 2 + i], high[cfg.num_stages + 2 + i] = lo, hi
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
        # the transfer mode's values of the last stage, and its changes
        self.val_acc = 0.0
        self.train_acc = 0.0
        self.val_loss = math.nan
        self.val_loss_change = 0.0
        self.high_loss_share = 1.0
        self.high_loss_share_change = 0.0

    def start(self, acc_target: float, acc_reference: float, loss_target: float,
              high_loss_share: float = 1.0) -> None:
        """The state before any training: accuracies, loss and high-loss share of the untrained
        nets (on the validation split; the training-side values are read there too)."""
        self.smoothed_loss = loss_target
        self.update(acc_target, acc_reference, 0.0)
        self.train_acc, self.val_loss = acc_target, loss_target
        self.high_loss_share = high_loss_share

    def update_fit(self, train_acc: float, val_loss: float, high_loss_share: float) -> None:
        """The transfer mode's values after a stage: the target's accuracy on the training
        labels it saw and its high-loss share there, and its validation loss."""
        self.val_loss_change = (val_loss - self.val_loss) if math.isfinite(self.val_loss) else 0.0
        self.high_loss_share_change = high_loss_share - self.high_loss_share
        self.train_acc, self.val_loss = train_acc, val_loss
        self.high_loss_share = high_loss_share

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
        self.val_acc = acc_target

    def observe(self, run: DuplicateTrainer) -> np.ndarray:
        """The observation before the stage ``run`` trains next."""
        cfg = self.cfg
        obs = np.zeros(self.space.shape, np.float32)
        if run.stage < cfg.num_stages:
            obs[run.stage] = 1.0
        loss = self.smoothed_loss
        obs[cfg.num_stages] = min(loss, LOSS_BOUND) if math.isfinite(loss) else LOSS_BOUND
        obs[cfg.num_stages + 1] = self.acc_smooth or 0.0
        if cfg.obs_mode == "law":
            return obs
        last = min(run.iteration, run.total_iterations - 1)
        values = {"progress": run.iteration / run.total_iterations,
                  "lr_ratio": run.lr_at(last) / cfg.lr, "acc_reference": self.acc_reference,
                  "loss_gap": self.loss_gap, "train_acc": self.train_acc,
                  "val_acc": self.val_acc, "fit_gap": self.train_acc - self.val_acc,
                  "val_loss": self.val_loss, "val_loss_change": self.val_loss_change,
                  "high_loss_share": self.high_loss_share,
                  "high_loss_share_change": self.high_loss_share_change}
        for i, (name, lo, hi) in enumerate(EXTRA_ENTRIES[cfg.obs_mode]):
            v = values[name]
            v = v if math.isfinite(v) else hi  # a non-finite loss reads as the bound
            obs[cfg.num_stages + 2 + i] = float(np.clip(v, lo, hi))
        return obs
