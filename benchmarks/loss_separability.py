"""Can a function of the loss tell noisy from clean samples? (issue 12: MW-Net on pair flip)

MW-Net's weight is V(l_i; Theta), a function of the sample's loss alone (MW-Net eq. 1), and its
update (eq. 5) moves Theta along sum_i a_i dV(l_i)/dTheta, where a_i = g_meta . g_i is the
alignment of sample i's gradient with the clean meta-set gradient (eq. 6: up-weighting i lowers
the meta loss when a_i > 0). So V can only down-weight noisy samples where they are apart from
clean ones in loss: whatever the meta-gradient knows about a sample, V sees only its loss. GDW
instead weights the class components of each gradient, which does not need the loss to separate.

This script trains the plain (uniform) network of an environment config, epoch by epoch, and
after every epoch measures on the whole training set, in eval mode:

- ``loss_auc``: ROC AUC of the per-sample loss for ranking noisy samples above clean ones (what
  the best monotone V(l) can reach; 0.5 = no information);
- mean loss of noisy and clean samples, and test accuracy;
- ``align_auc``: ROC AUC of -a_i for the same (what the meta-gradient itself knows), with a_i
  computed at the linear head (g_i = (p_i - y_i) h_i^T, the closed form of the cross-entropy
  gradient of the last layer; the meta gradient is the mean of the same over the meta set);
- ``align_by_loss``: mean a_i (x 1e3, normalised by the meta gradient's norm) in ten loss-decile
  bins, and the share of noisy samples in each.

The head-only a_i is a proxy of the full network's alignment that MW-Net uses, and a weak one:
it is read next to the loss numbers, not as the shape V takes (the docs, results/cifar10.md, has
what it showed).

The configs are the CIFAR-10 ``cpu-noaug`` preset (the memorising setting) at
40% uniform noise and 40% pair flip. Each finished run is appended to ``--out`` (JSON lines)
and skipped on a rerun; the summary goes to ``--out`` with ``.md``.

    python -m benchmarks.loss_separability [--seeds 0,1,2] [--configs ...]
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from benchmarks.common import RESULTS, JsonlLog, cifar10_root, machine

#: config name -> the experiment of :mod:`reweight_gym.experiments`
CONFIGS: dict[str, str] = {"uniform40": "cifar10-cpu-noaug-noise40",
                           "pairflip40": "cifar10-cpu-noaug-pairflip40"}
BINS = 10


def _head_terms(model: Any, x: Any, y: Any, pipeline: Any,
                batch_size: int = 1000) -> tuple[Any, Any, Any]:
    """Per-sample cross-entropy, p - onehot(y) and penultimate features h, in eval mode."""
    import torch
    import torch.nn.functional as F

    model.eval()
    losses, resid, feats = [], [], []
    with torch.inference_mode():
        for i in range(0, len(y), batch_size):
            h = model.features(pipeline.plain(x[i: i + batch_size])).float()
            logits = model.fc(h).float()
            yb = y[i: i + batch_size]
            losses.append(F.cross_entropy(logits, yb, reduction="none"))
            resid.append(logits.softmax(1) - F.one_hot(yb, logits.shape[1]).float())
            feats.append(h)
    return torch.cat(losses), torch.cat(resid), torch.cat(feats)


def measure(trainer: Any) -> dict[str, Any]:
    """The separability numbers of the module docstring for the trainer's current network."""
    import numpy as np
    from sklearn.metrics import roc_auc_score

    s, model = trainer.splits, trainer.target.model
    loss, r, h = _head_terms(model, trainer.train_x, trainer.train_y, trainer.pipeline)
    _, r_meta, h_meta = _head_terms(model, s.meta_x.to(trainer.device),
                                    s.meta_y.to(trainer.device), trainer.pipeline)
    g_meta = r_meta.T @ h_meta / len(h_meta)  # (C, D): mean last-layer gradient of the meta set
    g_meta = g_meta / g_meta.norm().clamp_min(1e-12)
    align = ((r @ g_meta) * h).sum(1)  # a_i = <g_i, g_meta> = r_i^T G h_i
    noisy = trainer.is_noisy.cpu().numpy()
    loss_np, align_np = loss.cpu().numpy(), align.cpu().numpy()
    edges = np.quantile(loss_np, np.linspace(0, 1, BINS + 1))
    which = np.clip(np.searchsorted(edges, loss_np, side="right") - 1, 0, BINS - 1)
    return {
        "loss_auc": float(roc_auc_score(noisy, loss_np)),
        "align_auc": float(roc_auc_score(noisy, -align_np)),
        "loss_noisy": float(loss_np[noisy].mean()), "loss_clean": float(loss_np[~noisy].mean()),
        "align_by_loss": [float(1e3 * align_np[which == b].mean()) for b in range(BINS)],
        "noisy_share_by_loss": [float(noisy[which == b].mean()) for b in range(BINS)],
    }


