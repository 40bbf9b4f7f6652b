"""A GPU check in one call (a few minutes on one GPU, at most 8 with the defaults): the ``paper``
preset's (ResNet-32, batch 128) iterations per second and the options around them.

- Training throughput, measured interleaved in rounds (``benchmarks.baseline_overhead``'s
  :func:`~benchmarks.baseline_overhead.interleaved_ratios`, each relative to plain training in
  the same round): plain training; with channels-first tensors instead of the config's default
  ``channels_last``; under bfloat16 autocast (mixed precision, CUDA only: an option of this
  measurement, not of the trainer, whose exact path stays float32); with cuDNN's autotuner in
  place of the deterministic kernels the trainer asks for (CUDA only); MW-Net, MW-Net with the
  clean meta set resident on the device, and MW-Net's cheaper meta steps (``meta_every=10``,
  ``meta_grad=last_layer``, ``meta_grad=first_order``). On CUDA also each one's peak device
  memory over a few iterations.
- Data resident on the device: the trainer keeps the training set on the device already
  (batches are sliced and augmented there); the meta, validation and test sets stay on the host
  and are copied per batch. ``mwnet_resident`` and ``evaluate.resident`` measure them moved to
  the device beforehand.
- The environment: ``gym.make("Reweight-CIFAR-v0", ...)`` with the preset's model, data and
  batch, stages of about ``--iters`` iterations but at least an epoch (epochs set for it, no
  warm-up stages), stepped
  with the zero action (target and reference trained, both evaluated on the validation split
  each stage): iterations per second of its steps, and the zero action's reward, which must be
  exactly 0.0 (the two networks bit-identical) under the trainer's deterministic settings
  (cuDNN deterministic kernels, no autotuning; on CUDA this script also sets
  ``CUBLAS_WORKSPACE_CONFIG=:4096:8`` unless it is set). If it is not, the check is repeated
  with ``torch.use_deterministic_algorithms(True)`` and both are reported.

Data: CIFAR-10 from ``--data-root`` (either layout the package reads); without it, synthetic
images of CIFAR-10's shape (random pixels in the python-pickle layout, in a temporary
directory), which the output says: throughput does not depend on pixel values.

    python -m benchmarks.gpu_check --data-root /path/to/cifar10
    python -m benchmarks.gpu_check --device cpu --preset tiny --iters 3   # the CPU test
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import pickle
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.baseline_overhead import interleaved_ratios
from benchmarks.common import RESULTS

OUT = RESULTS / "meta_cost" / "gpu_check.json"
MWNET_SETTINGS = ("mwnet meta_every=10", "mwnet meta_grad=last_layer",
                  "mwnet meta_grad=first_order")


def write_synthetic_cifar10(root: Path, n_train: int, n_test: int, seed: int = 0) -> None:
    """Random uint8 images of CIFAR-10's shape with balanced labels, in the python-pickle layout
    (``cifar-10-batches-py``: five training batches and a test batch)."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)

    def dump(name: str, n: int) -> None:
        entry = {b"data": rng.integers(0, 256, (n, 3 * 32 * 32), dtype=np.uint8),
                 b"labels": [int(k) for k in rng.permutation(np.arange(n) % 10)]}
        with open(folder / name, "wb") as f:
            pickle.dump(entry, f)

    per_batch = math.ceil(n_train / 5)
    for i in range(1, 6):
        dump(f"data_batch_{i}", per_batch)
    dump("test_batch", n_test)


def synthetic_sizes(preset: str) -> tuple[int, int]:
    """(training, test) images a synthetic set needs for ``preset``: its train, validation and
    meta sizes with a tenth to spare (CIFAR-10's 50,000 and 10,000 at most)."""
    from reweight_gym.config import PRESETS

    p = PRESETS[preset]["image"]
    n_train = (p["train_size"] or 50_000) + p["val_size"] + p["meta_size"]
    return min(50_000, math.ceil(1.1 * n_train / 50) * 50), p["test_size"] or 10_000


def resident(splits: Any, device: Any) -> Any:
    """The splits with the meta, validation and test images on the device (the training set is
    moved by the trainer itself)."""
    return dataclasses.replace(splits, meta_x=splits.meta_x.to(device),
                               val_x=splits.val_x.to(device), test_x=splits.test_x.to(device))


@contextmanager
def cudnn_autotune() -> Iterator[None]:
    """cuDNN's autotuner and non-deterministic kernels, for the block only."""
    import torch

    saved = torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = False, True
    try:
        yield
    finally:
        torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved


def determinism_settings() -> dict[str, Any]:
    import torch

    return {"cudnn_deterministic": torch.backends.cudnn.deterministic,
            "cudnn_benchmark": torch.backends.cudnn.benchmark,
            "deterministic_algorithms": torch.are_deterministic_algorithms_enabled(),
            "CUBLAS_WORKSPACE_CONFIG": os.environ.get("CUBLAS_WORKSPACE_CONFIG")}


