"""Rewrite README.md's headline table from the stored demo report.

The table between the markers ``<!-- headline-table:start -->`` and
``<!-- headline-table:end -->`` of README.md is generated from
``benchmarks/results/demo/report.md`` (the rows of ``make demo``); never edit it by hand::

    python docs/gen_readme_table.py           # rewrite README.md
    python docs/gen_readme_table.py --check   # exit 1 if README.md's table is out of date

``tests/test_docs.py`` fails when the README's table differs from what this script writes. The
documentation includes the same table (``docs/_gen.py``).
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
README = Path("README.md")
REPORT = Path("benchmarks/results/demo/report.md")
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


def render(readme: str, report: str) -> str:
    """README text with the table between the markers replaced."""
    pattern = re.compile(re.escape(START) + r"\n.*?" + re.escape(END), re.S)
    if not pattern.search(readme):
        raise ValueError(f"{README}: markers {START} ... {END} not found")
    block = f"{START}\n{headline_table(report)}{END}"
    return pattern.sub(lambda _: block, readme, count=1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="do not write; exit 1 if README.md's table is out of date")
    args = parser.parse_args(argv)
    readme_path, report_path = ROOT / README, ROOT / REPORT
    readme = readme_path.read_text()
    new = render(readme, report_path.read_text())
    if args.check:
        if new != readme:
            print(f"{README}: the headline table differs from {REPORT}; run "
                  "python docs/gen_readme_table.py", file=sys.stderr)
            return 1
        return 0
    if new != readme:
        readme_path.write_text(new)
    return 0


if __name__ == "__main__":
    sys.exit(main())
