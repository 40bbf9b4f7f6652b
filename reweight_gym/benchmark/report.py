"""Tables and plots from a results directory: Markdown, CSV and PNG figures.

- ``report.md`` / ``results.csv``: per setting, one row per method with mean ± std over seeds of
  final test accuracy, test accuracy at the epoch of best *validation* accuracy (the test set
  chooses nothing; rows written before the validation curve was recorded show "–"), cumulative
  duplicate-network reward, noisy / clean mean weight, ROC AUC of the weights for detecting noisy
  labels, time and memory overhead relative to the uniform run; the best value of each ranked
  column is marked in bold. Under each table, the code and library versions, thread counts and
  devices of its rows (:mod:`reweight_gym.provenance`), with a note when its rows come from
  different code or library versions; the CSV has the versions of each method's rows.
- ``curves_<setting>.png``: test accuracy per epoch (mean over seeds), per method.
- ``weight_vs_loss_<setting>.png``: learned weight as a function of the loss in the last
  weighted stage (MW-Net Fig. 1 style).
- ``loss_gap_<setting>.png``: training-loss gap target - reference per stage (LAW Fig. 3).
- ``minority_weight_<setting>.png``: mean weight of the minority classes vs the others per
  stage (LAW Fig. 4).
- ``rules.md``: NRT's extracted weighting rules.
"""

from __future__ import annotations

import csv
import math
import os
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from reweight_gym import registry
from reweight_gym.benchmark.store import load_rows
from reweight_gym.provenance import UNKNOWN, code_identity, describe
from reweight_gym.runner import RunResult

# (column, title, direction for "best": +1 higher is better, -1 lower, 0 unranked, percent?)
COLUMNS: list[tuple[str, str, int, bool]] = [
    ("final_test_acc", "final test acc (%)", 1, True),
    ("test_acc_at_best_val", "test acc at best-val epoch (%)", 1, True),
    ("cumulative_reward", "cum. DNR reward", 1, False),
    ("noisy_weight_mean", "w noisy", 0, False),
    ("clean_weight_mean", "w clean", 0, False),
    ("weight_auc", "weight AUC", 1, False),
    ("time_overhead", "time x", -1, False),
    ("memory_overhead", "memory x", -1, False),
]


def method_labels(methods: list[str]) -> dict[str, str]:
    """Display names: a registered method or policy is its name; a trained agent's path is
    ``agent:<the shortest tail of its path that no other agent of the list shares>`` (without
    ``.zip``), so that two ``final.zip`` of different runs read ``agent:run_a/final`` and
    ``agent:run_b/final``."""
    known = set(registry.benchmark_names())
    agents = [m for m in dict.fromkeys(methods) if m not in known]
    parts = {m: os.path.normpath(os.path.splitext(m)[0] if m.endswith(".zip") else m)
             .split(os.sep) for m in agents}
    labels = {m: m for m in methods if m in known}
    for m in agents:
        n = 1
        while n < len(parts[m]) and any(
                o != m and parts[o][-n:] == parts[m][-n:] for o in agents):
            n += 1
        labels[m] = "agent:" + "/".join(parts[m][-n:])
    return labels


def summarize(rows: list[RunResult]) -> dict[tuple[str, str, str, str], dict[str, Any]]:
    """Group rows by (dataset, preset, suite, setting) then method: mean, sample standard
    deviation over the seeds (ddof=1, as the agents' protocol; 0 for one seed) and n per
    column."""
    groups: dict[tuple[str, str, str, str], dict[str, list[RunResult]]] = defaultdict(
        lambda: defaultdict(list))
    for r in rows:
        groups[(r.dataset, r.preset, r.suite, r.setting_id)][r.method].append(r)
    out: dict[tuple[str, str, str, str], dict[str, Any]] = {}
    for g, by_method in groups.items():
        table: dict[str, Any] = {}
        for method, rs in by_method.items():
            stats: dict[str, Any] = {"n": len(rs), "seeds": sorted(r.seed for r in rs)}
            for col, _, _, _ in COLUMNS:
                vals = [float(r.value(col)) for r in rs if r.value(col) is not None]
                stats[col] = ((float(np.mean(vals)), float(np.std(vals, ddof=1))
                               if len(vals) > 1 else 0.0) if vals else None)
            table[method] = stats
        out[g] = table
    return out


def _best(table: dict[str, Any], col: str, direction: int) -> float | None:
    vals = [s[col][0] for s in table.values() if s.get(col) is not None]
    if not vals or direction == 0:
        return None
    return max(vals) if direction > 0 else min(vals)


