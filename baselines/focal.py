"""``focal``: the focal loss of Lin et al. (ICCV 2017) as a sample weighting.

Focal loss (their eq. 4-5): FL(p_t) = -(1 - p_t)^gamma log p_t = (1 - p_t)^gamma l, with
p_t = exp(-l) the predicted probability of the observed label. As a weigher it returns
w_i = (1 - p_t,i)^gamma (the factor by which each sample's cross-entropy is scaled); with
``full_gradient=True`` (default) it also returns the extra term whose gradient is
(1/B) sum_i l_i grad (1 - p_t,i)^gamma, so the total update is *exactly* the focal loss's gradient
(the trainer's weighted term supplies (1/B) sum_i w_i grad l_i). Its value is zero.
``gamma = 0`` is plain cross-entropy.
"""

from __future__ import annotations

import torch
from torch import nn

from reweight_gym.config import EnvConfig
from reweight_gym.training.weigher import Batch, WeighContext, Weigher, Weighting
from reweight_gym.validation import check_bool, check_number


class FocalWeigher(Weigher):
    """Focal loss weighting w = (1 - p_t)^gamma (Lin et al. eq. 5), gamma configurable."""

    name = "focal"
    needs_meta = False

    def __init__(self, cfg: EnvConfig | None = None, gamma: float = 2.0,
                 full_gradient: bool = True) -> None:
        del cfg
        check_number("focal kwarg gamma", gamma, 0.0)
        check_bool("focal kwarg full_gradient", full_gradient)
        self.gamma = float(gamma)
        self.full_gradient = full_gradient

    def focal_factor(self, losses: torch.Tensor) -> torch.Tensor:
        """(1 - p_t)^gamma with p_t = exp(-l); differentiable."""
        return (-torch.expm1(-losses)).clamp_min(0.0) ** self.gamma

    def weigh(self, model: nn.Module, batch: Batch, logits: torch.Tensor, losses: torch.Tensor,
              ctx: WeighContext) -> Weighting:
        factor = self.focal_factor(losses)
        w = factor.detach()
        if not self.full_gradient or self.gamma == 0.0:
            return Weighting(w)
        extra = (losses.detach() * (factor - w)).sum() / losses.shape[0]
        return Weighting(w, extra)
