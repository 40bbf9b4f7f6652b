"""ReweightEnv: API checks, the duplicate mechanism, determinism, rewards, bad input."""

from __future__ import annotations

import math

import gymnasium as gym
import numpy as np
import pytest
import torch
from gymnasium.utils.env_checker import check_env

import reweight_gym
from reweight_gym.config import LAW_FORMULATION
from reweight_gym.envs import stage_reward


def _rollout(env: gym.Env, action_fn, seed: int | None = 0):
    obs, _ = env.reset(seed=seed)
    trace = [obs]
    rewards, infos = [], []
    done = False
    while not done:
        obs, r, term, trunc, info = env.step(action_fn(env))
        trace.append(obs)
        rewards.append(r)
        infos.append(info)
        done = term or trunc
    return trace, rewards, infos


def zero(env: gym.Env) -> np.ndarray:
    return np.zeros(env.action_space.shape, np.float32)


def easy_first(env: gym.Env) -> np.ndarray:
    a = zero(env)
    a[0] = -1.0  # negative weight on the loss feature
    return a


def _sb3_check_env():
    """Stable-Baselines3's env checker: the [sb3] extra, skipped where it is not installed (the
    core tests run on a ``pip install .`` without the RL extras)."""
    return pytest.importorskip("stable_baselines3.common.env_checker").check_env


def test_env_checkers_pass_on_digits() -> None:
    env = gym.make("Reweight-Digits-v0", noise_rate=0.4)
    check_env(env.unwrapped, skip_render_check=True)
    assert env.action_space.shape == (len(env.unwrapped.feature_names) + 1,)


def test_sb3_env_checker_passes_on_digits() -> None:
    sb3_check_env = _sb3_check_env()
    env = gym.make("Reweight-Digits-v0", noise_rate=0.4)
    sb3_check_env(env.unwrapped, warn=True)


def _cifar_env(cifar_like) -> gym.Env:
    """The CIFAR-10 environment (tiny preset) on the test-written CIFAR-10-shaped JPEG set."""
    return gym.make("Reweight-CIFAR-v0", data_root=cifar_like.root, cache_dir=cifar_like.cache_dir,
                    noise_rate=0.4, preset="tiny")


@pytest.mark.slow
def test_env_checkers_pass_on_jpeg_cifar(cifar_like) -> None:
    env = _cifar_env(cifar_like)
    check_env(env.unwrapped, skip_render_check=True)
    assert env.unwrapped.config.dataset == "cifar10"
    _, rewards, infos = _rollout(env, easy_first)
    assert len(rewards) == env.unwrapped.config.num_stages
    assert 0.0 <= infos[-1]["test_acc_target"] <= 1.0


@pytest.mark.slow
def test_sb3_env_checker_passes_on_jpeg_cifar(cifar_like) -> None:
    sb3_check_env = _sb3_check_env()
    sb3_check_env(_cifar_env(cifar_like).unwrapped, warn=True)


def test_zero_action_reward_is_exactly_zero_and_nets_bit_identical() -> None:
    env = gym.make("Reweight-Digits-v0", noise_rate=0.4, warmup_stages=1)
    obs, _ = env.reset(seed=1)
    run = env.unwrapped.episode.trainer
    n_steps = 0
    done = False
    while not done:
        obs, r, term, trunc, info = env.step(zero(env))
        n_steps += 1
        assert r == 0.0 and info["acc_target"] == info["acc_reference"]
        assert info["noisy_weight_mean"] == 1.0 and info["clean_weight_mean"] == 1.0
        for a, b in zip(run.target.model.state_dict().values(),
                        run.reference.model.state_dict().values()):
            assert torch.equal(a, b)
        done = term or trunc
    assert n_steps == 3  # 4 stages minus 1 warm-up stage
    assert info["test_acc_target"] == info["test_acc_reference"]


def test_nonzero_action_moves_the_target_away_from_the_reference() -> None:
    env = gym.make("Reweight-Digits-v0", noise_rate=0.4)
    _, rewards, infos = _rollout(env, easy_first)
    assert any(r != 0.0 for r in rewards)
    assert infos[-1]["test_acc_target"] != infos[-1]["test_acc_reference"] or \
        infos[-1]["loss_gap"] != 0.0
    # easy-first gives the (high-loss) noisy samples lower weight than the clean ones
    assert infos[-1]["noisy_weight_mean"] < infos[-1]["clean_weight_mean"]


