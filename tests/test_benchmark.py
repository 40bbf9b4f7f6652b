"""Benchmark harness: comparable rows, report = stored numbers, kill-and-resume, Ray = local."""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import gymnasium as gym
import pytest
from procs import kill_session, session_pids

import reweight_gym  # noqa: F401
from reweight_gym.benchmark import ResultsStore, build_specs, run_benchmark, select_settings
from reweight_gym.benchmark.report import write_report
from reweight_gym.runner import RunResult

FAST = {"epochs": 4, "num_stages": 2, "train_size": 400}
# what differs between identical runs: timing, memory, where it ran, and the provenance (a git
# dirty flag can change while the suite runs)
TIMING = {"seconds", "peak_rss_mb", "peak_rss_start_mb", "time_overhead", "memory_overhead",
          "isolated", "torch_threads", "provenance"}


def _strip(result: RunResult) -> dict:
    return {k: v for k, v in result.to_row().items() if k not in TIMING}


def _specs(methods: list[str], seeds: int = 2, **kw):
    return build_specs("digits", "uniform-noise", methods, seeds, "tiny",
                       settings=["noise_rate=0.4"], env_overrides={**FAST, **kw})


def test_three_methods_two_seeds_and_report_matches_store(tmp_path: Path) -> None:
    rows = run_benchmark(_specs(["uniform", "focal", "easy_first"]), tmp_path, isolate=False,
                         progress=False)
    assert len(rows) == 6 and {r.method for r in rows} == {"uniform", "focal", "easy_first"}
    for r in rows:
        assert len(r.test_acc_curve) == 4 and r.final_test_acc == r.test_acc_curve[-1]
        assert len(r.val_acc_curve) == 4
        assert r.best_val_epoch == r.val_acc_curve.index(max(r.val_acc_curve)) + 1
        assert r.test_acc_at_best_val == r.test_acc_curve[r.best_val_epoch - 1]
        assert r.provenance["torch_threads"] == r.torch_threads
        assert len(r.stage_rewards) == 2
        if r.method == "uniform":
            assert r.cumulative_reward == 0.0 and r.noisy_weight_mean == 1.0
    # every row of a seed shares the reference (the uniform run): same data and reference acc
    by_seed = {}
    for r in rows:
        by_seed.setdefault(r.seed, set()).add(r.reference_final_test_acc)
    assert all(len(v) == 1 for v in by_seed.values())
    rep = write_report(str(tmp_path))
    stored = [r for r in rows if r.method == "focal"]
    mean_final = sum(r.final_test_acc for r in stored) / 2
    with open(tmp_path / "results.csv") as fh:
        csv_rows = {row["method"]: row for row in csv.DictReader(fh)}
    assert float(csv_rows["focal"]["final_test_acc_mean"]) == pytest.approx(mean_final)
    # the sample standard deviation over the seeds (ddof=1): |a - b| / sqrt(2) for two seeds
    a, b = (r.final_test_acc for r in stored)
    assert a != b
    assert float(csv_rows["focal"]["final_test_acc_std"]) == pytest.approx(abs(a - b) / 2**0.5)
    assert f"{100 * mean_final:.2f}" in rep["markdown"]
    assert any(f.endswith(".png") for f in rep["files"])
    for f in rep["files"]:
        assert os.path.getsize(f) > 0


def test_identical_seeds_give_identical_rows(tmp_path: Path) -> None:
    a = run_benchmark(_specs(["uniform", "mwnet"], seeds=1), tmp_path / "a", isolate=False,
                      progress=False)
    b = run_benchmark(_specs(["uniform", "mwnet"], seeds=1), tmp_path / "b", isolate=False,
                      progress=False)
    assert [_strip(r) for r in a] == [_strip(r) for r in b]
    c = run_benchmark(build_specs("digits", "uniform-noise", ["uniform"], [1], "tiny",
                                  settings=["noise_rate=0.4"], env_overrides=FAST),
                      tmp_path / "c", isolate=False, progress=False)
    assert c[0].test_acc_curve != a[0].test_acc_curve


