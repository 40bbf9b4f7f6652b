"""End to end on digits with 40% uniform label noise, 3 fixed seeds: the demo's config.

The config (``reweight_gym.experiments.DEMO``, the run of ``reweight-gym demo``, an MLP) lets
plain training fit part of the wrong labels, so its final test accuracy falls below its best
epoch. Every weighting method runs on its *defaults* (which depend on the model family, e.g.
MW-Net's weight-net rate and FSR's rule on an MLP) and must not end more than 1 point below
plain training (mean of the 3 seeds); the meta-gradient methods must give the mislabelled samples
lower weight.

Not asserted on noisy digits, by design of the method: ``focal`` up-weights high-loss samples,
i.e. the mislabelled ones, and makes no claim of noise robustness (it ends below plain training
here). It is an imbalance method, and is asserted where it claims to help, with
``class_balanced``: the same run on long-tailed digits (imbalance factor 100, no noise).

The runs are deterministic on one machine; a CPU of another type rounds differently and can move
a seed's accuracy by a few points (docs, "Reproducibility").
"""

from __future__ import annotations

import numpy as np
import pytest

from reweight_gym import baselines
from reweight_gym.experiments import DEMO
from reweight_gym.runner import RunResult

CONFIG = DEMO.kwargs()
SEEDS = (0, 1, 2)
METHODS = ("uniform", "class_balanced", "spl", "mwnet", "gdw", "fsr", "fsr_relabel_mixup",
           "nrt")
LONG_TAIL = {**CONFIG, "noise_rate": 0.0, "imbalance_type": "long_tail",
             "imbalance_factor": 100.0}
#: how far below plain training a method's default may end (mean final test accuracy)
TOLERANCE = 0.01


def run_seeds(methods: tuple[str, ...], config: dict) -> dict[str, list[RunResult]]:
    """Every method on ``config`` for every seed, on its defaults."""
    return {m: [baselines.run(m, seed=s, **config) for s in SEEDS] for m in methods}


@pytest.fixture(scope="module")
def results() -> dict[str, list[RunResult]]:
    return run_seeds(METHODS, CONFIG)


@pytest.fixture(scope="module")
def long_tail_results() -> dict[str, list[RunResult]]:
    return run_seeds(("uniform", "class_balanced", "focal"), LONG_TAIL)


def mean(rs: list[RunResult], key: str) -> float:
    return float(np.mean([r.value(key) for r in rs]))


@pytest.mark.slow
def test_uniform_overfits_the_noise(results):
    # the oracle (test-chosen) best epoch: a diagnosis of memorisation, not a reported result
    oracle = mean(results["uniform"], "oracle_best_test_acc")
    assert mean(results["uniform"], "final_test_acc") < oracle


@pytest.mark.slow
@pytest.mark.parametrize("method", METHODS[1:])
def test_defaults_end_no_more_than_a_point_below_plain_training(results, method):
    assert mean(results[method], "final_test_acc") >= \
        mean(results["uniform"], "final_test_acc") - TOLERANCE


@pytest.mark.slow
@pytest.mark.parametrize("method", ["mwnet", "gdw", "nrt"])
def test_noisy_samples_get_lower_weights(results, method):
    assert mean(results[method], "noisy_weight_mean") < mean(results[method],
                                                             "clean_weight_mean")


@pytest.mark.slow
@pytest.mark.parametrize("method", ["class_balanced", "focal"])
def test_imbalance_method_beats_uniform_on_long_tailed_digits(long_tail_results, method):
    assert mean(long_tail_results[method], "final_test_acc") > mean(
        long_tail_results["uniform"], "final_test_acc")
    # both give the rarest class (the last one) more weight than the most frequent one
    w = np.mean([r.class_weight_mean for r in long_tail_results[method]], axis=0)
    assert w[-1] > w[0]
