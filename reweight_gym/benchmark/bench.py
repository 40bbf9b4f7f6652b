"""The benchmark: every method x setting x seed, locally or as Ray tasks, resumable.

Runs are ordered in two waves: first the ``uniform`` run of every setting and seed (it is the
duplicate-network reference of the others), then every other method. Each finished run is
appended to ``OUT/results.jsonl`` at once; rerunning the same command skips finished runs, so an
interrupted benchmark loses only the runs in progress.

With ``record`` (``--record DIR``) every run's trajectory file (:func:`runner.trajectory`, the
format of :mod:`reweight_gym.envs.record`) is written to ``DIR/<run key>.json`` as the run finishes
(and for finished runs that lack one), for ``reweight-gym replay``.

Locally each run executes in a fresh child process (``isolate=True``), so its peak resident
memory is its own; with ``--ray`` each run is a Ray task with its CPU/GPU request, one task per
worker process (``max_calls=1``), on a local instance or an existing cluster. Worker processes
(child or Ray task) start by tuning their CPU allocator (``reweight_gym/allocator.py``), as the
``reweight-gym`` command does for a run in its own process.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import re
import signal
import socket
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from reweight_gym.allocator import tune_cpu_allocator
from reweight_gym.benchmark.methods import MAKE_POLICY, MAKE_WEIGHER, load_attr, method_kind
from reweight_gym.benchmark.runner import REFERENCE_METHOD, RunSpec, execute, trajectory
from reweight_gym.benchmark.store import ResultsStore
from reweight_gym.benchmark.suites import select_settings
from reweight_gym.config import EnvConfig
from reweight_gym.envs.record import write_trajectory


def build_specs(dataset: str, suite: str, methods: Iterable[str], seeds: int | Iterable[int],
                preset: str, settings: list[str] | None = None, data_root: str | None = None,
                env_overrides: dict[str, Any] | None = None,
                method_kwargs: dict[str, dict[str, Any]] | None = None) -> list[RunSpec]:
    """All runs of a benchmark, validated before anything trains (``ValueError`` /
    ``FileNotFoundError`` naming the bad field or method): the methods, the config of every
    setting, environment keywords that the command's own options or the suite's settings set,
    and the method keywords (each baseline's weigher and each policy is built once)."""
    methods = list(dict.fromkeys(methods))
    if not methods:
        raise ValueError("invalid --methods '': give at least one method")
    kinds = {m: method_kind(m) for m in methods}
    if REFERENCE_METHOD not in methods:
        methods.insert(0, REFERENCE_METHOD)  # the reference of every other method
        kinds[REFERENCE_METHOD] = method_kind(REFERENCE_METHOD)
    seed_list = list(range(seeds)) if isinstance(seeds, int) else list(seeds)
    if not seed_list or any(s < 0 for s in seed_list):
        raise ValueError(f"invalid --seeds {seeds!r}: must be a positive number of seeds")
    overrides = dict(env_overrides or {})
    for key, option in (("dataset", "--dataset"), ("preset", "--preset"), ("seed", "--seeds"),
                        ("data_root", "--data-root")):
        if key in overrides:
            raise ValueError(f"invalid --env-kwargs key {key!r}: set it with {option}")
    chosen = select_settings(suite, settings)
    for key in sorted(set(overrides).intersection(*chosen)):
        raise ValueError(f"invalid --env-kwargs key {key!r}: the {suite} suite sets it in each "
                         "setting; choose settings with --settings")
    kwargs = _method_kwargs(method_kwargs, methods, kinds)
    specs = []
    for setting in chosen:
        for seed in seed_list:
            for m in methods:
                spec = RunSpec(dataset, suite, setting, m, seed, preset, data_root, overrides,
                               dict(kwargs.get(m, {})))
                specs.append(spec)
        # validate the config and the method keywords once per setting (early, clear errors)
        cfg = EnvConfig.resolve(dataset, preset, **{
            **overrides, **setting, **({"data_root": data_root} if data_root else {})})
        for m, kw in kwargs.items():
            _check_method_kwargs(m, kinds[m], cfg, kw)
    return specs


def _method_kwargs(method_kwargs: Any, methods: list[str], kinds: dict[str, str]
                   ) -> dict[str, dict[str, Any]]:
    """``--method-kwargs``: a JSON object of one JSON object of keywords per method."""
    if method_kwargs is None:
        return {}
    if not isinstance(method_kwargs, dict):
        raise ValueError(f"invalid --method-kwargs {method_kwargs!r}: must be a JSON object "
                         '{"method": {keywords}}')
    for m, kw in method_kwargs.items():
        if m not in methods:
            raise ValueError(f"invalid --method-kwargs key {m!r}: not one of the methods "
                             f"({', '.join(methods)})")
        if not isinstance(kw, dict):
            raise ValueError(f"invalid --method-kwargs value for {m!r}: {kw!r} must be a JSON "
                             "object of keywords")
        if kw and kinds[m] == "agent":
            raise ValueError(f"invalid --method-kwargs value for {m!r}: a trained agent takes "
                             "no keywords")
    return method_kwargs


def _check_method_kwargs(method: str, kind: str, cfg: EnvConfig, kw: dict[str, Any]) -> None:
    """Build the method once with ``kw`` (a baseline's weigher, or a policy for a one-feature
    action space): its own validation names a bad keyword."""
    if kind == "baseline":
        load_attr(MAKE_WEIGHER)(method, cfg, **kw)
    elif kind == "policy":
        import gymnasium as gym
        import numpy as np

        try:
            load_attr(MAKE_POLICY)(method, observation_space=gym.spaces.Box(0, 1, (1,), np.float32),
                                   action_space=gym.spaces.Box(-1, 1, (2,), np.float32),
                                   feature_names=["loss"], seed=0, **kw)
        except TypeError as e:
            raise ValueError(f"invalid {method} kwarg(s) {sorted(kw)}: {e}") from None


def trajectory_path(directory: str | os.PathLike[str], key: str) -> Path:
    """Where ``--record DIR`` writes the trajectory of the run ``key``."""
    return Path(directory) / (re.sub(r"[^A-Za-z0-9_.=,-]+", "_", key) + ".json")


def _watch_parent() -> None:
    """In a child: exit when the parent dies (a killed benchmark leaves no orphan runs)."""
    parent = os.getppid()

    def watch() -> None:
        while True:
            if os.getppid() != parent:
                os._exit(1)
            threading.Event().wait(1.0)

    threading.Thread(target=watch, daemon=True).start()


def _worker(spec: RunSpec, reference: dict[str, Any] | None, progress: bool,
            tb: str | None, threads: int | None) -> dict[str, Any]:
    """A run in a worker process of its own (isolated child or Ray task): the process starts
    by tuning its allocator and setting its torch threads."""
    tune_cpu_allocator()
    if threads:
        import torch

        torch.set_num_threads(threads)
    row = execute(spec, reference, progress=progress, tensorboard_dir=tb)
    row["isolated"] = True
    return row


def _child(spec: RunSpec, reference: dict[str, Any] | None, progress: bool,
           tb: str | None, threads: int | None) -> dict[str, Any]:
    _watch_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
    return _worker(spec, reference, progress, tb, threads)


def run_benchmark(specs: list[RunSpec], out: str | os.PathLike[str], *, isolate: bool = True,
                  ray_address: str | None = None, use_ray: bool = False, progress: bool = True,
                  tensorboard: bool = False, cpus_per_run: float = 1.0, gpus_per_run: float = 0.0,
                  threads: int | None = None,
                  on_row: Callable[[dict[str, Any]], None] | None = None,
                  record: str | os.PathLike[str] | None = None) -> list[dict[str, Any]]:
    """Run every spec not yet in ``OUT/results.jsonl``; return all rows of the specs. With
    ``record``, write each run's trajectory file there (module docstring)."""
    out = Path(out)
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("ok")
        probe.unlink()
    except OSError as e:
        raise OSError(f"invalid --out {str(out)!r}: not a writable directory ({e.strerror})") \
            from None
    store = ResultsStore(out / "results.jsonl")
    with open(out / "benchmark.json", "w") as fh:
        json.dump({"specs": [s.to_dict() for s in specs]}, fh, indent=1)
    tb = str(out / "tensorboard") if tensorboard else None
    waves = [[s for s in specs if s.method == REFERENCE_METHOD and s.key not in store],
             [s for s in specs if s.method != REFERENCE_METHOD and s.key not in store]]
    total = sum(len(w) for w in waves)
    if use_ray and total:
        connect_ray(ray_address)  # before any output: a bad address is one line
    bar = None
    if progress and total:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, desc="runs", unit="run", position=0)

    def write_record(row: dict[str, Any]) -> None:
        if record is not None:
            write_trajectory(trajectory_path(record, row["key"]),
                             trajectory(row, store.get(RunSpec(**row["spec"]).reference_key)))

    for done in specs:  # finished earlier, recorded now
        if record is not None and done.key in store and \
                not trajectory_path(record, done.key).exists():
            write_record(store.rows[done.key])

    def finish(row: dict[str, Any]) -> None:
        store.append(row)
        write_record(store.rows[row["key"]])
        if on_row is not None:
            on_row(row)
        if bar is not None:
            bar.update(1)

    try:
        if use_ray:
            _run_ray(waves, store, finish, ray_address, cpus_per_run, gpus_per_run, tb, threads)
        else:
            for wave in waves:
                for spec in wave:
                    ref = store.get(spec.reference_key)
                    if bar is not None:
                        bar.set_description(f"{spec.method} s{spec.seed} {spec.setting_id}")
                    if isolate:
                        ctx = mp.get_context("spawn")
                        with ProcessPoolExecutor(1, mp_context=ctx) as pool:
                            row = pool.submit(_child, spec, ref, progress, tb, threads).result()
                    else:
                        row = _in_process(spec, ref, progress, tb, threads)
                    finish(row)
    finally:
        if bar is not None:
            bar.close()
    return [store.rows[s.key] for s in specs if s.key in store]


