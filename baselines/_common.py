"""Closed-form pieces shared by several weighers: the logit error and batch normalisation."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def logit_error(logits: torch.Tensor, labels: torch.Tensor,
                smoothing: float = 0.0) -> torch.Tensor:
    """p - y: the gradient of the cross-entropy with respect to the logits, as a constant (no
    graph). The per-sample factor of every closed-form meta-gradient here (MW-Net's JVP inner
    products, GDW's logit-gradient weights, FSR's last-layer gradients). With label
    ``smoothing`` a, y is the smoothed target (1 - a) one_hot + a / C."""
    with torch.no_grad():
        c = logits.shape[1]
        y = F.one_hot(labels, c).to(logits.dtype)
        if smoothing:
            y = (1.0 - smoothing) * y + smoothing / c
        return torch.softmax(logits, 1) - y


def normalise_to_batch(w: torch.Tensor) -> torch.Tensor:
    """w / sum(w) * B: weights that sum to 1 (as in MW-Net's and FSR's code), scaled by the batch
    size B so that the trainer's (1/B) sum_i w_i l_i equals the papers' sum_i w~_i l_i. A batch
    whose weights sum to zero is returned unchanged (MW-Net's code does the same)."""
    s = w.sum()
    return torch.where(s > 0, w / s.clamp_min(1e-12) * w.shape[0], w)
