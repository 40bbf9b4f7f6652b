"""Learning-rate schedules as pure functions of the iteration (no scheduler state to save)."""

from __future__ import annotations

import math


def learning_rate(iteration: int, total: int, base_lr: float, schedule: str,
                  milestones: tuple[float, ...] = (), gamma: float = 0.1) -> float:
    """LR at ``iteration`` (0-based) of ``total``.

    ``step``: multiplied by ``gamma`` at each milestone (a fraction of training; LAW divides by 10
    at stages 10, 13, 16 of 20, i.e. milestones 0.5, 0.65, 0.8). ``cosine``: half-cosine from
    ``base_lr`` to 0. ``constant``: ``base_lr``.
    """
    frac = iteration / max(1, total)
    if schedule == "step":
        return base_lr * gamma ** sum(1 for m in milestones if frac >= m - 1e-12)
    if schedule == "cosine":
        return 0.5 * base_lr * (1.0 + math.cos(math.pi * frac))
    if schedule == "constant":
        return base_lr
    raise ValueError(f"invalid lr_schedule={schedule!r}: allowed: step, cosine, constant")