def _in_process(spec: RunSpec, reference: dict[str, Any] | None, progress: bool,
                tb: str | None, threads: int | None) -> dict[str, Any]:
    import torch

    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        row = execute(spec, reference, progress=progress, tensorboard_dir=tb)
    finally:
        torch.set_num_threads(before)
    row["isolated"] = False
    return row


def _unreachable(address: str, timeout_s: float = 5.0) -> str | None:
    """``None`` if a TCP connection to the ``host:port`` of ``address`` opens, else why not."""
    host, sep, port = address.split("://", 1)[-1].rpartition(":")
    if not sep or not port.isdigit():
        return "expected HOST:PORT, ray://HOST:PORT or auto"
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            return None
    except OSError as e:
        return e.strerror or str(e)


def connect_ray(address: str | None = None, num_cpus: int | None = None) -> None:
    """Connect to the Ray cluster at ``address`` (or ``RAY_ADDRESS``), or else start a local
    instance (``num_cpus`` CPUs, default all); nothing if Ray is already initialised. The
    benchmark's ``--ray [ADDRESS]`` and ``reweight-gym train --lib rllib --address`` use it.

    A local instance starts its workers at niceness 0 (Ray's default is 15) unless
    ``RAY_worker_niceness`` is set. Connecting passes no resources (Ray refuses them for an
    existing cluster: its nodes declared theirs at ``ray start``). An unreachable address is a
    one-line ``ValueError`` naming it, at once (``ray.init`` itself keeps retrying it for
    minutes)."""
    import ray

    if ray.is_initialized():
        return
    address = address or os.environ.get("RAY_ADDRESS") or None
    quiet: dict[str, Any] = {"log_to_driver": False, "configure_logging": False}
    if address is None:
        # Ray starts its workers at niceness 15; here the workers are the work (env runners are
        # training runs, benchmark tasks are runs), and on a loaded machine niced workers starve
        # (measured: 3 s of CPU in 4 min). A value set by the user is kept.
        os.environ.setdefault("RAY_worker_niceness", "0")
        ray.init(num_cpus=num_cpus, include_dashboard=False, **quiet)
        return
    why = None if address == "auto" else _unreachable(address)
    if why is not None:
        raise ValueError(f"cannot reach the Ray cluster at {address!r}: {why} (start it with "
                         "`ray start --head`, or check the address and port)")
    try:
        ray.init(address=address, **quiet)
    except ConnectionError as e:
        raise ValueError(f"cannot connect to the Ray cluster at {address!r}: "
                         f"{' '.join(str(e).split())}") from None


def _run_ray(waves: list[list[RunSpec]], store: ResultsStore,
             finish: Callable[[dict[str, Any]], None], address: str | None, cpus: float,
             gpus: float, tb: str | None, threads: int | None) -> None:
    import ray

    connect_ray(address)
    task = ray.remote(num_cpus=cpus, num_gpus=gpus, max_calls=1)(_ray_task)
    for wave in waves:
        pending = {task.remote(s, store.get(s.reference_key), tb, threads): s for s in wave}
        while pending:
            done, _ = ray.wait(list(pending), num_returns=1)
            for ref in done:
                pending.pop(ref)
                finish(ray.get(ref))


def _ray_task(spec: RunSpec, reference: dict[str, Any] | None, tb: str | None,
              threads: int | None) -> dict[str, Any]:
    return _worker(spec, reference, False, tb, threads)
