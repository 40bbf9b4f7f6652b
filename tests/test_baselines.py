"""Unit tests of the weighting baselines: registry, classic weighers, MW-Net, GDW, FSR, NRT."""

from __future__ import annotations

import copy
import dataclasses
import math

import pytest
import torch
import torch.nn.functional as F

from reweight_gym import baselines
from reweight_gym.baselines._common import normalise_to_batch
from reweight_gym.baselines.class_balanced import effective_number_weights
from reweight_gym.baselines.focal import FocalWeigher
from reweight_gym.baselines.fsr import (
    FSRWeigher,
    last_layer_lookahead,
    last_layer_weight_gradient,
    self_influence,
)
from reweight_gym.baselines.gdw import GDWWeigher, zero_mean_constraint
from reweight_gym.baselines.meta import VNet, logits_jvp, meta_gradient
from reweight_gym.baselines.nrt import (
    CutPointController,
    NeuralRegressionTree,
    RunningStandardizer,
    extract_rules,
    hard_bins,
    soft_bins,
)
from reweight_gym.baselines.spl import SelfPacedWeigher
from reweight_gym.config import EnvConfig
from reweight_gym.envs.observation import episode_seed
from reweight_gym.models import MLP
from reweight_gym.runner import RunResult
from reweight_gym.training.functional import functional_forward, trainable_params
from reweight_gym.training.trainer import DuplicateTrainer
from reweight_gym.training.weigher import Batch, Weigher


def tiny_cfg(**kw) -> EnvConfig:
    base = dict(noise_rate=0.4, epochs=2, num_stages=2, train_size=400, test_size=200)
    base.update(kw)
    return EnvConfig.resolve("digits", "tiny", **base)


# ---------------------------------------------------------------------------- registry, run
def test_registry_names_and_errors():
    assert set(baselines.METHODS) == {"uniform", "focal", "class_balanced", "spl", "mwnet",
                                      "gdw", "fsr", "fsr_relabel_mixup", "nrt"}
    cfg = tiny_cfg()
    with pytest.raises(ValueError, match=r"method='nope'.*allowed: uniform"):
        baselines.make_weigher("nope", cfg)
    with pytest.raises(ValueError, match=r"focal kwarg 'gama'.*allowed: gamma"):
        baselines.make_weigher("focal", cfg, gama=1.0)
    with pytest.raises(ValueError, match=r"focal kwarg gamma=-1.*>= 0"):
        baselines.make_weigher("focal", cfg, gamma=-1)
    with pytest.raises(ValueError, match=r"nrt kwarg weight_net='forest'.*tree, mlp"):
        baselines.make_weigher("nrt", cfg, weight_net="forest")
    with pytest.raises(ValueError, match=r"invalid preset='huge'"):
        baselines.run("uniform", preset="huge")
    assert baselines.make_weigher("mwnet", cfg).needs_meta
    assert not baselines.make_weigher("fsr", cfg).needs_meta


def test_run_returns_metrics_and_is_deterministic():
    r1 = baselines.run("mwnet", seed=3, noise_rate=0.4, epochs=2, num_stages=2, train_size=300,
                       test_size=100)
    r2 = baselines.run("mwnet", seed=3, noise_rate=0.4, epochs=2, num_stages=2, train_size=300,
                       test_size=100)
    assert isinstance(r1, RunResult) and r1.method == "mwnet" and r1.seed == 3
    assert r1.config["noise_rate"] == 0.4 and r1.seconds > 0
    assert r1.stage_rewards is None  # no reference: no rewards
    assert len(r1.test_acc_curve) == 2
    assert r1.final_test_acc == r1.test_acc_curve[-1]
    # the best epoch is the validation split's, and the test curve is read only at it
    best = r1.best_val_epoch - 1
    assert r1.val_acc_curve[best] == max(r1.val_acc_curve) == r1.best_val_acc
    assert r1.test_acc_at_best_val == r1.test_acc_curve[best]
    assert r1.oracle_best_test_acc == max(r1.test_acc_curve)
    assert len(r1.class_weight_mean) == 10
    assert 0.0 <= r1.weight_auc <= 1.0
    assert r1.test_acc_curve == r2.test_acc_curve
    assert r1.noisy_weight_mean == r2.noisy_weight_mean
    # one seeding: the run of seed 3 is the env's episode of reset(seed=3)
    assert r1.episode_seed == episode_seed(3)


# ---------------------------------------------------------------------------- classic
def test_focal_full_gradient_equals_focal_loss_gradient():
    torch.manual_seed(0)
    model = MLP(4, in_features=5, hidden=(6,))
    x, y = torch.randn(8, 5), torch.randint(0, 4, (8,))
    gamma = 2.0
    logits = model(x)
    losses = F.cross_entropy(logits, y, reduction="none")
    out = FocalWeigher(gamma=gamma).weigh(model, Batch(x, y, torch.arange(8)), logits, losses,
                                          None)  # type: ignore[arg-type]
    total = (out.weights * losses).sum() / 8 + out.extra_loss
    got = torch.autograd.grad(total, list(model.parameters()))
    logits2 = model(x)
    pt = F.softmax(logits2, 1).gather(1, y[:, None]).squeeze(1)
    focal = (-(1 - pt) ** gamma * torch.log(pt)).mean()
    want = torch.autograd.grad(focal, list(model.parameters()))
    for a, b in zip(got, want):
        torch.testing.assert_close(a, b, atol=1e-6, rtol=1e-5)
    torch.testing.assert_close(out.weights, (1 - pt.detach()) ** gamma)


