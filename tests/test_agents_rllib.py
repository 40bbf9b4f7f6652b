"""RLlib: LAW's DDPG (new API stack), RLlib's idioms, SAC/PPO configs and checkpoints, on the
real environments; mechanisms only (FDU visits, seeded reproducibility, restore), no learning
thresholds.

One local Ray instance (2 CPUs, no dashboard) is shared by the whole module; starting it and
training through it take seconds per test, so the whole module is ``slow``.
"""

from __future__ import annotations

import json
import os
import re

import gymnasium as gym
import numpy as np
import pytest
import torch

import reweight_gym  # noqa: F401

ray = pytest.importorskip("ray")

from ray import tune  # noqa: E402
from ray.rllib.algorithms.algorithm import Algorithm  # noqa: E402
from ray.rllib.core.columns import Columns  # noqa: E402
from ray.tune.registry import ENV_CREATOR, _global_registry, get_trainable_cls  # noqa: E402

import reweight_gym.agents.rllib  # noqa: E402,F401  (registers the env ids and the DDPG trainable)
from reweight_gym.agents.evaluate import evaluate, load_agent  # noqa: E402
from reweight_gym.agents.rllib import DDPG, DDPGConfig, make_config  # noqa: E402
from reweight_gym.agents.rllib.agent import RLlibAgent, train_rllib  # noqa: E402
from reweight_gym.agents.runs import find_rllib_checkpoint  # noqa: E402
from reweight_gym.agents.settings import DDPG_DEFAULTS, LAW_DDPG  # noqa: E402
from reweight_gym.cluster import connect_ray  # noqa: E402

pytestmark = pytest.mark.slow

ENV_ID = "Reweight-Digits-v0"
KW = {"preset": "tiny", "noise_rate": 0.4, "seed": 0}
EP_LEN = 4


@pytest.fixture(scope="module")
def ray_local():
    connect_ray(None, num_cpus=2)
    yield
    ray.shutdown()


def _state(algo) -> dict[str, np.ndarray]:
    return {k: np.asarray(v) for k, v in algo.get_module().get_state().items()}


def _config(runners: int, seed: int = 0, **training) -> DDPGConfig:
    return (DDPGConfig().environment(ENV_ID, env_config=KW)
            .env_runners(num_env_runners=runners).debugging(seed=seed).training(**training))


def test_import_registers_every_env_id_and_the_ddpg_trainable() -> None:
    for env_id in reweight_gym.ENV_IDS:
        assert _global_registry.contains(ENV_CREATOR, env_id), env_id
    assert get_trainable_cls("DDPG") is DDPG


def test_defaults_are_the_protocols_and_law_one_argument_away() -> None:
    cfg = DDPGConfig()
    assert cfg.settings == DDPG_DEFAULTS  # every field, the same values as SB3's LAWDDPG
    law = DDPGConfig().training(settings=LAW_DDPG)
    assert law.settings == LAW_DDPG
    assert (law.actor_lr, law.critic_lr, law.n_critics, law.fdu_epochs) == (1e-5, 1e-4, 1, 4)
    assert law.target_policy_noise == 0.0


