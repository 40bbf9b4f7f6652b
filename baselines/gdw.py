"""``gdw``: Generalized Data Weighting via class-level gradient manipulation (Chen et al., 2021).

Instead of one scalar per sample, GDW gives every sample a vector omega in R^C that scales the
gradient of the loss with respect to the logits element-wise: D1' = omega * (p - y) (eq. 2),
where p is the softmax and y the one-hot observed label.

- Zero-mean constraint (eq. 4): the observed-label entry is set to
  omega_t = sum_{j != t} omega_j p_j / (1 - p_t), so that sum_j omega_j (p_j - y_j) = 0, i.e. the
  manipulated gradient keeps the zero-sum property of the softmax gradient. We evaluate it as
  omega_t = sum_{j != t} omega_j q_j with q = softmax of the logits over j != t: the same value
  (1 - p_t = sum_{j != t} p_j), but with no cancellation when p_t -> 1 (the code clamps p at
  0.999 instead), so the constraint holds to float precision.
- Two stages inside MW-Net's three steps (eqs. 9-12): V(l_i; Theta) (MW-Net's 1-100-1 net) is
  copied to the C columns and constrained (equal columns are left unchanged by eq. 4: stage one
  is instance weighting); the look-ahead uses the manipulated gradient
  theta^ = theta - alpha (1/B) sum_i J_i^T (omega_i * (p_i - y_i)) (eq. 9); the meta gradient
  g = dL_meta/d omega (one forward-mode JVP, exact, as in MW-Net's module) also gives
  grad_Theta through V (Theta step, eq. 10); stage two moves
  omega' = omega - clip(eta_omega g / ||g||_1, -c, c) (eq. 11, ||.||_1 over the whole batch as in
  the code), clamps it to [1e-6, 1e6], re-applies eq. 4 and the trainer takes the real step
  with omega' as class-level weights (eq. 12).
- Defaults: c = 0.2, eta_omega = 100 for 10 classes and 1000 otherwise (CIFAR-100), V's
  optimiser as MW-Net's (Adam, weight decay 1e-4), with the paper's 1e-3 scaled to the run's
  length, 1e-3 sqrt(60,000 / T) for T iterations (``reweight_gym.baselines.meta.run_length_lr``:
  larger for shorter runs) unless ``meta_lr`` is ``"paper"`` or a number;
  weights not normalised (the code uses the batch mean of the weighted loss). eta_omega and c
  act per iteration on normalised gradients (eq. 11), so they do not depend on the run's
  length.

The extra work over MW-Net is the C-column weights and one more input of the same backward: no
extra forward or backward pass.

Cheaper meta steps, as MW-Net's (:mod:`reweight_gym.baselines.meta`): ``meta_grad`` changes how
g = dL_meta/d omega of eq. 10 is computed (``"last_layer"``: the look-ahead of eq. 9 and the
meta-gradient through the final linear layer only; ``"first_order"``: the meta batch's gradient at
theta instead of theta^, no look-ahead). ``meta_every=k``: the meta step (eqs. 9-11) every k-th
iteration only; in between the real step uses stage one's omega, V's scalar copied to the C
columns and constrained (eq. 4; equal columns stay equal, so instance weighting by V), since
eq. 11 needs the batch's meta-gradient.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from reweight_gym.baselines._common import logit_error
from reweight_gym.baselines.meta import (
    PAPER_ITERATIONS,
    SETTINGS,
    MetaWeigher,
    apply_gradients,
    check_meta_lr,
    meta_logit_tangent,
    resolve_setting,
    weighted_logit_grad,
)
from reweight_gym.config import EnvConfig
from reweight_gym.training.functional import trainable_params
from reweight_gym.training.pipeline import MetaSampler
from reweight_gym.training.weigher import Batch, WeighContext
from reweight_gym.validation import check_choice, check_number


def zero_mean_constraint(omega: torch.Tensor, logits: torch.Tensor,
                         labels: torch.Tensor) -> torch.Tensor:
    """GDW eq. 4: replace omega[i, y_i] by sum_{j != y_i} omega_ij p_ij / (1 - p_{i y_i}).

    Differentiable in ``omega`` (out of place); ``logits`` are treated as constants.
    """
    z = logits.detach().to(omega.dtype)
    mask = F.one_hot(labels, z.shape[1]).bool()
    q = torch.softmax(z.masked_fill(mask, float("-inf")), dim=1)  # p_j / (1 - p_t), j != t
    target = (omega * q).sum(dim=1, keepdim=True)
    return torch.where(mask, target, omega)


def manipulated_lookahead(model: nn.Module, logits: torch.Tensor, labels: torch.Tensor,
                          omega: torch.Tensor, lr: float) -> dict[str, torch.Tensor]:
    """theta^ = theta - lr (1/B) sum_i J_i^T (omega_i * (p_i - y_i)) (GDW eq. 9).

    The vector-Jacobian product of the trainer's logits (graph kept) with the manipulated logit
    gradient; detached, ready for the meta forward. theta^ is linear in omega with
    d theta^/d omega_ij = -(lr/B) (p_ij - y_ij) grad z_ij, used by :func:`omega_gradient`.
    """
    params = trainable_params(model)
    names = list(params)
    cotangent = weighted_logit_grad(omega, logits, labels)
    grads = torch.autograd.grad(logits, [params[n] for n in names], grad_outputs=cotangent,
                                retain_graph=True, allow_unused=True)
    return {n: (params[n] if g is None else params[n] - lr * g).detach().requires_grad_()
            for n, g in zip(names, grads)}


def omega_gradient(logits: torch.Tensor, labels: torch.Tensor, tangent: torch.Tensor,
                   lr: float) -> torch.Tensor:
    """g = dL_meta(theta^)/d omega (B, C) = -(lr/B) (p - y) * T, the chain rule through eq. 9,
    with T = J_z grad L_meta(theta^) the training logits' derivative along the meta direction
    (``reweight_gym.baselines.meta.meta_logit_tangent``)."""
    return -lr / logits.shape[0] * logit_error(logits, labels) * tangent


def class_level_update(omega: torch.Tensor, g: torch.Tensor, eta: float,
                       clip: float) -> torch.Tensor:
    """omega' = omega - clip(eta g / ||g||_1, -c, c) (GDW eq. 11), then clamped to [1e-6, 1e6]."""
    denom = g.abs().sum()
    step = torch.where(denom > 0, eta * g / denom.clamp_min(1e-30), torch.zeros_like(g))
    return (omega - step.clamp(-clip, clip)).clamp(1e-6, 1e6)


