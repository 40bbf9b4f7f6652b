"""``spl``: self-paced learning (Kumar, Packer and Koller, NeurIPS 2010) with a growing threshold.

SPL minimises sum_i v_i l_i - lambda sum_i v_i over binary v (their eq. 2-3); for fixed model
parameters the minimiser is v_i = 1 if l_i < lambda else 0, i.e. only "easy" samples are used.
The age parameter lambda (1/K in the paper) grows during training so that harder samples are
admitted progressively (the paper anneals K <- K / mu). Here:

- warm-up: ``warmup_epochs`` epochs of plain training (v = 1);
- then lambda is initialised to the ``init_quantile`` quantile of the training samples'
  exponential moving average loss (``ctx.history.loss_ema``), so that fraction is admitted;
- lambda is multiplied by ``growth`` (mu) at the end of every later epoch.
"""

from __future__ import annotations

import torch
from torch import nn

from reweight_gym.config import EnvConfig
from reweight_gym.training.weigher import Batch, WeighContext, Weigher
from reweight_gym.validation import check_number


class SelfPacedWeigher(Weigher):
    """Hard self-paced weights v_i = 1[l_i < lambda], lambda growing by ``growth`` per epoch."""

    name = "spl"
    needs_meta = False

    def __init__(self, cfg: EnvConfig | None = None, warmup_epochs: int = 1,
                 init_quantile: float = 0.5, growth: float = 1.1) -> None:
        del cfg
        check_number("spl kwarg warmup_epochs", warmup_epochs, 0, integer=True)
        check_number("spl kwarg init_quantile", init_quantile, 0.0, 1.0, lo_open=True)
        check_number("spl kwarg growth", growth, 1.0)
        self.warmup_epochs = int(warmup_epochs)
        self.init_quantile = float(init_quantile)
        self.growth = float(growth)
        self.threshold: float | None = None  # lambda

    def weigh(self, model: nn.Module, batch: Batch, logits: torch.Tensor, losses: torch.Tensor,
              ctx: WeighContext) -> torch.Tensor:
        if ctx.epoch < self.warmup_epochs:
            return torch.ones_like(losses).detach()
        if self.threshold is None:
            seen = ctx.history.loss_ema[ctx.history.seen]
            source = seen if len(seen) else losses.detach()
            self.threshold = float(torch.quantile(source.float(), self.init_quantile))
        return (losses.detach() < self.threshold).to(losses.dtype)

    def on_epoch_end(self, model: nn.Module, ctx: WeighContext) -> None:
        if self.threshold is not None:
            self.threshold *= self.growth