def test_same_seed_same_trajectory_different_seed_differs() -> None:
    def run(seed_cfg: int, seed_reset: int):
        env = gym.make("Reweight-Digits-v0", noise_rate=0.4, seed=seed_cfg)
        return _rollout(env, easy_first, seed=seed_reset)

    a, b = run(0, 5), run(0, 5)
    for x, y in zip(a[0], b[0]):
        assert np.array_equal(x, y)
    assert a[1] == b[1]
    assert [i["acc_target"] for i in a[2]] == [i["acc_target"] for i in b[2]]
    c = run(0, 6)
    d = run(1, 5)
    assert a[1] != c[1] and a[1] != d[1]
    # without an explicit reset seed, the config seed makes the first episode reproducible
    e1 = _rollout(gym.make("Reweight-Digits-v0", seed=3), zero, seed=None)
    e2 = _rollout(gym.make("Reweight-Digits-v0", seed=3), zero, seed=None)
    assert np.array_equal(e1[0][-1], e2[0][-1])


def test_reward_follows_eqs_8_and_9() -> None:
    assert stage_reward(0.7, 0.6, 5, 10, k=1.0, s=100.0) == pytest.approx(
        math.exp(0.5) * 100 * 0.1)
    assert stage_reward(0.5, 0.6, 10, 10, k=2.0, s=1.0) == pytest.approx(-math.exp(2) * 0.1)
    env = gym.make("Reweight-Digits-v0", noise_rate=0.4, reward_k=0.7, reward_scale=3.0)
    _, rewards, infos = _rollout(env, easy_first)
    epochs = env.unwrapped.config.epochs
    for r, info in zip(rewards, infos):
        expected = math.exp(0.7 * info["epoch"] / epochs) * 3.0 * (
            info["acc_target"] - info["acc_reference"])
        assert r == pytest.approx(expected)


def test_observation_layout() -> None:
    env = gym.make("Reweight-Digits-v0", noise_rate=0.2, obs_mode="extended")
    obs, _ = env.reset(seed=0)
    cfg = env.unwrapped.config
    assert obs.shape == (cfg.num_stages + 6,) and env.observation_space.contains(obs)
    assert obs[0] == 1.0 and obs[1:cfg.num_stages].sum() == 0
    obs, _, _, _, info = env.step(zero(env))
    assert obs[1] == 1.0 and obs[0] == 0.0
    assert obs[cfg.num_stages + 1] > 0.0  # smoothed validation accuracy
    assert obs[cfg.num_stages + 4] == pytest.approx(info["acc_reference"])
    assert 0 < obs[cfg.num_stages + 2] < 1  # progress


def test_actions_are_validated_and_clipped() -> None:
    env = gym.make("Reweight-Digits-v0", noise_rate=0.4)
    env.reset(seed=0)
    bad = zero(env)
    bad[1] = np.nan
    with pytest.raises(ValueError, match="finite"):
        env.step(bad)
    with pytest.raises(ValueError, match="action shape"):
        env.step(np.zeros(3))
    big = easy_first(env) * 5.0
    clipped = _rollout(env, lambda e: big, seed=2)
    unit = _rollout(env, easy_first, seed=2)
    assert clipped[1] == unit[1]
    assert np.array_equal(clipped[2][0]["theta"], unit[2][0]["theta"])


def test_divergence_terminates_with_the_documented_penalty() -> None:
    """A diverged run is a terminal state (terminated, not truncated), so SB3 and RLlib do not
    bootstrap a value past it."""
    env = gym.make("Reweight-Digits-v0", lr=1e12, momentum=0.0, reward_scale=10.0)
    env.reset(seed=0)
    obs, r, term, trunc, info = env.step(zero(env))
    assert term and not trunc and info["diverged"]
    assert r == -10.0  # default penalty: -reward_scale
    assert env.observation_space.contains(obs)
    with pytest.raises(RuntimeError, match="reset"):
        env.step(zero(env))
    env2 = gym.make("Reweight-Digits-v0", lr=1e12, momentum=0.0, divergence_penalty=-3.5)
    env2.reset(seed=0)
    assert env2.step(zero(env2))[1] == -3.5


def test_vector_env_runs_parallel_training_runs() -> None:
    envs = gym.make_vec("Reweight-Digits-v0", num_envs=2, vectorization_mode="sync",
                        noise_rate=0.4)
    obs, _ = envs.reset(seed=[0, 1])
    assert obs.shape[0] == 2
    obs, r, term, trunc, info = envs.step(np.zeros((2,) + envs.single_action_space.shape))
    assert r.shape == (2,) and np.all(r == 0.0)
    envs.close()


