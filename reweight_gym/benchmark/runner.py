"""One benchmark run: a method on a setting and seed, through the one training substrate.

Every method — a weighting baseline, a fixed policy or a trained agent — trains the target
network of a :class:`DuplicateTrainer` built from the same config and seed, so data corruption,
splits, initial parameters, batch order and augmentation are identical across the rows of a
setting and seed. The unweighted *reference* network of LAW's duplicate-network reward is the
``uniform`` run of the same setting and seed: a reference network fed the same batches with
uniform weights is bit-identical to it (tested against the env), so it is trained once per seed
instead of once per method, and each method's per-stage reward (LAW eqs. 8-9) is computed against
its stored per-stage validation accuracies. Policies and agents see exactly the env's observation
(the shared :class:`StageObserver`) and use the run seed the env derives from ``reset(seed)``.
"""

from __future__ import annotations

import math
import os
import resource
import time
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch

from reweight_gym.benchmark.methods import Controller, make_controller
from reweight_gym.benchmark.suites import setting_id
from reweight_gym.config import EnvConfig
from reweight_gym.envs.observation import StageObserver, episode_seed
from reweight_gym.envs.reweight_env import stage_reward
from reweight_gym.training.trainer import DuplicateTrainer, StageStats
from reweight_gym.training.weigher import UniformWeigher

REFERENCE_METHOD = "uniform"


@dataclass(frozen=True)
class RunSpec:
    """What to run. ``env_overrides`` are extra environment keywords (sizes, epochs, ...)."""

    dataset: str
    suite: str
    setting: dict[str, Any]
    method: str
    seed: int
    preset: str
    data_root: str | None = None
    env_overrides: dict[str, Any] = field(default_factory=dict)
    method_kwargs: dict[str, Any] = field(default_factory=dict)

    @property
    def setting_id(self) -> str:
        return setting_id(self.setting)

    @property
    def key(self) -> str:
        """Identity of a run in the results store."""
        return "|".join([self.dataset, self.preset, self.suite, self.setting_id, self.method,
                         str(self.seed)])

    @property
    def reference_key(self) -> str:
        return "|".join([self.dataset, self.preset, self.suite, self.setting_id,
                         REFERENCE_METHOD, str(self.seed)])

    def config(self) -> EnvConfig:
        kw: dict[str, Any] = {**self.env_overrides, **self.setting, "seed": self.seed}
        if self.data_root is not None:
            kw["data_root"] = self.data_root
        return EnvConfig.resolve(self.dataset, self.preset, **kw)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _f(x: float | None) -> float | None:
    return None if x is None or not math.isfinite(float(x)) else float(x)


def _peak_rss_mb() -> float:
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


class _Totals:
    def __init__(self, c: int) -> None:
        self.noisy = [0.0, 0]
        self.clean = [0.0, 0]
        self.cls_sum = np.zeros(c)
        self.cls_cnt = np.zeros(c)

    def add(self, s: StageStats) -> None:
        self.noisy[0] += s.weight_sum_noisy
        self.noisy[1] += s.weight_cnt_noisy
        self.clean[0] += s.weight_sum_clean
        self.clean[1] += s.weight_cnt_clean
        self.cls_sum += s.class_weight_sum
        self.cls_cnt += s.class_weight_cnt

    def mean(self, pair: list) -> float | None:
        return pair[0] / pair[1] if pair[1] else None


