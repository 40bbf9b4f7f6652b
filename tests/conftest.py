"""Shared test setup: one torch thread, the CPU allocator tuning, the JPEG CIFAR-10 copy."""

from __future__ import annotations

import os
from pathlib import Path

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


@pytest.fixture(scope="session")
def cifar_root() -> str:
    """The JPEG CIFAR-10 copy (decoded once and cached under the user's cache directory)."""
    if not (CIFAR_JPEG / "train").is_dir():
        raise FileNotFoundError(
            f"CIFAR-10 JPEG copy not found at {CIFAR_JPEG}; the tests expect ../shared beside the "
            "checkout or REWEIGHT_GYM_CIFAR10 pointing to it")
    return str(CIFAR_JPEG)
