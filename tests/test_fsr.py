"""FSR's deviations from the reference code (issue 29.13): the defaults are pinned, each option
that does what the code does changes the computation as documented, and bad values are rejected
with the field named. Fast and deterministic (one or two weighings of a first batch)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from reweight_gym import baselines
from reweight_gym.baselines._common import normalise_to_batch
from reweight_gym.baselines.fsr import (
    MIXUP_WEIGHTS,
    RELABEL_EMAS,
    FSRRelabelMixupWeigher,
    FSRWeigher,
    last_layer_lookahead,
    logit_norm,
)
from reweight_gym.config import EnvConfig
from reweight_gym.training.trainer import DuplicateTrainer
from reweight_gym.training.weigher import Weighting


def tiny_cfg(**kw) -> EnvConfig:
    base = dict(noise_rate=0.4, epochs=2, num_stages=2, train_size=400, test_size=200)
    base.update(kw)
    return EnvConfig.resolve("digits", "tiny", **base)


def weigh_first(fsr: FSRWeigher, cfg: EnvConfig, times: int = 1) -> dict:
    """Weigh the first batch of a fresh trainer (seed 0) ``times`` times; what was used and
    returned. The MLP's features are its input to ``fc`` (no BatchNorm, no dropout)."""
    tr = DuplicateTrainer(cfg, seed=0, with_reference=False, weigher=fsr)
    model = tr.target.model
    fsr.setup(model, 10, tr.device)
    model.train()
    batch = tr.next_batch()
    seen: dict = {}
    probe, mix = fsr.probe_batch, fsr._mix_forward

    def probe_spy(ctx):
        seen["probe"] = probe(ctx)
        return seen["probe"]

    def mix_spy(*a):
        seen["mix"] = mix(*a)
        return seen["mix"]

    fsr.probe_batch, fsr._mix_forward = probe_spy, mix_spy
    outs = []
    for _ in range(times):
        logits = model(batch.x)
        losses = F.cross_entropy(logits, batch.y, reduction="none")
        outs.append(fsr.weigh(model, batch, logits, losses, tr.context()))
    return dict(model=model, batch=batch, logits=logits, losses=losses, out=outs[-1],
                outs=outs, h=model.features(batch.x).detach(), **seen)


def weights_of(out) -> torch.Tensor:
    return out.weights if isinstance(out, Weighting) else out


# ---------------------------------------------------------------------------- defaults
def test_defaults_pinned():
    """The defaults (chosen on validation accuracy: benchmarks/results/fsr_deviations/table.md):
    the leave-one-out margin (ours), weights from the un-mixed batch (ours), the code's EMA of
    the logits with temperature 1."""
    for name in ("fsr", "fsr_relabel_mixup"):
        w = baselines.make_weigher(name, tiny_cfg())
        assert (w.margin, w.mixup_weights, w.relabel_ema, w.relabel_temperature) == (
            "leave_one_out", "unmixed", "logits", 1.0)
    assert MIXUP_WEIGHTS == ("unmixed", "mixed") and RELABEL_EMAS == ("probs", "logits")


@pytest.mark.parametrize(("field", "value", "allowed"), [
    ("margin", "own", "allowed: leave_one_out, full"),
    ("mixup_weights", "mix", "allowed: unmixed, mixed"),
    ("relabel_ema", "probabilities", "allowed: probs, logits"),
    ("relabel_temperature", 0, "must be > 0"),
    ("relabel_temperature", -1.0, "must be > 0"),
])
@pytest.mark.parametrize("method", ["fsr", "fsr_relabel_mixup"])
def test_bad_values_rejected_naming_the_field(method, field, value, allowed):
    with pytest.raises(ValueError, match=rf"{method} kwarg {field}={value!r}: {allowed}"):
        baselines.make_weigher(method, tiny_cfg(), **{field: value})


