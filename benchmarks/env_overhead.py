"""Environment overhead: one ReweightEnv episode vs. a plain PyTorch loop training two networks.

Prints, measured in the same run:
- the wall time of one env episode (reset + all steps, including the per-stage validation and
  final test evaluations of both networks) divided by the time of a plain PyTorch loop that trains
  the same two networks for the same iterations (same model, batch size, augmentation,
  channels_last); the plain loop is timed before and after the episode and averaged;
- the training throughput (images/s) of the substrate (one network, uniform weights) against the
  best plain single-network loop;
- the wall time of one ``tiny`` episode on digits (median of 5).

Usage:
    python -m benchmarks.env_overhead [--data-root DIR] --preset cpu
    python -m benchmarks.env_overhead --data-root ... --epochs 3 --num-stages 3   # quicker
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import time
from typing import Any

import gymnasium as gym
import numpy as np
import torch
import torch.nn.functional as F

import reweight_gym
from benchmarks.common import cifar10_root
from reweight_gym.config import EnvConfig
from reweight_gym.data import build_splits
from reweight_gym.models import build_model
from reweight_gym.training import DuplicateTrainer, UniformWeigher


def plain_loop(cfg: EnvConfig, splits: Any, iterations: int, n_nets: int) -> float:
    """The best plain loop we can write: uint8 tensor slicing, per-sample pad-crop + flip on
    tensors, channels_last, SGD; ``n_nets`` networks fed the same batch. Returns seconds."""
    torch.manual_seed(0)
    model = build_model(cfg.model, splits.num_classes, splits.image_shape, **cfg.model_kwargs)
    model = model.to(memory_format=torch.channels_last)
    nets = [model] + [copy.deepcopy(model) for _ in range(n_nets - 1)]
    opts = [torch.optim.SGD(m.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                            weight_decay=cfg.weight_decay) for m in nets]
    x_all, y_all = splits.train_x, splits.train_y
    mean = torch.tensor(splits.mean).view(1, -1, 1, 1) * 255
    std = torch.tensor(splits.std).view(1, -1, 1, 1) * 255
    n, b, p = len(y_all), cfg.batch_size, cfg.crop_padding
    _, h, w = splits.image_shape
    ipe = n // b
    ar_h, ar_w = torch.arange(h), torch.arange(w)
    start = time.perf_counter()
    perm = torch.randperm(n)
    for it in range(iterations):
        if it % ipe == 0:
            perm = torch.randperm(n)
        idx = perm[(it % ipe) * b: (it % ipe + 1) * b]
        xb = F.pad(x_all[idx], (p, p, p, p))
        oy, ox = torch.randint(0, 2 * p + 1, (2, b))
        rows = (oy[:, None] + ar_h)[:, None, :, None]
        cols = (ox[:, None] + ar_w)[:, None, None, :]
        bi = torch.arange(b)[:, None, None, None]
        ci = torch.arange(xb.shape[1])[None, :, None, None]
        xb = xb[bi, ci, rows, cols]
        if cfg.flip:
            xb = torch.where((torch.rand(b) < 0.5)[:, None, None, None], xb.flip(-1), xb)
        xb = ((xb.float() - mean) / std).contiguous(memory_format=torch.channels_last)
        yb = y_all[idx]
        for m, opt in zip(nets, opts):
            m.train()
            loss = F.cross_entropy(m(xb), yb)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
    return time.perf_counter() - start


def episode_time(env_id: str, kwargs: dict[str, Any], action_value: float) -> tuple[float, dict]:
    env = gym.make(env_id, **kwargs)
    start = time.perf_counter()
    env.reset(seed=0)
    done, info, ret = False, {}, 0.0
    while not done:
        a = np.zeros(env.action_space.shape, np.float32)
        a[0] = action_value  # weight on the loss feature: weighting is really computed
        _, r, term, trunc, info = env.step(a)
        ret += r
        done = term or trunc
    seconds = time.perf_counter() - start
    return seconds, {"return": ret, "test_acc_target": info.get("test_acc_target"),
                     "test_acc_reference": info.get("test_acc_reference"),
                     "iterations": env.unwrapped.episode.trainer.total_iterations}


def substrate_throughput(cfg: EnvConfig, splits: Any, iterations: int) -> float:
    run = DuplicateTrainer(cfg, splits, seed=0, with_reference=False)
    start = time.perf_counter()
    run.train_iterations(iterations, UniformWeigher())
    return iterations * run.sampler.batch_size / (time.perf_counter() - start)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--dataset", default="cifar10")
    ap.add_argument("--data-root", default=cifar10_root(),
                    help="CIFAR-10 (default: $REWEIGHT_GYM_CIFAR10 or ../shared)")
    ap.add_argument("--preset", default="cpu")
    ap.add_argument("--noise-rate", type=float, default=0.4)
    ap.add_argument("--epochs", type=int, default=None)
    ap.add_argument("--num-stages", type=int, default=None)
    ap.add_argument("--throughput-iters", type=int, default=60)
    ap.add_argument("--threads", type=int, default=2, help="torch threads (default 2)")
    ap.add_argument("--json", default=None, help="also write the numbers to this JSON file")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    reweight_gym.tune_cpu_allocator()  # as the reweight-gym command does

    kwargs: dict[str, Any] = {"noise_rate": args.noise_rate, "preset": args.preset}
    if args.dataset != "digits":
        kwargs["data_root"] = args.data_root
    if args.epochs is not None:
        kwargs["epochs"] = args.epochs
    if args.num_stages is not None:
        kwargs["num_stages"] = args.num_stages
    env_id = {"cifar10": "Reweight-CIFAR-v0", "cifar100": "Reweight-CIFAR100-v0",
              "digits": "Reweight-Digits-v0"}[args.dataset]
    cfg = EnvConfig.resolve(args.dataset, **kwargs)
    splits = build_splits(cfg)
    iters = cfg.epochs * (len(splits.train_y) // cfg.batch_size)

    # throughput: substrate vs plain single-network loop, interleaved
    plain_ips, sub_ips = [], []
    for _ in range(3):
        t = plain_loop(cfg, splits, args.throughput_iters, 1)
        plain_ips.append(args.throughput_iters * cfg.batch_size / t)
        sub_ips.append(substrate_throughput(cfg, splits, args.throughput_iters))

    plain_before = plain_loop(cfg, splits, iters, 2)
    ep_seconds, ep_info = episode_time(env_id, kwargs, -0.5)
    plain_after = plain_loop(cfg, splits, iters, 2)
    plain = 0.5 * (plain_before + plain_after)

    tiny = []
    for _ in range(5):
        s, _ = episode_time("Reweight-Digits-v0", {"noise_rate": 0.4, "preset": "tiny"}, -0.5)
        tiny.append(s)

    out = {
        "torch_threads": args.threads,
        "config": {"dataset": cfg.dataset, "preset": cfg.preset, "model": cfg.model,
                   "model_kwargs": cfg.model_kwargs, "train_size": len(splits.train_y),
                   "val_size": len(splits.val_y), "test_size": len(splits.test_y),
                   "epochs": cfg.epochs, "num_stages": cfg.num_stages,
                   "batch_size": cfg.batch_size, "iterations": iters},
        "episode_seconds": ep_seconds,
        "plain_two_net_seconds": plain,
        "plain_two_net_seconds_before_after": [plain_before, plain_after],
        "episode_over_plain": ep_seconds / plain,
        "substrate_img_per_s": statistics.median(sub_ips),
        "plain_img_per_s": statistics.median(plain_ips),
        "substrate_over_plain_throughput":
            statistics.median(sub_ips) / statistics.median(plain_ips),
        "tiny_digits_episode_seconds_median": statistics.median(tiny),
        "episode": ep_info,
    }
    print(f"config: {json.dumps(out['config'])}, torch threads {args.threads}")
    print(f"episode: {ep_seconds:.1f} s   plain 2-net loop, same iterations: {plain:.1f} s "
          f"(before {plain_before:.1f}, after {plain_after:.1f})")
    print(f"episode / plain = {out['episode_over_plain']:.3f}   (target <= 1.15)")
    print(f"throughput: substrate {out['substrate_img_per_s']:.0f} img/s, plain "
          f"{out['plain_img_per_s']:.0f} img/s, ratio {out['substrate_over_plain_throughput']:.3f}")
    print(f"tiny digits episode: {out['tiny_digits_episode_seconds_median']:.2f} s (median of 5)")
    print(f"episode result: {json.dumps(ep_info)}")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(out, fh, indent=2)


if __name__ == "__main__":
    main()
