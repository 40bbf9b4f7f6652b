"""``nrt``: the interpretable weighting framework with a neural regression tree (Zhou, Wu, Li).

A sample's weight is a function of nine characteristics (``CHARACTERISTICS``): loss, margin
p_y - max_{j != y} p_j, gradient norm ||y - p||_2, entropy, class proportion N_y / N, the class's
mean loss in the batch, the sample's weight one and two epochs ago, and their difference. They
are standardised with running (EMA) statistics, so cut points live on a stable scale and can be
reported in the characteristics' own units.

Neural regression tree (``NeuralRegressionTree``):

- Soft binning (eq. 6): a characteristic zeta with a sorted active cut points beta_1 < ... < beta_a
  falls into a+1 bins with probabilities softmax((w zeta + b) / tau), w = [1, 2, ..., a+1],
  b = [0, -beta_1, -beta_1 - beta_2, ...]; as tau -> 0 this is the one-hot of the interval.
- Leaves (eq. 7): the Kronecker product of the nine bin vectors; the output is the leaf scores
  dotted with it, then a sigmoid (weights in (0, 1) like MW-Net). We never materialise the
  Kronecker product: the score tensor (one axis per characteristic, one entry per *active* bin)
  is contracted with one characteristic's bin vector at a time, so the largest intermediate is
  B x prod_{k>0} (a_k + 1), not B x 5^9 (1.95M leaves, ~1 GB per batch in the reference code).
- Growth and pruning (``CutPointController``): every T_r meta updates, if every active cut point
  of a characteristic moved less than eps+ over the window, one more cut point is activated (up
  to c), splitting the most populated bin at its median; cut points closer than eps- to their
  neighbour, or with no sample between them, are deactivated (the smaller one; the two bins'
  scores are averaged). A new bin copies the scores of the bin it splits, so the tree's hard
  function is unchanged by growth. Defaults eps+ = 0.1, T_r = 20, eps- = 0.2, c = 2, tau = 0.1.
- Meta-training as MW-Net (eqs. 13-15): look-ahead with the current learning rate, meta loss
  on a clean meta batch, Adam on the tree's scores and cut points, real step with the updated
  weights; the meta update runs every ``meta_interval`` iterations (the paper's 20 saves 83% of
  the time at equal accuracy); in between, the current tree only weighs.
- ``weight_net="mlp"``: the paper's comparison, an MLP 9 -> 100 -> 1 on the same
  characteristics instead of the tree.
- ``extract_rules``: the tree's weighting rules as text: weights of recent samples are clustered
  with k-means, each characteristic's hard bins (its active cut points) are ranked by the
  information gain about the cluster, and the bins of the most informative characteristics are
  reported with their dominant weight level.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from baselines._common import (
    check_bool,
    check_choice,
    check_number,
    draw_seed,
    normalise_to_batch,
    require_meta,
)
from baselines.mwnet import JVP_METHODS, VNet, meta_step
from reweight_gym.config import EnvConfig
from reweight_gym.training.characteristics import (
    SampleHistory,
    class_mean_loss,
    class_proportion,
    entropy,
    grad_norm,
    margin,
)
from reweight_gym.training.weigher import Batch, WeighContext, Weigher

CHARACTERISTICS = ("loss", "margin", "grad_norm", "entropy", "class_proportion",
                   "class_mean_loss", "weight_prev1", "weight_prev2", "weight_diff")


def compute_characteristics(logits: torch.Tensor, labels: torch.Tensor, losses: torch.Tensor,
                            class_counts: torch.Tensor, index: torch.Tensor,
                            history: SampleHistory) -> torch.Tensor:
    """The nine characteristics of NRT, (B, 9), from detached batch quantities."""
    logits, losses = logits.detach(), losses.detach()
    w1 = history.weight_prev1[index].to(losses.device)
    w2 = history.weight_prev2[index].to(losses.device)
    cols = [losses, margin(logits, labels), grad_norm(logits, labels), entropy(logits),
            class_proportion(labels, class_counts), class_mean_loss(losses, labels,
                                                                    logits.shape[1]),
            w1, w2, w1 - w2]
    return torch.stack(cols, dim=1).float()


class RunningStandardizer:
    """z = (x - mean) / std with EMA statistics (first batch initialises them)."""

    def __init__(self, dim: int, momentum: float = 0.9) -> None:
        self.mean = torch.zeros(dim)
        self.var = torch.ones(dim)
        self.momentum = momentum
        self.initialised = False

    def update(self, x: torch.Tensor) -> None:
        m, v = x.mean(0).cpu(), x.var(0, unbiased=False).cpu()
        if not self.initialised:
            self.mean, self.var, self.initialised = m, v, True
        else:
            a = self.momentum
            self.mean = a * self.mean + (1 - a) * m
            self.var = a * self.var + (1 - a) * v

    @property
    def std(self) -> torch.Tensor:
        return self.var.sqrt().clamp_min(1e-6)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        std = self.std.to(x.device)
        z = (x - self.mean.to(x.device)) / std
        return torch.where(self.var.to(x.device) > 1e-12, z, torch.zeros_like(z))

    def to_raw(self, k: int, z: float) -> float:
        return float(self.mean[k] + z * self.std[k])


def soft_bins(z: torch.Tensor, cuts: torch.Tensor, tau: float) -> torch.Tensor:
    """Soft binning of eq. 6: (B,) values and a cut points -> (B, a+1) bin probabilities."""
    beta = torch.sort(cuts).values
    w = torch.arange(1, len(beta) + 2, dtype=z.dtype, device=z.device)
    b = torch.cat([torch.zeros(1, dtype=z.dtype, device=z.device), -torch.cumsum(beta, 0)])
    return torch.softmax((z[:, None] * w + b) / tau, dim=1)


def hard_bins(z: torch.Tensor, cuts: torch.Tensor) -> torch.Tensor:
    """Index of the interval (-inf, b1], (b1, b2], ..., (ba, inf) of each value."""
    return torch.bucketize(z.contiguous(), torch.sort(cuts).values, right=False)


class NeuralRegressionTree(nn.Module):
    """Leaf scores over the active bins of K characteristics, contracted one at a time."""

    def __init__(self, num_characteristics: int = 9, tau: float = 0.1) -> None:
        super().__init__()
        self.tau = tau
        self.cuts = nn.ParameterList(
            [nn.Parameter(torch.zeros(1)) for _ in range(num_characteristics)])
        self.scores = nn.Parameter(torch.zeros((2,) * num_characteristics))

    @property
    def num_characteristics(self) -> int:
        return len(self.cuts)

    @property
    def leaf_shape(self) -> tuple[int, ...]:
        return tuple(len(c) + 1 for c in self.cuts)

    @property
    def num_leaves(self) -> int:
        return math.prod(self.leaf_shape)

    def bins(self, z: torch.Tensor) -> list[torch.Tensor]:
        return [soft_bins(z[:, k], self.cuts[k], self.tau) for k in range(len(self.cuts))]

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """(B, K) standardised characteristics -> (B,) leaf score (before the sigmoid)."""
        bins = self.bins(z)
        shape = self.leaf_shape
        b = z.shape[0]
        t = bins[0] @ self.scores.reshape(shape[0], -1)  # (B, prod_{k>0} n_k)
        for k in range(1, len(shape)):
            t = torch.einsum("bnr,bn->br", t.reshape(b, shape[k], -1), bins[k])
        return t.reshape(b)

    # -------------------------------------------------------------- structure changes
    @torch.no_grad()
    def _sort_cuts(self, k: int) -> torch.Tensor:
        s = torch.sort(self.cuts[k].detach()).values
        return s

    @torch.no_grad()
    def add_cut(self, k: int, value: float) -> None:
        """Activate a cut point at ``value`` on characteristic k; the bin it splits is copied."""
        s = self._sort_cuts(k)
        j = int((s < value).sum())  # the split bin's index
        new = torch.cat([s[:j], s.new_tensor([value]), s[j:]])
        scores = self.scores.detach()
        sl = scores.narrow(k, j, 1)
        scores = torch.cat([scores.narrow(k, 0, j + 1), sl, scores.narrow(
            k, j + 1, scores.shape[k] - j - 1)], dim=k)
        self.cuts[k] = nn.Parameter(new)
        self.scores = nn.Parameter(scores.contiguous())

    @torch.no_grad()
    def remove_cut(self, k: int, j: int) -> None:
        """Deactivate the j-th smallest cut point of characteristic k: bins j, j+1 merge."""
        s = self._sort_cuts(k)
        new = torch.cat([s[:j], s[j + 1:]])
        scores = self.scores.detach()
        merged = 0.5 * (scores.narrow(k, j, 1) + scores.narrow(k, j + 1, 1))
        scores = torch.cat([scores.narrow(k, 0, j), merged,
                            scores.narrow(k, j + 2, scores.shape[k] - j - 2)], dim=k)
        self.cuts[k] = nn.Parameter(new)
        self.scores = nn.Parameter(scores.contiguous())


@dataclass
class CutAction:
    """A structure change: ``grow`` characteristic k at ``value``, or ``prune`` its j-th cut."""

    kind: str
    k: int
    value: float = 0.0
    j: int = -1


class CutPointController:
    """Growth and pruning rules on cut-point trajectories (eps+, T_r, eps-, c)."""

    def __init__(self, eps_plus: float = 0.1, t_r: int = 20, eps_minus: float = 0.2,
                 max_cuts: int = 2) -> None:
        self.eps_plus, self.t_r = eps_plus, t_r
        self.eps_minus, self.max_cuts = eps_minus, max_cuts
        self.steps = 0
        self.window_start: list[torch.Tensor] | None = None

    def step(self, cuts: list[torch.Tensor], z: torch.Tensor) -> list[CutAction]:
        """Call after every meta update with the current cut points (any order) and recent
        standardised characteristics z (N, K); returns the actions due at this step."""
        sorted_cuts = [torch.sort(c.detach().cpu()).values for c in cuts]
        if self.window_start is None:
            self.window_start = sorted_cuts
        self.steps += 1
        if self.steps % self.t_r:
            return []
        actions: list[CutAction] = []
        zc = z.detach().cpu()
        for k, s in enumerate(sorted_cuts):
            pruned = self._prune(k, s, zc[:, k])
            if pruned is not None:
                actions.append(pruned)
                continue
            start = self.window_start[k]
            moved = float((s - start).abs().max()) if start.shape == s.shape else math.inf
            if moved < self.eps_plus and len(s) < self.max_cuts:
                actions.append(CutAction("grow", k, value=self._split_value(s, zc[:, k])))
        self.window_start = None  # the next window starts after the changes
        return actions

    def _prune(self, k: int, s: torch.Tensor, z: torch.Tensor) -> CutAction | None:
        for j in range(len(s) - 1):
            lo, hi = float(s[j]), float(s[j + 1])
            empty = not bool(((z > lo) & (z <= hi)).any())
            if hi - lo < self.eps_minus or empty:
                return CutAction("prune", k, j=j)
        return None

    @staticmethod
    def _split_value(s: torch.Tensor, z: torch.Tensor) -> float:
        """Median of the most populated bin (the new cut point's position)."""
        idx = hard_bins(z, s)
        counts = torch.bincount(idx, minlength=len(s) + 1)
        j = int(counts.argmax())
        inside = z[idx == j]
        if len(inside) == 0:
            return float(s.mean()) if len(s) else 0.0
        return float(inside.median())


class NRTWeigher(Weigher):
    """Neural regression tree (or MLP) weighting on nine characteristics, meta-trained."""

    name = "nrt"
    needs_meta = True

    def __init__(self, cfg: EnvConfig | None = None, weight_net: str = "tree", tau: float = 0.1,
                 eps_plus: float = 0.1, t_r: int = 20, eps_minus: float = 0.2,
                 max_cuts: int = 2, meta_interval: int = 1, meta_lr: float = 1e-3,
                 hidden: int = 100, normalize: bool = True, rule_buffer: int = 2048,
                 jvp: str = "finite_difference") -> None:
        m = self.name
        check_choice(m, "jvp", jvp, JVP_METHODS)
        self.jvp = jvp
        check_choice(m, "weight_net", weight_net, ("tree", "mlp"))
        check_number(m, "tau", tau, 0.0, lo_open=True)
        check_number(m, "eps_plus", eps_plus, 0.0)
        check_number(m, "t_r", t_r, 1, integer=True)
        check_number(m, "eps_minus", eps_minus, 0.0)
        check_number(m, "max_cuts", max_cuts, 1, integer=True)
        check_number(m, "meta_interval", meta_interval, 1, integer=True)
        check_number(m, "meta_lr", meta_lr, 0.0, lo_open=True)
        check_number(m, "hidden", hidden, 1, integer=True)
        check_bool(m, "normalize", normalize)
        check_number(m, "rule_buffer", rule_buffer, 1, integer=True)
        self.weight_net = weight_net
        self.tau = float(tau)
        self.meta_interval = int(meta_interval)
        self.meta_lr = float(meta_lr)
        self.hidden = int(hidden)
        self.normalize = normalize
        self.rule_buffer = int(rule_buffer)
        self.controller = CutPointController(eps_plus, t_r, eps_minus, max_cuts)
        self.standardizer = RunningStandardizer(len(CHARACTERISTICS))
        self.net: nn.Module | None = None
        self.optimizer: torch.optim.Optimizer | None = None
        self.recent: list[torch.Tensor] = []  # raw characteristics of recent samples
        self.last_meta_loss = float("nan")

    def build(self, seed: int, device: torch.device | str = "cpu") -> None:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            self.net = (NeuralRegressionTree(len(CHARACTERISTICS), self.tau)
                        if self.weight_net == "tree" else VNet(len(CHARACTERISTICS), self.hidden))
        self.net.to(device)
        self._new_optimizer()

    def _new_optimizer(self) -> None:
        assert self.net is not None
        self.optimizer = torch.optim.Adam(self.net.parameters(), lr=self.meta_lr)

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

    def weigh(self, model: nn.Module, batch: Batch, logits: torch.Tensor, losses: torch.Tensor,
              ctx: WeighContext) -> torch.Tensor:
        meta = require_meta(ctx, self.name)
        if self.net is None:
            self.build(draw_seed(ctx.generator), losses.device)
        assert self.net is not None and self.optimizer is not None
        chars = compute_characteristics(logits, batch.y, losses, ctx.class_counts, batch.index,
                                        ctx.history)
        self.standardizer.update(chars)
        self._remember(chars)
        z = self.standardizer(chars)
        if ctx.iteration % self.meta_interval == 0:
            self.last_meta_loss = meta_step(  # eqs. 13-15, as MW-Net
                model, batch, logits, losses, lambda: self.weights_of(z), self.net,
                self.optimizer, meta, ctx.lr, self.normalize, self.jvp)
            if isinstance(self.net, NeuralRegressionTree):
                self._grow_and_prune()
        with torch.no_grad():
            w = self.weights_of(z)
            return normalise_to_batch(w) if self.normalize else w

    def _grow_and_prune(self) -> None:
        tree = self.net
        assert isinstance(tree, NeuralRegressionTree)
        z = self.standardizer(self.recent_characteristics().to(tree.scores.device))
        actions = self.controller.step(list(tree.cuts), z)
        for a in actions:
            if a.kind == "prune":
                tree.remove_cut(a.k, a.j)
            else:
                tree.add_cut(a.k, a.value)
        if actions:
            self._new_optimizer()

    # -------------------------------------------------------------- interpretation
    def extract_rules(self, n_clusters: int = 3, top_k: int = 3, seed: int = 0) -> str:
        """The tree's weighting rules as text (see ``extract_rules``)."""
        if not isinstance(self.net, NeuralRegressionTree):
            raise ValueError("invalid nrt kwarg weight_net='mlp': rules need weight_net='tree'")
        return extract_rules(self.net, self.standardizer, self.recent_characteristics(),
                             n_clusters=n_clusters, top_k=top_k, seed=seed)

    def state_dict(self) -> dict[str, Any]:
        if self.net is None:
            return {}
        return {"net": self.net.state_dict(), "mean": self.standardizer.mean,
                "var": self.standardizer.var}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not state:
            return
        if self.net is None:
            self.build(0)
        assert self.net is not None
        if isinstance(self.net, NeuralRegressionTree):
            for k in range(len(self.net.cuts)):
                self.net.cuts[k] = nn.Parameter(state["net"][f"cuts.{k}"].clone())
            self.net.scores = nn.Parameter(state["net"]["scores"].clone())
        self.net.load_state_dict(state["net"])
        self.standardizer.mean, self.standardizer.var = state["mean"], state["var"]
        self.standardizer.initialised = True
        self._new_optimizer()


def _entropy(labels: np.ndarray, n_clusters: int) -> float:
    if len(labels) == 0:
        return 0.0
    p = np.bincount(labels, minlength=n_clusters) / len(labels)
    p = p[p > 0]
    return float(-(p * np.log2(p)).sum())


def extract_rules(tree: NeuralRegressionTree, standardizer: RunningStandardizer,
                  characteristics: torch.Tensor, n_clusters: int = 3, top_k: int = 3,
                  seed: int = 0) -> str:
    """Readable weighting rules of a trained tree.

    The tree weighs the given raw characteristics (N, 9); the weights are clustered by k-means
    into ``n_clusters`` levels (low ... high); each characteristic's hard bins (its active cut
    points) get the information gain H(level) - sum_b N_b/N H(level | bin b); for the ``top_k``
    most informative characteristics, each bin is printed in raw units with its dominant level,
    that level's share, the mean weight and the number of samples.
    """
    from sklearn.cluster import KMeans

    if len(characteristics) < n_clusters:
        raise ValueError(f"invalid characteristics: need at least n_clusters={n_clusters} "
                         f"samples, got {len(characteristics)}")
    with torch.no_grad():
        z = standardizer(characteristics.to(tree.scores.device))
        w = torch.sigmoid(tree(z)).cpu().numpy().astype(np.float64)
    km = KMeans(n_clusters=n_clusters, n_init=10, random_state=seed).fit(w[:, None])
    order = np.argsort(km.cluster_centers_[:, 0])
    rank = np.empty(n_clusters, dtype=np.int64)
    rank[order] = np.arange(n_clusters)
    level = rank[km.labels_]
    names = ["low", "medium", "high"] if n_clusters == 3 else [
        f"level{i}" for i in range(n_clusters)]
    h_all = _entropy(level, n_clusters)
    gains = []
    zc = z.cpu()
    for k in range(tree.num_characteristics):
        bins = hard_bins(zc[:, k], tree.cuts[k].detach().cpu()).numpy()
        cond = sum((bins == b).mean() * _entropy(level[bins == b], n_clusters)
                   for b in np.unique(bins))
        gains.append(h_all - cond)
    lines = [f"weights of {len(w)} recent samples: k-means levels (centres) "
             + ", ".join(f"{names[i]}={km.cluster_centers_[order[i], 0]:.3f}"
                         for i in range(n_clusters))]
    for k in np.argsort(gains)[::-1][:top_k]:
        cuts = torch.sort(tree.cuts[k].detach().cpu()).values.tolist()
        raw = [standardizer.to_raw(int(k), c) for c in cuts]
        edges = [-math.inf, *raw, math.inf]
        lines.append(f"{CHARACTERISTICS[k]} (information gain {gains[k]:.3f} bits):")
        bins = hard_bins(zc[:, k], tree.cuts[k].detach().cpu()).numpy()
        for b in range(len(cuts) + 1):
            sel = bins == b
            if not sel.any():
                continue
            counts = np.bincount(level[sel], minlength=n_clusters)
            top = int(counts.argmax())
            lines.append(f"  if {CHARACTERISTICS[k]} in ({edges[b]:.3g}, {edges[b + 1]:.3g}]: "
                         f"{names[top]} weight ({counts[top] / sel.sum():.0%} of "
                         f"{int(sel.sum())} samples, mean weight {w[sel].mean():.3f})")
    return "\n".join(lines)