def test_class_balanced_effective_number():
    counts = torch.tensor([1000.0, 100.0, 10.0])
    w = effective_number_weights(counts, 0.999)
    raw = torch.tensor([(1 - 0.999) / (1 - 0.999 ** n) for n in (1000, 100, 10)])
    torch.testing.assert_close(w, (raw / raw.sum() * 3).float())
    assert w[2] > w[1] > w[0]
    torch.testing.assert_close(effective_number_weights(counts, 0.0), torch.ones(3))


def test_spl_schedule_is_set_in_fractions_of_the_run():
    spl = SelfPacedWeigher()
    spl.resolve_schedule(8)
    assert spl.warmup_epochs == 2 and spl.growth == pytest.approx(1000 ** (1 / 6))
    spl = SelfPacedWeigher(warmup_epochs=1, growth=1.1)
    spl.resolve_schedule(100)
    assert (spl.warmup_epochs, spl.growth) == (1, 1.1)
    short = SelfPacedWeigher()
    short.resolve_schedule(1)
    assert short.warmup_epochs == 0


def test_spl_hard_threshold_grows():
    cfg = tiny_cfg(epochs=4, num_stages=2)
    spl = SelfPacedWeigher(cfg, warmup_epochs=1, init_quantile=0.5, growth=1.5)
    tr = DuplicateTrainer(cfg, seed=0, with_reference=False, weigher=spl)
    st = tr.train_iterations(tr.iters_per_epoch)
    assert st.weight_sum_noisy + st.weight_sum_clean == st.iterations * cfg.batch_size
    assert spl.threshold is None
    tr.train_iterations(1)
    lam = spl.threshold
    assert lam is not None and lam > 0
    uniq = set(tr.last_weight.unique().tolist())
    assert uniq <= {0.0, 1.0}
    tr.train_iterations(tr.iters_per_epoch - 1)
    assert spl.threshold == pytest.approx(lam * 1.5)


# ---------------------------------------------------------------------------- MW-Net
def _tiny_problem():
    torch.manual_seed(0)
    model = MLP(3, in_features=4, hidden=(5,)).double()
    x, y = torch.randn(6, 4, dtype=torch.float64), torch.randint(0, 3, (6,))
    xm, ym = torch.randn(5, 4, dtype=torch.float64), torch.randint(0, 3, (5,))
    return model, x, y, xm, ym


@pytest.mark.parametrize("jvp,tol", [("forward_ad", 1e-5), ("finite_difference", 1e-3)])
@pytest.mark.parametrize("normalize", [False, True])
def test_mwnet_meta_gradient_matches_finite_differences(normalize, jvp, tol):
    model, x, y, xm, ym = _tiny_problem()
    vnet = VNet(1, 7).double()
    lr = 0.5
    logits = model(x)
    losses = F.cross_entropy(logits, y, reduction="none")
    params = list(vnet.parameters())
    grads, _ = meta_gradient(model, x, y, logits, losses,
                             lambda: vnet(losses.detach()[:, None]), params, xm, ym, lr,
                             normalize, jvp)

    def meta_loss() -> float:  # L_meta(theta - lr (1/B) sum_i w_i grad l_i), all explicit
        ls = F.cross_entropy(model(x), y, reduction="none")
        w = vnet(ls.detach()[:, None])
        if normalize:
            w = normalise_to_batch(w)
        th = trainable_params(model)
        g = torch.autograd.grad((w * ls).mean(), list(th.values()))
        new = {n: v - lr * gg for (n, v), gg in zip(th.items(), g)}
        return float(F.cross_entropy(functional_forward(model, new, xm), ym).detach())

    h = 1e-6
    for p, g in zip(params, grads):
        fd = torch.zeros_like(p)
        for i in range(p.numel()):
            old = float(p.data.view(-1)[i])
            p.data.view(-1)[i] = old + h
            up = meta_loss()
            p.data.view(-1)[i] = old - h
            down = meta_loss()
            p.data.view(-1)[i] = old
            fd.view(-1)[i] = (up - down) / (2 * h)
        torch.testing.assert_close(g, fd, atol=tol * 1e-3, rtol=tol)
    assert max(float(g.abs().max()) for g in grads) > 1e-5  # not trivially zero


