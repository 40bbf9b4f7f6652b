"""One benchmark run: a method on a setting and seed, as one episode of the environment.

Every method — a weighting baseline, a fixed policy or a trained agent — plays one
:class:`~reweight_gym.envs.episode.Episode` built from the same config and seed, so data
corruption, splits, initial parameters, batch order and augmentation are identical across the
rows of a setting and seed, and the stage dynamics are the environment's. The reference of LAW's
duplicate-network reward (eqs. 8-9) is the stored ``uniform`` row of the same setting and seed
(a :class:`~reweight_gym.envs.episode.ReferenceTrace`): a reference network fed the same batches
is bit-identical to that run (tested against the environment), so it is trained once per seed
instead of once per method. Policies and agents see exactly the environment's observation and use
the run seed the environment derives from ``reset(seed)``.

The best epoch of a run is chosen on the clean *validation* split (evaluated after every epoch,
as the test split is for the curve) and the row reports the test accuracy at that epoch
(``test_acc_at_best_val``): the test set chooses nothing. Every row carries its
:func:`~reweight_gym.provenance.provenance`; :func:`trajectory` turns a row into a trajectory
file that ``reweight-gym replay`` re-runs (:mod:`reweight_gym.replay`).
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

from reweight_gym.benchmark.methods import Controller, PolicyController, make_controller
from reweight_gym.benchmark.suites import setting_id
from reweight_gym.config import EnvConfig
from reweight_gym.envs import ENV_IDS
from reweight_gym.envs.episode import Episode, ReferenceTrace
from reweight_gym.envs.observation import episode_seed
from reweight_gym.envs.record import TRAJECTORY_FORMAT, TRAJECTORY_VERSION
from reweight_gym.provenance import provenance, row_provenance
from reweight_gym.training.stats import StageStats, WeightTotals
from reweight_gym.training.trainer import DuplicateTrainer
from reweight_gym.training.weigher import LinearTanhWeigher, Weigher

REFERENCE_METHOD = "uniform"

#: The values of a row that a re-run must reproduce (everything but timing, memory, provenance
#: and the identity of the run): what ``reweight-gym replay`` / ``validate`` compare.
RESULT_KEYS = (
    "episode_seed", "final_test_acc", "best_val_epoch", "best_val_acc", "test_acc_at_best_val",
    "test_acc_curve", "val_acc_curve", "reference_final_test_acc", "stage_val_acc",
    "stage_train_loss", "stage_loss_gap", "stage_rewards", "cumulative_reward", "stage_actions",
    "stage_noisy_weight_mean", "stage_clean_weight_mean", "stage_class_weight_mean",
    "noisy_weight_mean", "clean_weight_mean", "class_weight_mean", "weight_auc",
    "weight_vs_loss", "realised_noise_rate", "diverged",
)
#: The reward values among them (compared with the reward tolerance).
REWARD_KEYS = ("stage_rewards", "cumulative_reward")


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
        """The resolved config of the run (preset, then overrides, setting and seed)."""
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


class ActionsController(Controller):
    """Replays recorded stage actions (θ and b as LAW's weigher used them, eq. 3) instead of
    asking the policy or agent again."""

    def __init__(self, actions: list[list[float]], cfg: EnvConfig) -> None:
        self.actions = [list(a) for a in actions]
        self.weigher = LinearTanhWeigher(cfg.features, normalize=cfg.normalize_weights)
        self._next = 0

    def weigher_for_stage(self, observation: np.ndarray) -> Weigher:
        if self._next >= len(self.actions):
            raise ValueError(f"invalid stage_actions: {len(self.actions)} recorded, but the run "
                             "has more weighted stages")
        a = self.actions[self._next]
        self._next += 1
        self.weigher.set_params(torch.as_tensor(a[:-1], dtype=torch.float32), float(a[-1]))
        return self.weigher


def execute(spec: RunSpec, reference: dict[str, Any] | None = None, progress: bool = False,
            tensorboard_dir: str | None = None, cfg: EnvConfig | None = None,
            actions: list[list[float]] | None = None) -> dict[str, Any]:
    """Run ``spec`` and return its result row (JSON-serialisable).

    ``reference`` is the stored row of the ``uniform`` run of the same setting and seed; it is
    required for every other method (its per-stage validation accuracies are the DNR reference).
    A re-run passes the recorded ``cfg`` (instead of resolving the spec with today's presets and
    defaults) and, for a policy or agent, its recorded ``actions``.
    """
    cfg = spec.config() if cfg is None else cfg
    dnr_reference: str | ReferenceTrace = "none"  # the uniform run is its own reference
    if spec.method != REFERENCE_METHOD:
        if reference is None:
            raise ValueError(f"run {spec.key} needs the uniform reference row of the same seed")
        dnr_reference = ReferenceTrace(reference["stage_val_acc"], reference["stage_train_loss"])
    curve: list[float] = []  # test accuracy after every epoch
    val_curve: list[float] = []  # validation accuracy after every epoch (chooses the best epoch)
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

    run_seed = episode_seed(spec.seed)
    episode = Episode(cfg, seed=run_seed, reference=dnr_reference, on_epoch_end=on_epoch_end)
    run = episode.trainer
    rss_start = _peak_rss_mb()
    controller: Controller = (make_controller(spec.method, cfg, run, spec.method_kwargs)
                              if actions is None else ActionsController(actions, cfg))
    t_start = time.perf_counter()  # data, model and method are built: time the training run
    stage_val, stage_loss, stage_rewards, stage_gap = [], [], [], []
    stage_noisy, stage_clean, stage_class = [], [], []
    totals = WeightTotals.zeros(run.splits.num_classes)
    diverged = False
    last_stats: StageStats | None = None
    for result in episode.play(controller.weigher_for_stage):
        if result.diverged:
            diverged = True
            stage_rewards.append(result.reward)
            break
        stats = result.stats
        stage_val.append(result.acc_target)
        stage_loss.append(stats.loss_target)
        stage_gap.append(result.loss_gap)
        stage_noisy.append(_f(stats.noisy_weight_mean))
        stage_clean.append(_f(stats.clean_weight_mean))
        stage_class.append([_f(v) for v in stats.class_weight_mean])
        if result.weighted:
            stage_rewards.append(result.reward)
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
    seconds = time.perf_counter() - t_start
    # the best epoch by validation accuracy (the first of equals): no test data chooses it
    best = int(np.argmax(val_curve)) if val_curve else 0
    losses, weights, _ = (last_stats.loss_weight_pairs() if last_stats is not None
                          else (np.zeros(0), np.zeros(0), None))
    counts = run.splits.class_counts
    minority = [int(k) for k in np.flatnonzero(counts == counts.min())]
    row: dict[str, Any] = {
        "key": spec.key, "spec": spec.to_dict(), "method": spec.method, "seed": spec.seed,
        "dataset": spec.dataset, "preset": spec.preset, "suite": spec.suite,
        "setting_id": spec.setting_id, "config": cfg.to_dict(),
        "episode_seed": run_seed,
        "final_test_acc": curve[-1] if curve else None,
        "best_val_epoch": best + 1 if val_curve else None,
        "best_val_acc": val_curve[best] if val_curve else None,
        "test_acc_at_best_val": curve[best] if curve else None,
        "test_acc_curve": curve, "val_acc_curve": val_curve,
        "reference_final_test_acc": (reference or {}).get("final_test_acc",
                                                          curve[-1] if curve else None),
        "stage_val_acc": stage_val, "stage_train_loss": stage_loss, "stage_loss_gap": stage_gap,
        "stage_rewards": stage_rewards, "cumulative_reward": float(sum(stage_rewards)),
        "stage_actions": (controller.actions if isinstance(controller, PolicyController)
                          else list(actions) if actions is not None else None),
        "stage_noisy_weight_mean": stage_noisy, "stage_clean_weight_mean": stage_clean,
        "stage_class_weight_mean": stage_class,
        "noisy_weight_mean": _f(totals.noisy_weight_mean),
        "clean_weight_mean": _f(totals.clean_weight_mean),
        "class_weight_mean": [_f(v) for v in totals.class_weight_mean],
        "class_counts": counts.tolist(), "minority_classes": minority,
        "weight_auc": _f(run.weight_auc()) if totals.weight_cnt_noisy else None,
        "weight_vs_loss": weight_curve(losses, weights),
        "realised_noise_rate": run.splits.realised_noise_rate,
        "diverged": diverged,
        "rules": controller.rules(),
        "seconds": seconds,
        "peak_rss_mb": _peak_rss_mb(),
        "peak_rss_start_mb": rss_start,
        "torch_threads": torch.get_num_threads(),
        "provenance": provenance(str(run.device)),
    }
    if reference is not None and reference.get("seconds"):
        row["time_overhead"] = seconds / reference["seconds"]
    if reference is not None and reference.get("peak_rss_mb"):
        row["memory_overhead"] = row["peak_rss_mb"] / reference["peak_rss_mb"]
    if spec.method == REFERENCE_METHOD:
        row["time_overhead"] = 1.0
        row["memory_overhead"] = 1.0
    return row


def trajectory(row: dict[str, Any], reference: dict[str, Any] | None) -> dict[str, Any]:
    """The trajectory file of a benchmark row (``kind: "benchmark"``, the format of
    :mod:`reweight_gym.envs.record`): the run's spec and resolved config, the DNR reference it
    was measured against (the ``uniform`` row's per-stage values; ``None`` for that row itself),
    the recorded stage actions of a policy or agent, the values a re-run must reproduce
    (:data:`RESULT_KEYS`) and the row's provenance."""
    dataset_ids = {d: i for i, d in ENV_IDS.items()}
    ref = None
    if row["method"] != REFERENCE_METHOD:
        if reference is None:
            raise ValueError(f"run {row['key']} needs the uniform reference row of the same seed")
        ref = {"stage_val_acc": reference["stage_val_acc"],
               "stage_train_loss": reference["stage_train_loss"],
               "final_test_acc": reference.get("final_test_acc")}
    return {
        "format": TRAJECTORY_FORMAT, "version": TRAJECTORY_VERSION, "kind": "benchmark",
        "env_id": dataset_ids.get(row["dataset"]), "key": row["key"], "spec": row["spec"],
        "config": row["config"], "reference": ref,
        "result": {k: row[k] for k in RESULT_KEYS if k in row},  # older rows lack some
        "complete": True, "provenance": row_provenance(row),
    }
