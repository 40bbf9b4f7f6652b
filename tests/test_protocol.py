"""agents/protocol.py: the evaluation protocol's episodes, play(), statistics and the search."""

from __future__ import annotations

import json

import gymnasium as gym
import numpy as np
import pytest

from reweight_gym.agents.policies import make_policy
from reweight_gym.agents.protocol import (
    EVALUATION_SEEDS,
    HELDOUT_DATA_SEED,
    SEARCH_SEED_RANGE,
    TRAIN_DATA_SEED,
    VALIDATION_SEEDS,
    ConstantPolicy,
    constant_action_search,
    evaluation_sets,
    paired_comparison,
    play,
    spaces,
    validation_set,
)
from reweight_gym.config import EnvConfig

CONFIG = {"noise_rate": 0.4, "epochs": 2, "num_stages": 2, "train_size": 256, "val_size": 64,
          "test_size": 64}


def test_episode_sets_are_disjoint() -> None:
    lo, hi = SEARCH_SEED_RANGE
    assert not set(VALIDATION_SEEDS) & set(EVALUATION_SEEDS)
    assert all(not lo <= s < hi for s in (*VALIDATION_SEEDS, *EVALUATION_SEEDS))
    sets = evaluation_sets({**CONFIG, "seed": 7})
    assert [s.config["seed"] for s in sets] == [TRAIN_DATA_SEED, HELDOUT_DATA_SEED]
    assert validation_set(CONFIG).config["seed"] == TRAIN_DATA_SEED
    assert all(s.reset_seeds == EVALUATION_SEEDS for s in sets)


def test_play_equals_the_environment() -> None:
    """play() is env.reset(seed) + steps: same return, same final test accuracies."""
    env = gym.make("Reweight-Digits-v0", **CONFIG)
    policy = make_policy("easy_first", env)
    obs, _ = env.reset(seed=123)
    total, done, info = 0.0, False, {}
    while not done:
        obs, r, term, trunc, info = env.step(policy.predict(obs)[0])
        total += float(r)
        done = term or trunc
    out = play("easy_first", CONFIG, 123)
    assert out.episode_return == pytest.approx(total, abs=0.0)
    assert out.test_acc_target == info["test_acc_target"]
    assert out.test_acc_reference == info["test_acc_reference"]
    same = play(policy, CONFIG, 123, label="object")  # an object with predict: the same episode
    assert same.episode_return == out.episode_return and same.method == "object"
    uniform = play("uniform", CONFIG, 123)
    assert uniform.episode_return == 0.0
    assert uniform.test_acc_target == uniform.test_acc_reference == out.test_acc_reference


def test_paired_comparison() -> None:
    pc = paired_comparison([1.0, 2.0, 3.0, 4.0], [0.5, 2.0, 2.0, 5.0])
    assert pc["n"] == 4 and pc["mean_diff"] == pytest.approx(0.125)
    assert (pc["wins"], pc["ties"], pc["losses"]) == (2, 1, 1)
    assert pc["sign_test_p"] == pytest.approx(1.0)
    assert paired_comparison([1.0, 1.0], [1.0, 1.0])["t_test_p"] == 1.0
    with pytest.raises(ValueError, match="equal-length"):
        paired_comparison([1.0], [1.0, 2.0])


def test_constant_policy_validates_its_action() -> None:
    cfg = EnvConfig.resolve("digits", "tiny", **CONFIG)
    obs_space, act_space = spaces(cfg, 10)
    a = np.linspace(-1, 1, act_space.shape[0])
    assert np.array_equal(ConstantPolicy(obs_space, act_space, a).predict(obs_space.sample())[0],
                          a.astype(np.float32))
    with pytest.raises(ValueError, match="invalid action"):
        ConstantPolicy(obs_space, act_space, [2.0] * act_space.shape[0])


def test_constant_action_search_is_seeded_and_resumes(tmp_path) -> None:
    log = tmp_path / "search.jsonl"
    res = constant_action_search(CONFIG, 3, seed=5, log_path=str(log))
    assert res["search_episodes"] == 3 and res["rounds"] == [[3, 1]]
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert len(rows) == 3 and all(SEARCH_SEED_RANGE[0] <= r["episode"] < SEARCH_SEED_RANGE[1]
                                  for r in rows)
    best = max(rows, key=lambda r: r["episode_return"])
    assert res["action"] == best["action"]

    def must_not_play(*args, **kwargs):  # every episode is in the log: nothing is replayed
        raise AssertionError("the search replayed a logged episode")

    again = constant_action_search(CONFIG, 3, seed=5, log_path=str(log), play_fn=must_not_play)
    assert again["action"] == res["action"]


def test_constant_action_search_on_an_instance_set_draws_its_episodes(tmp_path) -> None:
    from reweight_gym.agents.protocol import constant_action_search_set

    instance_set = {"name": "s", "defaults": {"preset": "tiny", "epochs": 2, "num_stages": 2,
                                              "train_size": 200, "episode_seeds": [3, 4]},
                    "instances": [{"name": "a", "noise_rate": 0.4}, {"name": "b"}]}
    log = tmp_path / "search.jsonl"
    res = constant_action_search_set(instance_set, 3, seed=1, log_path=str(log),
                                     env_kwargs={"reference_cache": str(tmp_path / "cache")})
    rows = [json.loads(line) for line in log.read_text().splitlines()]
    assert res["search_episodes"] == 3 and len(rows) == 3
    assert all(r["episode"][0] in ("a", "b") and r["episode"][1] in (3, 4) for r in rows)
    again = constant_action_search_set(instance_set, 3, seed=1, log_path=str(log))
    assert again["action"] == res["action"]
