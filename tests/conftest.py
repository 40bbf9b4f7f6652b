"""Shared test setup: one torch thread, the CPU allocator tuning, the same global RNG state at
the start of every test, and CIFAR-10 data: a small CIFAR-10-shaped JPEG set the tests write
(``cifar_like``, everywhere) and the real JPEG copy (``cifar_root``, skipped where absent)."""

from __future__ import annotations

import os
import random
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from reweight_gym import tune_cpu_allocator

REPO = Path(__file__).resolve().parents[1]
#: Where the real JPEG CIFAR-10 copy is: this variable, else ../shared beside the checkout (CI).
CIFAR_ENV = "REWEIGHT_GYM_CIFAR10"
CIFAR_JPEG = Path(os.environ.get(CIFAR_ENV) or
                  REPO.parent / "shared" / "datasets" / "cifar10-jpeg")
#: CIFAR-10's class names: the class folders of the JPEG copy (sorted, they are the class ids).
CIFAR10_CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse",
                   "ship", "truck")

# The test workloads are tiny (MLPs on 8x8 digits, width-8 CNNs): one thread is faster than two
# (no OpenMP synchronisation per small op) and immune to other load on the machine.
torch.set_num_threads(1)
# The test process opts in to the allocator tuning the reweight-gym command applies (faster runs).
tune_cpu_allocator()


@pytest.fixture(autouse=True)
def seeded_global_rngs() -> None:
    """Every test starts from the same state of the global RNGs (torch, numpy, random): a draw
    without its own generator gives the same values whichever tests ran before it or were
    deselected, so no outcome depends on the order or the selection of tests."""
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def cifar_root() -> str:
    """The real JPEG CIFAR-10 copy (decoded once and cached under the user's cache directory),
    for the checks that need the real images; skipped where it is absent (a clone without
    ../shared beside it)."""
    if not (CIFAR_JPEG / "train").is_dir():
        pytest.skip(f"needs the real CIFAR-10 JPEG copy (train/<class>/*.jpg, test/<class>/*.jpg),"
                    f" not found at {CIFAR_JPEG}: set {CIFAR_ENV} to its directory")
    return str(CIFAR_JPEG)


@dataclass(frozen=True)
class CifarLike:
    """A CIFAR-10-shaped JPEG set written by the tests (see ``cifar_like``)."""

    root: str  # the folder to pass as data_root (dataset "cifar10")
    cache_dir: str  # pass as cache_dir: the decoded .npz stays out of the user's cache
    train_per_class: int
    test_per_class: int

    def files(self, split: str) -> list[Path]:
        """The image files of ``split`` in the loader's order (class by class, sorted names)."""
        return [f for c in CIFAR10_CLASSES for f in sorted((Path(self.root) / split / c).iterdir())]


def write_cifar_like(root: Path, train_per_class: int, test_per_class: int, seed: int = 0) -> None:
    """The layout of the real copy: ``root/{train,test}/<class name>/NNNN.jpg``, 32x32 RGB
    baseline JPEGs. Each class has a colour and a bright square at a place of its own, each image
    its own noise, so a small CNN learns the classes above chance."""
    from PIL import Image

    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:32, 0:32]
    for split, n in (("train", train_per_class), ("test", test_per_class)):
        for k, name in enumerate(CIFAR10_CLASSES):
            folder = root / split / name
            folder.mkdir(parents=True)
            colour = np.array([(37 * k) % 256, (91 * k + 60) % 256, (173 * k + 120) % 256])
            r0, c0 = 4 + 6 * (k // 4), 4 + 6 * (k % 4)
            square = (yy >= r0) & (yy < r0 + 8) & (xx >= c0) & (xx < c0 + 8)
            for i in range(n):
                img = colour + rng.normal(0.0, 40.0, (32, 32, 3))
                img[square] = 255.0 - img[square]
                Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(
                    folder / f"{i:04d}.jpg", quality=90)


@pytest.fixture(scope="session")
def cifar_like(tmp_path_factory: pytest.TempPathFactory) -> CifarLike:
    """A small CIFAR-10-shaped JPEG set (1,100 images: 80 training and 30 test images per class,
    enough for the ``tiny`` preset's 512 training + 128 validation + 100 meta and 256 test
    images), in the real copy's layout: the CIFAR image-folder code paths run on any machine."""
    base = tmp_path_factory.mktemp("cifar-like")
    data = CifarLike(str(base / "cifar10-jpeg"), str(base / "cache"), 80, 30)
    write_cifar_like(Path(data.root), data.train_per_class, data.test_per_class)
    return data
