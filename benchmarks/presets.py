"""What one episode of each preset costs, and whether the CIFAR-10 proxy behaves like the run it
stands in for (issue 24.3).

``--cost``: the wall time and the CPU time of one whole environment episode (both networks,
the zero action, one torch thread) of every preset on its dataset, measured one after the other
in this process (so that the ratios compare like with like), and each one's ratio to the
``cpu-noaug`` CIFAR-10 episode (of CPU times: they hardly depend on other jobs). Also the same
with the reference network cached (the target alone), which is what a training episode costs
once its reference is in the cache, and the share of that cached episode spent in ``reset``
(the warm-up stages, trained unweighted whatever the agent does): the most that caching the
warm-up's end state per instance could save (issue 24.4).

``--accuracy``: the proxy at 40% uniform label noise, ``uniform``, ``mwnet`` and ``gdw`` on
3 seeds through :func:`reweight_gym.runner.run` (resumable): does plain training memorise (final
test accuracy below the best-validation epoch's) and do the meta-gradient methods gain?

    python -m benchmarks.presets --cost
    python -m benchmarks.presets --cost --labels "cifar10 proxy" "cifar10 cpu-noaug"
    python -m benchmarks.presets --accuracy
    python -m benchmarks.presets --table
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from benchmarks.common import RESULTS, JsonlLog, cifar10_root, machine, markdown_table, mean_std

OUT = RESULTS / "presets"
#: (label, env id, preset, extra keywords): the episodes timed by --cost
EPISODES: tuple[tuple[str, str, str, dict[str, Any]], ...] = (
    ("digits tiny", "Reweight-Digits-v0", "tiny", {}),
    ("digits cpu", "Reweight-Digits-v0", "cpu", {}),
    ("demo", "Reweight-Digits-v0", "tiny", {"epochs": 100, "num_stages": 10, "train_size": None,
                                            "lr_schedule": "cosine", "weight_decay": 0.0}),
    ("cifar10 proxy", "Reweight-CIFAR-v0", "proxy", {}),
    ("cifar10 cpu", "Reweight-CIFAR-v0", "cpu", {}),
    ("cifar10 cpu-noaug", "Reweight-CIFAR-v0", "cpu-noaug", {}),
)
BASELINE = "cifar10 cpu-noaug"


def time_episode(env_id: str, preset: str, extra: dict[str, Any],
                 cache_dir: str | None, rereset: bool = False) -> dict[str, Any]:
    """One whole episode with the zero action: seconds of reset + steps (data already loaded),
    the return (0 by construction) and, with ``cache_dir`` warm, the cached-reference cost.
    ``rereset``: then the CPU time of one more ``reset`` of the same env, whose instance data
    is built by then, as in a training env's later episodes: the episode's start and warm-up."""
    import gymnasium as gym
    import numpy as np

    import reweight_gym  # noqa: F401

    kw: dict[str, Any] = {"preset": preset, "noise_rate": 0.4, **extra}
    if env_id != "Reweight-Digits-v0":
        kw["data_root"] = cifar10_root()
    if cache_dir:
        kw["reference_cache"] = cache_dir
    env = gym.make(env_id, **kw)
    t0, c0 = time.perf_counter(), time.process_time()
    env.reset(seed=0)  # loads the data (cached in this process after the first episode), warm-up
    reset_cpu = time.process_time() - c0
    done, steps, info = False, 0, {}
    while not done:
        _, _, term, trunc, info = env.step(np.zeros(env.action_space.shape, np.float32))
        steps += 1
        done = term or trunc
    seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
    out = {"seconds": seconds, "cpu_seconds": cpu, "reset_cpu_seconds": reset_cpu,
           "steps": steps, "test_acc": info.get("test_acc_target")}
    if rereset:
        c1 = time.process_time()
        env.reset(seed=0)
        out["rereset_cpu_seconds"] = time.process_time() - c1
    env.close()
    return out


def cost(out: JsonlLog, labels: list[str] | None = None) -> None:
    """Time :data:`EPISODES` (those named in ``labels``, default all) in this process; every
    row carries this measurement's ``run`` (its start time), so that ratios compare rows of one
    run only."""
    import tempfile

    import torch

    torch.set_num_threads(1)
    known = [e[0] for e in EPISODES]
    bad = sorted(set(labels or ()) - set(known))
    if bad:
        raise SystemExit(f"presets: error: invalid --labels {bad}: allowed: {known}")
    from reweight_gym.data.datasets import load_dataset

    chosen = [e for e in EPISODES if not labels or e[0] in labels]
    # every dataset in memory before the first timer starts, so that no episode pays the load
    for env_id in {e[1] for e in chosen}:
        if env_id == "Reweight-Digits-v0":
            load_dataset("digits")
        else:
            load_dataset("cifar10", cifar10_root())
    # one untimed episode first: the process's one-time costs (imports, torch's first calls)
    time_episode("Reweight-Digits-v0", "tiny", {}, None)
    run = time.strftime("%Y-%m-%dT%H:%M:%S")
    for label, env_id, preset, extra in chosen:
        with tempfile.TemporaryDirectory() as cache:
            live = time_episode(env_id, preset, extra, cache)  # a miss: both networks, stored
            cached = time_episode(env_id, preset, extra, cache, rereset=True)  # a hit: the target
        row = {"label": label, "env_id": env_id, "preset": preset, "extra": extra,
               "seconds": live["seconds"], "seconds_cached_reference": cached["seconds"],
               "cpu_seconds": live["cpu_seconds"],
               "cpu_seconds_cached_reference": cached["cpu_seconds"],
               "reset_cpu_seconds_cached_reference": cached["reset_cpu_seconds"],
               "rereset_cpu_seconds_cached_reference": cached["rereset_cpu_seconds"],
               "steps": live["steps"], "run": run, "machine": machine()}
        out.append(row)
        print(f"{label}: {row['seconds']:.1f} s per episode ({row['cpu_seconds']:.1f} s of CPU), "
              f"{row['seconds_cached_reference']:.1f} s with the reference cached "
              f"({row['cpu_seconds_cached_reference']:.1f} s of CPU)", flush=True)


def cost_table(rows: list[dict[str, Any]]) -> str:
    """The newest measurement of each preset. Its ratio to the baseline measured in the same run
    (rows from before runs were recorded form one run), else "–"; ratios and speed-ups compare
    CPU seconds where the rows have them (the process's own time: other jobs on the machine
    lengthen the wall time, hardly the CPU time), else wall seconds."""
    def has_base(r: dict[str, Any]) -> bool:
        return any(b["label"] == BASELINE and b.get("run") == r.get("run") for b in rows)

    last: dict[str, dict[str, Any]] = {}
    for r in rows:  # the newest row of a label, one with a baseline in its run if there is one
        if r["label"] not in last or has_base(r) or not has_base(last[r["label"]]):
            last[r["label"]] = r
    out = []

    def cost(r: dict[str, Any], cached: bool = False) -> float:
        key = "seconds_cached_reference" if cached else "seconds"
        return r.get(f"cpu_{key}", r[key])

    for label, *_ in EPISODES:
        r = last.get(label)
        if r is None:
            continue
        base = next((b for b in reversed(rows) if b["label"] == BASELINE
                     and b.get("run") == r.get("run")), None)
        ratio = ("–" if base is None else "1" if r is base
                 else f"1/{cost(base) / cost(r):.1f}")
        cpu = (f"{r['cpu_seconds']:.1f}" if "cpu_seconds" in r else "–",
               f"{r['cpu_seconds_cached_reference']:.1f}" if "cpu_seconds" in r else "–")
        out.append([label, r["steps"], f"{r['seconds']:.1f}", cpu[0], ratio,
                    f"{r['seconds_cached_reference']:.1f}", cpu[1],
                    f"{cost(r) / cost(r, cached=True):.2f}x"])
    return markdown_table(["preset", "steps", "one episode (s)", "CPU (s)", f"vs {BASELINE}",
                           "reference cached (s)", "cached CPU (s)", "speed-up"], out)


def warmup_table(rows: list[dict[str, Any]]) -> str:
    """Per preset (its newest row that measured it): the CPU share of ``reset`` in an episode
    whose reference is cached, as a training env's later episodes run it (the instance's data
    built: the second ``reset`` of the env). That ``reset`` trains the target's warm-up stages,
    the part of a training episode that a cache of the warm-up's end state per instance would
    skip; the first ``reset`` also builds the instance's data (noise draw, subsets, resizing)."""
    last = {r["label"]: r for r in rows if "rereset_cpu_seconds_cached_reference" in r}
    out = []
    for label, *_ in EPISODES:
        r = last.get(label)
        if r is None:
            continue
        warm = r["rereset_cpu_seconds_cached_reference"]
        total = (r["cpu_seconds_cached_reference"] - r["reset_cpu_seconds_cached_reference"]
                 + warm)
        out.append([label, r["steps"], f"{warm:.2f}", f"{total:.2f}",
                    f"{100 * warm / total:.1f}%", f"{total / (total - warm):.2f}x"])
    return markdown_table(["preset", "agent steps", "reset CPU (s)", "episode CPU (s)",
                           "reset share", "speed-up if the warm-up were cached"], out)


