"""Do the weighting methods' default hyperparameters hold on every preset? (issue 12.3)

Each method runs through ``reweight_gym.baselines.run`` on three digits configurations with 40%
uniform label noise: ``tiny`` (the ``tiny`` preset: 800 images, 8 epochs, 96 iterations), ``cpu``
(the
``cpu`` preset: all 1,097 training digits, 30 epochs, step schedule, 450 iterations) and
``demo`` (``reweight_gym.experiments.DEMO``, the run of ``reweight-gym demo``: 100 epochs,
cosine lr 0.1, no weight decay, 1,500 iterations); ``--configs cifar10-cpu-noaug`` adds CIFAR-10's
``cpu-noaug`` preset (2,340
iterations). Per (label, configuration, method, seed) it records the final and best test
accuracy, the mean weight of noisy and of clean samples over the run, the share of samples whose
last weight is zero and the load of the machine; every finished run is appended to ``--out`` at
once and a rerun skips what is there. ``--table`` prints, per label and configuration, each
method against ``uniform`` of the same label.

``--label`` names what is measured (e.g. the code's defaults before and after a change);
``--method-kwargs '{"mwnet": {"meta_lr": 1e-4}}'`` measures other settings under another label.

    .venv/bin/python benchmarks/method_defaults.py --label defaults \
        --out benchmarks/results/method_defaults.jsonl
    .venv/bin/python benchmarks/method_defaults.py --table \
        --out benchmarks/results/method_defaults.jsonl
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

CONFIG_NAMES = ("tiny", "cpu", "demo")
#: Configurations run only when named (``--configs``): CIFAR-10's ``cpu-noaug`` preset at 40%
#: uniform noise (10-25 min per run at one thread), for the statistics the benchmark's rows lack
#: (the zero-weight share), and ``cpu-cnn``: the digits ``cpu`` run with the small CNN (BatchNorm)
#: in place of the MLP, to tell the network from the data (issue 15, FSR's rule)
EXTRA_CONFIG_NAMES = ("cifar10-cpu-noaug", "cpu-cnn")
METHODS = ("uniform", "spl", "mwnet", "gdw", "fsr", "nrt")
CIFAR_ROOT = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "..",
                          "shared", "datasets", "cifar10-jpeg")


def configs() -> dict[str, dict[str, Any]]:
    from reweight_gym.experiments import DEMO

    return {"tiny": {"preset": "tiny", "noise_rate": 0.4},
            "cpu": {"preset": "cpu", "noise_rate": 0.4},
            "demo": {k: v for k, v in DEMO.kwargs().items() if k not in ("num_stages", "dataset")},
            "cpu-cnn": {"preset": "cpu", "noise_rate": 0.4, "model": "small_cnn",
                        "model_kwargs": {"width": 16}},
            "cifar10-cpu-noaug": {"dataset": "cifar10", "preset": "cpu-noaug",
                                  "noise_rate": 0.4, "data_root": CIFAR_ROOT}}


def load_rows(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    rows = []
    for line in path.read_text().splitlines():
        try:
            rows.append(json.loads(line))
        except json.JSONDecodeError:  # a line cut by a kill: that run is redone
            continue
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    """Per label and configuration: mean over seeds of the final test accuracy, its difference
    to ``uniform`` of the same label and configuration, and the mean weights."""
    import numpy as np

    from reweight_gym.baselines.runner import test_acc_at_best_epoch

    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[(r["label"], r["config"], r["method"])].append(r)
    lines = ["| label | config | method | seeds | final test acc (%) | vs uniform | "
             "at best val epoch (%) | w noisy | w clean | noisy/clean | zero-weight share |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for (label, config, method), rs in sorted(groups.items()):
        acc = np.array([r["final_test_acc"] for r in rs]) * 100
        best = np.array([test_acc_at_best_epoch(r) for r in rs]) * 100
        uni = groups.get((label, config, "uniform"))
        delta = (f"{acc.mean() - 100 * np.mean([u['final_test_acc'] for u in uni]):+.2f}"
                 if uni else "-")
        wn = np.mean([r["noisy_weight_mean"] for r in rs])
        wc = np.mean([r["clean_weight_mean"] for r in rs])
        zero = np.mean([r.get("zero_weight_share", 0.0) for r in rs])
        lines.append(f"| {label} | {config} | {method} | {len(rs)} | {acc.mean():.2f} ± "
                     f"{acc.std(ddof=1) if len(rs) > 1 else 0:.2f} | {delta} | "
                     f"{best.mean():.2f} | {wn:.3f} | {wc:.3f} | {wn / wc:.2f} | {zero:.2f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--label", default="defaults")
    ap.add_argument("--configs", nargs="+", default=list(CONFIG_NAMES),
                    choices=CONFIG_NAMES + EXTRA_CONFIG_NAMES)
    ap.add_argument("--methods", nargs="+", default=list(METHODS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--method-kwargs", default="{}",
                    help='JSON object {"method": {kwargs}} for this label')
    ap.add_argument("--out", default="benchmarks/results/method_defaults.jsonl")
    ap.add_argument("--table", action="store_true", help="print the table of --out and exit")
    args = ap.parse_args(argv)
    out = Path(args.out)
    if args.table:
        print(table(load_rows(out)))
        return
    import torch

    from reweight_gym import baselines
    from reweight_gym.allocator import tune_cpu_allocator

    tune_cpu_allocator()
    torch.set_num_threads(1)
    method_kwargs: dict[str, dict[str, Any]] = json.loads(args.method_kwargs)
    done = {(r["label"], r["config"], r["method"], r["seed"]) for r in load_rows(out)}
    out.parent.mkdir(parents=True, exist_ok=True)
    envs = configs()
    for config in args.configs:
        for method in args.methods:
            for seed in args.seeds:
                if (args.label, config, method, seed) in done:
                    continue
                kwargs = method_kwargs.get(method, {})
                t0 = time.time()
                res = baselines.run(method, seed=seed, method_kwargs=kwargs, **envs[config])
                res.pop("config")
                res.update(label=args.label, config=config, loadavg=os.getloadavg(),
                           command=" ".join(sys.argv))
                with out.open("a") as f:
                    f.write(json.dumps(res) + "\n")
                    f.flush()
                    os.fsync(f.fileno())
                print(f"{args.label} {config} {method} seed {seed}: final "
                      f"{res['final_test_acc']:.4f} w noisy/clean "
                      f"{res['noisy_weight_mean']:.3f}/{res['clean_weight_mean']:.3f} "
                      f"({time.time() - t0:.0f}s)", flush=True)


if __name__ == "__main__":
    main()
