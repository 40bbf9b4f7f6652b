"""Throughput of the parallel searchers: environment steps per second with 1 and 2 searchers.

LAW's N_a parallel searchers are RLlib env runners (``DDPG``) and SB3 subprocess envs
(``make_reweight_vec_env``). In one run this script measures, on the demo's env (digits, 40%
noise, 100 epochs, 10 stages: one env step trains both networks for 10 epochs), for
RLlib with 1 and 2 env runners and for SB3 with 1 and 2 subprocess envs: the env steps per second
of training rounds (one episode per searcher) after one warm-up round, with learning deferred
past the run (``learning_starts_episodes``) so that the number is the searchers' own; every
searcher runs one torch thread. It prints each library's ratio of 2 searchers to 1 and the load
average of the machine around each measurement (other jobs on the machine lower the ratio: a
ratio is only comparable with the load it was measured under), and writes
``benchmarks/results/agents/throughput.json`` (``--out``).

    python -m benchmarks.agent_throughput [--rounds 3] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from typing import Any

import torch

import reweight_gym

ENV_ID = "Reweight-Digits-v0"
NO_LEARNING = 10**6  # learning_starts_episodes past the run: searchers only


def _env_kwargs(quick: bool) -> dict[str, Any]:
    from reweight_gym.experiments import DEMO

    return ({"preset": "tiny", "noise_rate": 0.4} if quick
            else {"preset": DEMO.preset, **DEMO.env})


def _row(lib: str, searchers: int, steps: int, seconds: float,
         load: tuple[tuple[float, ...], tuple[float, ...]]) -> dict[str, Any]:
    return {"lib": lib, "searchers": searchers, "env_steps": steps, "seconds": seconds,
            "env_steps_per_s": steps / seconds, "loadavg_before": list(load[0]),
            "loadavg_after": list(load[1])}


def measure_rllib(n: int, env_kwargs: dict[str, Any], rounds: int) -> dict[str, Any]:
    import reweight_gym.agents.rllib  # noqa: F401
    from reweight_gym.agents.rllib import DDPGConfig

    config = (DDPGConfig().environment(ENV_ID, env_config=env_kwargs)
              .env_runners(num_env_runners=n, num_cpus_per_env_runner=1)
              .debugging(seed=0).training(learning_starts_episodes=NO_LEARNING))
    algo = config.build_algo()
    try:
        algo.train()  # warm-up round: env construction, data, first episode
        before = int(algo.metrics.peek(("env_runners", "num_env_steps_sampled_lifetime")))
        load0, t0 = os.getloadavg(), time.perf_counter()
        for _ in range(rounds):
            algo.train()
        seconds = time.perf_counter() - t0
        after = int(algo.metrics.peek(("env_runners", "num_env_steps_sampled_lifetime")))
        return _row("rllib", n, after - before, seconds, (load0, os.getloadavg()))
    finally:
        algo.stop()


def measure_sb3(n: int, env_kwargs: dict[str, Any], rounds: int) -> dict[str, Any]:
    from reweight_gym.agents.fdu import episode_length
    from reweight_gym.agents.sb3 import LAWDDPG, make_reweight_vec_env

    venv = make_reweight_vec_env(ENV_ID, env_kwargs, n_envs=n, seed=0, subprocess=True)
    try:
        model = LAWDDPG("MlpPolicy", venv, seed=0, learning_starts_episodes=NO_LEARNING)
        per_round = int(episode_length(venv)) * n
        model.learn(per_round)  # warm-up round
        load0, t0 = os.getloadavg(), time.perf_counter()
        model.learn(rounds * per_round, reset_num_timesteps=False)
        seconds = time.perf_counter() - t0
        return _row("sb3", n, rounds * per_round, seconds, (load0, os.getloadavg()))
    finally:
        venv.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3, help="measured rounds per configuration")
    p.add_argument("--quick", action="store_true", help="tiny preset (a smoke run)")
    p.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                 "results", "agents", "throughput.json"))
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    reweight_gym.tune_cpu_allocator()
    from reweight_gym.cluster import connect_ray

    connect_ray(None, num_cpus=2)
    env_kwargs = _env_kwargs(args.quick)
    rows = []
    for lib, fn in (("rllib", measure_rllib), ("sb3", measure_sb3)):
        for n in (1, 2):
            row = fn(n, env_kwargs, args.rounds)
            rows.append(row)
            print(f"{lib:5s} {n} searcher(s): {row['env_steps_per_s']:.3f} env steps/s "
                  f"({row['env_steps']} steps in {row['seconds']:.1f} s; load average "
                  f"{row['loadavg_before'][0]:.2f} -> {row['loadavg_after'][0]:.2f})",
                  flush=True)
    ratios = {}
    for lib in ("rllib", "sb3"):
        one, two = (r["env_steps_per_s"] for r in rows if r["lib"] == lib)
        ratios[lib] = two / one
        print(f"{lib}: 2 searchers / 1 = {ratios[lib]:.2f}x (target >= 1.6x on a quiet machine)")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"env_id": ENV_ID, "env_kwargs": env_kwargs, "rounds": args.rounds,
                   "cpu_count": os.cpu_count(), "machine": platform.machine(),
                   "torch_threads_per_searcher": 1, "rows": rows, "ratio_2_over_1": ratios},
                  f, indent=1)
    print(f"results: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