def accuracy(out: JsonlLog, seeds: list[int]) -> None:
    from benchmarks.common import run_specs
    from reweight_gym.runner import RunSpec

    jobs = []
    for seed in seeds:
        for method in ("uniform", "mwnet", "gdw"):
            spec = RunSpec("cifar10", "uniform-noise", {"noise_type": "uniform",
                                                        "noise_rate": 0.4},
                           method, seed, "proxy", cifar10_root())
            jobs.append(({"experiment": "proxy-uniform40"}, spec))
    # the headroom: plain training on the same images with clean labels, what perfect
    # down-weighting of the noisy samples could at most recover
    for seed in seeds:
        spec = RunSpec("cifar10", "uniform-noise", {"noise_type": "uniform", "noise_rate": 0.0},
                       "uniform", seed, "proxy", cifar10_root())
        jobs.append(({"experiment": "proxy-clean"}, spec))
    run_specs(out, jobs)


#: the config fields that say which proxy a row ran (its preset's values at the time)
PROXY_FIELDS = ("image_size", "model", "model_kwargs", "train_size", "epochs", "num_stages",
                "warmup_stages", "batch_size", "lr", "lr_schedule", "weight_decay", "meta_size",
                "val_size", "test_size")


def current_proxy(row: dict[str, Any]) -> bool:
    """Whether a stored row ran today's ``proxy`` preset (rows of an earlier proxy stay in the
    file, untabulated)."""
    from reweight_gym.config import EnvConfig

    now = EnvConfig.resolve("cifar10", "proxy", data_root=".").to_dict()
    cfg = row.get("config", {})
    return all(json.dumps(cfg.get(k)) == json.dumps(now[k]) for k in PROXY_FIELDS)


