"""Recorded episodes, replay and validation: the file holds what it should, a clean replay matches
bit for bit, a tampered file or results row is detected."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

import reweight_gym
from reweight_gym.benchmark import build_specs, run_benchmark
from reweight_gym.benchmark.bench import trajectory_path
from reweight_gym.benchmark.replay import compare, replay, validate_results
from reweight_gym.cli import main
from reweight_gym.envs.record import read_trajectory
from reweight_gym.runner import RunResult

REPO = Path(__file__).resolve().parents[1]
SMALL = {"noise_rate": 0.4, "epochs": 2, "num_stages": 2, "train_size": 200}


def _play(env: gym.Env, seed: int | None, action_seed: int = 0) -> tuple[list, list, dict]:
    """One episode with seeded random actions; (actions, rewards, last info)."""
    env.action_space.seed(action_seed)
    obs, info = env.reset(seed=seed)
    actions, rewards, done = [], [], False
    while not done:
        a = env.action_space.sample()
        obs, r, term, trunc, info = env.step(a)
        actions.append(a)
        rewards.append(r)
        done = term or trunc
    return actions, rewards, info


@pytest.fixture()
def recording(tmp_path: Path) -> tuple[Path, list, list, dict, gym.Env]:
    env = reweight_gym.RecordEpisode(gym.make("Reweight-Digits-v0", **SMALL), tmp_path / "rec")
    actions, rewards, info = _play(env, seed=3)
    env.close()
    assert len(env.paths) == 1
    return env.paths[0], actions, rewards, info, env


def test_trajectory_file_holds_config_seeds_steps_and_provenance(recording) -> None:
    path, actions, rewards, info, env = recording
    traj = read_trajectory(path)
    assert traj["kind"] == "env" and traj["env_id"] == "Reweight-Digits-v0"
    assert traj["config"] == json.loads(json.dumps(env.unwrapped.config.to_dict()))
    assert traj["reset"] == {"seed": 3, "resets_since_seed": 0, "options": None}
    assert traj["episode_seed"] == env.unwrapped.episode.trainer.seed
    assert traj["complete"] is True
    steps = traj["steps"]
    assert [s["reward"] for s in steps] == rewards
    assert [s["action"] for s in steps] == [a.tolist() for a in actions]
    assert [s["terminated"] for s in steps] == [False, True]
    assert not any(s["truncated"] for s in steps)
    assert steps[-1]["info"]["test_acc_target"] == info["test_acc_target"]
    assert {"acc_target", "acc_reference", "theta", "bias", "loss_gap",
            "class_weight_mean"} <= set(steps[0]["info"])
    prov = traj["provenance"]
    assert prov["package_version"] == reweight_gym.__version__
    assert prov["torch"] == torch.__version__ and prov["numpy"] == np.__version__
    assert prov["gymnasium"] == gym.__version__
    assert prov["torch_threads"] == torch.get_num_threads() and prov["device"] == "cpu"
    if (REPO / ".git").exists():  # a checkout: a commit of its history (HEAD may move on)
        is_ancestor = subprocess.run(["git", "merge-base", "--is-ancestor", prov["git_commit"],
                                      "HEAD"], cwd=REPO, capture_output=True)
        assert is_ancestor.returncode == 0 and isinstance(prov["git_dirty"], bool)
    assert path.stat().st_size < 20_000  # no per-sample arrays


def test_clean_replay_matches_bit_for_bit(recording) -> None:
    path = recording[0]
    report = replay(path)
    assert report.exact and report.ok
    assert report.differences == []
    assert [b for _, _, b in report.rewards] == recording[2]
    assert main(["replay", str(path)]) == 0


def _tamper(path: Path, out: Path, edit) -> Path:
    traj = json.loads(path.read_text())
    edit(traj)
    out.write_text(json.dumps(traj))
    return out


def test_tampered_reward_is_detected_at_its_stage(recording, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    def edit(t: dict) -> None:
        t["steps"][1]["reward"] += 1e-9  # the smallest honest-looking change

    bad = _tamper(recording[0], tmp_path / "bad.json", edit)
    report = replay(bad)
    assert not report.ok
    assert [(d.stage, d.key) for d in report.mismatches] == [("stage 1", "reward")]
    assert main(["replay", str(bad)]) == 1
    out = capsys.readouterr().out
    assert "MISMATCH" in out and "stage 1" in out
    # a tolerance above the change accepts it
    assert replay(bad, tolerance=1e-6, value_tolerance=0.0).ok


def test_a_difference_on_another_platform_is_reported_as_expected(
        recording, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A recording from another CPU type is compared within the tolerance, and a difference
    beyond it reads DIFFERS (expected there, exit status 3), not MISMATCH (a bug, status 1)."""
    def edit(t: dict) -> None:
        t["provenance"]["cpu"] = "x86_64 Some Other CPU"
        t["steps"][1]["reward"] += 1e3  # beyond any tolerance

    bad = _tamper(recording[0], tmp_path / "other.json", edit)
    report = replay(bad)
    assert not report.exact and report.tolerance > 0
    assert [k for k, _, _ in report.platform] == ["cpu"]
    assert report.verdict == "DIFFERS" and report.exit_status == 3
    assert main(["replay", str(bad)]) == 3
    out = capsys.readouterr().out
    assert "x86_64 Some Other CPU" in out and "result: DIFFERS" in out and "MISMATCH" not in out
    clean = replay(recording[0])
    assert clean.platform == [] and clean.verdict == "MATCH" and "the recording's" in "\n".join(
        clean.lines())


