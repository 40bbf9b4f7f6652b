"""Rewrite README.md's generated blocks from the stored results.

Between markers ``<!-- NAME:start -->`` and ``<!-- NAME:end -->`` of README.md (never edit them
by hand):

- ``headline-table``: from ``benchmarks/results/demo/report.md`` (the rows of ``make demo``);
- ``presets-cost``: the cost of one episode of every preset, the first table of
  ``benchmarks/results/presets/report.md`` (``python -m benchmarks.presets --cost``);
- ``agent-training``: the wall time of training an agent on the training instance set, from
  ``benchmarks/results/transfer/training.jsonl`` (``python -m benchmarks.transfer --steps
  train``).

::

    python docs/gen_readme_table.py           # rewrite README.md
    python docs/gen_readme_table.py --check   # exit 1 if README.md is out of date

``tests/test_docs.py`` fails when the README differs from what this script writes. The
documentation includes the same tables (``docs/_gen.py``).
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = Path("README.md")
REPORT = Path("benchmarks/results/demo/report.md")
PRESETS_REPORT = Path("benchmarks/results/presets/report.md")
TRAINING = Path("benchmarks/results/transfer/training.jsonl")
START = "<!-- headline-table:start -->"
END = "<!-- headline-table:end -->"
#: report column -> headline column; the other columns are left out
COLUMNS = {
    "method": "method",
    "final test acc (%)": "final test acc (%)",
    "test acc at best-val epoch (%)": "test acc at best-val epoch (%)",
    "cum. DNR reward": "return (cum. DNR reward)",
    "w noisy": "w noisy",
    "w clean": "w clean",
}
LABELS = {"agent:agent": "LAW-DDPG agent (SB3, package defaults, 250 episodes)"}


def _cells(line: str) -> list[str]:
    return [c.strip() for c in line.strip().strip("|").split("|")]


def _mean_only(cell: str) -> str:
    """``0.253 ± 0.020`` -> ``0.253`` (bold kept)."""
    bold = cell.startswith("**")
    value = cell.strip("*").split("±")[0].strip()
    return f"**{value}**" if bold else value


def _one_decimal(cell: str) -> str:
    """``86.378 ± 37.105`` -> ``86.4 ± 37.1`` (bold kept)."""
    bold = cell.startswith("**")
    parts = [f"{float(p.strip()):.1f}" for p in cell.strip("*").split("±")]
    value = " ± ".join(parts)
    return f"**{value}**" if bold else value


def headline_table(report: str) -> str:
    """The headline table (Markdown) from the text of the demo report: its first table, the
    columns of :data:`COLUMNS`, uniform first."""
    lines = [ln for ln in report.splitlines() if ln.startswith("|")]
    if len(lines) < 3:
        raise ValueError(f"{REPORT}: no table found")
    header = _cells(lines[0])
    missing = [c for c in COLUMNS if c not in header]
    if missing:
        raise ValueError(f"{REPORT}: columns {missing} not in the report's table")
    idx = [header.index(c) for c in COLUMNS]
    rows = []
    for line in lines[2:]:
        cells = _cells(line)
        if len(cells) != len(header):
            break  # the end of the first table
        row = [cells[i] for i in idx]
        row[0] = LABELS.get(row[0], row[0])
        row[3] = _one_decimal(row[3])
        row[4], row[5] = _mean_only(row[4]), _mean_only(row[5])
        rows.append(row)
    # uniform first, then the agent; stable: the report's order otherwise
    rows.sort(key=lambda r: (r[0] != "uniform", r[0] not in LABELS.values()))
    out = ["| " + " | ".join(COLUMNS.values()) + " |",
           "|" + "---|" * len(COLUMNS)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out) + "\n"


def _replace(readme: str, name: str, body: str) -> str:
    """README text with the block between ``<!-- name:start -->`` and ``<!-- name:end -->``
    replaced by ``body``."""
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    pattern = re.compile(re.escape(start) + r"\n.*?" + re.escape(end), re.S)
    if not pattern.search(readme):
        raise ValueError(f"{README}: markers {start} ... {end} not found")
    return pattern.sub(lambda _: f"{start}\n{body}{end}", readme, count=1)


def render(readme: str, report: str) -> str:
    """README text with the headline table between its markers replaced."""
    return _replace(readme, "headline-table", headline_table(report))


def presets_cost_table(report: str) -> str:
    """The first table of the presets report, as stored."""
    lines = []
    for line in report.splitlines():
        if line.startswith("|"):
            lines.append(line)
        elif lines:
            break
    if len(lines) < 3:
        raise ValueError(f"{PRESETS_REPORT}: no table found")
    return "\n".join(lines) + "\n"


def agent_training_text(rows: list[dict]) -> str:
    """One sentence per trained agent of the train step (``agents/...`` rows; their newest)."""
    newest: dict[str, dict] = {}
    for r in rows:
        agent = r.get("agent") or f"agents/{r['lib']}_s{r['seed']}"
        if agent.startswith("agents/"):
            newest[agent] = r
    if not newest:
        return "No agent has been trained on the training instance set yet.\n"
    out = []
    for _, r in sorted(newest.items()):
        lib = {"sb3": "Stable-Baselines3", "rllib": "RLlib"}.get(r["lib"], r["lib"])
        load = f"{r['loadavg_before'][0]:.1f} before, {r['loadavg_after'][0]:.1f} after"
        out.append(f"- {lib} LAW-DDPG, settings `{r['settings']}`, seed {r['seed']}: "
                   f"{r['episodes']} episodes of the `train` instance set with 2 searchers and "
                   f"the reference cache, {r['gradient_updates']} gradient updates, "
                   f"**{r['seconds'] / 60:.1f} min** on the 2-core machine (load average "
                   f"{load}{'; resumed' if r.get('resumed') else ''}).")
    return "\n".join(out) + "\n"


def render_all(readme: str, root: Path = ROOT) -> str:
    """README text with every generated block replaced."""
    readme = render(readme, (root / REPORT).read_text())
    readme = _replace(readme, "presets-cost",
                      presets_cost_table((root / PRESETS_REPORT).read_text()))
    path = root / TRAINING
    rows = [json.loads(x) for x in path.read_text().splitlines() if x.strip()] \
        if path.exists() else []
    return _replace(readme, "agent-training", agent_training_text(rows))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="do not write; exit 1 if README.md's table is out of date")
    args = parser.parse_args(argv)
    readme_path = ROOT / README
    readme = readme_path.read_text()
    new = render_all(readme)
    if args.check:
        if new != readme:
            print(f"{README}: a generated block differs from the stored results; run "
                  "python docs/gen_readme_table.py", file=sys.stderr)
            return 1
        return 0
    if new != readme:
        readme_path.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
