"""Replay a recorded episode and validate benchmark results: re-run, compare, report.

- :func:`replay_env` re-runs an environment trajectory (:class:`reweight_gym.envs.RecordEpisode`):
  a fresh environment made from the recorded env id and config, reset the way the recording was
  (the last explicit seed, then as many unseeded resets as followed it), fed the recorded actions.
- :func:`replay_run` re-runs a run trajectory (``reweight-gym benchmark --record``) through
  :func:`reweight_gym.runner.run`: the recorded config, seed and DNR reference, the recorded
  stage actions of a policy or agent (a baseline method runs again).
- :func:`validate_results` does the same for a seeded sample of the rows of a results directory.

Each gives a :class:`ReplayReport`: every value that differs, per stage, and the mismatches,
the differences beyond the tolerance. On the platform of the recording (same torch and numpy
versions, processor, device) with the recorded torch thread count, which a replay sets by
default, the tolerance is 0: every value must match bit for bit. Elsewhere the default
tolerances are :data:`DEFAULT_TOLERANCE` for rewards and :data:`DEFAULT_VALUE_TOLERANCE` for the
other values (accuracies, losses, weights, observations), measured by
``benchmarks/replay_tolerance.py`` (``benchmarks/results/replay_tolerance.json``) with a margin.
Integers, booleans and strings (seeds, epochs, flags) must always match exactly.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from reweight_gym.config import EnvConfig
from reweight_gym.envs.record import read_trajectory
from reweight_gym.jsonable import jsonable
from reweight_gym.provenance import UNKNOWN, provenance
from reweight_gym.validation import check_number

# Twice the largest difference measured between 1 and 2 torch threads (tiny digits, 8 episodes;
# benchmarks/results/replay_tolerance.json), rounded up. A reward differs by whole validation
# samples once the two runs' float rounding tips a prediction: one sample of 200 is worth
# r_w / 200 = 0.5-1.4 reward units (eq. 9). Longer runs drift further apart: pass --tolerance.
# Only thread counts were measured: no other torch version and no GPU were at hand.
DEFAULT_TOLERANCE = 5.5
DEFAULT_VALUE_TOLERANCE = 0.05

#: Provenance fields that must agree for a replay to be expected bit for bit.
PLATFORM_FIELDS = ("torch", "numpy", "cpu", "device")


@dataclass(frozen=True)
class Difference:
    """One value that differs between the recording and the replay."""

    stage: str  # "stage 3", "epoch 12", "reset" or "end"
    key: str  # "reward", "info.acc_target", "stage_val_acc[3]", ...
    recorded: Any
    replayed: Any
    mismatch: bool  # beyond the tolerance (or not a number that may differ at all)

    @property
    def delta(self) -> float | None:
        """|recorded - replayed| for two numbers, else ``None``."""
        if _is_number(self.recorded) and _is_number(self.replayed):
            return abs(float(self.recorded) - float(self.replayed))
        return None


@dataclass
class ReplayReport:
    """The outcome of one replay: what differs and whether it is beyond the tolerance."""

    source: str
    kind: str
    tolerance: float
    value_tolerance: float
    exact: bool  # tolerance 0: the replay ran on the recording's platform and thread count
    threads: int
    rewards: list[tuple[str, Any, Any]] = field(default_factory=list)  # (stage, rec, replayed)
    differences: list[Difference] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: (field, recorded, now) of the platform fields that differ from the recording's
    #: (:data:`PLATFORM_FIELDS` and the thread count); empty on the recording's platform
    platform: list[tuple[str, Any, Any]] = field(default_factory=list)

    @property
    def mismatches(self) -> list[Difference]:
        return [d for d in self.differences if d.mismatch]

    @property
    def ok(self) -> bool:
        return not self.mismatches

    @property
    def verdict(self) -> str:
        """``MATCH``; ``MISMATCH``: beyond the tolerance on the recording's own platform and
        thread count, where every value must be reproduced bit for bit (a reproducibility bug);
        ``DIFFERS``: beyond the tolerance on another platform or thread count, where float
        rounding differs and training amplifies it (expected, not by itself a bug)."""
        if self.ok:
            return "MATCH"
        return "DIFFERS" if self.platform else "MISMATCH"

    @property
    def exit_status(self) -> int:
        """What ``replay`` / ``validate`` exit with: 0 ``MATCH``, 1 ``MISMATCH``, 3 ``DIFFERS``."""
        return {"MATCH": 0, "MISMATCH": 1, "DIFFERS": 3}[self.verdict]

    def lines(self) -> list[str]:
        """The printed report: tolerance, per-stage rewards, every difference, the verdict."""
        mode = ("0 (bit for bit)" if self.exact else
                f"rewards {self.tolerance:g}, other values {self.value_tolerance:g}")
        out = [f"replay of {self.source} ({self.kind}) with {self.threads} torch thread(s); "
               f"tolerance {mode}"]
        if self.platform:
            diff = "; ".join(f"{k} {_show(a)} then, {_show(b)} now" for k, a, b in self.platform)
            out.append(f"  platform: another than the recording's ({diff}). Bit-for-bit equality "
                       "holds only on the same CPU type, library versions and thread count; here "
                       "float rounding differs and training amplifies it, so values are compared "
                       "within the tolerance and a difference beyond it is expected, not by "
                       "itself a bug (docs: reproducibility)")
        else:
            out.append("  platform: the recording's (CPU type, library versions, thread count): "
                       "every value must be reproduced; a mismatch is a reproducibility bug")
        out += [f"  note: {n}" for n in self.notes]
        out.append(f"  {'stage':<10} {'recorded reward':>22} {'replayed reward':>22} "
                   f"{'|diff|':>10}")
        for stage, a, b in self.rewards:
            delta = Difference(stage, "reward", a, b, False).delta
            out.append(f"  {stage:<10} {_show(a):>22} {_show(b):>22} "
                       f"{'-' if delta is None else f'{delta:.3g}':>10}")
        if self.differences:
            out.append(f"  {len(self.differences)} value(s) differ, {len(self.mismatches)} beyond "
                       "the tolerance (*):")
            for d in self.differences:
                delta = d.delta
                out.append(f"  {'*' if d.mismatch else ' '} {d.stage:<10} {d.key:<32} "
                           f"{_show(d.recorded):>22} {_show(d.replayed):>22}"
                           + (f"  |diff| {delta:.3g}" if delta is not None else ""))
        else:
            out.append("  every recorded value is reproduced bit for bit")
        out.append(f"  result: {self.verdict}"
                   + (" (beyond the tolerance on another platform: expected)"
                      if self.verdict == "DIFFERS" else ""))
        return out


def _show(v: Any) -> str:
    if isinstance(v, float):
        return repr(v)
    text = str(v)
    return text if len(text) <= 22 else text[:19] + "..."


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def config_from_dict(values: dict[str, Any]) -> EnvConfig:
    """The :class:`EnvConfig` of a recorded ``to_dict()`` (validated; every field as recorded,
    fields unknown to this version raise ``ValueError``)."""
    kw = dict(values)
    return EnvConfig.resolve(kw.pop("dataset", "digits"), kw.pop("preset", "tiny"), **kw)


def compare(stage: str, key: str, recorded: Any, replayed: Any, tolerance: float
            ) -> list[Difference]:
    """Every difference between two JSON values; floats may differ by ``tolerance``, every other
    value (ints, bools, strings, ``None``, lengths) must be equal."""
    if isinstance(recorded, list) and isinstance(replayed, list):
        if len(recorded) != len(replayed):
            return [Difference(stage, f"len({key})", len(recorded), len(replayed), True)]
        out = []
        for i, (a, b) in enumerate(zip(recorded, replayed)):
            out += compare(stage, f"{key}[{i}]", a, b, tolerance)
        return out
    if isinstance(recorded, dict) and isinstance(replayed, dict):
        out = []
        for k in sorted(set(recorded) | set(replayed)):
            if k not in replayed or k not in recorded:
                out.append(Difference(stage, f"{key}.{k}", recorded.get(k, "<absent>"),
                                      replayed.get(k, "<absent>"), True))
            else:
                out += compare(stage, f"{key}.{k}", recorded[k], replayed[k], tolerance)
        return out
    if recorded == replayed and type(recorded) is type(replayed):
        return []
    floats = isinstance(recorded, float) or isinstance(replayed, float)
    if _is_number(recorded) and _is_number(replayed) and floats:
        return [Difference(stage, key, recorded, replayed,
                           abs(recorded - replayed) > tolerance)]
    return [Difference(stage, key, recorded, replayed, True)]


def platform_differences(recorded: dict[str, Any] | None,
                         threads: int) -> list[tuple[str, Any, Any]]:
    """(field, recorded, now) of every platform field (:data:`PLATFORM_FIELDS`, the thread count)
    in which this process, run with ``threads``, differs from the recording's provenance; an
    unknown platform (no provenance) differs in all of them."""
    recorded = recorded if isinstance(recorded, dict) else {}
    now = provenance(recorded.get("device"))
    now["torch_threads"] = threads
    return [(k, recorded.get(k, UNKNOWN), now.get(k, UNKNOWN))
            for k in (*PLATFORM_FIELDS, "torch_threads") if recorded.get(k) != now.get(k)]


def same_platform(recorded: dict[str, Any] | None, threads: int) -> bool:
    """Whether this process runs on the recording's platform with its thread count."""
    return isinstance(recorded, dict) and not platform_differences(recorded, threads)


@contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _settings(traj: dict[str, Any], tolerance: float | None, value_tolerance: float | None,
              threads: int | None) -> tuple[float, float, bool, int]:
    """(reward tolerance, value tolerance, exact, threads) of a replay."""
    recorded_prov = traj.get("provenance")
    prov = recorded_prov if isinstance(recorded_prov, dict) else {}
    recorded_threads = prov.get("torch_threads")
    if threads is None:
        threads = recorded_threads if isinstance(recorded_threads, int) else 1
    check_number("threads", threads, 1, integer=True)
    exact = same_platform(prov, threads)
    if tolerance is None:
        tolerance = 0.0 if exact else DEFAULT_TOLERANCE
    if value_tolerance is None:
        value_tolerance = 0.0 if exact else DEFAULT_VALUE_TOLERANCE
    check_number("tolerance", tolerance, 0.0)
    check_number("value_tolerance", value_tolerance, 0.0)
    return float(tolerance), float(value_tolerance), tolerance == value_tolerance == 0, threads


def _notes(traj: dict[str, Any], cfg: EnvConfig) -> list[str]:
    """What the reader of a replay should know: config fields the recording predates, and a
    recording without versions (its platform is unknown: the default tolerances apply)."""
    notes = []
    new = sorted(set(cfg.to_dict()) - set(traj["config"]))
    if new:
        notes.append(f"config fields not in the recording, at today's defaults: {', '.join(new)}")
    prov = traj.get("provenance")
    if not isinstance(prov, dict) or prov.get("torch", UNKNOWN) == UNKNOWN:
        notes.append("recorded without versions: its platform is unknown")
    return notes


