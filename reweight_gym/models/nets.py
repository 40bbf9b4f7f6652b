"""Classifiers: CIFAR ResNet-32, WRN-28-10, a small fast CNN for CPU, an MLP for digits.

Every model exposes ``features(x)`` (the penultimate representation) and ``fc`` (the final
linear layer), so methods that work on the last layer only (FSR's feature sharing) can use them.

Dropout (WRN's ``dropout``) is :class:`SeededDropout`: its masks are a function of a seed that the
trainer sets every iteration (:func:`set_dropout_seed`), not of the global RNG. LAW's target and
reference networks then see the same masks (the duplicate-network identity, eq. 8, holds with
dropout), and every forward pass of one iteration (the trainer's, a meta method's look-ahead and
its finite-difference JVP) sees the same ones: the JVP differentiates one function.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn


class _Classifier(nn.Module):
    fc: nn.Linear

    def features(self, x: torch.Tensor) -> torch.Tensor:  # pragma: no cover - abstract
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.features(x))


class SeededDropout(nn.Module):
    """Dropout with probability ``p`` whose mask is drawn from ``seed`` when one is set.

    With ``seed`` set, the mask of an input is a function of the seed and the input's shape: two
    networks (or two forward passes) with the same seed drop the same units. Without a seed it is
    ``F.dropout`` on the global RNG. Identity in eval mode or at ``p = 0``.
    """

    def __init__(self, p: float) -> None:
        super().__init__()
        if not 0.0 <= p < 1.0:
            raise ValueError(f"invalid dropout={p!r}: must be in [0, 1)")
        self.p = float(p)
        self.seed: int | None = None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if self.seed is None:
            return F.dropout(x, self.p, True)
        g = torch.Generator(device=x.device).manual_seed(self.seed)
        keep = torch.rand(x.shape, generator=g, device=x.device) >= self.p
        return x * keep.to(x.dtype) / (1.0 - self.p)


def set_dropout_seed(model: nn.Module, seed: int | None) -> None:
    """Seed every :class:`SeededDropout` of ``model`` (each module its own stream, derived from
    ``seed`` and its position); ``None`` returns them to the global RNG."""
    for i, m in enumerate(m for m in model.modules() if isinstance(m, SeededDropout)):
        m.seed = None if seed is None else (int(seed) + 1_000_003 * i) % (2**63 - 1)


@contextmanager
def dropout_seed(model: nn.Module, seed: int | None) -> Iterator[None]:
    """``set_dropout_seed(model, seed)`` for the duration of the block, then unseeded."""
    set_dropout_seed(model, seed)
    try:
        yield
    finally:
        set_dropout_seed(model, None)


def _init(module: nn.Module) -> None:
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class _BasicBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or cin != cout:
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                          nn.BatchNorm2d(cout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class CifarResNet(_Classifier):
    """ResNet for 32x32 inputs (He et al., 2016): 3 stages of n basic blocks, widths 16-32-64;
    depth 6n + 2 (ResNet-32: n = 5), as used by MW-Net, GDW and FSR."""

    def __init__(self, num_classes: int = 10, depth: int = 32, in_channels: int = 3) -> None:
        super().__init__()
        if (depth - 2) % 6:
            raise ValueError(f"invalid depth={depth!r}: must be 6n + 2")
        n = (depth - 2) // 6
        self.conv = nn.Conv2d(in_channels, 16, 3, 1, 1, bias=False)
        self.bn = nn.BatchNorm2d(16)
        layers: list[nn.Module] = []
        cin = 16
        for i, width in enumerate((16, 32, 64)):
            for j in range(n):
                layers.append(_BasicBlock(cin, width, 2 if (i > 0 and j == 0) else 1))
                cin = width
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(64, num_classes)
        _init(self)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = self.layers(F.relu(self.bn(self.conv(x))))
        return F.adaptive_avg_pool2d(x, 1).flatten(1)


class _WideBlock(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, dropout: float) -> None:
        super().__init__()
        self.bn1 = nn.BatchNorm2d(cin)
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.dropout = SeededDropout(dropout)
        self.shortcut: nn.Module | None = None
        if stride != 1 or cin != cout:
            self.shortcut = nn.Conv2d(cin, cout, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        o = F.relu(self.bn1(x))
        y = self.conv1(o)
        y = self.conv2(self.dropout(F.relu(self.bn2(y))))
        return y + (self.shortcut(o) if self.shortcut is not None else x)


class WideResNet(_Classifier):
    """Wide ResNet WRN-depth-k (Zagoruyko & Komodakis, 2016); WRN-28-10 by default."""

    def __init__(self, num_classes: int = 10, depth: int = 28, widen: int = 10,
                 dropout: float = 0.0, in_channels: int = 3) -> None:
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError(f"invalid depth={depth!r}: must be 6n + 4")
        n = (depth - 4) // 6
        widths = [16, 16 * widen, 32 * widen, 64 * widen]
        self.conv = nn.Conv2d(in_channels, widths[0], 3, 1, 1, bias=False)
        blocks: list[nn.Module] = []
        cin = widths[0]
        for i, w in enumerate(widths[1:]):
            for j in range(n):
                blocks.append(_WideBlock(cin, w, 2 if (i > 0 and j == 0) else 1, dropout))
                cin = w
        self.blocks = nn.Sequential(*blocks)
        self.bn = nn.BatchNorm2d(cin)
        self.fc = nn.Linear(cin, num_classes)
        _init(self)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        x = F.relu(self.bn(self.blocks(self.conv(x))))
        return F.adaptive_avg_pool2d(x, 1).flatten(1)


class SmallCNN(_Classifier):
    """Six 3x3 conv layers of widths w-w-2w-2w-4w-4w with BatchNorm and ReLU, a 2x2 max-pool
    after each pair, global average pooling and a linear head: the ``cpu`` preset's network
    (width 16, 16-32-64), fast enough to train CIFAR-size runs on a CPU."""

    def __init__(self, num_classes: int = 10, width: int = 16, in_channels: int = 3) -> None:
        super().__init__()
        chans = [in_channels, width, width, 2 * width, 2 * width, 4 * width, 4 * width]
        layers: list[nn.Module] = []
        for i in range(6):
            layers += [nn.Conv2d(chans[i], chans[i + 1], 3, 1, 1, bias=False),
                       nn.BatchNorm2d(chans[i + 1]), nn.ReLU(inplace=True)]
            if i % 2 == 1:
                layers.append(nn.MaxPool2d(2, ceil_mode=True))
        self.body = nn.Sequential(*layers)
        self.fc = nn.Linear(4 * width, num_classes)
        _init(self)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return F.adaptive_avg_pool2d(self.body(x), 1).flatten(1)


class MLP(_Classifier):
    """A multilayer perceptron on flattened images (for digits): in -> hidden... -> classes."""

    def __init__(self, num_classes: int = 10, in_features: int = 64,
                 hidden: tuple[int, ...] = (128, 128)) -> None:
        super().__init__()
        dims = [in_features, *hidden]
        layers: list[nn.Module] = []
        for a, b in zip(dims[:-1], dims[1:]):
            layers += [nn.Linear(a, b), nn.ReLU(inplace=True)]
        self.body = nn.Sequential(*layers)
        self.fc = nn.Linear(dims[-1], num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x.flatten(1))
