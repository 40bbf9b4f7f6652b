"""How clean is FSR's proxy dictionary? (issue 15: why FSR's paper behaviour fails on digits)

FSR has no clean meta set: its proxy reward set R is a class-balanced dictionary of training
samples, refreshed every epoch with the samples of best momentum meta-margin (eq. 5). The
method can only weight noisy samples below clean ones if R is cleaner than the data. This script
trains FSR through :func:`reweight_gym.runner.run` on the three digits runs of
``benchmarks/method_defaults.py`` (``digits-tiny``, ``digits-cpu``, ``demo``; 40% uniform noise)
and records after every epoch the share of mislabelled samples in R (the oracle the reference
code logs as ``queue/purity``), next to the noise share of the training data, for:

- ``written_rule``: the paper's written rule and a look-ahead step that follows the learning
  rate (``rule="clip", lookahead_lr="schedule"``, the defaults on an MLP), leave-one-out margin;
- ``paper``: the reference code's rule and fixed step (``rule="clip_code"``,
  ``lookahead_lr=0.1``, the package's defaults), leave-one-out margin;
- ``paper_full_margin``: the same with the literal eq. 5 margin (``margin="full"``);
- ``paper_relabel_mixup``: the full FSR (``fsr_relabel_mixup``: re-labelling and MixUp) with the
  package's defaults; the other variants are FSR-Raw (``fsr``).

Each finished run is appended to ``--out`` (JSON lines) and skipped on a rerun; the summary
printed at the end (and written to ``--out`` with ``.md``) gives per variant and run the
dictionary's mean noise share over the epochs after warm-up against the data's.

    python -m benchmarks.fsr_dictionary [--seeds 0,1,2]
    python -m benchmarks.fsr_dictionary --experiments cifar10-cpu-noaug-noise40 --seeds 0
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from benchmarks.common import RESULTS, JsonlLog, cifar10_root, machine, markdown_table

#: the paper code's rule and fixed step (the defaults on a CNN), and the paper's written rule
#: with a step following the learning rate (the defaults on an MLP), spelled out
PAPER: dict[str, Any] = {"rule": "clip_code", "lookahead_lr": 0.1}
WRITTEN_RULE: dict[str, Any] = {"rule": "clip", "lookahead_lr": "schedule"}
#: variant -> (method, its kwargs)
VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "written_rule": ("fsr", WRITTEN_RULE),
    "paper": ("fsr", PAPER),
    "paper_full_margin": ("fsr", {**PAPER, "margin": "full"}),
    "paper_relabel_mixup": ("fsr_relabel_mixup", PAPER),
}
EXPERIMENTS = ("digits-tiny", "digits-cpu", "demo")


def run_one(experiment: str, method: str, kwargs: dict[str, Any], seed: int) -> dict[str, Any]:
    """One FSR run; after every epoch the dictionary's noise share, the mean weight of noisy and
    of clean samples at their visit in that epoch, and the test accuracy."""
    import torch

    from reweight_gym.baselines.fsr import FSRWeigher
    from reweight_gym.experiments import EXPERIMENTS as NAMED
    from reweight_gym.runner import RunSpec, run

    kw = NAMED[experiment].kwargs()
    if kw["dataset"] != "digits":
        kw["data_root"] = cifar10_root()
    dataset, preset, root = kw.pop("dataset"), kw.pop("preset"), kw.pop("data_root", None)
    spec = RunSpec(dataset, "custom", {}, method, seed, preset, root, kw, kwargs)
    per_epoch: dict[str, list[float]] = {"dictionary_noise_share": [], "noisy_weight_mean": [],
                                         "clean_weight_mean": [], "test_acc": []}
    state: dict[str, Any] = {}

    def on_epoch(end: Any) -> None:
        weigher = end.controller.weigher
        assert isinstance(weigher, FSRWeigher)
        noisy = end.trainer.splits.is_noisy
        w = end.trainer.last_weight.cpu()
        # no dictionary before FSR's first weighted step (the env's warm-up stages): NaN
        per_epoch["dictionary_noise_share"].append(
            float("nan") if weigher.dictionary is None
            else float(noisy[weigher.dictionary.cpu()].float().mean()))
        per_epoch["noisy_weight_mean"].append(float(w[torch.as_tensor(noisy)].mean()))
        per_epoch["clean_weight_mean"].append(float(w[~torch.as_tensor(noisy)].mean()))
        per_epoch["test_acc"].append(end.test_acc)
        state.update(warmup_epochs=weigher.warmup_epochs,
                     dictionary_size=len(weigher.dictionary) if weigher.dictionary is not None
                     else 0, data_noise_share=float(noisy.float().mean()))

    result = run(spec, on_epoch=on_epoch)
    return {"seed": seed, "method": method, "method_kwargs": kwargs, **state, **per_epoch,
            "episode_seed": result.episode_seed, "seconds": result.seconds}


def share_after_warmup(row: dict[str, Any]) -> float:
    """A run's dictionary noise share, mean over the epochs after FSR's warm-up that had a
    dictionary (NaN, or null once stored, before its first weighted step)."""
    import numpy as np

    return float(np.nanmean(np.array(row["dictionary_noise_share"][row["warmup_epochs"]:],
                                     dtype=float)))


def summary(rows: list[dict[str, Any]]) -> str:
    import numpy as np

    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["experiment"], r["variant"]), []).append(r)
    lines = []
    for (experiment, variant), rs in groups.items():
        data = np.mean([r["data_noise_share"] for r in rs])
        after = [share_after_warmup(r) for r in rs]
        last = [r["dictionary_noise_share"][-1] for r in rs]
        acc = [100 * r["test_acc"][-1] for r in rs]
        ratio = [np.nanmean(r["noisy_weight_mean"][r["warmup_epochs"]:])
                 / np.nanmean(r["clean_weight_mean"][r["warmup_epochs"]:]) for r in rs]
        lines.append([experiment, variant, len(rs), f"{data:.3f}",
                      f"{np.mean(after):.3f} ± {np.std(after, ddof=1) if len(rs) > 1 else 0:.3f}",
                      f"{np.mean(last):.3f}", f"{np.mean(acc):.2f}", f"{np.mean(ratio):.3f}"])
    return markdown_table(["experiment", "variant", "seeds", "data noise share",
                           "dictionary noise share after warm-up (mean over epochs)",
                           "at the last epoch", "final test acc (%)", "w noisy / w clean"],
                          lines)


def main(argv: list[str] | None = None) -> int:
    import torch

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--experiments", nargs="+", default=list(EXPERIMENTS))
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--out", default=str(RESULTS / "fsr_dictionary.jsonl"))
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    log = JsonlLog(args.out)
    done = log.done(lambda r: (r["experiment"], r["variant"], r["seed"]))
    for experiment in args.experiments:
        for variant in [v for v in args.variants.split(",") if v]:
            for seed in [int(s) for s in args.seeds.split(",") if s]:
                if (experiment, variant, seed) in done:
                    continue
                row = run_one(experiment, *VARIANTS[variant], seed)
                row.update(experiment=experiment, variant=variant, machine=machine())
                log.append(row)
                print(f"{experiment} {variant} seed {seed}: dictionary noise share after "
                      f"warm-up {share_after_warmup(row):.3f} (data "
                      f"{row['data_noise_share']:.3f}), final acc {row['test_acc'][-1]:.4f}",
                      flush=True)
    text = summary(log.rows())
    Path(str(Path(args.out).with_suffix("")) + ".md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
