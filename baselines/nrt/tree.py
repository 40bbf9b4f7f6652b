"""NRT's neural regression tree and the controller that grows and prunes its cut points.

- Soft binning (eq. 6): a characteristic zeta with a sorted active cut points beta_1 < ... < beta_a
  falls into a+1 bins with probabilities softmax((w zeta + b) / tau), w = [1, 2, ..., a+1],
  b = [0, -beta_1, -beta_1 - beta_2, ...]; as tau -> 0 this is the one-hot of the interval.
- Leaves (eq. 7): the Kronecker product of the nine bin vectors; the output is the leaf scores
  dotted with it (a sigmoid of it is the weight). The Kronecker product is never materialised:
  the characteristics are split into two groups whose own Kronecker products u (B x N_1) and
  v (B x N_2) are small (N_1 N_2 = N leaves, N_1 ~ N_2 ~ sqrt(N), counting *active* bins only),
  and the score tensor, reshaped to an N_1 x N_2 matrix S, gives every sample's output as the
  bilinear form u_b S v_b: one matrix product (u S) and a row-wise dot with v. u and v are
  exp of the log bins times a fixed 0/1 selection matrix (:func:`kron_selector`), so the whole
  tree is a few dense operations whatever the number of characteristics (on a small model the
  count of small operations, not their size, is the cost). The largest intermediate is
  B x N_2, not B x 5^9 (1.95M leaves per sample in the reference code).
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


def log_soft_bins(z: torch.Tensor, values: torch.Tensor, active: torch.Tensor,
                  tau: float) -> torch.Tensor:
    """Log of eq. 6's soft bins for K characteristics at once: (B, K) values z, the cut points
    as a (K, c) array ``values`` of which ``active`` (K, c) marks the ones in use (any order)
    -> (B, K, c + 1) log-probabilities; characteristic k's bins are the first a_k + 1 entries
    (a_k active cut points), the rest is 0 (not -inf, so that a product with a zero coefficient
    stays 0). The K softmaxes are one operation."""
    k, c = values.shape
    if c == 0:
        return z.new_zeros(z.shape[0], k, 1)
    inf = torch.full_like(values, math.inf)
    beta, order = torch.sort(torch.where(active, values, inf), dim=1)  # active ones first
    used = active.gather(1, order)
    zero = z.new_zeros(k, 1)
    bias = torch.cat([zero, -torch.cumsum(torch.where(used, beta, zero), dim=1)], dim=1)
    w = torch.arange(1, c + 2, dtype=z.dtype, device=z.device)
    logits = (z[:, :, None] * w + bias) / tau  # (B, K, c + 1)
    mask = torch.cat([torch.ones_like(zero, dtype=torch.bool), used], dim=1)
    logp = torch.log_softmax(logits.masked_fill(~mask, -math.inf), dim=2)
    return logp.masked_fill(~mask, 0.0)


def soft_bins(z: torch.Tensor, cuts: Sequence[torch.Tensor], tau: float) -> list[torch.Tensor]:
    """Soft binning of eq. 6: (B, K) values and K tensors of cut points -> K tensors
    (B, a_k + 1) of bin probabilities softmax((w zeta + b) / tau), w = [1, ..., a_k + 1],
    b = [0, -beta_1, -beta_1 - beta_2, ...] over the sorted cut points."""
    values = pad_sequence(list(cuts), batch_first=True) if cuts else z.new_zeros(0, 0)
    active = pad_sequence([torch.ones(len(c), dtype=torch.bool) for c in cuts],
                          batch_first=True).to(values.device) if cuts else values.bool()
    p = log_soft_bins(z, values, active, tau).exp()
    return [p[:, j, : len(c) + 1] for j, c in enumerate(cuts)]


def hard_bins(z: torch.Tensor, cuts: torch.Tensor) -> torch.Tensor:
    """Index of the interval (-inf, b1], (b1, b2], ..., (ba, inf) of each value."""
    return torch.bucketize(z.contiguous(), torch.sort(cuts).values, right=False)


def kron_selector(shape: Sequence[int], padded: int, first: int, rows: int) -> torch.Tensor:
    """The 0/1 matrix (rows, prod(shape)) that sums, for every leaf of the characteristics
    first, first + 1, ... (bin counts ``shape``, row-major leaf order), the log-probabilities
    of its bins in a flattened (K, padded) array of :func:`log_soft_bins` (rows = K padded):
    the log of the row-wise Kronecker product of their bin vectors as one matrix product."""
    m = len(shape)
    leaves = torch.cartesian_prod(*[torch.arange(n) for n in shape]).reshape(-1, m) if m \
        else torch.zeros(1, 0, dtype=torch.long)
    index = (torch.arange(first, first + m) * padded)[None, :] + leaves  # (L, m) rows
    sel = torch.zeros(rows, len(leaves))
    sel[index.reshape(-1), torch.arange(len(leaves)).repeat_interleave(m)] = 1.0
    return sel


class NeuralRegressionTree(nn.Module):
    """Leaf scores over the active bins of K characteristics (eq. 7), as a bilinear form.

    The cut points are one (K, capacity) parameter ``cut_values`` and a mask ``active``
    (a buffer): one tensor to sort, bin and update whatever the number of characteristics.
    ``cuts[k]`` reads characteristic k's active cut points."""

    active: torch.Tensor  # the buffer registered in __init__ (bool, like cut_values)

    def __init__(self, num_characteristics: int = 9, tau: float = 0.1,
                 capacity: int = 1) -> None:
        super().__init__()
        self.tau = tau
        self.cut_values = nn.Parameter(torch.zeros(num_characteristics, max(1, capacity)))
        active = torch.zeros(num_characteristics, max(1, capacity), dtype=torch.bool)
        active[:, 0] = True  # one cut point at the standardised mean to start
        self.register_buffer("active", active)
        self.scores = nn.Parameter(torch.zeros((2,) * num_characteristics))
        self._selector_key: tuple[object, ...] | None = None
        self._selector_cache: tuple[int, torch.Tensor, torch.Tensor] | None = None

    @property
    def num_characteristics(self) -> int:
        return self.cut_values.shape[0]

    @property
    def cuts(self) -> list[torch.Tensor]:
        """The active cut points of every characteristic (in slot order)."""
        return [self.cut_values[k][self.active[k]] for k in range(self.num_characteristics)]

    @property
    def leaf_shape(self) -> tuple[int, ...]:
        return tuple(int(n) + 1 for n in self.active.sum(1).tolist())

    @property
    def num_leaves(self) -> int:
        return math.prod(self.leaf_shape)

    def bins(self, z: torch.Tensor) -> list[torch.Tensor]:
        """The soft bins (eq. 6) of every characteristic."""
        p = log_soft_bins(z, self.cut_values, self.active, self.tau).exp()
        return [p[:, k, :n] for k, n in enumerate(self.leaf_shape)]

    def split(self) -> int:
        """m: characteristics 0..m-1 form the first group, the others the second, with the
        group sizes prod n_k as even as a contiguous split allows (the score tensor's axes are
        in characteristic order)."""
        shape = self.leaf_shape
        total = math.prod(shape)
        return min(range(len(shape) + 1),
                   key=lambda m: max(math.prod(shape[:m]), total // math.prod(shape[:m])))

    def _selectors(self, padded: int, device: torch.device) -> tuple[int, torch.Tensor,
                                                                     torch.Tensor]:
        """The split and the two groups' :func:`kron_selector` matrices (cached per
        structure)."""
        shape = self.leaf_shape
        key = (shape, padded, str(device))
        if self._selector_key != key:
            m = self.split()
            rows = len(shape) * padded
            self._selector_cache = (m, kron_selector(shape[:m], padded, 0, rows).to(device),
                                    kron_selector(shape[m:], padded, m, rows).to(device))
            self._selector_key = key
        assert self._selector_cache is not None
        return self._selector_cache

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        """(B, K) standardised characteristics -> (B,) leaf score (before the sigmoid):
        sum over leaves of score * prod_k bin_k (eq. 7), as the bilinear form u_b S v_b; the
        groups' Kronecker products u, v are exp of one matrix product each with the log bins."""
        logp = log_soft_bins(z, self.cut_values, self.active, self.tau)
        _, sel_u, sel_v = self._selectors(logp.shape[2], z.device)
        flat = logp.reshape(len(z), -1)
        u, v = (flat @ sel_u).exp(), (flat @ sel_v).exp()
        s = self.scores.reshape(u.shape[1], v.shape[1])
        return ((u @ s) * v).sum(1)

    # -------------------------------------------------------------- structure changes
    @torch.no_grad()
    def _slots_sorted(self, k: int) -> torch.Tensor:
        """Slots of characteristic k's active cut points, smallest value first."""
        slots = torch.nonzero(self.active[k]).squeeze(1)
        return slots[torch.argsort(self.cut_values[k, slots])]

    @torch.no_grad()
    def add_cut(self, k: int, value: float) -> None:
        """Activate a cut point at ``value`` on characteristic k; the bin it splits is copied."""
        if bool(self.active[k].all()):  # no free slot: one more column
            self.cut_values = nn.Parameter(torch.cat(
                [self.cut_values.detach(), self.cut_values.new_zeros(len(self.active), 1)], 1))
            self.active = torch.cat([self.active, self.active.new_zeros(len(self.active), 1)],
                                    1)
        slot = int(torch.nonzero(~self.active[k])[0])
        j = int((self.cut_values[k][self.active[k]] < value).sum())  # the split bin's index
        self.cut_values[k, slot] = value
        self.active[k, slot] = True
        scores = self.scores.detach()
        sl = scores.narrow(k, j, 1)
        scores = torch.cat([scores.narrow(k, 0, j + 1), sl, scores.narrow(
            k, j + 1, scores.shape[k] - j - 1)], dim=k)
        self.scores = nn.Parameter(scores.contiguous())

    @torch.no_grad()
    def remove_cut(self, k: int, j: int) -> None:
        """Deactivate the j-th smallest cut point of characteristic k: bins j, j+1 merge."""
        self.active[k, self._slots_sorted(k)[j]] = False
        scores = self.scores.detach()
        merged = 0.5 * (scores.narrow(k, j, 1) + scores.narrow(k, j + 1, 1))
        scores = torch.cat([scores.narrow(k, 0, j), merged,
                            scores.narrow(k, j + 2, scores.shape[k] - j - 2)], dim=k)
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
        # the window's minimum and maximum of every cut-point slot, and the active slots
        self.low: torch.Tensor | None = None
        self.high: torch.Tensor | None = None
        self.active: torch.Tensor | None = None

    def step(self, cuts: list[torch.Tensor],
             z: torch.Tensor | Callable[[], torch.Tensor]) -> list[CutAction]:
        """:meth:`step_padded` for cut points given as one tensor per characteristic."""
        values = pad_sequence([c.detach().reshape(-1) for c in cuts], batch_first=True)
        active = pad_sequence([torch.ones(len(c), dtype=torch.bool) for c in cuts],
                              batch_first=True)
        return self.step_padded(values, active, z)

    def step_padded(self, values: torch.Tensor, active: torch.Tensor,
                    z: torch.Tensor | Callable[[], torch.Tensor]) -> list[CutAction]:
        """Call after every meta update with the cut points as (K, c) ``values`` and ``active``
        mask (:class:`NeuralRegressionTree`'s ``cut_values`` and ``active``) and recent
        standardised characteristics z (N, K), or a function returning them (called only when
        the window ends); returns the actions due at this step."""
        now = values.detach().cpu()
        act = active.cpu()
        if self.low is None or self.high is None or self.active is None \
                or self.active.shape != act.shape or not torch.equal(self.active, act):
            self.low, self.high, self.active = now, now, act  # a new window
        self.low, self.high = torch.minimum(self.low, now), torch.maximum(self.high, now)
        self.steps += 1
        if self.steps % self.t_r:
            return []
        zc = (z() if callable(z) else z).detach().cpu()
        moved = self.high - self.low  # eq. 8: max - min over the window, per slot
        sorted_cuts = [torch.sort(now[k][act[k]]).values for k in range(len(now))]
        actions: list[CutAction] = []
        for k, s in enumerate(sorted_cuts):
            pruned = self._prune(k, s, zc[:, k])
            if pruned is not None:
                actions.append(pruned)
            elif len(s) == 0:  # out of the tree: back in once its values spread
                value = float(zc[:, k].median()) if len(zc) else 0.0
                if bool((zc[:, k] > value).any()):
                    actions.append(CutAction("grow", k, value=value))
            elif len(s) < self.max_cuts and float(moved[k][act[k]].max()) < self.eps_plus:
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
