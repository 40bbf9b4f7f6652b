"""``fit``: one classifier trained with a policy, an agent or a baseline, without a reference."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import reweight_gym  # noqa: F401  (registration)
from reweight_gym.benchmark.fit import fit, fit_to_dir
from reweight_gym.cli import main

SMALL = {"noise_rate": 0.4, "epochs": 4, "num_stages": 4, "train_size": 300, "test_size": 200}


def test_fit_is_the_env_episode_without_the_reference(tmp_path: Path) -> None:
    """A fixed policy fitted with seed s trains exactly the target network of the env's episode
    of reset(seed=s) on the data draw s (a benchmark row's seed) with the same actions: the same
    final test accuracy, bit for bit."""
    result = fit_to_dir(tmp_path, "easy_first", seed=3, **SMALL)
    env = gym.make("Reweight-Digits-v0", seed=3, **SMALL)
    env.reset(seed=3)
    done, info = False, {}
    actions = []
    while not done:
        action = np.zeros(env.action_space.shape, np.float32)
        action[env.unwrapped.feature_names.index("loss")] = -1.0  # easy_first
        actions.append(action.tolist())
        _, _, term, trunc, info = env.step(action)
        done = term or trunc
    assert result.final_test_acc == info["test_acc_target"]
    assert result.stage_actions == actions and result.stage_rewards is None
    stored = json.loads((tmp_path / "result.json").read_text())
    assert stored["final_test_acc"] == result.final_test_acc
    assert (tmp_path / "model.pt").is_file()
    lines = (tmp_path / "stages.csv").read_text().splitlines()
    assert len(lines) == 1 + SMALL["num_stages"]


def test_fit_trains_no_reference_and_runs_baselines() -> None:
    result = fit("mwnet", seed=0, **SMALL)
    assert result.method == "mwnet" and result.stage_actions is None
    assert result.stage_rewards is None and result.reference_final_test_acc is None
    assert len(result.stage_noisy_weight_mean) == SMALL["num_stages"]


@pytest.mark.slow
def test_fit_applies_a_trained_agent_with_its_own_observation(tmp_path: Path) -> None:
    """An SB3 agent trained on an instance set with the transfer observation is applied to
    another dataset config; its num_stages / obs_mode come from its agent.json."""
    pytest.importorskip("stable_baselines3")
    from reweight_gym.agents.sb3 import train_sb3
    from reweight_gym.agents.settings import DDPG_DEFAULTS

    instance_set = {"name": "s", "defaults": {"preset": "tiny", "epochs": 4, "num_stages": 4,
                                              "train_size": 200, "obs_mode": "transfer",
                                              "episode_seeds": 2},
                    "instances": [{"name": "a", "noise_rate": 0.4}, {"name": "b"}]}
    train_sb3("Reweight-Instances-v0", {"instance_set": instance_set}, str(tmp_path / "agent"),
              total_steps=4 * 4, n_envs=1, subprocess=False,
              settings=DDPG_DEFAULTS.replace(learning_starts_episodes=2))
    rc = main(["fit", "--policy", str(tmp_path / "agent"), "--env-kwargs",
               json.dumps({"noise_rate": 0.2, "epochs": 8, "train_size": 300}), "--out",
               str(tmp_path / "fit"), "--quiet"])
    assert rc == 0
    stored = json.loads((tmp_path / "fit" / "result.json").read_text())
    assert stored["config"]["obs_mode"] == "transfer" and stored["config"]["num_stages"] == 4
    assert len(stored["stage_actions"]) == 4 and stored["config"]["epochs"] == 8


def test_fit_bad_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["fit", "--policy", "nope", "--out", str(tmp_path)]) == 2
    assert "invalid method 'nope'" in capsys.readouterr().err
    assert main(["fit", "--policy", str(tmp_path / "missing.zip"), "--out", str(tmp_path)]) == 2
    assert "checkpoint not found" in capsys.readouterr().err
