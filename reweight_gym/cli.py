"""The ``reweight-gym`` command.

Sub-commands: ``episode`` (one episode with a fixed policy, per-stage rewards and accuracies),
``fit`` (one classifier trained with a policy, an agent or a baseline, no reference),
``replay`` (re-run a recorded trajectory and compare), ``validate`` (re-run a sample of a
benchmark's rows and compare), ``demo`` (the main job of ``make demo``), and, from the agents and
benchmark layers, ``train``, ``evaluate``, ``benchmark``, ``report``. ``replay`` and ``validate``
exit with status 1 when a value differs beyond the tolerance. Bad arguments (``ValueError`` /
``OSError`` from any layer, whose messages name the field, the value and what is allowed) print
one line and exit with status 2. Every command first tunes the CPU allocator of its process
(``reweight_gym/allocator.py``; ``REWEIGHT_GYM_MALLOC=default`` opts out).
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, cast

from reweight_gym.allocator import tune_cpu_allocator
from reweight_gym.validation import parse_json_object, set_torch_threads

if TYPE_CHECKING:
    from reweight_gym.envs.reweight_env import ReweightEnv


def cmd_episode(args: argparse.Namespace) -> int:
    """Run one complete episode with a fixed policy and print per-stage rewards/accuracies."""
    import gymnasium as gym

    import reweight_gym  # noqa: F401  (registration)
    from reweight_gym.agents.policies import make_policy

    set_torch_threads(args.threads)
    kwargs = parse_json_object(args.env_kwargs, "--env-kwargs")
    try:
        env = gym.make(args.env, **kwargs)
    except gym.error.Error as e:
        raise ValueError(f"invalid --env {args.env!r}: {e}") from None
    policy = make_policy(args.policy, env, seed=args.seed)
    obs, info = env.reset(seed=args.seed)
    cfg = cast("ReweightEnv", env.unwrapped).config
    print(f"{args.env} {cfg.dataset} preset={cfg.preset} noise={cfg.noise_type}:{cfg.noise_rate} "
          f"imbalance={cfg.imbalance_type}:{cfg.imbalance_factor} model={cfg.model} "
          f"stages={cfg.num_stages} (warm-up {cfg.warmup_stages}) policy={args.policy}")
    print(f"{'stage':>5} {'reward':>9} {'acc_target':>10} {'acc_ref':>8} {'w_noisy':>8} "
          f"{'w_clean':>8}")
    total, done = 0.0, False
    while not done:
        action, _ = policy.predict(obs, deterministic=True)
        obs, r, term, trunc, info = env.step(action)
        total += cast(float, r)  # ReweightEnv.step's reward is a float
        done = term or trunc

        def f(v: float) -> str:
            return "nan" if math.isnan(v) else f"{v:.3f}"

        print(f"{info['stage']:>5} {r:>9.3f} {info['acc_target']:>10.4f} "
              f"{info['acc_reference']:>8.4f} {f(info['noisy_weight_mean']):>8} "
              f"{f(info['clean_weight_mean']):>8}")
    if info["diverged"]:
        print(f"diverged: episode terminated, return {total:.3f}")
    else:
        print(f"return {total:.3f}  test acc target {info['test_acc_target']:.4f}  "
              f"reference {info['test_acc_reference']:.4f}")
    return 0


def cmd_replay(args: argparse.Namespace) -> int:
    """Re-run the recorded actions of a trajectory file on a fresh environment made from its
    recorded config and seed, print the per-stage differences of rewards and info values, and
    exit with status 0 when it matches, 1 on a mismatch on the recording's own platform (CPU
    type, library versions, thread count: a reproducibility bug) and 3 when it differs beyond the
    tolerance on another platform (expected: bit-for-bit equality holds on the same platform
    only)."""
    from reweight_gym.benchmark.replay import replay

    report = replay(args.file, tolerance=args.tolerance, value_tolerance=args.value_tolerance,
                    threads=args.threads)
    print("\n".join(report.lines()))
    return report.exit_status


def cmd_validate(args: argparse.Namespace) -> int:
    """Re-run a seeded sample of the rows of a benchmark results directory and compare each with
    its stored values; exit with status 1 if any row differs beyond the tolerance on its own
    platform (a reproducibility bug), else 3 if any differs on another platform (expected), else
    0."""
    from reweight_gym.benchmark.replay import validate_results

    reports = validate_results(args.dir, sample=args.sample, seed=args.seed,
                               tolerance=args.tolerance, value_tolerance=args.value_tolerance,
                               threads=args.threads)
    for report in reports:
        print("\n".join(report.lines()))
    bugs = [r.source for r in reports if r.verdict == "MISMATCH"]
    expected = [r.source for r in reports if r.verdict == "DIFFERS"]
    print(f"validated {len(reports)} row(s): {len(reports) - len(bugs) - len(expected)} match"
          + (f", {len(bugs)} mismatch on their own platform (a reproducibility bug): "
             f"{', '.join(bugs)}" if bugs else "")
          + (f", {len(expected)} differ on another platform (expected): {', '.join(expected)}"
             if expected else ""))
    return max((r.exit_status for r in reports), key=lambda s: (s == 1, s))


def _add_tolerance_args(p: argparse.ArgumentParser) -> None:
    from reweight_gym.benchmark.replay import DEFAULT_TOLERANCE, DEFAULT_VALUE_TOLERANCE

    p.add_argument("--tolerance", type=float, default=None, metavar="X",
                   help="largest allowed reward difference (default: 0 on the recording's "
                        f"platform and thread count, else {DEFAULT_TOLERANCE:g}, measured)")
    p.add_argument("--value-tolerance", type=float, default=None, metavar="Y",
                   help="the same for every other recorded float (default: 0 on the "
                        f"recording's platform and thread count, else {DEFAULT_VALUE_TOLERANCE:g})")
    p.add_argument("--threads", type=int, default=None,
                   help="torch threads of the re-run (default: the recording's)")


def build_parser() -> argparse.ArgumentParser:
    from reweight_gym.agents.cli import add_evaluate_parser, add_train_parser
    from reweight_gym.benchmark.cli import (
        add_benchmark_parser,
        add_demo_parser,
        add_fit_parser,
        add_report_parser,
    )
    from reweight_gym.registry import policy_names

    parser = argparse.ArgumentParser(
        prog="reweight-gym",
        description="Learning to Auto Weight as a Gymnasium environment, with meta-gradient "
                    "weighting baselines on one training substrate.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    ep = sub.add_parser("episode", help="run one episode with a fixed policy",
                        description=cmd_episode.__doc__)
    ep.add_argument("--env", default="Reweight-Digits-v0", help="a registered environment id")
    ep.add_argument("--env-kwargs", default='{"noise_rate": 0.4}',
                    help="JSON object of environment keywords")
    ep.add_argument("--policy", default="easy_first",
                    help=f"a fixed policy: {', '.join(policy_names())}")
    ep.add_argument("--seed", type=int, default=0)
    ep.add_argument("--threads", type=int, default=1,
                    help="torch threads (default 1: small nets, no OpenMP synchronisation)")
    ep.set_defaults(func=cmd_episode)
    rp = sub.add_parser("replay", help="re-run a recorded trajectory file and compare",
                        description=cmd_replay.__doc__)
    rp.add_argument("file", help="a trajectory JSON file (RecordEpisode, evaluate --record or "
                                 "benchmark --record)")
    _add_tolerance_args(rp)
    rp.set_defaults(func=cmd_replay)
    va = sub.add_parser("validate", help="re-run a sample of a benchmark's rows and compare",
                        description=cmd_validate.__doc__)
    va.add_argument("dir", help="a benchmark output directory (results.jsonl)")
    va.add_argument("--sample", type=int, default=3,
                    help="rows to re-run, drawn with --seed (default 3; at least the number of "
                         "rows re-runs every row)")
    va.add_argument("--seed", type=int, default=0, help="seed of the sample (default 0)")
    _add_tolerance_args(va)
    va.set_defaults(func=cmd_validate)
    for add in (add_train_parser, add_evaluate_parser, add_benchmark_parser, add_report_parser,
                add_fit_parser, add_demo_parser):
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        tune_cpu_allocator()
        return int(args.func(args) or 0)
    except (ValueError, OSError) as e:  # validation names field, value, allowed; paths
        print(f"reweight-gym {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"reweight-gym {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
