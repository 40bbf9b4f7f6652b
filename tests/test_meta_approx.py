"""The meta weighers' cheaper meta steps (``meta_every``, ``meta_grad``) and the scripts that
measure them (``benchmarks/meta_cost.py``, ``benchmarks/gpu_check.py``)."""

from __future__ import annotations

import copy
import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from test_baselines import first_batch
from torch import nn

from reweight_gym import baselines
from reweight_gym.baselines import gdw as gdw_module
from reweight_gym.baselines import meta as meta_module
from reweight_gym.baselines._common import normalise_to_batch
from reweight_gym.baselines.meta import (
    PenultimateFeatures,
    VNet,
    meta_gradient,
)
from reweight_gym.config import EnvConfig
from reweight_gym.models import MLP
from reweight_gym.runner import RunResult
from reweight_gym.training.functional import trainable_params
from reweight_gym.training.pipeline import MetaSampler
from reweight_gym.training.trainer import DuplicateTrainer
from reweight_gym.training.weigher import Batch, WeighContext, Weigher

ROOT = Path(__file__).resolve().parents[1]
META_METHODS = ("mwnet", "gdw", "nrt")
BACKENDS: tuple[dict[str, Any], ...] = (
    {"meta_every": 2}, {"meta_grad": "last_layer"}, {"meta_grad": "first_order"},
    {"meta_every": 2, "meta_grad": "last_layer"})


def tiny_cfg(**kw: Any) -> EnvConfig:
    base: dict[str, Any] = dict(noise_rate=0.4, epochs=2, num_stages=2, train_size=400,
                                test_size=200, meta_size=50)
    base.update(kw)
    return EnvConfig.resolve("digits", "tiny", **base)


def cnn_cfg() -> EnvConfig:
    """The tiny digits run with a BatchNorm CNN (a body the last-layer backend must not touch)."""
    return tiny_cfg(model="small_cnn", model_kwargs={"width": 4})


def first_weighing(weigher: Weigher, cfg: EnvConfig) -> torch.Tensor:
    """``weigher``'s weights of the first batch of a fresh seed-0 trainer."""
    tr = DuplicateTrainer(cfg, seed=0, with_reference=False, weigher=weigher)
    batch, logits, losses = first_batch(weigher, tr)
    return weigher.weigh(tr.target.model, batch, logits, losses, tr.context())


# ---------------------------------------------------------------------------- defaults
@pytest.mark.parametrize("name", META_METHODS)
def test_defaults_are_the_exact_meta_step_every_iteration(name):
    """The default weigher gives exactly (bit for bit) the weights and weight nets of an explicit
    ``meta_every=1, meta_grad="exact"``: on a fixed batch and over a few iterations."""
    cfg = tiny_cfg()
    default = baselines.make_weigher(name, cfg)
    explicit = baselines.make_weigher(name, cfg, meta_every=1, meta_grad="exact")
    assert (default.meta_every, default.meta_grad) == (1, "exact")
    assert torch.equal(first_weighing(default, cfg), first_weighing(explicit, cfg))
    runs = []
    for kw in ({}, {"meta_every": 1, "meta_grad": "exact"}):
        weigher = baselines.make_weigher(name, cfg, **kw)
        tr = DuplicateTrainer(cfg, seed=0, with_reference=False, weigher=weigher)
        tr.train_iterations(4)
        net = [p.detach().clone() for p in weigher.net.parameters()]
        runs.append((tr.last_weight.clone(), net))
    assert torch.equal(runs[0][0], runs[1][0])
    assert all(torch.equal(a, b) for a, b in zip(runs[0][1], runs[1][1]))


# ---------------------------------------------------------------------------- meta_every
class Recorder(Weigher):
    """Delegates to a meta weigher and records, per iteration, its weight net before and after
    weighing, the batch's losses and the weights."""

    needs_meta = True

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.log: list[dict[str, Any]] = []

    def setup(self, model: nn.Module, num_classes: int, device: torch.device) -> None:
        self.inner.setup(model, num_classes, device)

    def weigh(self, model: nn.Module, batch: Batch, logits: torch.Tensor, losses: torch.Tensor,
              ctx: WeighContext) -> torch.Tensor:
        before = copy.deepcopy(self.inner.net)
        out = self.inner.weigh(model, batch, logits, losses, ctx)
        after = self.inner.net
        self.log.append({
            "iteration": ctx.iteration, "before": before, "losses": losses.detach().clone(),
            "weights": out.detach().clone(),
            "updated": before is None or any(not torch.equal(a, b) for a, b in
                                             zip(before.parameters(), after.parameters()))})
        return out