def execute(spec: RunSpec, reference: dict[str, Any] | None = None, progress: bool = False,
            tensorboard_dir: str | None = None) -> dict[str, Any]:
    """Run ``spec`` and return its result row (JSON-serialisable).

    ``reference`` is the stored row of the ``uniform`` run of the same setting and seed; it is
    required for every other method (its per-stage validation accuracies are the DNR reference).
    """
    cfg = spec.config()
    is_reference = spec.method == REFERENCE_METHOD
    if not is_reference and reference is None:
        raise ValueError(f"run {spec.key} needs the uniform reference row of the same seed")
    run = DuplicateTrainer(cfg, seed=episode_seed(spec.seed), with_reference=False)
    rss_start = _peak_rss_mb()
    controller: Controller = make_controller(spec.method, cfg, run, spec.method_kwargs)
    t_start = time.perf_counter()  # data, model and method are built: time the training run
    observer = StageObserver(cfg)
    c = run.splits.num_classes
    curve: list[float] = []
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
        acc = r.evaluate("test")["acc_target"]
        curve.append(acc)
        if writer is not None:
            writer.add_scalar("test_acc", acc, len(curve))
        if bar is not None:
            bar.update(1)
            bar.set_postfix(test_acc=f"{acc:.3f}")

    ref_val = reference["stage_val_acc"] if reference else None
    ref_loss = reference["stage_train_loss"] if reference else None
    stage_val, stage_loss, stage_rewards, stage_gap = [], [], [], []
    stage_noisy, stage_clean, stage_class = [], [], []
    totals = _Totals(c)
    diverged = False
    last_stats: StageStats | None = None
    if cfg.warmup_stages == 0:  # the env's initial observation: untrained nets on validation
        ev = run.evaluate("val")
        observer.update(ev["acc_target"], ev["acc_target"], 0.0)
        run.smoothed_loss = ev["loss_target"]
    uniform = UniformWeigher()
    for stage in range(cfg.num_stages):
        weighted = stage >= cfg.warmup_stages
        weigher = controller.weigher_for_stage(observer.observe(run)) if weighted else uniform
        stats = run.train_stage(weigher, on_epoch_end=on_epoch_end)
        if stats.diverged:
            diverged = True
            stage_rewards.append(cfg.penalty)
            break
        ev = run.evaluate("val")
        acc = ev["acc_target"]
        acc_ref = ref_val[stage] if ref_val is not None else acc
        gap = stats.loss_target - (ref_loss[stage] if ref_loss is not None else stats.loss_target)
        observer.update(acc, acc_ref, gap)
        stage_val.append(acc)
        stage_loss.append(stats.loss_target)
        stage_gap.append(gap)
        stage_noisy.append(_f(stats.noisy_weight_mean))
        stage_clean.append(_f(stats.clean_weight_mean))
        stage_class.append([_f(v) for v in stats.class_weight_mean])
        if weighted:
            r = 0.0 if is_reference else stage_reward(
                acc, acc_ref, run.iteration / run.iters_per_epoch, cfg.epochs, cfg.reward_k,
                cfg.reward_scale)
            stage_rewards.append(r)
            totals.add(stats)
            last_stats = stats
            if writer is not None:
                writer.add_scalar("stage_reward", r, stage)
        if writer is not None:
            writer.add_scalar("val_acc", acc, stage)
            writer.add_scalar("loss_gap", gap, stage)
    if bar is not None:
        bar.close()
    if writer is not None:
        writer.close()
    seconds = time.perf_counter() - t_start
    best = int(np.argmax(curve)) if curve else 0
    losses, weights, _ = (last_stats.loss_weight_pairs() if last_stats is not None
                          else (np.zeros(0), np.zeros(0), None))
    counts = run.splits.class_counts
    minority = [int(k) for k in np.flatnonzero(counts == counts.min())]
    row: dict[str, Any] = {
        "key": spec.key, "spec": spec.to_dict(), "method": spec.method, "seed": spec.seed,
        "dataset": spec.dataset, "preset": spec.preset, "suite": spec.suite,
        "setting_id": spec.setting_id, "config": cfg.to_dict(),
        "final_test_acc": curve[-1] if curve else None,
        "best_test_acc": curve[best] if curve else None,
        "best_epoch": best + 1 if curve else None,
        "test_acc_curve": curve,
        "reference_final_test_acc": (reference or {}).get("final_test_acc",
                                                          curve[-1] if curve else None),
        "stage_val_acc": stage_val, "stage_train_loss": stage_loss, "stage_loss_gap": stage_gap,
        "stage_rewards": stage_rewards, "cumulative_reward": float(sum(stage_rewards)),
        "stage_noisy_weight_mean": stage_noisy, "stage_clean_weight_mean": stage_clean,
        "stage_class_weight_mean": stage_class,
        "noisy_weight_mean": _f(totals.mean(totals.noisy)),
        "clean_weight_mean": _f(totals.mean(totals.clean)),
        "class_weight_mean": [_f(s / n) if n else None
                              for s, n in zip(totals.cls_sum, totals.cls_cnt)],
        "class_counts": counts.tolist(), "minority_classes": minority,
        "weight_auc": _f(run.weight_auc()) if totals.noisy[1] else None,
        "weight_vs_loss": weight_curve(losses, weights),
        "realised_noise_rate": run.splits.realised_noise_rate,
        "diverged": diverged,
        "rules": controller.rules(),
        "seconds": seconds,
        "peak_rss_mb": _peak_rss_mb(),
        "peak_rss_start_mb": rss_start,
        "torch_threads": torch.get_num_threads(),
    }
    if reference is not None and reference.get("seconds"):
        row["time_overhead"] = seconds / reference["seconds"]
    if reference is not None and reference.get("peak_rss_mb"):
        row["memory_overhead"] = row["peak_rss_mb"] / reference["peak_rss_mb"]
    if is_reference:
        row["time_overhead"] = 1.0
        row["memory_overhead"] = 1.0
    return row
