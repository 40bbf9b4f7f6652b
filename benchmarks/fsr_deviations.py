"""FSR's deviations from the reference code, measured (issue 29.13): each variant that does what
the code does against ours, on the demo's run (``reweight_gym.experiments.DEMO``: digits,
40% uniform noise, the MLP), seeds 0, 1, 2.

- ``fsr`` (FSR-Raw), ``margin``: ``full`` is the meta-margin under the look-ahead *with* the
  sample's own gradient term, the code's ``loss_margin = net_cost - meta_net_cost``;
  ``leave_one_out`` (ours) leaves the sample's own term out.
- ``fsr_relabel_mixup`` (the full FSR), ``mixup_weights`` x ``relabel_ema``: ``mixed`` computes
  the weights from the MixUp batch's cost (the code's ``meta_optimize(net_cost)`` on the mixed
  batch), ``unmixed`` (ours before issue 29.13) on the un-mixed batch, applied to the MixUp loss;
  ``logits`` takes the pseudo label softmax(logit_norm(EMA of the logits) / T) (the code's
  ``compute_pseudo_loss``), ``probs`` (ours before) the EMA of the softmax probabilities (eq. 7).

Every arm names all its keywords, so that a stored row keeps its meaning when a default changes.

Every finished run is appended to ``benchmarks/results/fsr_deviations/results.jsonl`` as its
``RunResult`` row (tags: ``label``, ``experiment``); a rerun skips what is there. ``table.md``
is written from the stored rows: mean ± sample std of the final validation accuracy (the clean
validation split: what a default is chosen on) and of the final test accuracy (reported, never
chosen on), and the per-seed paired differences of each arm to the arm it is compared with.

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
#: method -> [(label, method keywords, the label it is compared with)]: every arm names its
#: keywords (the defaults may change; the stored rows must keep their meaning), the first arm of
#: each method is what our code did before issue 29.13
ARMS: dict[str, list[tuple[str, dict[str, Any], str | None]]] = {
    "fsr": [("margin=leave_one_out", {"margin": "leave_one_out"}, None),
            ("margin=full", {"margin": "full"}, "margin=leave_one_out")],
    "fsr_relabel_mixup": [
        ("unmixed+probs", {"mixup_weights": "unmixed", "relabel_ema": "probs"}, None),
        ("mixed+probs", {"mixup_weights": "mixed", "relabel_ema": "probs"}, "unmixed+probs"),
        ("unmixed+logits", {"mixup_weights": "unmixed", "relabel_ema": "logits"},
         "unmixed+probs"),
        ("mixed+logits", {"mixup_weights": "mixed", "relabel_ema": "logits"},
         "unmixed+logits"),
    ],
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
        for method, arms in ARMS.items():
            for label, method_kwargs, _ in arms:
                spec = RunSpec(dataset, "custom", {}, method, seed, preset, None, dict(kw),
                               dict(method_kwargs))
                out.append(({"label": label, "experiment": EXPERIMENT}, spec))
    return out


def _pm(values: list[float], signed: bool = False) -> str:
    m, s = mean_std(values)
    return f"{m:+.2f} ± {s:.2f}" if signed else f"{m:.2f} ± {s:.2f}"


def is_default(method: str, method_kwargs: dict[str, Any]) -> bool:
    """Whether ``method_kwargs`` are ``method``'s current defaults on the demo's run."""
    from reweight_gym import baselines
    from reweight_gym.experiments import EXPERIMENTS

    weigher = baselines.make_weigher(method, EXPERIMENTS[EXPERIMENT].config())
    return all(getattr(weigher, k) == v for k, v in method_kwargs.items())


def table(results: list[Any]) -> str:
    """Per method and arm: seeds, final val / test accuracy (mean ± sample std, %), and the
    arm's paired per-seed differences to the arm it is compared with (val, test; mean ± std)."""
    groups: dict[tuple[str, str], dict[int, Any]] = defaultdict(dict)
    for r in results:
        groups[(r.method, r.tags["label"])][r.seed] = r
    rows = []
    for method, arms in ARMS.items():
        for label, method_kwargs, vs in arms:
            rs = groups.get((method, label), {})
            if not rs:
                continue
            base = groups.get((method, vs), {}) if vs else {}
            seeds = sorted(rs)
            val = [100 * rs[s].val_acc_curve[-1] for s in seeds]
            test = [100 * rs[s].final_test_acc for s in seeds]
            paired = [s for s in seeds if s in base]
            if not paired:
                dval = dtest = per_seed = "–"
            else:
                dv = [100 * (rs[s].val_acc_curve[-1] - base[s].val_acc_curve[-1]) for s in paired]
                dt = [100 * (rs[s].final_test_acc - base[s].final_test_acc) for s in paired]
                dval, dtest = _pm(dv, signed=True), _pm(dt, signed=True)
                per_seed = ", ".join(f"{a:+.2f} / {b:+.2f}" for a, b in zip(dv, dt))
            kwargs = ", ".join(f"{k}={v!r}" for k, v in method_kwargs.items())
            rows.append([method, label, kwargs, "yes" if is_default(method, method_kwargs)
                         else "", ",".join(map(str, seeds)), _pm(val), _pm(test), vs or "–",
                         dval, dtest, per_seed])
    return markdown_table(["method", "arm", "keywords", "default now", "seeds",
                           "final val acc (%)", "final test acc (%)", "Δ vs", "Δ val (paired)",
                           "Δ test (paired)", "per-seed Δ val / Δ test"], rows)


