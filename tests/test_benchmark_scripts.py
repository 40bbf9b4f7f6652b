"""The measurement scripts' own argument parsing (the scripts themselves run in benchmarks/)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_agent_learning_baseline_entries_name_their_options():
    spec = _load("agent_learning").baseline_spec
    demo = {"mwnet": {"meta_lr": 1e-4}}
    assert spec("mwnet", demo) == ("mwnet", {"meta_lr": 1e-4})  # the demo's options
    assert spec("gdw", demo) == ("gdw", None)
    assert spec("mwnet:defaults", demo) == ("mwnet", None)  # the package's defaults
    assert spec("mwnet:meta_lr=0.001", demo) == ("mwnet", {"meta_lr": 0.001})
    assert spec("mwnet:meta_lr=paper+jvp=forward_ad", demo) == (
        "mwnet", {"meta_lr": "paper", "jvp": "forward_ad"})
    with pytest.raises(SystemExit, match="key=value"):
        spec("mwnet:meta_lr", demo)
