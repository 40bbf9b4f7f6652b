"""Meta-gradient machinery shared by MW-Net, GDW and NRT (MW-Net's Algorithm 1).

Every iteration a weight net V(.; Theta) learns on a clean meta batch:

1. look-ahead (MW-Net eq. 3): theta^(Theta) = theta - alpha (1/B) sum_i w_i(Theta) grad l_i,
   plain SGD with the current learning rate alpha, differentiable in Theta;
2. meta step (eq. 4): Theta <- Theta - beta grad_Theta L_meta(theta^(Theta));
3. real step (eq. 5): the trainer updates theta with the weights of the updated V.

How, here:

- The look-ahead reuses the trainer's own forward pass of the training batch (its graph is kept
  for the real step): one first-order backward gives theta^. The look-ahead parameters are
  substituted with ``torch.func.functional_call`` (no model copy, no hand-written meta layers);
  BatchNorm uses batch statistics and the real running statistics are never touched (cloned
  buffers).
- The second-order term comes from one Jacobian-vector product of the training logits along
  grad L_meta(theta^) (:func:`meta_gradient`) instead of a backward through
  ``autograd.grad(create_graph=True)``: exactly by forward-mode AD (``jvp="forward_ad"``, the
  numbers of the double backward) or, by default, by one forward difference
  (``jvp="finite_difference"``, one forward pass without graph). Their error and cost:
  ``benchmarks/baseline_overhead.py`` and the tests of :func:`logits_jvp`.

Cheaper meta-gradients (one option of every :class:`MetaWeigher`, two keywords that combine).
Through eq. 3, eq. 4's gradient is, for every weight w_i of the batch (MW-Net's G_ij form, with
the meta batch's mean),

    dL_meta/dw_i = -(alpha/B) <grad_theta l_i(theta), grad L_meta(theta^)>,

then back through V to Theta; GDW's class-level weights the same through eq. 9. With
T = J_z(theta) grad L_meta(theta^), the Jacobian-vector product of the training logits along the
meta direction (:func:`meta_logit_tangent`), the inner product is (p_i - y_i) . T_i. The backends
of ``meta_grad`` approximate grad L_meta(theta^) and J_z:

- ``"exact"`` (default): as above; the numbers of the code before these options existed.
- ``"last_layer"``: the look-ahead (eq. 3) and the meta-gradient through the final linear layer
  ``fc`` (W, b) only, on the penultimate features h, which are held fixed (detached): FSR's
  feature sharing, the extreme of FaMUS's layer gating (Xu et al., CVPR 2021), which runs the
  meta-gradient through a sampled subset of layers. W' = W - alpha (1/B) sum_i w_i (p_i - y_i)
  h_i^T (b' likewise), L_meta on the meta batch's features at the current body and W', and in
  closed form T_i = G_W h_i + G_b with (G_W, G_b) = grad_(W, b) L_meta(W', b')
  (:func:`last_layer_tangent`). No backward of the training batch and no JVP: one forward of
  the meta batch without graph.
- ``"first_order"``: grad L_meta at theta instead of theta^ (no look-ahead), i.e. the inner
  product of the meta batch's gradient and the sample's gradient, both at the current
  parameters. theta^ - theta = O(alpha), so grad L_meta(theta^) = grad L_meta(theta) +
  H_meta (theta^ - theta) + ...: this drops the second-order term, the meta loss's Hessian
  along the look-ahead step, and is exact to first order in alpha. It is the exact gradient of
  a look-ahead taken from w = 0, which is L2RW's meta-gradient (Ren et al., ICML 2018: their
  weights start at 0, so theta^ = theta there). FMW-Net (Zhou, Shu, Liu, Meng,
  IJMLC 2025) is the first-order MW-Net this stands in for: its own value-function algorithm
  also steps the classifier along the meta loss's gradient, which a weigher cannot do, so it is
  not what runs here. Saves the look-ahead's backward of the training batch; the meta
  forward/backward and the JVP remain.

``meta_every=k``: the meta step (eqs. 3-4: look-ahead and weight-net update, and a meta batch
drawn) only at iterations t with t mod k = 0; in between the current weight net still weighs
every batch (eq. 5 alone). CMW-Net-SL's code (Shu et al., TPAMI 2023) updates every 10 batches,
FMW-Net's every 20, NRT's paper every 20 (``nrt``'s ``meta_interval``).

:class:`MetaWeigher` is the skeleton of the three weighers: a weight net and its optimiser,
built seeded at the first iteration, the meta sampler required every iteration, MW-Net's
update-then-weigh step and the options above.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from typing import cast

import torch
import torch.autograd.forward_ad as fwAD
import torch.nn.functional as F
from torch import nn
from torch.func import functional_call

from reweight_gym.baselines._common import logit_error, normalise_to_batch
from reweight_gym.config import EnvConfig
from reweight_gym.training.functional import functional_forward, trainable_params
from reweight_gym.training.pipeline import MetaSampler
from reweight_gym.training.weigher import Batch, WeighContext, Weigher
from reweight_gym.validation import check_bool, check_choice, check_number

JVP_METHODS = ("finite_difference", "forward_ad")
SETTINGS = ("auto", "noise", "long_tail")
#: How the meta-gradient is computed (``meta_grad``; the module docstring).
META_GRADS = ("exact", "last_layer", "first_order")


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


def logits_jvp(model: nn.Module, x: torch.Tensor, direction: dict[str, torch.Tensor],
               method: str = "finite_difference", logits: torch.Tensor | None = None,
               step: float = 1e-3) -> torch.Tensor:
    """J_z(theta) v: the directional derivative of the training-batch logits (B, C) along v
    (train mode: batch statistics; cloned buffers, the real running statistics untouched).

    ``forward_ad``: exact, by forward-mode AD through a functional call (the tangent pass costs
    more than a plain forward: several products per convolution, BatchNorm's tangent formulas).
    ``finite_difference`` (default): (z(theta + e v) - z(theta)) / e with e = ``step`` / ||v||,
    one forward pass without graph; ``logits`` = z(theta) from the trainer's own forward is
    reused when given. Its error comes from ReLU and max-pool kinks, so a smaller step does not
    help in float32; it stays far below the sampling noise of a meta batch.
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
    check_choice("jvp", method, JVP_METHODS)
    with torch.no_grad():
        z0 = logits.detach() if logits is not None else functional_forward(model, params, x)
        sq = cast(torch.Tensor, sum((direction[n].double() ** 2).sum() for n in params))
        norm = float(torch.sqrt(sq))
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


def weighted_logit_grad(weights: torch.Tensor, logits: torch.Tensor,
                        labels: torch.Tensor) -> torch.Tensor:
    """w * (p - y) / B (B, C): the logit gradient of the weighted loss (1/B) sum_i w_i l_i for
    per-sample weights w (B,), or GDW's manipulated logit gradient (eq. 2) for class-level
    weights w (B, C); constant (no graph)."""
    w = weights.detach()
    w = w if w.dim() == 2 else w[:, None]
    return w * logit_error(logits, labels) / logits.shape[0]


def fc_grad(h: torch.Tensor, logit_grad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(G_W, G_b) = (logit_grad^T h, sum_i logit_grad_i): the gradient with respect to the last
    layer z = W h + b of a loss whose logit gradient is ``logit_grad`` (B, C), on the features
    h (B, F)."""
    return logit_grad.T @ h, logit_grad.sum(0)


def fc_jvp(h: torch.Tensor, g_w: torch.Tensor, g_b: torch.Tensor | None) -> torch.Tensor:
    """J_z v = G_W h_i + G_b (B, C): the derivative of the logits z = W h + b along the last-layer
    direction v = (G_W, G_b), the features held fixed."""
    proj = h @ g_w.T
    return proj if g_b is None else proj + g_b


class PenultimateFeatures:
    """The input of ``model.fc`` (the penultimate features h) at the model's latest forward pass,
    captured by a forward pre-hook: the feature sharing of FSR and of ``meta_grad="last_layer"``.
    Every model of :mod:`reweight_gym.models` ends in the linear layer ``fc``."""

    def __init__(self, method: str) -> None:
        self.method = method
        self.features: torch.Tensor | None = None
        self._hooked: set[int] = set()

    def attach(self, model: nn.Module, who: str) -> None:
        """Capture every forward of ``model`` from now on (once per model); ``who`` names what
        needs it in the error for a model without ``fc``."""
        if id(model) in self._hooked:
            return
        fc = getattr(model, "fc", None)
        if not isinstance(fc, nn.Linear):
            raise ValueError(f"{who} needs a model whose last layer is the nn.Linear `fc` "
                             f"(feature sharing); got {type(fc).__name__}")

        def capture(module: nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            self.features = args[0]

        fc.register_forward_pre_hook(capture)
        self._hooked.add(id(model))

    def clear(self) -> None:
        """Forget the latest features (a forward whose features are not needed)."""
        self.features = None

    def take(self) -> torch.Tensor:
        """The latest features, detached (the capture is emptied)."""
        h = self.features
        if h is None:
            raise ValueError(f"{self.method}: no features captured; setup(model, ...) was not "
                             "called")
        self.features = None
        return h.detach()

    def of(self, model: nn.Module, x: torch.Tensor) -> torch.Tensor:
        """The features of ``x`` at the current parameters, without graph (batch statistics; the
        running statistics untouched)."""
        with torch.no_grad():
            functional_forward(model, dict(model.named_parameters()), x)
        return self.take()


def last_layer_tangent(fc: nn.Linear, h: torch.Tensor, h_meta: torch.Tensor,
                       logit_grad: torch.Tensor, y_meta: torch.Tensor,
                       lr: float) -> tuple[torch.Tensor, float]:
    """``meta_grad="last_layer"``: T = J_z grad L_meta(W', b') through the last layer only.

    The look-ahead of eq. 3 (GDW eq. 9) restricted to ``fc``: W' = W - lr G_W, b' = b - lr G_b
    with (G_W, G_b) the last layer's gradient of the weighted training loss (its logit gradient
    ``logit_grad``, :func:`weighted_logit_grad`); the meta loss on the meta batch's features
    ``h_meta`` (the body at theta); T_i = G'_W h_i + G'_b with (G'_W, G'_b) its gradient at
    (W', b'). All in closed form, without graph. Returns T (B, C) and L_meta(W', b').
    """
    with torch.no_grad():
        g_w, g_b = fc_grad(h, logit_grad)
        w_la = fc.weight.detach() - lr * g_w
        b_la = None if fc.bias is None else fc.bias.detach() - lr * g_b
        z_meta = F.linear(h_meta, w_la, b_la)
        meta_loss = F.cross_entropy(z_meta, y_meta)
        gm_w, gm_b = fc_grad(h_meta, logit_error(z_meta, y_meta) / len(y_meta))
        return fc_jvp(h, gm_w, None if b_la is None else gm_b), float(meta_loss)


def current_params(model: nn.Module) -> dict[str, torch.Tensor]:
    """theta itself, detached and requiring grad: where ``meta_grad="first_order"`` takes the
    meta batch's gradient instead of the look-ahead theta^."""
    return {n: p.detach().requires_grad_() for n, p in trainable_params(model).items()}


def meta_logit_tangent(model: nn.Module, x: torch.Tensor, y: torch.Tensor, logits: torch.Tensor,
                       weights: torch.Tensor, lookahead: Callable[[], dict[str, torch.Tensor]],
                       x_meta: torch.Tensor, y_meta: torch.Tensor, lr: float,
                       meta_grad: str = "exact", jvp: str = "finite_difference",
                       features: PenultimateFeatures | None = None
                       ) -> tuple[torch.Tensor, float]:
    """T = J_z(theta) grad L_meta(theta^) (B, C), the training logits' derivative along the meta
    direction, and the meta loss: the factor of every meta-gradient here (MW-Net eq. 4,
    GDW eq. 10), by the backend ``meta_grad`` (module docstring).

    ``weights``: the look-ahead's weights, (B,) or GDW's (B, C); ``lookahead()``: the full
    look-ahead theta^ (eq. 3 / GDW eq. 9), called by ``exact`` only; ``features``: the captured
    penultimate features, for ``last_layer`` (the training batch's come from the trainer's
    forward, the meta batch's from a forward without graph).
    """
    if meta_grad == "last_layer":
        assert features is not None
        h = features.take()
        h_meta = features.of(model, x_meta)
        fc: nn.Linear = model.fc  # type: ignore[assignment]
        return last_layer_tangent(fc, h, h_meta, weighted_logit_grad(weights, logits, y),
                                  y_meta, lr)
    params = lookahead() if meta_grad == "exact" else current_params(model)
    g_meta, meta_loss = meta_direction(model, params, x_meta, y_meta)
    return logits_jvp(model, x, g_meta, jvp, logits), meta_loss


def meta_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor, logits: torch.Tensor,
                  losses: torch.Tensor, weight_fn: Callable[[], torch.Tensor],
                  weight_params: Sequence[torch.Tensor], x_meta: torch.Tensor,
                  y_meta: torch.Tensor, lr: float, normalize: bool = True,
                  jvp: str = "finite_difference", meta_grad: str = "exact",
                  features: PenultimateFeatures | None = None
                  ) -> tuple[list[torch.Tensor], float]:
    """grad_Theta L_meta(theta^(Theta)) for the weight-function parameters (MW-Net eq. 4).

    By the chain rule through the look-ahead of eq. 3,
    dL_meta/dw_i = -(lr/B) <grad_theta l_i(theta), grad L_meta(theta^)>, then back through the
    (optional) normalisation and V to Theta. The per-sample inner products are one JVP of the
    training batch along grad L_meta(theta^) (:func:`logits_jvp`): the second-order term the
    reference code gets by differentiating through ``autograd.grad(create_graph=True)``, without
    BatchNorm's double backward. ``meta_grad`` approximates it (:func:`meta_logit_tangent`).

    ``x, y, logits, losses``: the training batch and the trainer's forward at theta (graph
    kept); ``weight_fn()`` returns the weights (B,) differentiably in ``weight_params``.
    """
    w = weight_fn()
    if normalize:
        w = normalise_to_batch(w)
    tangent, meta_loss = meta_logit_tangent(
        model, x, y, logits, w, lambda: lookahead_params(model, losses, w, lr), x_meta, y_meta,
        lr, meta_grad, jvp, features)
    dots = loss_directional_derivative(logits, y, tangent)
    d_w = -lr / losses.shape[0] * dots
    grads = torch.autograd.grad(w, weight_params, grad_outputs=d_w, allow_unused=True)
    out = [torch.zeros_like(p) if g is None else g for p, g in zip(weight_params, grads)]
    return out, meta_loss


