"""Instance sets, the instance-set environment, the transfer observation and the reference
cache (tiny digits instances: seconds)."""

from __future__ import annotations

import json
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import reweight_gym  # noqa: F401  (registration)
from reweight_gym.envs import INSTANCES_ENV_ID
from reweight_gym.envs.instances import BUILTIN_SETS, load_instance_set
from reweight_gym.envs.observation import EXTRA_ENTRIES, observation_names

SMALL = {"preset": "tiny", "epochs": 2, "num_stages": 2, "train_size": 200, "test_size": 100}
SET = {"name": "small", "defaults": {**SMALL, "episode_seeds": 3},
       "instances": [{"name": "noise40", "noise_rate": 0.4},
                     {"name": "clean", "noise_rate": 0.0},
                     {"name": "pairflip30", "noise_type": "pair_flip", "noise_rate": 0.3,
                      "episode_seeds": [7, 8]}]}


def make(**kw) -> gym.Env:
    return gym.make(INSTANCES_ENV_ID, instance_set=kw.pop("instance_set", SET), **kw)


def draws(env: gym.Env, seed: int, n: int) -> list[tuple[str, int]]:
    out = []
    for i in range(n):
        _, info = env.reset(seed=seed if i == 0 else None)
        out.append((info["instance"], info["instance_seed"]))
    return out


def test_draws_are_seeded_and_reproducible() -> None:
    a, b, c = make(), make(), make()
    first = draws(a, 3, 8)
    assert first == draws(b, 3, 8)  # the same seed, the same instances and episode seeds
    assert first != draws(c, 4, 8)
    names = {n for n, _ in first}
    assert names <= {"noise40", "clean", "pairflip30"} and len(names) > 1
    for name, s in first:
        assert s in ((7, 8) if name == "pairflip30" else (0, 1, 2))


def test_episode_is_the_benchmark_run_of_its_config_and_seed() -> None:
    """An instance's episode of reset seed s trains with the run seed env.reset(seed=s) derives
    (the one benchmark rows use), on the instance's config."""
    from reweight_gym.envs.observation import episode_seed

    env = make()
    _, info = env.reset(seed=0, options={"instance": "pairflip30", "instance_seed": 8})
    assert info["episode_seed"] == episode_seed(8)
    cfg = env.unwrapped.config
    assert (cfg.noise_type, cfg.noise_rate, cfg.epochs) == ("pair_flip", 0.3, 2)
    obs, reward, term, trunc, info = env.step(np.zeros(env.action_space.shape))
    assert info["instance"] == "pairflip30" and reward == 0.0  # uniform weights: exactly 0


def test_heldout_instances_are_never_drawn_in_training() -> None:
    train, heldout = load_instance_set("train"), load_instance_set("heldout-cifar10")
    validation = load_instance_set("validation")
    assert not set(train.names) & set(heldout.names)
    assert not set(train.names) & set(validation.names)
    # the training env draws from its own set only (the built-in set, without CIFAR data: its
    # configs are checked here, its draws below on the digits-only set of this file)
    env = make()
    seen = {n for n, _ in draws(env, 0, 30)}
    assert seen == {"noise40", "clean", "pairflip30"}


def test_builtin_sets_share_their_spaces_and_load_by_name() -> None:
    for name in BUILTIN_SETS:
        s = load_instance_set(name)
        shared = s.shared()
        assert s.name == name and len(s) >= 3
        assert shared["obs_mode"] == "transfer" and shared["features"] == "agnostic"
        assert s.episode_length == shared["num_stages"] - shared["warmup_stages"]


def test_instance_sets_from_a_file_and_by_id_in_a_vector_env(tmp_path: Path) -> None:
    path = tmp_path / "set.json"
    path.write_text(json.dumps(SET))
    assert load_instance_set(str(path)).names == ["noise40", "clean", "pairflip30"]
    venv = gym.make_vec(INSTANCES_ENV_ID, num_envs=2, vectorization_mode="sync",
                        instance_set=str(path))
    obs, info = venv.reset(seed=0)
    assert obs.shape == (2, *venv.single_observation_space.shape)
    assert set(info["instance"]) <= {"noise40", "clean", "pairflip30"}
    venv.close()


