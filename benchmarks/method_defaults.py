"""Do the weighting methods' defaults hold on every preset, and which setting is chosen where not?

Each method runs through :func:`reweight_gym.runner.run` (the benchmark's run, seeded like
``env.reset(seed)``) on named experiments of :mod:`reweight_gym.experiments` (default: the three
digits runs with the MLP, ``digits-tiny``, ``digits-cpu`` and ``demo``, at 40% uniform noise).
Every finished run is appended to ``--out`` as its ``RunResult`` row, tagged with the
``--label`` (what is measured, e.g. ``defaults`` or ``meta_lr=1e-4``) and the experiment; a
rerun skips what is there.

``--table`` prints, per experiment, label and method: the final *validation* accuracy (the
clean validation split, what a setting is chosen on), the final test accuracy and its difference
to ``uniform`` (reported, never chosen on), the test accuracy at the best-validation epoch, the
mean weights of noisy and clean samples and the zero-weight share. ``--choose METHOD`` ranks the
labels of a method per experiment by mean final validation accuracy: the choice, made without
the test set. ``--env-overrides`` changes fields of every experiment's config (the rows are
tagged with the experiment's name and the changed fields), e.g. the demo's run on long-tailed
digits without noise, where the imbalance methods (``class_balanced``, ``focal``) are measured.

    python -m benchmarks.method_defaults --label defaults
    python -m benchmarks.method_defaults --experiments demo --methods uniform class_balanced \\
        focal --env-overrides '{"noise_rate": 0.0, "imbalance_type": "long_tail",
        "imbalance_factor": 100.0}'
    python -m benchmarks.method_defaults --label meta_lr=1e-4 --methods mwnet \\
        --method-kwargs '{"mwnet": {"meta_lr": 1e-4}}'
    python -m benchmarks.method_defaults --table
    python -m benchmarks.method_defaults --choose mwnet
"""

from __future__ import annotations

import argparse
import json
from collections import defaultdict
from typing import Any

from benchmarks.common import RESULTS, JsonlLog, markdown_table, mean_std, run_specs

DEFAULT_EXPERIMENTS = ("digits-tiny", "digits-cpu", "demo")
METHODS = ("uniform", "focal", "class_balanced", "spl", "mwnet", "gdw", "fsr",
           "fsr_relabel_mixup", "nrt")
OUT = RESULTS / "method_defaults.jsonl"


def _final_val(r: Any) -> float:
    return r.val_acc_curve[-1]


def _groups(results: list[Any]) -> dict[tuple[str, str, str], list[Any]]:
    out: dict[tuple[str, str, str], list[Any]] = defaultdict(list)
    for r in results:
        out[(r.tags["experiment"], r.tags["label"], r.method)].append(r)
    return out


def _uniform(groups: dict[tuple[str, str, str], list[Any]], experiment: str,
             label: str) -> list[Any] | None:
    """The uniform runs of ``label``, else of any label: uniform takes no keywords, so its run of
    an experiment and seed is the same under every label."""
    if (experiment, label, "uniform") in groups:
        return groups[(experiment, label, "uniform")]
    return next((rs for (e, _, m), rs in sorted(groups.items())
                 if e == experiment and m == "uniform"), None)


def table(results: list[Any]) -> str:
    groups = _groups(results)
    rows = []
    for (experiment, label, method), rs in sorted(groups.items()):
        val = mean_std([100 * _final_val(r) for r in rs])
        test = mean_std([100 * r.final_test_acc for r in rs])
        best = mean_std([100 * r.test_acc_at_best_val for r in rs])
        uni = _uniform(groups, experiment, label)
        by_seed = {r.seed: r.final_test_acc for r in uni or []}
        paired = [100 * (r.final_test_acc - by_seed[r.seed]) for r in rs if r.seed in by_seed]
        delta = f"{mean_std(paired)[0]:+.2f}" if paired and method != "uniform" else "–"
        wn = [r.noisy_weight_mean for r in rs if r.noisy_weight_mean is not None]
        wc = [r.clean_weight_mean for r in rs if r.clean_weight_mean is not None]
        zero = [r.zero_weight_share for r in rs if r.zero_weight_share is not None]
        rows.append([experiment, label, method, ",".join(str(r.seed) for r in rs),
                     f"{val[0]:.2f} ± {val[1]:.2f}", f"{test[0]:.2f} ± {test[1]:.2f}", delta,
                     f"{best[0]:.2f}", f"{mean_std(wn)[0]:.3f}" if wn else "–",
                     f"{mean_std(wc)[0]:.3f}" if wc else "–",
                     f"{mean_std(zero)[0]:.2f}" if zero else "–"])
    return markdown_table(["experiment", "label", "method", "seeds", "final val acc (%)",
                           "final test acc (%)", "test vs uniform (paired)",
                           "test at best-val epoch (%)", "w noisy", "w clean",
                           "zero-weight share"], rows)


