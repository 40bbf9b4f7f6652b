"""``reweight-gym benchmark``, ``reweight-gym report``, ``reweight-gym fit`` and ``reweight-gym
demo``.

Errors in arguments (unknown suite or method, missing checkpoint, unwritable output directory,
invalid settings) are raised as ``ValueError`` / ``OSError`` and printed by the top-level CLI as
one line with a non-zero exit status.
"""

from __future__ import annotations

import argparse
import os
import time
from typing import Any

from reweight_gym.benchmark.suites import SUITE_NAMES
from reweight_gym.config import DATASETS, PRESET_NAMES
from reweight_gym.validation import parse_json_object, set_torch_threads


def add_benchmark_parser(sub: Any) -> argparse.ArgumentParser:
    from reweight_gym.registry import benchmark_names

    p = sub.add_parser(
        "benchmark", help="compare methods on a suite of corruption settings",
        description="Run every method x setting x seed through the same DuplicateTrainer; "
                    "results go to OUT/results.jsonl as each run finishes (rerun to resume).")
    p.add_argument("--dataset", default="digits", choices=DATASETS)
    p.add_argument("--data-root", default=None, help="dataset directory (CIFAR / imagefolder)")
    p.add_argument("--suite", default="uniform-noise",
                   help=f"one of: {', '.join(SUITE_NAMES)}")
    p.add_argument("--settings", action="append", default=None, metavar="K=V[,K=V]",
                   help="select settings of the suite's grid, e.g. noise_rate=0.4 (repeatable)")
    p.add_argument("--methods", action="append", default=None, metavar="M[,M]",
                   help=f"comma-separated, repeatable: {', '.join(benchmark_names())}, or "
                        "checkpoint paths of trained agents (a path that exists is taken whole, "
                        "commas and all); default: uniform,focal,class_balanced,mwnet,gdw,fsr,"
                        "nrt")
    p.add_argument("--seeds", type=int, default=3, help="number of seeds (0..N-1)")
    p.add_argument("--preset", default="tiny", choices=PRESET_NAMES)
    p.add_argument("--env-kwargs", default="{}",
                   help="JSON object of extra env keywords for every run (e.g. epochs)")
    p.add_argument("--method-kwargs", default="{}",
                   help='JSON object {"method": {kwargs}} passed to the baselines')
    p.add_argument("--out", required=True, help="output directory (results.jsonl, report)")
    p.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="run each run as a Ray task (local instance, or the cluster ADDRESS)")
    p.add_argument("--cpus-per-run", type=float, default=1.0, help="Ray: CPUs per run")
    p.add_argument("--gpus-per-run", type=float, default=0.0, help="Ray: GPUs per run")
    p.add_argument("--threads", type=int, default=None, help="torch threads per run")
    p.add_argument("--no-isolate", action="store_true",
                   help="run every run in this process (default: each in a process of its "
                        "own, forked from a fork server; in one process memory x is the "
                        "running peak of all runs so far)")
    p.add_argument("--tensorboard", action="store_true", help="write TensorBoard scalars")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.add_argument("--no-report", action="store_true", help="do not write the report at the end")
    p.add_argument("--record", default=None, metavar="DIR",
                   help="write every run's trajectory file to DIR (for `reweight-gym replay`)")
    p.set_defaults(func=cmd_benchmark)
    return p


def parse_methods(values: list[str]) -> list[str]:
    """``--methods`` values: each is split on commas, except a value that is an existing path
    (an RLlib Tune trial directory has commas in its name)."""
    out: list[str] = []
    for value in values:
        if os.path.exists(value):
            out.append(value)
        else:
            out += [m.strip() for m in value.split(",") if m.strip()]
    return out


