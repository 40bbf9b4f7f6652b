"""Train / clean validation / clean balanced meta / test splits, then corruption of train.

The pool of clean training images is partitioned *once* by a seeded permutation: meta and
validation are taken first, the training set from what remains, so meta and validation are
disjoint from training by construction (a pitfall of reference code that draws two splits with
different seeds). Imbalance then subsamples the training part and noise corrupts its labels.
A source with a trusted ``val/`` split gives meta and validation sets from it instead, disjoint
from each other; a ``val/`` smaller than ``val_size + meta_size`` is split in proportion
(``_split_trusted``).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch

from reweight_gym.config import EnvConfig
from reweight_gym.data.corruption import (
    class_counts,
    corrupt_labels,
    long_tail_counts,
    step_counts,
)
from reweight_gym.data.datasets import ImageData, load_dataset


@dataclass
class DataSplits:
    """Everything a training run needs, as tensors (images uint8, labels int64)."""

    train_x: torch.Tensor
    train_y: torch.Tensor  # observed (possibly noisy) labels
    train_true_y: torch.Tensor
    is_noisy: torch.Tensor  # bool
    train_index: np.ndarray  # indices into the source training pool
    val_x: torch.Tensor
    val_y: torch.Tensor
    meta_x: torch.Tensor
    meta_y: torch.Tensor
    meta_index: np.ndarray
    val_index: np.ndarray
    test_x: torch.Tensor
    test_y: torch.Tensor
    num_classes: int
    class_names: list[str]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    noise_transition: np.ndarray

    @property
    def class_counts(self) -> np.ndarray:
        """Counts of the *observed* training labels per class."""
        return class_counts(self.train_y.numpy(), self.num_classes)

    @property
    def realised_noise_rate(self) -> float:
        return float(self.is_noisy.float().mean()) if len(self.is_noisy) else 0.0

    @property
    def image_shape(self) -> tuple[int, int, int]:
        c, h, w = self.train_x.shape[1:]
        return int(c), int(h), int(w)

    def summary(self) -> dict[str, object]:
        return {
            "train": len(self.train_y), "val": len(self.val_y), "meta": len(self.meta_y),
            "test": len(self.test_y), "num_classes": self.num_classes,
            "realised_noise_rate": self.realised_noise_rate,
            "class_counts": self.class_counts.tolist(),
        }


def _balanced_take(per_class: list[np.ndarray], total: int) -> tuple[np.ndarray, list[np.ndarray]]:
    """Take ``total`` indices spread evenly over classes (remainder to the first classes);
    returns the taken indices and what remains per class."""
    c = len(per_class)
    base, extra = divmod(total, c)
    taken, rest = [], []
    for i, idx in enumerate(per_class):
        n = base + (1 if i < extra else 0)
        if n > len(idx):
            raise ValueError(f"not enough images of class {i}: need {n}, have {len(idx)}")
        taken.append(idx[:n])
        rest.append(idx[n:])
    return np.sort(np.concatenate(taken)) if taken else np.zeros(0, np.int64), rest


def _split_trusted(trusted: list[np.ndarray], meta_size: int,
                   val_size: int) -> tuple[np.ndarray, np.ndarray]:
    """Meta and validation indices from a trusted ``val/`` split, disjoint, balanced.

    When ``val/`` holds at least ``meta_size + val_size`` images of every class's share, both
    sets are taken in full. Otherwise what is there is split: per class, its images are shared
    between meta and validation in the proportion meta_size : val_size (each set keeps at least
    one image of the class when the class has two), with a warning naming ``val/``, the sizes
    and the counts. A class with no trusted image, or a split that leaves a set empty, is a
    ``ValueError`` naming the same."""
    c = len(trusted)
    want_meta = [meta_size // c + (1 if k < meta_size % c else 0) for k in range(c)]
    want_val = [val_size // c + (1 if k < val_size % c else 0) for k in range(c)]
    have = [len(t) for t in trusted]
    sizes = (f"val_size={val_size} + meta_size={meta_size} = {val_size + meta_size} "
             f"(per class up to {want_val[0] + want_meta[0]})")
    short = [k for k in range(c) if have[k] < want_meta[k] + want_val[k]]
    if not short:
        meta = [t[:m] for t, m in zip(trusted, want_meta)]
        val = [t[m: m + v] for t, m, v in zip(trusted, want_meta, want_val)]
    else:
        empty = [k for k in range(c) if have[k] == 0 and want_meta[k] + want_val[k] > 0]
        if empty:
            raise ValueError(f"invalid trusted val/ split: no image of class {empty[0]} in val/ "
                             f"({sum(have)} trusted images in all) for {sizes}")
        meta, val = [], []
        for k in range(c):
            n, m, v = have[k], want_meta[k], want_val[k]
            if n < m + v:  # share the class's images in proportion m : v
                m = round(n * m / (m + v))
                if n >= 2 and want_meta[k] and want_val[k]:
                    m = min(max(m, 1), n - 1)
                v = n - m
            meta.append(trusted[k][:m])
            val.append(trusted[k][m: m + v])
        n_meta, n_val = sum(len(x) for x in meta), sum(len(x) for x in val)
        if (meta_size and not n_meta) or not n_val:
            raise ValueError(f"invalid trusted val/ split: {sum(have)} trusted images in val/ "
                             f"cannot hold {sizes}")
        warnings.warn(f"val/ holds {sum(have)} trusted images, fewer than {sizes}: split into "
                      f"{n_val} validation and {n_meta} meta images (disjoint, per class in the "
                      "proportion val_size : meta_size)", UserWarning, stacklevel=3)
    return (np.sort(np.concatenate(meta)).astype(np.int64),
            np.sort(np.concatenate(val)).astype(np.int64))


def default_meta_size(cfg: EnvConfig, num_classes: int) -> int:
    """Papers' meta-set sizes: 10 per class for long-tail without noise, 1,000 otherwise."""
    if cfg.meta_size is not None:
        return cfg.meta_size
    if cfg.is_imbalanced and not cfg.is_noisy:
        return 10 * num_classes
    return 1000


