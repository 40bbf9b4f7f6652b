"""Does an RL agent learn a useful weighting policy on Reweight-Digits-v0 (40% uniform noise)?

Trains one agent (SB3 LAW-DDPG, RLlib DDPG or RLlib SAC) with 2 parallel envs (LAW's N_a
searchers) for a wall-clock budget, checkpointing as it goes (rerunning the same command
resumes, the budget counts the time already spent), then evaluates it with exploration off for
``--eval-episodes`` episodes on held-out seeds next to the fixed policies (uniform, random,
easy_first, hard_first) on the *same* seeds, and reports returns, final test accuracies, mean
weights of noisy vs clean samples and the learned weight function K = 1 + tanh(theta.f + b)
(LAW eq. 3) against the batch-standardised loss, per stage. Results go to ``OUT/results.json``.

    .venv/bin/python benchmarks/agent_learning.py --lib sb3 --algo ddpg --out runs/learn_sb3
    .venv/bin/python benchmarks/agent_learning.py --lib rllib --algo ddpg --out runs/learn_rllib
    .venv/bin/python benchmarks/agent_learning.py --lib rllib --algo sac --out runs/learn_sac
"""

from __future__ import annotations

import argparse
import json
import os
import time
from typing import Any

import gymnasium as gym
import numpy as np
import torch

import reweight_gym
from agents.evaluate import EvalResult, evaluate, weight_vs_loss
from agents.policies import make_policy

ENV_ID = "Reweight-Digits-v0"
ENV_KWARGS = {"preset": "tiny", "noise_rate": 0.4, "noise_type": "uniform", "seed": 0}
EVAL_SEED = 10_000  # training episodes draw their seeds from the env RNG, never these
LOSS_GRID = (-2.0, -1.0, 0.0, 1.0, 2.0)

SB3_DEFAULTS: dict[str, Any] = dict(actor_lr=1e-4, critic_lr=1e-3, fdu_epochs=2,
                                    fdu_batch_size=64, noise_sigma=0.2, buffer_size=4096,
                                    learning_starts=64, train_freq=4, gamma=0.99)
RLLIB_DEFAULTS: dict[str, dict[str, Any]] = {
    "ddpg": dict(actor_lr=1e-4, critic_lr=1e-3, exploration_noise=0.2, replay_ratio=4.0,
                 train_batch_size_per_learner=32, num_steps_sampled_before_learning_starts=64),
    "sac": dict(actor_lr=3e-4, critic_lr=1e-3, num_steps_sampled_before_learning_starts=64),
}


def _progress(out: str) -> dict[str, Any]:
    path = os.path.join(out, "progress.json")
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    return {"elapsed_s": 0.0}


def _save_progress(out: str, progress: dict[str, Any]) -> None:
    with open(os.path.join(out, "progress.json"), "w") as f:
        json.dump(progress, f)


def train_sb3(out: str, budget_s: float, n_envs: int, seed: int, kwargs: dict[str, Any]) -> Any:
    from stable_baselines3.common.callbacks import BaseCallback

    from agents.sb3 import LAWDDPG, load_law_ddpg, make_reweight_vec_env

    progress = _progress(out)
    ckpt, rb = os.path.join(out, "ckpt.zip"), os.path.join(out, "ckpt_replay.pkl")

    class BudgetCheckpoint(BaseCallback):
        """Checkpoint (model, replay buffer, elapsed time) every ``every`` vec steps; stop
        when the wall-clock budget is spent."""

        def __init__(self, start_elapsed: float, every: int = 40) -> None:
            super().__init__()
            self.start_elapsed, self.every, self.t0 = start_elapsed, every, time.time()

        def elapsed(self) -> float:
            return self.start_elapsed + time.time() - self.t0

        def save(self) -> None:
            self.model.save(ckpt)
            self.model.save_replay_buffer(rb)
            _save_progress(out, {"elapsed_s": self.elapsed(),
                                 "num_timesteps": int(self.model.num_timesteps)})

        def _on_step(self) -> bool:
            if self.n_calls % self.every == 0:
                self.save()
                print(json.dumps({"elapsed_s": round(self.elapsed()),
                                  "steps": int(self.model.num_timesteps),
                                  "fdu_updates": self.model.fdu_updates}), flush=True)
            return self.elapsed() < budget_s

        def _on_training_end(self) -> None:
            self.save()

    venv = make_reweight_vec_env(ENV_ID, ENV_KWARGS, n_envs=n_envs, seed=seed)
    try:
        if os.path.exists(ckpt):
            model = load_law_ddpg(ckpt, env=venv)
            model.load_replay_buffer(rb)
            reset = False
        else:
            model = LAWDDPG("MlpPolicy", venv, seed=seed,
                            tensorboard_log=os.path.join(out, "tb"), **kwargs)
            reset = True
        if progress["elapsed_s"] < budget_s:
            model.learn(total_timesteps=10**9, callback=BudgetCheckpoint(progress["elapsed_s"]),
                        reset_num_timesteps=reset)
        return model
    finally:
        venv.close()