# ---------------------------------------------------------------------- environment trajectories
def replay_env(traj: dict[str, Any], source: str = "trajectory", *,
               tolerance: float | None = None, value_tolerance: float | None = None,
               threads: int | None = None) -> ReplayReport:
    """Re-run an environment trajectory and compare it step by step (module docstring)."""
    import gymnasium as gym

    import reweight_gym  # noqa: F401  (registration)
    from reweight_gym.envs.reweight_env import ReweightEnv

    tol, vtol, exact, threads = _settings(traj, tolerance, value_tolerance, threads)
    report = ReplayReport(source, "env", tol, vtol, exact, threads,
                          platform=platform_differences(traj.get("provenance"), threads))
    cfg = config_from_dict(traj["config"])
    report.notes += _notes(traj, cfg)
    kwargs = {k: v for k, v in cfg.to_dict().items()}
    kwargs["lr_milestones"] = tuple(kwargs["lr_milestones"])
    with _torch_threads(threads):
        env_id = traj.get("env_id")
        env = gym.make(env_id, **kwargs) if env_id else ReweightEnv(**kwargs)
        try:
            _replay_steps(env, traj, report, tol, vtol)
        finally:
            env.close()
    return report


def _replay_steps(env: Any, traj: dict[str, Any], report: ReplayReport, tol: float,
                  vtol: float) -> None:
    reset = traj.get("reset") or {}
    seed, extra = reset.get("seed"), int(reset.get("resets_since_seed", 0))
    options = reset.get("options")
    if seed is not None:
        obs, info = env.reset(seed=seed, options=options)
    for _ in range(extra if seed is not None else max(extra, 1)):
        obs, info = env.reset(options=options)
    diffs = report.differences
    diffs += compare("reset", "episode_seed", traj.get("episode_seed"),
                     info.get("episode_seed"), 0.0)
    diffs += compare("reset", "observation", traj.get("initial_observation"), jsonable(obs), vtol)
    diffs += compare("reset", "info", traj.get("reset_info"), jsonable(info), vtol)
    steps = traj.get("steps") or []
    for i, step in enumerate(steps):
        rec_info = step.get("info") or {}
        where = f"stage {rec_info['stage']}" if "stage" in rec_info else f"step {i}"
        obs, reward, terminated, truncated, info = env.step(
            np.asarray(step["action"], dtype=np.float64))
        reward = jsonable(reward)
        report.rewards.append((where, step.get("reward"), reward))
        diffs += compare(where, "reward", step.get("reward"), reward, tol)
        diffs += compare(where, "terminated", step.get("terminated"), bool(terminated), 0.0)
        diffs += compare(where, "truncated", step.get("truncated"), bool(truncated), 0.0)
        diffs += compare(where, "observation", step.get("observation"), jsonable(obs), vtol)
        diffs += compare(where, "info", rec_info, jsonable(info), vtol)
        if (terminated or truncated) and i < len(steps) - 1:
            diffs.append(Difference(where, "episode length", len(steps), i + 1, True))
            break
    if not traj.get("complete", True):
        report.notes.append("the recorded episode was not finished; its recorded steps replayed")