@pytest.mark.parametrize("change,message", [
    ({"instances": []}, r"instances=\[\]: must not be empty"),
    ({"instances": [{"noise_rate": 0.4}]}, "instance 0 name=None"),
    ({"instances": [{"name": "a"}, {"name": "a"}]}, r"instance names=\['a'\]: must be unique"),
    ({"instances": [{"name": "a", "noise_rate": 2}]}, "instance 'a' .*invalid noise_rate=2"),
    ({"instances": [{"name": "a", "nois_rate": 0.2}]}, r"instance 'a' .*unknown keyword"),
    ({"instances": [{"name": "a"}, {"name": "b", "num_stages": 1}]},
     "instance 'b' of set 'bad' num_stages=1: every instance of a set must have the same"),
    ({"instances": [{"name": "a", "episode_seeds": 0}]}, "episode_seeds=0"),
    ({"instances": [{"name": "a", "data_seed": 3}]}, "data_seed=3: allowed: 'episode'"),
    ({"instancez": []}, r"instance_set keys=\['instancez'\]"),
])
def test_bad_instance_specs_name_the_field(change: dict, message: str) -> None:
    spec = {"name": "bad", "defaults": SMALL, "instances": [{"name": "ok"}], **change}
    with pytest.raises(ValueError, match=message) as e:
        load_instance_set(spec)
    assert "\n" not in str(e.value)


def test_bad_draw_options_and_set_wide_keywords() -> None:
    env = make()
    with pytest.raises(ValueError, match="instance='nope': allowed: noise40, clean"):
        env.reset(seed=0, options={"instance": "nope"})
    with pytest.raises(ValueError, match="instance_seed=5: instance 'clean' has the episode"):
        env.reset(seed=0, options={"instance": "clean", "instance_seed": 5})
    with pytest.raises(ValueError, match=r"invalid keyword\(s\) \['noise_rate'\] with "
                                         "instance_set"):
        make(noise_rate=0.2)
    with pytest.raises(ValueError, match="instance_set='nope': allowed: train"):
        make(instance_set="nope")


def test_transfer_observation_shows_fit_and_memorisation_signals() -> None:
    env = make(obs_mode="transfer")
    names = observation_names(env.unwrapped.config)
    assert names[-len(EXTRA_ENTRIES["transfer"]):] == [n for n, _, _ in EXTRA_ENTRIES["transfer"]]
    obs, _ = env.reset(seed=1, options={"instance": "noise40", "instance_seed": 0})
    assert env.observation_space.contains(obs)
    v = dict(zip(names, obs.tolist()))
    assert v["progress"] == 0.0 and v["val_loss_change"] == 0.0
    assert v["train_acc"] == v["val_acc"]  # before training: read on the validation split
    obs, *_ = env.step(np.zeros(env.action_space.shape))
    w = dict(zip(names, obs.tolist()))
    assert env.observation_space.contains(obs)
    assert w["progress"] == pytest.approx(0.5) and 0.0 < w["train_acc"] <= 1.0
    assert w["fit_gap"] == pytest.approx(w["train_acc"] - w["val_acc"], abs=1e-6)
    assert w["high_loss_share_change"] == pytest.approx(
        w["high_loss_share"] - v["high_loss_share"], abs=1e-6)


def _episode(env: gym.Env, seed: int, actions: list[np.ndarray], **options) -> tuple:
    obs, info = env.reset(seed=seed, options=options)
    rewards, infos = [], [info]
    for a in actions:
        obs, r, term, trunc, info = env.step(a)
        rewards.append(r)
        infos.append(info)
    return rewards, infos