def test_tampered_action_is_detected(recording, tmp_path: Path) -> None:
    def edit(t: dict) -> None:
        t["steps"][0]["action"][0] = -t["steps"][0]["action"][0]

    report = replay(_tamper(recording[0], tmp_path / "bad.json", edit))
    assert not report.ok
    keys = {d.key for d in report.mismatches if d.stage == "stage 0"}
    assert "info.theta[0]" in keys  # the action the env received differs from the recorded one
    assert any(k.startswith("info.loss_target") or k == "reward" for k in keys)


def test_unseeded_resets_and_unfinished_episodes_replay(tmp_path: Path) -> None:
    env = reweight_gym.RecordEpisode(gym.make("Reweight-Digits-v0", **SMALL), tmp_path)
    _play(env, seed=5)
    _, rewards, _ = _play(env, seed=None, action_seed=1)  # episode seed drawn from np_random
    env.reset()
    env.step(env.action_space.sample())
    env.close()  # the third episode is unfinished
    assert len(env.paths) == 3
    second = read_trajectory(env.paths[1])
    assert second["reset"]["seed"] == 5 and second["reset"]["resets_since_seed"] == 1
    third = read_trajectory(env.paths[2])
    assert third["complete"] is False and len(third["steps"]) == 1
    report = replay(env.paths[1])
    assert report.ok and report.differences == []
    assert [b for _, _, b in report.rewards] == rewards
    assert replay(env.paths[2]).ok


def test_record_rejects_action_wrappers_and_other_envs(tmp_path: Path) -> None:
    env = gym.wrappers.RescaleAction(gym.make("Reweight-Digits-v0", **SMALL), np.float32(-2),
                                     np.float32(2))
    with pytest.raises(ValueError, match="action wrapper RescaleAction"):
        reweight_gym.RecordEpisode(env, tmp_path)
    with pytest.raises(ValueError, match="not a Reweight environment"):
        reweight_gym.RecordEpisode(gym.make("Pendulum-v1"), tmp_path)
    with pytest.raises(ValueError, match="invalid trajectory"):
        replay(_write(tmp_path / "x.json", {"format": "something else"}))
    with pytest.raises(FileNotFoundError, match="trajectory not found"):
        replay(tmp_path / "missing.json")
    assert main(["replay", str(tmp_path / "missing.json")]) == 2


def _write(path: Path, obj: object) -> Path:
    path.write_text(json.dumps(obj))
    return path


