"""The one run function: a method on a config and seed, as one episode of the environment.

Every method (a weighting baseline, a fixed policy or a trained agent) plays one
:class:`~reweight_gym.envs.episode.Episode` built from the spec's config, with the episode seed
that ``env.reset(seed=spec.seed)`` derives (:func:`~reweight_gym.envs.observation.episode_seed`).
So data corruption, splits, initial parameters, batch order and augmentation are identical
across the methods of a config and seed, and identical to the environment's episode of that
seed; the stage dynamics are the environment's.

The *reference* of LAW's duplicate-network reward (eqs. 8-9) is the result of the ``uniform``
run of the same config and seed (a :class:`~reweight_gym.envs.episode.ReferenceTrace`): a
reference network fed the same batches is bit-identical to that run (tested against the
environment), so it is trained once per seed instead of once per method. Without a reference
(``reweight_gym.baselines.run``) the run has no rewards.

The best epoch is chosen on the clean *validation* split (evaluated after every epoch, as the
test split is for the curve); the result reports the test accuracy at that epoch: the test set
chooses nothing.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from reweight_gym.config import EnvConfig
from reweight_gym.envs.episode import Episode, ReferenceTrace
from reweight_gym.envs.observation import episode_seed
from reweight_gym.provenance import provenance
from reweight_gym.runner.controllers import ActionsController, Controller, make_controller
from reweight_gym.runner.result import REFERENCE_METHOD, RunResult, RunSpec, finite
from reweight_gym.training.stats import StageStats, WeightTotals
from reweight_gym.training.trainer import DuplicateTrainer


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MiB (ru_maxrss is KiB on Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def weight_curve(losses: np.ndarray, weights: np.ndarray, bins: int = 12) -> dict[str, list]:
    """Mean weight per loss-quantile bin (the learned weight as a function of loss)."""
    if len(losses) == 0:
        return {"loss": [], "weight": []}
    edges = np.unique(np.quantile(losses, np.linspace(0, 1, bins + 1)))
    idx = np.clip(np.searchsorted(edges, losses, side="right") - 1, 0, len(edges) - 2)
    xs, ys = [], []
    for b in range(len(edges) - 1):
        m = idx == b
        if m.any():
            xs.append(float(losses[m].mean()))
            ys.append(float(weights[m].mean()))
    return {"loss": xs, "weight": ys}


@dataclass(frozen=True)
class EpochEnd:
    """What ``run``'s ``on_epoch`` sees after each epoch: the epoch (from 1), the validation and
    test accuracies, the trainer and the controller (its weigher)."""

    epoch: int
    val_acc: float
    test_acc: float
    trainer: DuplicateTrainer
    controller: Controller


def _reference(spec: RunSpec, reference: RunResult | dict[str, Any] | None
               ) -> RunResult | None:
    """The reference as a result: a stored row, or the per-stage values a trajectory records
    (``stage_val_acc``, ``stage_train_loss``, ``final_test_acc``)."""
    if reference is None or isinstance(reference, RunResult):
        return reference
    if "spec" in reference:
        return RunResult.from_row(reference)
    return RunResult(spec=spec, config={}, episode_seed=episode_seed(spec.seed),
                     stage_val_acc=list(reference["stage_val_acc"]),
                     stage_train_loss=list(reference["stage_train_loss"]),
                     final_test_acc=reference.get("final_test_acc"))


def run(spec: RunSpec, reference: RunResult | dict[str, Any] | None = None, *,
        progress: bool = False, tensorboard_dir: str | None = None,
        cfg: EnvConfig | None = None, actions: list[list[float]] | None = None,
        on_epoch: Callable[[EpochEnd], None] | None = None,
        model_path: str | os.PathLike[str] | None = None) -> RunResult:
    """Train ``spec`` once and return its :class:`RunResult`.

    ``reference`` is the ``uniform`` run of the same config and seed (a result, or its stored
    row with the per-stage ``stage_val_acc`` / ``stage_train_loss``): the DNR reference of the
    stage rewards. Without it a method other than ``uniform`` gets no rewards. A re-run passes
    the recorded ``cfg`` (instead of resolving the spec with today's presets and defaults) and,
    for a policy or agent, its recorded ``actions``. ``on_epoch(EpochEnd(...))`` is called after
    every epoch (for measurements of the trainer or the weigher); ``progress`` shows a bar per
    epoch, ``tensorboard_dir`` writes TensorBoard scalars there.
    """
    cfg = spec.config() if cfg is None else cfg
    ref = _reference(spec, reference)
    if spec.method == REFERENCE_METHOD or ref is None:
        dnr: str | ReferenceTrace = "none"  # no other reference: rewards 0 (uniform) or none
    else:
        dnr = ReferenceTrace(ref.stage_val_acc, ref.stage_train_loss)
    has_rewards = spec.method == REFERENCE_METHOD or ref is not None
    curve: list[float] = []  # test accuracy after every epoch
    val_curve: list[float] = []  # validation accuracy after every epoch (chooses the best)
    writer = None
    if tensorboard_dir:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(os.path.join(tensorboard_dir, spec.key.replace("|", "_")))
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=cfg.epochs, desc=f"{spec.method} s{spec.seed}", unit="epoch",
                   leave=False, position=1)

    def on_epoch_end(r: DuplicateTrainer) -> None:
        val_curve.append(r.evaluate("val")["acc_target"])
        acc = r.evaluate("test")["acc_target"]
        curve.append(acc)
        if writer is not None:
            writer.add_scalar("test_acc", acc, len(curve))
        if bar is not None:
            bar.update(1)
            bar.set_postfix(test_acc=f"{acc:.3f}")
        if on_epoch is not None:
            on_epoch(EpochEnd(len(curve), val_curve[-1], acc, r, controller))

    run_seed = episode_seed(spec.seed)
    episode = Episode(cfg, seed=run_seed, reference=dnr, on_epoch_end=on_epoch_end)
    trainer = episode.trainer
    num_classes = trainer.splits.num_classes
    rss_start = peak_rss_mb()
    controller: Controller = (
        make_controller(spec.method, cfg, num_classes, trainer.seed, spec.method_kwargs)
        if actions is None else ActionsController(actions, cfg))
    t_start = time.perf_counter()  # data, model and method are built: time the training run
    res = RunResult(spec=spec, config=cfg.to_dict(), episode_seed=run_seed)
    rewards: list[float] = []
    totals = WeightTotals.zeros(num_classes)
    last_stats: StageStats | None = None
    for result in episode.play(controller.weigher_for_stage):
        if result.diverged:
            res.diverged = True
            rewards.append(result.reward)
            break
        stats = result.stats
        res.stage_val_acc.append(result.acc_target)
        res.stage_train_loss.append(stats.loss_target)
        res.stage_loss_gap.append(result.loss_gap)
        res.stage_noisy_weight_mean.append(finite(stats.noisy_weight_mean))
        res.stage_clean_weight_mean.append(finite(stats.clean_weight_mean))
        res.stage_class_weight_mean.append([finite(v) for v in stats.class_weight_mean])
        if result.weighted:  # the method's weights (warm-up stages train with weights 1)
            rewards.append(result.reward)
            totals.add(stats)
            last_stats = stats
            if writer is not None:
                writer.add_scalar("stage_reward", result.reward, result.stage)
        if writer is not None:
            writer.add_scalar("val_acc", result.acc_target, result.stage)
            writer.add_scalar("loss_gap", result.loss_gap, result.stage)
    if bar is not None:
        bar.close()
    if writer is not None:
        writer.close()
    res.seconds = time.perf_counter() - t_start
    if model_path is not None:
        torch.save(trainer.target.model.state_dict(), model_path)
    # the best epoch by validation accuracy (the first of equals): no test data chooses it
    if val_curve:
        best = int(np.argmax(val_curve))
        res.best_val_epoch, res.best_val_acc = best + 1, val_curve[best]
        res.test_acc_at_best_val = curve[best]
        res.final_test_acc, res.oracle_best_test_acc = curve[-1], max(curve)
    res.test_acc_curve, res.val_acc_curve = curve, val_curve
    if has_rewards:
        res.stage_rewards, res.cumulative_reward = rewards, float(sum(rewards))
    res.reference_final_test_acc = (ref.final_test_acc if ref is not None
                                    else res.final_test_acc if spec.method == REFERENCE_METHOD
                                    else None)
    res.stage_actions = controller.actions if actions is None else [list(a) for a in actions]
    losses, weights, _ = (last_stats.loss_weight_pairs() if last_stats is not None
                          else (np.zeros(0), np.zeros(0), None))
    res.noisy_weight_mean = finite(totals.noisy_weight_mean)
    res.clean_weight_mean = finite(totals.clean_weight_mean)
    res.class_weight_mean = [finite(v) for v in totals.class_weight_mean]
    res.zero_weight_share = float((trainer.last_weight == 0).float().mean())
    counts = trainer.splits.class_counts
    res.class_counts = counts.tolist()
    res.minority_classes = [int(k) for k in np.flatnonzero(counts == counts.min())]
    res.weight_auc = finite(trainer.weight_auc()) if totals.weight_cnt_noisy else None
    res.weight_vs_loss = weight_curve(losses, weights)
    res.realised_noise_rate = trainer.splits.realised_noise_rate
    res.rules = controller.rules()
    res.iterations = trainer.iteration
    res.peak_rss_mb, res.peak_rss_start_mb = peak_rss_mb(), rss_start
    res.torch_threads = torch.get_num_threads()
    res.provenance = provenance(str(trainer.device))
    if spec.method == REFERENCE_METHOD:
        res.time_overhead = res.memory_overhead = 1.0
    elif ref is not None:
        if ref.seconds:
            res.time_overhead = res.seconds / ref.seconds
        if ref.peak_rss_mb:
            res.memory_overhead = res.peak_rss_mb / ref.peak_rss_mb
    return res
