"""What the cheaper meta steps cost and what they keep: MW-Net and GDW exact, every k iterations
(``meta_every``), through the last layer, first order (``meta_grad``; derived in
``reweight_gym.baselines.meta``), against plain training.

A *setting* is a method and its keywords, written ``"mwnet meta_every=10"`` (:data:`SETTINGS`).

Cost (the default mode): on one experiment (default the CIFAR-10 ``cpu-noaug`` small CNN, data
from :func:`benchmarks.common.cifar10_root`), every setting drives its own trainer (same seed,
same data) in this process, and their per-iteration times are measured interleaved in rounds,
relative to plain training's in the same round (``benchmarks.baseline_overhead``'s
:func:`~benchmarks.baseline_overhead.interleaved_ratios`; ``--iters`` per round must be a
multiple of every ``meta_every``, so that each round holds the same number of meta steps); the
extra peak memory of training comes from a fresh process per setting
(:func:`~benchmarks.baseline_overhead.extra_peak_bytes`; the first iteration takes a meta step
in every setting, so ``meta_every`` lowers the time, not the peak). Written to
``<out>/cost_<experiment>.json`` and ``.md``.

``--accuracy``: full training runs (``--seeds``, default 0 1 2) of every setting on the
experiments (default the CIFAR-10 ``cpu-noaug`` runs at 40% uniform noise and 40% pair flip)
through :func:`benchmarks.common.run_specs` (resumable, ``<out>/accuracy.jsonl``; ``--reuse``
copies the rows of results directories that ran the same computation), and the
cost/accuracy table ``<out>/accuracy.md``: time and peak memory relative to plain training
(from the cost file of the experiment, else of ``--cost``: the cost does not depend on the
corruption), the final and the best-validation-epoch test accuracy, the final validation
accuracy, and the share of exact MW-Net's gain over uniform that each setting keeps, on each of
the three (paired by seed). A default may only be chosen on the validation share.

    python -m benchmarks.meta_cost --threads 1
    python -m benchmarks.meta_cost --accuracy --threads 1
    python -m benchmarks.meta_cost --accuracy --threads 1 --seeds 3 4 5 \
        --reuse benchmarks/results/cifar10-cpu-noaug/{noise40,pairflip40}-heldout
    python -m benchmarks.meta_cost --accuracy --experiment digits-tiny --seeds 0
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

from benchmarks.baseline_overhead import child_extra_bytes, extra_peak_bytes, interleaved_ratios
from benchmarks.common import REPO, RESULTS, JsonlLog, markdown_table, mean_std, run_specs

PLAIN = "uniform"
EXACT = "mwnet"
SETTINGS: tuple[str, ...] = (
    PLAIN,
    EXACT,
    "mwnet meta_every=5",
    "mwnet meta_every=10",
    "mwnet meta_every=20",
    "mwnet meta_grad=last_layer",
    "mwnet meta_grad=first_order",
    "mwnet meta_every=10 meta_grad=last_layer",
    "gdw",
    "gdw meta_every=10",
    "gdw meta_grad=last_layer",
    "gdw meta_grad=first_order",
)
COST_EXPERIMENT = "cifar10-cpu-noaug-noise40"
ACCURACY_EXPERIMENTS = ("cifar10-cpu-noaug-noise40", "cifar10-cpu-noaug-pairflip40")
OUT = RESULTS / "meta_cost"
#: the issue's goal: at most this time relative to plain training ...
GOAL_TIME = 1.5
#: ... keeping at least this share of exact MW-Net's gain over uniform on every experiment
GOAL_SHARE = 0.8


def parse_setting(setting: str) -> tuple[str, dict[str, Any]]:
    """``"mwnet meta_every=10"`` -> ``("mwnet", {"meta_every": 10})`` (numbers read as numbers,
    as the benchmark's ``--settings`` filters)."""
    from reweight_gym.benchmark.suites import parse_filters

    method, *pairs = setting.split()
    try:
        return method, parse_filters([",".join(pairs)])[0]
    except ValueError:
        raise SystemExit(f"invalid setting {setting!r}: keywords are key=value") from None


def setting_label(method: str, kwargs: dict[str, Any]) -> str:
    """The inverse of :func:`parse_setting`."""
    return " ".join([method, *(f"{k}={v}" for k, v in kwargs.items())])


def experiment_kwargs(name: str) -> dict[str, Any]:
    """The experiment's ``EnvConfig.resolve`` keywords (``dataset``, ``preset`` included), with
    CIFAR's directory."""
    from reweight_gym.experiments import EXPERIMENTS

    kw = EXPERIMENTS[name].kwargs()
    if kw["dataset"] != "digits":
        from benchmarks.common import cifar10_root

        kw["data_root"] = cifar10_root()
    return kw


def make_trainer(setting: str, experiment: str, splits: Any = None) -> Any:
    """A single-network trainer (seed 0) of ``setting`` on ``experiment``."""
    from reweight_gym.baselines import make_weigher
    from reweight_gym.config import EnvConfig
    from reweight_gym.training.trainer import DuplicateTrainer

    kw = experiment_kwargs(experiment)
    cfg = EnvConfig.resolve(kw.pop("dataset"), kw.pop("preset"), **kw)
    method, kwargs = parse_setting(setting)
    return DuplicateTrainer(cfg, splits=splits, seed=0, with_reference=False,
                            weigher=make_weigher(method, cfg, **kwargs))


# ---------------------------------------------------------------------------- cost
def check_rounds(settings: list[str], iters: int) -> None:
    """Refuse a round length that is not a multiple of a setting's ``meta_every``."""
    for setting in settings:
        k = int(parse_setting(setting)[1].get("meta_every", 1))
        if iters % k:
            raise SystemExit(f"invalid --iters {iters}: not a multiple of meta_every={k} of "
                             f"{setting!r} (a round would hold a varying number of meta steps)")


def measure_cost(experiment: str, settings: list[str], rounds: int, iters: int,
                 memory_iters: int, threads: int) -> dict[str, Any]:
    """Time (interleaved, this process) and extra peak memory (a process per setting) of every
    setting, relative to plain training (``settings[0]``)."""
    check_rounds(settings, iters)
    first = make_trainer(settings[0], experiment)
    cfg = first.cfg
    trainers = {settings[0]: first, **{s: make_trainer(s, experiment, first.splits)
                                       for s in settings[1:]}}
    load_before = os.getloadavg()
    rows = interleaved_ratios({s: tr.train_iterations for s, tr in trainers.items()}, rounds,
                              iters, plain=PLAIN)
    load_after = os.getloadavg()
    del trainers, first
    for s in settings:
        extra = child_extra_bytes([sys.executable, "-m", "benchmarks.meta_cost", "--memory-child",
                                   s, "--experiment", experiment, "--memory-iters",
                                   str(memory_iters), "--threads", str(threads)], cwd=REPO)
        rows[s]["extra_mb"] = extra / 2**20
    for s in settings:
        rows[s]["memory_ratio"] = rows[s]["extra_mb"] / max(1e-9, rows[PLAIN]["extra_mb"])
    return {"experiment": experiment, "command": " ".join(sys.argv), "threads": threads,
            "rounds": rounds, "iters": iters, "memory_iters": memory_iters,
            "model": cfg.model, "model_kwargs": cfg.model_kwargs, "batch_size": cfg.batch_size,
            "loadavg": {"before": load_before, "after": load_after}, "settings": rows}


def cost_table(report: dict[str, Any]) -> str:
    rows = report["settings"]
    exact = rows.get(EXACT, {}).get("time_ratio", math.nan)
    body = [[s, f"{r['seconds_per_iter']:.3f}", f"{r['time_ratio']:.2f}",
             f"{r['time_ratio'] / exact:.2f}", f"{r['extra_mb']:.1f}", f"{r['memory_ratio']:.2f}"]
            for s, r in rows.items()]
    head = (f"{report['experiment']}: {report['model']} {report['model_kwargs']}, batch "
            f"{report['batch_size']}, {report['threads']} thread(s); time: median of "
            f"{report['rounds']} interleaved rounds x {report['iters']} iterations; memory: extra "
            f"peak RSS of {report['memory_iters']} iterations in a fresh process (the first takes "
            "a meta step in every setting: meta_every lowers the time, not the peak); load "
            f"average before {report['loadavg']['before']}, after {report['loadavg']['after']}\n\n")
    return head + markdown_table(["setting", "s/iter", "time x plain", "time x exact MW-Net",
                                  "extra MB", "memory x plain"], body)


# ---------------------------------------------------------------------------- accuracy
def gain_share(results: dict[str, dict[int, float]], setting: str) -> tuple[float, str]:
    """The setting's gain over uniform as a share of exact MW-Net's, on the seeds all three
    have (paired): (share, table cell); NaN where there is none (no runs, or MW-Net gains
    nothing)."""
    seeds = sorted(set(results.get(setting, {})) & set(results.get(PLAIN, {}))
                   & set(results.get(EXACT, {})))
    if not seeds:
        return math.nan, "–"
    gain = sum(results[setting][s] - results[PLAIN][s] for s in seeds)
    exact = sum(results[EXACT][s] - results[PLAIN][s] for s in seeds)
    if exact <= 0:
        return math.nan, f"n/a (MW-Net {exact / len(seeds):+.2f})"
    return gain / exact, f"{100 * gain / exact:.0f}%"


def load_cost(out: Path, experiment: str, fallback: Path) -> dict[str, Any]:
    """Cost rows for ``experiment``: its own cost file, else ``fallback``'s, else none."""
    for path in (out / f"cost_{experiment}.json", fallback):
        if path.exists():
            return json.loads(path.read_text())["settings"]
    return {}


def accuracy_report(results: list[Any], experiments: list[str], settings: list[str],
                    out: Path, cost_file: Path) -> str:
    metrics = {"final test": lambda r: r.final_test_acc,
               "best-val test": lambda r: r.test_acc_at_best_val,
               "final val": lambda r: r.val_acc_curve[-1]}
    sections = []
    kept: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    costs: dict[str, list[float]] = defaultdict(list)
    for experiment in experiments:
        cost = load_cost(out, experiment, cost_file)
        by: dict[str, dict[str, dict[int, float]]] = {m: defaultdict(dict) for m in metrics}
        seconds: dict[str, dict[int, float]] = defaultdict(dict)
        for r in results:
            if r.tags.get("experiment") == experiment:
                for m, get in metrics.items():
                    by[m][r.tags["setting"]][r.seed] = 100 * get(r)
                seconds[r.tags["setting"]][r.seed] = r.seconds or math.nan
        rows = []
        for s in settings:
            if s not in by["final test"]:
                continue
            c = cost.get(s)
            costs[s].append(c["time_ratio"] if c else math.nan)
            paired = [seconds[s][k] / seconds[PLAIN][k] for k in seconds[s] if k in seconds[PLAIN]]
            cells = [s, ",".join(str(k) for k in sorted(by["final test"][s])),
                     f"{c['time_ratio']:.2f}" if c else "–",
                     f"{c['memory_ratio']:.2f}" if c else "–",
                     f"{mean_std(paired)[0]:.2f}" if paired else "–"]
            cells += [f"{mean:.2f} ± {std:.2f}" for mean, std in
                      (mean_std(list(by[m][s].values())) for m in metrics)]
            for m in metrics:
                value, cell = gain_share(by[m], s)
                kept[s][m].append(value)
                cells.append(cell)
            rows.append(cells)
        sections.append(f"## {experiment}\n\n" + markdown_table(
            ["setting", "seeds", "time x plain", "peak memory x plain", "run time x uniform",
             *(f"{m} acc (%)" for m in metrics),
             *(f"share of exact MW-Net's gain: {m}" for m in metrics)], rows))
    return "\n\n".join(["# Cheaper meta steps: cost and accuracy", REPORT_NOTES.format(
        cost=cost_file.name), *sections, goal_section(settings, costs, kept, len(experiments))]) \
        + "\n"


REPORT_NOTES = (
    "Time and memory: the cost mode's interleaved measurement (same process, relative to plain "
    "training in the same round; peak memory in a fresh process), from `cost_<experiment>.json` "
    "or `{cost}`; \"run time x uniform\": whole runs' wall-clock (evaluation included; other "
    "load on the machine distorts it). Shares are paired by seed: the setting's mean gain over "
    "uniform divided by exact MW-Net's. A default is chosen on the final validation share only; "
    "the test columns are reported, never chosen on.")


def goal_section(settings: list[str], costs: dict[str, list[float]],
                 kept: dict[str, dict[str, list[float]]], n_experiments: int) -> str:
    """The issue's goal per setting (at most ``GOAL_TIME`` x plain, at least ``GOAL_SHARE`` of
    exact MW-Net's gain on final test and final validation accuracy, on every experiment) and
    the choice a default may be made by: among the settings within the time, the one keeping
    the largest share of the gain on validation (its smallest over the experiments)."""

    def smallest(values: list[float]) -> float:
        ok = len(values) == n_experiments and not any(math.isnan(v) for v in values)
        return min(values) if ok else math.nan

    rows, candidates = [], []
    for s in settings:
        if s in (PLAIN, EXACT) or s not in kept:
            continue
        time_x = max(costs[s]) if costs[s] and not any(map(math.isnan, costs[s])) else math.nan
        test, val = smallest(kept[s]["final test"]), smallest(kept[s]["final val"])
        met = time_x <= GOAL_TIME and test >= GOAL_SHARE and val >= GOAL_SHARE
        rows.append([s, "–" if math.isnan(time_x) else f"{time_x:.2f}",
                     *("–" if math.isnan(v) else f"{100 * v:.0f}%" for v in (test, val)),
                     "yes" if met else "no"])
        if time_x <= GOAL_TIME and val >= GOAL_SHARE:
            candidates.append((-val, time_x, s))
    choice = (f"`{min(candidates)[2]}` (the largest smallest validation share among the "
              f"settings at most {GOAL_TIME}x plain training that keep {GOAL_SHARE:.0%} of it)"
              if candidates else "none: no setting within the time keeps enough of the gain on "
              "validation; exact MW-Net stays the default")
    return (f"## Goal: at most {GOAL_TIME}x plain training keeping at least {GOAL_SHARE:.0%} of "
            "exact MW-Net's gain on every experiment\n\n" + markdown_table(
                ["setting", "time x plain", "smallest share kept: final test",
                 "smallest share kept: final val", "goal met"], rows)
            + f"\n\nChosen on validation: {choice}.")


def run_accuracy(experiments: list[str], settings: list[str], seeds: list[int], out: Path,
                 cost_file: Path, threads: int, reuse: list[str] | None = None) -> str:
    """The accuracy runs (resumable) and the table; ``reuse``: results directories whose rows
    of the same computation are copied instead of run (:func:`benchmarks.common.reuse_rows`)."""
    from benchmarks.common import reuse_rows
    from reweight_gym.runner import RunSpec

    jobs = []
    for experiment in experiments:
        kw = experiment_kwargs(experiment)
        dataset, preset, data_root = kw.pop("dataset"), kw.pop("preset"), kw.pop("data_root",
                                                                                 None)
        for setting in settings:
            method, kwargs = parse_setting(setting)
            for seed in seeds:
                spec = RunSpec(dataset, "custom", {}, method, seed, preset, data_root, kw, kwargs)
                jobs.append(({"setting": setting, "experiment": experiment}, spec))
    log = JsonlLog(out / "accuracy.jsonl")
    if reuse:
        copied = reuse_rows(log, jobs, reuse, {parse_setting(s)[0] for s in settings})
        print(f"copied {copied} stored rows", flush=True)
    results = run_specs(log, jobs, threads)
    text = accuracy_report(results, experiments, settings, out, cost_file)
    (out / "accuracy.md").write_text(text)
    return text


# ---------------------------------------------------------------------------- main
def main(argv: list[str] | None = None) -> int:
    from reweight_gym.experiments import EXPERIMENTS

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--accuracy", action="store_true",
                    help="full training runs and the cost/accuracy table")
    ap.add_argument("--experiment", nargs="+", choices=sorted(EXPERIMENTS), default=None,
                    help=f"default: {COST_EXPERIMENT} (cost), "
                         f"{' '.join(ACCURACY_EXPERIMENTS)} (--accuracy)")
    ap.add_argument("--settings", nargs="+", default=list(SETTINGS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--rounds", type=int, default=10)
    ap.add_argument("--iters", type=int, default=20, help="iterations per setting and round")
    ap.add_argument("--memory-iters", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--cost", default=None,
                    help=f"cost file for experiments without their own (default: "
                         f"<out>/cost_{COST_EXPERIMENT}.json)")
    ap.add_argument("--reuse", nargs="+", default=None, metavar="DIR",
                    help="--accuracy: results directories whose runs of the same method, "
                         "keywords, seed and config are copied, not rerun")
    ap.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    import torch

    from reweight_gym.allocator import tune_cpu_allocator
    from reweight_gym.baselines import make_weigher

    allocator = tune_cpu_allocator()
    torch.set_num_threads(args.threads)
    settings = [PLAIN] + [s for s in args.settings if s != PLAIN]
    for s in settings:  # a bad setting fails before any run
        try:
            method, kwargs = parse_setting(s)
            make_weigher(method, None, **kwargs)
        except ValueError as e:
            raise SystemExit(f"invalid setting {s!r}: {e}") from None
    if args.memory_child:
        experiment = (args.experiment or [COST_EXPERIMENT])[0]
        tr = make_trainer(args.memory_child, experiment)
        print(json.dumps({"extra_bytes": extra_peak_bytes(
            lambda: tr.train_iterations(args.memory_iters))}))
        return 0
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.accuracy:
        cost_file = Path(args.cost) if args.cost else out / f"cost_{COST_EXPERIMENT}.json"
        print(run_accuracy(args.experiment or list(ACCURACY_EXPERIMENTS), settings, args.seeds,
                           out, cost_file, args.threads, args.reuse))
        return 0
    for experiment in args.experiment or [COST_EXPERIMENT]:
        report = measure_cost(experiment, settings, args.rounds, args.iters, args.memory_iters,
                              args.threads)
        report["allocator"] = allocator
        (out / f"cost_{experiment}.json").write_text(json.dumps(report, indent=1) + "\n")
        text = cost_table(report)
        (out / f"cost_{experiment}.md").write_text(text + "\n")
        print(text, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