# ---------------------------------------------------------------------- benchmark trajectories
def replay_run(traj: dict[str, Any], source: str = "trajectory", *,
                     tolerance: float | None = None, value_tolerance: float | None = None,
                     threads: int | None = None) -> ReplayReport:
    """Re-run a run trajectory through :func:`reweight_gym.runner.run` and compare its
    values."""
    from reweight_gym.runner import REWARD_KEYS, RunSpec, run

    tol, vtol, exact, threads = _settings(traj, tolerance, value_tolerance, threads)
    report = ReplayReport(source, "run", tol, vtol, exact, threads,
                          platform=platform_differences(traj.get("provenance"), threads))
    cfg = config_from_dict(traj["config"])
    report.notes += _notes(traj, cfg)
    spec = RunSpec(**traj["spec"])
    recorded: dict[str, Any] = traj.get("result") or {}
    missing = [k for k in ("stage_rewards",) if k not in recorded]
    if missing:
        raise ValueError(f"invalid trajectory {source!r}: its result lacks {missing}")
    with _torch_threads(threads):
        result = run(spec, traj.get("reference"), cfg=cfg,
                     actions=recorded.get("stage_actions"))
    replayed = jsonable(result.to_row())
    warm = cfg.warmup_stages
    for i, (a, b) in enumerate(_pad(recorded["stage_rewards"], replayed["stage_rewards"])):
        report.rewards.append((f"stage {i + warm}", a, b))
    for key, value in recorded.items():
        t = tol if key in REWARD_KEYS else vtol
        for d in compare("", key, value, replayed.get(key), t):
            report.differences.append(Difference(_where(d.key, warm), d.key, d.recorded,
                                                 d.replayed, d.mismatch))
    return report


def _pad(a: list[Any], b: list[Any]) -> Iterator[tuple[Any, Any]]:
    for i in range(max(len(a), len(b))):
        yield (a[i] if i < len(a) else "<absent>"), (b[i] if i < len(b) else "<absent>")


def _where(key: str, warmup: int) -> str:
    """The stage or epoch of a benchmark value: ``stage_val_acc[3]`` is stage 3,
    ``stage_rewards[0]`` the first weighted stage, ``test_acc_curve[9]`` epoch 10."""
    if "[" not in key:
        return "end"
    name, index = key.split("[", 1)
    i = int(index.split("]", 1)[0])
    if name.endswith("_curve"):
        return f"epoch {i + 1}"
    if name.startswith("stage_"):
        return f"stage {i + warmup if name in ('stage_rewards', 'stage_actions') else i}"
    return "end"


def replay(path: str | Path, *, tolerance: float | None = None,
           value_tolerance: float | None = None, threads: int | None = None) -> ReplayReport:
    """Replay the trajectory file ``path`` (either kind)."""
    traj = read_trajectory(path)
    run = replay_env if traj["kind"] == "env" else replay_run
    return run(traj, str(path), tolerance=tolerance, value_tolerance=value_tolerance,
               threads=threads)


# ---------------------------------------------------------------------- results directories
def validate_results(directory: str | Path, sample: int = 3, seed: int = 0, *,
                     tolerance: float | None = None, value_tolerance: float | None = None,
                     threads: int | None = None) -> list[ReplayReport]:
    """Re-run a seeded sample of ``sample`` rows of ``DIR/results.jsonl`` (every row when
    ``sample`` is at least their number) and compare each with its stored values."""
    from reweight_gym.benchmark.store import load_rows

    check_number("sample", sample, 1, integer=True)
    rows = load_rows(directory)
    if not rows:
        raise ValueError(f"invalid results directory {str(directory)!r}: no rows")
    by_key = {r.key: r for r in rows}
    chosen = (rows if sample >= len(rows) else
              [rows[i] for i in sorted(random.Random(seed).sample(range(len(rows)), sample))])
    reports = []
    for row in chosen:
        traj = row.trajectory(by_key.get(row.spec.reference_key))
        reports.append(replay_run(traj, row.key, tolerance=tolerance,
                                        value_tolerance=value_tolerance, threads=threads))
    return reports

