"""Shared test setup: one torch thread, the CPU allocator tuning, the same global RNG state at
the start of every test, the JPEG CIFAR-10 copy."""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from reweight_gym import tune_cpu_allocator

REPO = Path(__file__).resolve().parents[1]
CIFAR_JPEG = Path(os.environ.get("REWEIGHT_GYM_CIFAR10",
                                 REPO.parent / "shared" / "datasets" / "cifar10-jpeg"))

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
    """The JPEG CIFAR-10 copy (decoded once and cached under the user's cache directory)."""
    if not (CIFAR_JPEG / "train").is_dir():
        raise FileNotFoundError(
            f"CIFAR-10 JPEG copy not found at {CIFAR_JPEG}; the tests expect ../shared beside the "
            "checkout or REWEIGHT_GYM_CIFAR10 pointing to it")
    return str(CIFAR_JPEG)