# ---------------------------------------------------------------------------- (a) margin
def test_margin_leave_one_out_or_with_the_own_term():
    """The score of the first batch is (1 - lambda) (l_i - l_i(W')): W' the look-ahead without
    sample i's own term (leave_one_out) or with it (full, the code's); the weights do not
    depend on the margin."""
    cfg = tiny_cfg()
    got = {}
    for margin in ("leave_one_out", "full"):
        fsr = FSRWeigher(cfg, warmup_epochs=0, lookahead_lr=0.1, margin=margin)
        got[margin] = (weigh_first(fsr, cfg), fsr.scores.clone())
    r, _ = got["full"]
    h, z, y, b = r["h"], r["logits"].detach(), r["batch"].y, len(r["batch"].y)
    eps = torch.full((b,), 1.0 / b)
    fc = r["model"].fc
    before = F.cross_entropy(z, y, reduction="none")
    with torch.no_grad():
        w_la, b_la = last_layer_lookahead(fc, h, z, y, eps, 0.1)
        full = 0.1 * (before - F.cross_entropy(F.linear(h, w_la, b_la), y, reduction="none"))
        loo = torch.empty(b)
        for i in range(b):
            e = eps.clone()
            e[i] = 0.0
            wi, bi = last_layer_lookahead(fc, h, z, y, e, 0.1)
            loo[i] = 0.1 * (before[i] - F.cross_entropy(F.linear(h[i:i + 1], wi, bi), y[i:i + 1]))
    idx = r["batch"].index
    torch.testing.assert_close(got["full"][1][idx], full, rtol=1e-4, atol=1e-7)
    torch.testing.assert_close(got["leave_one_out"][1][idx], loo, rtol=1e-4, atol=1e-7)
    assert float((full - loo).abs().max()) > 1e-4  # the option changes the score
    torch.testing.assert_close(weights_of(got["full"][0]["out"]),
                               weights_of(got["leave_one_out"][0]["out"]), rtol=0, atol=0)


# ---------------------------------------------------------------------------- (b) mixup
def test_mixup_weights_from_the_mixed_batch():
    """``mixup_weights="mixed"`` (the code's): the weights are the meta-gradient of the MixUp
    batch's cost (autograd through the last layer, the mixed targets); the default's differ.
    Both train the weighted MixUp loss: trainer term + extra = sum_i w_i l~_i / B."""
    cfg = tiny_cfg()
    runs = {m: weigh_first(FSRWeigher(cfg, warmup_epochs=0, lookahead_lr=0.1, mixup=True,
                                      mixup_weights=m), cfg) for m in MIXUP_WEIGHTS}
    r = runs["mixed"]
    lam, perm, zm, hm = r["mix"]
    y, b = r["batch"].y, len(r["batch"].y)
    fc = r["model"].fc
    xp, yp = r["probe"]
    hp = r["model"].features(xp).detach()
    e = torch.full((b,), 1.0 / b, requires_grad=True)
    wt, bt = fc.weight.detach().requires_grad_(), fc.bias.detach().requires_grad_()
    zt = F.linear(hm, wt, bt)
    mixed_cost = (lam * F.cross_entropy(zt, y, reduction="none")
                  + (1 - lam) * F.cross_entropy(zt, y[perm], reduction="none"))
    gw, gb = torch.autograd.grad((e * mixed_cost).sum(), [wt, bt], create_graph=True)
    reward = F.cross_entropy(F.linear(hp, wt - 0.1 * gw, bt - 0.1 * gb), yp)
    (grad_eps,) = torch.autograd.grad(reward, e)
    want = normalise_to_batch((1.0 / b - grad_eps).clamp_min(0.0))  # MLP: the written rule
    torch.testing.assert_close(r["out"].weights, want, rtol=1e-4, atol=1e-6)
    assert float((runs["unmixed"]["out"].weights - want).abs().max()) > 1e-3
    for run in runs.values():
        lam, perm, zm, _ = run["mix"]
        w, out = run["out"].weights, run["out"]
        lm = (lam * F.cross_entropy(zm, y, reduction="none")
              + (1 - lam) * F.cross_entropy(zm, y[perm], reduction="none"))
        total = (w * run["losses"]).sum() / b + out.extra_loss
        torch.testing.assert_close(total, (w * lm).sum() / b)


