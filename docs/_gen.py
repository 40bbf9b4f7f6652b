"""Pages generated when the documentation is built (called from ``conf.py``).

Nothing here is typed by hand: the configuration reference comes from
:class:`reweight_gym.config.EnvConfig` and :data:`reweight_gym.config.PRESETS`, the command-line
reference from the ``reweight-gym`` argument parser, and the results pages from the stored
reports under ``benchmarks/results/`` (every ``*.md`` there, with its plots). Output goes to
``docs/_generated/`` (git-ignored): full pages (``*.md``) and fragments that hand-written pages
include (``*.inc.md``, excluded from the build as pages of their own).
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import shutil
from collections import Counter
from pathlib import Path
from typing import Any

HEADING = re.compile(r"^(#{1,6})(\s)", re.M)
IMAGE = re.compile(r"!\[[^\]]*\]\(([^)\s]+)\)")
LINK = re.compile(r"(!?)\[([^\]]*)\]\(([^)\s]+)\)")
TABLE = re.compile(r"(?:^\|.*\|[ \t]*\n)+", re.M)


def _write(path: Path, text: str) -> None:
    """Write only when the content changed (Sphinx then rebuilds only what changed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists() or path.read_text() != text:
        path.write_text(text)


def _fmt(value: Any) -> str:
    if value is None:
        return "`None`"
    if isinstance(value, (dict, tuple, list)):
        return f"`{json.dumps(value)}`" if not isinstance(value, tuple) else f"`{list(value)}`"
    return f"`{value!r}`"


# ----------------------------------------------------------------------------- configuration
def config_fields() -> str:
    """One row per field of EnvConfig: type, default, the values allowed by name."""
    from reweight_gym import config
    from reweight_gym.models import MODEL_NAMES

    choices = {"dataset": config.DATASETS, "noise_type": config.NOISE_TYPES,
               "imbalance_type": config.IMBALANCE_TYPES, "lr_schedule": config.LR_SCHEDULES,
               "features": config.FEATURE_SETS, "obs_mode": config.OBS_MODES,
               "model": MODEL_NAMES, "preset": config.PRESET_NAMES}
    rows = ["| field | type | default (no preset) | allowed names |", "|---|---|---|---|"]
    for f in dataclasses.fields(config.EnvConfig):
        if f.default is not dataclasses.MISSING:
            default = _fmt(f.default)
        elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            default = _fmt(f.default_factory())  # type: ignore[misc]
        else:
            default = "required"
        allowed = ", ".join(f"`{c}`" for c in choices.get(f.name, ()))
        ftype = str(f.type).replace("|", "\\|")
        rows.append(f"| `{f.name}` | `{ftype}` | {default} | {allowed} |")
    return "\n".join(rows) + "\n"


def presets() -> str:
    """Per preset, the values it sets for the digits and for the image datasets."""
    from reweight_gym.config import PRESET_NAMES, PRESETS

    out = []
    for name in PRESET_NAMES:
        fams = PRESETS[name]
        keys = list(dict.fromkeys(k for values in fams.values() for k in values))
        out += [f"### `{name}`", "", "| field | digits | image datasets (CIFAR, image folders) |",
                "|---|---|---|"]
        for k in keys:
            cells = [_fmt(fams[f][k]) if k in fams[f] else "–" for f in ("digits", "image")]
            out.append(f"| `{k}` | {cells[0]} | {cells[1]} |")
        out.append("")
    return "\n".join(out)


def instance_sets() -> str:
    """The built-in instance sets: name, description and instances."""
    from reweight_gym.envs.instances import BUILTIN_SETS, SET_DIR

    out = []
    for name in BUILTIN_SETS:
        data = json.loads((SET_DIR / f"{name}.json").read_text())
        defaults = data.get("defaults", {})
        out += [f"**`{name}`** ({len(data['instances'])} instances; defaults "
                f"`{json.dumps(defaults)}`): {data.get('description', '')}", "",
                "| instance | dataset | preset | keywords |", "|---|---|---|---|"]
        for inst in data["instances"]:
            rest = {k: v for k, v in inst.items() if k not in ("name", "dataset", "preset")}
            preset = inst.get("preset", defaults.get("preset", "–"))
            out.append(f"| `{inst['name']}` | {inst.get('dataset', '–')} | {preset} | "
                       f"`{json.dumps(rest)}` |")
        out.append("")
    return "\n".join(out)


# ----------------------------------------------------------------------------- command line
def cli_help() -> str:
    """The ``--help`` of ``reweight-gym`` and of every sub-command, as the parser prints it."""
    import argparse

    os.environ["COLUMNS"] = "100"  # argparse wraps to the terminal's width
    from reweight_gym.cli import build_parser

    parser = build_parser()
    out = ["## `reweight-gym`", "", "```text", parser.format_help().rstrip(), "```", ""]
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    for name, p in sub.choices.items():
        out += [f"## `reweight-gym {name}`", "", "```text", p.format_help().rstrip(), "```", ""]
    return "\n".join(out)


# ----------------------------------------------------------------------------- results
def _shift_headings(text: str, top: int) -> str:
    """Shift every Markdown heading so that the highest one is at level ``top``."""
    levels = [len(m.group(1)) for m in HEADING.finditer(_outside_code(text))]
    if not levels:
        return text
    delta = top - min(levels)
    lines, fenced = [], False
    for line in text.splitlines():
        if line.startswith("```"):
            fenced = not fenced
        m = HEADING.match(line)
        if m and not fenced:
            level = min(6, max(1, len(m.group(1)) + delta))
            line = "#" * level + line[len(m.group(1)):]
        lines.append(line)
    return "\n".join(lines) + "\n"


def _nowrap(table: str) -> str:
    """``mean ± std`` cells on one line: the spaces around ± become non-breaking."""
    return table.replace(" ± ", "\u00a0±\u00a0")


def _outside_code(text: str) -> str:
    return re.sub(r"```.*?```", "", text, flags=re.S)


def _local_links(text: str, folder: Path) -> str:
    """Keep the links and images whose target is stored beside the report (Markdown pages and
    plots); name the others as text (a report copied without its plots or rules)."""
    def sub(m: re.Match[str]) -> str:
        bang, label, target = m.groups()
        if re.match(r"[a-z]+://", target) or target.startswith("#"):
            return m.group(0)
        path = folder / target
        if path.is_file() and (bang or path.suffix == ".md"):
            return m.group(0)
        what = "plot" if bang else "file"
        return f"({what} `{target}` not stored beside this report)"
    return LINK.sub(sub, text)


def result_pages(root: Path, out: Path) -> list[str]:
    """Mirror every ``benchmarks/results/**/*.md`` as a page (plots copied beside it) and every
    Markdown table in it as a fragment ``<name>.table<N>.inc.md`` (N from 1); returns the page
    names, relative to ``out``, without suffix."""
    src_root = root / "benchmarks" / "results"
    for image in src_root.rglob("*.png"):  # every plot, for the hand-written pages too
        dest = out / image.relative_to(src_root)
        if not dest.exists() or dest.stat().st_mtime < image.stat().st_mtime:
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(image, dest)
    pages: list[str] = []
    written: set[Path] = set()
    for src in sorted(src_root.rglob("*.md")):
        rel = src.relative_to(src_root)
        text = _local_links(src.read_text(), src.parent)
        for target in IMAGE.findall(text):
            image = (src.parent / target).resolve()
            if image.is_file():
                dest = out / rel.parent / target
                dest.parent.mkdir(parents=True, exist_ok=True)
                if not dest.exists() or dest.stat().st_mtime < image.stat().st_mtime:
                    shutil.copy2(image, dest)
        stem = rel.with_suffix("")
        for i, table in enumerate(TABLE.findall(_outside_code(text)), 1):
            _write(out / f"{stem}.table{i}.inc.md", _nowrap(table))
            written.add(out / f"{stem}.table{i}.inc.md")
        page = (f"# `{rel.as_posix()}`\n\n"
                f"```{{note}}\n`benchmarks/results/{rel.as_posix()}` as it is stored in the "
                "repository, rendered at build time (headings shifted one level down).\n```\n\n"
                + _shift_headings(TABLE.sub(lambda m: _nowrap(m.group(0)), text), 2))
        _write(out / rel, page)
        written.add(out / rel)
        pages.append(stem.as_posix())
    # a report removed from benchmarks/results (or a table removed from one) leaves nothing behind
    keep = written | {out / "index.md"}
    for stale in out.rglob("*.md"):
        if stale not in keep:
            stale.unlink()
    return pages


def results_index(pages: list[str]) -> str:
    lines = ["# Every stored report", "",
             "Every Markdown file under `benchmarks/results/`, rendered as it is stored. The "
             "hand-written results pages include their tables from these files.", "",
             "```{toctree}", ":maxdepth: 1", ""]
    lines += pages
    lines += ["```", ""]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- hardware
def _provenance(row: dict[str, Any]) -> tuple[str, str, str]:
    prov = row.get("provenance") or {}
    machine = row.get("machine") if isinstance(row.get("machine"), dict) else {}
    cpu = prov.get("cpu") or machine.get("cpu") or machine.get("processor") or "not recorded"
    threads = prov.get("torch_threads", row.get("torch_threads",
                                              machine.get("torch_threads", machine.get("threads"))))
    device = prov.get("device") or machine.get("device") or "not recorded"
    return cpu, "not recorded" if threads is None else str(threads), device


def hardware(root: Path) -> str:
    """Per stored results file: the processor, torch threads and device its rows name (their
    ``provenance``, or a ``machine`` field where a script records that instead)."""
    src_root = root / "benchmarks" / "results"
    rows = ["| results file | rows | processor | torch threads | device | commits |",
            "|---|---|---|---|---|---|"]
    for path in sorted(src_root.rglob("*.jsonl")):
        seen: Counter[tuple[str, str, str]] = Counter()
        commits: set[str] = set()
        n = 0
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            if not isinstance(row, dict):
                continue
            n += 1
            seen[_provenance(row)] += 1
            commit = (row.get("provenance") or {}).get("git_commit") or row.get("git_commit")
            if commit:
                commits.add(str(commit)[:7])
        cpus = ", ".join(sorted({k[0] for k in seen})) or "not recorded"
        threads = ", ".join(sorted({k[1] for k in seen})) or "not recorded"
        devices = ", ".join(sorted({k[2] for k in seen})) or "not recorded"
        rel = path.relative_to(root).as_posix()
        rows.append(f"| `{rel}` | {n} | {cpus} | {threads} | {devices} | "
                    f"{len(commits) or 'not recorded'} |")
    return "\n".join(rows) + "\n"


# ----------------------------------------------------------------------------- entry point
def throughput(root: Path) -> str:
    """The agent-training throughput table of ``benchmarks/results/agents/throughput.json``
    (``python -m benchmarks.agent_throughput``): env steps per second per library, searcher
    count and cache, with the load average around each measurement."""
    path = root / "benchmarks" / "results" / "agents" / "throughput.json"
    data = json.loads(path.read_text())
    repeats = data.get("repeats", 1)  # runs before --repeats: one pair per configuration
    lines = [f"Env `{data['env_id']}`, {data['rounds']} measured rounds per configuration, "
             f"{repeats} repeat(s) of each (uncached, cached) pair, "
             f"{data['torch_threads_per_searcher']} torch thread per searcher; command: "
             f"`{data['command']}`.", "",
             "| library | searchers | reference cached | repeat | env steps / s | load average |",
             "|---|---|---|---|---|---|"]
    for r in data["rows"]:
        lines.append(f"| {r['lib']} | {r['searchers']} | {'yes' if r['reference_cached'] else 'no'}"
                     f" | {r.get('repeat', 0)} | {r['env_steps_per_s']:.2f} | "
                     f"{r['loadavg_before'][0]:.1f} -> {r['loadavg_after'][0]:.1f} |")
    ratio_note = "median over the repeats" if repeats > 1 else "one pair"
    lines += ["", f"| ratio ({ratio_note}) | value |", "|---|---|"]
    lines += [f"| {k} | {v:.2f}x |" for k, v in data["ratios"].items()]
    return "\n".join(lines) + "\n"


def generate_all(root: Path, out: Path) -> None:
    import sys

    sys.path.insert(0, str(root / "docs"))
    import gen_readme_table

    out.mkdir(parents=True, exist_ok=True)
    _write(out / "config_fields.inc.md", config_fields())
    _write(out / "presets.inc.md", presets())
    _write(out / "cli.inc.md", cli_help())
    _write(out / "instance_sets.inc.md", instance_sets())
    _write(out / "hardware.inc.md", hardware(root))
    _write(out / "throughput.inc.md", _nowrap(throughput(root)))
    _write(out / "readme_table.inc.md", _nowrap(
        gen_readme_table.headline_table((root / gen_readme_table.REPORT).read_text())))
    pages = result_pages(root, out / "results")
    _write(out / "results" / "index.md", results_index(pages))