def apply_gradients(optimizer: torch.optim.Optimizer, params: Sequence[torch.Tensor],
                    grads: list[torch.Tensor] | tuple[torch.Tensor, ...]) -> None:
    """One optimiser step of the weight net with the given meta-gradients."""
    for p, g in zip(params, grads):
        p.grad = g
    optimizer.step()


def meta_step(model: nn.Module, batch: Batch, logits: torch.Tensor, losses: torch.Tensor,
              weight_fn: Callable[[], torch.Tensor], net: nn.Module,
              optimizer: torch.optim.Optimizer, meta: MetaSampler, lr: float,
              normalize: bool = True, jvp: str = "finite_difference", meta_grad: str = "exact",
              features: PenultimateFeatures | None = None) -> float:
    """One weight-net update (eq. 4) on the next clean meta batch: the meta-gradient of
    :func:`meta_gradient` for ``net``'s parameters, then ``optimizer.step()``. Returns the meta
    loss at the look-ahead parameters."""
    x_meta, y_meta = meta.next()
    params = list(net.parameters())
    grads, meta_loss = meta_gradient(model, batch.x, batch.y, logits, losses, weight_fn, params,
                                     x_meta, y_meta, lr, normalize, jvp, meta_grad, features)
    apply_gradients(optimizer, params, grads)
    return meta_loss