def test_weight_net_learning_rate_follows_the_run_length():
    """Adam on MW-Net's V: the paper's 1e-3 at every length on a CNN, 1e-4 on an MLP (the
    default by model family); on GDW's V and NRT's tree: paper * sqrt(60,000 / T); SGD (long
    tail): paper * 60,000 / T; "paper" and a number as given; resolved when the weight net is
    built, from the run's iterations."""
    from reweight_gym.baselines.meta import run_length_lr

    assert run_length_lr(1e-3, 60_000, -0.5) == pytest.approx(1e-3)
    assert run_length_lr(1e-3, 15_000, 0.5) == pytest.approx(2e-3)
    assert run_length_lr(1e-3, 600, -0.5) == pytest.approx(1e-4)
    assert run_length_lr(1e-5, 600, 1.0) == pytest.approx(1e-3)
    cfg = tiny_cfg()
    cnn = tiny_cfg(model="small_cnn", model_kwargs={"width": 4})
    lt = tiny_cfg(noise_rate=0.0, imbalance_type="long_tail", imbalance_factor=10.0)
    for name, cfg_, meta_lr, want in (
            ("mwnet", cnn, None, 1e-3), ("mwnet", cfg, None, 1e-4), ("mwnet", cfg, "paper", 1e-3),
            ("mwnet", cnn, 1e-4, 1e-4), ("gdw", cfg, None, 1e-2),
            ("gdw", cfg, "paper", 1e-3), ("nrt", cfg, 3e-4, 3e-4),
            ("nrt", cfg, None, 1e-2),
            ("mwnet", lt, None, 1e-5 * 60_000 / 600), ("mwnet", lt, "paper", 1e-5)):
        w = baselines.make_weigher(name, cfg_, meta_lr=meta_lr)
        w.build(0, 10, iterations=600)
        assert w.lr == pytest.approx(want) and w.optimizer.param_groups[0]["lr"] == w.lr
    with pytest.raises(ValueError, match=r"mwnet kwarg meta_lr='fast'.*'paper'"):
        baselines.make_weigher("mwnet", cfg, meta_lr="fast")
    with pytest.raises(ValueError, match=r"gdw kwarg meta_lr=0"):
        baselines.make_weigher("gdw", cfg, meta_lr=0)
    w = baselines.make_weigher("mwnet", cnn)
    tr = DuplicateTrainer(cnn, seed=0, with_reference=False, weigher=w)
    tr.train_iterations(1)
    assert tr.total_iterations != 600 and w.lr == pytest.approx(1e-3)
    lt_w = baselines.make_weigher("mwnet", lt)
    lt_tr = DuplicateTrainer(lt, seed=0, with_reference=False, weigher=lt_w)
    lt_tr.train_iterations(1)
    assert lt_w.lr == pytest.approx(run_length_lr(1e-5, lt_tr.total_iterations, 1.0))


def test_finite_difference_jvp_matches_forward_ad_on_a_batchnorm_cnn():
    torch.manual_seed(0)
    from reweight_gym.models import build_model

    model = build_model("small_cnn", 10, (3, 16, 16), width=4).train()
    x = torch.randn(12, 3, 16, 16)
    logits = model(x).detach()
    direction = {n: torch.randn_like(p) for n, p in trainable_params(model).items()}
    stats = {n: b.clone() for n, b in model.named_buffers()}
    exact = logits_jvp(model, x, direction, "forward_ad")
    approx = logits_jvp(model, x, direction, "finite_difference", logits)
    assert float((approx - exact).norm() / exact.norm()) < 0.02
    for n, b in model.named_buffers():  # batch statistics only; running stats untouched
        torch.testing.assert_close(b, stats[n], atol=0, rtol=0)
    with pytest.raises(ValueError, match="jvp='bogus'"):
        logits_jvp(model, x, direction, "bogus")


def test_finite_difference_jvp_sees_the_iterations_dropout_masks():
    """With the iteration's dropout seed set (as the trainer does), the look-ahead forwards
    reuse the training forward's masks, so the forward difference differentiates one function
    and matches forward-mode AD."""
    from reweight_gym.models import build_model, dropout_seed

    torch.manual_seed(0)
    model = build_model("wrn28_10", 10, (3, 8, 8), depth=10, widen=1, dropout=0.3).train()
    x = torch.randn(12, 3, 8, 8)
    direction = {n: torch.randn_like(p) for n, p in trainable_params(model).items()}
    with dropout_seed(model, 5):
        logits = model(x).detach()
        exact = logits_jvp(model, x, direction, "forward_ad")
        approx = logits_jvp(model, x, direction, "finite_difference", logits)
    assert float((approx - exact).norm() / exact.norm()) < 0.02


def _cnn_trainer(weigher: Weigher) -> DuplicateTrainer:
    cfg = tiny_cfg(model="small_cnn", model_kwargs={"width": 4}, meta_size=50)
    return DuplicateTrainer(cfg, seed=0, with_reference=False, weigher=weigher)


def first_batch(weigher: Weigher, tr: DuplicateTrainer) -> tuple[Batch, torch.Tensor,
                                                                 torch.Tensor]:
    """(batch, logits, losses): ``tr``'s next batch and the target's forward of it in train
    mode, with ``weigher`` set up on the target; what the trainer hands ``weigher.weigh``."""
    model = tr.target.model
    weigher.setup(model, 10, tr.device)
    model.train()
    batch = tr.next_batch()
    logits = model(batch.x)
    return batch, logits, F.cross_entropy(logits, batch.y, reduction="none")


