"""``uniform``: plain training, every sample weight exactly 1 (the cross-entropy baseline)."""

from __future__ import annotations

import torch
from torch import nn

from reweight_gym.config import EnvConfig
from reweight_gym.training.weigher import Batch, WeighContext, Weigher


class UniformBaseline(Weigher):
    """Empirical risk minimisation: the trainer minimises (1/B) sum_i l_i."""

    name = "uniform"
    needs_meta = False

    def __init__(self, cfg: EnvConfig | None = None) -> None:
        del cfg

    def weigh(self, model: nn.Module, batch: Batch, logits: torch.Tensor, losses: torch.Tensor,
              ctx: WeighContext) -> torch.Tensor:
        return torch.ones_like(losses).detach()
