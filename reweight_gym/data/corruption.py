"""Seeded label noise and class imbalance, each recording which samples it corrupted.

Label noise is expressed as a row-stochastic transition matrix T (T[i, j] = P(observed j | true
i)) and sampled per sample; every function returns the observed labels and the ``is_noisy`` mask
(observed != true). Imbalance returns per-class counts and the kept indices.
"""

from __future__ import annotations

import numpy as np


def noise_transition(noise_type: str, rate: float, num_classes: int,
                     rng: np.random.Generator) -> np.ndarray:
    """The C x C transition matrix of a noise model.

    - ``uniform``: with probability ``rate`` the label is redrawn uniformly over *all* classes,
      the true one included (MW-Net's code); the realised flip rate is rate * (C-1)/C.
    - ``uniform_other``: with probability ``rate`` the label moves to one of the other classes.
    - ``pair_flip``: class c moves to c+1 (mod C) with probability ``rate``.
    - ``flip2``: MW-Net's flip noise: each class moves with probability rate/2 to each of two
      other classes drawn at random (once per class, from ``rng``).
    - ``none``: identity.
    """
    c = num_classes
    eye = np.eye(c)
    if noise_type == "none" or rate == 0:
        return eye
    if noise_type == "uniform":
        return (1 - rate) * eye + rate / c * np.ones((c, c))
    if noise_type == "uniform_other":
        return (1 - rate) * eye + rate / (c - 1) * (np.ones((c, c)) - eye)
    if noise_type == "pair_flip":
        return (1 - rate) * eye + rate * np.roll(eye, 1, axis=1)
    if noise_type == "flip2":
        t = (1 - rate) * eye
        for i in range(c):
            others = np.array([j for j in range(c) if j != i])
            for j in rng.choice(others, size=min(2, c - 1), replace=False):
                t[i, j] += rate / min(2, c - 1)
        return t
    raise ValueError(f"invalid noise_type={noise_type!r}: allowed: none, uniform, uniform_other, "
                     "pair_flip, flip2")


def corrupt_labels(labels: np.ndarray, noise_type: str, rate: float, num_classes: int,
                   rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sample observed labels from the transition matrix.

    Returns ``(observed, is_noisy, T)`` where ``is_noisy = observed != labels``.
    """
    t = noise_transition(noise_type, rate, num_classes, rng)
    cdf = np.cumsum(t, axis=1)
    cdf[:, -1] = 1.0
    u = rng.random(len(labels))
    observed = (u[:, None] > cdf[labels]).sum(axis=1).astype(np.int64)
    return observed, observed != labels, t


def long_tail_counts(n_max: int, num_classes: int, imbalance_factor: float) -> list[int]:
    """n_i = n_max * mu^(i / (C - 1)) with mu = 1 / imbalance_factor (Cui et al., 2019)."""
    if num_classes == 1:
        return [n_max]
    mu = 1.0 / imbalance_factor
    return [max(1, int(n_max * mu ** (i / (num_classes - 1)))) for i in range(num_classes)]


def law_step_minority_classes(num_classes: int) -> int:
    """How many classes LAW's step imbalance cuts: 2 of CIFAR-10's 10 classes and 10 of
    CIFAR-100's 100 (its two settings); for other class counts C // 5 (LAW's CIFAR-10 share),
    at least 1."""
    return {10: 2, 100: 10}.get(num_classes, max(1, num_classes // 5))


def step_counts(n_max: int, num_classes: int, imbalance_factor: float,
                minority_classes: int | None = None) -> list[int]:
    """LAW's step imbalance: the last ``minority_classes`` classes (default
    :func:`law_step_minority_classes`) are cut to n_max / imbalance_factor, the others keep
    n_max."""
    m = law_step_minority_classes(num_classes) if minority_classes is None else minority_classes
    if not 1 <= m < num_classes + 1:
        raise ValueError(f"invalid step_minority_classes={m!r}: must be in 1..{num_classes}")
    low = max(1, int(n_max / imbalance_factor))
    return [n_max] * (num_classes - m) + [low] * m


def class_counts(labels: np.ndarray, num_classes: int) -> np.ndarray:
    return np.bincount(labels, minlength=num_classes)