def cmd_benchmark(args: argparse.Namespace) -> int:
    from reweight_gym.benchmark.bench import build_specs, run_benchmark

    if args.seeds < 1:
        raise ValueError(f"invalid --seeds {args.seeds}: must be >= 1")
    methods = parse_methods(args.methods or ["uniform,focal,class_balanced,mwnet,gdw,fsr,nrt"])
    specs = build_specs(args.dataset, args.suite, methods, args.seeds, args.preset,
                        settings=args.settings, data_root=args.data_root,
                        env_overrides=parse_json_object(args.env_kwargs, "--env-kwargs"),
                        method_kwargs=parse_json_object(args.method_kwargs, "--method-kwargs"))
    rows = run_benchmark(specs, args.out, isolate=not args.no_isolate,
                         use_ray=args.ray is not None, ray_address=args.ray or None,
                         progress=not args.quiet, tensorboard=args.tensorboard,
                         cpus_per_run=args.cpus_per_run, gpus_per_run=args.gpus_per_run,
                         threads=args.threads, record=args.record)
    if not args.no_report:
        from reweight_gym.benchmark.report import write_report

        rep = write_report(args.out)
        print(rep["markdown"])
    print(f"{len(rows)} runs in {os.path.join(args.out, 'results.jsonl')}")
    return 0


def add_fit_parser(sub: Any) -> argparse.ArgumentParser:
    from reweight_gym.registry import benchmark_names

    p = sub.add_parser(
        "fit", help="train one classifier with a trained agent's policy, a fixed policy or a "
                    "baseline (no reference network)",
        description="Train one classifier on a dataset, weighted by --policy: a trained "
                    "agent's checkpoint (its num_stages, obs_mode and features are taken from "
                    "its agent.json), a fixed policy or a baseline method. Writes OUT/"
                    "result.json, OUT/model.pt and OUT/stages.csv.")
    p.add_argument("--policy", required=True,
                   help=f"an agent's checkpoint path, or one of {', '.join(benchmark_names())}")
    p.add_argument("--dataset", default="digits", choices=DATASETS)
    p.add_argument("--data-root", default=None, help="dataset directory (CIFAR / imagefolder)")
    p.add_argument("--preset", default="tiny", choices=PRESET_NAMES)
    p.add_argument("--env-kwargs", default="{}",
                   help="JSON object of config keywords (noise_rate, epochs, ...)")
    p.add_argument("--method-kwargs", default="{}",
                   help="JSON object of the baseline's or fixed policy's keywords")
    p.add_argument("--seed", type=int, default=0,
                   help="the run's seed: data draw and the episode of env.reset(seed)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--out", required=True, help="output directory")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_fit)
    return p


def cmd_fit(args: argparse.Namespace) -> int:

    from reweight_gym.benchmark.fit import fit_to_dir
    from reweight_gym.registry import method_kind

    set_torch_threads(args.threads)
    if args.seed < 0:
        raise ValueError(f"invalid --seed {args.seed}: must be >= 0")
    method_kind(args.policy)  # a bad name or a missing checkpoint fails before any data loads
    env_kwargs = parse_json_object(args.env_kwargs, "--env-kwargs")
    result = fit_to_dir(args.out, args.policy, dataset=args.dataset, preset=args.preset,
                        seed=args.seed, data_root=args.data_root,
                        method_kwargs=parse_json_object(args.method_kwargs, "--method-kwargs"),
                        progress=not args.quiet, **env_kwargs)
    print(f"{args.policy} on {args.dataset} ({args.preset}, seed {args.seed}): final test "
          f"accuracy {result.final_test_acc:.4f}, at the best-validation epoch "
          f"{result.test_acc_at_best_val:.4f} (epoch {result.best_val_epoch}); "
          f"{result.seconds:.0f} s; {os.path.join(args.out, 'result.json')}")
    return 0


def add_report_parser(sub: Any) -> argparse.ArgumentParser:
    p = sub.add_parser("report", help="tables (Markdown, CSV) and plots from a results dir",
                       description="Write report.md, results.csv, PNG plots and rules.md into "
                                   "DIR from DIR/results.jsonl.")
    p.add_argument("dir", help="a benchmark output directory")
    p.add_argument("--no-plots", action="store_true")
    p.set_defaults(func=cmd_report)
    return p


def cmd_report(args: argparse.Namespace) -> int:
    from reweight_gym.benchmark.report import write_report

    rep = write_report(args.dir, plots=not args.no_plots)
    print(rep["markdown"])
    print("files: " + ", ".join(rep["files"]))
    return 0


