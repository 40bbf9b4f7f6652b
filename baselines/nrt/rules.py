"""Readable weighting rules of a trained neural regression tree (NRT's interpretation step).

The weights of recent samples are clustered with k-means into levels, each characteristic's hard
bins (its active cut points) are ranked by the information gain about the level, and the bins of
the most informative characteristics are reported with their dominant weight level.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from reweight_gym.baselines.nrt.characteristics import CHARACTERISTICS, RunningStandardizer
from reweight_gym.baselines.nrt.tree import NeuralRegressionTree, hard_bins


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
    tree_cuts = [c.detach().cpu() for c in tree.cuts]
    for k in range(tree.num_characteristics):
        bins = hard_bins(zc[:, k], tree_cuts[k]).numpy()
        cond = sum((bins == b).mean() * _entropy(level[bins == b], n_clusters)
                   for b in np.unique(bins))
        gains.append(h_all - cond)
    lines = [f"weights of {len(w)} recent samples: k-means levels (centres) "
             + ", ".join(f"{names[i]}={km.cluster_centers_[order[i], 0]:.3f}"
                         for i in range(n_clusters))]
    for k in np.argsort(gains)[::-1][:top_k]:
        cuts = torch.sort(tree_cuts[k]).values.tolist()
        raw = [standardizer.to_raw(int(k), c) for c in cuts]
        edges = [-math.inf, *raw, math.inf]
        lines.append(f"{CHARACTERISTICS[k]} (information gain {gains[k]:.3f} bits):")
        bins = hard_bins(zc[:, k], tree_cuts[k]).numpy()
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
