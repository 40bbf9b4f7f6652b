"""Check a built site: ``make docs`` runs it after Sphinx (``-W``: warnings are errors).

The pages a reader looks for exist, and the generated pages hold generated content: the
configuration reference lists the fields and the presets, and the demo results page includes the
stored report's best-validation cell (the one the README's headline table shows)::

    python docs/check_site.py docs/_build/html   # exit 1, naming what is missing
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
PAGES = ("index", "getting-started", "environment", "configuration", "agents", "baselines/mwnet",
         "baselines/gdw", "baselines/fsr", "baselines/nrt", "benchmark", "results/demo",
         "results/cifar10", "api/index")


def problems(html: Path) -> list[str]:
    """What is missing from the site built into ``html`` (empty: nothing)."""
    missing = [f"no page {page}.html" for page in PAGES if not (html / f"{page}.html").is_file()]
    if missing:
        return missing
    out = []
    config = (html / "configuration.html").read_text()
    for word in ("noise_rate", "cpu-noaug"):
        if word not in config:
            out.append(f"configuration.html does not list {word!r}")
    sys.path.insert(0, str(DOCS))
    import gen_readme_table

    table = gen_readme_table.headline_table((ROOT / gen_readme_table.REPORT).read_text())
    uniform = next(ln for ln in table.splitlines() if ln.startswith("| uniform |"))
    best_val = uniform.split("|")[3].split("±")[0].strip()
    if f"<td><p>{best_val}\u00a0±" not in (html / "results" / "demo.html").read_text():
        out.append(f"results/demo.html does not include the report's best-val cell {best_val}")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("html", help="the built site (sphinx -b html's output folder)")
    args = ap.parse_args(argv)
    found = problems(Path(args.html))
    for line in found:
        print(f"check_site: {line}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main())
