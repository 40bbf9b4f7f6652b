"""Stable-Baselines3 LAW-DDPG (reweight_gym.agents.sb3) on the real Reweight-Digits-v0
environment."""

from __future__ import annotations

import argparse
import glob
import json
import os
import re

import gymnasium as gym
import numpy as np
import pytest
import torch as th

pytest.importorskip("stable_baselines3")  # the sb3 extra: pip install reweight-gym[sb3]
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv  # noqa: E402

import reweight_gym  # noqa: F401
from reweight_gym.agents.cli import _episodes, add_evaluate_parser, add_train_parser
from reweight_gym.agents.evaluate import evaluate, load_agent
from reweight_gym.agents.sb3 import (
    LAWDDPG,
    latest_checkpoint,
    load_law_ddpg,
    load_sb3,
    make_reweight_vec_env,
    train_law_ddpg,
)
from reweight_gym.agents.settings import DDPG_DEFAULTS, LAW_DDPG

ENV_ID = "Reweight-Digits-v0"

KW = {"preset": "tiny", "noise_rate": 0.4, "seed": 0}
EP_LEN = 4  # tiny digits: 4 stages, no warm-up


def test_defaults_are_the_protocols_and_law_one_argument_away() -> None:
    venv = make_reweight_vec_env(ENV_ID, KW, n_envs=2, subprocess=False)
    try:
        model = LAWDDPG("MlpPolicy", venv, seed=0)
        assert model.actor.optimizer.param_groups[0]["lr"] == DDPG_DEFAULTS.actor_lr
        assert model.critic.optimizer.param_groups[0]["lr"] == DDPG_DEFAULTS.critic_lr
        assert isinstance(model.actor.optimizer, th.optim.Adam)
        linear = [m for m in model.actor.mu if isinstance(m, th.nn.Linear)]
        assert len(linear) == 4  # LAW: 4-layer actor
        assert len(model.critic.q_networks) == DDPG_DEFAULTS.n_critics == 2
        assert model.target_policy_noise == DDPG_DEFAULTS.target_policy_noise
        assert model.full_data_update and model.action_noise is not None
        assert model.fdu.epochs == DDPG_DEFAULTS.fdu_epochs
        assert model.fdu.batch_size == DDPG_DEFAULTS.fdu_batch_size
        assert model.replay_buffer.buffer_size * 2 == DDPG_DEFAULTS.buffer_size
        # the schedule in episodes, in SB3's steps: one round = EP_LEN vec steps, learning
        # starts after 20 episodes = 20 * EP_LEN transitions
        assert model.train_freq.frequency == EP_LEN and model.train_freq.unit.value == "step"
        assert model.learning_starts == DDPG_DEFAULTS.learning_starts_episodes * EP_LEN
        law = LAWDDPG("MlpPolicy", venv, seed=0, settings=LAW_DDPG)
        assert law.actor.optimizer.param_groups[0]["lr"] == pytest.approx(1e-5)
        assert law.critic.optimizer.param_groups[0]["lr"] == pytest.approx(1e-4)
        qf = law.critic.q_networks
        assert len(qf) == 1 and len([m for m in qf[0] if isinstance(m, th.nn.Linear)]) == 4
        assert law.target_policy_noise == 0.0 and law.fdu.epochs == LAW_DDPG.fdu_epochs
        # explicit step counts (the measured runs' spelling) override the episode schedule
        steps = LAWDDPG("MlpPolicy", venv, seed=0, train_freq=10, learning_starts=200)
        assert steps.train_freq.frequency == 10 and steps.learning_starts == 200
    finally:
        venv.close()


