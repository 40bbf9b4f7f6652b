"""Throughput of agent training: environment steps per second with 1 and 2 searchers, with
and without the cached reference network.

LAW's N_a parallel searchers are RLlib env runners (``DDPG``) and SB3 subprocess envs
(``make_reweight_vec_env``). In one run this script measures, for RLlib with 1 and 2 env runners
and for SB3 with 1 and 2 subprocess envs, the env steps per second of training rounds (one
episode per searcher) after one warm-up round, with learning deferred past the run
(``learning_starts_episodes``) so that the number is the searchers' own; every searcher runs one
torch thread. The env is ``Reweight-Instances-v0`` on a small instance set of the training set's
kinds (digits and the CIFAR-10 proxy at 40% uniform noise, 2 episode seeds each), once without
and once with ``reference_cache`` (its directory filled with every instance's references
first, so every measured episode is a hit): the cache's speed-up is what a long training run
sees once its instances' references are in the cache. ``--demo`` measures the demo's digits env
instead (without cache). It prints the ratios and the load average around each measurement
(other jobs on the machine lower a ratio: a ratio is only comparable with the load it was
measured under). The two arms of a ratio run back to back, ``--repeats`` times, and the ratio is
the median of the pairs' ratios. It writes ``benchmarks/results/agents/throughput.json``
(``--out``).

    python -m benchmarks.agent_throughput [--rounds 3] [--repeats 1] [--quick] [--demo]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from typing import Any

import numpy as np
import torch

import reweight_gym
from benchmarks.common import cifar10_root

NO_LEARNING = 10**6  # learning_starts_episodes past the run: searchers only


def throughput_set(quick: bool) -> dict[str, Any]:
    """The instance set measured: the training set's kinds of run, 2 episode seeds each."""
    if quick:
        return {"name": "throughput-quick",
                "defaults": {"preset": "tiny", "obs_mode": "transfer", "episode_seeds": 2},
                "instances": [{"name": "digits-uniform40", "noise_rate": 0.4},
                              {"name": "digits-pairflip20", "noise_type": "pair_flip",
                               "noise_rate": 0.2}]}
    return {"name": "throughput",
            "defaults": {"obs_mode": "transfer", "episode_seeds": 2},
            "instances": [{"name": "digits-uniform40", "dataset": "digits", "preset": "cpu",
                           "noise_rate": 0.4},
                          {"name": "proxy-uniform40", "dataset": "cifar10", "preset": "proxy",
                           "noise_rate": 0.4}]}


def fill_cache(env_id: str, env_kwargs: dict[str, Any]) -> int:
    """Play one zero-action episode of every instance and episode seed with the cache on, so
    that every reference is in it; returns how many were added."""
    import gymnasium as gym
    import numpy as np

    from reweight_gym.envs.instances import load_instance_set

    env = gym.make(env_id, **env_kwargs)
    added = 0
    for inst in load_instance_set(env_kwargs["instance_set"]).instances:
        for seed in inst.episode_seeds:
            _, info = env.reset(seed=0, options={"instance": inst.name, "instance_seed": seed})
            added += not info["reference_cached"]
            done = False
            while not done:
                _, _, term, trunc, _ = env.step(np.zeros(env.action_space.shape, np.float32))
                done = term or trunc
    env.close()
    return added


def _row(lib: str, searchers: int, steps: int, seconds: float,
         load: tuple[tuple[float, ...], tuple[float, ...]], cached: bool) -> dict[str, Any]:
    return {"lib": lib, "searchers": searchers, "reference_cached": cached, "env_steps": steps,
            "seconds": seconds, "env_steps_per_s": steps / seconds,
            "loadavg_before": list(load[0]), "loadavg_after": list(load[1])}


