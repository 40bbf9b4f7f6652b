"""Per-iteration time and peak memory of every weighting method relative to plain training.

For each model (ResNet-32 and the small CNN on 32x32x3 images, the demo's MLP on 8x8x1 digits
images; batch ``--batch``), every method drives its
own ``DuplicateTrainer`` (same seed, same data) and the methods are timed *interleaved* in rounds:
in each round every method runs ``--iters`` iterations, and its time is divided by the plain
(``uniform``) time of the same round; the reported ratio is the median over ``--rounds`` rounds.
So machine load shared with other processes hits plain and method alike.

Memory: each (model, method) runs in a fresh subprocess; the extra resident memory of training
(peak RSS during the iterations minus RSS after setup; activations, saved tensors, gradients,
optimiser and weigher state) is divided by that of plain training. Images are random uint8 tensors
(timing and memory do not depend on pixel values), so no dataset is needed. The machine's load
average (``os.getloadavg()``) is recorded before and after each model: compare ratios measured
in one run only.

``--malloc tuned`` (default, what the ``reweight-gym`` command does) or ``default`` (glibc's own
malloc settings, ``REWEIGHT_GYM_MALLOC=default``): see ``reweight_gym/allocator.py``. Both
plain and weighted training run under the same setting.

The two measurements are functions other scripts use (``benchmarks/meta_cost.py``,
``benchmarks/gpu_check.py``): :func:`interleaved_ratios` (time, interleaved rounds) and
:func:`extra_peak_bytes` / :func:`child_extra_bytes` (memory, in a fresh process).

    python -m benchmarks.baseline_overhead --threads 1 --rounds 5 --iters 2 \
        --out benchmarks/results/baseline_overhead.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import resource
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from reweight_gym.allocator import tune_cpu_allocator

#: ``policy``: LAW's weighting function with a fixed action, what ``reweight-gym fit`` trains with
#: a trained agent's or a fixed policy (the policy itself acts once per stage, not per iteration)
METHODS = ["uniform", "policy", "focal", "class_balanced", "spl", "mwnet", "mwnet@exact", "gdw",
           "fsr", "nrt", "nrt@20"]
# model -> (dataset of its config, model kwargs, image shape); "mlp" is the demo's network
MODELS: dict[str, tuple[str, dict[str, Any], tuple[int, int, int]]] = {
    "resnet32": ("cifar10", {}, (3, 32, 32)),
    "small_cnn": ("cifar10", {"width": 16}, (3, 32, 32)),
    "mlp": ("digits", {}, (1, 8, 8)),
}


def synthetic_splits(shape: tuple[int, int, int] = (3, 32, 32), n_train: int = 1000,
                     n_meta: int = 200, seed: int = 0) -> Any:
    from reweight_gym.data.splits import DataSplits

    g = torch.Generator().manual_seed(seed)
    c = shape[0]

    def images(n: int) -> torch.Tensor:
        return torch.randint(0, 256, (n, *shape), generator=g, dtype=torch.uint8)

    def labels(n: int) -> torch.Tensor:
        return torch.arange(n) % 10

    y = labels(n_train)
    noisy = torch.rand(n_train, generator=g) < 0.4
    obs = torch.where(noisy, (y + 1) % 10, y)
    return DataSplits(
        train_x=images(n_train), train_y=obs, train_true_y=y, is_noisy=obs != y,
        train_index=np.arange(n_train), val_x=images(100), val_y=labels(100),
        meta_x=images(n_meta), meta_y=labels(n_meta), meta_index=np.arange(n_meta),
        val_index=np.arange(100), test_x=images(100), test_y=labels(100), num_classes=10,
        class_names=[str(i) for i in range(10)], mean=(0.5,) * c, std=(0.25,) * c,
        noise_transition=np.eye(10))


def make_trainer(model: str, method: str, batch: int, preset: str = "cpu") -> Any:
    from reweight_gym.baselines import make_weigher
    from reweight_gym.config import EnvConfig
    from reweight_gym.training.trainer import DuplicateTrainer

    dataset, model_kwargs, shape = MODELS[model]
    cfg = EnvConfig.resolve(dataset, preset, download=dataset != "digits", model=model,
                            model_kwargs=model_kwargs, batch_size=batch, noise_rate=0.4,
                            epochs=10, meta_size=200)
    if method == "policy":  # what `fit` with a policy trains: LAW's K(f) with a fixed action
        from reweight_gym.training.characteristics import feature_dim
        from reweight_gym.training.weigher import LinearTanhWeigher

        theta = torch.full((feature_dim(cfg.features, 10),), 0.5)
        policy = LinearTanhWeigher(cfg.features, theta=theta, bias=-0.2,
                                   normalize=cfg.normalize_weights)
        return DuplicateTrainer(cfg, splits=synthetic_splits(shape), seed=0,
                                with_reference=False, weigher=policy)
    name, kwargs = method, {}
    if method.startswith("nrt@"):  # nrt@K: meta update every K iterations
        name, kwargs = "nrt", {"meta_interval": int(method.split("@")[1])}
    elif method.endswith("@exact"):  # mwnet@exact etc.: the exact forward-mode JVP
        name, kwargs = method.split("@")[0], {"jvp": "forward_ad"}
    weigher = make_weigher(name, cfg, **kwargs)
    return DuplicateTrainer(cfg, splits=synthetic_splits(shape), seed=0, with_reference=False,
                            weigher=weigher)


def rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def peak_rss_bytes() -> int:
    """VmHWM of this process (reset at exec, unlike ru_maxrss which Linux carries over)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status")