# ---------------------------------------------------------------------------- (c) relabel
def test_logit_norm_is_one_scale_for_the_batch():
    v = torch.tensor([[1.0, -3.0], [2.0, 0.0]])
    out = logit_norm(v)
    torch.testing.assert_close(out.pow(2).mean(), torch.tensor(1.0))
    torch.testing.assert_close(logit_norm(3.0 * v), out)  # one scale: v / rms(v)
    torch.testing.assert_close(out, v / v.pow(2).mean().sqrt())
    assert float(logit_norm(torch.zeros(2, 3)).abs().max()) == 0.0


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_relabel_ema_of_logits_with_temperature(temperature):
    """``relabel_ema="logits"`` (the code's ``compute_pseudo_loss``): the target is
    softmax(logit_norm(e) / T) of the stored EMA logits e *before* the update (0 at first: the
    uniform label), then e <- 0.1 logit_norm(e) + 0.9 z (the default). ``"probs"`` (eq. 7):
    y^ <- 0.1 y^ + 0.9 p, the target after the update."""
    cfg = tiny_cfg()
    kw = dict(warmup_epochs=0, mixup=False, lookahead_lr=0.1)
    code = FSRRelabelMixupWeigher(cfg, relabel_ema="logits", relabel_temperature=temperature,
                                  **kw)
    r = weigh_first(code, cfg, times=2)
    z = r["logits"].detach()  # the same batch and parameters both times
    first, second = (o.extra_loss for o in r["outs"])
    log_p = F.log_softmax(r["logits"], 1)
    torch.testing.assert_close(first, 2.0 * -(log_p.mean(1)).mean())  # uniform target
    e1 = 0.9 * z
    target = torch.softmax(logit_norm(e1) / temperature, 1)
    torch.testing.assert_close(second, 2.0 * -(target * log_p).sum(1).mean())
    idx = r["batch"].index
    torch.testing.assert_close(code.ema_logits[idx], 0.1 * logit_norm(e1) + 0.9 * z)
    torch.testing.assert_close(code.pseudo[idx], target)  # the latest target: a distribution

    probs = FSRRelabelMixupWeigher(cfg, relabel_ema="probs", **kw)
    rp = weigh_first(probs, cfg)
    pseudo = 0.1 / 10 + 0.9 * torch.softmax(rp["logits"].detach(), 1)
    torch.testing.assert_close(probs.pseudo[rp["batch"].index], pseudo)
    want = 2.0 * -(pseudo * F.log_softmax(rp["logits"], 1)).sum(1).mean()
    torch.testing.assert_close(rp["out"].extra_loss, want)
    assert abs(float((rp["out"].extra_loss - first).detach())) > 1e-3  # the option changes the loss


def test_relabel_logits_ema_updates_during_warmup():
    """The code updates its EMA logits on every step, warm-up included (the loss only after);
    eq. 7's EMA of probabilities starts after warm-up."""
    cfg = tiny_cfg()
    code = FSRRelabelMixupWeigher(cfg, warmup_epochs=1)  # the default: the code's
    r = weigh_first(code, cfg)
    assert not isinstance(r["out"], Weighting)  # warm-up: uniform weights, no extra loss
    torch.testing.assert_close(code.ema_logits[r["batch"].index], 0.9 * r["logits"].detach())
    probs = FSRRelabelMixupWeigher(cfg, relabel_ema="probs", warmup_epochs=1)
    weigh_first(probs, cfg)
    assert torch.all(probs.pseudo == 0.1)
