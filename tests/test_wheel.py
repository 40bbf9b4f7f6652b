"""The wheel: built from the sources offline (no build isolation: the build requirements of
pyproject.toml must be installed), without warnings about the licence, installed (not editable)
into a fresh virtual environment and used from there: the ``reweight-gym`` command, a tiny digits
episode, the ``reweight_gym.agents`` and ``reweight_gym.baselines`` subpackages.

The fresh environment gets the dependencies (torch, gymnasium, ...) of the environment running the
tests through a ``.pth`` file written after the install (so pip never sees the developer's
editable install, and nothing is downloaded); that file adds plain directories to the end of
``sys.path`` and runs no import hooks, so the editable install's finder stays inactive and
``reweight_gym`` resolves to the installed wheel.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import json
import os
import re
import shutil
import site
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest
import tomllib

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((REPO / "pyproject.toml").read_text())
SKIP_IN_COPY = ("__pycache__", "*.egg-info", "build", "dist", "*.pyc")


def _unmet_build_requirements() -> list[str]:
    from packaging.requirements import Requirement

    unmet = []
    for text in PYPROJECT["build-system"]["requires"]:
        req = Requirement(text)
        try:
            version = importlib.metadata.version(req.name)
        except importlib.metadata.PackageNotFoundError:
            version = None
        if version is None or not req.specifier.contains(version, prereleases=True):
            unmet.append(f"{text} (installed: {version})")
    return unmet


def _copy_sources(dest: Path) -> Path:
    """What a build reads (the top-level files and the package folders of pyproject.toml), copied,
    so the build writes its build/ and .egg-info/ there and not into the checkout."""
    dest.mkdir()
    for entry in REPO.iterdir():
        if entry.is_file() and not entry.name.startswith("."):
            shutil.copy2(entry, dest / entry.name)
    for folder in set(PYPROJECT["tool"]["setuptools"]["package-dir"].values()):
        top = folder.split("/")[0]
        if not (dest / top).exists():
            shutil.copytree(REPO / top, dest / top, ignore=shutil.ignore_patterns(*SKIP_IN_COPY))
    return dest


def _clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHONPATH", "PYTHONHOME", "PYTHONSTARTUP", "VIRTUAL_ENV")}
    return {**env, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INDEX": "1",
            "PYTHONNOUSERSITE": "1", **extra}


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def _warnings(output: str) -> list[str]:
    """Each warning of a build log with its continuation lines: those indented deeper, blank
    ones and setuptools' ``!!`` frame lines."""
    lines = output.splitlines()
    found = []
    for i, line in enumerate(lines):
        if re.search(r"warning", line, re.IGNORECASE):
            end = i + 1
            while end < len(lines) and (not lines[end].strip() or lines[end].strip() == "!!"
                                        or _indent(lines[end]) > _indent(line)):
                end += 1
            found.append("\n".join(lines[i:end]))
    return found


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The wheel and the build's output: ``python -m build`` where installed, else pip."""
    unmet = _unmet_build_requirements()
    if unmet:
        pytest.skip(f"the build requirements of pyproject.toml are not installed: {unmet}; "
                    "install them (pip install 'setuptools>=77') to build offline")
    base = tmp_path_factory.mktemp("wheel")
    src, dist = _copy_sources(base / "src"), base / "dist"
    if importlib.util.find_spec("build") is not None:
        cmd = [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist),
               str(src)]
    else:
        cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-v",
               "-w", str(dist), str(src)]
    proc = subprocess.run(cmd, capture_output=True, text=True, cwd=base, env=_clean_env(),
                          timeout=600)
    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    wheels = list(dist.glob("reweight_gym-*.whl"))
    assert len(wheels) == 1, output[-4000:]
    return wheels[0], output