def add_demo_parser(sub: Any) -> argparse.ArgumentParser:
    from reweight_gym.experiments import DEMO, DEMO_AGENT_EPISODES

    p = sub.add_parser(
        "demo", help="the main job of `make demo`: train LAW-DDPG on noisy digits, "
                     "then benchmark it against the baselines",
        description="Offline, on scikit-learn's digits with 40% uniform label noise: trains "
                    "the SB3 LAW-DDPG agent with the package defaults, benchmarks it against "
                    "uniform, focal, class-balanced, SPL, MW-Net, GDW, FSR and NRT over 3 "
                    "seeds, prints the table and writes the report and plots.")
    p.add_argument("--out", default="demo-out", help="output directory (default demo-out)")
    p.add_argument("--agent-episodes", type=int, default=DEMO_AGENT_EPISODES,
                   help=f"LAW-DDPG training episodes (default {DEMO_AGENT_EPISODES})")
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--epochs", type=int, default=DEMO.env["epochs"],
                   help=f"epochs of every training run (default {DEMO.env['epochs']}; fewer for "
                        f"a quick look, at least the {DEMO.env['num_stages']} stages)")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_demo)
    return p


def _demo_specs(methods: list[str], seeds: int, epochs: int) -> list[Any]:
    """The demo's benchmark runs, validated by ``build_specs``: ``methods`` on the demo's
    setting, each on its defaults."""
    from reweight_gym.benchmark.bench import build_specs
    from reweight_gym.experiments import DEMO

    corruption = {k: DEMO.env[k] for k in ("noise_type", "noise_rate")}
    overrides = {k: v for k, v in DEMO.env.items() if k not in corruption}
    return build_specs(DEMO.dataset, "uniform-noise", methods, seeds, DEMO.preset,
                       settings=[corruption], env_overrides={**overrides, "epochs": epochs})


def cmd_demo(args: argparse.Namespace) -> int:
    import torch

    from reweight_gym.benchmark.bench import run_benchmark
    from reweight_gym.benchmark.report import write_report
    from reweight_gym.experiments import DEMO, DEMO_BASELINES

    if args.agent_episodes < 1:
        raise ValueError(f"invalid --agent-episodes {args.agent_episodes}: must be >= 1")
    if args.seeds < 1:
        raise ValueError(f"invalid --seeds {args.seeds}: must be >= 1")
    torch.set_num_threads(1)  # small MLPs: one thread beats two (no OpenMP sync per tiny op)
    t0 = time.perf_counter()
    baselines = ["uniform", *DEMO_BASELINES]
    # every run but the agent's is checked before the agent trains: a bad setting fails now
    _demo_specs(baselines, args.seeds, args.epochs)
    try:
        from reweight_gym.agents.sb3 import train_sb3
    except ImportError:
        raise ValueError("the demo trains a Stable-Baselines3 agent: install the extra "
                         "(pip install 'reweight-gym[sb3]')") from None
    agent_dir = os.path.join(args.out, "law-ddpg")
    env_kwargs = DEMO.kwargs(epochs=args.epochs)
    del env_kwargs["dataset"]
    print(f"[demo] training SB3 LAW-DDPG on Reweight-Digits-v0 (40% uniform noise) for "
          f"{args.agent_episodes} episodes, 2 parallel searchers -> {agent_dir}", flush=True)
    train_sb3("Reweight-Digits-v0", env_kwargs, agent_dir,
              total_steps=args.agent_episodes * DEMO.env["num_stages"], algo="ddpg", n_envs=2,
              seed=0, log=lambda line: print(f"[demo] {line}", flush=True))
    print(f"[demo] agent trained in {time.perf_counter() - t0:.0f} s; benchmarking", flush=True)
    specs = _demo_specs([baselines[0], agent_dir, *baselines[1:]], args.seeds, args.epochs)
    # each run in a process of its own (forked from the fork server: cheap), so that its peak
    # memory, the report's "memory x", is its own and not the peak of every run before it
    run_benchmark(specs, args.out, progress=not args.quiet, threads=1)
    rep = write_report(args.out)
    print(rep["markdown"])
    print(f"[demo] done in {time.perf_counter() - t0:.0f} s; report: "
          f"{os.path.join(args.out, 'report.md')}")
    return 0
