"""``fsr``: Fast Sample Re-weighting without reward data (Zhang and Pfister, ICCV 2021).

No clean meta set is used (``needs_meta = False``; the trainer never hands one over). Instead:

- Proxy reward set: a class-balanced dictionary R of training samples (by observed label;
  ``dictionary_size`` |R|, 2,000 for noise / 3,000 for long-tail in the paper, capped at a quarter
  of the training set for small runs), drawn at random before training and refreshed at the end
  of every epoch: per class, the |R|/C samples with the best momentum meta-margin are kept.
- Meta-margin pusher (eq. 5): P(x) = l(x; Theta_t) - l(x; Theta*_t), the drop of a training
  sample's loss under the look-ahead Theta*_t; the score is smoothed per sample,
  P^ <- lambda P^ + (1 - lambda) P (lambda = 0.9), and samples whose loss drops most are kept.
  ``margin="leave_one_out"`` (default) measures the drop under the look-ahead *without the
  sample's own gradient term* (exact and cheap for the last layer, :func:`self_influence`);
  ``margin="full"`` with it, as the reference code (deviation (a) below).
- Feature sharing: the look-ahead and the weight gradient involve only the last (FC) layer
  (W, b), on top of the features h the trainer's forward already computed (captured by a
  forward pre-hook on ``model.fc``). With eps_i = 1/B and the look-ahead
  W' = W - alpha (mu buf + sum_i eps_i grad_W l_i) (the code's ``meta_momentum``: buf is the
  momentum buffer of the last layer's real gradients, kept here in closed form since the
  optimiser belongs to the trainer; mu = the run's momentum), the derivative of the reward-set
  loss L_R(W') with respect to eps_i has the closed form
  dL_R/d eps_i = -alpha <grad_W l_i, grad_W L_R(W')> = -alpha (p_i - y_i)^T (G_W h_i + G_b),
  where G = grad L_R at W' (``last_layer_weight_gradient``) on a probe batch of q samples of R
  (``probe_batch_size``, the paper's q: 200 for noise, 800 for long tail), which needs one
  forward of the backbone, without backward.
- Look-ahead step alpha (``lookahead_lr``): the paper's fixed eta = 0.1 (Table 4, and its
  code); ``lookahead_lr="schedule"`` follows the run's current learning rate instead, so the
  reweighting fades out as the schedule decays.
- Weights (label noise): raw = eps - dL_R/d eps. The paper code's rule is max(raw - eps, 0) =
  max(-dL_R/d eps, 0) (``clip_code``, L2R's): it zeroes every sample whose meta-gradient is
  positive, the large share of zero weights of the paper's Fig. 6, and puts many times the mean
  weight on the samples best aligned with the proxy gradient. The paper's text writes
  max(eps - dL_R/d eps, 0) (``rule="clip"``), whose eps floor keeps every weight near uniform
  where the meta-gradient is small (almost no zeros); its code and figure disagree with its
  text. Long tail: w = raw - min(raw) + eps (``shift``, every sample keeps a positive weight).
  The weights are then normalised to sum 1 and returned multiplied by B for the trainer's
  (1/B) sum_i w_i l_i.
- The defaults (``rule="auto"``, ``lookahead_lr="auto"``) depend on the model family
  (``reweight_gym.models.model_family``), chosen on validation accuracy (docs, "Baselines:
  defaults"): on a CNN (BatchNorm, as the paper's ResNets) the paper code's rule and fixed step
  (``clip_code``, 0.1); on an MLP, where the amplified steps along the proxy gradient make
  training collapse, the written rule and the scheduled step (``clip``, ``"schedule"``). Long
  tail: ``shift`` on both.
- Warm-up: the first ``warmup_epochs`` epochs use uniform weights; the look-ahead and the
  dictionary scores are still updated.
- Long tail: the code trains with label smoothing 0.1 (``label_smoothing``, default 0.1 for an
  imbalanced run without noise, 0 otherwise): the training loss, the look-ahead, the reward
  loss and the meta-margin use the smoothed targets (1 - a) y + a / C; the trainer's plain
  cross-entropy is topped up by the extra loss sum_i w_i (l^a_i - l_i) / B.
- For label noise, the paper's full FSR (the registered method ``fsr_relabel_mixup``; ``fsr``
  alone is its FSR-Raw): momentum re-labelling (``relabel``): each sample keeps an EMA of its
  predictions (``relabel_momentum`` beta = 0.1, the paper's and the code's), its pseudo label is
  read off it (``relabel_ema``, deviation (c) below), and ``relabel_weight`` (p = 2) times the
  mean cross-entropy to it is added after warm-up; and MixUp (``mixup``): the weighted loss is
  computed on a MixUp of the batch (lambda ~ Beta(a, a), one per batch) with the sample weights
  of the un-mixed batch (``mixup_weights``, deviation (b) below). MixUp needs a forward of the
  mixed batch; here it is returned as an extra loss sum_i w_i (l~_i - l_i)/B whose gradient
  cancels the trainer's un-mixed term, so the update is exactly that of the mixed weighted loss
  (at the cost of the extra forward/backward). The mixed forward uses batch statistics without
  touching the BatchNorm running statistics (cloned buffers), so they are updated once per
  iteration.
- Deviations from the reference code (google-research ``ieg/models/fsr.py``; issue 29.13): each
  is a keyword, and each default was chosen on the *validation* accuracy of the demo's run
  (digits, 40% uniform noise, the MLP, seeds 0-2) against the code's behaviour:
  ``python -m benchmarks.fsr_deviations``, numbers in
  ``benchmarks/results/fsr_deviations/table.md`` (with the test accuracy, reported only).

  (a) ``margin``. The code: ``loss_margin = net_cost - meta_net_cost``, the training batch's
  loss before and after the look-ahead step that includes each sample's own term
  (``margin="full"``). Ours (default ``"leave_one_out"``): the look-ahead without the sample's
  own term. Why: with its own term, a mislabelled sample's large gradient lowers its own loss
  most, so the score ranks mislabelled samples first and the dictionary is noisier (the share of
  mislabelled samples in it: ``benchmarks/fsr_dictionary.py``); FSR-Raw with the code's margin
  also ended lower on validation on average (never higher on a seed), so the default stays.

  (b) ``mixup_weights``. The code trains on the MixUp batch only and computes the weights from
  its cost (``meta_optimize(net_cost)`` with ``net_cost`` the mixed batch's cross-entropy to the
  mixed labels: the look-ahead, the weight gradient and the optimiser's momentum buffer all of
  the mixed samples): ``mixup_weights="mixed"`` (the look-ahead on the mixed features and
  targets, the momentum buffer of the mixed step; the meta-margin stays that of the un-mixed
  samples, whose labels the dictionary holds). Ours (default ``"unmixed"``): the weights of the
  un-mixed batch (each sample judged on its own label, not on a blend with a random partner)
  applied to the mixed loss. Why kept: on validation the paired differences are within the
  seed-to-seed noise and change sign with the re-labelling (``"mixed"`` higher with
  ``relabel_ema="probs"``, lower with the default ``"logits"``); the default pair is the arm with
  the highest mean validation accuracy (the table). Other MixUp differences that are not
  options: the code mixes from the first step (warm-up included), with one coefficient per
  sample, max(u^2/2, 1 - u^2/2), u ~ U(0, 1), and without label smoothing; ours mixes after
  warm-up with one lambda ~ Beta(a, a) per batch.

  (c) ``relabel_ema``. The code (``compute_pseudo_loss``, flag ``all_1_0.1_2``): an EMA of the
  *logits* per sample, e (0 at the start), the pseudo label softmax(logit_norm(e) / T) taken
  *before* the step's update e <- beta logit_norm(e) + (1 - beta) z (beta =
  ``relabel_momentum``), with logit_norm(v) =
  v / rms(v) (one scale for the batch, :func:`logit_norm`) and T = ``relabel_temperature``
  (1, the code's); e is updated on every step, warm-up included: ``relabel_ema="logits"``, the
  default. The paper's eq. 7 (``relabel_ema="probs"``): y^ <- beta y^ + (1 - beta) p, the EMA of
  the softmax probabilities, taken after the update and updated after warm-up only; with
  beta = 0.1 that target is 0.9 of the current prediction, so the re-labelling loss pulls the
  logits only by 0.1 (p - y^_old) and hardly acts, where the code's target is the (normalised)
  prediction of the sample's previous visit. Why changed: ``"logits"`` ended higher on
  validation on every seed (the table). One difference remains: with MixUp the code's EMA and
  pseudo-label loss use the mixed batch's logits; ours the un-mixed batch's.
- The meta weighers' cheaper meta steps (``meta_every``, ``meta_grad``;
  :mod:`reweight_gym.baselines.meta`) are not options here. FSR already is the ``last_layer``
  backend: its look-ahead and weight gradient run through the last layer only (feature
  sharing). A first-order variant (the reward gradient at W instead of W') would save only a few
  matrix products, the look-ahead being closed form. And FSR has no weight function that could
  weigh the batches between meta steps: its weights are each batch's own meta-gradient, so a
  meta step every k iterations would have to reuse a stale reward-set gradient, another method.
  Its extra cost is the probe batch's forward without graph (and the full FSR's MixUp forward
  and backward).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from reweight_gym.baselines._common import logit_error, normalise_to_batch
from reweight_gym.baselines.meta import PenultimateFeatures, fc_grad, fc_jvp
from reweight_gym.config import EnvConfig
from reweight_gym.models import model_family
from reweight_gym.training.functional import functional_forward
from reweight_gym.training.weigher import Batch, WeighContext, Weigher, Weighting
from reweight_gym.validation import check_bool, check_choice, check_number

RULES = ("auto", "clip", "clip_code", "shift")
MARGINS = ("leave_one_out", "full")
#: ``mixup_weights``: weights from the un-mixed batch (ours) or from the MixUp batch (the code's)
MIXUP_WEIGHTS = ("unmixed", "mixed")
#: ``relabel_ema``: EMA of the softmax probabilities (ours, eq. 7) or of the logits (the code's)
RELABEL_EMAS = ("probs", "logits")
#: ``lookahead_lr`` as a word: ``"schedule"`` follows the run's current learning rate
LOOKAHEAD_STEPS = ("auto", "schedule")


def last_layer_weight_gradient(h: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor,
                               g_w: torch.Tensor, g_b: torch.Tensor | None,
                               lr: float, smoothing: float = 0.0) -> torch.Tensor:
    """dL_R/d eps_i = -lr <grad_(W,b) l_i, (G_W, G_b)> = -lr (p_i - y_i)^T (G_W h_i + G_b).

    The closed form of the gradient of the reward loss after a last-layer look-ahead with
    respect to the per-sample weights eps (FSR's feature sharing); y_i label-smoothed by
    ``smoothing``.
    """
    return weight_gradient_from_error(h, logit_error(logits, labels, smoothing), g_w, g_b, lr)


def weight_gradient_from_error(h: torch.Tensor, err: torch.Tensor, g_w: torch.Tensor,
                               g_b: torch.Tensor | None, lr: float) -> torch.Tensor:
    """:func:`last_layer_weight_gradient` from the logit gradients ``err`` = p_i - y_i (any
    targets y_i: a MixUp batch's mixed ones)."""
    return -lr * (err * fc_jvp(h, g_w, g_b)).sum(dim=1)


def last_layer_grad(h: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor,
                    eps: torch.Tensor, smoothing: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """(sum_i eps_i (p_i - y_i) h_i^T, sum_i eps_i (p_i - y_i)): the last layer's gradient of
    the eps-weighted loss (y_i label-smoothed by ``smoothing``)."""
    return fc_grad(h, logit_error(logits, labels, smoothing) * eps[:, None])


def last_layer_lookahead(fc: nn.Linear, h: torch.Tensor, logits: torch.Tensor,
                         labels: torch.Tensor, eps: torch.Tensor, lr: float,
                         momentum: float = 0.0, buffer: tuple[torch.Tensor, torch.Tensor] | None
                         = None, smoothing: float = 0.0
                         ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """W' = W - lr (mu buf_W + sum_i eps_i (p_i - y_i) h_i^T), b' likewise: a momentum-SGD
    look-ahead of the last layer (the FSR code adds the optimiser's momentum buffer)."""
    return lookahead_from_error(fc, h, logit_error(logits, labels, smoothing), eps, lr, momentum,
                                buffer)


def lookahead_from_error(fc: nn.Linear, h: torch.Tensor, err: torch.Tensor, eps: torch.Tensor,
                         lr: float, momentum: float = 0.0,
                         buffer: tuple[torch.Tensor, torch.Tensor] | None = None
                         ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """:func:`last_layer_lookahead` from the logit gradients ``err`` = p_i - y_i (any targets)."""
    g_w, g_b = fc_grad(h, err * eps[:, None])
    if buffer is not None and momentum > 0:
        g_w, g_b = g_w + momentum * buffer[0], g_b + momentum * buffer[1]
    w = fc.weight - lr * g_w
    b = None if fc.bias is None else fc.bias - lr * g_b
    return w, b


def self_influence(h: torch.Tensor, logits: torch.Tensor, labels: torch.Tensor,
                   eps: torch.Tensor, lr: float, bias: bool = True,
                   smoothing: float = 0.0) -> torch.Tensor:
    """The part of each sample's own look-ahead logits that its own gradient contributed:
    lr eps_i (||h_i||^2 + 1) (p_i - y_i) (exact for the last layer, ``+ 1`` for the bias).

    Adding it to z'_i gives the logits of sample i under the look-ahead *without* its own term,
    W'_(-i) = W' + lr eps_i grad_W l_i, so the meta-margin measures how much the rest of the
    batch (and the momentum) lowers the sample's loss.
    """
    err = logit_error(logits, labels, smoothing)
    sq = (h * h).sum(1) + (1.0 if bias else 0.0)
    return (lr * eps * sq)[:, None] * err


def logit_norm(v: torch.Tensor) -> torch.Tensor:
    """v / sqrt(mean(v^2) + 1e-8), one scale for the whole tensor (the reference code's
    ``custom_ops.logit_norm``, applied to a batch's EMA logits)."""
    return v * torch.rsqrt((v * v).mean() + 1e-8)


class FSRWeigher(Weigher):
    """Fast Sample Re-weighting with a class-balanced proxy dictionary (no meta set): the paper's
    FSR-Raw by default (no re-labelling, no MixUp; ``fsr_relabel_mixup`` is the full FSR)."""

    name = "fsr"
    needs_meta = False

    def __init__(self, cfg: EnvConfig | None = None, dictionary_size: int | None = None,
                 probe_batch_size: int | None = None, score_momentum: float = 0.9,
                 warmup_epochs: int | None = None, rule: str = "auto",
                 lookahead_lr: float | str = "auto", relabel: bool = False,
                 relabel_weight: float = 2.0, relabel_momentum: float = 0.1,
                 mixup: bool = False, mixup_alpha: float = 1.0,
                 meta_momentum: float | None = None, margin: str = "leave_one_out",
                 label_smoothing: float | None = None, mixup_weights: str = "unmixed",
                 relabel_ema: str = "logits", relabel_temperature: float = 1.0) -> None:
        check_choice(f"{self.name} kwarg margin", margin, MARGINS)
        check_choice(f"{self.name} kwarg mixup_weights", mixup_weights, MIXUP_WEIGHTS)
        check_choice(f"{self.name} kwarg relabel_ema", relabel_ema, RELABEL_EMAS)
        check_number(f"{self.name} kwarg relabel_temperature", relabel_temperature, 0.0,
                     lo_open=True)
        check_number(f"{self.name} kwarg meta_momentum", meta_momentum, 0.0, 1.0, hi_open=True,
                     optional=True)
        check_number(f"{self.name} kwarg dictionary_size", dictionary_size, 1, integer=True,
                     optional=True)
        check_number(f"{self.name} kwarg probe_batch_size", probe_batch_size, 1, integer=True,
                     optional=True)
        check_number(f"{self.name} kwarg score_momentum", score_momentum, 0.0, 1.0, hi_open=True)
        check_number(f"{self.name} kwarg warmup_epochs", warmup_epochs, 0, integer=True,
                     optional=True)
        check_choice(f"{self.name} kwarg rule", rule, RULES)
        if isinstance(lookahead_lr, str):  # "schedule": the run's current learning rate
            check_choice(f"{self.name} kwarg lookahead_lr", lookahead_lr, LOOKAHEAD_STEPS)
        else:
            check_number(f"{self.name} kwarg lookahead_lr", lookahead_lr, 0.0, lo_open=True)
        check_bool(f"{self.name} kwarg relabel", relabel)
        check_number(f"{self.name} kwarg relabel_weight", relabel_weight, 0.0)
        check_number(f"{self.name} kwarg relabel_momentum", relabel_momentum, 0.0, 1.0,
                     hi_open=True)
        check_bool(f"{self.name} kwarg mixup", mixup)
        check_number(f"{self.name} kwarg mixup_alpha", mixup_alpha, 0.0, lo_open=True)
        check_number(f"{self.name} kwarg label_smoothing", label_smoothing, 0.0, 1.0,
                     hi_open=True, optional=True)
        self.margin = margin
        imbalanced = cfg is not None and cfg.is_imbalanced and not cfg.is_noisy
        self.requested_size = dictionary_size if dictionary_size is not None else (
            3000 if imbalanced else 2000)
        self.explicit_size = dictionary_size is not None
        # the paper's probe batch q (Table 4 / the code's queue_bs): 200 noise, 800 long tail
        self.probe_batch_size = probe_batch_size if probe_batch_size is not None else (
            800 if imbalanced else 200)
        self.score_momentum = float(score_momentum)
        self.warmup_epochs = warmup_epochs if warmup_epochs is not None else (
            max(1, round(0.1 * cfg.epochs)) if cfg is not None else 1)
        mlp = cfg is not None and model_family(cfg.model) == "mlp"
        # the defaults by model family: the paper code's rule and fixed step on a CNN, the
        # paper's written rule and a step that follows the learning rate on an MLP
        self.rule = rule if rule != "auto" else (
            "shift" if imbalanced else "clip" if mlp else "clip_code")
        self.lookahead_lr = lookahead_lr if lookahead_lr != "auto" else (
            "schedule" if mlp else 0.1)
        self.relabel, self.relabel_weight = relabel, float(relabel_weight)
        self.relabel_momentum = float(relabel_momentum)
        self.relabel_ema, self.relabel_temperature = relabel_ema, float(relabel_temperature)
        self.mixup, self.mixup_alpha = mixup, float(mixup_alpha)
        self.mixup_weights = mixup_weights
        # the long-tail script of the code trains with label smoothing 0.1 (loss and reward loss)
        self.smoothing = float(label_smoothing if label_smoothing is not None else (
            0.1 if imbalanced else 0.0))
        self.meta_momentum = meta_momentum if meta_momentum is not None else (
            cfg.momentum if cfg is not None else 0.9)
        self.buffer: tuple[torch.Tensor, torch.Tensor] | None = None
        self.dictionary: torch.Tensor | None = None  # indices into the training set
        self.scores: torch.Tensor | None = None  # momentum meta-margin P^ per training sample
        # pseudo label per training sample (a distribution): eq. 7's EMA of the predicted
        # distributions (relabel_ema="probs") or the latest target read off the EMA logits
        self.pseudo: torch.Tensor | None = None
        self.ema_logits: torch.Tensor | None = None  # relabel_ema="logits": the code's EMA
        self.features = PenultimateFeatures(self.name)

    # ------------------------------------------------------------------ setup
    def setup(self, model: nn.Module, num_classes: int, device: torch.device) -> None:
        """Capture the input of ``model.fc`` (the shared features) on every forward."""
        self.features.attach(model, self.name)

    def dictionary_per_class(self, n_train: int, num_classes: int) -> int:
        size = self.requested_size if self.explicit_size else min(self.requested_size,
                                                                  n_train // 4)
        return max(1, size // num_classes)

    def _draw_class_balanced(self, labels: torch.Tensor, priority: torch.Tensor | None,
                             per_class: int, num_classes: int,
                             generator: torch.Generator) -> torch.Tensor:
        """Per class, ``per_class`` indices: the best ``priority`` (highest first) or random;
        a class with fewer samples is filled by drawing with replacement (as in the code)."""
        out = []
        for k in range(num_classes):
            idx = torch.nonzero(labels == k).squeeze(1).cpu()
            if len(idx) == 0:
                continue
            if priority is None:
                order = idx[torch.randperm(len(idx), generator=generator)]
            else:
                order = idx[torch.argsort(priority[idx].cpu(), descending=True, stable=True)]
            take = order[:per_class]
            if len(take) < per_class:
                extra = torch.randint(0, len(idx), (per_class - len(take),), generator=generator)
                take = torch.cat([take, idx[extra]])
            out.append(take)
        return torch.cat(out).to(labels.device)

    def _ensure_state(self, ctx: WeighContext, device: torch.device) -> None:
        if self.dictionary is not None:
            return
        n = len(ctx.train.y)
        self.scores = torch.zeros(n, device=device)
        per_class = self.dictionary_per_class(n, ctx.num_classes)
        self.dictionary = self._draw_class_balanced(ctx.train.y, None, per_class,
                                                    ctx.num_classes, ctx.generator)
        if self.relabel:
            self.pseudo = torch.full((n, ctx.num_classes), 1.0 / ctx.num_classes, device=device)
            if self.relabel_ema == "logits":  # the code's EMA logits start at 0 (uniform label)
                self.ema_logits = torch.zeros(n, ctx.num_classes, device=device)

    def probe_batch(self, ctx: WeighContext) -> tuple[torch.Tensor, torch.Tensor]:
        """A class-balanced random batch of the dictionary R (augmented like training): q / C
        per class, at most the dictionary's own per-class size."""
        assert self.dictionary is not None
        labels = ctx.train.y[self.dictionary]
        per_class = max(1, min(self.probe_batch_size, len(self.dictionary)) // ctx.num_classes)
        pick = self._draw_class_balanced(labels, None, per_class, ctx.num_classes, ctx.generator)
        idx = self.dictionary[pick]
        x = ctx.train.pipeline.augment(ctx.train.x[idx.to(ctx.train.x.device)], ctx.generator)
        return x, ctx.train.y[idx]

    # ------------------------------------------------------------------ the iteration
    def weigh(self, model: nn.Module, batch: Batch, logits: torch.Tensor, losses: torch.Tensor,
              ctx: WeighContext) -> torch.Tensor | Weighting:
        h = self.features.take()
        self._ensure_state(ctx, losses.device)
        assert self.scores is not None
        z = logits.detach()
        y = batch.y
        b = len(y)
        a = self.smoothing
        lr = ctx.lr if self.lookahead_lr == "schedule" else float(self.lookahead_lr)
        fc: nn.Linear = model.fc  # type: ignore[assignment]
        eps = torch.full((b,), 1.0 / b, device=z.device, dtype=z.dtype)
        warm = ctx.epoch < self.warmup_epochs
        with torch.no_grad():
            xp, yp = self.probe_batch(ctx)
        # mixup_weights="mixed" (the code's): the look-ahead and the weights on the MixUp batch
        # the step trains on (after warm-up); its forward comes before the weights, and its
        # random draws after the probe batch's, as in the default's order
        mix = (self._mix_forward(model, batch, ctx)
               if self.mixup and self.mixup_weights == "mixed" and not warm else None)
        with torch.no_grad():
            if mix is None:  # the look-ahead's features and logit gradients: the batch's
                h_la, err_la = h, logit_error(z, y, a)
            else:  # ... or the MixUp batch's, with the mixed targets
                lam, perm, zm, h_la = mix
                err_la = (lam * logit_error(zm.detach(), y, a)
                          + (1 - lam) * logit_error(zm.detach(), y[perm], a))
            # Look-ahead of the last layer with eps = 1/B and step eta (feature sharing).
            w_la, b_la = lookahead_from_error(fc, h_la, err_la, eps, lr, self.meta_momentum,
                                              self.buffer)
            # Reward loss on a probe batch of the dictionary at W' (one backbone forward;
            # batch statistics, running statistics untouched).
            hp = self.features.of(model, xp)
            zp = F.linear(hp, w_la, b_la)
            errp = logit_error(zp, yp, a) / len(yp)
            g_w = errp.T @ hp
            g_b = errp.sum(0) if b_la is not None else None
            grad_eps = weight_gradient_from_error(h_la, err_la, g_w, g_b, lr)
            raw = eps - grad_eps
            if self.rule == "clip_code":  # the code's (and Fig. 6's): max(-dL_R/d eps, 0)
                w = (raw - eps).clamp_min(0.0)
            elif self.rule == "clip":  # the paper's written rule: max(eps - dL_R/d eps, 0)
                w = raw.clamp_min(0.0)
            else:  # shift (long tail): every sample keeps a positive weight
                w = raw - raw.min() + eps
            w = normalise_to_batch(w)
            # Meta-margin (eq. 5) of the training samples under the look-ahead, momentum score.
            z_after = F.linear(h, w_la, b_la)
            if self.margin == "leave_one_out":  # minus sample i's own term of the look-ahead
                z_after = z_after + (lr * eps * ((h * h_la).sum(1) + (b_la is not None)))[
                    :, None] * err_la
            loss_before = F.cross_entropy(z, y, reduction="none", label_smoothing=a)
            loss_after = F.cross_entropy(z_after, y, reduction="none", label_smoothing=a)
            m = self.score_momentum
            self.scores[batch.index] = (m * self.scores[batch.index]
                                        + (1 - m) * (loss_before - loss_after))
        if warm:
            w = torch.ones_like(w)
        with torch.no_grad():  # momentum buffer of the real step's last-layer gradient
            g_w, g_b = fc_grad(h_la, err_la * (w / b)[:, None])
            self.buffer = (g_w, g_b) if self.buffer is None else (
                self.meta_momentum * self.buffer[0] + g_w,
                self.meta_momentum * self.buffer[1] + g_b)
        target = self._code_pseudo_label(batch, z) if (
            self.relabel and self.relabel_ema == "logits") else None
        extra: torch.Tensor | None = None
        base = losses  # the per-sample loss the trainer's term plus ``extra`` minimise so far
        if a > 0:  # label smoothing: sum_i w_i (l^a_i - l_i) / B on top of the trainer's term
            base = F.cross_entropy(logits, y, reduction="none", label_smoothing=a)
            extra = (w * (base - losses)).sum() / b
        if warm:
            return Weighting(w, extra) if extra is not None else w
        if self.relabel:
            if target is None:
                assert self.pseudo is not None
                with torch.no_grad():  # eq. 7: y^ <- beta y^ + (1 - beta) p, beta = 0.1
                    mr = self.relabel_momentum
                    self.pseudo[batch.index] = (mr * self.pseudo[batch.index]
                                                + (1 - mr) * torch.softmax(z, 1))
                target = self.pseudo[batch.index]
            soft_ce = -(target * F.log_softmax(logits, 1)).sum(1).mean()
            extra = self._add(extra, self.relabel_weight * soft_ce)
        if self.mixup:
            if mix is None:
                mix = self._mix_forward(model, batch, ctx)
            extra = self._add(extra, self._mixup_term(batch, base, w, mix[0], mix[1], mix[2]))
        return Weighting(w, extra) if extra is not None else w

    def _code_pseudo_label(self, batch: Batch, z: torch.Tensor) -> torch.Tensor:
        """``relabel_ema="logits"`` (the code's ``compute_pseudo_loss``): the pseudo label
        softmax(logit_norm(e) / T) from the stored EMA logits e *before* this step's update, then
        e <- gamma logit_norm(e) + (1 - gamma) z (gamma = ``relabel_momentum``); updated on every
        iteration, warm-up included (the code's update op runs every step). The target is kept
        as the sample's ``pseudo`` label."""
        assert self.pseudo is not None and self.ema_logits is not None
        with torch.no_grad():
            normed = logit_norm(self.ema_logits[batch.index])
            target = torch.softmax(normed / self.relabel_temperature, 1)
            mr = self.relabel_momentum
            self.ema_logits[batch.index] = mr * normed + (1 - mr) * z
            self.pseudo[batch.index] = target
        return target

    @staticmethod
    def _add(a: torch.Tensor | None, b: torch.Tensor) -> torch.Tensor:
        return b if a is None else a + b

    def _mix_forward(self, model: nn.Module, batch: Batch, ctx: WeighContext
                     ) -> tuple[float, torch.Tensor, torch.Tensor, torch.Tensor]:
        """(lam, perm, logits z~ with graph, features h~ detached) of the MixUp batch
        x~ = lam x + (1-lam) x_perm, lam ~ Beta(a, a) (one per batch)."""
        beta = torch.distributions.Beta(self.mixup_alpha, self.mixup_alpha)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(torch.randint(0, 2**31 - 1, (1,), generator=ctx.generator)))
            lam = float(beta.sample())
        perm = torch.randperm(len(batch.y), generator=ctx.generator).to(batch.x.device)
        xm = lam * batch.x + (1 - lam) * batch.x[perm]
        # batch statistics of the mixed batch, but the running statistics are updated once per
        # iteration (by the trainer's forward), not twice
        zm = functional_forward(model, dict(model.named_parameters()), xm)
        return lam, perm, zm, self.features.take()

    def _mixup_term(self, batch: Batch, losses: torch.Tensor, w: torch.Tensor, lam: float,
                    perm: torch.Tensor, zm: torch.Tensor) -> torch.Tensor:
        """sum_i w_i (l~_i - l_i) / B: added to the sum_i w_i l_i / B minimised so far, the update
        is that of the weighted MixUp loss sum_i w_i l~_i / B (l~ of the MixUp logits ``zm``,
        label-smoothed as the rest)."""
        a = self.smoothing
        lm = (lam * F.cross_entropy(zm, batch.y, reduction="none", label_smoothing=a)
              + (1 - lam) * F.cross_entropy(zm, batch.y[perm], reduction="none",
                                            label_smoothing=a))
        return (w * (lm - losses)).sum() / len(w)

    def on_epoch_end(self, model: nn.Module, ctx: WeighContext) -> None:
        """Refresh R: per class the samples with the largest momentum meta-margin."""
        if self.dictionary is None or self.scores is None:
            return
        per_class = len(self.dictionary) // ctx.num_classes
        self.dictionary = self._draw_class_balanced(ctx.train.y, self.scores, per_class,
                                                    ctx.num_classes, ctx.generator)



class FSRRelabelMixupWeigher(FSRWeigher):
    """The paper's full FSR for label noise: :class:`FSRWeigher` with momentum re-labelling
    (eq. 7) and MixUp on by default (``fsr`` alone is the paper's FSR-Raw)."""

    name = "fsr_relabel_mixup"

    def __init__(self, cfg: EnvConfig | None = None, relabel: bool = True, mixup: bool = True,
                 **kwargs: Any) -> None:
        super().__init__(cfg, relabel=relabel, mixup=mixup, **kwargs)