@pytest.mark.parametrize("name", META_METHODS)
def test_meta_every_updates_every_kth_iteration_and_weighs_every_batch(name, monkeypatch):
    draws = []
    real_next = MetaSampler.next

    def counting_next(self: MetaSampler) -> tuple[torch.Tensor, torch.Tensor]:
        draws.append(1)
        return real_next(self)

    monkeypatch.setattr(MetaSampler, "next", counting_next)
    cfg = tiny_cfg()
    rec = Recorder(baselines.make_weigher(name, cfg, meta_every=3))
    tr = DuplicateTrainer(cfg, seed=0, with_reference=False, weigher=rec)
    tr.train_iterations(8)
    assert [r["iteration"] for r in rec.log] == list(range(8))
    assert [r["iteration"] for r in rec.log if r["updated"]] == [0, 3, 6]
    assert len(draws) == 3  # a meta batch only for a meta step
    for r in rec.log:  # every batch is weighed, never uniformly
        assert torch.isfinite(r["weights"]).all() and float(r["weights"].std()) > 0
    if name == "nrt":  # its characteristics are not recomputed here
        return
    for r in rec.log:
        if r["updated"]:
            continue
        with torch.no_grad():  # the current (unchanged) V of the batch's losses (eq. 5)
            v = r["before"](r["losses"][:, None])
        if name == "mwnet":
            torch.testing.assert_close(r["weights"], normalise_to_batch(v))
        else:  # gdw: stage one, V's scalar in every column (constrained: unchanged)
            torch.testing.assert_close(r["weights"], v[:, None].expand(-1, 10))


def test_nrt_meta_interval_is_meta_every():
    cfg = tiny_cfg()
    assert baselines.make_weigher("nrt", cfg, meta_interval=20).meta_every == 20
    assert baselines.make_weigher("nrt", cfg, meta_every=20).meta_every == 20
    assert baselines.make_weigher("nrt", cfg, meta_every=20, meta_interval=20).meta_every == 20
    with pytest.raises(ValueError, match=r"invalid nrt kwarg meta_every=5: meta_interval=20"):
        baselines.make_weigher("nrt", cfg, meta_every=5, meta_interval=20)


# ---------------------------------------------------------------------------- last layer
def _param_hooks(model: nn.Module) -> list[str]:
    """Names of the parameters a gradient is computed for from now on."""
    fired: list[str] = []
    for n, p in model.named_parameters():
        p.register_hook(lambda g, n=n: fired.append(n))
    return fired


@pytest.mark.parametrize("name", META_METHODS)
def test_last_layer_builds_no_gradient_for_the_body(name):
    """``meta_grad="last_layer"`` computes no gradient for any classifier parameter (closed
    forms on the captured features; the exact backend does, the check's control), changes no
    parameter or running statistic, and leaves the trainer's graph for its real step."""
    cfg = cnn_cfg()
    for meta_grad, body_grads in (("exact", True), ("last_layer", False)):
        weigher = baselines.make_weigher(name, cfg, meta_grad=meta_grad)
        tr = DuplicateTrainer(cfg, seed=0, with_reference=False, weigher=weigher)
        model = tr.target.model
        batch, logits, losses = first_batch(weigher, tr)
        state = copy.deepcopy(model.state_dict())
        fired = _param_hooks(model)
        out = weigher.weigh(model, batch, logits, losses, tr.context())
        body = [n for n in fired if not n.startswith("fc.")]
        assert bool(body) == body_grads, (meta_grad, fired)
        if meta_grad == "last_layer":
            assert fired == []
            assert weigher.features.features is None  # the features were used, not kept
        for k, v in model.state_dict().items():
            assert torch.equal(v, state[k]), k
        assert weigher.net is not None and torch.isfinite(out).all()
        (out.detach().reshape(len(batch.y), -1)[:, 0] * losses).mean().backward()


def _tiny_problem() -> tuple[nn.Module, VNet, torch.Tensor, torch.Tensor, torch.Tensor,
                             torch.Tensor]:
    torch.manual_seed(0)
    model = MLP(3, in_features=4, hidden=(5,)).double()
    vnet = VNet(1, 7).double()
    x, y = torch.randn(6, 4, dtype=torch.float64), torch.randint(0, 3, (6,))
    xm, ym = torch.randn(5, 4, dtype=torch.float64), torch.randint(0, 3, (5,))
    return model, vnet, x, y, xm, ym