def test_fdu_visits_every_buffered_transition_each_epoch() -> None:
    venv = make_reweight_vec_env(ENV_ID, KW, n_envs=2, subprocess=False)
    try:
        model = LAWDDPG("MlpPolicy", venv, seed=0, fdu_epochs=3, fdu_batch_size=5,
                        learning_starts=0, train_freq=2)
        model.learn(total_timesteps=2 * EP_LEN * 2)  # 2 episodes per env, 8 vec steps
        # train() ran after vec steps 2, 4, 6, 8 with 4, 8, 12, 16 transitions buffered
        assert model.fdu_updates == 4
        visits = model.last_fdu_visits
        assert visits.shape == (8, 2)  # every (step, env) transition in the buffer
        assert np.all(visits == 3)
        minibatches = sum(3 * int(np.ceil(n / 5)) for n in (4, 8, 12, 16))
        assert model._n_updates == minibatches
    finally:
        venv.close()


def test_fdu_after_every_round_once_learning_started() -> None:
    """LAW's Algorithm 1 in episodes: random actions for the first 2 episodes, an update after
    every round (one episode per env) once more than 2 episodes are in."""
    venv = make_reweight_vec_env(ENV_ID, KW, n_envs=2, subprocess=False)
    try:
        model = LAWDDPG("MlpPolicy", venv, seed=0, fdu_epochs=2, fdu_batch_size=6,
                        learning_starts_episodes=2)
        model.learn(total_timesteps=4 * 2 * EP_LEN)  # 4 rounds, 8 episodes
        # rounds end with 2, 4, 6, 8 episodes: updates after the last three
        assert model.fdu_updates == 3
        assert model.last_fdu_visits.shape == (4 * EP_LEN, 2)
        assert np.all(model.last_fdu_visits == 2)
        assert model._n_updates == sum(model.fdu.num_minibatches(n) for n in (16, 24, 32))
    finally:
        venv.close()


def _trained_params(seed: int) -> dict[str, np.ndarray]:
    venv = make_reweight_vec_env(ENV_ID, KW, n_envs=2, subprocess=False, seed=seed)
    try:
        model = LAWDDPG("MlpPolicy", venv, seed=seed, learning_starts_episodes=2,
                        fdu_batch_size=5)
        model.learn(total_timesteps=3 * 2 * EP_LEN)
        return {k: v.numpy().copy() for k, v in model.policy.state_dict().items()}
    finally:
        venv.close()


@pytest.mark.slow
def test_seeded_run_reproduces_bit_for_bit() -> None:
    a, b = _trained_params(0), _trained_params(0)
    assert a.keys() == b.keys()
    for k in a:
        np.testing.assert_array_equal(a[k], b[k], err_msg=k)
    c = _trained_params(1)
    assert any(not np.array_equal(a[k], c[k]) for k in a)  # the seed matters


def test_td3_options_and_action_l2_pull_to_uniform() -> None:
    venv = make_reweight_vec_env(ENV_ID, KW, n_envs=1)
    try:
        model = LAWDDPG("MlpPolicy", venv, seed=0, n_critics=2, target_policy_noise=0.1,
                        critic_lr=1e-12, actor_lr=1e-2, action_l2=100.0, fdu_epochs=20,
                        learning_starts=0)
        assert len(model.critic.q_networks) == 2 and model.target_policy_noise == 0.1
        obs = venv.reset()
        before = np.abs(model.predict(obs, deterministic=True)[0]).mean()
        model.learn(total_timesteps=EP_LEN)
        after = np.abs(model.predict(obs, deterministic=True)[0]).mean()
        assert after < 0.5 * before  # the L2 term dominates a (nearly) frozen critic
    finally:
        venv.close()