def test_import_is_light() -> None:
    import subprocess
    import sys

    code = ("import sys, reweight_gym; "
            "print(any(m.split('.')[0] in ('stable_baselines3', 'ray') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
    assert set(reweight_gym.ENV_IDS) <= set(gym.registry)


def test_lower_layers_import_without_the_env_or_the_trainer() -> None:
    """``import reweight_gym`` registers the ids by entry-point string and exposes its names
    lazily: importing the models or a weigher loads neither the environment nor the trainer."""
    import json
    import subprocess
    import sys

    code = """
import json, sys
import reweight_gym.models, reweight_gym.baselines.focal, gymnasium
heavy = ("reweight_gym.envs.reweight_env", "reweight_gym.envs.episode",
         "reweight_gym.training.trainer", "stable_baselines3", "ray")
before = [m for m in heavy if m in sys.modules]
registered = "Reweight-Digits-v0" in gymnasium.registry
import reweight_gym
env_class = reweight_gym.ReweightEnv.__name__  # first use imports the environment
print(json.dumps({"before": before, "registered": registered, "env_class": env_class,
                  "after": "reweight_gym.training.trainer" in sys.modules}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got == {"before": [], "registered": True, "env_class": "ReweightEnv", "after": True}
    from reweight_gym.config import EnvConfig

    assert reweight_gym.EnvConfig is EnvConfig
    assert "tune_cpu_allocator" in dir(reweight_gym)
    with pytest.raises(AttributeError, match="no attribute 'nope'"):
        reweight_gym.nope  # noqa: B018


def _write_cifar100(root) -> None:
    import pickle

    folder = root / "cifar-100-python"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for split, n in (("train", 2000), ("test", 300)):
        data = {b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                b"fine_labels": list(np.arange(n) % 100)}
        with open(folder / split, "wb") as fh:
            pickle.dump(data, fh)


def test_cifar100_and_image_folder_envs(tmp_path) -> None:
    _write_cifar100(tmp_path)
    env = gym.make("Reweight-CIFAR100-v0", data_root=str(tmp_path), noise_rate=0.2,
                   train_size=1000, val_size=200, meta_size=100, test_size=200,
                   **LAW_FORMULATION)
    assert env.action_space.shape == (3 + 100 + 1,)  # loss, entropy, density, 100 labels, b
    _, rewards, infos = _rollout(env, easy_first)
    assert len(rewards) == env.unwrapped.config.num_stages and "test_acc_target" in infos[-1]
    agnostic = gym.make("Reweight-CIFAR100-v0", data_root=str(tmp_path),
                        train_size=1000, val_size=200, meta_size=100, test_size=200)
    digits = gym.make("Reweight-Digits-v0")
    # the default features are class-count free: a policy transfers across datasets
    assert agnostic.action_space == digits.action_space
    from PIL import Image

    for split in ("train", "test"):
        for k in range(2):
            d = tmp_path / "folder" / split / f"class{k}"
            d.mkdir(parents=True)
            for i in range(60):
                Image.fromarray(np.full((8, 8, 3), 100 * k + i, np.uint8)).save(d / f"{i}.png")
    env = gym.make("Reweight-ImageFolder-v0", data_root=str(tmp_path / "folder"),
                   cache_dir=str(tmp_path / "cache"), train_size=60, val_size=20, meta_size=10,
                   noise_rate=0.2)
    _, rewards, _ = _rollout(env, zero)
    assert rewards == [0.0] * env.unwrapped.config.num_stages


def test_normalized_weights_keep_the_batch_mean_at_one() -> None:
    from reweight_gym.training import LinearTanhWeigher

    feats = torch.randn(32, 4)
    raw = LinearTanhWeigher("law")
    raw.set_params(torch.tensor([0.5, -1.0, 0.2, 0.0]), 0.8)
    norm = LinearTanhWeigher("law", normalize=True)
    norm.set_params(torch.tensor([0.5, -1.0, 0.2, 0.0]), 0.8)
    w_raw, w_norm = raw.weights_from_features(feats), norm.weights_from_features(feats)
    assert w_raw.mean() > 1.2  # b > 0 raises every weight ...
    assert w_norm.mean().item() == pytest.approx(1.0, abs=1e-6)  # ... unless normalised
    assert torch.allclose(w_norm / w_norm[0], w_raw / w_raw[0])  # same relative weights
    env = gym.make("Reweight-Digits-v0", noise_rate=0.4, normalize_weights=True)
    _, rewards, _ = _rollout(env, zero)
    assert rewards == [0.0] * env.unwrapped.config.num_stages
    with pytest.raises(ValueError, match="normalize_weights='yes'"):
        gym.make("Reweight-Digits-v0", normalize_weights="yes")