def test_last_layer_meta_gradient_is_autograd_through_the_last_layer():
    """The closed form equals autograd's meta-gradient of a look-ahead of ``fc`` alone on the
    detached features (MW-Net eqs. 3-4 with the body fixed)."""
    model, vnet, x, y, xm, ym = _tiny_problem()
    lr = 0.5
    features = PenultimateFeatures("mwnet")
    features.attach(model, "test")
    logits = model(x)
    losses = F.cross_entropy(logits, y, reduction="none")
    params = list(vnet.parameters())
    grads, meta_loss = meta_gradient(model, x, y, logits, losses,
                                     lambda: vnet(losses.detach()[:, None]), params, xm, ym, lr,
                                     True, meta_grad="last_layer", features=features)
    h, hm = model.features(x).detach(), model.features(xm).detach()
    ls = F.cross_entropy(model.fc(h), y, reduction="none")
    w = normalise_to_batch(vnet(ls.detach()[:, None]))
    g_w, g_b = torch.autograd.grad((w * ls).mean(), [model.fc.weight, model.fc.bias],
                                   create_graph=True)
    want_loss = F.cross_entropy(F.linear(hm, model.fc.weight - lr * g_w,
                                         model.fc.bias - lr * g_b), ym)
    want = torch.autograd.grad(want_loss, params)
    assert meta_loss == pytest.approx(float(want_loss.detach()))
    for g, r in zip(grads, want):
        torch.testing.assert_close(g, r, rtol=1e-9, atol=1e-12)
    assert max(float(g.abs().max()) for g in grads) > 1e-5


def test_first_order_meta_gradient_is_the_inner_product_at_theta():
    """``first_order``: dL/dw_i = -(lr/B) <grad l_i(theta), grad L_meta(theta)>, through V."""
    model, vnet, x, y, xm, ym = _tiny_problem()
    lr = 0.5
    logits = model(x)
    losses = F.cross_entropy(logits, y, reduction="none")
    params = list(vnet.parameters())
    grads, _ = meta_gradient(model, x, y, logits, losses, lambda: vnet(losses.detach()[:, None]),
                             params, xm, ym, lr, False, "forward_ad", meta_grad="first_order")
    theta = list(trainable_params(model).values())
    g_meta = torch.autograd.grad(F.cross_entropy(model(xm), ym), theta)
    dots = torch.stack([
        sum((a * b).sum() for a, b in zip(torch.autograd.grad(losses[i], theta,
                                                               retain_graph=True), g_meta))
        for i in range(len(y))])
    w = vnet(losses.detach()[:, None])
    want = torch.autograd.grad(w, params, grad_outputs=-lr / len(y) * dots)
    for g, r in zip(grads, want):
        torch.testing.assert_close(g, r, rtol=1e-9, atol=1e-12)