def accuracy_table(rows: list[dict[str, Any]]) -> str:
    from reweight_gym.runner import RunResult

    rows = [r for r in rows if current_proxy(r)]
    noisy = [RunResult.from_row(r) for r in rows
             if r.get("tags", {}).get("experiment", "proxy-uniform40") == "proxy-uniform40"]
    clean = [RunResult.from_row(r) for r in rows
             if r.get("tags", {}).get("experiment") == "proxy-clean"]
    uni = {r.seed: r for r in noisy if r.method == "uniform"}
    out = []
    arms = [(m, m, [r for r in noisy if r.method == m]) for m in ("uniform", "mwnet", "gdw")]
    arms.append(("uniform, clean labels (headroom)", "clean", clean))
    for label, method, rs in arms:
        if not rs:
            continue
        final = mean_std([100 * r.final_test_acc for r in rs])
        best = mean_std([100 * r.test_acc_at_best_val for r in rs])
        gap = mean_std([100 * (r.test_acc_at_best_val - r.final_test_acc) for r in rs])
        gain = [100 * (r.final_test_acc - uni[r.seed].final_test_acc) for r in rs
                if r.seed in uni]
        g = mean_std(gain) if gain and method != "uniform" else None
        out.append([label, ",".join(str(r.seed) for r in rs),
                    f"{final[0]:.2f} ± {final[1]:.2f}", f"{best[0]:.2f} ± {best[1]:.2f}",
                    f"{gap[0]:+.2f} ± {gap[1]:.2f}",
                    f"{g[0]:+.2f} ± {g[1]:.2f} ({', '.join(f'{x:+.2f}' for x in gain)})"
                    if g else "–"])
    return markdown_table(["method", "seeds", "final test acc (%)",
                           "test acc at best-val epoch (%)", "best-val minus final",
                           "final vs uniform (paired, per seed)"], out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cost", action="store_true")
    ap.add_argument("--accuracy", action="store_true")
    ap.add_argument("--table", action="store_true")
    ap.add_argument("--labels", nargs="+", default=None, metavar="LABEL",
                    help="--cost: only these episodes (with the baseline for the ratio)")
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--out", default=str(OUT))
    args = ap.parse_args(argv)
    cost_log, acc_log = JsonlLog(f"{args.out}/cost.jsonl"), JsonlLog(f"{args.out}/accuracy.jsonl")
    if args.cost:
        cost(cost_log, args.labels)
    if args.accuracy:
        accuracy(acc_log, args.seeds)
    text = ("## One episode of each preset (zero action, one torch thread)\n\n"
            + cost_table(cost_log.rows()) + "\n\n## The proxy at 40% uniform noise\n\n"
            + accuracy_table(acc_log.rows())
            + "\n\n## What caching the warm-up's end state would save (reference cached)\n\n"
            + warmup_table(cost_log.rows()) + "\n")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "report.md").write_text(text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