def test_runner_reward_equals_the_env_duplicate_network_reward(tmp_path: Path) -> None:
    """The benchmark's episode with the stored reference (the uniform row of the seed) earns
    exactly the rewards of the environment's episode with a live reference network."""
    from reweight_gym.agents.policies import make_policy

    rows = run_benchmark(_specs(["uniform", "easy_first"], seeds=1), tmp_path, isolate=False,
                         progress=False)
    easy = next(r for r in rows if r.method == "easy_first")
    env = gym.make("Reweight-Digits-v0", noise_rate=0.4, noise_type="uniform", seed=0, **FAST)
    policy = make_policy("easy_first", env)
    obs, _ = env.reset(seed=0)
    rewards, done, info = [], False, {}
    while not done:
        obs, r, term, trunc, info = env.step(policy.predict(obs)[0])
        rewards.append(r)
        done = term or trunc
    assert rewards == easy.stage_rewards
    assert info["test_acc_target"] == easy.final_test_acc
    assert info["test_acc_reference"] == easy.reference_final_test_acc


def test_best_epoch_is_chosen_on_validation_without_the_test_set(tmp_path: Path) -> None:
    """The same run scored on two test sets: the validation curve and the chosen epoch do not
    move; on the small test set the test-best epoch is another one, and the row reports the test
    accuracy at the validation-best epoch, not the (higher) oracle maximum."""
    kw = {"epochs": 8, "num_stages": 2, "train_size": 400, "lr_schedule": "constant",
          "weight_decay": 0.0}
    rows = {}
    for test_size in (400, 40):
        specs = build_specs("digits", "uniform-noise", ["uniform"], [0], "tiny",
                            settings=["noise_rate=0.4"],
                            env_overrides={**kw, "test_size": test_size})
        rows[test_size] = run_benchmark(specs, tmp_path / str(test_size), isolate=False,
                                        progress=False)[0]
    big, small = rows[400], rows[40]
    assert big.test_acc_curve != small.test_acc_curve
    assert big.val_acc_curve == small.val_acc_curve
    val = big.val_acc_curve
    assert big.best_val_epoch == small.best_val_epoch == val.index(max(val)) + 1
    for r in (big, small):
        assert r.test_acc_at_best_val == r.test_acc_curve[r.best_val_epoch - 1]
    test = small.test_acc_curve
    assert test.index(max(test)) + 1 != small.best_val_epoch
    assert small.test_acc_at_best_val < max(test)
    # the oracle (test-chosen) best is recorded for diagnosing memorisation, never reported
    assert small.oracle_best_test_acc == max(test)
    assert "oracle" not in write_report(str(tmp_path / "40"), plots=False)["markdown"]


def test_report_states_versions_and_warns_when_a_table_mixes_them(tmp_path: Path) -> None:
    rows = run_benchmark(_specs(["uniform", "focal"], seeds=1), tmp_path, isolate=False,
                         progress=False)
    prov = rows[0].provenance
    for key in ("package_version", "torch", "numpy", "gymnasium", "torch_threads", "device"):
        assert key in prov
    md = write_report(str(tmp_path), plots=False)["markdown"]
    assert f"torch {prov['torch']}, numpy {prov['numpy']}" in md
    assert "different code or library versions" not in md
    # one row from another torch, one without provenance (written before it was recorded)
    other = dict(rows[1].to_row(), provenance={**prov, "torch": "0.0.0"})
    legacy = {k: v for k, v in rows[1].to_row().items()
              if k not in ("provenance", "val_acc_curve", "schema_version")}
    legacy.update(key=legacy["key"].replace("|0", "|1"), seed=1, spec={**legacy["spec"], "seed": 1})
    results = tmp_path / "results.jsonl"
    results.write_text(json.dumps(rows[0].to_row()) + "\n" + json.dumps(other) + "\n"
                       + json.dumps(legacy) + "\n")
    md = write_report(str(tmp_path), plots=False)["markdown"]
    assert "different code or library versions" in md
    assert "torch 0.0.0" in md and "unknown (written before versions were recorded)" in md
    with open(tmp_path / "results.csv") as fh:
        software = {row["method"]: row["software"] for row in csv.DictReader(fh)}
    assert software["uniform"].startswith("reweight-gym")
    assert software["focal"].startswith("mixed:")