def resolve_setting(setting: str, cfg: EnvConfig | None) -> str:
    """``auto``: ``long_tail`` for an imbalanced run without label noise, else ``noise``."""
    if setting != "auto":
        return setting
    if cfg is not None and cfg.is_imbalanced and not cfg.is_noisy:
        return "long_tail"
    return "noise"


#: Iterations of the runs the papers' weight-net learning rates are for (MW-Net's CIFAR runs:
#: 500 iterations of 100 images per epoch, 120 epochs).
PAPER_ITERATIONS = 60_000


def paper_meta_lr(setting: str) -> float:
    """The paper code's weight-net learning rate: Adam 1e-3 (noise), SGD 1e-5 (long tail)."""
    return 1e-5 if setting == "long_tail" else 1e-3


def run_length_lr(paper_lr: float, iterations: int, exponent: float) -> float:
    """The weight net's learning rate for a run of T = ``iterations`` meta updates:
    paper_lr * (60,000 / T)^exponent, the paper's value at the papers' run length.

    The exponents, per optimiser and weight function (chosen on validation accuracy by
    ``benchmarks/method_defaults.py``; results in ``benchmarks/results/method_defaults/`` and
    the CIFAR-10 tables in ``benchmarks/results/cifar10-cpu-noaug/``):

    - ``1``, SGD (MW-Net's and GDW's long-tail optimiser): SGD moves V by about
      lr x T x the mean meta-gradient, so this moves it as far as in the paper's run; at the
      paper's 1e-5 a run of a few hundred iterations leaves V near its random initialisation.
    - ``0``, Adam on MW-Net's V (noise, CNNs): the paper's 1e-3 at every length. Adam's steps
      have a fixed size whatever the gradient's. (On MLPs MW-Net's default is its own:
      :data:`reweight_gym.baselines.mwnet.MLP_NOISE_META_LR`.)
    - ``1/2``, Adam on GDW's V and on NRT's tree (noise): GDW's class-level step (eq. 11)
      re-weighs every iteration on top of V, and NRT's tree starts flat (every leaf score 0) and
      has to travel before it weighs anything; both gain from a faster weight function in short
      runs. 1e-3 at 60,000 iterations, 1e-2 at 600.
    """
    return paper_lr * (PAPER_ITERATIONS / max(1, int(iterations))) ** exponent


