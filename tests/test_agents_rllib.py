"""RLlib DDPG (new API stack), SAC/PPO configs and checkpoints on the real environments.

One local Ray instance (2 CPUs, no dashboard) is shared by the whole module; starting it and
training through it take seconds per test, so the whole module is ``slow``.
"""

from __future__ import annotations

import json
import os

import gymnasium as gym
import numpy as np
import pytest
import torch

import reweight_gym  # noqa: F401

ray = pytest.importorskip("ray")

from ray.rllib.core.columns import Columns  # noqa: E402

from agents.evaluate import evaluate, load_agent  # noqa: E402
from agents.rllib import DDPGConfig, make_config  # noqa: E402
from agents.rllib.agent import RLlibAgent, find_checkpoint, train_rllib  # noqa: E402
from agents.rllib.configs import init_ray  # noqa: E402

pytestmark = pytest.mark.slow

ENV_ID = "Reweight-Digits-v0"
KW = {"preset": "tiny", "noise_rate": 0.4, "seed": 0}
EP_LEN = 4


@pytest.fixture(scope="module")
def ray_local():
    init_ray(num_cpus=2)
    yield
    ray.shutdown()


def _actor_state(algo) -> dict[str, np.ndarray]:
    state = algo.get_module().get_state()
    return {k: np.asarray(v) for k, v in state.items() if k.startswith("actor.")}


def test_ddpg_two_runners_end_to_end_save_restore_predict(ray_local, tmp_path) -> None:
    config = make_config("ddpg", ENV_ID, KW, num_env_runners=2, seed=0)
    assert isinstance(config, DDPGConfig)
    assert config.sample_timeout_s is None and config.batch_mode == "complete_episodes"
    assert config.actor_lr == 1e-5 and config.critic_lr == 1e-4  # LAW
    algo = config.build_algo()
    try:
        r1 = algo.train()
        # each runner ran one full training run (episode) of the classifier
        assert r1["env_runners"]["num_env_steps_sampled_lifetime"] == 2 * EP_LEN
        r2 = algo.train()
        assert r2["env_runners"]["num_episodes_lifetime"] == 4
        learner = r2["learners"]["default_policy"]
        assert np.isfinite(learner["qf_loss"]) and np.isfinite(learner["policy_loss"])
        # learning starts after one episode per runner; replay_ratio 4 on 8 new steps, twice
        assert algo._num_gradient_steps == 2 * 4 * 2 * EP_LEN
        # the runners act with the learner's actor (weights synced after the update)
        runner_state = algo.env_runner_group.foreach_env_runner(
            lambda er: er.module.get_state(), local_env_runner=False)[0]
        learner_actor = _actor_state(algo)
        assert learner_actor and "critic.0.weight" not in runner_state  # inference-only runner
        for k, v in learner_actor.items():
            np.testing.assert_allclose(np.asarray(runner_state[k]), v)
        ckpt = str(tmp_path / "ckpt")
        algo.save_to_path(ckpt)
        before = _actor_state(algo)
        module = algo.get_module()
    finally:
        algo.stop()
    # restore into a fresh algorithm: identical weights, counters and replay buffer
    algo2 = make_config("ddpg", ENV_ID, KW, num_env_runners=0, seed=1).build_algo()
    try:
        algo2.restore_from_path(ckpt)
        after = _actor_state(algo2)
        for k in before:
            np.testing.assert_array_equal(before[k], after[k])
        assert algo2.local_replay_buffer.get_num_timesteps() == 4 * EP_LEN
    finally:
        algo2.stop()
    agent = RLlibAgent.from_checkpoint(ckpt)
    obs, _ = gym.make(ENV_ID, **KW).reset(seed=0)
    action, _ = agent.predict(obs, deterministic=True)
    with torch.no_grad():
        mu = module.forward_inference({Columns.OBS: torch.as_tensor(obs[None])})
    np.testing.assert_allclose(action, mu[Columns.ACTIONS][0].numpy(), atol=1e-6)
    res = evaluate(agent, ENV_ID, KW, episodes=1)
    assert len(res.returns) == 1 and np.isfinite(res.test_acc_target[0])