def test_compare_tolerances() -> None:
    assert compare("s", "k", 1.0, 1.0 + 1e-12, 0.0)[0].mismatch
    assert not compare("s", "k", 1.0, 1.0 + 1e-12, 1e-9)[0].mismatch
    assert compare("s", "k", 3, 4, 10.0)[0].mismatch  # integers must match exactly
    assert compare("s", "k", True, False, 10.0)[0].mismatch
    assert compare("s", "k", None, 0.5, 10.0)[0].mismatch  # NaN (null) against a number
    assert compare("s", "k", [1.0], [1.0, 2.0], 10.0)[0].key == "len(k)"
    assert [d.key for d in compare("s", "k", {"a": [0.0, 1.0]}, {"a": [0.0, 2.0]}, 0.5)] == \
        ["k.a[1]"]
    assert compare("s", "k", {"a": [0.5]}, {"a": [0.5]}, 0.0) == []


def _bench(tmp_path: Path, methods: list[str]) -> list[RunResult]:
    specs = build_specs("digits", "uniform-noise", methods, 1, "tiny",
                        settings=["noise_rate=0.4"],
                        env_overrides={"epochs": 2, "num_stages": 2, "train_size": 200})
    return run_benchmark(specs, tmp_path / "out", isolate=False, progress=False,
                         record=tmp_path / "rec")


def test_benchmark_trajectories_replay_and_results_validate(tmp_path: Path) -> None:
    rows = _bench(tmp_path, ["uniform", "focal", "easy_first"])
    for row in rows:
        path = trajectory_path(tmp_path / "rec", row.key)
        traj = read_trajectory(path)
        assert traj["kind"] == "run" and traj["result"]["stage_rewards"] == row.stage_rewards
        assert traj["provenance"] == row.provenance
        report = replay(path)
        assert report.ok and report.differences == [], report.lines()
    easy = next(r for r in rows if r.method == "easy_first")
    assert len(easy.stage_actions) == 2  # the policy's actions are recorded and replayed
    reports = validate_results(tmp_path / "out", sample=10)
    assert len(reports) == 3 and all(r.ok and not r.differences for r in reports)
    assert main(["validate", str(tmp_path / "out"), "--sample", "1"]) == 0


def test_validate_detects_a_tampered_row(tmp_path: Path) -> None:
    _bench(tmp_path, ["uniform", "focal"])
    results = tmp_path / "out" / "results.jsonl"
    rows = [json.loads(line) for line in results.read_text().splitlines()]
    rows[1]["stage_rewards"][0] += 0.5
    rows[1]["final_test_acc"] -= 0.0025
    results.write_text("".join(json.dumps(r) + "\n" for r in rows))
    reports = validate_results(tmp_path / "out", sample=2)
    bad = [r for r in reports if not r.ok]
    assert [r.source for r in bad] == [rows[1]["key"]]
    assert {(d.stage, d.key) for d in bad[0].mismatches} == {
        ("stage 0", "stage_rewards[0]"), ("end", "final_test_acc")}
    assert main(["validate", str(tmp_path / "out"), "--sample", "2"]) == 1


def test_evaluate_records_every_episode(tmp_path: Path, capsys: pytest.CaptureFixture[str]
                                        ) -> None:
    rc = main(["evaluate", "easy_first", "--env-kwargs", json.dumps(SMALL), "--episodes", "2",
               "--seed", "4", "--record", str(tmp_path)])
    assert rc == 0, capsys.readouterr().err
    files = sorted(tmp_path.glob("episode-*.json"))
    assert [read_trajectory(f)["reset"]["seed"] for f in files] == [4, 5]
    returns = [float(line.split("return ")[1].split()[0])
               for line in capsys.readouterr().out.splitlines() if line.startswith("episode ")]
    recorded = [sum(s["reward"] for s in read_trajectory(f)["steps"]) for f in files]
    assert recorded == pytest.approx(returns, abs=1e-4)  # printed with 4 decimals
    report = replay(files[1])
    assert report.ok and report.differences == []


