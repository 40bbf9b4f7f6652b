"""The substrate: device-side augmentation, LR schedules, the weighted step, duplicate nets."""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from reweight_gym import allocator
from reweight_gym.allocator import is_glibc, tune_cpu_allocator
from reweight_gym.config import EnvConfig
from reweight_gym.models import build_model
from reweight_gym.training import (
    Batch,
    BatchPipeline,
    DuplicateTrainer,
    LinearTanhWeigher,
    Trainer,
    WeightTotals,
    functional_forward,
    learning_rate,
    trainable_params,
)
from reweight_gym.training.stats import roc_auc


def test_augmentation_crops_and_flips_on_the_device() -> None:
    x = torch.arange(2 * 1 * 4 * 4, dtype=torch.uint8).view(2, 1, 4, 4)
    plain = BatchPipeline((0.0,), (1 / 255,), crop_padding=0, flip=False, channels_last=False)
    g = torch.Generator().manual_seed(0)
    assert torch.equal(plain.augment(x, g), x.float())  # no padding, no flip: identity
    aug = BatchPipeline((0.0,), (1 / 255,), crop_padding=1, flip=True, channels_last=False)
    out1 = aug.augment(x, torch.Generator().manual_seed(5))
    out2 = aug.augment(x, torch.Generator().manual_seed(5))
    assert torch.equal(out1, out2) and out1.shape == x.shape
    # every output is a 1-pixel shift of the zero-padded image, possibly mirrored
    padded = torch.nn.functional.pad(x.float(), (1, 1, 1, 1))
    for i in range(2):
        candidates = [padded[i, :, r:r + 4, c:c + 4] for r in range(3) for c in range(3)]
        candidates += [t.flip(-1) for t in candidates]
        assert any(torch.equal(out1[i], t) for t in candidates)
    outs = {tuple(aug.augment(x, torch.Generator().manual_seed(s))[0].flatten().tolist())
            for s in range(20)}
    assert len(outs) > 3  # randomness actually varies crops


def test_learning_rate_schedules() -> None:
    ms = (0.5, 0.65, 0.8)  # LAW: /10 at stages 10, 13, 16 of 20
    assert learning_rate(0, 200, 0.1, "step", ms) == pytest.approx(0.1)
    assert learning_rate(100, 200, 0.1, "step", ms) == pytest.approx(0.01)
    assert learning_rate(130, 200, 0.1, "step", ms) == pytest.approx(0.001)
    assert learning_rate(199, 200, 0.1, "step", ms) == pytest.approx(0.0001)
    assert learning_rate(50, 100, 0.2, "cosine") == pytest.approx(0.1)
    assert learning_rate(77, 100, 0.2, "constant") == 0.2


def _batch(n: int = 8, c: int = 3) -> Batch:
    g = torch.Generator().manual_seed(0)
    return Batch(torch.randn(n, 1, 4, 4, generator=g), torch.randint(0, c, (n,), generator=g),
                 torch.arange(n))


class _Fixed(LinearTanhWeigher):
    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = w

    def weigh(self, model, batch, logits, losses, ctx):  # type: ignore[override]
        return self.w


def test_class_level_weights_with_equal_columns_equal_instance_weights() -> None:
    torch.manual_seed(0)
    model = build_model("mlp", 3, (1, 4, 4), hidden=(8,))
    b = _batch()
    w = torch.rand(8) * 2
    t1 = Trainer(copy.deepcopy(model), lr=0.1, momentum=0.0, weight_decay=0.0)
    t2 = Trainer(copy.deepcopy(model), lr=0.1, momentum=0.0, weight_decay=0.0)
    t1.step(b, _Fixed(w), ctx=object())  # type: ignore[arg-type]
    t2.step(b, _Fixed(w[:, None].expand(8, 3).contiguous()), ctx=object())  # type: ignore[arg-type]
    for p1, p2 in zip(t1.model.parameters(), t2.model.parameters()):
        assert torch.allclose(p1, p2, atol=1e-6)
    t3 = Trainer(copy.deepcopy(model), lr=0.1, momentum=0.0, weight_decay=0.0)
    t3.step(b, _Fixed(torch.ones(8)), ctx=object())  # type: ignore[arg-type]
    assert not torch.allclose(t3.model.fc.weight, t1.model.fc.weight)


def test_functional_lookahead_uses_batch_stats_and_keeps_running_stats() -> None:
    model = build_model("small_cnn", 3, (3, 8, 8), width=4)
    model.train()
    before = {n: b.clone() for n, b in model.named_buffers()}
    params = trainable_params(model)
    x = torch.randn(6, 3, 8, 8)
    out = functional_forward(model, {n: p * 1.01 for n, p in params.items()}, x)
    out.sum().backward()
    for n, b in model.named_buffers():
        assert torch.equal(b, before[n]), n
    assert params["fc.weight"].grad is not None  # differentiable w.r.t. the real parameters


