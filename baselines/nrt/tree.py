"""NRT's neural regression tree and the controller that grows and prunes its cut points.

- Soft binning (eq. 6): a characteristic zeta with a sorted active cut points beta_1 < ... < beta_a
  falls into a+1 bins with probabilities softmax((w zeta + b) / tau), w = [1, 2, ..., a+1],
  b = [0, -beta_1, -beta_1 - beta_2, ...]; as tau -> 0 this is the one-hot of the interval.
- Leaves (eq. 7): the Kronecker product of the nine bin vectors; the output is the leaf scores
  dotted with it (a sigmoid of it is the weight). The Kronecker product is never materialised:
  the characteristics are split into two groups whose own Kronecker products u (B x N_1) and
  v (B x N_2) are small (N_1 N_2 = N leaves, N_1 ~ N_2 ~ sqrt(N), counting *active* bins only),
  and the score tensor, reshaped to an N_1 x N_2 matrix S, gives every sample's output as the
  bilinear form u_b S v_b: one matrix product (u S) and a row-wise dot with v. The largest
  intermediate is B x N_2, not B x 5^9 (1.95M leaves per sample in the reference code), and
  the work is one dense matrix product instead of a chain of memory-bound contractions.
- Growth and pruning (:class:`CutPointController`): every T_r meta updates, if every active cut
  point of a characteristic moved less than eps+ over the window -- its max - min over the
  window's T_r steps (eq. 8) -- one more cut point is activated (up to c), splitting the most
  populated bin at its median. Cut points closer than eps- to their neighbour, or with no
  sample between them, are deactivated (the smaller one; the two bins' scores are averaged);
  the outer intervals (-inf, beta_1] and (beta_a, inf) count as "between" too, so a cut point
  beyond the data is deactivated and a characteristic can lose all its cut points: it is then
  out of the tree (one bin, the paper's Fig. 4), e.g. the weight history while it is constant
  in the first epochs, and gets a cut point again (at its median) once its recent values lie
  on both sides of it. A new bin copies the scores of the bin it splits, so the tree's hard
  function is unchanged by growth.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import pad_sequence


def soft_bins(z: torch.Tensor, cuts: Sequence[torch.Tensor], tau: float) -> list[torch.Tensor]:
    """Soft binning of eq. 6 for K characteristics at once: (B, K) values and K tensors of
    cut points (any order, a_k >= 0 each) -> K tensors (B, a_k + 1) of bin probabilities.

    The cut points are padded to a common length, sorted and masked, so the K softmaxes are one.
    """
    k, n = len(cuts), z.shape[0]
    sizes = [len(c) for c in cuts]
    a = max(sizes, default=0)
    if a == 0:
        return [z.new_ones(n, 1) for _ in range(k)]
    beta = torch.sort(pad_sequence(list(cuts), batch_first=True, padding_value=math.inf),
                      dim=1).values  # (K, a), padding last
    active = torch.isfinite(beta)
    zero = z.new_zeros(k, 1)
    bias = torch.cat([zero, -torch.cumsum(torch.where(active, beta, zero), dim=1)], dim=1)
    w = torch.arange(1, a + 2, dtype=z.dtype, device=z.device)
    logits = (z[:, :, None] * w + bias) / tau  # (B, K, a + 1)
    mask = torch.cat([torch.ones_like(zero, dtype=torch.bool), active], dim=1)
    p = torch.softmax(logits.masked_fill(~mask, -math.inf), dim=2)
    return [p[:, j, : sizes[j] + 1] for j in range(k)]


def hard_bins(z: torch.Tensor, cuts: torch.Tensor) -> torch.Tensor:
    """Index of the interval (-inf, b1], (b1, b2], ..., (ba, inf) of each value."""
    return torch.bucketize(z.contiguous(), torch.sort(cuts).values, right=False)


def _kron_rows(bins: list[torch.Tensor], z: torch.Tensor) -> torch.Tensor:
    """Row-wise Kronecker product of (B, n_k) bin vectors, the first one most significant (the
    score tensor's row-major order); (B, 1) ones for no characteristic."""
    out = torch.ones(z.shape[0], 1, dtype=z.dtype, device=z.device)
    for p in bins:
        out = (out[:, :, None] * p[:, None, :]).reshape(z.shape[0], -1)
    return out


class NeuralRegressionTree(nn.Module):
    """Leaf scores over the active bins of K characteristics (eq. 7), as a bilinear form."""

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
        """The soft bins (eq. 6) of every characteristic."""
        return soft_bins(z, list(self.cuts), self.tau)

    def split(self) -> int:
        """m: characteristics 0..m-1 form the first group, the others the second, with the
        group sizes prod n_k as even as a contiguous split allows (the score tensor's axes are
        in characteristic order)."""
        shape = self.leaf_shape
        total = math.prod(shape)
        return min(range(len(shape) + 1),
                   key=lambda m: max(math.prod(shape[:m]), total // math.prod(shape[:m])))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """(B, K) standardised characteristics -> (B,) leaf score (before the sigmoid):
        sum over leaves of score * prod_k bin_k, as the bilinear form u_b S v_b."""
        bins = self.bins(z)
        m = self.split()
        u, v = _kron_rows(bins[:m], z), _kron_rows(bins[m:], z)
        s = self.scores.reshape(u.shape[1], v.shape[1])
        return ((u @ s) * v).sum(1)

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
        # the window's per-cut-point minimum and maximum, (K, a) padded with nan
        self.low: torch.Tensor | None = None
        self.high: torch.Tensor | None = None

    def step(self, cuts: list[torch.Tensor],
             z: torch.Tensor | Callable[[], torch.Tensor]) -> list[CutAction]:
        """Call after every meta update with the current cut points (any order) and recent
        standardised characteristics z (N, K), or a function returning them (called only when
        the window ends); returns the actions due at this step."""
        now = torch.sort(pad_sequence([c.detach().cpu() for c in cuts], batch_first=True,
                                      padding_value=math.inf), dim=1).values
        now = torch.where(torch.isfinite(now), now, torch.full_like(now, math.nan))
        if self.low is None or self.low.shape != now.shape or not torch.equal(
                self.low.isnan(), now.isnan()):  # a new window, or the structure changed
            self.low, self.high = now, now
        self.low, self.high = torch.fmin(self.low, now), torch.fmax(self.high, now)
        self.steps += 1
        if self.steps % self.t_r:
            return []
        zc = (z() if callable(z) else z).detach().cpu()
        moved = torch.nan_to_num(self.high - self.low, nan=0.0).amax(dim=1) if now.shape[1] \
            else torch.zeros(len(cuts))  # eq. 8: max - min over the window
        actions: list[CutAction] = []
        for k in range(len(cuts)):
            s = now[k][~now[k].isnan()]
            pruned = self._prune(k, s, zc[:, k])
            if pruned is not None:
                actions.append(pruned)
            elif len(s) == 0:  # out of the tree: back in once its values spread
                value = float(zc[:, k].median()) if len(zc) else 0.0
                if bool((zc[:, k] > value).any()):
                    actions.append(CutAction("grow", k, value=value))
            elif len(s) < self.max_cuts and float(moved[k]) < self.eps_plus:
                actions.append(CutAction("grow", k, value=self._split_value(s, zc[:, k])))
        self.low = self.high = None  # the next window starts after the changes
        return actions

    def _prune(self, k: int, s: torch.Tensor, z: torch.Tensor) -> CutAction | None:
        """The first cut point to deactivate: of two closer than eps- or with no sample between
        them the smaller one; a cut point with no sample below it (the first) or above it (the
        last)."""
        if len(s) and (not bool((z <= s[0]).any()) or not bool((z > s[-1]).any())):
            return CutAction("prune", k, j=0 if not bool((z <= s[0]).any()) else len(s) - 1)
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
