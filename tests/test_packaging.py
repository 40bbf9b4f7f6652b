"""The distribution: one import namespace, every package in the wheel's list."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib

REPO = Path(__file__).resolve().parents[1]


def _setuptools() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]


def test_every_package_folder_is_in_the_wheel() -> None:
    """A new subpackage must be added to ``packages`` in pyproject.toml, or the wheel lacks it;
    so must a folder of package data (listed as a data-only package, with its files in
    ``package-data``)."""
    st = _setuptools()
    roots = {name: REPO / folder for name, folder in st["package-dir"].items()}
    found = set()
    for name, root in roots.items():
        data_folders = [p for p in root.rglob("*.json") if "__pycache__" not in p.parts]
        for init in [*root.rglob("__init__.py"), *data_folders]:
            rel = init.parent.relative_to(root).parts
            pkg = ".".join((name, *rel))
            # a folder mapped to a package of its own is listed under that name
            if not any(init.parent == r and pkg != n for n, r in roots.items()):
                found.add(pkg)
    assert found == set(st["packages"])


def test_one_namespace_no_top_level_agents_or_baselines() -> None:
    """``reweight_gym.agents`` and ``reweight_gym.baselines`` import; the top-level names that
    belong to other distributions (TF-Agents' ``agents``, OpenAI's ``baselines``) do not."""
    code = ("import importlib.util, reweight_gym.agents, reweight_gym.baselines; "
            "print(importlib.util.find_spec('agents'), importlib.util.find_spec('baselines'))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         cwd="/")
    assert out.stdout.split() == ["None", "None"]


def assembled_package(root: Path) -> Path:
    """The package as the wheel lays it out (``agents/`` and ``baselines/`` inside
    ``reweight_gym/``), as a tree of symbolic links under ``root``: what static tools that walk
    the package's folder (import-linter, mypy) need."""
    st = _setuptools()
    pkg = root / "reweight_gym"
    pkg.mkdir(parents=True)
    for child in (REPO / "reweight_gym").iterdir():
        (pkg / child.name).symlink_to(child)
    for name, folder in st["package-dir"].items():
        if name != "reweight_gym":
            (pkg / name.split(".", 1)[1]).symlink_to(REPO / folder)
    return root


def test_import_layering_contracts_hold(tmp_path: Path) -> None:
    """import-linter's contracts of pyproject.toml: the layers import only downwards; the core
    and the baselines never import Stable-Baselines3 or Ray."""
    import os
    import shutil

    lint = shutil.which("lint-imports", path=os.path.dirname(sys.executable))
    assert lint is not None, "import-linter is a dev dependency"
    root = assembled_package(tmp_path)
    out = subprocess.run([lint, str(REPO / "pyproject.toml")], cwd=root, capture_output=True,
                         text=True, env={**os.environ, "PYTHONPATH": str(root)})
    assert out.returncode == 0, out.stdout[-3000:]
    assert "0 broken" in out.stdout


@pytest.mark.slow
def test_mypy_passes_on_the_package(tmp_path: Path) -> None:
    """The type check of CI (issue 26.5): mypy on the package as the wheel lays it out, with the
    ``[tool.mypy]`` settings of pyproject.toml, finds no error."""
    if importlib.util.find_spec("mypy") is None:
        pytest.skip("mypy is not installed (a dev dependency: pip install -e '.[dev]')")
    missing = [m for m in ("ray", "stable_baselines3") if importlib.util.find_spec(m) is None]
    if missing:  # the agents subclass their classes: without them mypy cannot type those
        pytest.skip(f"{', '.join(missing)} not installed (the rl extra: pip install -e '.[rl]')")
    root = assembled_package(tmp_path / "tree")
    out = subprocess.run(
        [sys.executable, "-m", "mypy", "-p", "reweight_gym",
         "--config-file", str(REPO / "pyproject.toml"), "--cache-dir", str(tmp_path / "cache")],
        cwd=root, capture_output=True, text=True)
    assert out.returncode == 0, out.stdout[-6000:] + out.stderr[-2000:]
    assert "Success: no issues found" in out.stdout
