"""Final and best-epoch test accuracy of the weighting baselines, written as JSON lines.

Every finished run is appended (and flushed) to ``--out`` at once; a rerun skips the
(setting, method, seed) triples already there, so an interrupted benchmark resumes and never
loses finished runs. ``--table`` prints the markdown table of a results file and exits.

Settings: ``noise40`` = 40% uniform label noise (MW-Net's "uniform": to any class), ``lt100`` =
long-tailed imbalance with factor 100 and no noise. Jobs run in the order of ``--plan``: each
item is ``setting:seeds:methods`` (seeds and methods comma-separated).

Example (the run reported in the closing note):

    nohup .venv/bin/python benchmarks/baseline_accuracy.py --dataset cifar10 \
        --data-root /work/shared/datasets/cifar10-jpeg --preset cpu \
        --out benchmarks/results/baseline_accuracy_cifar10_cpu.jsonl \
        --plan noise40:0:uniform,mwnet,gdw,fsr,nrt,focal,class_balanced,spl \
        --plan noise40:1,2:uniform,mwnet,gdw,fsr,nrt,focal,class_balanced,spl \
        --plan lt100:0,1,2:uniform,class_balanced,mwnet,gdw &
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

SETTINGS: dict[str, dict[str, Any]] = {
    "noise40": {"noise_type": "uniform", "noise_rate": 0.4},
    "lt100": {"imbalance_type": "long_tail", "imbalance_factor": 100.0, "noise_rate": 0.0},
}


def parse_plan(items: list[str]) -> list[tuple[str, int, str]]:
    jobs: list[tuple[str, int, str]] = []
    for item in items:
        try:
            setting, seeds, methods = item.split(":")
        except ValueError:
            raise SystemExit(f"invalid --plan {item!r}: expected setting:seeds:methods") from None
        if setting not in SETTINGS:
            raise SystemExit(f"invalid setting {setting!r}: allowed: {', '.join(SETTINGS)}")
        for seed in seeds.split(","):
            for method in methods.split(","):
                jobs.append((setting, int(seed), method))
    return jobs


def load_done(path: Path) -> list[dict[str, Any]]:
    if not path.exists():
        return []
    out = []
    for line in path.read_text().splitlines():
        line = line.strip()
        if line:
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut by a kill: rerun that job
                continue
    return out


def _sd(a: Any) -> str:
    return f" ± {a.std(ddof=1):.2f}" if len(a) > 1 else ""


def table(rows: list[dict[str, Any]]) -> str:
    """Markdown table: mean +- std over seeds of final and best test accuracy (%)."""
    import numpy as np

    from reweight_gym.baselines.runner import test_acc_at_best_epoch

    groups: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for r in rows:
        groups[(r["setting"], r["method"])].append(r)
    lines = ["| setting | method | seeds | final test acc (%) | test acc at best val epoch (%) | "
             "noisy / clean mean weight | weight AUC | minutes/run |",
             "|---|---|---|---|---|---|---|---|"]
    for (setting, method), rs in sorted(groups.items()):
        fin = np.array([r["final_test_acc"] for r in rs]) * 100
        best = np.array([test_acc_at_best_epoch(r) for r in rs]) * 100
        nw = [r["noisy_weight_mean"] for r in rs if r["noisy_weight_mean"] is not None]
        cw = [r["clean_weight_mean"] for r in rs if r["clean_weight_mean"] is not None]
        auc = [r["weight_auc"] for r in rs if r["weight_auc"] is not None]
        wcol = f"{np.mean(nw):.3f} / {np.mean(cw):.3f}" if nw and cw else "-"
        acol = f"{np.mean(auc):.3f}" if auc else "-"
        mins = np.mean([r["seconds"] for r in rs]) / 60
        lines.append(f"| {setting} | {method} | {','.join(str(r['seed']) for r in rs)} | "
                     f"{fin.mean():.2f}{_sd(fin)} | {best.mean():.2f}{_sd(best)} | {wcol} | "
                     f"{acol} | {mins:.1f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dataset", default="cifar10")
    ap.add_argument("--data-root", default=None)
    ap.add_argument("--preset", default="cpu")
    ap.add_argument("--out", default="benchmarks/results/baseline_accuracy.jsonl")
    ap.add_argument("--plan", action="append", default=[])
    ap.add_argument("--set", action="append", default=[],
                    help="extra env keyword, key=value (JSON value), e.g. epochs=10")
    ap.add_argument("--threads", type=int, default=None, help="torch.set_num_threads")
    ap.add_argument("--table", action="store_true", help="print the table of --out and exit")
    args = ap.parse_args(argv)
    out = Path(args.out)
    if args.table:
        print(table(load_done(out)))
        return
    import torch

    from reweight_gym.allocator import tune_cpu_allocator
    from reweight_gym.baselines import run

    tune_cpu_allocator()  # as the reweight-gym command does
    if args.threads:
        torch.set_num_threads(args.threads)

    extra: dict[str, Any] = {}
    for kv in args.set:
        k, v = kv.split("=", 1)
        try:
            extra[k] = json.loads(v)
        except json.JSONDecodeError:
            extra[k] = v
    env: dict[str, Any] = {"dataset": args.dataset, "preset": args.preset, **extra}
    if args.data_root:
        env["data_root"] = args.data_root
    done = {(r["setting"], r["method"], r["seed"]) for r in load_done(out)}
    out.parent.mkdir(parents=True, exist_ok=True)
    for setting, seed, method in parse_plan(args.plan or ["noise40:0:uniform"]):
        if (setting, method, seed) in done:
            continue
        t0 = time.time()
        print(f"== {setting} {method} seed {seed}", flush=True)
        res = run(method, seed=seed, progress=True, **env, **SETTINGS[setting])
        res["setting"] = setting
        res["command"] = " ".join(sys.argv)
        with out.open("a") as f:
            f.write(json.dumps(res) + "\n")
            f.flush()
            os.fsync(f.fileno())
        done.add((setting, method, seed))
        print(f"== done {setting} {method} seed {seed}: final {res['final_test_acc']:.4f} "
              f"at best val epoch {res['test_acc_at_best_val']:.4f} ({time.time() - t0:.0f}s)",
              flush=True)


if __name__ == "__main__":
    main()