def test_rows_written_before_provenance_still_validate(tmp_path: Path) -> None:
    """A results file of an older version (no provenance, no validation curve, no recorded
    actions) loads and validates on the values it has; its platform reads as unknown."""
    _bench(tmp_path, ["uniform", "easy_first"])
    results = tmp_path / "out" / "results.jsonl"
    old_keys = ("provenance", "val_acc_curve", "best_val_epoch", "best_val_acc",
                "test_acc_at_best_val", "stage_actions", "episode_seed", "schema_version")
    rows = [{k: v for k, v in json.loads(line).items() if k not in old_keys}
            for line in results.read_text().splitlines()]
    results.write_text("".join(json.dumps(r) + "\n" for r in rows))
    reports = validate_results(tmp_path / "out", sample=2)
    assert all(r.ok and not r.differences and not r.exact for r in reports)
    assert all("recorded without versions: its platform is unknown" in r.notes for r in reports)


def test_replay_and_validate_have_help(capsys: pytest.CaptureFixture[str]) -> None:
    for cmd in ("replay", "validate"):
        with pytest.raises(SystemExit) as exit_info:
            main([cmd, "--help"])
        assert exit_info.value.code == 0
        assert f"usage: reweight-gym {cmd}" in capsys.readouterr().out


def test_git_state_hashes_the_diff_of_a_dirty_tree(tmp_path: Path) -> None:
    """A row from a tree with uncommitted changes records the SHA-256 of ``git diff HEAD``: two
    different diffs on the same commit are told apart, a clean tree records none (issue 29.14)."""
    from reweight_gym.provenance import code_identity, describe, git_state

    pkg = tmp_path / "reweight_gym"
    pkg.mkdir()
    module = pkg / "provenance.py"
    module.write_text("x = 1\n")

    def git(*args: str) -> None:
        subprocess.run(["git", "-c", "user.email=t@t", "-c", "user.name=t", *args], cwd=tmp_path,
                       check=True, capture_output=True)

    git("init", "-q")
    git("add", ".")
    git("commit", "-qm", "one")
    commit, dirty, digest = git_state(str(module))
    assert not dirty and digest is None
    module.write_text("x = 2\n")
    _, dirty, first = git_state(str(module))
    module.write_text("x = 3\n")
    _, _, second = git_state(str(module))
    assert dirty and first and second and first != second and len(first) == 64
    module.write_text("x = 2\n")
    assert git_state(str(module))[2] == first  # the same change, the same hash
    (pkg / "untracked.py").write_text("y = 1\n")  # untracked files are not part of the code
    assert git_state(str(module))[2] == first
    module.write_text("x = 1\n")
    results = tmp_path / "benchmarks" / "results" / "rows.jsonl"  # stored results are not code
    results.parent.mkdir(parents=True)
    results.write_text("{}\n")
    git("add", ".")
    git("commit", "-qm", "two")
    results.write_text("{}\n{}\n")
    commit, dirty, digest = git_state(str(module))
    assert not dirty and digest is None
    module.write_text("x = 2\n")  # the same change as before, with the results changed too
    commit, dirty, digest = git_state(str(module))
    assert dirty and digest == first  # the results' change is not in the hash
    prov = {"package_version": "0", "git_commit": commit, "git_dirty": True,
            "git_diff_sha256": first, "torch": "t", "numpy": "n", "gymnasium": "g"}
    assert f"(uncommitted changes, diff {first[:10]})" in describe(code_identity(prov))
    other = code_identity({**prov, "git_diff_sha256": second})
    assert other != code_identity(prov)
    old = {k: v for k, v in prov.items() if k != "git_diff_sha256"}  # a row from before the hash
    assert "diff not recorded" in describe(code_identity(old))
    # a file outside any checkout of the package has no git state
    elsewhere = tmp_path / "elsewhere.py"
    elsewhere.write_text("")
    assert git_state(str(elsewhere)) is None