@pytest.fixture(scope="module")
def installed(built: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh virtual environment with the wheel installed; its python."""
    venv = tmp_path_factory.mktemp("venv") / "env"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True,
                   env=_clean_env(), timeout=300)
    python = venv / "bin" / "python"
    proc = subprocess.run([sys.executable, "-m", "pip", "--python", str(python), "install",
                           "--no-deps", "--no-index", str(built[0])],
                          capture_output=True, text=True, env=_clean_env(), timeout=600)
    assert proc.returncode == 0, (proc.stdout + proc.stderr)[-4000:]
    purelib = subprocess.run([str(python), "-c", "import sysconfig; "
                              "print(sysconfig.get_paths()['purelib'])"], capture_output=True,
                             text=True, check=True, env=_clean_env()).stdout.strip()
    # the dependencies: the site-packages of the environment running the tests, after the wheel's
    deps = dict.fromkeys([*site.getsitepackages(), sysconfig.get_paths()["purelib"],
                          sysconfig.get_paths()["platlib"]])
    (Path(purelib) / "_reweight_gym_test_deps.pth").write_text(
        "".join(f"{d}\n" for d in deps if os.path.isdir(d)))
    return python


def test_build_has_no_warnings_and_the_wheel_holds_every_package(built) -> None:
    wheel, output = built
    # byte-compiling is off when the environment sets PYTHONDONTWRITEBYTECODE: not the package's
    warnings = [w for w in _warnings(output) if "byte-compiling is disabled" not in w]
    assert not warnings, "\n---\n".join(warnings)
    with zipfile.ZipFile(wheel) as z:
        names = set(z.namelist())
        meta = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert "License-Expression: MIT" in meta.splitlines()
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)  # the licence text
    packages = PYPROJECT["tool"]["setuptools"]["packages"]
    data = PYPROJECT["tool"]["setuptools"]["package-data"]
    for pkg in packages:
        if pkg in data:  # a data-only package: its files
            assert any(n.startswith(f"{pkg.replace('.', '/')}/") and n.endswith(".json")
                       for n in names), pkg
        else:
            assert f"{pkg.replace('.', '/')}/__init__.py" in names, pkg
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    assert tops == {"reweight_gym"}  # no top-level agents/ or baselines/


def test_installed_command_help(installed: Path, tmp_path: Path) -> None:
    command = installed.parent / "reweight-gym"
    proc = subprocess.run([str(command), "--help"], capture_output=True, text=True, cwd=tmp_path,
                          env=_clean_env(PATH=f"{installed.parent}{os.pathsep}"
                                         f"{os.environ.get('PATH', '')}"), timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "usage: reweight-gym" in proc.stdout


EPISODE = """
import importlib.metadata, json, sys
import gymnasium as gym
import numpy as np
import torch
import reweight_gym, reweight_gym.agents, reweight_gym.baselines
from reweight_gym.envs.instances import load_instance_set

torch.set_num_threads(1)  # as the tests (conftest.py): tiny workloads, a busy machine
env = gym.make("Reweight-Digits-v0", preset="tiny")
obs, info = env.reset(seed=0)
steps, done = 0, False
while not done:
    obs, reward, term, trunc, info = env.step(np.zeros(env.action_space.shape, np.float32))
    steps, done = steps + 1, term or trunc
dist = importlib.metadata.distribution("reweight-gym")
print(json.dumps({
    "files": [m.__file__ for m in (reweight_gym, reweight_gym.agents, reweight_gym.baselines)],
    "steps": steps, "stages": env.unwrapped.config.num_stages,
    "warmup": env.unwrapped.config.warmup_stages, "reward": reward,
    "test_acc": info["test_acc_target"], "instances": len(load_instance_set("train")),
    "dist": str(dist.locate_file("")), "direct_url": dist.read_text("direct_url.json"),
    "rl": sorted({m.split(".")[0] for m in sys.modules} & {"stable_baselines3", "ray"}),
    "sys_path": sys.path}))
"""


def test_installed_package_runs_a_digits_episode(installed: Path, tmp_path: Path) -> None:
    proc = subprocess.run([str(installed), "-c", EPISODE], capture_output=True, text=True,
                          cwd=tmp_path, env=_clean_env(OMP_NUM_THREADS="1"), timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    site_packages = Path(out["dist"]).resolve()
    assert site_packages.is_relative_to(installed.parent.parent.resolve())
    for file in out["files"]:  # the installed copy, not the checkout
        assert Path(file).resolve().is_relative_to(site_packages / "reweight_gym"), file
        assert not Path(file).resolve().is_relative_to(REPO), file
    assert str(REPO) not in out["sys_path"]
    assert '"editable": true' not in (out["direct_url"] or "")
    assert out["steps"] == out["stages"] - out["warmup"] and out["reward"] == 0.0
    assert 0.0 <= out["test_acc"] <= 1.0
    assert out["instances"] >= 3  # the package data (instance sets) is in the wheel
    assert out["rl"] == []  # the core, the agents and the baselines import without the RL extras
