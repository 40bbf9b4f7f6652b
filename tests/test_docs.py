"""The README and the documentation site (docs/).

Fast checks: the README is at most 200 lines, its headline table is what
``docs/gen_readme_table.py`` writes from ``benchmarks/results/demo/report.md``, and every relative
link in it names an existing file. Slow checks: every code block of the README and of the
getting-started page runs (Python blocks as script files, ``reweight-gym`` commands in a shell,
in one scratch directory, in order); blocks that install the package or call ``make`` are checked
instead of run (the extras they name exist in ``pyproject.toml``; ``make -n`` knows the targets).
The site itself is built by ``make docs`` (``sphinx -W``, then ``docs/check_site.py`` on the
pages), which CI runs after this suite; here only the checker is tested.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
GETTING_STARTED = ROOT / "docs" / "getting-started.md"
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")


def _generator():
    spec = importlib.util.spec_from_file_location("gen_readme_table",
                                                  ROOT / "docs" / "gen_readme_table.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def code_blocks(path: Path) -> list[tuple[str, str]]:
    """(language, code) of every fenced block with a language, in order."""
    return re.findall(r"^```(\w+)\n(.*?)^```", path.read_text(), flags=re.S | re.M)


# ----------------------------------------------------------------------------- fast checks
def test_readme_is_at_most_200_lines() -> None:
    n = len(README.read_text().splitlines())
    assert n <= 200, f"README.md has {n} lines; move the details into docs/"


def test_readme_headline_table_is_generated() -> None:
    gen = _generator()
    readme = README.read_text()
    expected = gen.render_all(readme)
    assert readme == expected, "README's generated blocks differ from the stored results: run " \
                               "python docs/gen_readme_table.py"
    table = gen.headline_table((ROOT / gen.REPORT).read_text())
    assert table.count("\n") >= 4 and "| uniform |" in table


def test_headline_table_best_epoch_is_the_best_validation_epoch() -> None:
    """The "best epoch" column is the report's test accuracy at the best-validation epoch (the
    column of that name), not the maximum of the test curve."""
    gen = _generator()
    report = (ROOT / gen.REPORT).read_text()
    header = [c.strip() for c in report.split("\n| method")[1].split("\n")[0].split("|")]
    assert "test acc at best-val epoch (%)" in header
    assert "test acc at best-val epoch (%)" in gen.headline_table(report)


def test_readme_relative_links_resolve() -> None:
    missing = []
    for target in LINK.findall(README.read_text()):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        path = (README.parent / target.split("#")[0]).resolve()
        if not path.exists():
            missing.append(target)
    assert not missing, f"README.md links to missing files: {missing}"


# ----------------------------------------------------------------------------- code blocks
def _extras() -> set[str]:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        tomllib = pytest.importorskip("tomli")
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    return set(data["project"]["optional-dependencies"])


def _commands(code: str) -> list[str]:
    code = code.replace("\\\n", " ")
    return [ln.strip() for ln in code.splitlines() if ln.strip() and not ln.strip().startswith("#")]


def _kind(lang: str, code: str) -> str:
    if lang == "python":
        return "run"
    cmds = _commands(code)
    if all(c.startswith("make ") for c in cmds):
        return "make"
    if all(re.match(r"(python3 -m venv|(\.venv/bin/)?pip install)", c) for c in cmds):
        return "install"
    return "run"


def _check_install(code: str) -> None:
    extras = _extras()
    for cmd in _commands(code):
        for group in re.findall(r"\.\[([\w,-]+)\]", cmd):
            unknown = set(group.split(",")) - extras
            assert not unknown, f"{cmd}: no extra {sorted(unknown)} in pyproject.toml"


def _check_make(code: str) -> None:
    targets = [shlex.split(c.split("#")[0])[1] for c in _commands(code)]
    res = subprocess.run(["make", "-n", *targets], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    env.setdefault("RAY_ENABLE_UV_RUN_RUNTIME_ENV", "0")
    return env


def _run(lang: str, code: str, cwd: Path) -> str:
    if lang == "python":
        script = cwd / "snippet.py"
        script.write_text(code)
        cmd = [sys.executable, str(script)]
    else:
        cmd = ["bash", "-euo", "pipefail", "-c", code]
    res = subprocess.run(cmd, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=1800)
    assert res.returncode == 0, f"{code}\n---\n{res.stdout[-2000:]}\n{res.stderr[-3000:]}"
    return res.stdout


def _floats(text: str) -> list[float]:
    return [float(x) for x in re.findall(r"\d+\.\d+", text)]


@pytest.mark.slow
def test_readme_code_blocks_run(tmp_path: Path) -> None:
    blocks = code_blocks(README)
    kinds = [_kind(lang, code) for lang, code in blocks]
    # install, make, quickstart, train CLI, train Python, benchmark: a new block needs a check
    assert kinds == ["install", "make", "run", "run", "run", "run"], kinds
    _check_install(blocks[0][1])
    _check_make(blocks[1][1])
    out = _run(*blocks[2], tmp_path)
    accs = _floats(out.splitlines()[-1])
    assert len(accs) == 2 and all(0.0 <= a <= 1.0 for a in accs)
    out = _run(*blocks[3], tmp_path)
    assert "trained sb3 ddpg: 8 episodes" in out
    assert "mean return" in out
    _run(*blocks[4], tmp_path)
    assert (tmp_path / "runs" / "sb3-python" / "final.zip").is_file()
    _run(*blocks[5], tmp_path)
    report = (tmp_path / "results" / "digits-noise" / "report.md").read_text()
    for method in ("uniform", "mwnet", "gdw", "fsr", "nrt"):
        assert f"| {method} |" in report


@pytest.mark.slow
def test_getting_started_code_blocks_run(tmp_path: Path) -> None:
    blocks = code_blocks(GETTING_STARTED)
    kinds = [_kind(lang, code) for lang, code in blocks]
    assert kinds == ["install", "make", "run", "run"], kinds
    _check_install(blocks[0][1])
    _check_make(blocks[1][1])
    out = _run(*blocks[2], tmp_path)
    assert len(_floats(out.splitlines()[-1])) == 2
    out = _run(*blocks[3], tmp_path)
    assert "return" in out and "policy=easy_first" in out


# ----------------------------------------------------------------------------- the site
def test_check_site_names_what_a_built_site_lacks(tmp_path: Path) -> None:
    """``make docs`` (CI) builds the site with ``sphinx -W`` and runs ``docs/check_site.py``."""
    spec = importlib.util.spec_from_file_location("check_site", ROOT / "docs" / "check_site.py")
    assert spec is not None and spec.loader is not None
    check_site = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check_site)
    assert check_site.problems(tmp_path) == [f"no page {p}.html" for p in check_site.PAGES]
    for page in check_site.PAGES:
        (tmp_path / f"{page}.html").parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / f"{page}.html").write_text("<p>nothing generated</p>")
    found = check_site.problems(tmp_path)
    assert len(found) == 3 and "results/demo.html" in found[-1], found
    res = subprocess.run(["make", "-n", "docs"], cwd=ROOT, capture_output=True, text=True)
    assert "docs/check_site.py docs/_build/html" in res.stdout