def test_rllib_idioms_config_by_id_build_train_save_from_checkpoint(ray_local,
                                                                   tmp_path) -> None:
    """RLlib's documented idioms, unchanged: config by env id with a remote env runner,
    build_algo, train, save, Algorithm.from_checkpoint."""
    algo = _config(1, learning_starts_episodes=0, fdu_batch_size=5).build_algo()
    try:
        r = algo.train()
        assert r["env_runners"]["num_env_steps_sampled_lifetime"] == EP_LEN
        r = algo.train()
        assert r["env_runners"]["num_episodes_lifetime"] == 2
        learner = r["learners"]["default_policy"]
        assert np.isfinite(learner["qf_loss"]) and np.isfinite(learner["policy_loss"])
        # the runner acts with the learner's actor (inference-only copy, synced after updates)
        runner_state = algo.env_runner_group.foreach_env_runner(
            lambda er: er.module.get_state(), local_env_runner=False)[0]
        learner_state = _state(algo)
        actor = {k: v for k, v in learner_state.items() if k.startswith("actor.")}
        assert actor and not any(k.startswith("critics.") for k in runner_state)
        for k, v in actor.items():
            np.testing.assert_array_equal(np.asarray(runner_state[k]), v)
        ckpt = str(tmp_path / "ckpt")
        algo.save_to_path(ckpt)
        buffer = algo.buffer.all()
        fdu_state = algo.fdu.get_state()
    finally:
        algo.stop()
    obs, _ = gym.make(ENV_ID, **KW).reset(seed=0)
    restored = Algorithm.from_checkpoint(ckpt)
    try:
        assert isinstance(restored, DDPG)
        for k, v in _state(restored).items():
            np.testing.assert_array_equal(v, learner_state[k], err_msg=k)
        assert restored.episodes_total == 2 and restored.fdu.get_state() == fdu_state
        for k, v in restored.buffer.all().items():
            np.testing.assert_array_equal(v, buffer[k])
        expected, _ = RLlibAgent(restored.get_module()).predict(obs, deterministic=True)
        r = restored.train()  # and it trains on
        assert r["env_runners"]["num_episodes_lifetime"] == 3
    finally:
        restored.stop()
    agent = RLlibAgent.from_checkpoint(ckpt)
    action, _ = agent.predict(obs, deterministic=True)
    np.testing.assert_array_equal(action, expected)
    res = evaluate(agent, ENV_ID, KW, episodes=1)
    assert len(res.returns) == 1 and np.isfinite(res.test_acc_target[0])


def test_tuner_by_name_with_a_search_space_over_laws_settings(ray_local, tmp_path) -> None:
    config = _config(0, learning_starts_episodes=0).training(
        actor_lr=tune.grid_search([1e-5, 1e-4]))
    tuner = tune.Tuner("DDPG", param_space=config,
                       run_config=tune.RunConfig(stop={"training_iteration": 1},
                                                 storage_path=str(tmp_path), verbose=0))
    results = tuner.fit()
    assert len(results) == 2 and not results.errors
    got = sorted(r.config["actor_lr"] for r in results)
    assert got == [1e-5, 1e-4]
    for r in results:
        assert r.metrics["env_runners"]["num_episodes_lifetime"] == 1


def test_fdu_visits_every_buffered_transition_fdu_epochs_times(ray_local) -> None:
    """LAW's Algorithm 1 on RLlib: one episode per runner per round, updates once more than 2
    episodes are in, each over the whole buffer, every transition fdu_epochs times (counted
    from the minibatches sent, and by RLlib's learner: rows trained)."""
    algo = _config(2, fdu_epochs=3, fdu_batch_size=5, learning_starts_episodes=2).build_algo()
    try:
        r = algo.train()  # 2 episodes: no update yet
        assert algo.episodes_total == 2 and algo.fdu_updates == 0
        assert algo.buffer.size == 2 * EP_LEN and "default_policy" not in r.get("learners", {})
        steps = 0
        for rnd, n in ((2, 16), (3, 24)):
            r = algo.train()
            assert algo.episodes_total == 2 * rnd and algo.fdu_updates == rnd - 1
            assert algo.buffer.size == n
            np.testing.assert_array_equal(algo.last_fdu_visits, np.full(n, 3))
            steps += algo.fdu.num_minibatches(n)
            assert algo.num_gradient_steps == steps
            assert r["learners"]["default_policy"]["num_module_steps_trained"] == 3 * n
    finally:
        algo.stop()


def _run(seed: int, runners: int = 2) -> tuple[dict[str, np.ndarray], list[float]]:
    algo = _config(runners, seed=seed, learning_starts_episodes=1, fdu_batch_size=5,
                   ).build_algo()
    try:
        returns = []
        for _ in range(3):
            r = algo.train()
            returns.append(float(r["env_runners"]["episode_return_mean"]))
        return _state(algo), returns
    finally:
        algo.stop()


