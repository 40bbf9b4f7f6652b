"""Batches sliced from uint8 tensors and augmented on the device (pad-4 crop + flip).

No per-image PIL loader: a batch is an index slice of the uint8 tensor, padded, cropped at
random offsets with one gather, flipped with one ``torch.where``, converted and normalised.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class BatchPipeline:
    """Turns uint8 images (B, C, H, W) into normalised float batches, optionally augmented."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...], crop_padding: int = 4,
                 flip: bool = True, device: torch.device | str = "cpu",
                 channels_last: bool = True) -> None:
        self.device = torch.device(device)
        self.mean = torch.tensor(mean, device=self.device).view(1, -1, 1, 1) * 255.0
        self.inv_std = 1.0 / (torch.tensor(std, device=self.device).view(1, -1, 1, 1) * 255.0)
        self.padding = int(crop_padding)
        self.flip = bool(flip)
        self.channels_last = channels_last

    def _finish(self, x: torch.Tensor) -> torch.Tensor:
        x = (x.float() - self.mean) * self.inv_std
        if self.channels_last and x.dim() == 4 and x.shape[-1] > 1:
            x = x.contiguous(memory_format=torch.channels_last)
        return x

    def augment(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """Random crop with zero padding ``crop_padding`` and horizontal flip (p = 0.5)."""
        x = x.to(self.device, non_blocking=True)
        b, c, h, w = x.shape
        p = self.padding
        if p > 0:
            padded = F.pad(x, (p, p, p, p))
            offs = torch.randint(0, 2 * p + 1, (2, b), generator=generator).to(self.device)
            rows = (offs[0][:, None] + torch.arange(h, device=self.device)[None, :])
            cols = (offs[1][:, None] + torch.arange(w, device=self.device)[None, :])
            bi = torch.arange(b, device=self.device)[:, None, None, None]
            ci = torch.arange(c, device=self.device)[None, :, None, None]
            x = padded[bi, ci, rows[:, None, :, None], cols[:, None, None, :]]
        if self.flip:
            mask = (torch.rand(b, generator=generator) < 0.5).to(self.device)
            x = torch.where(mask[:, None, None, None], x.flip(-1), x)
        return self._finish(x)

    def plain(self, x: torch.Tensor) -> torch.Tensor:
        """Normalise without augmentation (evaluation)."""
        return self._finish(x.to(self.device, non_blocking=True))


class EpochSampler:
    """Index batches of a fixed size: a fresh seeded permutation per epoch, last partial batch
    dropped (so every batch has the same size, which BatchNorm and bit-identity need)."""

    def __init__(self, n: int, batch_size: int, generator: torch.Generator) -> None:
        if n < 2:
            raise ValueError(f"invalid training set size {n}: need at least 2 images")
        self.n = n
        self.batch_size = min(batch_size, n)
        self.generator = generator
        self.iters_per_epoch = n // self.batch_size
        self._perm: torch.Tensor | None = None
        self._pos = 0

    def next(self) -> torch.Tensor:
        if self._perm is None or self._pos >= self.iters_per_epoch:
            self._perm = torch.randperm(self.n, generator=self.generator)
            self._pos = 0
        i = self._pos * self.batch_size
        self._pos += 1
        return self._perm[i: i + self.batch_size]


class MetaSampler:
    """Cycles through a clean meta set in seeded random batches (augmented like training)."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, pipeline: BatchPipeline,
                 batch_size: int, generator: torch.Generator, augment: bool = True) -> None:
        self.x = x
        self.y = y.to(pipeline.device)
        self.pipeline = pipeline
        self.generator = generator
        self.augment = augment
        self.sampler = EpochSampler(len(y), batch_size, generator) if len(y) >= 2 else None

    def __len__(self) -> int:
        return len(self.y)

    def next(self) -> tuple[torch.Tensor, torch.Tensor]:
        """One meta batch ``(x, y)``."""
        if self.sampler is None:
            raise ValueError("the meta set has fewer than 2 images; set meta_size")
        idx = self.sampler.next()
        xb = self.x[idx]
        xb = self.pipeline.augment(xb, self.generator) if self.augment else self.pipeline.plain(xb)
        return xb, self.y[idx.to(self.y.device)]
