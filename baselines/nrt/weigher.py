"""``nrt``: the interpretable weighting framework with a neural regression tree (Zhou, Wu, Li).

A sample's weight is a function of nine characteristics (:mod:`.characteristics`), computed by
a neural regression tree (:mod:`.tree`) and meta-trained as MW-Net (eqs. 13-15 there; the
machinery of :mod:`reweight_gym.baselines.meta`): look-ahead with the current learning rate, meta
loss on a clean meta batch, Adam on the tree's scores and cut points, real step with the updated
weights. The meta update runs every ``meta_interval`` iterations (the paper's 20 saves 83% of the
time at equal accuracy; the shared ``meta_every`` of the meta weighers, either name may be given);
in between, the current tree only weighs. ``meta_grad`` (``"exact"``, ``"last_layer"``,
``"first_order"``) approximates the meta-gradient of eqs. 13-15 as for MW-Net
(:mod:`reweight_gym.baselines.meta`). After each meta update the cut points grow and prune
(defaults eps+ = 0.1, T_r = 20, eps- = 0.2, c = 2, tau = 0.1).
``weight_net="mlp"`` is the paper's comparison, an MLP 9 -> 100 -> 1 on the same
characteristics instead of the tree. :meth:`NRTWeigher.extract_rules` reads the tree's rules
(:mod:`.rules`).

Deviations from the paper, each one argument away where it is a choice:

- ``normalize=True`` (default): the tree's weights sigmoid(score) are divided by their batch
  sum (returned times B), as MW-Net's code does with its weights; the paper uses the sigmoid
  outputs themselves (``normalize=False``).
- The characteristics are standardised with running statistics before binning (so cut points
  live on one scale; rules are reported back in raw units).
- ``meta_lr``: Adam's learning rate for the tree, 1e-3 in the paper (``"paper"``); by default
  (``None``) scaled to the run's length, 1e-3 sqrt(60,000 / T) for T iterations: larger for
  shorter runs, since the tree starts flat (:func:`reweight_gym.baselines.meta.run_length_lr`);
  a number sets it.
- Pruning also deactivates a cut point beyond the data (no sample on one side), which lets a
  characteristic lose its last cut point and drop out of the tree (:mod:`.tree`).
"""

from __future__ import annotations

import torch
from torch import nn

from reweight_gym.baselines.meta import MetaWeigher, VNet, check_meta_lr
from reweight_gym.baselines.nrt.characteristics import (
    CHARACTERISTICS,
    RunningStandardizer,
    compute_characteristics,
)
from reweight_gym.baselines.nrt.rules import extract_rules
from reweight_gym.baselines.nrt.tree import CutPointController, NeuralRegressionTree
from reweight_gym.config import EnvConfig
from reweight_gym.training.pipeline import MetaSampler
from reweight_gym.training.weigher import Batch, WeighContext
from reweight_gym.validation import check_choice, check_number


