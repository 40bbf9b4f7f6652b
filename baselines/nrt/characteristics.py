"""The nine per-sample characteristics NRT weighs by, and their running standardisation.

Loss, margin p_y - max_{j != y} p_j, gradient norm ||y - p||_2, entropy, class proportion N_y / N,
the class's mean loss in the batch, the sample's weight one and two epochs ago, and their
difference. They are standardised with running (EMA) statistics, so the tree's cut points live on
a stable scale and can be reported in the characteristics' own units.
"""

from __future__ import annotations

import torch

from reweight_gym.training.characteristics import (
    SampleHistory,
    class_mean_loss,
    class_proportion,
    entropy,
    grad_norm,
    margin,
)

CHARACTERISTICS = ("loss", "margin", "grad_norm", "entropy", "class_proportion",
                   "class_mean_loss", "weight_prev1", "weight_prev2", "weight_diff")


def compute_characteristics(logits: torch.Tensor, labels: torch.Tensor, losses: torch.Tensor,
                            class_counts: torch.Tensor, index: torch.Tensor,
                            history: SampleHistory) -> torch.Tensor:
    """The nine characteristics of NRT, (B, 9), from detached batch quantities."""
    logits, losses = logits.detach(), losses.detach()
    w1 = history.weight_prev1[index].to(losses.device)
    w2 = history.weight_prev2[index].to(losses.device)
    logp = torch.log_softmax(logits, dim=1)  # one softmax for margin, gradient norm, entropy
    p = logp.exp()
    cols = [losses, margin(logits, labels, p), grad_norm(logits, labels, p),
            entropy(logits, logp), class_proportion(labels, class_counts),
            class_mean_loss(losses, labels, logits.shape[1]), w1, w2, w1 - w2]
    return torch.stack(cols, dim=1).float()


class RunningStandardizer:
    """z = (x - mean) / std with EMA statistics (first batch initialises them)."""

    def __init__(self, dim: int, momentum: float = 0.9) -> None:
        self.mean = torch.zeros(dim)
        self.var = torch.ones(dim)
        self.momentum = momentum
        self.initialised = False

    def update(self, x: torch.Tensor) -> None:
        m, v = x.mean(0).cpu(), x.var(0, unbiased=False).cpu()
        if not self.initialised:
            self.mean, self.var, self.initialised = m, v, True
        else:
            a = self.momentum
            self.mean = a * self.mean + (1 - a) * m
            self.var = a * self.var + (1 - a) * v

    @property
    def std(self) -> torch.Tensor:
        return self.var.sqrt().clamp_min(1e-6)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        std = self.std.to(x.device)
        z = (x - self.mean.to(x.device)) / std
        return torch.where(self.var.to(x.device) > 1e-12, z, torch.zeros_like(z))

    def to_raw(self, k: int, z: float) -> float:
        return float(self.mean[k] + z * self.std[k])