def check_meta_lr(field: str, value: float | str | None) -> None:
    """``meta_lr``: ``None`` (the run-length rule), ``"paper"`` or a number > 0."""
    if value is None or value == "paper":
        return
    if isinstance(value, str):
        raise ValueError(f"invalid {field}={value!r}: allowed: None (the run-length rule), "
                         "'paper', or a number > 0")
    check_number(field, value, 0.0, lo_open=True)


def resolve_meta_lr(meta_lr: float | str | None, paper_lr: float, iterations: int,
                    exponent: float) -> float:
    """``meta_lr`` as a number: ``"paper"`` -> ``paper_lr``; ``None`` -> :func:`run_length_lr`
    for a run of ``iterations``; a number -> itself."""
    if meta_lr == "paper":
        return paper_lr
    if meta_lr is None:
        return run_length_lr(paper_lr, iterations, exponent)
    return float(meta_lr)


def make_meta_optimizer(params: list[nn.Parameter], setting: str, lr: float,
                        cfg: EnvConfig | None) -> torch.optim.Optimizer:
    """The paper code's weight-net optimiser at learning rate ``lr``: Adam (wd 1e-4) for noise;
    SGD (momentum 0.9, wd 5e-4: the classifier's momentum / weight decay) for long-tail."""
    if setting == "long_tail":
        momentum = cfg.momentum if cfg is not None else 0.9
        wd = cfg.weight_decay if cfg is not None else 5e-4
        nesterov = bool(cfg.nesterov) if cfg is not None else False
        return torch.optim.SGD(params, lr=lr, momentum=momentum, weight_decay=wd,
                               nesterov=nesterov)
    return torch.optim.Adam(params, lr=lr, weight_decay=1e-4)