def train_rllib(algo: str, out: str, budget_s: float, n_envs: int, seed: int,
                kwargs: dict[str, Any]) -> Any:
    from agents.rllib import make_config
    from agents.rllib.agent import RLlibAgent, is_rllib_checkpoint
    from agents.rllib.configs import init_ray

    progress = _progress(out)
    ckpt = os.path.abspath(os.path.join(out, "checkpoint"))
    init_ray(num_cpus=max(2, n_envs))
    config = make_config(algo, ENV_ID, ENV_KWARGS, num_env_runners=n_envs, seed=seed, **kwargs)
    if algo == "sac":
        config.store_buffer_in_checkpoints = True
    algorithm = config.build_algo()
    try:
        if is_rllib_checkpoint(ckpt):
            algorithm.restore_from_path(ckpt)
        t0, start = time.time(), progress["elapsed_s"]
        while start + time.time() - t0 < budget_s:
            res = algorithm.train()
            if algorithm.iteration % 20 == 0:
                algorithm.save_to_path(ckpt)
                _save_progress(out, {"elapsed_s": start + time.time() - t0,
                                     "iteration": algorithm.iteration})
                er = res["env_runners"]
                print(json.dumps({"elapsed_s": round(start + time.time() - t0),
                                  "episodes": er.get("num_episodes_lifetime"),
                                  "return_mean": er.get("episode_return_mean")}), flush=True)
        algorithm.save_to_path(ckpt)
        _save_progress(out, {"elapsed_s": start + time.time() - t0,
                             "iteration": algorithm.iteration})
        return RLlibAgent(algorithm.get_module(), normalize_actions=config.normalize_actions)
    finally:
        algorithm.stop()


def weight_table(res: EvalResult) -> list[dict[str, Any]]:
    """Per stage: mean action's weight at loss z in LOSS_GRID (LAW eq. 3), theta_loss, b."""
    acts = np.asarray(res.actions, dtype=np.float64)  # (episodes, stages, action_dim)
    rows = []
    names = res.feature_names or []
    li = names.index("loss") if "loss" in names else 0
    for stage in range(acts.shape[1]):
        a = acts[:, stage].mean(axis=0)
        rows.append({"stage": stage, "theta_loss": float(a[li] * res.action_scale),
                     "bias": float(a[-1] * res.action_scale),
                     "weight_at_loss_z": dict(zip([str(z) for z in LOSS_GRID],
                                                  weight_vs_loss(a, names, res.action_scale,
                                                                 LOSS_GRID)))})
    return rows


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--lib", default="sb3", choices=("sb3", "rllib"))
    p.add_argument("--algo", default="ddpg", choices=("ddpg", "sac"))
    p.add_argument("--out", required=True)
    p.add_argument("--minutes", type=float, default=15.0)
    p.add_argument("--n-envs", type=int, default=2)
    p.add_argument("--eval-episodes", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--agent-kwargs", default="{}", help="JSON overrides of the defaults")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    reweight_gym.tune_cpu_allocator()  # as the reweight-gym command does
    os.makedirs(args.out, exist_ok=True)
    budget = args.minutes * 60.0
    if args.lib == "sb3":
        kwargs = {**SB3_DEFAULTS, **json.loads(args.agent_kwargs)}
        agent = train_sb3(args.out, budget, args.n_envs, args.seed, kwargs)
    else:
        kwargs = {**RLLIB_DEFAULTS[args.algo], **json.loads(args.agent_kwargs)}
        agent = train_rllib(args.algo, args.out, budget, args.n_envs, args.seed, kwargs)
    progress = _progress(args.out)

    env = gym.make(ENV_ID, **ENV_KWARGS)
    contenders: dict[str, Any] = {"agent": agent}
    for name in ("uniform", "random", "easy_first", "hard_first"):
        contenders[name] = make_policy(name, env, seed=args.seed)
    results: dict[str, Any] = {"lib": args.lib, "algo": args.algo, "env_id": ENV_ID,
                               "env_kwargs": ENV_KWARGS, "agent_kwargs": kwargs,
                               "train_wall_s": progress["elapsed_s"], "progress": progress,
                               "eval_seeds": [EVAL_SEED + i for i in range(args.eval_episodes)],
                               "policies": {}}
    for name, pol in contenders.items():
        res = evaluate(pol, ENV_ID, ENV_KWARGS, episodes=args.eval_episodes, seed=EVAL_SEED)
        entry = {"returns": res.returns, **res.summary(),
                 "test_acc_target": res.test_acc_target,
                 "test_acc_reference": res.test_acc_reference}
        if name == "agent":
            entry["weight_vs_loss_per_stage"] = weight_table(res)
        results["policies"][name] = entry
        print(f"{name:10s} mean return {entry['mean_return']:8.3f}  returns "
              f"{np.round(res.returns, 2).tolist()}  weight noisy {entry['mean_noisy_weight']:.3f}"
              f" clean {entry['mean_clean_weight']:.3f}  test acc "
              f"{entry['mean_test_acc_target']:.4f} vs ref "
              f"{entry['mean_test_acc_reference']:.4f}", flush=True)
    for row in results["policies"]["agent"]["weight_vs_loss_per_stage"]:
        print(f"stage {row['stage']}: theta_loss {row['theta_loss']:+.3f} b {row['bias']:+.3f} "
              f"K(z) at z={list(LOSS_GRID)}: "
              f"{[round(v, 3) for v in row['weight_at_loss_z'].values()]}")
    pol = results["policies"]
    results["agent_beats_uniform_and_random"] = bool(
        pol["agent"]["mean_return"] > pol["uniform"]["mean_return"]
        and pol["agent"]["mean_return"] > pol["random"]["mean_return"])
    print(f"agent beats uniform and random: {results['agent_beats_uniform_and_random']}")
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(results, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
