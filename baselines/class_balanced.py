"""``class_balanced``: the effective-number class weights of Cui et al. (CVPR 2019).

The effective number of samples of a class with n samples is E_n = (1 - beta^n) / (1 - beta)
(their eq. 3); the class-balanced loss weights class y by 1 / E_{n_y} = (1 - beta) /
(1 - beta^{n_y}) (eq. 5), normalised so the class weights sum to the number of classes C (their
code). beta = 0 is uniform weighting, beta -> 1 is inverse class frequency. The counts are those
of the observed training labels (``ctx.class_counts``).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from reweight_gym.config import EnvConfig
from reweight_gym.training.weigher import Batch, WeighContext, Weigher
from reweight_gym.validation import check_number


def effective_number_weights(class_counts: torch.Tensor, beta: float) -> torch.Tensor:
    """Per-class weights (1 - beta) / (1 - beta^n_c), normalised to sum to C (Cui et al. eq. 5).
    Empty classes get weight 0 before normalisation (no sample can use it)."""
    n = class_counts.to(torch.float64)
    if beta > 0:  # E_n = (1 - beta^n) / (1 - beta), with beta^n = exp(n log beta)
        eff = -torch.expm1(n * math.log(beta)) / (1 - beta)
    else:
        eff = torch.ones_like(n)
    w = torch.where(n > 0, 1.0 / eff.clamp_min(1e-12), torch.zeros_like(n))
    return (w / w.sum() * len(n)).to(torch.float32)


class ClassBalancedWeigher(Weigher):
    """Class-balanced weighting by the inverse effective number of samples."""

    name = "class_balanced"
    needs_meta = False

    def __init__(self, cfg: EnvConfig | None = None, beta: float = 0.9999) -> None:
        del cfg
        check_number("class_balanced kwarg beta", beta, 0.0, 1.0, hi_open=True)
        self.beta = float(beta)
        self.class_weights: torch.Tensor | None = None

    def weigh(self, model: nn.Module, batch: Batch, logits: torch.Tensor, losses: torch.Tensor,
              ctx: WeighContext) -> torch.Tensor:
        if self.class_weights is None:
            self.class_weights = effective_number_weights(ctx.class_counts, self.beta).to(
                losses.device)
        return self.class_weights[batch.y]