def test_suites_and_bad_input(tmp_path: Path) -> None:
    assert [s["noise_rate"] for s in select_settings("uniform-noise")] == [0.0, 0.2, 0.4, 0.6]
    assert [s["imbalance_factor"] for s in select_settings("long-tail")] == [10, 50, 100, 200]
    assert len(select_settings("noisy-long-tail", ["imbalance_factor=100"])) == 2
    # pair flip (c -> c+1) is its own suite, distinct from MW-Net's two-class flip
    assert select_settings("pair-flip", ["noise_rate=0.4"]) == [
        {"noise_type": "pair_flip", "noise_rate": 0.4}]
    assert {s["noise_type"] for s in select_settings("flip-noise")} == {"flip2"}
    with pytest.raises(ValueError, match="suite='nope'.*uniform-noise"):
        select_settings("nope")
    with pytest.raises(ValueError, match="no setting"):
        select_settings("uniform-noise", ["noise_rate=0.3"])
    with pytest.raises(ValueError, match="invalid method 'magic'.*mwnet"):
        _specs(["magic"])
    with pytest.raises(ValueError, match="invalid method 'easy-first'.*easy_first, hard_first"):
        _specs(["easy-first"])
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        _specs([str(tmp_path / "missing" / "agent.zip")])


def _cli(*args: str, cwd: Path | None = None, **kw) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "reweight_gym.cli", *args], capture_output=True,
                          text=True, cwd=cwd, **kw)


@pytest.mark.parametrize("args, needle", [
    (["benchmark", "--suite", "nope", "--out", "X"], "suite='nope'"),
    (["benchmark", "--methods", "uniform,magic", "--out", "X"], "invalid method 'magic'"),
    (["benchmark", "--methods", "missing/agent.zip", "--out", "X"], "checkpoint not found"),
    (["benchmark", "--out", "/proc/forbidden/x", "--seeds", "1", "--env-kwargs",
      json.dumps(FAST)], "--out"),
    (["report", "/nonexistent/results"], "no results found"),
    (["evaluate", "missing/agent.zip", "--episodes", "1"], "not found"),
    (["episode", "--policy", "easy-first"], "unknown policy 'easy-first': allowed: uniform"),
])
def test_cli_bad_arguments_give_one_line_and_nonzero_exit(args: list[str], needle: str) -> None:
    out = _cli(*args)
    assert out.returncode != 0
    assert needle in out.stderr + out.stdout
    assert "Traceback" not in out.stderr
    assert len(out.stderr.strip().splitlines()) == 1


def test_every_command_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    from reweight_gym.cli import main

    for cmd in ("benchmark", "report", "demo", "train", "evaluate", "episode"):
        with pytest.raises(SystemExit) as exit_info:
            main([cmd, "--help"])
        assert exit_info.value.code == 0
        assert f"usage: reweight-gym {cmd}" in capsys.readouterr().out


