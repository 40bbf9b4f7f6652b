"""FSR's deviations from the reference code, measured (issue 29.13): each variant that does what
the code does against the default, on the demo's run (``reweight_gym.experiments.DEMO``: digits,
40% uniform noise, the MLP), seeds 0, 1, 2.

- ``margin=full`` (``fsr``): the meta-margin under the look-ahead *with* the sample's own
  gradient term, as the code's ``loss_margin = net_cost - meta_net_cost``; the default leaves
  the sample's own term out (``margin="leave_one_out"``).
- ``mixup_weights=mixed`` (``fsr_relabel_mixup``): the weights computed from the mixed batch's
  cost (the code's ``meta_optimize(net_cost)`` on the MixUp batch); the default computes them on
  the un-mixed batch and applies them to the mixed loss (``mixup_weights="unmixed"``).
- ``relabel_ema=logits`` (``fsr_relabel_mixup``): the pseudo label is softmax(logit_norm(EMA of
  the logits) / T), the code's ``compute_pseudo_loss``; the default is the EMA of the softmax
  probabilities (``relabel_ema="probs"``, the paper's eq. 7).

Every finished run is appended to ``benchmarks/results/fsr_deviations/results.jsonl`` as its
``RunResult`` row (tags: ``label``, ``experiment``); a rerun skips what is there. ``table.md``
is written from the stored rows: mean ± sample std of the final validation accuracy (the clean
validation split: what a default is chosen on) and of the final test accuracy (reported, never
chosen on), and the per-seed paired differences of each variant to its method's default.

    python -m benchmarks.fsr_deviations            # run what is missing, then write table.md
    python -m benchmarks.fsr_deviations --table    # only write (and print) table.md
"""

from __future__ import annotations

import argparse
from collections import defaultdict
from typing import Any

from benchmarks.common import RESULTS, JsonlLog, markdown_table, mean_std, run_specs

OUT_DIR = RESULTS / "fsr_deviations"
EXPERIMENT = "demo"
SEEDS = (0, 1, 2)
DEFAULT = "default"
#: method -> [(label, method keywords)]: its default first, then the variants doing what the
#: reference code does
VARIANTS: dict[str, list[tuple[str, dict[str, Any]]]] = {
    "fsr": [(DEFAULT, {}), ("margin=full", {"margin": "full"})],
    "fsr_relabel_mixup": [(DEFAULT, {}), ("mixup_weights=mixed", {"mixup_weights": "mixed"}),
                          ("relabel_ema=logits", {"relabel_ema": "logits"})],
}


def jobs(seeds: tuple[int, ...] = SEEDS) -> list[tuple[dict[str, Any], Any]]:
    """``(tags, RunSpec)`` of every run: per method, the default and its variants, by seed (the
    seeds interleaved so that a partial run already pairs the arms)."""
    from reweight_gym.experiments import EXPERIMENTS
    from reweight_gym.runner import RunSpec

    kw = EXPERIMENTS[EXPERIMENT].kwargs()
    dataset, preset = kw.pop("dataset"), kw.pop("preset")
    out = []
    for seed in seeds:
        for method, variants in VARIANTS.items():
            for label, method_kwargs in variants:
                spec = RunSpec(dataset, "custom", {}, method, seed, preset, None, dict(kw),
                               dict(method_kwargs))
                out.append(({"label": label, "experiment": EXPERIMENT}, spec))
    return out


def _pm(values: list[float], signed: bool = False) -> str:
    m, s = mean_std(values)
    return f"{m:+.2f} ± {s:.2f}" if signed else f"{m:.2f} ± {s:.2f}"


def table(results: list[Any]) -> str:
    """Per method and label: seeds, final val / test accuracy (mean ± sample std, %), and the
    variant's paired per-seed differences to the method's default (val, test; mean ± std)."""
    groups: dict[tuple[str, str], dict[int, Any]] = defaultdict(dict)
    for r in results:
        groups[(r.method, r.tags["label"])][r.seed] = r
    rows = []
    for method, variants in VARIANTS.items():
        base = groups.get((method, DEFAULT), {})
        for label, method_kwargs in variants:
            rs = groups.get((method, label), {})
            if not rs:
                continue
            seeds = sorted(rs)
            val = [100 * rs[s].val_acc_curve[-1] for s in seeds]
            test = [100 * rs[s].final_test_acc for s in seeds]
            paired = [s for s in seeds if s in base]
            if label == DEFAULT or not paired:
                dval = dtest = per_seed = "–"
            else:
                dv = [100 * (rs[s].val_acc_curve[-1] - base[s].val_acc_curve[-1]) for s in paired]
                dt = [100 * (rs[s].final_test_acc - base[s].final_test_acc) for s in paired]
                dval, dtest = _pm(dv, signed=True), _pm(dt, signed=True)
                per_seed = ", ".join(f"{a:+.2f} / {b:+.2f}" for a, b in zip(dv, dt))
            kwargs = ", ".join(f"{k}={v!r}" for k, v in method_kwargs.items()) or "(defaults)"
            rows.append([method, label, kwargs, ",".join(map(str, seeds)), _pm(val), _pm(test),
                         dval, dtest, per_seed])
    return markdown_table(["method", "label", "keywords", "seeds", "final val acc (%)",
                           "final test acc (%)", "Δ val vs default (paired)",
                           "Δ test vs default (paired)", "per-seed Δ val / Δ test"], rows)


HEADER = """# FSR: the reference code's behaviour vs our defaults (issue 29.13)

Written by `python -m benchmarks.fsr_deviations` from `results.jsonl` (one `RunResult` row per
run). Run: the demo's (`reweight_gym.experiments.DEMO`: digits, all training images, 40% uniform
label noise, MLP, 100 epochs of cosine SGD from lr 0.1), seeds 0, 1, 2, one torch thread.
Accuracies in %, final epoch; mean ± sample standard deviation over the seeds; Δ = variant minus
the method's default on the same seed (same data, same noise), mean ± sample std of the paired
differences, then per seed (Δ val / Δ test). The default is chosen on the *validation* accuracy
only; the test accuracy is reported, never chosen on.

- `margin=full`: the meta-margin with the sample's own look-ahead term (the code's), default
  `leave_one_out`.
- `mixup_weights=mixed`: weights from the MixUp batch's cost (the code's), default `unmixed`.
- `relabel_ema=logits`: pseudo labels softmax(logit_norm(EMA of logits) / T), T = 1 (the code's),
  default `probs` (EMA of the softmax probabilities, eq. 7).

"""


def main(argv: list[str] | None = None) -> int:
    from reweight_gym.runner import RunResult

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--table", action="store_true", help="only write table.md from the results")
    ap.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS))
    ap.add_argument("--labels", nargs="+", help="run only these labels (e.g. default)")
    args = ap.parse_args(argv)
    log = JsonlLog(OUT_DIR / "results.jsonl")
    if not args.table:
        todo = [(t, s) for t, s in jobs(tuple(args.seeds))
                if args.labels is None or t["label"] in args.labels]
        run_specs(log, todo)
    results = [RunResult.from_row(r) for r in log.rows()]
    text = HEADER + table(results) + "\n"
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / "table.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