HEADER = """# FSR: the reference code's behaviour vs ours (issue 29.13)

Written by `python -m benchmarks.fsr_deviations` from `results.jsonl` (one `RunResult` row per
run, tagged with its arm). Run: the demo's (`reweight_gym.experiments.DEMO`: digits, all training
images, 40% uniform label noise, the MLP, 100 epochs of cosine SGD from lr 0.1, validation split
of 200 clean images: one image is 0.5 points), seeds 0, 1, 2, one torch thread. Accuracies in %,
final epoch; mean ± sample standard deviation over the seeds; Δ = the arm minus the arm named in
"Δ vs" on the same seed (same data, same noise), mean ± sample std of the paired differences,
then per seed (Δ val / Δ test). Every arm names its keywords; "default now" marks the arm that
the current defaults run. Defaults are chosen on the *validation* accuracy only; the test accuracy
is reported, never chosen on.

- `fsr` (FSR-Raw), `margin`: `leave_one_out` (ours: the look-ahead without the sample's own
  term) vs `full` (the code's `net_cost - meta_net_cost`, with it).
- `fsr_relabel_mixup` (the full FSR), `mixup_weights` + `relabel_ema`: `unmixed` (ours: weights
  from the un-mixed batch, applied to the MixUp loss) vs `mixed` (the code's: from the MixUp
  batch's cost); `probs` (ours: EMA of the softmax probabilities, eq. 7) vs `logits` (the code's:
  softmax(logit_norm(EMA of the logits) / T), T = 1). `unmixed+probs` is what we did before
  issue 29.13; `mixed+logits` is the code's pair (compared with `unmixed+logits`: the effect of
  the MixUp weights under the code's relabelling).

"""


def chosen(results: list[Any]) -> str:
    """Per method, the arm with the highest mean final validation accuracy (ties: the earlier
    arm in ``ARMS``): the choice, made without the test set."""
    lines = []
    for method, arms in ARMS.items():
        scores = []
        for label, _, _ in arms:
            val = [r.val_acc_curve[-1] for r in results
                   if r.method == method and r.tags["label"] == label]
            if val:
                scores.append((-mean_std(val)[0], len(scores), label))
        if scores:
            lines.append(f"- `{method}`: `{min(scores)[2]}`")
    return "Highest mean final validation accuracy (the choice):\n\n" + "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    from reweight_gym.runner import RunResult

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--table", action="store_true", help="only write table.md from the results")
    ap.add_argument("--seeds", nargs="+", type=int, default=list(SEEDS))
    ap.add_argument("--labels", nargs="+", help="run only these arms (e.g. margin=full)")
    args = ap.parse_args(argv)
    log = JsonlLog(OUT_DIR / "results.jsonl")
    if not args.table:
        todo = [(t, s) for t, s in jobs(tuple(args.seeds))
                if args.labels is None or t["label"] in args.labels]
        run_specs(log, todo)
    results = [RunResult.from_row(r) for r in log.rows()]
    text = HEADER + table(results) + "\n\n" + chosen(results)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    (OUT_DIR / "table.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
