"""``run``: one seeded training run of one weighting method, epoch by epoch.

The run is a ``DuplicateTrainer`` without the reference network: same data, corruption,
splits, initialisation, batch order and augmentation as every other method with the same config
and seed. Test and validation accuracy are recorded after every epoch; the best epoch is
chosen on the validation split.
"""

from __future__ import annotations

import math
import time
from typing import Any

import numpy as np

from reweight_gym.baselines import make_weigher
from reweight_gym.config import EnvConfig
from reweight_gym.training.stats import WeightTotals
from reweight_gym.training.trainer import DuplicateTrainer


def _safe(x: float) -> float | None:
    return None if x is None or not math.isfinite(x) else float(x)


def test_acc_at_best_epoch(row: dict[str, Any]) -> float:
    """A :func:`run` row's test accuracy at its best epoch: chosen on validation
    (``test_acc_at_best_val``); rows written before that carry only the test-chosen (oracle)
    ``best_test_acc``."""
    return float(row.get("test_acc_at_best_val", row.get("best_test_acc")))


def run(method: str, seed: int = 0, method_kwargs: dict[str, Any] | None = None,
        progress: bool = False, dataset: str = "digits", preset: str = "tiny",
        **env_kwargs: Any) -> dict[str, Any]:
    """Train ``method`` on ``EnvConfig.resolve(dataset, preset, **env_kwargs)`` with ``seed``.

    Returns a dict with ``method``, ``seed``, ``config``, ``method_kwargs``,
    ``final_test_acc``, ``best_val_epoch`` (the epoch of the best accuracy on the clean
    validation split), ``best_val_acc``, ``test_acc_at_best_val`` (test accuracy at that epoch),
    ``oracle_best_test_acc`` (the best epoch chosen *on the test set*: an oracle, for diagnosing
    memorisation only), ``test_acc_curve`` and ``val_acc_curve`` (one value per epoch),
    ``noisy_weight_mean`` / ``clean_weight_mean`` / ``class_weight_mean`` (mean weight
    of the samples over all iterations of the run), the same over the last epoch
    (``last_epoch_*``), ``weight_auc`` (ROC AUC of each training sample's last weight for
    telling clean from noisy; ``None`` without noise), ``realised_noise_rate``, ``diverged``,
    ``zero_weight_share`` (share of training samples whose last weight is zero),
    ``seconds`` (wall time of the run) and ``train_seconds`` (without evaluation).
    """
    cfg = EnvConfig.resolve(dataset, preset, **env_kwargs)
    kwargs = dict(method_kwargs or {})
    weigher = make_weigher(method, cfg, **kwargs)
    t_start = time.perf_counter()
    trainer = DuplicateTrainer(cfg, seed=seed, with_reference=False, weigher=weigher)
    total = WeightTotals.zeros(trainer.splits.num_classes)  # over the run; ``last``: an epoch
    curve: list[float] = []
    val_curve: list[float] = []  # chooses the best epoch: the test set chooses nothing
    train_seconds = 0.0
    diverged = False
    for epoch in range(cfg.epochs):
        t0 = time.perf_counter()
        last = trainer.train_iterations(trainer.iters_per_epoch)
        train_seconds += time.perf_counter() - t0
        total.add(last)
        acc = trainer.evaluate("test")["acc_target"]
        curve.append(acc)
        val_curve.append(trainer.evaluate("val")["acc_target"])
        if progress:
            print(f"[{method} seed {seed}] epoch {epoch + 1}/{cfg.epochs} test acc {acc:.4f} "
                  f"({time.perf_counter() - t_start:.0f}s)", flush=True)
        if last.diverged:
            diverged = True
            break
    best = int(np.argmax(val_curve))  # the first of equals
    return {
        "method": method,
        "seed": int(seed),
        "method_kwargs": kwargs,
        "config": cfg.to_dict(),
        "final_test_acc": curve[-1],
        "best_val_epoch": best + 1,
        "best_val_acc": val_curve[best],
        "test_acc_at_best_val": curve[best],
        "oracle_best_test_acc": max(curve),
        "test_acc_curve": curve,
        "val_acc_curve": val_curve,
        "noisy_weight_mean": _safe(total.noisy_weight_mean),
        "clean_weight_mean": _safe(total.clean_weight_mean),
        "class_weight_mean": [_safe(v) for v in total.class_weight_mean],
        "last_epoch_noisy_weight_mean": _safe(last.noisy_weight_mean),
        "last_epoch_clean_weight_mean": _safe(last.clean_weight_mean),
        "last_epoch_class_weight_mean": [_safe(v) for v in last.class_weight_mean],
        "weight_auc": _safe(trainer.weight_auc()),
        "zero_weight_share": float((trainer.last_weight == 0).float().mean()),
        "realised_noise_rate": trainer.splits.realised_noise_rate,
        "diverged": diverged,
        "iterations": total.iterations,
        "seconds": time.perf_counter() - t_start,
        "train_seconds": train_seconds,
    }