def require_meta(ctx: WeighContext, method: str) -> MetaSampler:
    """The clean meta sampler, which the trainer supplies only to ``needs_meta`` weighers."""
    if ctx.meta is None:
        raise ValueError(f"{method} needs a clean meta set: the run has none (meta_size="
                         "0?) or the weigher does not declare needs_meta = True")
    return ctx.meta


def draw_seed(generator: torch.Generator) -> int:
    """A seed for a weigher's own initialisation, drawn from the run's weigher generator."""
    return int(torch.randint(0, 2**31 - 1, (1,), generator=generator))


class MetaWeigher(Weigher):
    """A weigher whose weight net learns by meta-gradient on the clean meta set.

    Subclasses set ``name`` and implement :meth:`meta_weigh`. The net and its optimiser are
    built at the first iteration, on the batch's device, seeded from the run's weigher generator
    (a run is deterministic by its seed); by default they are MW-Net's V(l; Theta) of the loss
    (``hidden`` units) and the paper code's optimiser for ``setting``, at the learning rate
    ``meta_lr`` resolves to for the run's length (:func:`resolve_meta_lr`; ``lr``).
    ``normalize``: the real step's weights are divided by their batch sum, as the paper code's
    ``norm_c`` (returned times B, see ``normalise_to_batch``). ``meta_every`` and ``meta_grad``:
    the meta step's frequency and backend (module docstring); their defaults, 1 and ``"exact"``,
    are the method as published.
    """

    needs_meta = True
    hidden: int = 100
    setting: str = "noise"
    meta_lr: float | str | None = None
    lr: float | None = None  # the weight net's learning rate, resolved when it is built

    def __init__(self, cfg: EnvConfig | None, jvp: str, normalize: bool, meta_every: int = 1,
                 meta_grad: str = "exact") -> None:
        check_choice(f"{self.name} kwarg jvp", jvp, JVP_METHODS)
        check_bool(f"{self.name} kwarg normalize", normalize)
        check_number(f"{self.name} kwarg meta_every", meta_every, 1, integer=True)
        check_choice(f"{self.name} kwarg meta_grad", meta_grad, META_GRADS)
        self.cfg = cfg
        self.jvp = jvp
        self.normalize = normalize
        self.meta_every = int(meta_every)
        self.meta_grad = meta_grad
        self.features = PenultimateFeatures(self.name)
        self.net: nn.Module | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.last_meta_loss = float("nan")

    def setup(self, model: nn.Module, num_classes: int, device: torch.device) -> None:
        """``meta_grad="last_layer"``: capture the penultimate features of every forward."""
        if self.meta_grad == "last_layer":
            self.features.attach(model, f"{self.name} kwarg meta_grad='last_layer'")

    def is_meta_iteration(self, ctx: WeighContext) -> bool:
        """Whether this iteration takes a meta step (every ``meta_every``-th, from the first)."""
        return ctx.iteration % self.meta_every == 0

    def make_net(self, num_classes: int) -> nn.Module:
        """The weight net (called under a fixed seed): V(l; Theta), 1 -> hidden -> 1."""
        return VNet(1, self.hidden)

    def paper_lr(self) -> float:
        """The paper's weight-net learning rate (:func:`paper_meta_lr`)."""
        return paper_meta_lr(self.setting)

    def lr_exponent(self) -> float:
        """The exponent of :func:`run_length_lr`: 1 for SGD (long tail), 1/2 for Adam."""
        return 1.0 if self.setting == "long_tail" else 0.5

    def resolve_lr(self, iterations: int) -> float:
        """The weight net's learning rate for a run of ``iterations``
        (:func:`resolve_meta_lr`)."""
        return resolve_meta_lr(self.meta_lr, self.paper_lr(), iterations, self.lr_exponent())

    def make_optimizer(self) -> torch.optim.Optimizer:
        """The weight net's optimiser (:func:`make_meta_optimizer`) at ``self.lr``."""
        assert self.net is not None and self.lr is not None
        return make_meta_optimizer(list(self.net.parameters()), self.setting, self.lr, self.cfg)

    def meta_weigh(self, model: nn.Module, batch: Batch, logits: torch.Tensor,
                   losses: torch.Tensor, ctx: WeighContext, meta: MetaSampler) -> torch.Tensor:
        """Update the weight net and return the weights of the real step."""
        raise NotImplementedError  # abstract

    def build(self, seed: int, num_classes: int, device: torch.device | str = "cpu",
              iterations: int = PAPER_ITERATIONS) -> None:
        """Create the weight net (seeded by ``seed``) and its optimiser, at the learning rate
        ``meta_lr`` gives for a run of ``iterations``."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = self.make_net(num_classes)
        self.net = net.to(device)
        self.lr = self.resolve_lr(iterations)
        self.optimizer = self.make_optimizer()

    def weigh(self, model: nn.Module, batch: Batch, logits: torch.Tensor, losses: torch.Tensor,
              ctx: WeighContext) -> torch.Tensor:
        meta = require_meta(ctx, self.name)
        if self.net is None:
            self.build(draw_seed(ctx.generator), logits.shape[1], losses.device,
                       ctx.total_iterations)
        return self.meta_weigh(model, batch, logits, losses, ctx, meta)

    def meta_update(self, model: nn.Module, batch: Batch, logits: torch.Tensor,
                    losses: torch.Tensor, weight_fn: Callable[[], torch.Tensor],
                    meta: MetaSampler, lr: float) -> None:
        """Look-ahead and weight-net step (MW-Net eqs. 3-4) for the weights ``weight_fn()``."""
        assert self.net is not None and self.optimizer is not None
        self.last_meta_loss = meta_step(model, batch, logits, losses, weight_fn, self.net,
                                        self.optimizer, meta, lr, self.normalize, self.jvp,
                                        self.meta_grad, self.features)

    def real_weights(self, weight_fn: Callable[[], torch.Tensor]) -> torch.Tensor:
        """The updated net's weights for the trainer's real step (MW-Net eq. 5)."""
        with torch.no_grad():
            w = weight_fn()
            return normalise_to_batch(w) if self.normalize else w