def test_reference_cache_gives_bit_identical_rewards(tmp_path: Path, monkeypatch) -> None:
    rng = np.random.default_rng(0)
    live = make()
    actions = [rng.uniform(-1, 1, live.action_space.shape) for _ in range(2)]
    want, want_info = _episode(live, 0, actions, instance="noise40", instance_seed=1)
    cached = make(reference_cache=str(tmp_path))
    got, infos = _episode(cached, 0, actions, instance="noise40", instance_seed=1)
    assert got == want and infos[0]["reference_cached"] is False  # a miss: trained, stored
    assert len(list(tmp_path.glob("*.json"))) == 1
    again, infos = _episode(make(reference_cache=str(tmp_path)), 0, actions,
                            instance="noise40", instance_seed=1)
    assert again == want and infos[0]["reference_cached"] is True  # a hit: not trained
    assert infos[-1]["test_acc_reference"] == want_info[-1]["test_acc_reference"]
    assert infos[-1]["acc_reference"] == want_info[-1]["acc_reference"]
    # another config or another seed is another key
    _, infos = _episode(make(reference_cache=str(tmp_path)), 0, actions, instance="clean",
                        instance_seed=1)
    assert infos[0]["reference_cached"] is False
    # changed code invalidates every entry
    from reweight_gym.envs import reference_cache

    monkeypatch.setattr(reference_cache, "code_version", lambda: "other")
    _, infos = _episode(make(reference_cache=str(tmp_path)), 0, actions, instance="noise40",
                        instance_seed=1)
    assert infos[0]["reference_cached"] is False


def test_an_instance_episode_is_its_run_spec() -> None:
    """The run of ``Instance.run_spec(method, s)`` is the environment's episode of that
    instance and reset seed: same config, same run seed, same reference (rewards 0 for
    uniform weights), same final test accuracy."""
    from reweight_gym.runner import RunSpec, run

    s = load_instance_set(SET)
    spec = RunSpec.from_instance(s["pairflip30"], "uniform", 7, set_name=s.name)
    result = run(spec)
    env = make()
    _, info = env.reset(seed=0, options={"instance": "pairflip30", "instance_seed": 7})
    assert result.episode_seed == info["episode_seed"]
    assert result.config == env.unwrapped.config.to_dict()
    done = False
    while not done:
        _, _, term, trunc, info = env.step(np.zeros(env.action_space.shape))
        done = term or trunc
    assert result.final_test_acc == info["test_acc_target"]
    assert "7/data0" in spec.key  # the instance's own data seed, not the reset seed


def test_a_cifar_instance_takes_its_images_from_the_env_data_root(cifar_like) -> None:
    """A set that mixes digits and CIFAR-10 (tiny, on the test-written CIFAR-10-shaped JPEG set):
    the CIFAR instance reads the environment's data_root (and cache_dir), the digits one needs
    none; both give episodes of the set's shared length and spaces."""
    spec = {"name": "mixed", "defaults": {**SMALL, "obs_mode": "transfer"},
            "instances": [{"name": "digits40", "noise_rate": 0.4},
                          {"name": "cifar40", "dataset": "cifar10", "noise_rate": 0.4}]}
    env = make(instance_set=spec, data_root=cifar_like.root, cache_dir=cifar_like.cache_dir)
    for name, shape in (("cifar40", (3, 32, 32)), ("digits40", (1, 8, 8))):
        obs, info = env.reset(seed=0, options={"instance": name, "instance_seed": 0})
        cfg = env.unwrapped.config
        assert info["instance"] == name and env.observation_space.contains(obs)
        assert cfg.data_root == (cifar_like.root if name == "cifar40" else None)
        assert env.unwrapped.episode.trainer.splits.train_x.shape[1:] == shape
        rewards, _ = _episode(env, 0, [np.zeros(env.action_space.shape)] * 2, instance=name,
                              instance_seed=0)
        assert rewards == [0.0, 0.0]  # uniform weights: the target is the reference
