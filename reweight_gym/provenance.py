"""Which code and libraries produced a result: versions, git commit, threads, device.

Every recorded trajectory (:mod:`reweight_gym.envs.record`) and every benchmark row carries
:func:`provenance`; the benchmark report compares :func:`code_identity` across the rows of a
table and says when they differ. The git commit is that of the checkout the package was imported
from (``git rev-parse HEAD`` in the package's directory, with a flag for uncommitted changes to
tracked files outside ``benchmarks/results/`` and, when there are some, the SHA-256 of their
``git diff HEAD`` so that two rows from dirty trees can be told apart); an installed copy
outside a checkout has none, and the keys are then absent.

Rows written before provenance existed load with every field ``"unknown"``
(:func:`row_provenance`).
"""

from __future__ import annotations

import functools
import os
import subprocess
from typing import Any

UNKNOWN = "unknown"
#: stored results (rows, reports) in a checkout: not code, so changes there do not make a tree
#: "dirty"
RESULTS_DIR = os.path.join("benchmarks", "results")

#: The fields that identify the code and libraries (what must agree for results to be comparable
#: as "the same software"); thread count and device are recorded beside them.
CODE_FIELDS = ("package_version", "git_commit", "git_dirty", "git_diff_sha256", "torch", "numpy",
               "gymnasium")


@functools.lru_cache(maxsize=1)
def _git_state() -> tuple[str, bool, str | None] | None:
    """:func:`git_state` of this module, computed once per process."""
    return git_state(os.path.abspath(__file__))


def git_state(module_file: str) -> tuple[str, bool, str | None] | None:
    """(HEAD commit, dirty, SHA-256 of ``git diff HEAD`` or ``None`` when clean) of the checkout
    that ``module_file`` (a file of the ``reweight_gym`` package) lives in, or ``None`` when it is
    not in a checkout of this package."""
    import hashlib

    package_dir = os.path.dirname(module_file)

    def git(*args: str, strip: bool = True) -> str:
        out = subprocess.run(["git", *args], cwd=package_dir, capture_output=True, text=True,
                             check=True, timeout=30).stdout
        return out.strip() if strip else out

    try:
        top = git("rev-parse", "--show-toplevel")
        # an installed copy inside some other repository (a venv in a checkout) is not a checkout
        # of this package: the file git sees there must be the one that was imported
        here = os.path.join(top, "reweight_gym", os.path.basename(module_file))
        if not os.path.exists(here) or not os.path.samefile(here, module_file):
            return None
        commit = git("rev-parse", "HEAD")
        # the code: every tracked file but the stored results, which measurements append to
        code = ["--", top, f":(exclude){os.path.join(top, RESULTS_DIR)}"]
        dirty = bool(git("status", "--porcelain", "--untracked-files=no", *code))
        # the whole diff of tracked files against HEAD, binary-safe and without colour
        diff = git("diff", "HEAD", "--binary", "--no-color", "--no-ext-diff", *code,
                   strip=False) if dirty else None
    except (OSError, subprocess.SubprocessError):
        return None
    digest = hashlib.sha256(diff.encode()).hexdigest() if diff is not None else None
    return commit, dirty, digest


@functools.lru_cache(maxsize=1)
def cpu_model() -> str:
    """The processor: architecture and model name (``x86_64 AMD EPYC``)."""
    import platform

    name = platform.processor()
    try:
        with open("/proc/cpuinfo") as fh:
            name = next((line.split(":", 1)[1].strip() for line in fh
                         if line.startswith("model name")), name)
    except OSError:
        pass
    return f"{platform.machine()} {name}".strip()


def provenance(device: str | None = None) -> dict[str, Any]:
    """The package version, git commit, dirty flag and the diff's hash when dirty (when imported
    from a checkout), the
    torch / numpy / gymnasium / Python versions, the processor, torch's thread count now and
    ``device``."""
    import platform

    import gymnasium
    import numpy
    import torch

    from reweight_gym import __version__

    out: dict[str, Any] = {"package_version": __version__}
    git = _git_state()
    if git is not None:
        out["git_commit"], out["git_dirty"], digest = git
        if digest is not None:
            out["git_diff_sha256"] = digest
    out.update(torch=torch.__version__, numpy=numpy.__version__, gymnasium=gymnasium.__version__,
               python=platform.python_version(), cpu=cpu_model(),
               torch_threads=torch.get_num_threads())
    if device is not None:
        out["device"] = str(device)
    return out


def row_provenance(row: dict[str, Any]) -> dict[str, Any]:
    """A stored row's provenance; every code field ``"unknown"`` for rows written before
    provenance was recorded (they still load and report)."""
    prov = row.get("provenance")
    if not isinstance(prov, dict):
        return {**{k: UNKNOWN for k in CODE_FIELDS},
                "torch_threads": row.get("torch_threads", UNKNOWN)}
    return prov


def code_identity(prov: dict[str, Any]) -> tuple[str, ...]:
    """The code and library versions of a provenance as one comparable tuple; a git field that is
    absent (not a checkout) reads ``"no git"``, an absent diff hash ``""`` (a clean tree, or a
    row written before the hash was recorded)."""
    out = []
    for k in CODE_FIELDS:
        default = "" if k == "git_diff_sha256" else "no git" if k.startswith("git_") else UNKNOWN
        v = prov.get(k, default)
        out.append(str(v))
    return tuple(out)


def describe(identity: tuple[str, ...]) -> str:
    """``reweight-gym 0.1.0 @ 1a2b3c4d (uncommitted changes, diff 5e6f7a8b), torch 2.14.1, ...``."""
    d = dict(zip(CODE_FIELDS, identity))
    if all(v == UNKNOWN for k, v in d.items() if k != "git_diff_sha256"):
        return "unknown (written before versions were recorded)"
    commit = d["git_commit"]
    if commit not in (UNKNOWN, "no git"):
        diff = d["git_diff_sha256"]
        commit = commit[:10] + ((f" (uncommitted changes, diff {diff[:10]})" if diff else
                                 " (uncommitted changes, diff not recorded)")
                                if d["git_dirty"] == "True" else "")
    return (f"reweight-gym {d['package_version']} @ {commit}, torch {d['torch']}, "
            f"numpy {d['numpy']}, gymnasium {d['gymnasium']}")