def test_uniform_target_stays_bit_identical_to_reference() -> None:
    cfg = EnvConfig.resolve("digits", "tiny", noise_rate=0.4, epochs=2, num_stages=2)
    run = DuplicateTrainer(cfg, seed=3)
    for a, b in zip(run.target.model.parameters(), run.reference.model.parameters()):
        assert torch.equal(a, b) and a.data_ptr() != b.data_ptr()  # copied, not shared
    w = LinearTanhWeigher("law")
    w.set_params(torch.zeros(13), 0.0)
    stats = run.train_stage(w)
    assert stats.iterations == run.stage_end(0)
    for a, b in zip(run.target.model.state_dict().values(),
                    run.reference.model.state_dict().values()):
        assert torch.equal(a, b)
    ev = run.evaluate("val")
    assert ev["acc_target"] == ev["acc_reference"]
    w.set_params(torch.full((13,), 0.5), 0.1)
    run.train_stage(w)
    assert not torch.equal(run.target.model.fc.weight, run.reference.model.fc.weight)
    assert run.done


def test_seed_fixes_init_batches_and_augmentation() -> None:
    cfg = EnvConfig.resolve("digits", "tiny", epochs=1, num_stages=1)
    a, b, c = (DuplicateTrainer(cfg, seed=s, with_reference=False) for s in (1, 1, 2))
    assert torch.equal(a.next_batch().x, b.next_batch().x)
    assert not torch.equal(a.next_batch().index, c.next_batch().index)
    assert torch.equal(a.target.model.fc.weight, b.target.model.fc.weight)
    assert not torch.equal(a.target.model.fc.weight, c.target.model.fc.weight)


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(0, 6) | st.floats(-1, 1)), min_size=1,
                max_size=60))
def test_roc_auc_equals_scikit_learns(samples: list[tuple[bool, float]]) -> None:
    """The weight AUC of the benchmark's rows (ties of equal weights included: uniform gives
    every sample the same weight, 0.5) is scikit-learn's ``roc_auc_score``."""
    from sklearn.metrics import roc_auc_score

    positive = np.array([p for p, _ in samples])
    scores = np.array([float(v) for _, v in samples])
    if positive.all() or not positive.any():
        assert np.isnan(roc_auc(positive, scores))
    else:
        assert roc_auc(positive, scores) == pytest.approx(roc_auc_score(positive, scores),
                                                          abs=1e-12)


def test_roc_auc_of_non_finite_weights_is_nan() -> None:
    """scikit-learn refuses NaN scores; a diverged run's weight AUC is NaN, not a number."""
    assert np.isnan(roc_auc(np.array([True, False, True]), np.array([0.5, np.nan, 1.0])))
    assert np.isnan(roc_auc(np.array([True, False]), np.array([np.inf, 1.0])))


def test_weight_totals_add_up_spans_of_a_run() -> None:
    """Per-epoch statistics summed with ``WeightTotals.add`` equal the statistics of the whole
    span (the benchmark and ``reweight_gym.baselines.run`` aggregate this way)."""
    cfg = EnvConfig.resolve("digits", "tiny", noise_rate=0.4, epochs=2, num_stages=2)
    w = LinearTanhWeigher("law")
    w.set_params(torch.full((13,), 0.3), 0.1)
    whole = DuplicateTrainer(cfg, seed=2, with_reference=False).train_iterations(10, w)
    run = DuplicateTrainer(cfg, seed=2, with_reference=False)
    totals = WeightTotals.zeros(10)
    for n in (3, 3, 4):
        totals.add(run.train_iterations(n, w))
    assert totals.iterations == whole.iterations == 10
    assert totals.weight_cnt_noisy == whole.weight_cnt_noisy > 0
    assert totals.noisy_weight_mean == pytest.approx(whole.noisy_weight_mean, rel=1e-6)
    assert totals.clean_weight_mean == pytest.approx(whole.clean_weight_mean, rel=1e-6)
    np.testing.assert_allclose(totals.class_weight_mean, whole.class_weight_mean, rtol=1e-6)
    assert np.isnan(WeightTotals.zeros(3).noisy_weight_mean)


ALLOCATOR_PROBE = """
import json, resource, sys
import torch
from reweight_gym import allocator
from reweight_gym.config import EnvConfig
from reweight_gym.training import DuplicateTrainer
run = DuplicateTrainer(EnvConfig.resolve("digits", "tiny"), with_reference=False)
untouched = "result" not in allocator._state  # making a trainer leaves malloc alone
if sys.argv[1] == "cli":  # every reweight-gym command tunes first (this one then fails)
    from reweight_gym.cli import main
    main(["report", "/nonexistent/results"])
    result = allocator._state.get("result")
else:
    result = allocator.tune_cpu_allocator()

def churn():  # what an iteration does: allocate 96 MiB of temporaries, free them all
    ts = [torch.ones(1 << 20) for _ in range(24)]
    del ts

churn()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    churn()
faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before
print(json.dumps({"allocator": result, "untouched": untouched, "faults": faults}))
"""