@pytest.mark.slow
def test_kill_and_resume_loses_nothing_and_duplicates_nothing(tmp_path: Path) -> None:
    out = tmp_path / "run"
    # 6 runs: the kill comes after the first row, 5 runs (seconds each: 100 epochs)
    # before the last one, so even a parent starved of CPU for seconds kills the benchmark mid-way
    args = ["benchmark", "--methods", "uniform,focal", "--seeds", "3",
            "--settings", "noise_rate=0.4", "--env-kwargs",
            json.dumps({**FAST, "epochs": 100, "num_stages": 4}), "--out", str(out), "--quiet",
            "--no-report"]
    proc = subprocess.Popen([sys.executable, "-m", "reweight_gym.cli", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    results = out / "results.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline:
        if results.exists() and results.read_text().count("\n") >= 1:
            break
        time.sleep(0.2)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    before = ResultsStore(results).rows
    assert 1 <= len(before) < 6  # killed mid-way
    done = _cli(*args)
    assert done.returncode == 0, done.stderr
    lines = results.read_text().splitlines()
    keys = [json.loads(line)["key"] for line in lines]
    assert len(keys) == len(set(keys)) == 6
    after = ResultsStore(results).rows
    for k, row in before.items():
        assert after[k] == row  # finished work kept as it was


@pytest.mark.slow
def test_killing_the_benchmark_process_alone_leaves_no_run_behind(tmp_path: Path) -> None:
    """An isolated run is a child of the fork server, not of the benchmark process: killed with
    SIGKILL (its session left alone), the benchmark takes its run down with it, and the fork
    server and resource tracker exit after it."""
    args = ["benchmark", "--methods", "uniform", "--seeds", "1", "--settings", "noise_rate=0.4",
            "--env-kwargs", json.dumps({**FAST, "epochs": 100_000}), "--out", str(tmp_path),
            "--quiet", "--no-report"]
    proc = subprocess.Popen([sys.executable, "-m", "reweight_gym.cli", *args],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        # the benchmark, the resource tracker, the fork server and the run
        while len(session_pids(proc.pid)) < 4 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(session_pids(proc.pid)) == 4, session_pids(proc.pid)
        proc.kill()
        proc.wait()
        deadline = time.monotonic() + 30
        while session_pids(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert session_pids(proc.pid) == []
    finally:
        kill_session(proc.pid)


@pytest.mark.slow
def test_an_isolated_run_sees_the_environment_of_its_start(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """The fork server starts once, with the environment of that moment; each run gets the
    benchmark's environment as it is when the run starts (here: the cache the data goes to)."""
    for name in ("a", "b"):
        monkeypatch.setenv("REWEIGHT_GYM_CACHE", str(tmp_path / name))
        rows = run_benchmark(_specs(["uniform"], seeds=1), tmp_path / f"out-{name}",
                             progress=False, threads=1)
        assert rows[0].isolated
        assert (tmp_path / name / "digits-v1.npz").is_file()


@pytest.mark.slow
def test_ray_rows_equal_local_rows(tmp_path: Path) -> None:
    ray = pytest.importorskip("ray")  # the [rllib] extra; skipped where Ray is not installed

    specs = _specs(["uniform", "focal"], seeds=1)
    # the default local mode (each run in a fresh process), as the Ray tasks
    local = run_benchmark(specs, tmp_path / "local", progress=False, threads=1)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        remote = run_benchmark(specs, tmp_path / "ray", use_ray=True, progress=False, threads=1)
    finally:
        ray.shutdown()
    for a, b in zip(local, remote):
        ra, rb = _strip(a), _strip(b)
        diff = {k: (ra.get(k), rb.get(k)) for k in set(ra) | set(rb) if ra.get(k) != rb.get(k)}
        assert not diff, diff
    assert len(local) == len(remote) == 2
    assert all(r.isolated for r in remote + local)


def test_tensorboard_scalars_are_written(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    specs = build_specs("digits", "uniform-noise", ["uniform"], 1, "tiny",
                        settings=["noise_rate=0.4"], env_overrides=FAST)
    rows = run_benchmark(specs, tmp_path, isolate=False, progress=False, tensorboard=True)
    runs = list((tmp_path / "tensorboard").iterdir())
    assert len(runs) == 1
    acc = EventAccumulator(str(runs[0]))
    acc.Reload()
    values = [e.value for e in acc.Scalars("test_acc")]
    assert values == pytest.approx(rows[0].test_acc_curve)
    assert len(acc.Scalars("val_acc")) == FAST["num_stages"]