def resize(x: torch.Tensor, side: int) -> torch.Tensor:
    """uint8 images (N, C, H, W) to ``side`` x ``side``: the mean of the pixels each output
    pixel covers (area interpolation: plain averaging for an integer factor), rounded."""
    if x.shape[-2:] == (side, side) or len(x) == 0:
        return x
    out = torch.nn.functional.interpolate(x.float(), size=(side, side), mode="area")
    return out.round_().clamp_(0, 255).to(torch.uint8)


def build_splits(cfg: EnvConfig, data: ImageData | None = None) -> DataSplits:
    """Load (if needed), split and corrupt according to ``cfg``; deterministic in ``cfg.seed``."""
    if data is None:
        data = load_dataset(cfg.dataset, cfg.data_root, cfg.download, cfg.cache_dir)
    rng = np.random.default_rng([cfg.seed, 20200207])
    c = data.num_classes
    labels = data.train_y.numpy()
    meta_size = default_meta_size(cfg, c)

    def by_class(y: np.ndarray) -> list[np.ndarray]:
        return [rng.permutation(np.flatnonzero(y == k)) for k in range(c)]

    pool = by_class(labels)
    if data.val_x is not None and data.val_y is not None:
        meta_idx, val_idx = _split_trusted(by_class(data.val_y.numpy()), meta_size,
                                           cfg.val_size)
        val_x, val_y = data.val_x[val_idx], data.val_y[val_idx]
        meta_x, meta_y = data.val_x[meta_idx], data.val_y[meta_idx]
    else:
        try:
            meta_idx, pool = _balanced_take(pool, meta_size)
            val_idx, pool = _balanced_take(pool, cfg.val_size)
        except ValueError as e:
            raise ValueError(f"invalid meta_size={meta_size!r} / val_size={cfg.val_size!r}: "
                             f"{e} in the {cfg.dataset} training pool") from None
        val_x, val_y = data.train_x[val_idx], data.train_y[val_idx]
        meta_x, meta_y = data.train_x[meta_idx], data.train_y[meta_idx]

    # Training set: balanced subset of what remains, then imbalance.
    available = min(len(p) for p in pool)
    if available == 0:
        raise ValueError(f"invalid val_size={cfg.val_size!r}: nothing left for training")
    n_per_class = available if cfg.train_size is None else min(available, cfg.train_size // c)
    if n_per_class < 1:
        raise ValueError(f"invalid train_size={cfg.train_size!r}: must be >= {c} "
                         f"(one image per class)")
    if cfg.is_imbalanced and cfg.imbalance_type == "long_tail":
        counts = long_tail_counts(n_per_class, c, cfg.imbalance_factor)
    elif cfg.is_imbalanced and cfg.imbalance_type == "step":
        counts = step_counts(n_per_class, c, cfg.imbalance_factor, cfg.step_minority_classes)
    else:
        counts = [n_per_class] * c
    train_idx = np.sort(np.concatenate([pool[k][: counts[k]] for k in range(c)]))
    true_y = labels[train_idx]
    observed, noisy, transition = corrupt_labels(
        true_y, cfg.noise_type if cfg.is_noisy else "none", cfg.noise_rate, c, rng)

    test_x, test_y = data.test_x, data.test_y
    if cfg.test_size is not None and cfg.test_size < len(test_y):
        test_idx, _ = _balanced_take(by_class(test_y.numpy()), cfg.test_size)
        test_x, test_y = test_x[test_idx], test_y[test_idx]

    train_x = data.train_x[train_idx]
    if cfg.image_size is not None:
        train_x, val_x, meta_x, test_x = (resize(x, cfg.image_size)
                                          for x in (train_x, val_x, meta_x, test_x))
    xf = train_x.float() / 255.0
    mean = tuple(float(v) for v in xf.mean(dim=(0, 2, 3)))
    std = tuple(max(float(v), 1e-3) for v in xf.std(dim=(0, 2, 3)))
    return DataSplits(
        train_x=train_x, train_y=torch.from_numpy(observed), train_true_y=torch.from_numpy(true_y),
        is_noisy=torch.from_numpy(noisy), train_index=train_idx,
        val_x=val_x, val_y=val_y, meta_x=meta_x, meta_y=meta_y,
        meta_index=meta_idx, val_index=val_idx, test_x=test_x, test_y=test_y,
        num_classes=c, class_names=list(data.class_names), mean=mean, std=std,
        noise_transition=transition,
    )
