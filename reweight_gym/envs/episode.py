"""One LAW episode: the stage dynamics that the environment and the benchmark share.

An :class:`Episode` is one complete seeded training run cut into ``num_stages`` stages (LAW's
3SM). It owns the :class:`DuplicateTrainer` and the :class:`StageObserver`; :meth:`start` gives
the state before the first weighted stage (warm-up stages with uniform weights, or the untrained
nets on validation), and every :meth:`step` trains one stage with a weigher and returns what it
did: the stage's statistics, validation accuracies, the loss gap and LAW's reward (eqs. 8-9).
A fixed policy, a trained agent and a meta baseline differ only in the weigher they hand over.

The *reference* of the duplicate-network reward is one of

- ``"live"``: the trainer's reference network, identically initialised and fed the identical
  batches with uniform weights (the environment);
- a :class:`ReferenceTrace`: the per-stage validation accuracies and training losses of the
  unweighted run of the same config and seed, recorded earlier (the benchmark: its ``uniform``
  row). A reference network is bit-identical to that run, so the rewards are the same as with a
  live one (tested), and the reference is trained once per seed instead of once per method;
- ``"none"``: no reference; the target is its own, every reward is 0 (the unweighted run that
  becomes the trace).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from reweight_gym.config import EnvConfig
from reweight_gym.data.splits import DataSplits
from reweight_gym.envs.observation import StageObserver
from reweight_gym.training.stats import StageStats
from reweight_gym.training.trainer import DuplicateTrainer
from reweight_gym.training.weigher import UniformWeigher, Weigher
from reweight_gym.validation import check_choice

REFERENCE_MODES = ("live", "none")


def stage_reward(acc_target: float, acc_reference: float, epoch: float, total_epochs: float,
                 k: float, s: float) -> float:
    """LAW's duplicate-network reward r = r_w (acc_target - acc_reference) (eq. 8) with the
    stage weight r_w = exp(k * ce / ne) * s (eq. 9), ce / ne = current / total epochs."""
    r_w = math.exp(k * epoch / total_epochs) * s
    return r_w * (acc_target - acc_reference)


@dataclass(frozen=True)
class ReferenceTrace:
    """A recorded unweighted run: validation accuracy and mean training loss after each stage,
    and its final test accuracy where it was recorded."""

    val_acc: Sequence[float]
    train_loss: Sequence[float]
    test_acc: float | None = None


@dataclass
class StageResult:
    """What one stage did. ``acc_*`` are validation accuracies at its end; on divergence the
    target's is 0.0 (all accuracy lost) and the reference's the last one measured. ``reward``
    is LAW's eqs. 8-9, or the config's divergence penalty; warm-up stages (``weighted`` false)
    are not part of the return."""

    stage: int
    weighted: bool
    stats: StageStats
    epoch: float  # epochs done at the stage's end (ce of eq. 9)
    acc_target: float
    acc_reference: float
    loss_gap: float  # target - reference mean training loss over the stage
    reward: float
    loss_reference: float = math.nan  # the reference's mean training loss over the stage

    @property
    def diverged(self) -> bool:
        return self.stats.diverged


class Episode:
    """One seeded training run, stage by stage, with LAW's state and reward.

    ``seed`` fixes initial parameters, batch order and augmentation (``cfg.seed`` the data);
    ``reference`` is ``"live"``, ``"none"`` or a :class:`ReferenceTrace` (module docstring);
    ``on_epoch_end(trainer)`` is called after every epoch (e.g. a test-accuracy curve).
    """

    def __init__(self, cfg: EnvConfig, splits: DataSplits | None = None, seed: int | None = None,
                 reference: str | ReferenceTrace = "live",
                 on_epoch_end: Callable[[DuplicateTrainer], None] | None = None) -> None:
        if not isinstance(reference, ReferenceTrace):
            check_choice("reference", reference, REFERENCE_MODES)
        self.cfg = cfg
        self.reference = reference
        self.trainer = DuplicateTrainer(cfg, splits, seed=seed,
                                        with_reference=reference == "live")
        self.observer = StageObserver(cfg)
        self.on_epoch_end = on_epoch_end
        self.diverged = False

    @property
    def over(self) -> bool:
        """Every stage trained, or the target diverged: both are terminal states (a diverged
        training run has no future to bootstrap a value from), so the environment reports them
        as ``terminated`` and never as ``truncated``."""
        return self.diverged or self.trainer.done

    def observe(self) -> np.ndarray:
        """LAW's state s_T (eq. 5) before the next stage."""
        return self.observer.observe(self.trainer)

    def start(self) -> list[StageResult]:
        """Bring the run to its first weighted stage: ``warmup_stages`` stages with uniform
        weights (stopping at a divergence), or without warm-up the untrained nets' loss and
        accuracy on the validation split as the first state. Returns the warm-up stages."""
        if self.cfg.warmup_stages == 0:
            ev = self.trainer.evaluate("val")  # an untrained reference is the target's copy
            high = (self.trainer.high_loss_share("val") if self.cfg.obs_mode == "transfer"
                    else 1.0)
            self.observer.start(ev["acc_target"], ev.get("acc_reference", ev["acc_target"]),
                                ev["loss_target"], high)
            return []
        uniform = UniformWeigher()
        results: list[StageResult] = []
        for _ in range(self.cfg.warmup_stages):
            results.append(self._train_stage(uniform, weighted=False))
            if self.diverged:
                break
        return results

    def step(self, weigher: Weigher) -> StageResult:
        """Train the next stage with ``weigher`` and return what it did."""
        if self.trainer.done:
            raise RuntimeError("the episode is over: every stage has been trained")
        return self._train_stage(weigher, weighted=True)

    def play(self, choose: Callable[[np.ndarray], Weigher]) -> Iterator[StageResult]:
        """The whole episode: the warm-up stages, then one :meth:`step` per stage with the
        weigher ``choose(observation)`` returns, until the run ends or diverges."""
        yield from self.start()
        while not self.over:
            yield self.step(choose(self.observe()))

    def finish(self) -> dict[str, float]:
        """At the end: test accuracy of the target (and of a live reference), and the ROC AUC of
        the samples' last weights for telling clean from noisy."""
        test = self.trainer.evaluate("test")
        out = {"test_acc_target": test["acc_target"]}
        if "acc_reference" in test:
            out["test_acc_reference"] = test["acc_reference"]
        elif isinstance(self.reference, ReferenceTrace) and self.reference.test_acc is not None:
            out["test_acc_reference"] = self.reference.test_acc
        out["weight_auc"] = self.trainer.weight_auc()
        return out

    def _reference_values(self, stage: int, stats: StageStats,
                          ev: dict[str, float]) -> tuple[float, float]:
        """(validation accuracy, mean training loss) of the reference for ``stage``."""
        if isinstance(self.reference, ReferenceTrace):
            return self.reference.val_acc[stage], self.reference.train_loss[stage]
        if self.reference == "live":
            return ev["acc_reference"], stats.loss_reference
        return ev["acc_target"], stats.loss_target

    def _train_stage(self, weigher: Weigher, weighted: bool) -> StageResult:
        cfg, run = self.cfg, self.trainer
        stage = run.stage
        stats = run.train_stage(weigher, self.on_epoch_end)
        epoch = run.iteration / run.iters_per_epoch
        self.observer.record_losses(stats.batch_losses)
        if stats.diverged:  # no validation: the target's accuracy counts as lost
            self.diverged = True
            live = self.reference == "live"
            gap = stats.loss_target - stats.loss_reference if live else math.nan
            return StageResult(stage, weighted, stats, epoch, 0.0, self.observer.acc_reference,
                               gap, cfg.penalty, stats.loss_reference if live else math.nan)
        ev = run.evaluate("val")
        acc_ref, ref_loss = self._reference_values(stage, stats, ev)
        gap = stats.loss_target - ref_loss
        self.observer.update(ev["acc_target"], acc_ref, gap)
        self.observer.update_fit(stats.train_acc_target, ev["loss_target"], stats.high_loss_share)
        reward = stage_reward(ev["acc_target"], acc_ref, epoch, cfg.epochs, cfg.reward_k,
                              cfg.reward_scale)
        return StageResult(stage, weighted, stats, epoch, ev["acc_target"], acc_ref, gap, reward,
                           ref_loss)
