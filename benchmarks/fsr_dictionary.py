"""How clean is FSR's proxy dictionary? (issue 15: why FSR's paper behaviour fails on digits)

FSR has no clean meta set: its proxy reward set R is a class-balanced dictionary of training
samples, refreshed every epoch with the samples of best momentum meta-margin (eq. 5). The
method can only weight noisy samples below clean ones if R is cleaner than the data. This script
trains FSR through the same loop as ``reweight_gym.baselines.run`` on the three digits runs of
``benchmarks/method_defaults.py`` (``tiny``, ``cpu``, demo; 40% uniform noise) and records after
every epoch the share of mislabelled samples in R (the oracle the reference code logs as
``queue/purity``), next to the noise share of the training data, for:

- ``written_rule``: the paper's written rule and a look-ahead step that follows the learning
  rate (``rule="clip", lookahead_lr="schedule"``, the package's defaults until 2026-12-05, the
  digits MLP's setting of ``DEMO_METHOD_KWARGS``), leave-one-out margin;
- ``paper``: the reference code's rule and fixed step (``rule="clip_code"``,
  ``lookahead_lr=0.1``, the package's defaults), leave-one-out margin;
- ``paper_full_margin``: the same with the literal eq. 5 margin (``margin="full"``);
- ``paper_relabel_mixup``: the full FSR (``fsr_relabel_mixup``: re-labelling and MixUp) with the
  package's defaults; the other variants are FSR-Raw (``fsr``).

Each finished run is appended to ``--out`` (JSON lines) and skipped on a rerun; the summary
printed at the end (and written to ``--out`` with ``.md``) gives per variant and run the
dictionary's mean noise share over the epochs after warm-up against the data's.

    .venv/bin/python benchmarks/fsr_dictionary.py [--seeds 0,1,2]
    .venv/bin/python benchmarks/fsr_dictionary.py --configs cifar10-cpu-noaug --seeds 0
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from reweight_gym.experiments import FSR_MLP_KWARGS  # noqa: E402

#: the paper code's rule and fixed step (the defaults since 2026-12-05, spelled out so that the
#: stored rows keep their meaning)
PAPER: dict[str, Any] = {"rule": "clip_code", "lookahead_lr": 0.1}
#: variant -> (method, its kwargs)
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "written_rule": ("fsr", FSR_MLP_KWARGS),
    "paper": ("fsr", PAPER),
    "paper_full_margin": ("fsr", {**PAPER, "margin": "full"}),
    "paper_relabel_mixup": ("fsr_relabel_mixup", PAPER),
}


def run_one(config: dict[str, Any], method: str, kwargs: dict[str, Any],
            seed: int) -> dict[str, Any]:
    """One FSR run; the dictionary's noise share and the weights of noisy / clean samples per
    epoch."""
    from reweight_gym.baselines import make_weigher
    from reweight_gym.baselines.fsr import FSRWeigher
    from reweight_gym.config import EnvConfig
    from reweight_gym.training.trainer import DuplicateTrainer

    env = dict(config)
    preset = env.pop("preset", "tiny")
    cfg = EnvConfig.resolve(env.pop("dataset", "digits"), preset, **env)
    weigher = make_weigher(method, cfg, **kwargs)
    assert isinstance(weigher, FSRWeigher)
    trainer = DuplicateTrainer(cfg, seed=seed, with_reference=False, weigher=weigher)
    noisy = trainer.splits.is_noisy
    dict_noise, w_noisy, w_clean, acc = [], [], [], []
    t0 = time.perf_counter()
    for _ in range(cfg.epochs):
        last = trainer.train_iterations(trainer.iters_per_epoch)
        assert weigher.dictionary is not None
        dict_noise.append(float(noisy[weigher.dictionary.cpu()].float().mean()))
        w_noisy.append(last.noisy_weight_mean)
        w_clean.append(last.clean_weight_mean)
        acc.append(trainer.evaluate("test")["acc_target"])
        if last.diverged:
            break
    return {"seed": seed, "method": method, "method_kwargs": kwargs,
            "warmup_epochs": weigher.warmup_epochs,
            "data_noise_share": float(noisy.float().mean()),
            "dictionary_size": len(weigher.dictionary),
            "dictionary_noise_share": dict_noise, "noisy_weight_mean": w_noisy,
            "clean_weight_mean": w_clean, "test_acc": acc,
            "seconds": time.perf_counter() - t0}


def summary(rows: list[dict[str, Any]]) -> str:
    import numpy as np

    lines = ["| run | variant | seeds | data noise share | dictionary noise share after warm-up "
             "(mean over epochs) | at the last epoch | final test acc (%) | w noisy / w clean |",
             "|---|---|---|---|---|---|---|---|"]
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["config"], r["variant"]), []).append(r)
    for (config, variant), rs in groups.items():
        data = np.mean([r["data_noise_share"] for r in rs])
        after = [np.mean(r["dictionary_noise_share"][r["warmup_epochs"]:]) for r in rs]
        last = [r["dictionary_noise_share"][-1] for r in rs]
        acc = [100 * r["test_acc"][-1] for r in rs]
        ratio = [np.nanmean(r["noisy_weight_mean"][r["warmup_epochs"]:])
                 / np.nanmean(r["clean_weight_mean"][r["warmup_epochs"]:]) for r in rs]
        lines.append(f"| {config} | {variant} | {len(rs)} | {data:.3f} | "
                     f"{np.mean(after):.3f} ± {np.std(after):.3f} | {np.mean(last):.3f} | "
                     f"{np.mean(acc):.2f} | {np.mean(ratio):.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    from method_defaults import EXTRA_CONFIG_NAMES, configs, load_rows

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--configs", default="tiny,cpu,demo",
                   help=f"of tiny, cpu, demo, {', '.join(EXTRA_CONFIG_NAMES)}")
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                 "results", "fsr_dictionary.jsonl"))
    args = p.parse_args(argv)
    import torch

    torch.set_num_threads(1)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = load_rows(out)
    done = {(r["config"], r["variant"], r["seed"]) for r in rows}
    all_configs = configs()
    for config in [c for c in args.configs.split(",") if c]:
        for variant in [v for v in args.variants.split(",") if v]:
            for seed in [int(s) for s in args.seeds.split(",") if s]:
                if (config, variant, seed) in done:
                    continue
                row = run_one(all_configs[config], *VARIANTS[variant], seed)
                row.update(config=config, variant=variant, loadavg=list(os.getloadavg()))
                with open(out, "a") as f:
                    f.write(json.dumps(row) + "\n")
                rows.append(row)
                after = row["dictionary_noise_share"][row["warmup_epochs"]:]
                print(f"{config} {variant} seed {seed}: dictionary noise share after warm-up "
                      f"{sum(after) / max(1, len(after)):.3f} (data "
                      f"{row['data_noise_share']:.3f}), final acc {row['test_acc'][-1]:.4f}",
                      flush=True)
    text = summary(rows)
    Path(str(out.with_suffix("")) + ".md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