def _allocator_probe(mode: str = "explicit", **env: str) -> dict[str, object]:
    import json
    import os
    import subprocess
    import sys

    clean = {k: v for k, v in os.environ.items()
             if not k.startswith("MALLOC_")
             and k not in ("REWEIGHT_GYM_MALLOC", "LD_PRELOAD", "GLIBC_TUNABLES")}
    out = subprocess.run([sys.executable, "-c", ALLOCATOR_PROBE, mode], env={**clean, **env},
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


@pytest.mark.slow
@pytest.mark.skipif(not is_glibc(), reason="the allocator tuning is for glibc malloc")
def test_tuned_allocator_keeps_freed_activation_memory_mapped() -> None:
    """``tune_cpu_allocator`` (allocator.py), called by the process -- explicitly, or by the
    ``reweight-gym`` command -- tunes glibc malloc: re-allocating freed 4 MiB tensors does not
    fault their pages in again. Making a trainer does not touch malloc;
    REWEIGHT_GYM_MALLOC=default and the user's own MALLOC_* settings leave it alone."""
    tuned = _allocator_probe()
    cli = _allocator_probe("cli")
    default = _allocator_probe(REWEIGHT_GYM_MALLOC="default")
    user = _allocator_probe(MALLOC_TRIM_THRESHOLD_="131072")
    assert tuned["allocator"] == cli["allocator"] == "tuned"
    assert default["allocator"] == "opted out"
    assert user["allocator"] == "user settings"
    assert all(p["untouched"] for p in (tuned, cli, default, user))
    # 5 x 96 MiB of re-allocation (122,880 pages of 4 KiB). Setting a MALLOC_*_ variable fixes
    # glibc's mmap threshold at its 128 KiB default, so every 4 MiB tensor is mmapped and
    # unmapped again and all its pages fault every round; tuned (threshold 32 MiB, trim 1 GiB)
    # they stay in the heap. glibc's self-adjusting defaults land in between (depending on what
    # the process freed before), so only the label is checked there.
    # A ratio, not a count: huge pages or 64 KiB pages change the number of faults.
    assert user["faults"] > max(10 * tuned["faults"], 100)
    assert user["faults"] > max(10 * cli["faults"], 100)


def test_bad_allocator_mode_fails_when_the_env_is_made(monkeypatch: pytest.MonkeyPatch) -> None:
    import gymnasium

    import reweight_gym  # noqa: F401  (registers the ids)

    monkeypatch.setenv("REWEIGHT_GYM_MALLOC", "jemalloc")
    with pytest.raises(ValueError, match=r"REWEIGHT_GYM_MALLOC='jemalloc'.*tuned, default"):
        gymnasium.make("Reweight-Digits-v0")
    with pytest.raises(ValueError, match="REWEIGHT_GYM_MALLOC"):  # also once the process is set
        tune_cpu_allocator()


def test_opting_out_after_tuning_warns(monkeypatch: pytest.MonkeyPatch) -> None:
    """malloc settings cannot be undone in a running process: asking for glibc's defaults after
    the process tuned them says so instead of silently keeping them."""
    monkeypatch.setitem(allocator._state, "result", "tuned")
    monkeypatch.setenv("REWEIGHT_GYM_MALLOC", "default")
    with pytest.warns(UserWarning, match="already tuned in this process"):
        assert tune_cpu_allocator() == "tuned"
    monkeypatch.setenv("REWEIGHT_GYM_MALLOC", "tuned")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert tune_cpu_allocator() == "tuned"


def test_dropout_keeps_target_and_reference_identical_under_uniform_weights() -> None:
    """WRN's dropout draws its masks from the iteration's seed, the same for both networks, so
    LAW's duplicate-network identity holds with dropout > 0 (the ``paper`` WRN setting)."""
    cfg = EnvConfig.resolve("digits", "tiny", noise_rate=0.4, epochs=2, num_stages=2,
                            train_size=200, model="wrn28_10",
                            model_kwargs={"depth": 10, "widen": 1, "dropout": 0.3})
    run = DuplicateTrainer(cfg, seed=1)
    assert run.has_dropout
    w = LinearTanhWeigher("law")
    w.set_params(torch.zeros(13), 0.0)
    torch.manual_seed(0)  # the global RNG differs between the two networks' steps below
    run.train_iterations(3, w)
    for a, b in zip(run.target.model.state_dict().values(),
                    run.reference.model.state_dict().values()):
        assert torch.equal(a, b)
    # the masks are really drawn: another iteration's seed gives another network
    other = DuplicateTrainer(cfg, seed=1, with_reference=False)
    other.dropout_base += 1
    other.train_iterations(3, w)
    assert not torch.equal(other.target.model.fc.weight, run.target.model.fc.weight)


def test_request_determinism_sets_cudnn_flags_for_cuda_only() -> None:
    from reweight_gym.training.trainer import request_determinism

    old = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    try:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = False, True
        request_determinism(torch.device("cpu"))
        assert (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark) == (False,
                                                                                        True)
        request_determinism(torch.device("cuda"))
        assert (torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark) == (True,
                                                                                        False)
    finally:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = old
