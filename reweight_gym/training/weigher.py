"""The Weigher contract and LAW's linear-tanh weigher.

A *weigher* decides, per iteration, how much each sample of the batch counts. The trainer calls
:meth:`Weigher.weigh` once per iteration with the model, the batch, the logits and per-sample
losses of its own forward pass (graph kept, so a meta method can differentiate through them for
its look-ahead) and a :class:`WeighContext`. It returns either

- per-sample weights of shape (B,): the trainer minimises (1/B) sum_i w_i l_i, or
- class-level weights of shape (B, C) (GDW): the trainer scales the logit gradient (p - y)
  element-wise, D1' = w * (p - y) (GDW eq. 2 / 6),

optionally wrapped in :class:`Weighting` with an ``extra_loss`` term (e.g. FSR's re-labelling or
MixUp terms). Weights are treated as constants by the real step (they are detached).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from reweight_gym.training.characteristics import SampleHistory, sample_features
from reweight_gym.training.pipeline import BatchPipeline, MetaSampler


@dataclass
class Batch:
    """One training batch: augmented normalised images, observed labels, dataset indices."""

    x: torch.Tensor
    y: torch.Tensor
    index: torch.Tensor


@dataclass
class TrainView:
    """Read access to the whole (corrupted) training set, e.g. for FSR's proxy dictionary."""

    x: torch.Tensor  # uint8 (N, C, H, W)
    y: torch.Tensor  # observed labels (N,)
    pipeline: BatchPipeline


@dataclass
class WeighContext:
    """What a weigher may know at an iteration."""

    iteration: int
    epoch: int
    stage: int
    total_iterations: int
    iters_per_epoch: int
    lr: float
    num_classes: int
    class_counts: torch.Tensor
    history: SampleHistory
    train: TrainView
    generator: torch.Generator
    meta: MetaSampler | None = None


@dataclass
class Weighting:
    """A weigher's answer: weights (B,) or (B, C), and an optional extra differentiable loss."""

    weights: torch.Tensor
    extra_loss: torch.Tensor | None = None


class Weigher:
    """Base class. Subclasses implement :meth:`weigh`; the hooks are optional.

    Class attributes: ``needs_meta`` (the trainer supplies a clean meta sampler in the context;
    methods without it, like FSR, must not touch one).
    """

    name: str = "weigher"
    needs_meta: bool = False

    def setup(self, model: nn.Module, num_classes: int, device: torch.device) -> None:
        """Called once before training with the (target) model."""

    def weigh(self, model: nn.Module, batch: Batch, logits: torch.Tensor, losses: torch.Tensor,
              ctx: WeighContext) -> torch.Tensor | Weighting:
        raise NotImplementedError  # abstract

    def on_epoch_end(self, model: nn.Module, ctx: WeighContext) -> None:
        """Called after the last iteration of every epoch."""


class UniformWeigher(Weigher):
    """Plain training: every weight exactly 1."""

    name = "uniform"

    def weigh(self, model: nn.Module, batch: Batch, logits: torch.Tensor, losses: torch.Tensor,
              ctx: WeighContext) -> torch.Tensor:
        return torch.ones_like(losses).detach()


class LinearTanhWeigher(Weigher):
    """LAW's weighting function K(f, theta) = 1 + tanh(theta . f + b) (eq. 3), in (0, 2).

    ``theta`` and ``b`` are held fixed for a whole stage (3SM) and set by the agent's action.
    Features f are the batch-normalised per-sample features of ``feature_set`` (eq. 6).
    With theta = 0 and b = 0 every weight is exactly 1.

    ``normalize=True`` divides the weights by their batch mean (an extension, not in LAW): the
    effective learning rate is then unchanged and only the *relative* weighting is chosen, so a
    policy cannot gain by raising every weight (b > 0 acts like a larger learning rate).
    """

    name = "law"

    def __init__(self, feature_set: str = "law", theta: torch.Tensor | None = None,
                 bias: float = 0.0, normalize: bool = False) -> None:
        self.feature_set = feature_set
        self.theta = theta
        self.bias = float(bias)
        self.normalize = normalize

    def set_params(self, theta: torch.Tensor, bias: float) -> None:
        self.theta = theta.detach().float()
        self.bias = float(bias)

    def features(self, logits: torch.Tensor, labels: torch.Tensor, losses: torch.Tensor,
                 class_counts: torch.Tensor) -> torch.Tensor:
        return sample_features(self.feature_set, logits, labels, losses, class_counts)

    def weights_from_features(self, feats: torch.Tensor) -> torch.Tensor:
        if self.theta is None:
            raise ValueError("LinearTanhWeigher: theta is not set; call set_params first")
        theta = self.theta.to(feats.device)
        if theta.shape != (feats.shape[1],):
            raise ValueError(f"invalid theta shape {tuple(theta.shape)}: expected "
                             f"({feats.shape[1]},) for feature set {self.feature_set!r}")
        w = 1.0 + torch.tanh(feats @ theta + self.bias)
        return w / w.mean() if self.normalize else w

    def weigh(self, model: nn.Module, batch: Batch, logits: torch.Tensor, losses: torch.Tensor,
              ctx: WeighContext) -> torch.Tensor:
        with torch.no_grad():
            feats = self.features(logits, batch.y, losses, ctx.class_counts)
            return self.weights_from_features(feats)