@pytest.mark.parametrize("name", ["mwnet", "gdw", "nrt", "fsr"])
def test_lookahead_never_touches_running_stats(name):
    weigher = baselines.make_weigher(name)
    tr = _cnn_trainer(weigher)
    model = tr.target.model
    batch, logits, losses = first_batch(weigher, tr)
    before = {n: b.clone() for n, b in model.named_buffers()}
    params_before = {n: p.detach().clone() for n, p in model.named_parameters()}
    ctx = tr.context()
    out = weigher.weigh(model, batch, logits, losses, ctx)
    for n, b in model.named_buffers():
        assert torch.equal(b, before[n]), n
    for n, p in model.named_parameters():
        assert torch.equal(p.detach(), params_before[n]), n
    w = out.weights if hasattr(out, "weights") else out
    assert torch.isfinite(w).all() and w.shape[0] == len(batch.y)
    # the trainer's graph is still usable for the real step
    (w.detach().reshape(len(batch.y), -1)[:, 0] * losses).mean().backward()


# ---------------------------------------------------------------------------- GDW
def test_gdw_zero_mean_constraint_holds_per_sample():
    torch.manual_seed(0)
    logits = torch.randn(50, 10) * 3
    logits[:5, 0] = 40.0  # p_t -> 1 for a few samples
    y = torch.randint(0, 10, (50,))
    y[:5] = 0
    omega = torch.rand(50, 10) * 2
    out = zero_mean_constraint(omega, logits, y)
    p = F.softmax(logits.double(), 1)
    onehot = F.one_hot(y, 10).double()
    resid = (out.double() * (p - onehot)).sum(1)
    assert float(resid.abs().max()) < 1e-6
    keep = ~F.one_hot(y, 10).bool()
    assert torch.equal(out[keep], omega[keep])  # only the observed-label entry changes
    equal = torch.full((50, 10), 0.7)
    torch.testing.assert_close(zero_mean_constraint(equal, logits, y), equal)


class _Fixed(Weigher):
    def __init__(self, w: torch.Tensor) -> None:
        self.w = w

    def weigh(self, model, batch, logits, losses, ctx):
        return self.w


def test_gdw_equal_class_weights_equal_instance_weighting():
    cfg = tiny_cfg()
    tr = DuplicateTrainer(cfg, seed=0, with_reference=False)
    batch = tr.next_batch()
    v = torch.rand(len(batch.y)) + 0.5
    t1 = tr.target
    t2 = copy.deepcopy(tr.target)
    t1.step(batch, _Fixed(v), tr.context())
    t2.step(batch, _Fixed(v[:, None].expand(-1, 10).contiguous()), tr.context())
    for p1, p2 in zip(t1.model.parameters(), t2.model.parameters()):
        torch.testing.assert_close(p1, p2, atol=1e-6, rtol=1e-6)


def test_gdw_without_class_step_is_instance_weighting_by_v():
    """eta_omega = 0: stage two does nothing, the real step uses V(l) (before the Theta step, as
    in the GDW code) in every column, i.e. plain instance weighting."""
    cfg = tiny_cfg()
    gdw = GDWWeigher(cfg, eta_omega=0.0)
    tr = DuplicateTrainer(cfg, seed=1, with_reference=False, weigher=gdw)
    gdw.build(0, 10)
    v_before = copy.deepcopy(gdw.net)
    model = tr.target.model
    batch = tr.next_batch()
    logits = model(batch.x)
    losses = F.cross_entropy(logits, batch.y, reduction="none")
    omega = gdw.weigh(model, batch, logits, losses, tr.context())
    want = v_before(losses.detach()[:, None]).detach()
    torch.testing.assert_close(omega, want[:, None].expand(-1, 10), atol=1e-6, rtol=1e-6)
    assert any(not torch.equal(a, b) for a, b in zip(v_before.parameters(),
                                                      gdw.net.parameters()))  # V stepped
    gdw2 = GDWWeigher(cfg)
    gdw2.build(0, 10)
    omega2 = gdw2.weigh(model, batch, logits, losses, tr.context())
    assert float((omega2 - omega).abs().max()) > 1e-3  # eq. 11 moves the class weights


# ---------------------------------------------------------------------------- FSR
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_fsr_closed_form_equals_autograd_through_last_layer(smoothing):
    torch.manual_seed(0)
    model = MLP(4, in_features=6, hidden=(7,)).double()
    x, y = torch.randn(9, 6, dtype=torch.float64), torch.randint(0, 4, (9,))
    xp, yp = torch.randn(8, 6, dtype=torch.float64), torch.randint(0, 4, (8,))
    lr, a = 0.3, smoothing
    h, hp = model.features(x).detach(), model.features(xp).detach()
    z = model.fc(h).detach()
    eps = torch.full((9,), 1 / 9, dtype=torch.float64)
    w_la, b_la = last_layer_lookahead(model.fc, h, z, y, eps, lr, smoothing=a)
    errp = (F.softmax(F.linear(hp, w_la, b_la), 1) - (1 - a) * F.one_hot(yp, 4) - a / 4) / 8
    closed = last_layer_weight_gradient(h, z, y, errp.T @ hp, errp.sum(0), lr, a)
    # autograd: eps -> W'(eps) -> L_R(W'), label-smoothed losses throughout
    e = eps.clone().requires_grad_()
    wt, bt = model.fc.weight.detach().requires_grad_(), model.fc.bias.detach().requires_grad_()
    inner = (e * F.cross_entropy(F.linear(h, wt, bt), y, reduction="none",
                                 label_smoothing=a)).sum()
    gw, gb = torch.autograd.grad(inner, [wt, bt], create_graph=True)
    reward = F.cross_entropy(F.linear(hp, wt - lr * gw, bt - lr * gb), yp, label_smoothing=a)
    (auto,) = torch.autograd.grad(reward, e)
    torch.testing.assert_close(closed, auto, atol=1e-12, rtol=1e-6)


