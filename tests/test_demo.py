"""``reweight-gym demo``, the main job of ``make demo``, end to end at a small budget.

The demo runs in a subprocess exactly as ``make demo`` starts it (the ``reweight-gym`` entry
point), only shorter: 4 agent episodes, 1 seed, 10 epochs per run. Every constant the demo uses
(its env, its baselines, their keywords) goes through the same path as in the full demo, so a
constant that names a method the demo does not run fails here.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from reweight_gym.experiments import DEMO_BASELINES

REWEIGHT_GYM = os.path.join(os.path.dirname(sys.executable), "reweight-gym")


@pytest.mark.slow
def test_demo_runs_end_to_end_and_prints_the_table(tmp_path: Path) -> None:
    pytest.importorskip("stable_baselines3")  # the demo's agent: the sb3 extra
    out = tmp_path / "demo"
    proc = subprocess.run([REWEIGHT_GYM, "demo", "--agent-episodes", "4", "--seeds", "1",
                           "--epochs", "10", "--out", str(out), "--quiet"],
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = proc.stdout
    # progress while the agent trains: which episode, the recent return
    assert re.search(r"\[demo\] episode 4/4: mean return of the last \d+ -?\d+\.\d+", text), text
    rows = {m.group(1): m.group(2) for m in
            re.finditer(r"^\| (\S+) \| 1 \| (\**\d+\.\d+)", text, flags=re.MULTILINE)}
    expected = {"uniform", "agent:law-ddpg", *DEMO_BASELINES}
    assert set(rows) == expected, text
    assert (out / "report.md").is_file() and (out / "results.jsonl").is_file()
    assert (out / "law-ddpg" / "final.zip").is_file()
    lines = (out / "results.jsonl").read_text().splitlines()
    assert len(lines) == len(expected)
    # each run in a process of its own: its peak memory is not the peak of the runs before it
    assert all(json.loads(line)["isolated"] for line in lines)


def test_demo_settings_are_checked_before_the_agent_trains(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch
                                                           ) -> None:
    """A constant of the demo that names no method fails at once, before any training (the
    agent's output directory is never created)."""
    from reweight_gym import experiments
    from reweight_gym.cli import main

    monkeypatch.setattr(experiments, "DEMO_BASELINES", (*experiments.DEMO_BASELINES, "fsr-raw"))
    out = tmp_path / "demo"
    assert main(["demo", "--agent-episodes", "4", "--out", str(out), "--quiet"]) == 2
    assert not (out / "law-ddpg").exists()
