"""Argument checks shared by the commands: one line on stderr naming the flag, exit status 2,
before any data is loaded or any work starts."""

from __future__ import annotations

import pytest

from reweight_gym.cli import main

SMALL = '{"preset": "tiny"}'


@pytest.mark.parametrize("argv", [
    ["episode", "--policy", "uniform", "--env-kwargs", SMALL],
    ["evaluate", "uniform", "--env-kwargs", SMALL],
    ["fit", "--policy", "uniform", "--dataset", "digits", "--preset", "tiny", "--out", "unused"],
    ["train", "--env-kwargs", SMALL, "--episodes", "30", "--out", "unused"],
])
@pytest.mark.parametrize("threads", ["0", "-1"])
def test_bad_threads_is_one_line_naming_the_flag(argv: list[str], threads: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert main([*argv, "--threads", threads]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and f"--threads {threads}" in err and "integer >= 1" in err, err