def test_exploration_noise_only_while_collecting() -> None:
    venv = make_reweight_vec_env(ENV_ID, KW, n_envs=1)
    try:
        # (nearly) zero learning rates: the actor stays put, so any gap between stored and
        # predicted actions is the exploration noise
        model = LAWDDPG("MlpPolicy", venv, seed=0, actor_lr=1e-12, critic_lr=1e-12,
                        noise_sigma=0.3, learning_starts=0)
        model.learn(total_timesteps=EP_LEN)
        rb = model.replay_buffer
        obs = rb.observations[: rb.pos, 0]
        stored = rb.actions[: rb.pos, 0]
        pred1, _ = model.predict(obs, deterministic=True)
        pred2, _ = model.predict(obs, deterministic=True)
        np.testing.assert_array_equal(pred1, pred2)
        with th.no_grad():
            mu = model.actor(th.as_tensor(obs)).numpy()
        np.testing.assert_allclose(pred1, mu, atol=1e-6)  # no noise at evaluation
        gap = np.abs(stored - mu)
        assert gap.mean() > 0.05  # noise while collecting
    finally:
        venv.close()


@pytest.mark.slow
def test_end_to_end_two_subprocess_envs_save_load_predict(tmp_path) -> None:
    venv = make_reweight_vec_env(ENV_ID, KW, n_envs=2, seed=0)
    assert isinstance(venv, SubprocVecEnv) and venv.num_envs == 2
    try:
        model = LAWDDPG("MlpPolicy", venv, seed=0, tensorboard_log=str(tmp_path / "tb"),
                        fdu_epochs=2, learning_starts_episodes=0)
        model.learn(total_timesteps=2 * EP_LEN * 2)
        assert model.num_timesteps == 16 and model.fdu_updates == 2  # one per round
        path = str(tmp_path / "agent.zip")
        model.save(path)
        obs = venv.reset()
        expected, _ = model.predict(obs, deterministic=True)
    finally:
        venv.close()
    loaded = load_law_ddpg(path)
    assert loaded.fdu_epochs == 2 and loaded.actor_lr == DDPG_DEFAULTS.actor_lr
    assert loaded.fdu.get_state() == model.fdu.get_state()  # the permutation generator too
    got, _ = loaded.predict(obs, deterministic=True)
    np.testing.assert_allclose(got, expected, atol=1e-6)
    res = evaluate(loaded, ENV_ID, KW, episodes=1)
    assert len(res.returns) == 1 and np.isfinite(res.returns[0])
    assert np.isfinite(res.test_acc_target[0])
    # TensorBoard: episode return, per-stage reward and accuracies
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = glob.glob(str(tmp_path / "tb" / "*" / "events.*"))
    assert events
    acc = EventAccumulator(os.path.dirname(events[0]))
    acc.Reload()
    tags = set(acc.Tags()["scalars"])
    for tag in ("law/episode_return", "law/stage_reward", "law/acc_target",
                "law/acc_reference", "law/test_acc_target", "law/noisy_weight_mean"):
        assert tag in tags, tag
    assert len(acc.Scalars("law/stage_reward")) == 8  # one per vec step (stage)


def test_checkpoints_and_resume(tmp_path) -> None:
    out = str(tmp_path / "run")
    model = train_law_ddpg(ENV_ID, KW, out, total_steps=8, n_envs=1, checkpoint_every=4,
                           subprocess=False)
    assert model.num_timesteps == 8
    ckpts = sorted(glob.glob(os.path.join(out, "law_ddpg_*_steps.zip")))
    assert [os.path.basename(c) for c in ckpts] == ["law_ddpg_4_steps.zip",
                                                    "law_ddpg_8_steps.zip"]
    # the replay buffer of the newest checkpoint only (buffers are large)
    assert [os.path.basename(p) for p in glob.glob(os.path.join(out, "*_replay_buffer_*"))] == [
        "law_ddpg_replay_buffer_8_steps.pkl"]
    assert latest_checkpoint(out).endswith("final.zip")
    resumed = train_law_ddpg(ENV_ID, KW, out, total_steps=12, n_envs=1, checkpoint_every=4,
                             subprocess=False)
    assert resumed.num_timesteps == 12  # continued from 8, not restarted
    assert resumed.replay_buffer.size() == 12  # replay buffer restored, then extended
    with open(os.path.join(out, "agent.json")) as f:
        assert json.load(f)["algo"] == "ddpg"
    agent = load_agent(out)
    assert isinstance(agent, LAWDDPG) and agent.num_timesteps == 12


