"""End to end on digits with 40% uniform label noise, 3 fixed seeds.

The config (tiny preset, 800 training images, 40 epochs, constant learning rate 0.05, no weight
decay) lets plain training overfit the noise (final < best epoch). Measured on this config (mean
final test accuracy over seeds 0-2): uniform 0.8975, gdw 0.9150, nrt 0.9008; mwnet 0.8392,
fsr 0.7183, focal 0.8975, class_balanced 0.8975 (weights ~1 on balanced data), spl 0.8992. Only
the methods that beat uniform here are asserted to; the others are reported in the closing note
of the baselines issue, with the reasons found.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

import baselines

CONFIG = dict(noise_rate=0.4, epochs=40, train_size=800, weight_decay=0.0,
              lr_schedule="constant", lr=0.05)
SEEDS = (0, 1, 2)


@pytest.fixture(scope="module")
def results() -> dict[str, list[dict]]:
    old = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        return {m: [baselines.run(m, seed=s, **CONFIG) for s in SEEDS]
                for m in ("uniform", "gdw", "nrt", "mwnet", "fsr")}
    finally:
        torch.set_num_threads(old)


def mean(rs: list[dict], key: str) -> float:
    return float(np.mean([r[key] for r in rs]))


@pytest.mark.slow
def test_uniform_overfits_the_noise(results):
    assert mean(results["uniform"], "final_test_acc") < mean(results["uniform"], "best_test_acc")


@pytest.mark.slow
@pytest.mark.parametrize("method", ["gdw", "nrt"])
def test_method_beats_uniform_on_noisy_digits(results, method):
    assert mean(results[method], "final_test_acc") > mean(results["uniform"], "final_test_acc")


@pytest.mark.slow
@pytest.mark.parametrize("method", ["mwnet", "gdw", "nrt", "fsr"])
def test_noisy_samples_get_lower_weights(results, method):
    assert mean(results[method], "noisy_weight_mean") < mean(results[method],
                                                             "clean_weight_mean")