# ---------------------------------------------------------------------------- first order
@pytest.mark.parametrize("name", META_METHODS)
def test_first_order_never_calls_the_lookahead(name, monkeypatch):
    calls: list[str] = []

    def refuse(*args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
        calls.append("lookahead")
        raise AssertionError("the look-ahead was called")

    monkeypatch.setattr(meta_module, "lookahead_params", refuse)
    monkeypatch.setattr(gdw_module, "manipulated_lookahead", refuse)
    cfg = cnn_cfg()
    weigher = baselines.make_weigher(name, cfg, meta_grad="first_order")
    tr = DuplicateTrainer(cfg, seed=0, with_reference=False, weigher=weigher)
    net = None
    for _ in range(2):
        tr.train_iterations(1)
        assert math.isfinite(weigher.last_meta_loss)
        if net is not None:  # the weight net learns
            assert any(not torch.equal(a, b) for a, b in zip(net, weigher.net.parameters()))
        net = [p.detach().clone() for p in weigher.net.parameters()]
    assert calls == []
    exact = baselines.make_weigher(name, cfg)  # the control: exact does call it
    with pytest.raises(AssertionError, match="look-ahead was called"):
        DuplicateTrainer(cfg, seed=0, with_reference=False, weigher=exact).train_iterations(1)



# ---------------------------------------------------------------------------- validation
def test_bad_values_are_rejected_with_the_field_named():
    cfg = tiny_cfg()
    with pytest.raises(ValueError, match=r"invalid mwnet kwarg meta_every=0: must be >= 1"):
        baselines.make_weigher("mwnet", cfg, meta_every=0)
    with pytest.raises(ValueError, match=r"invalid gdw kwarg meta_every=2.5: must be an integer"):
        baselines.make_weigher("gdw", cfg, meta_every=2.5)
    with pytest.raises(ValueError, match=r"invalid nrt kwarg meta_every=True: must be an integer"):
        baselines.make_weigher("nrt", cfg, meta_every=True)
    with pytest.raises(ValueError, match=r"invalid mwnet kwarg meta_grad='second_order': "
                                         r"allowed: exact, last_layer, first_order"):
        baselines.make_weigher("mwnet", cfg, meta_grad="second_order")
    with pytest.raises(ValueError, match=r"invalid gdw kwarg meta_grad=None: allowed: exact"):
        baselines.make_weigher("gdw", cfg, meta_grad=None)
    with pytest.raises(ValueError, match=r"fsr kwarg 'meta_every'.*allowed:"):
        baselines.make_weigher("fsr", cfg, meta_every=2)  # not an option of FSR
    weigher = baselines.make_weigher("mwnet", cfg, meta_grad="last_layer")
    body = nn.Sequential(nn.Flatten(), nn.Linear(64, 10))
    with pytest.raises(ValueError, match=r"mwnet kwarg meta_grad='last_layer' needs a model "
                                         r"whose last layer is the nn.Linear `fc`"):
        weigher.setup(body, 10, torch.device("cpu"))


# ---------------------------------------------------------------------------- end to end
@pytest.mark.parametrize("name", META_METHODS)
@pytest.mark.parametrize("kwargs", BACKENDS, ids=lambda kw: ",".join(f"{k}={v}" for k, v in
                                                                    kw.items()))
def test_every_backend_runs_end_to_end(name, kwargs):
    r = baselines.run(name, seed=0, noise_rate=0.4, epochs=2, num_stages=2, train_size=200,
                      method_kwargs=kwargs)
    assert isinstance(r, RunResult) and r.method == name and not r.diverged
    assert r.spec.method_kwargs == kwargs
    assert len(r.test_acc_curve) == 2 and r.noisy_weight_mean is not None


# ---------------------------------------------------------------------------- the scripts
def test_meta_cost_settings_are_valid_method_kwargs():
    from benchmarks import meta_cost

    cfg = tiny_cfg()
    assert meta_cost.SETTINGS[0] == meta_cost.PLAIN and meta_cost.EXACT in meta_cost.SETTINGS
    for setting in meta_cost.SETTINGS:
        method, kwargs = meta_cost.parse_setting(setting)
        baselines.make_weigher(method, cfg, **kwargs)
        assert meta_cost.setting_label(method, kwargs) == setting
    with pytest.raises(SystemExit, match="key=value"):
        meta_cost.parse_setting("mwnet meta_every")


def test_meta_cost_shares_and_the_choice_on_validation():
    """Shares of exact MW-Net's gain are paired by seed; the goal needs the time and every
    experiment's share; a default is chosen on the validation shares alone."""
    from benchmarks.meta_cost import gain_share, goal_section

    acc = {"uniform": {0: 50.0, 1: 52.0}, "mwnet": {0: 60.0, 1: 62.0},
           "mwnet meta_every=10": {0: 59.0, 1: 60.0, 2: 99.0}}  # seed 2 is not paired
    assert gain_share(acc, "mwnet") == (1.0, "100%")
    assert gain_share(acc, "mwnet meta_every=10") == (0.85, "85%")
    assert gain_share(acc, "gdw")[1] == "–"
    flat = {**acc, "mwnet": {0: 50.0, 1: 51.0}}
    assert gain_share(flat, "mwnet meta_every=10")[1] == "n/a (MW-Net -0.50)"
    settings = ["uniform", "mwnet", "a", "b", "c"]
    costs = {"a": [1.2, 1.2], "b": [1.1, 1.1], "c": [2.0, 2.0]}
    kept = {"a": {"final test": [0.9, 0.7], "final val": [0.9, 0.85]},  # test share too low
            "b": {"final test": [0.9, 0.9], "final val": [0.82, 0.95]},
            "c": {"final test": [1.0, 1.0], "final val": [1.0, 1.0]}}  # too slow
    text = goal_section(settings, costs, kept, 2)
    assert "| a | 1.20 | 70% | 85% | no |" in text and "| b | 1.10 | 90% | 82% | yes |" in text
    assert "| c | 2.00 | 100% | 100% | no |" in text
    assert "Chosen on validation: `a`" in text  # never on the test shares
    assert "exact MW-Net stays the default" in goal_section(settings, costs, {}, 2)


def test_meta_cost_modes_run_on_tiny_digits(tmp_path, capsys, monkeypatch):
    """The cost mode (interleaved timing and peak memory) and the ``--accuracy`` mode (training
    runs and the cost/accuracy table) end to end on the tiny digits experiment, one seed. The
    memory children run in this process (their command line through the script's ``main``):
    a fresh interpreter per setting would cost most of the test's time."""
    from benchmarks import meta_cost

    def child_in_process(cmd: list[str], cwd: Any = None) -> int:
        assert cmd[1:3] == ["-m", "benchmarks.meta_cost"]
        capsys.readouterr()
        assert meta_cost.main(cmd[3:]) == 0
        return int(json.loads(capsys.readouterr().out.splitlines()[-1])["extra_bytes"])

    monkeypatch.setattr(meta_cost, "child_extra_bytes", child_in_process)
    settings = ["uniform", "mwnet", "mwnet meta_every=2", "gdw meta_grad=last_layer"]
    out = tmp_path / "meta_cost"
    assert meta_cost.main(["--experiment", "digits-tiny", "--settings", *settings,
                           "--rounds", "1", "--iters", "2", "--out", str(out)]) == 0
    cost = json.loads((out / "cost_digits-tiny.json").read_text())
    assert list(cost["settings"]) == settings
    for row in cost["settings"].values():
        assert row["time_ratio"] > 0 and row["extra_mb"] is not None
    assert cost["settings"]["uniform"]["time_ratio"] == 1.0
    assert "| mwnet meta_every=2 |" in (out / "cost_digits-tiny.md").read_text()
    argv = ["--accuracy", "--experiment", "digits-tiny", "--seeds", "0", "--settings", *settings,
            "--out", str(out)]
    assert meta_cost.main(argv) == 0
    rows = [json.loads(line) for line in (out / "accuracy.jsonl").read_text().splitlines()]
    assert sorted(r["tags"]["setting"] for r in rows) == sorted(settings)
    text = (out / "accuracy.md").read_text()
    assert "## digits-tiny" in text and "share of exact MW-Net's gain: final val" in text
    section = text.split("## Goal")[0]
    table = {line.split(" | ")[0][2:]: line.split(" | ") for line in section.splitlines()
             if line.startswith("| ")}
    assert set(settings) <= set(table)
    assert table["mwnet meta_every=2"][2] != "–"  # its cost, from the cost mode's file
    for cell in table["mwnet"][-3:]:  # exact MW-Net keeps all of its own gain (if it gains)
        assert cell.strip(" |") == "100%" or cell.startswith("n/a")
    assert "goal met" in text
    capsys.readouterr()
    assert meta_cost.main(argv) == 0  # a rerun trains nothing: every run is stored
    assert len((out / "accuracy.jsonl").read_text().splitlines()) == len(rows)
    assert "seed 0: final test" not in capsys.readouterr().out


def test_gpu_check_runs_on_cpu_with_the_tiny_preset(tmp_path):
    """The GPU check, at a tiny budget on the CPU and synthetic CIFAR-shaped images (no data
    root given), in a subprocess as it is run: its JSON report."""
    out = tmp_path / "gpu.json"
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.gpu_check", "--device", "cpu", "--preset", "tiny",
         "--iters", "2", "--rounds", "1", "--threads", "1", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "synthetic" in proc.stdout
    report = json.loads(out.read_text())
    assert report["device"] == "cpu" and report["preset"] == "tiny"
    assert report["data"] == "synthetic"
    rates = report["iterations_per_second"]
    for key in ("plain", "plain_channels_first", "mwnet", "mwnet_resident", "env",
                "mwnet meta_every=10", "mwnet meta_grad=last_layer", "mwnet meta_grad=first_order"):
        assert rates[key] > 0, key
    for key in ("plain_mixed_precision", "plain_cudnn_autotune"):  # measured on CUDA only
        assert rates[key] is None
    assert set(report["evaluate_images_per_second"]) == {"host", "resident"}
    zero = report["zero_action"]
    assert zero["reward"] == 0.0 and zero["exact"] and zero["iterations"] > 0
    assert report["skipped"] == []
