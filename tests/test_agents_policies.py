"""Fixed policies, evaluation / transfer and the CLI of the agents package."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest

import reweight_gym  # noqa: F401
from reweight_gym.agents.cli import add_evaluate_parser, add_train_parser
from reweight_gym.agents.evaluate import check_compatible, evaluate, load_agent, weight_vs_loss
from reweight_gym.agents.policies import (
    EasyFirstPolicy,
    HardFirstPolicy,
    RandomPolicy,
    UniformPolicy,
    make_policy,
)

ENV_ID = "Reweight-Digits-v0"

KW = {"preset": "tiny", "noise_rate": 0.4, "seed": 0}


@pytest.fixture(scope="module")
def env() -> gym.Env:
    e = gym.make(ENV_ID, **KW)
    yield e
    e.close()


def run_cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="reweight-gym")
    sub = parser.add_subparsers()
    add_train_parser(sub)
    add_evaluate_parser(sub)
    args = parser.parse_args(argv)
    return args.func(args)


def test_light_import() -> None:
    import subprocess
    import sys

    code = ("import sys, reweight_gym, reweight_gym.agents, reweight_gym.agents.policies, "
            "reweight_gym.agents.evaluate, reweight_gym.baselines; "
            "bad = [m for m in sys.modules if m.split('.')[0] in ('ray', 'stable_baselines3')]; "
            "print(bad); assert not bad")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_policy_actions_follow_feature_layout(env: gym.Env) -> None:
    names = env.unwrapped.feature_names
    li = names.index("loss")
    obs, _ = env.reset(seed=0)
    easy = make_policy("easy_first", env)
    hard = make_policy("hard_first", env)
    uni = make_policy("uniform", env)
    assert isinstance(easy, EasyFirstPolicy) and isinstance(hard, HardFirstPolicy)
    a_easy, state = easy.predict(obs)
    assert state is None
    assert a_easy.shape == env.action_space.shape and a_easy[li] == -1.0
    assert np.count_nonzero(a_easy) == 1
    assert hard.predict(obs)[0][li] == 1.0
    assert isinstance(uni, UniformPolicy) and not np.any(uni.predict(obs)[0])
    batch, _ = easy.predict(np.stack([obs, obs, obs]))
    assert batch.shape == (3, *env.action_space.shape)
    with pytest.raises(ValueError, match="incompatible observation shape"):
        easy.predict(np.zeros(3))


def test_random_policy_is_seeded_and_in_bounds(env: gym.Env) -> None:
    obs, _ = env.reset(seed=0)
    p1, p2 = make_policy("random", env, seed=3), make_policy("random", env, seed=3)
    assert isinstance(p1, RandomPolicy)
    a1 = [p1.predict(obs)[0] for _ in range(4)]
    a2 = [p2.predict(obs)[0] for _ in range(4)]
    np.testing.assert_array_equal(np.stack(a1), np.stack(a2))
    assert not np.allclose(a1[0], a1[1])
    assert all(env.action_space.contains(a) for a in a1)


def test_bad_policy_inputs(env: gym.Env) -> None:
    with pytest.raises(ValueError, match="unknown policy"):
        make_policy("greedy", env)
    # one spelling: the hyphenated one is an error that names it and lists the allowed names
    with pytest.raises(ValueError, match=r"unknown policy 'easy-first'.*easy_first, hard_first"):
        make_policy("easy-first", env)
    with pytest.raises(ValueError, match=r"unknown policy 'hard-first'.*hard_first"):
        load_agent("hard-first", env)
    with pytest.raises(ValueError, match="incompatible action space"):
        UniformPolicy(env.observation_space, gym.spaces.Discrete(3))
    with pytest.raises(ValueError, match="'loss' feature"):
        make_policy("easy_first", observation_space=env.observation_space,
                    action_space=env.action_space, feature_names=["entropy"] * 13)


def test_uniform_zero_return_and_easy_first_downweights_noise() -> None:
    uni = evaluate(make_policy("uniform", gym.make(ENV_ID, **KW)), ENV_ID, KW, episodes=2)
    assert uni.returns == [0.0, 0.0]
    assert uni.test_acc_target == uni.test_acc_reference
    assert uni.lengths == [4, 4]
    assert uni.noisy_weight_mean == [1.0, 1.0] and uni.clean_weight_mean == [1.0, 1.0]
    env = gym.make(ENV_ID, **KW)
    easy = evaluate(make_policy("easy_first", env), ENV_ID, KW, episodes=1)
    hard = evaluate(make_policy("hard_first", env), ENV_ID, KW, episodes=1)
    # noisy labels have large losses: easy-first gives them less weight, hard-first more
    assert easy.noisy_weight_mean[0] < easy.clean_weight_mean[0]
    assert hard.noisy_weight_mean[0] > hard.clean_weight_mean[0]
    assert easy.returns[0] != 0.0


def test_evaluation_is_paired_by_seed() -> None:
    env = gym.make(ENV_ID, **KW)
    r1 = evaluate(make_policy("hard_first", env), ENV_ID, KW, episodes=2, seed=7)
    r2 = evaluate(make_policy("hard_first", env), ENV_ID, KW, episodes=2, seed=7)
    assert r1.returns == r2.returns
    assert r1.returns[0] != r1.returns[1]  # different episode seeds, different runs


def test_transfer_to_other_config_and_incompatible_spaces() -> None:
    src = gym.make(ENV_ID, **KW)
    policy = make_policy("easy_first", src)
    # same action/obs layout, other noise and network width: a transfer
    other = {"preset": "tiny", "noise_rate": 0.2, "model_kwargs": {"hidden": [256, 256]}, "seed": 1}
    res = evaluate(policy, ENV_ID, other, episodes=1)
    assert len(res.returns) == 1 and np.isfinite(res.test_acc_target[0])
    with pytest.raises(ValueError, match="incompatible spaces"):
        evaluate(policy, ENV_ID, {"preset": "tiny", "num_stages": 2}, episodes=1)
    with pytest.raises(ValueError, match="incompatible spaces"):
        check_compatible(policy, gym.make("Pendulum-v1"))


def test_weight_vs_loss_shapes() -> None:
    names = ["loss", "entropy", "density"] + [f"label_{i}" for i in range(10)]
    easy = np.zeros(14)
    easy[0] = -1.0
    w = weight_vs_loss(easy, names)
    assert all(a > b for a, b in zip(w, w[1:]))  # decreasing in the loss
    assert w[2] == pytest.approx(1.0)
    hard = -easy
    wh = weight_vs_loss(hard, names)
    assert all(a < b for a, b in zip(wh, wh[1:]))


def test_load_agent_errors(env: gym.Env, tmp_path) -> None:
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        load_agent(str(tmp_path / "nope.zip"), env)
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        load_agent(str(tmp_path), env)  # an empty directory
    assert isinstance(load_agent("uniform", env), UniformPolicy)


def test_load_agent_needs_no_rllib_for_a_non_rllib_directory(tmp_path) -> None:
    """A directory that holds no RLlib checkpoint is refused without importing Ray, so an
    install with only the [sb3] extra gets the same one-line error."""
    code = ("import sys\nfrom reweight_gym.agents.evaluate import load_agent\ntry:\n"
            f"    load_agent({str(tmp_path)!r})\nexcept FileNotFoundError as e:\n"
            "    assert 'checkpoint not found' in str(e)\nelse:\n    raise SystemExit(3)\n"
            "raise SystemExit(4 if 'ray' in sys.modules else 0)\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr


def test_cli_evaluate_policy_json(capsys) -> None:
    rc = run_cli(["evaluate", "uniform", "--env", ENV_ID, "--env-kwargs", json.dumps(KW),
                  "--episodes", "2", "--json"])
    assert rc == 0
    out = json.loads(capsys.readouterr().out)
    assert out["returns"] == [0.0, 0.0]
    assert out["summary"]["mean_test_acc_target"] == out["summary"]["mean_test_acc_reference"]
    rc = run_cli(["evaluate", "easy_first", "--env-kwargs", json.dumps(KW), "--episodes", "1"])
    text = capsys.readouterr().out
    assert rc == 0 and "episode 0: return" in text and "test_acc_target" in text


@pytest.mark.parametrize("argv, message", [
    (["train", "--lib", "keras", "--out", "x"], "unknown library 'keras'"),
    (["train", "--algo", "a2c", "--out", "x"], "unknown algorithm 'a2c'"),
    (["train", "--env-kwargs", "{bad", "--out", "x"], "invalid --env-kwargs '{bad': not valid"),
    (["train"], "--out DIR is required"),
    (["train", "--env-kwargs", '{"noise_rate": 2}', "--out", "x"], "invalid noise_rate=2"),
    (["train", "--env", "Nope-v0", "--out", "x"], "unknown environment 'Nope-v0'"),
    (["train", "--episodes", "0", "--out", "x"], "--episodes must be an integer >= 1"),
    (["evaluate", "missing_dir/ckpt.zip"], "checkpoint not found"),
    (["evaluate"], "give a checkpoint"),
    (["evaluate", "easy-first"], "unknown policy 'easy-first': allowed: uniform, easy_first"),
    (["evaluate", "uniform", "--env-kwargs", "[1]"], "must be a JSON object"),
])
def test_cli_bad_input_one_line(argv: list[str], message: str, capsys) -> None:
    rc = run_cli(argv)
    err = capsys.readouterr().err
    assert rc == 2
    assert message in err
    assert err.count("\n") == 1 and err.startswith("error: ")
