"""Resumable results store: one :class:`~reweight_gym.runner.RunResult` row per finished run,
appended atomically.

Each row (:meth:`RunResult.to_row`) is serialised first and written with a single ``os.write`` on
an ``O_APPEND`` descriptor, then fsync'ed: a killed process leaves either the whole line or
nothing. A trailing fragment without its newline (possible only if the machine itself dies
mid-write) is ignored on load and cut off before the next append, so the file never stays
corrupt. Rows of the shapes before the versioned schema load too (:meth:`RunResult.from_row`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from reweight_gym.jsonable import jsonable
from reweight_gym.runner import RunResult


class ResultsStore:
    """``results.jsonl`` in an output directory; results are keyed by their run's key."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.rows: dict[str, RunResult] = {}
        self._load()

    def _load(self) -> None:
        if not self.path.exists():
            return
        data = self.path.read_bytes()
        good = data.rfind(b"\n") + 1
        if good < len(data):  # cut an unterminated fragment
            with open(self.path, "r+b") as fh:
                fh.truncate(good)
        for line in data[:good].splitlines():
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            result = RunResult.from_row(row)
            self.rows[result.key] = result

    def __contains__(self, key: str) -> bool:
        return key in self.rows

    def get(self, key: str) -> RunResult | None:
        return self.rows.get(key)

    def append(self, result: RunResult) -> None:
        """Write ``result`` (as strict JSON: NaN becomes null) and keep what a reload gives."""
        row = jsonable(result.to_row())
        line = (json.dumps(row, allow_nan=False) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
        self.rows[result.key] = RunResult.from_row(row)


def load_rows(directory: str | os.PathLike[str]) -> list[RunResult]:
    """All results of ``DIR/results.jsonl`` (in file order, last write of a key wins)."""
    path = Path(directory) / "results.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"no results found: {path} does not exist")
    return list(ResultsStore(path).rows.values())