def test_fsr_leave_one_out_margin_equals_a_lookahead_without_the_sample():
    torch.manual_seed(1)
    model = MLP(4, in_features=6, hidden=(7,)).double()
    x, y = torch.randn(9, 6, dtype=torch.float64), torch.randint(0, 4, (9,))
    h = model.features(x).detach()
    z = model.fc(h).detach()
    eps = torch.full((9,), 1 / 9, dtype=torch.float64)
    buf = (torch.randn(4, 7, dtype=torch.float64), torch.randn(4, dtype=torch.float64))
    w_la, b_la = last_layer_lookahead(model.fc, h, z, y, eps, 0.5, 0.9, buf)
    loo = F.linear(h, w_la, b_la) + self_influence(h, z, y, eps, 0.5)
    for i in range(9):  # the look-ahead with sample i's weight set to zero
        e = eps.clone()
        e[i] = 0.0
        wi, bi = last_layer_lookahead(model.fc, h, z, y, e, 0.5, 0.9, buf)
        torch.testing.assert_close(loo[i], F.linear(h[i], wi, bi), atol=1e-12, rtol=1e-10)
    assert float((loo - F.linear(h, w_la, b_la)).detach().abs().max()) > 1e-3  # own term matters


def test_fsr_clip_rule_keeps_the_eps_floor():
    cfg = tiny_cfg(epochs=2, num_stages=2, noise_rate=0.4)
    weights = {}
    for rule in ("clip", "clip_code"):
        fsr = FSRWeigher(cfg, warmup_epochs=0, rule=rule)
        seen = []
        orig = fsr.weigh

        def spy(*a, _orig=orig, _seen=seen, **k):
            out = _orig(*a, **k)
            _seen.append(out.detach().clone())
            return out

        fsr.weigh = spy
        DuplicateTrainer(cfg, seed=0, with_reference=False, weigher=fsr).train_iterations(5)
        weights[rule] = torch.cat(seen)
    # max(eps - g, 0) zeroes only samples whose meta-gradient exceeds eps; max(-g, 0) zeroes
    # every sample with g > 0, so it zeroes strictly more and concentrates the weight
    zero = {r: float((w == 0).float().mean()) for r, w in weights.items()}
    assert zero["clip"] < zero["clip_code"]
    assert float(weights["clip"].max()) < float(weights["clip_code"].max())


def test_fsr_paper_settings_by_setting():
    """q = 200 (noise) / 800 (long tail), eq. 7's beta = 0.1, label smoothing 0.1 for long tail;
    by model family: on a CNN the code's rule max(-d, 0) for noise and the fixed look-ahead step
    0.1, on an MLP the written rule and the step following the schedule; shift for long tail;
    ``fsr_relabel_mixup`` is FSR with re-labelling and MixUp, ``fsr`` alone FSR-Raw."""
    noise = tiny_cfg(model="small_cnn", model_kwargs={"width": 4})
    long_tail = tiny_cfg(noise_rate=0.0, imbalance_type="long_tail", imbalance_factor=10.0)
    raw = baselines.make_weigher("fsr", noise)
    assert (raw.probe_batch_size, raw.smoothing, raw.rule, raw.relabel, raw.mixup) == (
        200, 0.0, "clip_code", False, False)
    assert raw.relabel_momentum == 0.1 and raw.lookahead_lr == 0.1
    mlp = baselines.make_weigher("fsr", tiny_cfg())
    assert (mlp.rule, mlp.lookahead_lr) == ("clip", "schedule")
    assert (baselines.make_weigher("fsr", tiny_cfg(), rule="clip_code", lookahead_lr=0.1).rule
            == "clip_code")  # explicit values win
    lt = baselines.make_weigher("fsr", long_tail)
    assert (lt.probe_batch_size, lt.smoothing, lt.rule, lt.requested_size) == (800, 0.1, "shift",
                                                                                3000)
    full = baselines.make_weigher("fsr_relabel_mixup", noise)
    assert (full.relabel, full.mixup, full.rule, full.lookahead_lr, full.name) == (
        True, True, "clip_code", 0.1, "fsr_relabel_mixup")
    assert baselines.make_weigher("fsr_relabel_mixup", noise, mixup=False).mixup is False
    assert baselines.make_weigher("fsr", noise, lookahead_lr="schedule").lookahead_lr == "schedule"
    with pytest.raises(ValueError, match=r"fsr_relabel_mixup kwarg 'rul'.*allowed: relabel, "
                                         r"mixup, dictionary_size"):
        baselines.make_weigher("fsr_relabel_mixup", noise, rul="clip")
    with pytest.raises(ValueError, match=r"fsr kwarg label_smoothing=1.5"):
        baselines.make_weigher("fsr", noise, label_smoothing=1.5)
    with pytest.raises(ValueError, match=r"fsr kwarg lookahead_lr='lr': allowed: auto, schedule"):
        baselines.make_weigher("fsr", noise, lookahead_lr="lr")
    with pytest.raises(ValueError, match=r"fsr kwarg lookahead_lr=0: must be > 0"):
        baselines.make_weigher("fsr", noise, lookahead_lr=0)