def test_cli_train_resume_and_evaluate(tmp_path, capsys) -> None:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    add_train_parser(sub)
    add_evaluate_parser(sub)
    out = str(tmp_path / "cli")
    argv = ["train", "--lib", "sb3", "--algo", "ddpg", "--env", ENV_ID,
            "--env-kwargs", json.dumps(KW), "--agent-kwargs", '{"learning_starts_episodes": 0}',
            "--n-envs", "1", "--episodes", "1", "--out", out]
    args = parser.parse_args(argv)
    assert args.func(args) == 0
    text = capsys.readouterr().out
    assert "trained sb3 ddpg: 1 episodes (4 env steps)" in text
    updates = int(re.search(r"trained .*, (\d+) gradient updates", text).group(1))
    assert updates > 0 and "episode 1/1: mean return" in text  # the progress line
    args = parser.parse_args(argv[:-4] + ["--episodes", "2", "--out", out])
    assert args.func(args) == 0
    text = capsys.readouterr().out
    assert "resumed from" in text and "2 episodes (8 env steps)" in text  # resumed from 4
    assert int(re.search(r"trained .*, (\d+) gradient updates", text).group(1)) > updates
    # evaluate plays the env the agent was trained on, and says so
    args = parser.parse_args(["evaluate", out, "--episodes", "1"])
    assert args.func(args) == 0
    text = capsys.readouterr().out
    assert f"on {ENV_ID} {json.dumps(KW, sort_keys=True)} (the agent's training env)" in text
    assert text.count("episode 0: return") == 1
    args = parser.parse_args(["evaluate", out, "--env-kwargs", json.dumps(KW),
                              "--episodes", "1", "--json"])
    assert args.func(args) == 0
    res = json.loads(capsys.readouterr().out)
    assert len(res["returns"]) == 1 and 0.0 <= res["test_acc_target"][0] <= 1.0


def test_sb3_bad_input(tmp_path) -> None:
    cartpole = DummyVecEnv([lambda: gym.make("CartPole-v1")])
    with pytest.raises(ValueError, match="Box"):
        LAWDDPG("MlpPolicy", cartpole)
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        load_sb3(str(tmp_path / "missing.zip"))
    with pytest.raises(ValueError, match="unknown algorithm 'a2c'"):
        load_sb3(__file__, algo="a2c")
    with pytest.raises(ValueError, match="fdu_epochs"):
        LAWDDPG("MlpPolicy", make_reweight_vec_env(ENV_ID, KW, n_envs=1), fdu_epochs=0)
    with pytest.raises(ValueError, match="n_envs"):
        make_reweight_vec_env(ENV_ID, KW, n_envs=0)


def _train_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser()
    sub = parser.add_subparsers()
    add_train_parser(sub)
    add_evaluate_parser(sub)
    return parser


def test_cli_train_settings_law_and_checkpoint_rounds(tmp_path, capsys) -> None:
    out = str(tmp_path / "law")
    args = _train_parser().parse_args(
        ["train", "--env", ENV_ID, "--env-kwargs", json.dumps(KW), "--n-envs", "1",
         "--episodes", "3", "--settings", "law", "--agent-kwargs",
         '{"fdu_epochs": 3, "learning_starts_episodes": 1}', "--checkpoint-every", "2",
         "--out", out])
    assert args.func(args) == 0
    assert "trained sb3 ddpg: 3 episodes (12 env steps)" in capsys.readouterr().out
    model = load_law_ddpg(os.path.join(out, "final.zip"))
    assert model.actor_lr == LAW_DDPG.actor_lr and model.critic_lr == LAW_DDPG.critic_lr
    assert model.fdu.epochs == 3  # --agent-kwargs on top of --settings
    # a checkpoint every 2 rounds (of one episode: 1 env) and at the end
    names = sorted(os.path.basename(p) for p in glob.glob(os.path.join(out, "law_ddpg_*.zip")))
    assert names == ["law_ddpg_12_steps.zip", "law_ddpg_8_steps.zip"]
    with open(os.path.join(out, "agent.json")) as f:
        meta = json.load(f)
    assert meta["episode_steps"] == EP_LEN and meta["settings"]["n_critics"] == 1
    assert meta["config"]["noise_rate"] == KW["noise_rate"]  # the resolved config