class Check:
    """The report, written to ``out`` after every phase (a run cut short keeps what it has)."""

    def __init__(self, out: Path, budget_s: float) -> None:
        self.out = out
        self.budget_s = budget_s
        self.t0 = time.perf_counter()
        self.report: dict[str, Any] = {"command": " ".join(sys.argv), "skipped": []}

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0

    def phase(self, name: str) -> bool:
        """Whether to run phase ``name``: not once ``--budget-s`` is spent."""
        if self.elapsed() > self.budget_s:
            self.report["skipped"].append(name)
            print(f"[{self.elapsed():6.1f} s] skipped {name}: the time budget is spent", flush=True)
            return False
        print(f"[{self.elapsed():6.1f} s] {name}", flush=True)
        return True

    def save(self) -> None:
        self.report["seconds"] = self.elapsed()
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.out.write_text(json.dumps(self.report, indent=1) + "\n")


def throughput(cfg: Any, splits: Any, device: Any, rounds: int, iters: int) -> dict[str, Any]:
    """Iterations per second of plain training, its variants and MW-Net's settings."""
    import torch

    from benchmarks.meta_cost import parse_setting
    from reweight_gym.baselines import make_weigher
    from reweight_gym.training.trainer import DuplicateTrainer

    cuda = device.type == "cuda"

    def trainer(method: str = "uniform", c: Any = cfg, s: Any = splits) -> Any:
        name, kwargs = parse_setting(method)
        return DuplicateTrainer(c, splits=s, seed=0, with_reference=False,
                                weigher=make_weigher(name, c, **kwargs))

    def under(context: Callable[[], Any], tr: Any) -> Callable[[int], Any]:
        def run(n: int) -> Any:
            with context():
                return tr.train_iterations(n)
        return run

    trainers = {"plain": trainer(),
                "plain_channels_first": trainer(c=dataclasses.replace(cfg, channels_last=False)),
                "mwnet": trainer("mwnet"),
                "mwnet_resident": trainer("mwnet", s=resident(splits, device)),
                **{m: trainer(m) for m in MWNET_SETTINGS}}
    steps: dict[str, Callable[[int], Any]] = {k: tr.train_iterations for k, tr in trainers.items()}
    if cuda:
        trainers["plain_mixed_precision"] = trainer()
        steps["plain_mixed_precision"] = under(
            lambda: torch.autocast("cuda", dtype=torch.bfloat16), trainers["plain_mixed_precision"])
        trainers["plain_cudnn_autotune"] = trainer()
        steps["plain_cudnn_autotune"] = under(cudnn_autotune, trainers["plain_cudnn_autotune"])
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    rows = interleaved_ratios(steps, rounds, iters, plain="plain", sync=sync)
    peak: dict[str, float | None] = {}
    for name, run in steps.items():  # peak device memory of a few more iterations
        if not cuda:
            peak[name] = None
            continue
        sync()
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
        run(3)
        sync()
        peak[name] = (torch.cuda.max_memory_allocated(device) - base) / 2**20
    out: dict[str, Any] = {
        "iterations_per_second": {k: 1.0 / r["seconds_per_iter"] for k, r in rows.items()},
        "time_x_plain": {k: r["time_ratio"] for k, r in rows.items()},
        "peak_device_memory_mb": peak}
    for key in ("plain_mixed_precision", "plain_cudnn_autotune"):
        out["iterations_per_second"].setdefault(key, None)
        out["time_x_plain"].setdefault(key, None)
    tr = trainers["plain"]
    evaluate = {}
    for where, s in (("host", splits), ("resident", resident(splits, device))):
        tr.target.evaluate(s.val_x[:256], s.val_y[:256], tr.pipeline)  # warm-up
        sync()
        t0 = time.perf_counter()
        tr.target.evaluate(s.val_x, s.val_y, tr.pipeline)
        sync()
        evaluate[where] = len(s.val_y) / (time.perf_counter() - t0)
    out["evaluate_images_per_second"] = evaluate
    return out