def fsr_first_weighing(fsr: FSRWeigher, cfg: EnvConfig, lr: float | None = None) -> tuple:
    """(trainer, batch, logits, losses, weigher output) of ``fsr``'s weighing of the first batch
    of a fresh trainer (seed 0), the context's learning rate replaced by ``lr`` if given."""
    tr = DuplicateTrainer(cfg, seed=0, with_reference=False, weigher=fsr)
    batch, logits, losses = first_batch(fsr, tr)
    ctx = tr.context() if lr is None else dataclasses.replace(tr.context(), lr=lr)
    return tr, batch, logits, losses, fsr.weigh(tr.target.model, batch, logits, losses, ctx)


def test_fsr_lookahead_step_fixed_or_following_the_schedule():
    """The look-ahead step is the fixed eta (the paper's 0.1) by default on a CNN and the run's
    current learning rate with ``lookahead_lr="schedule"``: under a decayed lr of 0.01
    "schedule" gives the weights of an explicit step 0.01, and the default's differ."""

    def first_weights(lookahead_lr: float | str | None) -> torch.Tensor:
        cfg = tiny_cfg(noise_rate=0.4, model="small_cnn", model_kwargs={"width": 4})
        kwargs = {} if lookahead_lr is None else {"lookahead_lr": lookahead_lr}
        return fsr_first_weighing(FSRWeigher(cfg, warmup_epochs=0, rule="clip", **kwargs), cfg,
                                  lr=0.01)[-1]

    default, schedule = first_weights(None), first_weights("schedule")
    torch.testing.assert_close(schedule, first_weights(0.01), rtol=0, atol=0)
    torch.testing.assert_close(default, first_weights(0.1), rtol=0, atol=0)
    assert float((default - schedule).abs().max()) > 1e-3


def test_fsr_label_smoothing_trains_on_the_smoothed_loss():
    """The extra loss tops the trainer's (1/B) sum_i w_i l_i up to the label-smoothed loss, and
    the probe batch never exceeds the dictionary (sampling without duplicates)."""
    cfg = tiny_cfg(noise_rate=0.0, imbalance_type="long_tail", imbalance_factor=10.0)
    fsr = FSRWeigher(cfg, warmup_epochs=0)
    tr, batch, logits, losses, out = fsr_first_weighing(fsr, cfg)
    total = (out.weights * losses).sum() / len(losses) + out.extra_loss
    want = (out.weights * F.cross_entropy(logits, batch.y, reduction="none",
                                          label_smoothing=0.1)).sum() / len(losses)
    torch.testing.assert_close(total, want)
    xp, _ = fsr.probe_batch(tr.context())
    assert len(xp) <= len(fsr.dictionary) < 800


