"""How much a replay differs when the torch thread count differs (the default replay tolerance).

Records episodes of the ``tiny`` digits environment with ``RecordEpisode`` at one torch thread,
then replays each recording with ``reweight_gym.benchmark.replay.replay_env`` (the code path of
``reweight-gym replay``) twice: at one thread (the baseline: the recording's platform, where every
value must match bit for bit) and at ``--threads`` threads. Prints, per episode and overall, the
largest absolute difference of the rewards and of every other recorded float (accuracies, losses,
weights, observations), and writes them to ``benchmarks/results/replay_tolerance.json``.

Usage:
    python -m benchmarks.replay_tolerance                     # 6 episodes, 1 vs 2 threads
    python -m benchmarks.replay_tolerance --episodes 3 --epochs 4 --num-stages 2   # quicker
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch

import reweight_gym
from reweight_gym.benchmark.replay import replay_env
from reweight_gym.envs.record import read_trajectory
from reweight_gym.provenance import provenance

POLICIES = ("random", "easy_first")


def record(directory: str, episodes: int, env_kwargs: dict[str, Any]) -> list[Path]:
    """``episodes`` episodes per policy at one thread, seeds 0..episodes-1; their files."""
    from reweight_gym.agents.policies import make_policy

    torch.set_num_threads(1)
    paths: list[Path] = []
    for name in POLICIES:
        env = reweight_gym.RecordEpisode(gym.make("Reweight-Digits-v0", **env_kwargs), directory,
                                         name_prefix=name)
        policy = make_policy(name, env, seed=0)
        for ep in range(episodes):
            obs, _ = env.reset(seed=ep)
            done = False
            while not done:
                obs, _, term, trunc, _ = env.step(policy.predict(obs)[0])
                done = term or trunc
        env.close()
        paths += env.paths
    return paths


def largest(path: Path, threads: int) -> dict[str, float]:
    """Largest |difference| of rewards and of other floats when replaying at ``threads``."""
    rep = replay_env(read_trajectory(path), str(path), tolerance=1e300,
                     value_tolerance=1e300, threads=threads)
    reward = [d.delta for d in rep.differences if d.key == "reward" and d.delta is not None]
    other = [(d.delta, d.key) for d in rep.differences
             if d.key != "reward" and d.delta is not None]
    hard = [d for d in rep.differences if d.delta is None]  # ints, flags, lengths
    top = max(other, default=(0.0, None))
    return {"reward": max(reward, default=0.0), "value": top[0], "value_key": top[1],
            "values_differing": len(other), "exact_fields_differing": len(hard)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--episodes", type=int, default=6, help="episodes per policy")
    ap.add_argument("--threads", type=int, default=2, help="threads of the second replay")
    ap.add_argument("--epochs", type=int, default=8)
    ap.add_argument("--num-stages", type=int, default=4)
    ap.add_argument("--out", default="benchmarks/results/replay_tolerance.json")
    args = ap.parse_args()
    env_kwargs = {"noise_rate": 0.4, "epochs": args.epochs, "num_stages": args.num_stages}
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        paths = record(tmp, args.episodes, env_kwargs)
        rows = []
        for p in paths:
            base, other = largest(p, 1), largest(p, args.threads)
            rows.append({"episode": p.stem, "same_threads": base, "other_threads": other})
            print(f"{p.stem}: 1 vs 1 thread reward {base['reward']:.3g} value "
                  f"{base['value']:.3g} | 1 vs {args.threads} threads reward "
                  f"{other['reward']:.3g} value {other['value']:.3g} ({other['value_key']}; "
                  f"{other['values_differing']} floats differ, "
                  f"{other['exact_fields_differing']} exact fields)", flush=True)
    summary = {k: max(r["other_threads"][k] for r in rows) for k in ("reward", "value")}
    baseline = {k: max(r["same_threads"][k] for r in rows) for k in ("reward", "value")}
    result = {
        "what": f"largest |difference| replaying tiny-digits episodes recorded at 1 torch thread, "
                f"at 1 (baseline) and {args.threads} threads",
        "env_kwargs": env_kwargs, "policies": list(POLICIES), "episodes_per_policy":
            args.episodes, "threads": [1, args.threads],
        "baseline_same_threads": baseline, "other_threads": summary,
        "exact_fields_differing": sum(r["other_threads"]["exact_fields_differing"]
                                      for r in rows),
        "episodes": rows, "provenance": provenance("cpu"),
        "seconds": time.perf_counter() - t0,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    print(f"largest reward difference: {baseline['reward']:.3g} at 1 thread (baseline), "
          f"{summary['reward']:.3g} at {args.threads}; other floats: {baseline['value']:.3g} / "
          f"{summary['value']:.3g}; written to {args.out}")


if __name__ == "__main__":
    main()