def _fmt(v: tuple[float, float] | None, pct: bool, bold: bool) -> str:
    if v is None:
        return "–"
    m, s = v
    text = f"{100 * m:.2f} ± {100 * s:.2f}" if pct else f"{m:.3f} ± {s:.3f}"
    return f"**{text}**" if bold else text


def markdown_table(table: dict[str, Any], labels: dict[str, str] | None = None) -> str:
    head = "| method | seeds | " + " | ".join(t for _, t, _, _ in COLUMNS) + " |"
    sep = "|---|---|" + "---|" * len(COLUMNS)
    lines = [head, sep]
    bests = {c: _best(table, c, d) for c, _, d, _ in COLUMNS}
    for method in _order(table):
        s = table[method]
        cells = []
        for col, _, _, pct in COLUMNS:
            v, best = s.get(col), bests[col]
            bold = v is not None and best is not None and math.isclose(
                v[0], best, rel_tol=0, abs_tol=1e-12)
            cells.append(_fmt(v, pct, bold))
        label = (labels or {}).get(method, method)
        lines.append(f"| {label} | {s['n']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def provenance_lines(rows: list[RunResult], labels: dict[str, str]) -> list[str]:
    """Markdown lines on the software of ``rows``: the code and library versions (a note when
    they are not all the same), the processors, torch thread counts and devices."""
    by_identity: dict[tuple[str, ...], list[RunResult]] = defaultdict(list)
    for r in rows:
        by_identity[code_identity(r.known_provenance())].append(r)

    def values(name: str) -> str:
        seen = sorted({str(r.known_provenance().get(name, UNKNOWN)) for r in rows})
        return ", ".join(seen)

    extra = (f"processor {values('cpu')}; torch threads {values('torch_threads')}; device "
             f"{values('device')}")
    if len(by_identity) == 1:
        lines = [f"Software: {describe(next(iter(by_identity)))}; {extra}."]
    else:
        lines = ["**Note: the rows of this table come from different code or library "
                 "versions**; compare them with care:"]
        for ident, rs in sorted(by_identity.items()):
            runs = ", ".join(sorted({f"{labels[r.method]} s{r.seed}" for r in rs}))
            lines.append(f"- {describe(ident)}: {runs}")
        lines.append(f"\n{extra[0].upper()}{extra[1:]}.")
    if any("val_acc_curve" in r.absent for r in rows):
        lines.append("\n\"–\" at best-val epoch: rows written before the validation curve was "
                     "recorded (their former best-epoch figure chose the epoch on the test set, "
                     "an oracle, and is not shown).")
    return lines


def _software(rows: list[RunResult]) -> str:
    """One CSV cell: the code and library versions of ``rows`` (``mixed: a | b`` if several)."""
    idents = sorted({code_identity(r.known_provenance()) for r in rows})
    text = " | ".join(describe(i) for i in idents)
    return text if len(idents) == 1 else f"mixed: {text}"


def _order(table: dict[str, Any]) -> list[str]:
    return sorted(table, key=lambda m: (m != "uniform", m))


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.=-]+", "_", text)


def write_report(directory: str, plots: bool = True) -> dict[str, Any]:
    """Write ``report.md``, ``results.csv``, plots and ``rules.md`` into ``directory``.

    Returns ``{"markdown": str, "summary": ..., "files": [...]}``.
    """
    d = Path(directory)
    rows = load_rows(d)
    if not rows:
        raise ValueError(f"no results in {d / 'results.jsonl'}")
    summary = summarize(rows)
    labels = method_labels([r.method for r in rows])
    files: list[str] = []
    md = ["# reweight-gym benchmark report", ""]
    by_group: dict[tuple[str, str, str, str], list[RunResult]] = defaultdict(list)
    for r in rows:
        by_group[(r.dataset, r.preset, r.suite, r.setting_id)].append(r)
    with open(d / "results.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["dataset", "preset", "suite", "setting", "method", "seeds"]
                   + [f"{c}_{k}" for c, _, _, _ in COLUMNS for k in ("mean", "std")]
                   + ["software"])
        for (dataset, preset, suite, sid), table in sorted(summary.items()):
            for method in _order(table):
                s = table[method]
                vals: list[Any] = []
                for col, _, _, _ in COLUMNS:
                    vals += list(s[col]) if s.get(col) is not None else ["", ""]
                mine = [r for r in by_group[(dataset, preset, suite, sid)]
                        if r.method == method]
                w.writerow([dataset, preset, suite, sid, labels[method], s["n"]] + vals
                           + [_software(mine)])
    files.append(str(d / "results.csv"))
    for g in sorted(summary):
        dataset, preset, suite, sid = g
        md += [f"## {dataset} · {suite} · {sid} · preset {preset}", "",
               markdown_table(summary[g], labels), "", *provenance_lines(by_group[g], labels),
               ""]
        if plots:
            for f in _plots(d, _slug(f"{dataset}_{suite}_{sid}"), by_group[g], labels):
                files.append(str(f))
                md.append(f"![{f.stem}]({f.name})")
            md.append("")
    rules = [(r.key, r.rules) for r in rows if r.rules]
    if rules:
        text = "# Weighting rules extracted from NRT\n\n" + "\n\n".join(
            f"## {k}\n\n```\n{t}\n```" for k, t in rules)
        (d / "rules.md").write_text(text)
        files.append(str(d / "rules.md"))
        md += ["See [rules.md](rules.md) for NRT's extracted weighting rules.", ""]
    markdown = "\n".join(md)
    (d / "report.md").write_text(markdown)
    files.append(str(d / "report.md"))
    return {"markdown": markdown, "summary": summary, "files": files}


