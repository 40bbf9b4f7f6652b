"""Per-sample characteristics used as weighting features (LAW eq. 6, NRT's nine) and history.

All functions take detached batch tensors and return one value per sample.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def entropy(logits: torch.Tensor, log_probs: torch.Tensor | None = None) -> torch.Tensor:
    """Prediction entropy H(p) = -sum_j p_j log p_j (``log_probs``: log_softmax(logits) when
    the caller has it already)."""
    logp = F.log_softmax(logits, dim=1) if log_probs is None else log_probs
    return -(logp.exp() * logp).sum(dim=1)


def density(logits: torch.Tensor) -> torch.Tensor:
    """LAW's density: with Lo the (C x B) matrix of batch logits, the similarity matrix
    S = Lo^T Lo; each sample's density is its mean similarity to the *other* samples."""
    b = logits.shape[0]
    s = logits @ logits.T
    return (s.sum(dim=1) - s.diagonal()) / max(1, b - 1)


def margin(logits: torch.Tensor, labels: torch.Tensor,
           probs: torch.Tensor | None = None) -> torch.Tensor:
    """p_y - max_{j != y} p_j (NRT); ``probs``: softmax(logits) when the caller has it."""
    p = F.softmax(logits, dim=1) if probs is None else probs
    py = p.gather(1, labels[:, None]).squeeze(1)
    others = p.scatter(1, labels[:, None], float("-inf"))
    return py - others.max(dim=1).values


def grad_norm(logits: torch.Tensor, labels: torch.Tensor,
              probs: torch.Tensor | None = None) -> torch.Tensor:
    """||y - p||_2, the norm of the cross-entropy gradient w.r.t. the logits (NRT);
    ``probs``: softmax(logits) when the caller has it."""
    p = F.softmax(logits, dim=1) if probs is None else probs
    y = F.one_hot(labels, logits.shape[1]).to(p.dtype)
    return (y - p).norm(dim=1)


def class_proportion(labels: torch.Tensor, class_counts: torch.Tensor) -> torch.Tensor:
    """N_y / N for each sample's (observed) class (NRT)."""
    counts = class_counts.to(torch.float32)
    return (counts / counts.sum()).to(labels.device)[labels]


def class_mean_loss(losses: torch.Tensor, labels: torch.Tensor, num_classes: int) -> torch.Tensor:
    """Mean loss of each sample's class within the batch (NRT)."""
    sums = torch.zeros(num_classes, dtype=losses.dtype, device=losses.device)
    cnts = torch.zeros(num_classes, dtype=losses.dtype, device=losses.device)
    sums.index_add_(0, labels, losses)
    cnts.index_add_(0, labels, torch.ones_like(losses))
    return (sums / cnts.clamp_min(1))[labels]


def standardize(x: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
    """Z-score within the batch (population std); a constant column becomes 0."""
    mean = x.mean(dim=0, keepdim=True)
    std = x.std(dim=0, unbiased=False, keepdim=True)
    return (x - mean) / (std + eps)


FEATURE_SETS = {
    # LAW eq. 6: [loss, entropy, density, label one-hot]
    "law": ("loss", "entropy", "density", "label"),
    # class-count independent: transfers between datasets with different C
    "agnostic": ("loss", "entropy", "density", "margin", "grad_norm", "class_proportion"),
}


def feature_dim(feature_set: str, num_classes: int) -> int:
    names = FEATURE_SETS[feature_set]
    return sum(num_classes if n == "label" else 1 for n in names)


def feature_names(feature_set: str, num_classes: int) -> list[str]:
    out: list[str] = []
    for n in FEATURE_SETS[feature_set]:
        out += [f"label_{k}" for k in range(num_classes)] if n == "label" else [n]
    return out


def sample_features(feature_set: str, logits: torch.Tensor, labels: torch.Tensor,
                    losses: torch.Tensor, class_counts: torch.Tensor) -> torch.Tensor:
    """The (B, n_features) feature matrix: continuous features z-scored within the batch,
    the label one-hot left as 0/1."""
    logits, losses = logits.detach(), losses.detach()
    cols: list[torch.Tensor] = []
    for n in FEATURE_SETS[feature_set]:
        if n == "label":
            continue
        if n == "loss":
            cols.append(losses)
        elif n == "entropy":
            cols.append(entropy(logits))
        elif n == "density":
            cols.append(density(logits))
        elif n == "margin":
            cols.append(margin(logits, labels))
        elif n == "grad_norm":
            cols.append(grad_norm(logits, labels))
        elif n == "class_proportion":
            cols.append(class_proportion(labels, class_counts))
    feats = standardize(torch.stack(cols, dim=1).float())
    if "label" in FEATURE_SETS[feature_set]:
        onehot = F.one_hot(labels, logits.shape[1]).to(feats.dtype)
        feats = torch.cat([feats, onehot], dim=1)
    return feats


class SampleHistory:
    """Per-sample memory over epochs: the weight of the current, previous and the one before
    (NRT's "weight one and two epochs ago"), and an EMA of each sample's loss."""

    def __init__(self, n: int, device: torch.device | str = "cpu", loss_momentum: float = 0.9):
        self.weight_now = torch.ones(n, device=device)
        self.weight_prev1 = torch.ones(n, device=device)
        self.weight_prev2 = torch.ones(n, device=device)
        self.loss_ema = torch.zeros(n, device=device)
        self.seen = torch.zeros(n, dtype=torch.bool, device=device)
        self.loss_momentum = loss_momentum

    def record(self, index: torch.Tensor, weights: torch.Tensor, losses: torch.Tensor) -> None:
        index = index.to(self.weight_now.device)
        self.weight_now[index] = weights.detach().float()
        m = self.loss_momentum
        prev = torch.where(self.seen[index], self.loss_ema[index], losses.detach().float())
        self.loss_ema[index] = m * prev + (1 - m) * losses.detach().float()
        self.seen[index] = True

    def end_epoch(self) -> None:
        self.weight_prev2.copy_(self.weight_prev1)
        self.weight_prev1.copy_(self.weight_now)

