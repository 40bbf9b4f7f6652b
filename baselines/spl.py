"""``spl``: self-paced learning (Kumar, Packer and Koller, NeurIPS 2010) with a growing threshold.

SPL minimises sum_i v_i l_i - lambda sum_i v_i over binary v (their eq. 2-3); for fixed model
parameters the minimiser is v_i = 1 if l_i < lambda else 0, i.e. only "easy" samples are used.
The age parameter lambda (1/K in the paper) grows during training so that harder samples are
admitted progressively (the paper anneals K <- K / mu). Here:

- warm-up: ``warmup_epochs`` epochs of plain training (v = 1);
- then lambda is initialised to the ``init_quantile`` quantile of the training samples'
  exponential moving average loss (``ctx.history.loss_ema``), so that fraction is admitted;
- lambda is multiplied by ``growth`` (mu) at the end of every later epoch.

The schedule is set in fractions of the run, so it holds whatever the run's length (chosen with
``benchmarks/method_defaults.py``, results in ``benchmarks/results/method_defaults/``): by
default the warm-up is a quarter of the epochs (at least one) and lambda grows by a factor of
``total_growth`` = 1,000 over the remaining epochs, mu = 1000^(1 / (E - warm-up)). A fixed
per-epoch mu starves short runs: after a one-epoch warm-up half the samples are admitted, a
short run's lambda grows too little to admit the rest, and the classes not yet learned stay out.
Numbers for ``warmup_epochs`` and ``growth`` set them directly.
"""

from __future__ import annotations

import torch
from torch import nn

from reweight_gym.config import EnvConfig
from reweight_gym.training.weigher import Batch, WeighContext, Weigher
from reweight_gym.validation import check_number


class SelfPacedWeigher(Weigher):
    """Hard self-paced weights v_i = 1[l_i < lambda], lambda growing by ``growth`` per epoch
    (by default: ``total_growth`` over the epochs after a warm-up of a quarter of the run)."""

    name = "spl"
    needs_meta = False

    def __init__(self, cfg: EnvConfig | None = None, warmup_epochs: int | None = None,
                 init_quantile: float = 0.5, growth: float | None = None,
                 total_growth: float = 1000.0) -> None:
        del cfg
        check_number("spl kwarg warmup_epochs", warmup_epochs, 0, integer=True, optional=True)
        check_number("spl kwarg init_quantile", init_quantile, 0.0, 1.0, lo_open=True)
        check_number("spl kwarg growth", growth, 1.0, optional=True)
        check_number("spl kwarg total_growth", total_growth, 1.0)
        self.warmup_epochs = warmup_epochs
        self.init_quantile = float(init_quantile)
        self.growth = growth
        self.total_growth = float(total_growth)
        self.threshold: float | None = None  # lambda

    def resolve_schedule(self, epochs: int) -> None:
        """Warm-up epochs and per-epoch growth for a run of ``epochs`` (the rule above)."""
        if self.warmup_epochs is None:
            self.warmup_epochs = min(max(1, round(0.25 * epochs)), max(0, epochs - 1))
        if self.growth is None:
            self.growth = self.total_growth ** (1.0 / max(1, epochs - self.warmup_epochs))

    def weigh(self, model: nn.Module, batch: Batch, logits: torch.Tensor, losses: torch.Tensor,
              ctx: WeighContext) -> torch.Tensor:
        self.resolve_schedule(ctx.total_iterations // ctx.iters_per_epoch)
        assert self.warmup_epochs is not None
        if ctx.epoch < self.warmup_epochs:
            return torch.ones_like(losses).detach()
        if self.threshold is None:
            seen = ctx.history.loss_ema[ctx.history.seen]
            source = seen if len(seen) else losses.detach()
            self.threshold = float(torch.quantile(source.float(), self.init_quantile))
        return (losses.detach() < self.threshold).to(losses.dtype)

    def on_epoch_end(self, model: nn.Module, ctx: WeighContext) -> None:
        if self.threshold is not None and self.growth is not None:
            self.threshold *= self.growth

