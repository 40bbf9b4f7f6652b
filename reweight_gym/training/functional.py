"""Helpers for meta-gradient methods: look-ahead forwards with substituted parameters.

``torch.func.functional_call`` runs the real module with a dict of replacement tensors, so no
model copy and no hand-written "meta layers" are needed. BatchNorm in train mode uses the batch
statistics; the running statistics are passed as *clones*, so a look-ahead never changes the
real model's buffers.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.func import functional_call


def trainable_params(model: nn.Module) -> dict[str, torch.Tensor]:
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


def functional_forward(model: nn.Module, params: dict[str, torch.Tensor],
                       x: torch.Tensor) -> torch.Tensor:
    """``model(x)`` with ``params`` substituted; buffers cloned so running stats stay put."""
    buffers = {n: b.clone() for n, b in model.named_buffers()}
    return functional_call(model, {**buffers, **params}, (x,))