class GDWWeigher(MetaWeigher):
    """Generalized Data Weighting: class-level logit-gradient weights (eqs. 2, 4, 9-12)."""

    name = "gdw"

    def __init__(self, cfg: EnvConfig | None = None, eta_omega: float | None = None,
                 clip: float = 0.2, hidden: int = 100, setting: str = "auto",
                 meta_lr: float | str | None = None, jvp: str = "finite_difference",
                 meta_every: int = 1, meta_grad: str = "exact") -> None:
        super().__init__(cfg, jvp, False, meta_every, meta_grad)
        check_number("gdw kwarg eta_omega", eta_omega, 0.0, optional=True)
        check_number("gdw kwarg clip", clip, 0.0)
        check_number("gdw kwarg hidden", hidden, 1, integer=True)
        check_choice("gdw kwarg setting", setting, SETTINGS)
        check_meta_lr("gdw kwarg meta_lr", meta_lr)
        self.eta_omega = eta_omega
        self.clip = float(clip)
        self.hidden = int(hidden)
        self.setting = resolve_setting(setting, cfg)
        self.meta_lr = meta_lr

    def build(self, seed: int, num_classes: int, device: torch.device | str = "cpu",
              iterations: int = PAPER_ITERATIONS) -> None:
        """V and its optimiser, and eta_omega's default for the number of classes."""
        super().build(seed, num_classes, device, iterations)
        if self.eta_omega is None:
            self.eta_omega = 100.0 if num_classes <= 10 else 1000.0

    def meta_weigh(self, model: nn.Module, batch: Batch, logits: torch.Tensor,
                   losses: torch.Tensor, ctx: WeighContext, meta: MetaSampler) -> torch.Tensor:
        net = self.net
        assert net is not None and self.optimizer is not None

        def stage_one() -> torch.Tensor:  # V's scalar copied to C columns, constrained (eq. 4)
            v = net(losses.detach()[:, None])
            return zero_mean_constraint(v[:, None].expand(-1, logits.shape[1]), logits, batch.y)

        if not self.is_meta_iteration(ctx):
            with torch.no_grad():
                return stage_one()
        omega = stage_one()
        x_meta, y_meta = meta.next()
        tangent, self.last_meta_loss = meta_logit_tangent(  # through eq. 9's look-ahead
            model, batch.x, batch.y, logits, omega,
            lambda: manipulated_lookahead(model, logits, batch.y, omega, ctx.lr), x_meta, y_meta,
            ctx.lr, self.meta_grad, self.jvp, self.features)
        g_omega = omega_gradient(logits, batch.y, tangent, ctx.lr)
        vparams = list(net.parameters())
        apply_gradients(self.optimizer, vparams,
                        torch.autograd.grad(omega, vparams, grad_outputs=g_omega))  # eq. 10
        # Stage two: class-level update (eq. 11), constraint again, real step (eq. 12).
        assert self.eta_omega is not None
        omega_new = class_level_update(omega.detach(), g_omega, self.eta_omega, self.clip)
        return zero_mean_constraint(omega_new, logits, batch.y)