def choose(results: list[Any], method: str) -> str:
    """``method``'s labels ranked by mean final validation accuracy (ties: the label measured
    first): per experiment, and over all the experiments every label ran on (the mean of the
    experiments' means: one setting for the whole family of runs)."""
    groups = _groups(results)
    experiments = sorted({e for e, _, m in groups if m == method})
    per: dict[str, dict[str, tuple[float, float, int]]] = defaultdict(dict)
    for (e, label, m), rs in groups.items():
        if m == method:
            per[label][e] = (mean_std([_final_val(r) for r in rs])[0],
                             mean_std([r.final_test_acc for r in rs])[0], len(rs))
    lines = []
    for experiment in [*experiments, "all"]:
        if experiment == "all":
            scores = {label: tuple(float(sum(v[k] for v in by.values()) / len(by))
                                   for k in (0, 1)) + (min(v[2] for v in by.values()),)
                      for label, by in per.items() if set(by) == set(experiments)}
        else:
            scores = {label: by[experiment] for label, by in per.items() if experiment in by}
        ranked = sorted(scores.items(), key=lambda t: -t[1][0])
        for i, (label, (val, test, n)) in enumerate(ranked):
            lines.append([experiment, "chosen" if i == 0 else "", label, n, f"{100 * val:.2f}",
                          f"{100 * test:.2f}"])
    return markdown_table(["experiment", "", "label", "seeds", "final val acc (%)",
                           "final test acc (%)"], lines)


def main(argv: list[str] | None = None) -> int:
    from reweight_gym.experiments import EXPERIMENTS
    from reweight_gym.runner import RunResult, RunSpec

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--label", default="defaults")
    ap.add_argument("--experiments", nargs="+", default=list(DEFAULT_EXPERIMENTS),
                    choices=sorted(EXPERIMENTS))
    ap.add_argument("--methods", nargs="+", default=list(METHODS))
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--method-kwargs", default="{}",
                    help='JSON object {"method": {kwargs}} for this label')
    ap.add_argument("--env-overrides", default="{}",
                    help="JSON object of config fields changed in every experiment")
    ap.add_argument("--out", default=str(OUT))
    ap.add_argument("--table", action="store_true", help="print the table of --out and exit")
    ap.add_argument("--choose", metavar="METHOD", help="rank METHOD's labels on validation")
    args = ap.parse_args(argv)
    log = JsonlLog(args.out)
    if args.table or args.choose:
        results = [RunResult.from_row(r) for r in log.rows()]
        print(choose(results, args.choose) if args.choose else table(results))
        return 0
    method_kwargs: dict[str, dict[str, Any]] = json.loads(args.method_kwargs)
    overrides: dict[str, Any] = json.loads(args.env_overrides)
    jobs = []
    for name in args.experiments:
        exp = EXPERIMENTS[name]
        kw = {**exp.kwargs(), **overrides}
        tag = " ".join([name, *(f"{k}={v}" for k, v in overrides.items())])
        if exp.dataset != "digits":
            from benchmarks.common import cifar10_root

            kw["data_root"] = cifar10_root()
        dataset, preset = kw.pop("dataset"), kw.pop("preset")
        data_root = kw.pop("data_root", None)
        for method in args.methods:
            for seed in args.seeds:
                spec = RunSpec(dataset, "custom", {}, method, seed, preset, data_root, kw,
                               method_kwargs.get(method, {}))
                jobs.append(({"label": args.label, "experiment": tag}, spec))
    run_specs(log, jobs)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
