"""Small helpers shared by the weighers: keyword validation and the meta sampler guard.

Every method validates its keyword arguments when it is *made* (``make_weigher``), and every
error is a ``ValueError`` naming the method, the field, the value and what is allowed.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
import torch.nn.functional as F

from reweight_gym.training.pipeline import MetaSampler
from reweight_gym.training.weigher import WeighContext


def kwarg_error(method: str, name: str, value: Any, allowed: str) -> ValueError:
    """The one error format of method keywords."""
    return ValueError(f"invalid {method} kwarg {name}={value!r}: {allowed}")


def check_number(method: str, name: str, value: Any, lo: float | None = None,
                 hi: float | None = None, lo_open: bool = False, hi_open: bool = False,
                 integer: bool = False) -> None:
    """Raise ``ValueError`` unless ``value`` is a finite number (integer) in the range."""
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type or not math.isfinite(value):
        raise kwarg_error(method, name, value, "must be an integer" if integer
                          else "must be a finite number")
    if lo is not None and (value < lo or (lo_open and value == lo)):
        raise kwarg_error(method, name, value, f"must be {'>' if lo_open else '>='} {lo}")
    if hi is not None and (value > hi or (hi_open and value == hi)):
        raise kwarg_error(method, name, value, f"must be {'<' if hi_open else '<='} {hi}")


def check_choice(method: str, name: str, value: Any, allowed: Sequence[Any]) -> None:
    if value not in allowed:
        raise kwarg_error(method, name, value, f"allowed: {', '.join(map(str, allowed))}")


def check_bool(method: str, name: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise kwarg_error(method, name, value, "must be True or False")


def require_meta(ctx: WeighContext, method: str) -> MetaSampler:
    """The clean meta sampler, which the trainer supplies only to ``needs_meta`` weighers."""
    if ctx.meta is None:
        raise ValueError(f"{method} needs a clean meta set: the run has none (meta_size="
                         "0?) or the weigher does not declare needs_meta = True")
    return ctx.meta


def draw_seed(generator: torch.Generator) -> int:
    """A seed for a weigher's own initialisation, drawn from the run's weigher generator."""
    return int(torch.randint(0, 2**31 - 1, (1,), generator=generator))


def logit_error(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """p - y: the gradient of the cross-entropy with respect to the logits, as a constant (no
    graph). The per-sample factor of every closed-form meta-gradient here (MW-Net's JVP inner
    products, GDW's logit-gradient weights, FSR's last-layer gradients)."""
    with torch.no_grad():
        return torch.softmax(logits, 1) - F.one_hot(labels, logits.shape[1]).to(logits.dtype)


def normalise_to_batch(w: torch.Tensor) -> torch.Tensor:
    """w / sum(w) * B: weights that sum to 1 (as in MW-Net's and FSR's code), scaled by the batch
    size B so that the trainer's (1/B) sum_i w_i l_i equals the papers' sum_i w~_i l_i. A batch
    whose weights sum to zero is returned unchanged (MW-Net's code does the same)."""
    s = w.sum()
    return torch.where(s > 0, w / s.clamp_min(1e-12) * w.shape[0], w)