def test_exploration_noise_only_in_exploration_pass(ray_local) -> None:
    config = make_config("ddpg", "Pendulum-v1", {}, num_env_runners=0, exploration_noise=0.3)
    env = gym.make("Pendulum-v1")
    spec = config.get_rl_module_spec()
    spec.observation_space, spec.action_space = env.observation_space, env.action_space
    module = spec.build()
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


def test_ddpg_learns_pendulum_smoke(ray_local) -> None:
    """Short version of benchmarks/rllib_pendulum.py: 4,000 steps lift the deterministic
    policy far above the untrained one (about -1,200 on these seeds)."""
    config = make_config("ddpg", "Pendulum-v1", {}, num_env_runners=0, seed=0,
                         actor_lr=1e-3, critic_lr=1e-3, tau=0.01,
                         train_batch_size_per_learner=64, replay_ratio=0.5,
                         num_steps_sampled_before_learning_starts=1000)
    algo = config.build_algo()
    try:
        env = gym.make("Pendulum-v1")

        def score() -> float:
            agent = RLlibAgent(algo.get_module())
            rets = []
            for ep in range(3):
                obs, _ = env.reset(seed=100 + ep)
                total, done = 0.0, False
                while not done:
                    obs, r, term, trunc, _ = env.step(agent.predict(obs)[0])
                    total, done = total + r, term or trunc
                rets.append(total)
            return float(np.mean(rets))

        untrained = score()
        while algo.train()["env_runners"]["num_env_steps_sampled_lifetime"] < 4000:
            pass
        trained = score()
    finally:
        algo.stop()
    assert trained > untrained + 300, (untrained, trained)


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
    assert s1["episodes"] == 2 and find_checkpoint(out) is not None
    s2 = train_rllib("ddpg", ENV_ID, KW, out, episodes=3, num_env_runners=0)
    assert s2["episodes"] == 3  # resumed: one more episode, not three
    with open(os.path.join(out, "agent.json")) as f:
        assert json.load(f)["lib"] == "rllib"
    monkeypatch.chdir(tmp_path)
    agent = load_agent("run")  # a relative path works too
    assert isinstance(agent, RLlibAgent)
    assert agent.action_space.shape == (14,)


def test_rllib_bad_input(ray_local, tmp_path) -> None:
    with pytest.raises(ValueError, match="unknown algorithm 'a2c'"):
        make_config("a2c", ENV_ID, KW)
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        RLlibAgent.from_checkpoint(str(tmp_path))
    with pytest.raises(ValueError, match="actor_lr"):
        make_config("ddpg", "Pendulum-v1", {}, actor_lr=-1.0).validate()
    spec = make_config("ddpg", "CartPole-v1", {}).get_rl_module_spec()
    spec.observation_space = gym.spaces.Box(-1, 1, (4,))
    spec.action_space = gym.spaces.Discrete(2)
    with pytest.raises(ValueError, match="incompatible spaces"):
        spec.build()


def test_cli_train_rllib_and_evaluate(ray_local, tmp_path, capsys) -> None:
    import argparse

    from agents.cli import add_evaluate_parser, add_train_parser

    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    add_train_parser(sub)
    add_evaluate_parser(sub)
    out = str(tmp_path / "cli")
    args = parser.parse_args(["train", "--lib", "rllib", "--algo", "ddpg", "--env", ENV_ID,
                              "--env-kwargs", json.dumps(KW), "--n-envs", "1",
                              "--episodes", "2", "--out", out])
    assert args.func(args) == 0
    assert "trained rllib ddpg: 2 episodes" in capsys.readouterr().out
    args = parser.parse_args(["evaluate", out, "--env-kwargs", json.dumps(KW),
                              "--episodes", "1", "--json"])
    assert args.func(args) == 0
    res = json.loads(capsys.readouterr().out)
    assert len(res["returns"]) == 1 and 0.0 <= res["test_acc_target"][0] <= 1.0
