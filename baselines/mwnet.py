"""``mwnet``: Meta-Weight-Net (Shu et al., NeurIPS 2019).

The weight of sample i is V(l_i; Theta), an MLP 1 -> 100 (ReLU) -> 1 (sigmoid) of its loss.
Every iteration (their Algorithm 1):

1. look-ahead (eq. 3): theta^(Theta) = theta - alpha (1/n) sum_i V(l_i; Theta) grad_theta l_i,
   plain SGD with the current learning rate alpha, differentiable in Theta;
2. meta step (eq. 4): Theta <- Theta - beta grad_Theta L_meta(theta^(Theta)) on a clean meta
   batch (Adam 1e-3, weight decay 1e-4 for label noise; SGD 1e-5, momentum 0.9, weight decay
   5e-4 for long-tail, as in the paper's code);
3. real step (eq. 5): the trainer updates theta with the weights V(l_i; Theta_new).

Implementation notes:

- The look-ahead reuses the trainer's own forward pass of the training batch (its graph is
  kept for the real step): one first-order backward gives theta^. The look-ahead parameters are
  substituted with ``torch.func.functional_call`` (no model copy, no hand-written meta layers);
  BatchNorm uses batch statistics and the real running statistics are never touched (cloned
  buffers). The second-order term is computed from one Jacobian-vector product of the training
  logits (``meta_gradient``) instead of a backward through ``create_graph=True``: exactly by
  forward-mode AD (``jvp="forward_ad"``, same numbers as the double backward, see the
  finite-difference test, half its time on CPU) or, by default, by one forward difference
  (``jvp="finite_difference"``, 0.3-0.5% relative error, one forward pass instead of ~5).
- ``normalize=True`` (default) divides the weights by their batch sum as the paper's code does
  (``norm_c``); the weigher then returns them multiplied by B so that the trainer's
  (1/B) sum_i w_i l_i equals the code's sum_i w_i l_i / sum_j w_j.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import torch
import torch.autograd.forward_ad as fwAD
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from baselines._common import (
    check_bool,
    check_choice,
    check_number,
    draw_seed,
    logit_error,
    normalise_to_batch,
    require_meta,
)
from reweight_gym.config import EnvConfig
from reweight_gym.training.functional import functional_forward, trainable_params
from reweight_gym.training.pipeline import MetaSampler
from reweight_gym.training.weigher import Batch, WeighContext, Weigher

SETTINGS = ("auto", "noise", "long_tail")


class VNet(nn.Module):
    """The weight net V(x; Theta): in -> hidden (ReLU) -> 1 (sigmoid); MW-Net uses 1-100-1."""

    def __init__(self, in_features: int = 1, hidden: int = 100) -> None:
        super().__init__()
        self.linear1 = nn.Linear(in_features, hidden)
        self.linear2 = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.linear2(F.relu(self.linear1(x)))).squeeze(-1)


def lookahead_params(model: nn.Module, losses: torch.Tensor, weights: torch.Tensor,
                     lr: float) -> dict[str, torch.Tensor]:
    """theta^ = theta - lr * (1/B) sum_i w_i grad_theta l_i (MW-Net eq. 3) at the current weights.

    ``losses`` carry the graph of the trainer's forward pass at theta (kept for its real step).
    The result is detached and requires grad, ready for the meta forward. theta^ is linear in w
    with d theta^/d w_i = -(lr/B) grad l_i, which :func:`meta_gradient` uses instead of
    differentiating through this gradient.
    """
    params = trainable_params(model)
    names = list(params)
    inner = (weights.detach() * losses).sum() / losses.shape[0]
    grads = torch.autograd.grad(inner, [params[n] for n in names], retain_graph=True,
                                allow_unused=True)
    return {n: (params[n] if g is None else params[n] - lr * g).detach().requires_grad_()
            for n, g in zip(names, grads)}


def meta_direction(model: nn.Module, params: dict[str, torch.Tensor], x_meta: torch.Tensor,
                   y_meta: torch.Tensor) -> tuple[dict[str, torch.Tensor], float]:
    """grad_theta^ L_meta(theta^) on a clean meta batch (functional call: batch statistics, the
    real running statistics untouched) and the meta loss."""
    meta_loss = F.cross_entropy(functional_forward(model, params, x_meta), y_meta)
    grads = torch.autograd.grad(meta_loss, list(params.values()), allow_unused=True)
    out = {n: torch.zeros_like(p) if g is None else g
           for (n, p), g in zip(params.items(), grads)}
    return out, float(meta_loss.detach())


JVP_METHODS = ("finite_difference", "forward_ad")


def logits_jvp(model: nn.Module, x: torch.Tensor, direction: dict[str, torch.Tensor],
               method: str = "finite_difference", logits: torch.Tensor | None = None,
               step: float = 1e-3) -> torch.Tensor:
    """J_z(theta) v: the directional derivative of the training-batch logits (B, C) along v
    (train mode: batch statistics; cloned buffers, the real running statistics untouched).

    ``forward_ad``: exact, by forward-mode AD through a functional call. On CPU it costs about
    five forward passes (three convolutions per convolution, BatchNorm's tangent formulas).
    ``finite_difference`` (default): (z(theta + e v) - z(theta)) / e with e = ``step`` / ||v||,
    one forward pass without graph; ``logits`` = z(theta) from the trainer's own forward is
    reused when given. Relative error against ``forward_ad`` measured at 0.3-0.5% on the small
    CNN (ReLU and max-pool kinks dominate it, so smaller steps do not help in float32), far below
    the sampling noise of a meta batch; it makes MW-Net/GDW/NRT iterations ~1.5x cheaper.
    """
    params = trainable_params(model)
    if method == "forward_ad":
        buffers = {n: b.clone() for n, b in model.named_buffers()}
        with fwAD.dual_level():
            with warnings.catch_warnings():  # torch's own lazy load of its JVP decompositions
                warnings.filterwarnings("ignore", r"`torch\.jit\.script` is deprecated",
                                        FutureWarning)
                duals = {n: fwAD.make_dual(p.detach(), direction[n]) for n, p in params.items()}
            out = functional_call(model, {**buffers, **duals}, (x,))
            tangent = fwAD.unpack_dual(out).tangent
        return tangent if tangent is not None else torch.zeros_like(out)
    if method != "finite_difference":
        raise ValueError(f"invalid jvp={method!r}: allowed: {', '.join(JVP_METHODS)}")
    with torch.no_grad():
        z0 = logits.detach() if logits is not None else functional_forward(model, params, x)
        norm = float(torch.sqrt(sum((direction[n].double() ** 2).sum() for n in params)))
        if norm == 0.0:
            return torch.zeros_like(z0)
        eps = step / norm
        shifted = {n: p.detach() + eps * direction[n] for n, p in params.items()}
        return (functional_forward(model, shifted, x) - z0) / eps


def loss_directional_derivative(logits: torch.Tensor, labels: torch.Tensor,
                                logits_tangent: torch.Tensor) -> torch.Tensor:
    """<grad_theta l_i, v> = (p_i - y_i) . (J_z v)_i for the cross-entropy l_i."""
    err = logit_error(logits, labels)
    return (err * logits_tangent).sum(dim=1)


def meta_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor, logits: torch.Tensor,
                  losses: torch.Tensor, weight_fn: Callable[[], torch.Tensor],
                  weight_params: list[torch.Tensor], x_meta: torch.Tensor,
                  y_meta: torch.Tensor, lr: float, normalize: bool = True,
                  jvp: str = "finite_difference") -> tuple[list[torch.Tensor], float]:
    """grad_Theta L_meta(theta^(Theta)) for the weight-function parameters (MW-Net eq. 4).

    By the chain rule through the look-ahead of eq. 3,
    dL_meta/dw_i = -(lr/B) <grad_theta l_i(theta), grad L_meta(theta^)>, then back through the
    (optional) normalisation and V to Theta. The per-sample inner products are one forward-mode
    JVP of the training batch along grad L_meta(theta^): exactly the second-order term the
    reference code gets by differentiating through ``autograd.grad(create_graph=True)``, at
    half the cost on CPU (BatchNorm's double backward dominates that route); with
    ``jvp="finite_difference"`` (default) the JVP is one forward difference instead (see
    :func:`logits_jvp`).

    ``x, y, logits, losses``: the training batch and the trainer's forward at theta (graph
    kept); ``weight_fn()`` returns the weights (B,) differentiably in ``weight_params``.
    """
    w = weight_fn()
    if normalize:
        w = normalise_to_batch(w)
    params = lookahead_params(model, losses, w, lr)
    g_meta, meta_loss = meta_direction(model, params, x_meta, y_meta)
    dots = loss_directional_derivative(logits, y, logits_jvp(model, x, g_meta, jvp, logits))
    d_w = -lr / losses.shape[0] * dots
    grads = torch.autograd.grad(w, weight_params, grad_outputs=d_w, allow_unused=True)
    out = [torch.zeros_like(p) if g is None else g for p, g in zip(weight_params, grads)]
    return out, meta_loss


def meta_step(model: nn.Module, batch: Batch, logits: torch.Tensor, losses: torch.Tensor,
              weight_fn: Callable[[], torch.Tensor], net: nn.Module,
              optimizer: torch.optim.Optimizer, meta: MetaSampler, lr: float,
              normalize: bool = True, jvp: str = "finite_difference") -> float:
    """One weight-net update (eq. 4) on the next clean meta batch: the meta-gradient of
    :func:`meta_gradient` for ``net``'s parameters, then ``optimizer.step()``. Returns the meta
    loss at the look-ahead parameters (MW-Net, and NRT's meta-training, eqs. 13-15 there)."""
    x_meta, y_meta = meta.next()
    params = list(net.parameters())
    grads, meta_loss = meta_gradient(model, batch.x, batch.y, logits, losses, weight_fn, params,
                                     x_meta, y_meta, lr, normalize, jvp)
    for p, g in zip(params, grads):
        p.grad = g
    optimizer.step()
    return meta_loss


def resolve_setting(setting: str, cfg: EnvConfig | None) -> str:
    """``auto``: ``long_tail`` for an imbalanced run without label noise, else ``noise``."""
    if setting != "auto":
        return setting
    if cfg is not None and cfg.is_imbalanced and not cfg.is_noisy:
        return "long_tail"
    return "noise"


def make_meta_optimizer(params: list[nn.Parameter], setting: str, meta_lr: float | None,
                        cfg: EnvConfig | None) -> torch.optim.Optimizer:
    """The paper code's weight-net optimiser: Adam(1e-3, wd 1e-4) for noise; SGD(1e-5,
    momentum 0.9, wd 5e-4, the classifier's momentum / weight decay) for long-tail."""
    if setting == "long_tail":
        momentum = cfg.momentum if cfg is not None else 0.9
        wd = cfg.weight_decay if cfg is not None else 5e-4
        nesterov = bool(cfg.nesterov) if cfg is not None else False
        return torch.optim.SGD(params, lr=1e-5 if meta_lr is None else meta_lr,
                               momentum=momentum, weight_decay=wd, nesterov=nesterov)
    return torch.optim.Adam(params, lr=1e-3 if meta_lr is None else meta_lr, weight_decay=1e-4)


class MWNetWeigher(Weigher):
    """Meta-Weight-Net: a loss -> weight MLP learned on a clean meta set (eqs. 3-5)."""

    name = "mwnet"
    needs_meta = True

    def __init__(self, cfg: EnvConfig | None = None, hidden: int = 100, setting: str = "auto",
                 meta_lr: float | None = None, normalize: bool = True,
                 jvp: str = "finite_difference") -> None:
        check_number(self.name, "hidden", hidden, 1, integer=True)
        check_choice(self.name, "jvp", jvp, JVP_METHODS)
        self.jvp = jvp
        check_choice(self.name, "setting", setting, SETTINGS)
        if meta_lr is not None:
            check_number(self.name, "meta_lr", meta_lr, 0.0, lo_open=True)
        check_bool(self.name, "normalize", normalize)
        self.cfg = cfg
        self.hidden = int(hidden)
        self.setting = resolve_setting(setting, cfg)
        self.meta_lr = meta_lr
        self.normalize = normalize
        self.vnet: VNet | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.last_meta_loss = float("nan")

    def build(self, seed: int, device: torch.device | str = "cpu") -> None:
        """Create V and its optimiser (seeded; called on the first iteration)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.vnet = VNet(1, self.hidden).to(device)
        self.optimizer = make_meta_optimizer(list(self.vnet.parameters()), self.setting,
                                             self.meta_lr, self.cfg)

    def weights(self, losses: torch.Tensor) -> torch.Tensor:
        """V(l_i; Theta) of the detached losses (the network input is the loss value)."""
        assert self.vnet is not None
        return self.vnet(losses.detach()[:, None])

    def weigh(self, model: nn.Module, batch: Batch, logits: torch.Tensor, losses: torch.Tensor,
              ctx: WeighContext) -> torch.Tensor:
        meta = require_meta(ctx, self.name)
        if self.vnet is None:
            self.build(draw_seed(ctx.generator), losses.device)
        assert self.vnet is not None and self.optimizer is not None
        self.last_meta_loss = meta_step(  # eqs. 3-4
            model, batch, logits, losses, lambda: self.weights(losses), self.vnet,
            self.optimizer, meta, ctx.lr, self.normalize, self.jvp)
        with torch.no_grad():  # eq. 5: the real step uses the updated weight net
            w = self.weights(losses)
            return normalise_to_batch(w) if self.normalize else w

    def state_dict(self) -> dict[str, Any]:
        if self.vnet is None or self.optimizer is None:
            return {}
        return {"vnet": self.vnet.state_dict(), "optimizer": self.optimizer.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state:
            if self.vnet is None:
                self.build(0, next(iter(state["vnet"].values())).device)
            assert self.vnet is not None and self.optimizer is not None
            self.vnet.load_state_dict(state["vnet"])
            self.optimizer.load_state_dict(state["optimizer"])
