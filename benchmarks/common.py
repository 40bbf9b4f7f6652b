"""What the measurement scripts share.

- :func:`cifar10_root`: the one place that says where CIFAR-10 is: the variable
  ``REWEIGHT_GYM_CIFAR10``, else the JPEG copy in ``../shared/datasets/cifar10-jpeg`` beside the
  checkout (the tests read the same variable);
- :class:`JsonlLog`: an append-only JSON-lines file of finished measurements, written row by row
  (fsync'ed) so that a killed script loses only the run in progress, and read back to skip what is
  done on a rerun;
- :func:`run_specs`: "run these specs, append each result as it finishes, skip the finished
  ones": every run through :func:`reweight_gym.runner.run`, stored as its
  :class:`~reweight_gym.runner.RunResult` row with the script's ``tags``;
- :func:`reuse_rows`: copy the rows of results directories that ran a job's computation
  already, so that :func:`run_specs` skips the job;
- :func:`mean_std`, :func:`markdown_table`: the numbers and tables the scripts print.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results"
CIFAR10_VAR = "REWEIGHT_GYM_CIFAR10"


def cifar10_root() -> str:
    """CIFAR-10's directory: ``$REWEIGHT_GYM_CIFAR10``, else ``../shared/datasets/cifar10-jpeg``
    beside the checkout."""
    return os.environ.get(CIFAR10_VAR) or str(REPO.parent / "shared" / "datasets" /
                                              "cifar10-jpeg")


def machine() -> dict[str, Any]:
    """The machine's load and the command that ran (stored beside each measurement)."""
    return {"loadavg": list(os.getloadavg()), "command": " ".join(sys.argv)}


class JsonlLog:
    """Finished measurements, one JSON object per line, appended as each finishes."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def rows(self) -> list[dict[str, Any]]:
        if not self.path.exists():
            return []
        out = []
        for line in self.path.read_text().splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:  # a line cut by a kill: that measurement is redone
                continue
        return out

    def done(self, key: Callable[[dict[str, Any]], Any]) -> set[Any]:
        """``key(row)`` of every stored row."""
        return {key(r) for r in self.rows()}

    def append(self, row: dict[str, Any]) -> None:
        from reweight_gym.jsonable import dumps

        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a") as f:
            f.write(dumps(row) + "\n")
            f.flush()
            os.fsync(f.fileno())


#: Tags that say where a row came from, not which job it is.
PROVENANCE_TAGS = ("machine", "copied_from")


def job_ident(tags: dict[str, Any], key: str) -> str:
    """A job's identity in a log: its tags (without :data:`PROVENANCE_TAGS`) and run key."""
    tags = {k: v for k, v in tags.items() if k not in PROVENANCE_TAGS}
    return json.dumps({"tags": tags, "key": key}, sort_keys=True)


#: Config fields that do not change a baseline's training: the preset's name (a preset is its
#: fields), the agent's observation and action fields, where the data lives.
NOT_TRAINING = frozenset({"preset", "obs_mode", "features", "action_scale", "normalize_weights",
                          "data_root"})


def reuse_rows(log: JsonlLog, jobs: Sequence[tuple[dict[str, Any], Any]],
               dirs: Sequence[str | os.PathLike[str]], methods: Iterable[str]) -> int:
    """Copy into ``log`` the stored rows of the results directories ``dirs`` (``results.jsonl``
    of the benchmark or of a script) that ran a job's computation already: a method of
    ``methods`` with the same keywords and seed on the same resolved config up to
    :data:`NOT_TRAINING`. The copy keeps the stored numbers and provenance, takes the job's spec
    and tags and names the row it came from (tag ``copied_from``); :func:`run_specs` then skips
    the job. Returns how many rows were copied."""
    import dataclasses

    from reweight_gym.benchmark.store import load_rows
    from reweight_gym.config import EnvConfig

    # a row stored before a config field existed ran what the field's default does now
    defaults = {f.name: f.default for f in dataclasses.fields(EnvConfig)
                if f.default is not dataclasses.MISSING}

    def ident(cfg: dict[str, Any], method: str, kwargs: dict[str, Any], seed: int) -> str:
        cfg = {**defaults, **cfg}
        return json.dumps([{k: v for k, v in cfg.items() if k not in NOT_TRAINING}, method,
                           kwargs, seed], sort_keys=True)

    allowed = set(methods)
    stored = {}
    for d in dirs:
        for r in load_rows(d):
            stored[ident(r.config, r.method, r.spec.method_kwargs, r.seed)] = r
    have = {job_ident(r.get("tags", {}), r["key"]) for r in log.rows()}
    copied = 0
    for tags, spec in jobs:
        if spec.method not in allowed or job_ident(tags, spec.key) in have:
            continue
        r = stored.get(ident(spec.config().to_dict(), spec.method, spec.method_kwargs,
                             spec.seed))
        if r is None:
            continue
        row = dataclasses.replace(r, spec=spec, config=spec.config().to_dict()).to_row()
        row["tags"] = {**tags, "copied_from": r.key}
        log.append(row)
        copied += 1
    return copied


def run_specs(log: JsonlLog, jobs: Iterable[tuple[dict[str, Any], Any]],
              threads: int = 1) -> list[Any]:
    """Run every ``(tags, spec)`` whose tags and run key are not in ``log`` yet, appending each
    :class:`~reweight_gym.runner.RunResult` row (its ``tags``: ``tags`` and ``machine``) as it
    finishes; return the results of all jobs, stored and new."""
    import torch

    from reweight_gym.allocator import tune_cpu_allocator
    from reweight_gym.runner import RunResult, run

    stored = {job_ident(r.get("tags", {}), r["key"]): r for r in log.rows()}
    tune_cpu_allocator()
    torch.set_num_threads(threads)
    results = []
    for tags, spec in jobs:
        row = stored.get(job_ident(tags, spec.key))
        if row is not None:
            results.append(RunResult.from_row(row))
            continue
        t0 = time.time()
        result = run(spec)
        result.tags = {**tags, "machine": machine()}
        log.append(result.to_row())
        results.append(result)
        print(f"{' '.join(f'{k}={v}' for k, v in tags.items())} {spec.method} seed {spec.seed}: "
              f"final test {result.final_test_acc:.4f} val {result.val_acc_curve[-1]:.4f} "
              f"({time.time() - t0:.0f} s)", flush=True)
    return results


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0 for one value)."""
    x = np.asarray(values, dtype=np.float64)
    return float(x.mean()), float(x.std(ddof=1)) if len(x) > 1 else 0.0


def markdown_table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