def test_fsr_dictionary_balanced_fixed_size_and_no_meta_set():
    cfg = tiny_cfg(epochs=3, num_stages=3)
    fsr = FSRWeigher(cfg, warmup_epochs=1)
    tr = DuplicateTrainer(cfg, seed=0, with_reference=False, weigher=fsr)
    assert tr.context().meta is None
    sizes, purities = [], []
    for _ in range(3):
        tr.train_iterations(tr.iters_per_epoch)
        assert fsr.dictionary is not None
        counts = torch.bincount(tr.train_y[fsr.dictionary], minlength=10)
        assert int(counts.min()) == int(counts.max())  # class-balanced
        sizes.append(len(fsr.dictionary))
        purities.append(1 - float(tr.is_noisy[fsr.dictionary].float().mean()))
    assert sizes[0] == sizes[1] == sizes[2] == (400 // 4) // 10 * 10
    assert tr.meta is not None and tr.meta.sampler is not None
    assert tr.meta.sampler._perm is None  # the clean meta set was never drawn from
    assert all(0.0 <= p <= 1.0 for p in purities)


# ---------------------------------------------------------------------------- NRT
def test_soft_bins_become_hard_intervals_as_tau_goes_to_zero():
    cuts = torch.tensor([0.5, -1.0, 2.0])
    z = torch.tensor([-3.0, -1.2, -0.8, 0.0, 0.49, 0.51, 1.9, 2.2, 5.0])
    hard = F.one_hot(hard_bins(z, cuts), 4).float()

    def one(tau: float) -> torch.Tensor:
        return soft_bins(z[:, None], [cuts], tau)[0]

    assert float((one(1e-4) - hard).abs().max()) < 1e-6
    assert float((one(1.0) - hard).abs().max()) > 0.1
    torch.testing.assert_close(one(0.1).sum(1), torch.ones(len(z)))
    # eq. 6 literally, softmax((w z + b) / tau), w = [1..a+1], b = [0, -b1, -b1-b2, ...]
    beta = torch.sort(cuts).values
    want = torch.softmax((z[:, None] * torch.arange(1.0, 5.0)
                          + torch.cat([torch.zeros(1), -torch.cumsum(beta, 0)])) / 0.3, 1)
    torch.testing.assert_close(one(0.3), want)
    # several characteristics with different numbers of cut points (none too) at once
    zz = torch.randn(7, 3)
    out = soft_bins(zz, [cuts, torch.zeros(0), torch.tensor([0.1])], 0.3)
    assert [tuple(p.shape) for p in out] == [(7, 4), (7, 1), (7, 2)]
    torch.testing.assert_close(out[0], soft_bins(zz[:, :1], [cuts], 0.3)[0])
    assert torch.equal(out[1], torch.ones(7, 1))


def test_tree_output_is_the_leaf_sum_of_eq_7():
    """The bilinear contraction equals sum over all leaves of score * prod_k bin_k."""
    torch.manual_seed(0)
    tree = NeuralRegressionTree(4, tau=0.5)
    tree.add_cut(0, 1.0)
    tree.add_cut(2, -0.5)
    tree.add_cut(2, 0.7)
    tree.remove_cut(3, 0)  # no cut point left: one bin
    with torch.no_grad():
        tree.scores.copy_(torch.randn(tree.leaf_shape))
    z = torch.randn(6, 4)
    bins = tree.bins(z)
    want = torch.einsum("bi,bj,bk,bl,ijkl->b", *bins, tree.scores)
    torch.testing.assert_close(tree(z), want)


def test_growth_and_pruning_follow_the_rules():
    z = torch.linspace(-3, 3, 200)[:, None].repeat(1, 2)
    # a stable cut point (moves < eps+ over T_r) grows; a moving one does not
    c = CutPointController(eps_plus=0.1, t_r=5, eps_minus=0.2, max_cuts=3)
    actions = []
    for t in range(5):
        actions = c.step([torch.tensor([0.01 * t]), torch.tensor([0.1 * t])], z)
        if t < 4:
            assert actions == []
    assert [(a.kind, a.k) for a in actions] == [("grow", 0)]
    assert -3.0 <= actions[0].value <= 3.0 and abs(actions[0].value - 0.04) > 0.2
    # at the maximum number of cut points: no growth
    c = CutPointController(eps_plus=0.1, t_r=2, eps_minus=0.2, max_cuts=1)
    assert c.step([torch.tensor([0.0])], z[:, :1]) == []
    assert c.step([torch.tensor([0.0])], z[:, :1]) == []
    # two cut points closer than eps-: the smaller one is pruned
    c = CutPointController(eps_plus=0.1, t_r=1, eps_minus=0.2, max_cuts=3)
    (a,) = c.step([torch.tensor([0.55, 0.5])], z[:, :1])
    assert (a.kind, a.k, a.j) == ("prune", 0, 0)
    # no sample between two cut points: pruned even though they are far apart
    c = CutPointController(eps_plus=0.1, t_r=1, eps_minus=0.2, max_cuts=3)
    zz = torch.cat([torch.full((50, 1), -2.0), torch.full((50, 1), 2.0)])
    (a,) = c.step([torch.tensor([-1.0, 1.0])], zz)
    assert (a.kind, a.j) == ("prune", 0)
    # well separated cut points with samples between them stay
    c = CutPointController(eps_plus=0.0, t_r=1, eps_minus=0.2, max_cuts=3)
    assert c.step([torch.tensor([-1.0, 1.0])], z[:, :1]) == []


def test_growth_test_is_max_minus_min_over_the_window():
    """Eq. 8: a cut point that went away and came back (net displacement 0, range 0.5) has not
    settled and does not grow; one that stayed within eps+ does."""
    z = torch.linspace(-3, 3, 200)[:, None].repeat(1, 2)
    c = CutPointController(eps_plus=0.1, t_r=4, eps_minus=0.2, max_cuts=3)
    path = [(0.0, 0.0), (0.5, 0.05), (0.2, 0.08), (0.0, 0.02)]
    actions = [c.step([torch.tensor([a]), torch.tensor([b])], z) for a, b in path]
    assert actions[:3] == [[], [], []]
    assert [(a.kind, a.k) for a in actions[3]] == [("grow", 1)]


def test_pruning_can_drop_a_characteristic():
    """A cut point beyond the data (no sample on one side) is pruned, also the last one: the
    characteristic leaves the tree (one bin) while its values are constant, and comes back at
    its median once they spread."""
    z = torch.linspace(-1, 1, 100)[:, None].repeat(1, 2)
    c = CutPointController(eps_plus=1.0, t_r=1, eps_minus=0.2, max_cuts=3)
    acts = c.step([torch.tensor([3.0]), torch.tensor([0.0])], z)
    assert [(a.kind, a.k, a.j) for a in acts] == [("prune", 0, 0), ("grow", 1, -1)]
    assert c.step([torch.tensor([-2.0, 0.0])], z[:, :1])[0].j == 0  # none below the first
    tree = NeuralRegressionTree(2, tau=0.1)
    tree.remove_cut(0, 0)
    assert tree.leaf_shape == (1, 2)
    c = CutPointController(eps_plus=1.0, t_r=1, eps_minus=0.2, max_cuts=3)
    constant = torch.cat([torch.zeros(100, 1), z[:, 1:]], dim=1)
    assert [a.k for a in c.step([tree.cuts[0], tree.cuts[1]], constant)] == [1]  # 0 stays out
    back = c.step([tree.cuts[0], tree.cuts[1]], z)
    assert [(a.kind, a.k) for a in back][0] == ("grow", 0) and abs(back[0].value) < 0.05
    out = tree(torch.randn(5, 2))
    assert out.shape == (5,) and torch.isfinite(out).all()


def test_tree_growth_keeps_hard_function_and_pruning_merges():
    torch.manual_seed(0)
    tree = NeuralRegressionTree(3, tau=1e-3)
    with torch.no_grad():
        tree.scores.copy_(torch.randn(2, 2, 2))
    z = torch.randn(100, 3) * 2
    before = tree(z)
    tree.add_cut(1, 1.0)
    assert tree.leaf_shape == (2, 3, 2)
    torch.testing.assert_close(tree(z), before, atol=1e-4, rtol=1e-4)
    tree.add_cut(1, -1.0)
    assert tree.leaf_shape == (2, 4, 2)
    tree.remove_cut(1, 0)
    assert tree.leaf_shape == (2, 3, 2)
    assert torch.equal(torch.sort(tree.cuts[1].detach()).values, torch.tensor([0.0, 1.0]))


def test_tree_memory_grows_with_active_bins_not_5_pow_9():
    tree = NeuralRegressionTree(9, tau=0.1)
    for k in range(3):
        for v in (-1.0, 1.0, 2.0):
            tree.add_cut(k, v)
    assert tree.leaf_shape == (5, 5, 5, 2, 2, 2, 2, 2, 2)
    assert tree.num_leaves == 125 * 64 and tree.scores.numel() == tree.num_leaves
    b = 64
    z = torch.randn(b, 9)
    sizes: list[int] = []

    def pack(t: torch.Tensor) -> torch.Tensor:
        sizes.append(t.numel())
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = tree(z)
    out.sum().backward()
    assert max(sizes) <= b * tree.num_leaves // 5  # one characteristic contracted first
    assert max(sizes) < b * 5**9 / 1000
    assert tree.scores.grad is not None and tree.scores.grad.shape == tree.scores.shape


def test_extract_rules_reads_the_tree():
    tree = NeuralRegressionTree(9, tau=0.01)
    with torch.no_grad():
        tree.cut_values[0, 0] = 0.0
        tree.scores[0].fill_(4.0)  # loss below the mean: high weight
        tree.scores[1].fill_(-4.0)  # loss above the mean: low weight
    torch.manual_seed(0)
    chars = torch.randn(500, 9) + torch.tensor([2.0] + [0.0] * 8)
    std = RunningStandardizer(9)
    std.update(chars)
    text = extract_rules(tree, std, chars, n_clusters=2, top_k=2)
    lines = text.splitlines()
    assert lines[1].startswith("loss (information gain 1.0")
    assert "level1 weight" in lines[2] and "(-inf, 2" in lines[2]
    assert "level0 weight" in lines[3]


def test_nrt_runs_both_weight_nets_and_grows():
    cfg = tiny_cfg(epochs=2)
    for net in ("tree", "mlp"):
        w = baselines.make_weigher("nrt", cfg, weight_net=net, t_r=3, max_cuts=2)
        tr = DuplicateTrainer(cfg, seed=0, with_reference=False, weigher=w)
        tr.train_iterations(2 * tr.iters_per_epoch)
        assert torch.isfinite(tr.last_weight).all()
        if net == "tree":
            assert isinstance(w.net, NeuralRegressionTree)
            assert max(w.net.leaf_shape) == 3  # cut points were activated
            assert "information gain" in w.extract_rules()
        else:
            with pytest.raises(ValueError, match="weight_net"):
                w.extract_rules()


def test_nrt_meta_interval_skips_meta_updates():
    cfg = tiny_cfg()
    w = baselines.make_weigher("nrt", cfg, meta_interval=4)
    tr = DuplicateTrainer(cfg, seed=0, with_reference=False, weigher=w)
    tr.train_iterations(1)
    snap = [p.detach().clone() for p in w.net.parameters()]
    tr.train_iterations(3)  # iterations 1, 2, 3: no meta update
    assert all(torch.equal(a, b.detach()) for a, b in zip(snap, w.net.parameters()))
    tr.train_iterations(1)  # iteration 4: meta update
    assert any(not torch.equal(a, b.detach()) for a, b in zip(snap, w.net.parameters()))
    assert math.isfinite(w.last_meta_loss)


def test_fsr_mixup_and_relabel_update_batchnorm_statistics_once_per_iteration():
    cfg = tiny_cfg(epochs=2, num_stages=2, noise_rate=0.4, model="small_cnn",
                   model_kwargs={"width": 4})
    fsr = FSRWeigher(cfg, warmup_epochs=0, mixup=True, relabel=True)
    tr = DuplicateTrainer(cfg, seed=0, with_reference=False, weigher=fsr)
    counters = [b for n, b in tr.target.model.named_buffers() if n.endswith("num_batches_tracked")]
    assert counters
    before = [int(c) for c in counters]
    stats = tr.train_iterations(4)
    assert [int(c) - b for c, b in zip(counters, before)] == [4] * len(counters)
    assert not stats.diverged and fsr.pseudo is not None
    assert float(fsr.pseudo.sum(1).sub(1).abs().max()) < 1e-5  # EMA of distributions
