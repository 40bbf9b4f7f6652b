"""Resumable results store: one JSON line per finished run, appended atomically.

Each row is serialised first and written with a single ``os.write`` on an ``O_APPEND``
descriptor, then fsync'ed: a killed process leaves either the whole line or nothing. A trailing
fragment without its newline (possible only if the machine itself dies mid-write) is ignored on
load and cut off before the next append, so the file never stays corrupt.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from reweight_gym.jsonable import jsonable


class ResultsStore:
    """``results.jsonl`` in an output directory; rows are keyed by ``row["key"]``."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.rows: dict[str, dict[str, Any]] = {}
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
            self.rows[row["key"]] = row

    def __contains__(self, key: str) -> bool:
        return key in self.rows

    def get(self, key: str) -> dict[str, Any] | None:
        return self.rows.get(key)

    def append(self, row: dict[str, Any]) -> None:
        """Write ``row`` (as strict JSON: NaN becomes null) and keep that same form in memory."""
        row = jsonable(row)
        line = (json.dumps(row, allow_nan=False) + "\n").encode()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
        self.rows[row["key"]] = row


def load_rows(directory: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """All rows of ``DIR/results.jsonl`` (in file order, last write of a key wins)."""
    path = Path(directory) / "results.jsonl"
    if not path.exists():
        raise FileNotFoundError(f"no results found: {path} does not exist")
    return list(ResultsStore(path).rows.values())