def measure_rllib(n: int, env_id: str, env_kwargs: dict[str, Any], rounds: int) -> dict[str, Any]:
    import reweight_gym.agents.rllib  # noqa: F401
    from reweight_gym.agents.rllib import DDPGConfig

    config = (DDPGConfig().environment(env_id, env_config=env_kwargs)
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
        return _row("rllib", n, after - before, seconds, (load0, os.getloadavg()),
                    "reference_cache" in env_kwargs)
    finally:
        algo.stop()


def measure_sb3(n: int, env_id: str, env_kwargs: dict[str, Any], rounds: int) -> dict[str, Any]:
    from reweight_gym.agents.fdu import episode_length
    from reweight_gym.agents.sb3 import LAWDDPG, make_reweight_vec_env

    venv = make_reweight_vec_env(env_id, env_kwargs, n_envs=n, seed=0, subprocess=True)
    try:
        model = LAWDDPG("MlpPolicy", venv, seed=0, learning_starts_episodes=NO_LEARNING)
        per_round = int(episode_length(venv)) * n
        model.learn(per_round)  # warm-up round
        load0, t0 = os.getloadavg(), time.perf_counter()
        model.learn(rounds * per_round, reset_num_timesteps=False)
        seconds = time.perf_counter() - t0
        return _row("sb3", n, rounds * per_round, seconds, (load0, os.getloadavg()),
                    "reference_cache" in env_kwargs)
    finally:
        venv.close()


def main(argv: list[str] | None = None) -> int:
    import tempfile

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3, help="measured rounds per configuration")
    p.add_argument("--repeats", type=int, default=1,
                   help="pairs (uncached, cached) per configuration; ratios are their median")
    p.add_argument("--quick", action="store_true", help="tiny digits instances (a smoke run)")
    p.add_argument("--demo", action="store_true",
                   help="the demo's digits env, without the cache (the earlier measurement)")
    p.add_argument("--out", default=os.path.join(os.path.dirname(os.path.abspath(__file__)),
                                                 "results", "agents", "throughput.json"))
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    reweight_gym.tune_cpu_allocator()
    from reweight_gym.cluster import connect_ray
    from reweight_gym.experiments import DEMO

    connect_ray(None, num_cpus=2)
    cache = tempfile.mkdtemp(prefix="reference-cache-")
    if args.demo:
        env_id, base = "Reweight-Digits-v0", {"preset": DEMO.preset, **DEMO.env}
        variants = [base]
    else:
        env_id = "Reweight-Instances-v0"
        base = {"instance_set": throughput_set(args.quick)}
        if not args.quick:
            base["data_root"] = cifar10_root()
        print(f"filling the reference cache {cache}: "
              f"{fill_cache(env_id, {**base, 'reference_cache': cache})} references", flush=True)
        variants = [base, {**base, "reference_cache": cache}]
    rows = []
    # the arms of one ratio run back to back (uncached, then cached), repeated: a load that
    # drifts over the run moves both arms of a pair alike
    for lib, fn in (("rllib", measure_rllib), ("sb3", measure_sb3)):
        for n in (1, 2):
            for repeat in range(args.repeats):
                for env_kwargs in variants:
                    row = {**fn(n, env_id, env_kwargs, args.rounds), "repeat": repeat}
                    rows.append(row)
                    print(f"{lib:5s} {n} searcher(s), reference cached "
                          f"{row['reference_cached']}, repeat {repeat}: "
                          f"{row['env_steps_per_s']:.3f} env steps/s ({row['env_steps']} steps "
                          f"in {row['seconds']:.1f} s; load average "
                          f"{row['loadavg_before'][0]:.2f} -> {row['loadavg_after'][0]:.2f})",
                          flush=True)

    def rate(lib: str, n: int, cached: bool, repeat: int) -> float:
        return next(r["env_steps_per_s"] for r in rows
                    if (r["lib"], r["searchers"], r["reference_cached"], r["repeat"]) ==
                    (lib, n, cached, repeat))

    def median_ratio(a: tuple[str, int, bool], b: tuple[str, int, bool]) -> float:
        return float(np.median([rate(*a, k) / rate(*b, k) for k in range(args.repeats)]))

    ratios: dict[str, float] = {}
    for lib in ("rllib", "sb3"):
        ratios[f"{lib} 2 searchers / 1"] = median_ratio((lib, 2, False), (lib, 1, False))
        if not args.demo:
            for n in (1, 2):
                ratios[f"{lib} {n} searcher(s) cached / not"] = median_ratio(
                    (lib, n, True), (lib, n, False))
    for k, v in ratios.items():
        print(f"{k}: {v:.2f}x (median over {args.repeats} repeat(s))")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump({"env_id": env_id, "env_kwargs": base, "rounds": args.rounds,
                   "repeats": args.repeats,
                   "cpu_count": os.cpu_count(), "machine": platform.machine(),
                   "torch_threads_per_searcher": 1, "rows": rows, "ratios": ratios,
                   "command": " ".join(["python -m benchmarks.agent_throughput",
                                        *(argv if argv is not None else sys.argv[1:])])},
                  f, indent=1)
    print(f"results: {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
