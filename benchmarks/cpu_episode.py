"""Wall time of one complete `cpu`-preset episode of Reweight-CIFAR-v0 (both networks, every
stage's validation and the final test evaluation), with a fixed easy-first action.

Usage: python -m benchmarks.cpu_episode [--data-root DIR] [--threads 2]
"""

from __future__ import annotations

import argparse
import json
import time

import gymnasium as gym
import numpy as np
import torch

import reweight_gym
from benchmarks.common import cifar10_root


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--data-root", default=cifar10_root(),
                    help="CIFAR-10 (default: $REWEIGHT_GYM_CIFAR10 or ../shared)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--noise-rate", type=float, default=0.4)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    reweight_gym.tune_cpu_allocator()  # as the reweight-gym command does
    env = gym.make("Reweight-CIFAR-v0", data_root=args.data_root, preset="cpu",
                   noise_rate=args.noise_rate)
    start = time.perf_counter()
    env.reset(seed=0)
    done, ret, info = False, 0.0, {}
    while not done:
        a = np.zeros(env.action_space.shape, np.float32)
        a[0] = -0.5
        _, r, term, trunc, info = env.step(a)
        ret += r
        done = term or trunc
    seconds = time.perf_counter() - start
    print(json.dumps({"seconds": seconds, "threads": args.threads, "return": ret,
                      "test_acc_target": info["test_acc_target"],
                      "test_acc_reference": info["test_acc_reference"]}))


if __name__ == "__main__":
    main()