def zero_action_steps(env_kwargs: dict[str, Any], steps: int) -> dict[str, Any]:
    """``steps`` steps of the environment with the zero action (uniform weights): iterations per
    second and whether the reward is exactly 0 (and the two networks' accuracies equal)."""
    import gymnasium as gym
    import torch

    env = gym.make("Reweight-CIFAR-v0", **env_kwargs)
    env.reset(seed=0)
    episode = env.unwrapped.episode
    action = np.zeros(env.action_space.shape, dtype=np.float32)
    rewards, gaps, iterations = [], [], 0
    sync = torch.cuda.synchronize if episode.trainer.device.type == "cuda" else (lambda: None)
    seconds = 0.0
    for _ in range(min(steps, env.unwrapped.config.num_stages)):
        start = episode.trainer.iteration
        sync()
        t0 = time.perf_counter()
        _, reward, terminated, _, info = env.step(action)
        sync()
        seconds += time.perf_counter() - t0
        iterations += episode.trainer.iteration - start
        rewards.append(float(reward))
        gaps.append(float(info["acc_target"]) - float(info["acc_reference"]))
        if terminated:
            break
    env.close()
    return {"iterations_per_second": iterations / seconds, "iterations": iterations,
            "stages": len(rewards), "rewards": rewards, "reward": max(map(abs, rewards)),
            "exact": all(r == 0.0 for r in rewards) and all(g == 0.0 for g in gaps),
            "settings": determinism_settings()}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--preset", default="paper", choices=["tiny", "cpu", "cpu-noaug", "paper"])
    ap.add_argument("--data-root", default=None,
                    help="CIFAR-10's directory; without it, synthetic images of its shape")
    ap.add_argument("--iters", type=int, default=100,
                    help="iterations per setting and round, and per environment stage")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--env-steps", type=int, default=2)
    ap.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    ap.add_argument("--budget-s", type=float, default=420.0,
                    help="later phases are skipped once this many seconds have passed")
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args(argv)
    if args.device.startswith("cuda"):  # before the first cuBLAS handle
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    import torch

    from reweight_gym.config import EnvConfig
    from reweight_gym.data.splits import build_splits

    if args.threads:
        torch.set_num_threads(args.threads)
    check = Check(Path(args.out), args.budget_s)
    rep = check.report
    with tempfile.TemporaryDirectory() as tmp:
        data_root = args.data_root
        if data_root is None:
            n_train, n_test = synthetic_sizes(args.preset)
            write_synthetic_cifar10(Path(tmp), n_train, n_test)
            data_root = tmp
            rep["data"] = "synthetic"
            print(f"data: synthetic images of CIFAR-10's shape (random pixels; {n_train} training, "
                  f"{n_test} test), no --data-root given", flush=True)
        else:
            rep["data"] = f"cifar10 at {data_root}"
            print(f"data: CIFAR-10 from {data_root}", flush=True)
        env_kwargs: dict[str, Any] = dict(preset=args.preset, data_root=data_root,
                                          device=args.device, noise_rate=0.4, seed=0)
        cfg = EnvConfig.resolve("cifar10", **env_kwargs)
        t0 = time.perf_counter()
        splits = build_splits(cfg)
        device = torch.device(args.device)
        rep.update(device=str(device), preset=args.preset, model=cfg.model,
                   batch_size=cfg.batch_size, splits=splits.summary(),
                   data_seconds=time.perf_counter() - t0, torch=torch.__version__,
                   cuda=torch.version.cuda,
                   gpu=torch.cuda.get_device_name(device) if device.type == "cuda" else None,
                   threads=torch.get_num_threads(), rounds=args.rounds, iters=args.iters)
        per_epoch = len(splits.train_y) // cfg.batch_size
        if check.phase("training throughput"):
            needed = 2 + args.rounds * args.iters + 3  # warm-up, rounds, peak memory
            long_enough = dataclasses.replace(cfg, epochs=max(cfg.epochs,
                                                              math.ceil(needed / per_epoch)))
            rep.update(throughput(long_enough, splits, device, args.rounds, args.iters))
            check.save()
            for k, v in rep["iterations_per_second"].items():
                print(f"  {k:30s} {'-' if v is None else f'{v:9.2f}'} it/s  "
                      f"x plain {rep['time_x_plain'][k] or float('nan'):.2f}", flush=True)
        if check.phase("environment, zero action"):
            # a stage spans at least one epoch: stages of max(--iters, one epoch) iterations
            epochs = max(cfg.num_stages, math.ceil(args.iters * cfg.num_stages / per_epoch))
            env_kwargs.update(epochs=epochs, warmup_stages=0)
            zero = zero_action_steps(env_kwargs, args.env_steps)
            rep["zero_action"] = zero
            rep.setdefault("iterations_per_second", {})["env"] = zero["iterations_per_second"]
            if not zero["exact"] and device.type == "cuda":
                torch.use_deterministic_algorithms(True, warn_only=True)
                rep["zero_action_strict"] = zero_action_steps(env_kwargs, args.env_steps)
                torch.use_deterministic_algorithms(False)
            check.save()
            print(f"  env {zero['iterations_per_second']:.2f} it/s ({zero['iterations']} "
                  f"iterations of two networks); zero action's rewards {zero['rewards']}: "
                  f"{'exactly 0' if zero['exact'] else 'NOT exactly 0'}", flush=True)
    check.save()
    print(f"[{check.elapsed():6.1f} s] report: {args.out}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