def test_cli_train_refuses_to_mix_runs_and_to_train_nothing(tmp_path, capsys) -> None:
    out = str(tmp_path / "run")
    base = ["train", "--env", ENV_ID, "--n-envs", "1", "--episodes", "1", "--agent-kwargs",
            '{"learning_starts_episodes": 0}', "--out", out]
    args = _train_parser().parse_args(base + ["--env-kwargs", json.dumps(KW)])
    assert args.func(args) == 0
    capsys.readouterr()
    # the same --out with another env config: refused before any training, one line
    other = {**KW, "noise_rate": 0.2}
    args = _train_parser().parse_args(base + ["--env-kwargs", json.dumps(other)])
    assert args.func(args) == 2
    err = capsys.readouterr().err
    assert "holds another run (config:" in err and "--restart" in err and "\n" not in err.strip()
    # --restart deletes that run and starts over
    args = _train_parser().parse_args(base + ["--env-kwargs", json.dumps(other), "--restart"])
    assert args.func(args) == 0
    assert "--restart: deleted the earlier run" in capsys.readouterr().out
    with open(os.path.join(out, "agent.json")) as f:
        assert json.load(f)["config"]["noise_rate"] == 0.2
    # a budget within the random exploration trains nothing: refused, with what to do
    args = _train_parser().parse_args(["train", "--env", ENV_ID, "--env-kwargs", json.dumps(KW),
                                       "--episodes", "8", "--out", str(tmp_path / "short")])
    assert args.func(args) == 2
    assert "--episodes 8 trains nothing" in capsys.readouterr().err
    # an odd number of episodes for 2 searchers runs whole rounds, and says so
    assert _episodes(5, 2, None) == 6
    assert "not a multiple of --n-envs 2: training runs whole rounds, 6 episodes" in \
        capsys.readouterr().out


@pytest.mark.parametrize("argv,message", [
    (["--algo", "a2c"], "unknown algorithm 'a2c': allowed: ddpg, sac, ppo"),
    (["--lib", "tf"], "unknown library 'tf': allowed: sb3, rllib"),
    (["--settings", "paper"], "invalid --settings 'paper': allowed: default, law"),
    (["--algo", "sac", "--settings", "law"], "--settings law is LAW's DDPG: not for --algo sac"),
    (["--address", "127.0.0.1:6379"], "--address and --num-cpus are for --lib rllib"),
    (["--lib", "rllib", "--address", "h:1", "--num-cpus", "2"], "--num-cpus is for a local Ray"),
    (["--agent-kwargs", '{"fdu_epoch": 2}'],
     "invalid --agent-kwargs for sb3 ddpg: .*unexpected keyword argument 'fdu_epoch'"),
    (["--agent-kwargs", '{"fdu_epochs": 0}'], "invalid fdu_epochs=0: must be >= 1"),
    (["--env", "Reweight-Nope-v0"], "unknown environment 'Reweight-Nope-v0'"),
    (["--env-kwargs", '{"noise_rate": 2}'], "invalid noise_rate=2"),
    (["--checkpoint-every", "0"], "--checkpoint-every must be an integer >= 1"),
])
def test_cli_train_bad_input_one_line(tmp_path, capsys, argv: list[str], message: str) -> None:
    base = ["train", "--env-kwargs", json.dumps(KW), "--n-envs", "1", "--episodes", "30",
            "--out", str(tmp_path / "bad")]
    args = _train_parser().parse_args(base + argv)
    assert args.func(args) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err
    assert re.search(message, err), err