def run_one(config: str, seed: int) -> dict[str, Any]:
    """Plain training (:func:`reweight_gym.runner.run` of ``uniform``) of ``config`` with
    ``seed``; the separability numbers after every epoch."""
    from reweight_gym.experiments import EXPERIMENTS
    from reweight_gym.runner import RunSpec, run

    kw = EXPERIMENTS[CONFIGS[config]].kwargs()
    dataset, preset = kw.pop("dataset"), kw.pop("preset")
    spec = RunSpec(dataset, "custom", {}, "uniform", seed, preset, cifar10_root(), kw)
    epochs: list[dict[str, Any]] = []

    def on_epoch(end: Any) -> None:
        row = measure(end.trainer)
        row.update(epoch=end.epoch, test_acc=end.test_acc)
        epochs.append(row)

    result = run(spec, on_epoch=on_epoch)
    return {"seed": seed, "epochs": epochs, "episode_seed": result.episode_seed,
            "seconds": result.seconds}


def summary(rows: list[dict[str, Any]]) -> str:
    import numpy as np

    def ms(v: list[float]) -> str:
        return f"{np.mean(v):.3f} ± {np.std(v, ddof=1) if len(v) > 1 else 0:.3f}"

    at = (3, 10, 15, 20, 30)  # epochs: early, before / after the first lr decay (15), late
    lines = ["| config | seeds | epoch | test acc (%) | loss noisy / clean | loss AUC | "
             "alignment AUC | mean alignment by loss decile, low -> high (x1e3) | "
             "noisy share by loss decile |", "|---|---|---|---|---|---|---|---|---|"]
    groups: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault(r["config"], []).append(r)
    for config, rs in groups.items():
        for e in at:
            es = [r["epochs"][e - 1] for r in rs if len(r["epochs"]) >= e]
            if not es:
                continue
            align = np.mean([x["align_by_loss"] for x in es], axis=0)
            share = np.mean([x["noisy_share_by_loss"] for x in es], axis=0)
            lines.append(
                f"| {config} | {len(es)} | {e} | {100 * np.mean([x['test_acc'] for x in es]):.2f}"
                f" | {np.mean([x['loss_noisy'] for x in es]):.2f} / "
                f"{np.mean([x['loss_clean'] for x in es]):.2f}"
                f" | {ms([x['loss_auc'] for x in es])} | {ms([x['align_auc'] for x in es])} | "
                + " ".join(f"{v:+.1f}" for v in align) + " | "
                + " ".join(f"{v:.2f}" for v in share) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--configs", default=",".join(CONFIGS), help=f"of {', '.join(CONFIGS)}")
    p.add_argument("--out", default=str(RESULTS / "loss_separability.jsonl"))
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    out = Path(args.out)
    log = JsonlLog(out)
    done = log.done(lambda r: (r["config"], r["seed"]))
    for config in [c for c in args.configs.split(",") if c]:
        if config not in CONFIGS:
            raise SystemExit(f"--configs: unknown config {config!r}; allowed: {sorted(CONFIGS)}")
        for seed in [int(s) for s in args.seeds.split(",") if s]:
            if (config, seed) in done:
                continue
            row = run_one(config, seed)
            row.update(config=config, machine=machine())
            log.append(row)
            last = row["epochs"][-1]
            print(f"{config} seed {seed}: loss AUC {last['loss_auc']:.3f}, alignment AUC "
                  f"{last['align_auc']:.3f} at the last epoch, {row['seconds']:.0f} s", flush=True)
    text = summary(log.rows())
    Path(str(out.with_suffix("")) + ".md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
