"""``reweight-gym train`` and ``reweight-gym evaluate`` subcommands (argparse).

``add_train_parser(subparsers)`` and ``add_evaluate_parser(subparsers)`` add the subcommands;
each sets ``func`` to a callable ``(args) -> int`` (the exit code). Bad arguments print one line
``error: ...`` on stderr and return 2; nothing here lets a traceback reach the user for bad input.

    reweight-gym train --lib sb3|rllib --algo ddpg|sac|ppo --env ID \\
        --env-kwargs '{"preset": "tiny", "noise_rate": 0.4}' --n-envs K --episodes N --out DIR \\
        [--settings default|law] [--agent-kwargs JSON] [--checkpoint-every ROUNDS] \\
        [--restart] [--address RAY_ADDRESS]
    reweight-gym evaluate CHECKPOINT_OR_POLICY [--env ID --env-kwargs ...] --episodes N \\
        [--json] [--record DIR] [--threads T]

``train`` checks every argument from the config alone (no data is loaded before training
starts), then resumes from the newest checkpoint in ``--out`` if it holds the same run (a run
killed at any moment loses at most the rounds since its last checkpoint; checkpoints are written
atomically), and refuses an ``--out`` that holds another run unless ``--restart``. DDPG trains
with the package's settings (``reweight_gym.agents.settings.DDPG_DEFAULTS``) unless
``--settings law`` (LAW's own, ``LAW_DDPG``); ``--agent-kwargs`` overrides single fields on top.
``evaluate`` plays a trained agent on the env it was trained on (its ``agent.json``) unless
``--env`` / ``--env-kwargs`` say otherwise, and prints the config it runs and each episode as it
ends.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from typing import Any

from reweight_gym.validation import parse_json_object, set_torch_threads

LIBS = ("sb3", "rllib")
ALGOS = ("ddpg", "sac", "ppo")
DEFAULT_ENV = "Reweight-Digits-v0"


class UsageError(ValueError):
    """A bad command-line argument (reported as one line)."""


def _fail(message: str) -> int:
    print(f"error: {' '.join(str(message).split())}", file=sys.stderr)
    return 2


def _json_arg(text: str, flag: str) -> dict[str, Any]:
    try:
        return parse_json_object(text, flag)
    except ValueError as e:
        raise UsageError(str(e)) from None


def _positive_int(value: Any, flag: str) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise UsageError(f"{flag} must be an integer >= 1, got {value!r}")
    return value


def _set_threads(value: Any) -> None:
    try:
        set_torch_threads(value)
    except ValueError as e:
        raise UsageError(str(e)) from None


def check_env_args(env_id: str, env_kwargs: dict[str, Any]) -> int:
    """Validate an env id and its keywords from the config alone (no data loaded) and return
    the episode length; one-line ``UsageError`` naming what is wrong."""
    import gymnasium as gym

    import reweight_gym  # noqa: F401  (registration)
    from reweight_gym.agents.fdu import episode_length

    try:
        gym.spec(env_id)
    except gym.error.Error as e:
        raise UsageError(f"unknown environment {env_id!r}: {e}") from None
    try:
        steps = episode_length(env_id=env_id, env_kwargs=env_kwargs)
    except (ValueError, TypeError) as e:  # EnvConfig: names field, value, what is allowed
        raise UsageError(str(e)) from None
    if steps is None:
        raise UsageError(f"cannot tell the episode length of {env_id}: it needs "
                         "max_episode_steps")
    return steps


# ---------------------------------------------------------------------- train
def add_train_parser(subparsers: Any) -> argparse.ArgumentParser:
    p = subparsers.add_parser(
        "train", help="train an RL agent (SB3 LAW-DDPG, or RLlib DDPG/SAC/PPO) on an env",
        description="Train an agent; resumes from the newest checkpoint in --out.")
    p.add_argument("--lib", default="sb3", help="sb3 or rllib (default sb3)")
    p.add_argument("--algo", default="ddpg", help="ddpg, sac or ppo (default ddpg)")
    p.add_argument("--env", default=DEFAULT_ENV, help=f"Gymnasium id (default {DEFAULT_ENV})")
    p.add_argument("--env-kwargs", default="{}", help="JSON object of env keyword arguments")
    p.add_argument("--n-envs", type=int, default=2,
                   help="parallel searchers: SB3 subprocess envs / RLlib env runners")
    p.add_argument("--episodes", type=int, default=10,
                   help="training episodes in total (summed over the searchers; whole rounds "
                        "of one episode per searcher)")
    p.add_argument("--out", default=None, help="output directory (checkpoints, logs)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--settings", default="default",
                   help="DDPG settings: default (the package's, agents/settings.py) or law "
                        "(LAW's own)")
    p.add_argument("--agent-kwargs", default="{}",
                   help="JSON object: DDPG settings fields and other LAWDDPG/SB3 keyword "
                        "arguments or RLlib .training() keys, on top of --settings")
    p.add_argument("--checkpoint-every", type=int, default=None, metavar="ROUNDS",
                   help="checkpoint after every ROUNDS rounds (one episode per searcher); "
                        "default: about 10 checkpoints per run")
    p.add_argument("--restart", action="store_true",
                   help="if --out holds another run (other env, settings, searchers or seed), "
                        "delete it and start over instead of refusing")
    p.add_argument("--threads", type=int, default=1,
                   help="torch threads of this process (its agent networks, and the env when "
                        "--n-envs 1 runs it in process); each searcher process uses one")
    p.add_argument("--gpus-per-runner", type=float, default=0.0,
                   help="RLlib: GPUs per env runner (default 0)")
    p.add_argument("--num-cpus", type=int, default=None,
                   help="RLlib: CPUs of the local Ray instance (not with --address)")
    p.add_argument("--address", default=None, metavar="RAY_ADDRESS",
                   help="RLlib: connect to this Ray cluster (HOST:PORT of `ray start --head`) "
                        "instead of starting a local instance; RAY_ADDRESS works too")
    p.set_defaults(func=run_train)
    return p


def _agent_settings(args: argparse.Namespace, algo: str) -> tuple[Any, dict[str, Any]]:
    """(DDPG settings or ``None``, the other agent keywords) of ``--settings`` and
    ``--agent-kwargs``, validated."""
    from reweight_gym.agents.settings import NAMED_SETTINGS

    name = str(args.settings).lower()
    if name not in NAMED_SETTINGS:
        raise UsageError(f"invalid --settings {args.settings!r}: allowed: "
                         f"{', '.join(NAMED_SETTINGS)}")
    user = _json_arg(args.agent_kwargs, "--agent-kwargs")
    if algo != "ddpg":
        if name != "default":
            raise UsageError(f"--settings {name} is LAW's DDPG: not for --algo {algo}")
        return None, user
    return NAMED_SETTINGS[name].split(user)


def _check_train_args(args: argparse.Namespace, lib: str, algo: str) -> None:
    if lib not in LIBS:
        raise UsageError(f"unknown library {args.lib!r}: allowed: {', '.join(LIBS)}")
    if algo not in ALGOS:
        raise UsageError(f"unknown algorithm {args.algo!r}: allowed: {', '.join(ALGOS)}")
    if not args.out:
        raise UsageError("--out DIR is required (checkpoints and logs go there)")
    if args.gpus_per_runner < 0 or not math.isfinite(args.gpus_per_runner):
        raise UsageError(f"--gpus-per-runner must be >= 0, got {args.gpus_per_runner!r}")
    if lib == "sb3" and (args.address or args.num_cpus is not None):
        raise UsageError("--address and --num-cpus are for --lib rllib (Ray)")
    if args.address and args.num_cpus is not None:
        raise UsageError("--num-cpus is for a local Ray instance: a cluster at --address has "
                         "the CPUs its nodes declared at `ray start`")
    if args.checkpoint_every is not None:
        _positive_int(args.checkpoint_every, "--checkpoint-every")


def _episodes(episodes: int, n_envs: int, settings: Any) -> int:
    """The episodes that will run: whole rounds of one episode per searcher (said when that
    rounds ``--episodes`` up); DDPG must get past its random exploration."""
    rounded = -(-episodes // n_envs) * n_envs
    if rounded != episodes:
        print(f"note: --episodes {episodes} is not a multiple of --n-envs {n_envs}: training "
              f"runs whole rounds, {rounded} episodes", flush=True)
    if settings is not None and rounded <= settings.learning_starts_episodes:
        raise UsageError(
            f"--episodes {episodes} trains nothing: LAW-DDPG acts randomly for its first "
            f"learning_starts_episodes={settings.learning_starts_episodes} episodes and makes "
            f"its first update after them; give --episodes > "
            f"{settings.learning_starts_episodes}, or lower it, e.g. --agent-kwargs "
            "'{\"learning_starts_episodes\": 4}'")
    return rounded


def run_train(args: argparse.Namespace) -> int:
    try:
        lib, algo = str(args.lib).lower(), str(args.algo).lower()
        _check_train_args(args, lib, algo)
        env_kwargs = _json_arg(args.env_kwargs, "--env-kwargs")
        settings, agent_kwargs = _agent_settings(args, algo)
        n_envs = _positive_int(args.n_envs, "--n-envs")
        steps = check_env_args(args.env, env_kwargs)
        episodes = _episodes(_positive_int(args.episodes, "--episodes"), n_envs, settings)
        _set_threads(args.threads)
        rounds = args.checkpoint_every or max(1, episodes // n_envs // 10)
        if lib == "sb3":
            return _train_sb3(args, algo, env_kwargs, settings, agent_kwargs, n_envs, episodes,
                              steps, rounds)
        return _train_rllib(args, algo, env_kwargs, settings, agent_kwargs, n_envs, episodes,
                            rounds)
    except (UsageError, FileNotFoundError, ValueError) as e:  # each names what is wrong
        return _fail(str(e))
    except TypeError as e:  # bad agent kwargs / spaces: still one line
        return _fail(f"{type(e).__name__}: {e}")
    except MemoryError:  # e.g. a replay buffer larger than this machine
        return _fail("not enough memory for these settings: check --agent-kwargs (buffer_size, "
                     "net_arch) and --env-kwargs sizes")


def _train_sb3(args: argparse.Namespace, algo: str, env_kwargs: dict[str, Any], settings: Any,
               agent_kwargs: dict[str, Any], n_envs: int, episodes: int, steps: int,
               rounds: int) -> int:
    from reweight_gym.agents.sb3 import train_sb3

    try:
        model = train_sb3(args.env, env_kwargs, args.out, total_steps=episodes * steps,
                          algo=algo, n_envs=n_envs, seed=args.seed,
                          checkpoint_every=rounds * steps * n_envs, agent_kwargs=agent_kwargs,
                          settings=settings, restart=args.restart,
                          log=lambda line: print(line, flush=True))
    except TypeError as e:  # an agent keyword the algorithm does not take
        raise UsageError(f"invalid --agent-kwargs for sb3 {algo}: {e}") from None
    done = int(model.num_timesteps)
    print(f"trained sb3 {algo}: {done // steps} episodes ({done} env steps), "
          f"{int(model._n_updates)} gradient updates; final model: "
          f"{os.path.join(args.out, 'final.zip')}")
    return 0


def _train_rllib(args: argparse.Namespace, algo: str, env_kwargs: dict[str, Any], settings: Any,
                 agent_kwargs: dict[str, Any], n_envs: int, episodes: int, rounds: int) -> int:
    from reweight_gym.agents.rllib.agent import train_rllib

    summary = train_rllib(algo, args.env, env_kwargs, args.out, episodes=episodes,
                          num_env_runners=n_envs, num_gpus_per_env_runner=args.gpus_per_runner,
                          seed=args.seed, checkpoint_every=rounds, num_cpus=args.num_cpus,
                          address=args.address, training=agent_kwargs, settings=settings,
                          restart=args.restart, log=lambda s: print(json.dumps(s), flush=True))
    if summary.get("resumed_from"):
        print(f"resumed from {summary['resumed_from']}")
    print(f"trained rllib {algo}: {summary.get('episodes')} episodes, "
          f"{summary.get('gradient_updates', 0)} gradient updates; checkpoint: "
          f"{summary.get('checkpoint')}")
    return 0


# ---------------------------------------------------------------------- evaluate
def add_evaluate_parser(subparsers: Any) -> argparse.ArgumentParser:
    from reweight_gym.registry import policy_names

    p = subparsers.add_parser(
        "evaluate", help="evaluate a trained agent or a fixed policy for N episodes",
        description="Evaluate an SB3 .zip, an RLlib checkpoint, a training directory, or a "
                    f"fixed policy ({', '.join(policy_names())}); a trained agent plays the "
                    "env it was trained on unless --env / --env-kwargs say otherwise.")
    p.add_argument("agent", nargs="?", default=None, metavar="CHECKPOINT_OR_POLICY")
    p.add_argument("--env", default=None,
                   help=f"Gymnasium id (default: the agent's, else {DEFAULT_ENV})")
    p.add_argument("--env-kwargs", default=None,
                   help="JSON object of env keyword arguments (default: the agent's)")
    p.add_argument("--episodes", type=int, default=5)
    p.add_argument("--seed", type=int, default=0,
                   help="episode i is reset with seed + i (paired comparisons)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--json", action="store_true", help="print the full result as JSON")
    p.add_argument("--record", default=None, metavar="DIR",
                   help="write each episode's trajectory file to DIR (for `reweight-gym replay`)")
    p.set_defaults(func=run_evaluate)
    return p


def _fmt(x: float) -> str:
    return "nan" if x is None or not math.isfinite(x) else f"{x:.4f}"


def _trained_env(agent: str) -> tuple[str | None, dict[str, Any] | None]:
    """The env id and keywords a trained agent was trained on (its run's ``agent.json``)."""
    from reweight_gym.agents.runs import read_agent_meta

    if not os.path.exists(agent):
        return None, None
    here = agent if os.path.isdir(agent) else os.path.dirname(os.path.abspath(agent))
    for d in (here, os.path.dirname(here)):  # an RLlib checkpoint_N sits in the run directory
        meta = read_agent_meta(d)
        if meta is not None:
            return meta.get("env_id"), meta.get("env_kwargs")
    return None, None


def run_evaluate(args: argparse.Namespace) -> int:
    try:
        from reweight_gym.registry import policy_names

        if not args.agent:
            raise UsageError("give a checkpoint (SB3 .zip, RLlib checkpoint or training "
                             f"directory) or a fixed policy: {', '.join(policy_names())}")
        trained_id, trained_kwargs = _trained_env(args.agent)
        env_id = args.env or trained_id or DEFAULT_ENV
        env_kwargs = (_json_arg(args.env_kwargs, "--env-kwargs") if args.env_kwargs is not None
                      else dict(trained_kwargs or {}) if args.env is None or
                      args.env == trained_id else {})
        episodes = _positive_int(args.episodes, "--episodes")
        check_env_args(env_id, env_kwargs)
        _set_threads(args.threads)
        source = ("the agent's training env" if trained_id and args.env_kwargs is None and
                  env_id == trained_id else "--env / --env-kwargs")
        print(f"evaluating {args.agent} on {env_id} {json.dumps(env_kwargs, sort_keys=True)} "
              f"({source}), {episodes} episodes from seed {args.seed}",
              file=sys.stderr if args.json else sys.stdout, flush=True)
        import gymnasium as gym

        from reweight_gym.agents.evaluate import evaluate, load_agent

        env = gym.make(env_id, **env_kwargs)
        try:
            agent = load_agent(args.agent, env=env, seed=args.seed)
        finally:
            env.close()

        def progress(i: int, ret: float, acc_t: float, acc_r: float) -> None:
            if not args.json:
                print(f"episode {i}: return {ret:.4f}  test_acc_target {_fmt(acc_t)}  "
                      f"test_acc_reference {_fmt(acc_r)}", flush=True)

        res = evaluate(agent, _recorded(env_id, args.record), env_kwargs, episodes=episodes,
                       seed=args.seed, on_episode=progress)
        res.env_id = env_id
        if args.json:
            print(json.dumps(res.to_dict()))
            return 0
        s = res.summary()
        print(f"mean return {s['mean_return']:.4f} (std {s['std_return']:.4f})  "
              f"mean test_acc_target {_fmt(s['mean_test_acc_target'])}  "
              f"mean test_acc_reference {_fmt(s['mean_test_acc_reference'])}  "
              f"mean weight noisy {_fmt(s['mean_noisy_weight'])} "
              f"clean {_fmt(s['mean_clean_weight'])}")
        if args.record:
            print(f"trajectories: {os.path.join(args.record, 'episode-NNNN.json')} "
                  f"(NNNN = 0000..{len(res.returns) - 1:04d})")
        return 0
    except (UsageError, FileNotFoundError, ValueError) as e:
        return _fail(str(e))


def _recorded(env_id: str, record: str | None) -> Any:
    """``env_id``, or with ``record`` its ``EnvSpec`` with :class:`RecordEpisode` added to the
    wrappers ``gymnasium.make`` applies, so every episode :func:`evaluate` plays is recorded."""
    if not record:
        return env_id
    import dataclasses

    import gymnasium as gym

    spec = gym.spec(env_id)
    wrapper = gym.envs.registration.WrapperSpec(
        "RecordEpisode", "reweight_gym.envs.record:RecordEpisode",
        {"directory": record, "name_prefix": "episode"})
    return dataclasses.replace(spec, additional_wrappers=(*spec.additional_wrappers, wrapper))
