"""``mwnet``: Meta-Weight-Net (Shu et al., NeurIPS 2019).

The weight of sample i is V(l_i; Theta), an MLP 1 -> 100 (ReLU) -> 1 (sigmoid) of its loss.
Every iteration (their Algorithm 1, the machinery in :mod:`reweight_gym.baselines.meta`):

1. look-ahead (eq. 3): theta^(Theta) = theta - alpha (1/n) sum_i V(l_i; Theta) grad_theta l_i,
   plain SGD with the current learning rate alpha, differentiable in Theta;
2. meta step (eq. 4): Theta <- Theta - beta grad_Theta L_meta(theta^(Theta)) on a clean meta
   batch (Adam, weight decay 1e-4 for label noise; SGD, momentum 0.9, weight decay 5e-4 for
   long-tail, as in the paper's code). The paper's beta (Adam 1e-3, SGD 1e-5) is for a
   ~60,000-iteration run; by default beta follows the run's length by
   ``reweight_gym.baselines.meta.run_length_lr``: SGD 1e-5 (60,000 / T) for a run of T iterations
   (long
   tail), Adam 1e-3 at every length (noise; exponent 0) on a CNN and Adam 1e-4 on an MLP
   (:data:`MLP_NOISE_META_LR`: the defaults are chosen per model family);
   ``meta_lr="paper"`` is the paper's value, a number sets it;
3. real step (eq. 5): the trainer updates theta with the weights V(l_i; Theta_new).

``normalize=True`` (default) divides the weights by their batch sum as the paper's code does
(``norm_c``); the weigher then returns them multiplied by B so that the trainer's
(1/B) sum_i w_i l_i equals the code's sum_i w_i l_i / sum_j w_j.

Cheaper meta steps (:mod:`reweight_gym.baselines.meta`, where each is derived from eqs. 3-4):
``meta_every=k`` takes steps 1-2 only every k-th iteration (step 3 every iteration, with the
current V); ``meta_grad="last_layer"`` runs eqs. 3-4 through the final linear layer only (the
features fixed); ``meta_grad="first_order"`` takes eq. 4's meta-batch gradient at theta instead
of the look-ahead theta^ (no look-ahead). The defaults (1, ``"exact"``) are Algorithm 1.
"""

from __future__ import annotations

import torch
from torch import nn

from reweight_gym.baselines.meta import SETTINGS, MetaWeigher, check_meta_lr, resolve_setting
from reweight_gym.config import EnvConfig
from reweight_gym.models import model_family
from reweight_gym.training.pipeline import MetaSampler
from reweight_gym.training.weigher import Batch, WeighContext
from reweight_gym.validation import check_choice, check_number

#: The weight net's Adam learning rate for label noise on an MLP, the default there (the paper's
#: 1e-3 is the default on CNNs): the package's defaults are chosen per model family, on
#: validation accuracy (docs, "Baselines: defaults").
MLP_NOISE_META_LR = 1e-4


class MWNetWeigher(MetaWeigher):
    """Meta-Weight-Net: a loss -> weight MLP learned on a clean meta set (eqs. 3-5)."""

    name = "mwnet"

    def __init__(self, cfg: EnvConfig | None = None, hidden: int = 100, setting: str = "auto",
                 meta_lr: float | str | None = None, normalize: bool = True,
                 jvp: str = "finite_difference", meta_every: int = 1,
                 meta_grad: str = "exact") -> None:
        super().__init__(cfg, jvp, normalize, meta_every, meta_grad)
        check_number("mwnet kwarg hidden", hidden, 1, integer=True)
        check_choice("mwnet kwarg setting", setting, SETTINGS)
        check_meta_lr("mwnet kwarg meta_lr", meta_lr)
        self.hidden = int(hidden)
        self.setting = resolve_setting(setting, cfg)
        self.meta_lr = meta_lr

    def lr_exponent(self) -> float:
        """0 for Adam on V (noise: the paper's 1e-3 at every length), 1 for SGD (long tail):
        ``reweight_gym.baselines.meta.run_length_lr``."""
        return 1.0 if self.setting == "long_tail" else 0.0

    def resolve_lr(self, iterations: int) -> float:
        """The default (``meta_lr=None``) by model family: Adam :data:`MLP_NOISE_META_LR` for
        label noise on an MLP (no BatchNorm), else the run-length rule."""
        if self.meta_lr is None and self.setting == "noise" and self.cfg is not None and \
                model_family(self.cfg.model) == "mlp":
            return MLP_NOISE_META_LR
        return super().resolve_lr(iterations)

    def meta_weigh(self, model: nn.Module, batch: Batch, logits: torch.Tensor,
                   losses: torch.Tensor, ctx: WeighContext, meta: MetaSampler) -> torch.Tensor:
        net = self.net
        assert net is not None

        def weights() -> torch.Tensor:  # V(l_i; Theta): the network's input is the loss value
            return net(losses.detach()[:, None])

        if self.is_meta_iteration(ctx):
            self.meta_update(model, batch, logits, losses, weights, meta, ctx.lr)  # eqs. 3-4
        return self.real_weights(weights)  # eq. 5: the (updated) weight net
