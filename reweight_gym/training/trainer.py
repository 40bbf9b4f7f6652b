"""The one training loop: :class:`Trainer` (one network) and :class:`DuplicateTrainer`.

``Trainer`` owns a network, its SGD optimiser, the LR schedule, the weighted step and
evaluation. ``DuplicateTrainer`` holds the whole run: data splits on the device, the seeded
batch order and augmentation, and a *target* trainer driven by a weigher plus (LAW's DNR) a
*reference* trainer with identical architecture, identical copied initial parameters, fed the
identical augmented batch every iteration with uniform weights. Single-network runs (the
baselines) use the same class with ``with_reference=False``: same data, init and batches.
LAW's stages, state and reward on top of a run are :mod:`reweight_gym.envs.episode`'s.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from reweight_gym.config import EnvConfig
from reweight_gym.data.splits import DataSplits, build_splits
from reweight_gym.models import SeededDropout, build_model, dropout_seed
from reweight_gym.training.characteristics import SampleHistory
from reweight_gym.training.pipeline import BatchPipeline, EpochSampler, MetaSampler
from reweight_gym.training.schedule import learning_rate
from reweight_gym.training.stats import StageStats, roc_auc
from reweight_gym.training.weigher import (
    Batch,
    TrainView,
    UniformWeigher,
    WeighContext,
    Weigher,
    Weighting,
)


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def request_determinism(device: torch.device) -> None:
    """On CUDA, ask cuDNN for deterministic kernels and no autotuning (process-wide flags).

    LAW's reward (eqs. 8-9) compares a target with a reference network fed identical batches:
    with uniform weights the two must stay bit-identical, so the reward is exactly 0. cuDNN's
    default convolution backward kernels accumulate with atomics (run-to-run different sums) and
    its autotuner may pick different algorithms for the two networks; both break the identity.
    On the CPU the kernels are deterministic already and nothing is changed.
    """
    if device.type == "cuda":
        torch.backends.cudnn.deterministic = True
        torch.backends.cudnn.benchmark = False


@dataclass
class StepResult:
    """Outcome of one training step of one network."""

    loss: float  # mean unweighted cross-entropy of the batch
    weights: torch.Tensor  # per-sample weights (B,) used (for class-level: the observed column)
    losses: torch.Tensor  # per-sample unweighted losses (detached)
    finite: bool
    correct: torch.Tensor | int = 0  # samples predicted as their (observed) label (no sync)


class Trainer:
    """One network with SGD (momentum, weight decay, optional Nesterov) and a per-iteration LR.

    The weighted step: per-sample weights w (B,) give the loss (1/B) sum_i w_i l_i; class-level
    weights W (B, C) give a surrogate whose logit gradient is (1/B) W * (p - y) (GDW eq. 2).
    """

    def __init__(self, model: nn.Module, lr: float, momentum: float = 0.9,
                 weight_decay: float = 5e-4, nesterov: bool = False) -> None:
        self.model = model
        self.base_lr = lr
        self.optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum,
                                         weight_decay=weight_decay, nesterov=nesterov)

    def set_lr(self, lr: float) -> None:
        for g in self.optimizer.param_groups:
            g["lr"] = lr

    def step(self, batch: Batch, weigher: Weigher | None, ctx: WeighContext | None) -> StepResult:
        """Forward, weigh, weighted loss, backward, SGD step (skipped if the loss is not finite)."""
        model = self.model
        model.train()
        logits = model(batch.x)
        losses = F.cross_entropy(logits, batch.y, reduction="none")
        extra = None
        if weigher is None:
            weights = torch.ones_like(losses)
        else:
            assert ctx is not None
            out = weigher.weigh(model, batch, logits, losses, ctx)
            if isinstance(out, Weighting):
                weights, extra = out.weights, out.extra_loss
            else:
                weights = out
            weights = weights.detach()
        b = losses.shape[0]
        if weights.dim() == 1:
            loss = (weights * losses).sum() / b
            per_sample_w = weights
        else:  # class-level weights: gradient w.r.t. logits is W * (p - y) / B
            with torch.no_grad():
                grad = (F.softmax(logits, 1) - F.one_hot(batch.y, logits.shape[1])) * weights
            loss = (grad * logits).sum() / b
            per_sample_w = weights.gather(1, batch.y[:, None]).squeeze(1)
        if extra is not None:
            loss = loss + extra
        mean_loss = float(losses.detach().mean())
        correct = (logits.detach().argmax(1) == batch.y).sum()  # a tensor: no device sync
        finite = math.isfinite(float(loss.detach())) and math.isfinite(mean_loss)
        self.optimizer.zero_grad(set_to_none=True)
        if finite:
            loss.backward()
            self.optimizer.step()
        return StepResult(mean_loss, per_sample_w, losses.detach(), finite, correct)

    @torch.inference_mode()
    def evaluate(self, x: torch.Tensor, y: torch.Tensor, pipeline: BatchPipeline,
                 batch_size: int = 1000) -> tuple[float, float]:
        """(accuracy, mean cross-entropy) on uint8 images ``x`` in eval mode."""
        self.model.eval()
        correct, total_loss = 0, 0.0
        y = y.to(pipeline.device)
        for i in range(0, len(y), batch_size):
            logits = self.model(pipeline.plain(x[i: i + batch_size]))
            yb = y[i: i + batch_size]
            correct += int((logits.argmax(1) == yb).sum())
            total_loss += float(F.cross_entropy(logits.float(), yb, reduction="sum"))
        n = max(1, len(y))
        return correct / n, total_loss / n


class DuplicateTrainer:
    """A complete seeded training run of a target network (and, optionally, LAW's reference).

    The run is fixed by ``cfg`` (data, corruption and splits by ``cfg.seed``) and by ``seed``
    (initial parameters, batch order, augmentation, weigher randomness, dropout masks). The
    reference network is a ``deepcopy`` of the target at initialisation (copied, not re-seeded)
    and is fed the same augmented tensor at every iteration with uniform weights; with dropout
    both draw the iteration's masks from the same seed (``reweight_gym.models.SeededDropout``).
    On CUDA, cuDNN is asked for deterministic kernels (:func:`request_determinism`).
    """

    def __init__(self, cfg: EnvConfig, splits: DataSplits | None = None, seed: int | None = None,
                 with_reference: bool = True, weigher: Weigher | None = None) -> None:
        self.cfg = cfg
        self.splits = splits if splits is not None else build_splits(cfg)
        self.seed = cfg.seed if seed is None else int(seed)
        self.device = resolve_device(cfg.device)
        request_determinism(self.device)
        s = self.splits
        dev = self.device
        self.pipeline = BatchPipeline(s.mean, s.std, cfg.crop_padding, cfg.flip, dev,
                                      cfg.channels_last)
        gens = [torch.Generator().manual_seed(int(v)) for v in
                np.random.SeedSequence([self.seed, 7]).generate_state(4)]
        self.order_gen, self.aug_gen, self.weigher_gen, meta_gen = gens
        # dropout masks of iteration t come from seed dropout_base + t (a stream of its own, so
        # the other streams are the same with and without dropout)
        self.dropout_base = int(np.random.SeedSequence([self.seed, 8]).generate_state(1)[0])
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            model = build_model(cfg.model, s.num_classes, s.image_shape, **cfg.model_kwargs)
        model = model.to(dev)
        if cfg.channels_last and len(s.image_shape) == 3 and s.image_shape[1] > 1:
            model = model.to(memory_format=torch.channels_last)
        self.has_dropout = any(isinstance(m, SeededDropout) and m.p > 0 for m in model.modules())
        self.target = Trainer(model, cfg.lr, cfg.momentum, cfg.weight_decay, cfg.nesterov)
        self.reference: Trainer | None = None
        if with_reference:
            self.reference = Trainer(copy.deepcopy(model), cfg.lr, cfg.momentum,
                                     cfg.weight_decay, cfg.nesterov)
        self.train_x = s.train_x.to(dev)
        self.train_y = s.train_y.to(dev)
        self.is_noisy = s.is_noisy.to(dev)
        self.sampler = EpochSampler(len(s.train_y), cfg.batch_size, self.order_gen)
        self.iters_per_epoch = self.sampler.iters_per_epoch
        self.total_iterations = cfg.epochs * self.iters_per_epoch
        self.num_stages = cfg.num_stages
        self.iteration = 0
        self.class_counts = torch.as_tensor(s.class_counts, dtype=torch.float32, device=dev)
        self.history = SampleHistory(len(s.train_y), dev)
        self.last_weight = torch.ones(len(s.train_y), device=dev)
        self.meta = (MetaSampler(s.meta_x, s.meta_y, self.pipeline,
                                 min(cfg.batch_size, len(s.meta_y)), meta_gen)
                     if len(s.meta_y) >= 2 else None)
        self.train_view = TrainView(self.train_x, self.train_y, self.pipeline)
        self.weigher: Weigher = weigher if weigher is not None else UniformWeigher()
        self._setup_done: set[int] = set()

    # ------------------------------------------------------------------ schedule
    @property
    def epoch(self) -> int:
        return self.iteration // self.iters_per_epoch

    def stage_end(self, stage: int) -> int:
        """Iteration at which ``stage`` (0-based) ends: stages split training uniformly."""
        return round((stage + 1) * self.total_iterations / self.num_stages)

    @property
    def stage(self) -> int:
        """Index of the stage the next iteration belongs to (``num_stages`` when done)."""
        for k in range(self.num_stages):
            if self.iteration < self.stage_end(k):
                return k
        return self.num_stages

    @property
    def done(self) -> bool:
        return self.iteration >= self.total_iterations

    def lr_at(self, iteration: int) -> float:
        c = self.cfg
        return learning_rate(iteration, self.total_iterations, c.lr, c.lr_schedule,
                             c.lr_milestones, c.lr_gamma)

    def context(self, weigher: Weigher | None = None) -> WeighContext:
        """The weigher's view of this iteration; the clean meta sampler only for a weigher
        that declares ``needs_meta``."""
        weigher = weigher if weigher is not None else self.weigher
        return WeighContext(
            iteration=self.iteration, epoch=self.epoch, stage=self.stage,
            total_iterations=self.total_iterations, iters_per_epoch=self.iters_per_epoch,
            lr=self.lr_at(self.iteration), num_classes=self.splits.num_classes,
            class_counts=self.class_counts, history=self.history, train=self.train_view,
            generator=self.weigher_gen,
            meta=self.meta if getattr(weigher, "needs_meta", False) else None,
        )

    # ------------------------------------------------------------------ training
    def next_batch(self) -> Batch:
        idx = self.sampler.next().to(self.device)
        x = self.pipeline.augment(self.train_x[idx], self.aug_gen)
        return Batch(x, self.train_y[idx], idx)

    def _dropout_masks(self, model: nn.Module) -> AbstractContextManager[None]:
        """The current iteration's dropout seed on ``model`` (shared by target and reference)."""
        if not self.has_dropout:
            return nullcontext()
        return dropout_seed(model, self.dropout_base + self.iteration)

    def train_iterations(self, n: int, weigher: Weigher | None = None,
                         on_epoch_end: Callable[[DuplicateTrainer], None] | None = None,
                         ) -> StageStats:
        """Train ``n`` iterations (fewer if training ends or the target diverges).

        ``on_epoch_end(self)`` is called after the last iteration of every epoch (e.g. to
        record a per-epoch test-accuracy curve)."""
        weigher = weigher if weigher is not None else self.weigher
        if id(weigher) not in self._setup_done:
            weigher.setup(self.target.model, self.splits.num_classes, self.device)
            self._setup_done.add(id(weigher))
        c = self.splits.num_classes
        stats = StageStats.zeros(c)
        cls_sum = torch.zeros(c, device=self.device)
        cls_cnt = torch.zeros(c, device=self.device)
        noisy_sum = torch.zeros((), device=self.device)
        clean_sum = torch.zeros((), device=self.device)
        n_noisy = 0
        n_total = 0
        correct = torch.zeros((), device=self.device)
        high = torch.zeros((), device=self.device)
        threshold = math.log(c)  # the loss of a uniform prediction over the classes
        for _ in range(n):
            if self.done:
                break
            lr = self.lr_at(self.iteration)
            self.target.set_lr(lr)
            batch = self.next_batch()
            ctx = self.context(weigher)
            with self._dropout_masks(self.target.model):
                res = self.target.step(batch, weigher, ctx)
            if self.reference is not None:
                self.reference.set_lr(lr)
                with self._dropout_masks(self.reference.model):
                    ref = self.reference.step(batch, None, None)
                stats.loss_reference += ref.loss
                stats.reference_diverged |= not ref.finite
            stats.iterations += 1
            stats.loss_target += res.loss
            correct += res.correct
            high += (res.losses > threshold).sum()
            stats.batch_losses.append(res.loss)
            w = res.weights.float()
            self.last_weight[batch.index] = w
            self.history.record(batch.index, w, res.losses)
            noisy = self.is_noisy[batch.index]
            stats.losses.append(res.losses)
            stats.weights.append(w)
            stats.noisy.append(noisy)
            noisy_sum += (w * noisy).sum()
            clean_sum += (w * ~noisy).sum()
            k = int(noisy.sum())
            n_noisy += k
            n_total += len(w)
            cls_sum.index_add_(0, batch.y, w)
            cls_cnt.index_add_(0, batch.y, torch.ones_like(w))
            self.iteration += 1
            if self.iteration % self.iters_per_epoch == 0:
                self.history.end_epoch()
                weigher.on_epoch_end(self.target.model, self.context(weigher))
                if on_epoch_end is not None:
                    on_epoch_end(self)
            if not res.finite:
                stats.diverged = True
                break
        if stats.iterations:
            stats.loss_target /= stats.iterations
            stats.loss_reference /= stats.iterations
        stats.train_acc_target = float(correct) / n_total if n_total else math.nan
        stats.high_loss_share = float(high) / n_total if n_total else math.nan
        stats.weight_sum_noisy, stats.weight_cnt_noisy = float(noisy_sum), n_noisy
        stats.weight_sum_clean, stats.weight_cnt_clean = float(clean_sum), n_total - n_noisy
        stats.class_weight_sum = cls_sum.cpu().numpy().astype(np.float64)
        stats.class_weight_cnt = cls_cnt.cpu().numpy().astype(np.float64)
        return stats

    def train_stage(self, weigher: Weigher | None = None,
                    on_epoch_end: Callable[[DuplicateTrainer], None] | None = None,
                    ) -> StageStats:
        """Train until the end of the current stage."""
        return self.train_iterations(self.stage_end(self.stage) - self.iteration, weigher,
                                     on_epoch_end)

    # ------------------------------------------------------------------ evaluation
    def evaluate(self, split: str = "val") -> dict[str, float]:
        """Accuracy and loss of target (and reference) on ``val``, ``test`` or ``meta``."""
        x, y = {"val": (self.splits.val_x, self.splits.val_y),
                "test": (self.splits.test_x, self.splits.test_y),
                "meta": (self.splits.meta_x, self.splits.meta_y)}[split]
        out: dict[str, float] = {}
        acc, loss = self.target.evaluate(x, y, self.pipeline)
        out["acc_target"], out["loss_target"] = acc, loss
        if self.reference is not None:
            acc, loss = self.reference.evaluate(x, y, self.pipeline)
            out["acc_reference"], out["loss_reference"] = acc, loss
        return out

    @torch.inference_mode()
    def high_loss_share(self, split: str = "val") -> float:
        """The share of the target's per-sample losses on ``split`` above ln C (a uniform
        prediction's loss), in eval mode."""
        x, y = {"val": (self.splits.val_x, self.splits.val_y),
                "test": (self.splits.test_x, self.splits.test_y)}[split]
        model = self.target.model
        model.eval()
        high, y = 0, y.to(self.device)
        threshold = math.log(self.splits.num_classes)
        for i in range(0, len(y), 1000):
            logits = model(self.pipeline.plain(x[i: i + 1000]))
            losses = F.cross_entropy(logits.float(), y[i: i + 1000], reduction="none")
            high += int((losses > threshold).sum())
        return high / max(1, len(y))

    def weight_auc(self) -> float:
        """ROC AUC of the last weight of each sample for telling clean (high) from noisy (low)."""
        noisy = self.is_noisy.cpu().numpy()
        if noisy.all() or not noisy.any():
            return math.nan
        return roc_auc(~noisy, self.last_weight.cpu().numpy())