def interleaved_ratios(steps: dict[str, Callable[[int], Any]], rounds: int, iters: int,
                       plain: str = "uniform", warmup: int = 2,
                       sync: Callable[[], None] = lambda: None) -> dict[str, dict[str, float]]:
    """Per-iteration time of every ``steps[name](n)`` (train n iterations) relative to
    ``plain``'s, measured interleaved: after ``warmup`` iterations of each (lazy state), in each
    of ``rounds`` rounds every one trains ``iters`` iterations in turn, and its time is divided
    by ``plain``'s of the same round; the median ratio (``time_ratio``) and the median seconds
    per iteration. Load from other processes hits plain and the others alike. ``sync`` waits
    for queued device work (``torch.cuda.synchronize`` on a GPU)."""
    for run in steps.values():
        run(warmup)
    sync()
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(rounds):
        for name, run in steps.items():
            t0 = time.perf_counter()
            run(iters)
            sync()
            times[name].append((time.perf_counter() - t0) / iters)
    return {name: {"time_ratio": statistics.median(t / p for t, p in zip(ts, times[plain])),
                   "seconds_per_iter": statistics.median(ts)} for name, ts in times.items()}


def extra_peak_bytes(run: Callable[[], Any]) -> int:
    """The peak resident memory during ``run()`` minus the resident memory before it (the
    process's high-water mark is reset first, so earlier peaks, e.g. setup's, do not count):
    activations, saved tensors, gradients, optimiser and weigher state. Run it in a fresh
    process (:func:`child_extra_bytes`): a process's freed memory is not all returned."""
    before = rss_bytes()
    try:  # reset the high-water mark to the current RSS, so setup peaks do not count
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
    except OSError:
        pass
    run()
    return peak_rss_bytes() - before


def child_extra_bytes(cmd: list[str], cwd: str | os.PathLike[str] | None = None) -> int:
    """Run ``cmd`` (in ``cwd``), a Python process whose last line of output is
    ``{"extra_bytes": n}`` (:func:`extra_peak_bytes` of its training), and return n."""
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, cwd=cwd)
    return int(json.loads(out.stdout.strip().splitlines()[-1])["extra_bytes"])


def memory_child(model: str, method: str, batch: int, iters: int, preset: str) -> None:
    tr = make_trainer(model, method, batch, preset)
    print(json.dumps({"extra_bytes": extra_peak_bytes(lambda: tr.train_iterations(iters))}))


def measure_memory(model: str, method: str, batch: int, iters: int, threads: int,
                   malloc: str, preset: str = "cpu") -> int:
    return child_extra_bytes(
        [sys.executable, __file__, "--memory-child", model, method, "--batch", str(batch),
         "--iters", str(iters), "--threads", str(threads), "--malloc", malloc,
         "--preset", preset])


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="+", default=list(MODELS))
    ap.add_argument("--methods", nargs="+", default=METHODS)
    ap.add_argument("--batch", type=int, default=100)
    ap.add_argument("--preset", default="cpu", help="the preset of every trainer's config "
                    "(augmentation, schedule; the model is --models')")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--iters", type=int, default=2, help="iterations per method per round")
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--no-time", action="store_true", help="memory ratios only")
    ap.add_argument("--malloc", choices=["tuned", "default"], default="tuned",
                    help="REWEIGHT_GYM_MALLOC for this run and its memory subprocesses")
    ap.add_argument("--out", default=None)
    ap.add_argument("--memory-child", nargs=2, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    os.environ["REWEIGHT_GYM_MALLOC"] = args.malloc
    allocator = tune_cpu_allocator()  # before any trainer, in this process and memory children
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.memory_child:
        memory_child(*args.memory_child, args.batch, args.iters, args.preset)
        return
    methods = ["uniform"] + [m for m in args.methods if m != "uniform"]
    report: dict[str, Any] = {"command": " ".join(sys.argv), "threads": torch.get_num_threads(),
                              "batch": args.batch, "preset": args.preset, "malloc": args.malloc,
                              "allocator": allocator, "models": {}}
    for model in args.models:
        load_before = os.getloadavg()
        rows: dict[str, Any] = {m: {"time_ratio": math.nan, "seconds_per_iter": math.nan}
                                for m in methods}
        if not args.no_time:
            trainers = {m: make_trainer(model, m, args.batch, args.preset) for m in methods}
            rows = interleaved_ratios({m: tr.train_iterations for m, tr in trainers.items()},
                                      args.rounds, args.iters)
            del trainers
        if not args.no_memory:
            mem = {m: measure_memory(model, m, args.batch, 3, args.threads, args.malloc,
                                     args.preset)
                   for m in methods}
            for m in methods:
                rows[m]["extra_mb"] = mem[m] / 2**20
                rows[m]["memory_ratio"] = mem[m] / max(1, mem["uniform"])
        load = {"before": load_before, "after": os.getloadavg()}
        report["models"][model] = rows
        report.setdefault("loadavg", {})[model] = load
        print(f"\n{model}, batch {args.batch}, {report['threads']} thread(s), malloc "
              f"{args.malloc}, median of {args.rounds} interleaved rounds x {args.iters} "
              f"iterations; load average (1, 5, 15 min) before {load['before']}, after "
              f"{load['after']}")
        print(f"{'method':16s} {'s/iter':>8s} {'time x plain':>13s} {'time x mwnet':>13s} "
              f"{'extra MB':>9s} {'mem x plain':>12s}")
        for m in methods:
            r = rows[m]
            mw = r["time_ratio"] / rows["mwnet"]["time_ratio"] if "mwnet" in rows else float("nan")
            print(f"{m:16s} {r['seconds_per_iter']:8.3f} {r['time_ratio']:13.2f} {mw:13.2f} "
                  f"{r.get('extra_mb', float('nan')):9.1f} "
                  f"{r.get('memory_ratio', float('nan')):12.2f}", flush=True)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