class NRTWeigher(MetaWeigher):
    """Neural regression tree (or MLP) weighting on nine characteristics, meta-trained."""

    name = "nrt"

    def __init__(self, cfg: EnvConfig | None = None, weight_net: str = "tree", tau: float = 0.1,
                 eps_plus: float = 0.1, t_r: int = 20, eps_minus: float = 0.2,
                 max_cuts: int = 2, meta_interval: int = 1, meta_lr: float | str | None = None,
                 hidden: int = 100, normalize: bool = True, rule_buffer: int = 2048,
                 jvp: str = "finite_difference", meta_every: int | None = None,
                 meta_grad: str = "exact") -> None:
        check_number("nrt kwarg meta_interval", meta_interval, 1, integer=True)
        if meta_every is not None and meta_interval not in (1, meta_every):
            raise ValueError(f"invalid nrt kwarg meta_every={meta_every!r}: meta_interval="
                             f"{meta_interval!r} names the same setting; give one of them")
        super().__init__(cfg, jvp, normalize, meta_interval if meta_every is None else meta_every,
                         meta_grad)
        check_choice("nrt kwarg weight_net", weight_net, ("tree", "mlp"))
        check_number("nrt kwarg tau", tau, 0.0, lo_open=True)
        check_number("nrt kwarg eps_plus", eps_plus, 0.0)
        check_number("nrt kwarg t_r", t_r, 1, integer=True)
        check_number("nrt kwarg eps_minus", eps_minus, 0.0)
        check_number("nrt kwarg max_cuts", max_cuts, 1, integer=True)
        check_meta_lr("nrt kwarg meta_lr", meta_lr)
        check_number("nrt kwarg hidden", hidden, 1, integer=True)
        check_number("nrt kwarg rule_buffer", rule_buffer, 1, integer=True)
        self.weight_net = weight_net
        self.tau = float(tau)
        self.meta_lr = meta_lr
        self.hidden = int(hidden)
        self.rule_buffer = int(rule_buffer)
        self.controller = CutPointController(eps_plus, t_r, eps_minus, max_cuts)
        self.standardizer = RunningStandardizer(len(CHARACTERISTICS))
        self.recent: list[torch.Tensor] = []  # raw characteristics of recent samples

    def make_net(self, num_classes: int) -> nn.Module:
        """The tree (or the comparison MLP) on the nine standardised characteristics."""
        k = len(CHARACTERISTICS)
        return NeuralRegressionTree(k, self.tau, self.controller.max_cuts) \
            if self.weight_net == "tree" else VNet(k, self.hidden)

    def paper_lr(self) -> float:
        """NRT's Adam learning rate, 1e-3."""
        return 1e-3

    def lr_exponent(self) -> float:
        """1/2: the tree starts flat and has to travel
        (``reweight_gym.baselines.meta.run_length_lr``)."""
        return 0.5

    def make_optimizer(self) -> torch.optim.Optimizer:
        """Adam on the scores and cut points (made anew when the tree's structure changes)."""
        assert self.net is not None and self.lr is not None
        return torch.optim.Adam(self.net.parameters(), lr=self.lr, foreach=True)

    def weights_of(self, z: torch.Tensor) -> torch.Tensor:
        """Unnormalised weights in (0, 1) of standardised characteristics (B, 9)."""
        assert self.net is not None
        out = self.net(z)
        return torch.sigmoid(out) if isinstance(self.net, NeuralRegressionTree) else out

    def _remember(self, chars: torch.Tensor) -> None:
        self.recent.append(chars.detach().cpu())
        total = sum(len(c) for c in self.recent)
        while self.recent and total - len(self.recent[0]) >= self.rule_buffer:
            total -= len(self.recent.pop(0))

    def recent_characteristics(self) -> torch.Tensor:
        return torch.cat(self.recent) if self.recent else torch.zeros(0, len(CHARACTERISTICS))

    def meta_weigh(self, model: nn.Module, batch: Batch, logits: torch.Tensor,
                   losses: torch.Tensor, ctx: WeighContext, meta: MetaSampler) -> torch.Tensor:
        chars = compute_characteristics(logits, batch.y, losses, ctx.class_counts, batch.index,
                                        ctx.history)
        self.standardizer.update(chars)
        self._remember(chars)
        z = self.standardizer(chars)
        if self.is_meta_iteration(ctx):
            self.meta_update(model, batch, logits, losses, lambda: self.weights_of(z), meta,
                             ctx.lr)  # eqs. 13-15, as MW-Net
            if isinstance(self.net, NeuralRegressionTree):
                self._grow_and_prune()
        return self.real_weights(lambda: self.weights_of(z))

    def _grow_and_prune(self) -> None:
        tree = self.net
        assert isinstance(tree, NeuralRegressionTree)

        def recent() -> torch.Tensor:  # only when the controller's window ends
            return self.standardizer(self.recent_characteristics().to(tree.scores.device))

        actions = self.controller.step_padded(tree.cut_values, tree.active, recent)
        for a in actions:
            if a.kind == "prune":
                tree.remove_cut(a.k, a.j)
            else:
                tree.add_cut(a.k, a.value)
        if actions:
            self.optimizer = self.make_optimizer()

    def extract_rules(self, n_clusters: int = 3, top_k: int = 3, seed: int = 0) -> str:
        """The tree's weighting rules as text
        (:func:`reweight_gym.baselines.nrt.rules.extract_rules`)."""
        if not isinstance(self.net, NeuralRegressionTree):
            raise ValueError("invalid nrt kwarg weight_net='mlp': rules need weight_net='tree'")
        return extract_rules(self.net, self.standardizer, self.recent_characteristics(),
                             n_clusters=n_clusters, top_k=top_k, seed=seed)