def test_seeded_run_reproduces_bit_for_bit(ray_local) -> None:
    """Two runs with the same seed and two env runners: identical returns and weights (random
    warm-up actions, exploration noise, episode seeds, minibatch order, target smoothing)."""
    a, ra = _run(0)
    b, rb = _run(0)
    assert ra == rb
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    c, _ = _run(1)
    assert any(not np.array_equal(a[k], c[k]) for k in a)


def test_episodes_of_a_runner_draw_fresh_seeds(ray_local) -> None:
    """RLlib re-seeds a runner's env at every sample(num_episodes=...); SeedOnce keeps the
    first seed only, so consecutive episodes are different training runs (reproducibly)."""
    seeds = []
    for _ in range(2):
        algo = _config(0, seed=3).build_algo()
        try:
            eps = [algo.env_runner.sample(num_episodes=1)[0] for _ in range(3)]
            seeds.append([int(e.get_infos()[0]["episode_seed"]) for e in eps])
        finally:
            algo.stop()
    assert len(set(seeds[0])) == 3 and seeds[0] == seeds[1]


def test_exploration_noise_only_in_exploration_pass(ray_local) -> None:
    config = make_config("ddpg", "Pendulum-v1", {}, num_env_runners=0, noise_sigma=0.3)
    env = gym.make("Pendulum-v1")
    spec = config.get_rl_module_spec()
    spec.observation_space, spec.action_space = env.observation_space, env.action_space
    module = spec.build()
    assert len(module.critics) == DDPG_DEFAULTS.n_critics
    obs = torch.randn(64, 3)
    with torch.no_grad():
        inf1 = module.forward_inference({Columns.OBS: obs})[Columns.ACTIONS]
        inf2 = module.forward_inference({Columns.OBS: obs})[Columns.ACTIONS]
        exp = module.forward_exploration({Columns.OBS: obs})[Columns.ACTIONS]
    torch.testing.assert_close(inf1, inf2)
    assert (exp - inf1).abs().mean() > 0.1
    assert exp.abs().max() <= 1.0
    agent = RLlibAgent(module)
    a1, _ = agent.predict(obs[0].numpy())
    a2, _ = agent.predict(obs[0].numpy())
    np.testing.assert_array_equal(a1, a2)
    np.testing.assert_allclose(a1, 2.0 * inf1[0].numpy(), atol=1e-5)  # unsquashed to [-2, 2]


@pytest.mark.parametrize("algo_name", ["sac", "ppo"])
def test_sac_ppo_configs_train_on_env(ray_local, algo_name: str) -> None:
    config = make_config(algo_name, ENV_ID, KW, num_env_runners=1, seed=0)
    assert config.sample_timeout_s is None and config.batch_mode == "complete_episodes"
    assert config.min_sample_timesteps_per_iteration == 0
    algo = config.build_algo()
    try:
        res = algo.train()
        # an iteration: SAC one complete episode (training run) per runner, PPO its train
        # batch of 4 complete episodes per runner
        per_iter = EP_LEN if algo_name == "sac" else 4 * EP_LEN
        assert res["env_runners"]["num_env_steps_sampled_lifetime"] == per_iter
        for _ in range(5):
            if res.get("learners", {}).get("default_policy"):
                break
            res = algo.train()
        steps = res["env_runners"]["num_env_steps_sampled_lifetime"]
        assert steps % EP_LEN == 0 and steps > 0  # complete episodes only
        assert res["learners"]["default_policy"]  # a learner update happened
    finally:
        algo.stop()


