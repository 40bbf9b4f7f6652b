"""NRT's neural regression tree and the controller that grows and prunes its cut points.

- Soft binning (eq. 6): a characteristic zeta with a sorted active cut points beta_1 < ... < beta_a
  falls into a+1 bins with probabilities softmax((w zeta + b) / tau), w = [1, 2, ..., a+1],
  b = [0, -beta_1, -beta_1 - beta_2, ...]; as tau -> 0 this is the one-hot of the interval.
- Leaves (eq. 7): the Kronecker product of the nine bin vectors; the output is the leaf scores
  dotted with it (a sigmoid of it is the weight). The Kronecker product is never materialised:
  the score tensor (one axis per characteristic, one entry per *active* bin) is contracted with
  one characteristic's bin vector at a time, so the largest intermediate is
  B x prod_{k>0} (a_k + 1), not B x 5^9 (1.95M leaves per sample in the reference code).
- Growth and pruning (:class:`CutPointController`): every T_r meta updates, if every active cut
  point of a characteristic moved less than eps+ over the window, one more cut point is
  activated (up to c), splitting the most populated bin at its median; cut points closer than
  eps- to their neighbour, or with no sample between them, are deactivated (the smaller one; the
  two bins' scores are averaged). A new bin copies the scores of the bin it splits, so the tree's
  hard function is unchanged by growth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn


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
