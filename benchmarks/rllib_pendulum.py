"""Validate the RLlib DDPG implementation on Pendulum-v1.

Trains :class:`agents.rllib.DDPGConfig` on ``Pendulum-v1`` for ``--steps`` environment steps
(default 30,000) and, every ``--eval-every`` steps, evaluates the deterministic policy (no
exploration noise) for ``--eval-episodes`` episodes on fixed seeds. Writes the learning curve
to ``OUT/results.json`` as it goes, checkpoints the algorithm to ``OUT/checkpoint`` and resumes
from it. Target: mean evaluation return above -400 within 30,000 env steps.

    .venv/bin/python benchmarks/rllib_pendulum.py --out runs/rllib_pendulum
"""

from __future__ import annotations

import argparse
import json
import os
import time

import gymnasium as gym
import numpy as np

from agents.rllib import make_config
from agents.rllib.agent import RLlibAgent, is_rllib_checkpoint
from agents.rllib.configs import init_ray

TARGET = -400.0


def evaluate_module(agent: RLlibAgent, episodes: int, seed: int = 10_000) -> list[float]:
    env = gym.make("Pendulum-v1")
    returns = []
    for ep in range(episodes):
        obs, _ = env.reset(seed=seed + ep)
        done, total = False, 0.0
        while not done:
            action, _ = agent.predict(obs, deterministic=True)
            obs, r, terminated, truncated, _ = env.step(action)
            total += float(r)
            done = terminated or truncated
        returns.append(total)
    env.close()
    return returns


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="runs/rllib_pendulum")
    p.add_argument("--steps", type=int, default=30_000)
    p.add_argument("--eval-every", type=int, default=2_500)
    p.add_argument("--eval-episodes", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    os.makedirs(args.out, exist_ok=True)
    ckpt = os.path.abspath(os.path.join(args.out, "checkpoint"))
    results_path = os.path.join(args.out, "results.json")
    results: dict = {"curve": [], "config": {}}
    if os.path.exists(results_path) and is_rllib_checkpoint(ckpt):
        with open(results_path) as f:
            results = json.load(f)

    training = dict(actor_lr=1e-3, critic_lr=1e-3, tau=0.01, gamma=0.99,
                    train_batch_size_per_learner=64, replay_ratio=0.5, exploration_noise=0.1,
                    num_steps_sampled_before_learning_starts=1000)
    results["config"] = training
    init_ray(num_cpus=2)
    config = make_config("ddpg", "Pendulum-v1", {}, num_env_runners=0, seed=args.seed,
                         **training)
    algo = config.build_algo()
    if is_rllib_checkpoint(ckpt):
        algo.restore_from_path(ckpt)
        print(f"resumed from {ckpt}", flush=True)
    t0 = time.time()
    next_eval = (results["curve"][-1]["env_steps"] if results["curve"] else 0) + args.eval_every
    steps = 0
    try:
        while True:
            res = algo.train()
            steps = int(res["env_runners"]["num_env_steps_sampled_lifetime"])
            if steps >= next_eval or steps >= args.steps:
                agent = RLlibAgent(algo.get_module(), normalize_actions=config.normalize_actions)
                rets = evaluate_module(agent, args.eval_episodes)
                row = {"env_steps": steps, "eval_mean_return": float(np.mean(rets)),
                       "eval_std_return": float(np.std(rets)),
                       "train_episode_return_mean": res["env_runners"].get(
                           "episode_return_mean"),
                       "wall_s": round(time.time() - t0, 1)}
                results["curve"].append(row)
                print(json.dumps(row), flush=True)
                algo.save_to_path(ckpt)
                with open(results_path, "w") as f:
                    json.dump(results, f, indent=1)
                next_eval = steps + args.eval_every
            if steps >= args.steps:
                break
    finally:
        algo.stop()
    hits = [r["env_steps"] for r in results["curve"] if r["eval_mean_return"] > TARGET]
    results["first_env_steps_above_target"] = hits[0] if hits else None
    results["final_eval_mean_return"] = results["curve"][-1]["eval_mean_return"]
    with open(results_path, "w") as f:
        json.dump(results, f, indent=1)
    print(json.dumps({k: results[k] for k in ("first_env_steps_above_target",
                                                "final_eval_mean_return")}))
    return 0 if hits else 1


if __name__ == "__main__":
    raise SystemExit(main())