def _mean_curves(rs: list[Any], key: str) -> np.ndarray | None:
    """The mean over ``rs`` (results, or dicts) of their list ``key``, cut to the shortest."""
    curves = [c for c in (r.get(key) if isinstance(r, dict) else getattr(r, key) for r in rs)
              if c]
    if not curves:
        return None
    n = min(len(c) for c in curves)
    arr = np.array([[np.nan if v is None else v for v in c[:n]] for c in curves], dtype=float)
    return np.nanmean(arr, axis=0)


def _plots(d: Path, slug: str, rows: list[RunResult], labels: dict[str, str]) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_method: dict[str, list[RunResult]] = defaultdict(list)
    for r in rows:
        by_method[r.method].append(r)
    methods = sorted(by_method, key=lambda m: (m != "uniform", m))
    out: list[Path] = []

    def figure(name: str, title: str, xlabel: str, ylabel: str, draw: Any) -> None:
        fig, ax = plt.subplots(figsize=(6.4, 4.2))
        drew = False
        for m in methods:
            drew |= bool(draw(ax, m, by_method[m]))
        if not drew:
            plt.close(fig)
            return
        ax.set_title(title, fontsize=9)
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=7, ncol=2)
        fig.tight_layout()
        path = d / f"{name}_{slug}.png"
        fig.savefig(path, dpi=120)
        plt.close(fig)
        out.append(path)

    def curves(ax: Any, m: str, rs: list[RunResult]) -> bool:
        y = _mean_curves(rs, "test_acc_curve")
        if y is None:
            return False
        ax.plot(np.arange(1, len(y) + 1), 100 * y, label=labels[m])
        return True

    def weight_loss(ax: Any, m: str, rs: list[RunResult]) -> bool:
        # loss-quantile bins: average bin k over seeds (x = mean loss, y = mean weight)
        xs = _mean_curves([r.weight_vs_loss for r in rs], "loss")
        ys = _mean_curves([r.weight_vs_loss for r in rs], "weight")
        if xs is None or ys is None:
            return False
        ax.plot(xs, ys, marker=".", label=labels[m])
        return True

    def gap(ax: Any, m: str, rs: list[RunResult]) -> bool:
        if m == "uniform":
            return False
        y = _mean_curves(rs, "stage_loss_gap")
        if y is None:
            return False
        ax.plot(np.arange(1, len(y) + 1), y, marker="o", label=labels[m])
        return True

    def minority(ax: Any, m: str, rs: list[RunResult]) -> bool:
        series = []
        for r in rs:
            mins = set(r.minority_classes or [])
            counts = r.class_counts
            if not mins or not counts or max(counts) < 2 * min(counts):  # not imbalanced
                continue
            row = []
            for per_class in r.stage_class_weight_mean:
                a = [v for k, v in enumerate(per_class) if k in mins and v is not None]
                b = [v for k, v in enumerate(per_class) if k not in mins and v is not None]
                row.append((np.mean(a) if a else np.nan) / (np.mean(b) if b else np.nan))
            series.append(row)
        if not series:
            return False
        n = min(len(s) for s in series)
        y = np.nanmean(np.array([s[:n] for s in series], dtype=float), axis=0)
        ax.plot(np.arange(1, n + 1), y, marker="o", label=labels[m])
        return True

    where = f"{rows[0].dataset} · {rows[0].setting_id}"
    figure("curves", f"test accuracy (mean over seeds)\n{where}", "epoch",
           "test accuracy (%)", curves)
    figure("weight_vs_loss", f"learned weight vs loss, last weighted stage\n{where}",
           "training loss", "mean weight", weight_loss)
    figure("loss_gap", f"training-loss gap target − reference (LAW Fig. 3)\n{where}",
           "stage", "loss gap", gap)
    figure("minority_weight", f"minority / other classes mean weight (LAW Fig. 4)\n{where}",
           "stage", "weight ratio", minority)
    return out