def test_train_rllib_checkpoints_and_resumes(ray_local, tmp_path, monkeypatch) -> None:
    out = str(tmp_path / "run")
    s1 = train_rllib("ddpg", ENV_ID, KW, out, episodes=2, num_env_runners=0,
                     checkpoint_every=1)
    assert s1["episodes"] == 2 and s1["resumed_from"] is None
    assert sorted(os.listdir(out)) == ["agent.json", "checkpoint_000001", "checkpoint_000002"]
    s2 = train_rllib("ddpg", ENV_ID, KW, out, episodes=3, num_env_runners=0)
    assert s2["episodes"] == 3  # resumed: one more episode, not three
    assert s2["resumed_from"].endswith("checkpoint_000002")
    assert find_rllib_checkpoint(out).endswith("checkpoint_000003")
    with open(os.path.join(out, "agent.json")) as f:
        meta = json.load(f)
    assert meta["lib"] == "rllib" and meta["episode_steps"] == EP_LEN
    monkeypatch.chdir(tmp_path)
    agent = load_agent("run")  # a relative path works too
    assert isinstance(agent, RLlibAgent)
    assert agent.action_space.shape == gym.make(ENV_ID, **KW).action_space.shape


def test_rllib_bad_input(ray_local, tmp_path) -> None:
    with pytest.raises(ValueError, match="unknown algorithm 'a2c'"):
        make_config("a2c", ENV_ID, KW)
    with pytest.raises(ValueError, match="DDPG does not use the training key 'lr'.*actor_lr"):
        DDPGConfig().training(lr=1e-3)
    with pytest.raises(ValueError, match="DDPG does not use lr=0.001"):
        cfg = _config(0)
        cfg.lr = 1e-3
        cfg.validate()
    with pytest.raises(ValueError, match="unknown DDPG training key 'actor_lrr'"):
        make_config("ddpg", ENV_ID, KW, actor_lrr=1e-3)
    with pytest.raises(ValueError, match="invalid sac training key.*foo"):
        make_config("sac", ENV_ID, KW, foo=1)
    with pytest.raises(ValueError, match="invalid replay_ratio=2.0: used only with"):
        _config(0).training(replay_ratio=2.0).validate()
    with pytest.raises(ValueError, match="unknown environment 'Reweight-Nope-v0'"):
        DDPGConfig().environment("Reweight-Nope-v0").validate()
    with pytest.raises(ValueError, match="unknown environment 'Reweight-Nope-v0'"):
        make_config("ppo", "Reweight-Nope-v0", KW)
    with pytest.raises(ValueError, match="invalid noise_rate=2"):
        DDPGConfig().environment(ENV_ID, env_config={"noise_rate": 2}).validate()
    with pytest.raises(ValueError, match="invalid actor_lr=-1.0"):
        make_config("ddpg", "Pendulum-v1", {}, actor_lr=-1.0).validate()
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        RLlibAgent.from_checkpoint(str(tmp_path))
    spec = make_config("ddpg", "CartPole-v1", {}).get_rl_module_spec()
    spec.observation_space = gym.spaces.Box(-1, 1, (4,))
    spec.action_space = gym.spaces.Discrete(2)
    with pytest.raises(ValueError, match="incompatible spaces"):
        spec.build()


def test_cli_train_rllib_and_evaluate(ray_local, tmp_path, capsys) -> None:
    import argparse

    from reweight_gym.agents.cli import add_evaluate_parser, add_train_parser

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    add_train_parser(sub)
    add_evaluate_parser(sub)
    out = str(tmp_path / "cli")
    args = parser.parse_args(["train", "--lib", "rllib", "--algo", "ddpg", "--env", ENV_ID,
                              "--env-kwargs", json.dumps(KW), "--n-envs", "1",
                              "--agent-kwargs", '{"learning_starts_episodes": 1}',
                              "--episodes", "2", "--out", out])
    assert args.func(args) == 0
    text = capsys.readouterr().out
    assert "trained rllib ddpg: 2 episodes" in text
    assert int(re.search(r"trained .*, (\d+) gradient updates", text).group(1)) > 0
    args = parser.parse_args(["evaluate", out, "--episodes", "1", "--json"])  # its own env
    assert args.func(args) == 0
    res = json.loads(capsys.readouterr().out)
    assert len(res["returns"]) == 1 and 0.0 <= res["test_acc_target"][0] <= 1.0
