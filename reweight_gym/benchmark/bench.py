"""The benchmark: every method x setting x seed, locally or as Ray tasks, resumable.

Runs are ordered in two waves: first the ``uniform`` run of every setting and seed (it is the
duplicate-network reference of the others), then every other method. Each finished run is
appended to ``OUT/results.jsonl`` at once; rerunning the same command skips finished runs, so an
interrupted benchmark loses only the runs in progress.

With ``record`` (``--record DIR``) every run's trajectory file
(:meth:`~reweight_gym.runner.RunResult.trajectory`, the format of :mod:`reweight_gym.envs.record`)
is written to ``DIR/<run key>.json`` as the run finishes
(and for finished runs that lack one), for ``reweight-gym replay``.

Locally each run executes in a fresh child process (``isolate=True``), so its peak resident
memory is its own: forked from a server process that imported torch and this package once per
benchmark (:func:`_isolated_context`). With ``--ray`` each run is a Ray task with its CPU/GPU
request, one task per worker process (``max_calls=1``), on a local instance or an existing
cluster. Worker processes (child or Ray task) start by tuning their CPU allocator
(``reweight_gym/allocator.py``), as the ``reweight-gym`` command does for a run in its own
process.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import re
import signal
import sys
import threading
from collections.abc import Callable, Iterable
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from reweight_gym import registry
from reweight_gym.allocator import tune_cpu_allocator
from reweight_gym.benchmark.store import ResultsStore
from reweight_gym.benchmark.suites import select_settings
from reweight_gym.cluster import connect_ray
from reweight_gym.config import EnvConfig, known_classes
from reweight_gym.envs.record import write_trajectory
from reweight_gym.runner import REFERENCE_METHOD, RunResult, RunSpec, run


def build_specs(dataset: str, suite: str, methods: Iterable[str], seeds: int | Iterable[int],
                preset: str, settings: list[str | dict[str, Any]] | None = None,
                data_root: str | None = None,
                env_overrides: dict[str, Any] | None = None,
                method_kwargs: dict[str, dict[str, Any]] | None = None) -> list[RunSpec]:
    """All runs of a benchmark, validated before anything trains (``ValueError`` /
    ``FileNotFoundError`` naming the bad field or method): the methods, the config of every
    setting, environment keywords that the command's own options or the suite's settings set,
    the method keywords (each baseline's weigher and each policy is built once) and every
    trained agent against the spaces of every setting (it is loaded once)."""
    methods = list(dict.fromkeys(methods))
    if not methods:
        raise ValueError("invalid --methods '': give at least one method")
    kinds = {m: registry.method_kind(m) for m in methods}
    if REFERENCE_METHOD not in methods:
        methods.insert(0, REFERENCE_METHOD)  # the reference of every other method
        kinds[REFERENCE_METHOD] = registry.method_kind(REFERENCE_METHOD)
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
    agents = {m: registry.load_agent(m) for m in methods if kinds[m] == "agent"}
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
        if agents:
            from reweight_gym.data import build_splits
            from reweight_gym.runner.controllers import check_agent_spaces

            num_classes = build_splits(cfg).num_classes
            for m, agent in agents.items():
                check_agent_spaces(m, agent, cfg, num_classes)
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
    """Build the method once with ``kw`` (a baseline's weigher, or a policy for the setting's
    spaces): its own validation names a bad keyword."""
    if kind == "baseline":
        registry.make_weigher(method, cfg, **kw)
    elif kind == "policy":
        from reweight_gym.envs.observation import action_space, observation_space
        from reweight_gym.training.characteristics import feature_names

        classes = known_classes(cfg.dataset) or 10  # an image folder's: a first guess
        registry.make_policy(method, observation_space(cfg), action_space(cfg, classes),
                             feature_names=feature_names(cfg.features, classes), seed=0, **kw)


def trajectory_path(directory: str | os.PathLike[str], key: str) -> Path:
    """Where ``--record DIR`` writes the trajectory of the run ``key``."""
    return Path(directory) / (re.sub(r"[^A-Za-z0-9_.=,-]+", "_", key) + ".json")


def _alive(pid: int) -> bool:
    """Linux: whether the process ``pid`` runs (a zombie, killed and not yet reaped, does not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat") as fh:
            return fh.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return True


def _watch_benchmark(pid: int) -> None:
    """In a child: exit when the benchmark process ``pid`` is gone (a killed benchmark leaves no
    orphan runs). A spawned child watches its parent; a child of the fork server (Linux) watches
    ``pid`` itself: the server outlives its clients while one of its children runs."""
    spawned = os.getppid() == pid

    def watch() -> None:
        while (os.getppid() == pid) if spawned else _alive(pid):
            threading.Event().wait(1.0)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()


def _worker(spec: RunSpec, reference: RunResult | None, progress: bool,
            tb: str | None, threads: int | None) -> RunResult:
    """A run in a worker process of its own (isolated child or Ray task): the process starts
    by tuning its allocator and setting its torch threads."""
    tune_cpu_allocator()
    if threads:
        import torch

        torch.set_num_threads(threads)
    result = run(spec, reference, progress=progress, tensorboard_dir=tb)
    result.isolated = True
    return result


def _isolated_context() -> Any:
    """Where isolated runs start. On Linux: forked from multiprocessing's fork server, which
    imports torch and this package once per benchmark process (the first isolated run starts it;
    it lives as long as the process) instead of spawned, where each child imports torch anew
    (about 5 s per run on 2 cores). A forked child has run nothing before its run, so its time and
    peak memory are still its own, and it gets the benchmark's ``os.environ`` of the moment (see
    :func:`_child`); what is read only when a process starts (``OMP_NUM_THREADS`` for torch's
    default thread count, ``MALLOC_*``) comes from the server's start. Elsewhere (macOS, where
    forking after importing torch is unsafe, and Windows): spawned."""
    if not sys.platform.startswith("linux"):
        return mp.get_context("spawn")
    ctx = mp.get_context("forkserver")
    ctx.set_forkserver_preload(["torch._dynamo", __name__])
    return ctx


def _child(spec: RunSpec, reference: RunResult | None, progress: bool, tb: str | None,
           threads: int | None, environ: dict[str, str], benchmark_pid: int) -> RunResult:
    # the fork server's environment is the one it started with: run in the parent's as it is now
    os.environ.clear()
    os.environ.update(environ)
    _watch_benchmark(benchmark_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent handles Ctrl-C
    return _worker(spec, reference, progress, tb, threads)


def run_benchmark(specs: list[RunSpec], out: str | os.PathLike[str], *, isolate: bool = True,
                  ray_address: str | None = None, use_ray: bool = False, progress: bool = True,
                  tensorboard: bool = False, cpus_per_run: float = 1.0, gpus_per_run: float = 0.0,
                  threads: int | None = None,
                  on_row: Callable[[RunResult], None] | None = None,
                  record: str | os.PathLike[str] | None = None) -> list[RunResult]:
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

    def write_record(result: RunResult) -> None:
        if record is not None:
            write_trajectory(trajectory_path(record, result.key),
                             result.trajectory(store.get(result.spec.reference_key)))

    for done in specs:  # finished earlier, recorded now
        if record is not None and done.key in store and \
                not trajectory_path(record, done.key).exists():
            write_record(store.rows[done.key])

    def finish(result: RunResult) -> None:
        store.append(result)
        write_record(store.rows[result.key])
        if on_row is not None:
            on_row(store.rows[result.key])
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
                        with ProcessPoolExecutor(1, mp_context=_isolated_context()) as pool:
                            result = pool.submit(_child, spec, ref, progress, tb, threads,
                                                 dict(os.environ), os.getpid()).result()
                    else:
                        result = _in_process(spec, ref, progress, tb, threads)
                    finish(result)
    finally:
        if bar is not None:
            bar.close()
    return [store.rows[s.key] for s in specs if s.key in store]


def _in_process(spec: RunSpec, reference: RunResult | None, progress: bool,
                tb: str | None, threads: int | None) -> RunResult:
    import torch

    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        result = run(spec, reference, progress=progress, tensorboard_dir=tb)
    finally:
        torch.set_num_threads(before)
    result.isolated = False
    return result


def _run_ray(waves: list[list[RunSpec]], store: ResultsStore,
             finish: Callable[[RunResult], None], address: str | None, cpus: float,
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


def _ray_task(spec: RunSpec, reference: RunResult | None, tb: str | None,
              threads: int | None) -> RunResult:
    return _worker(spec, reference, False, tb, threads)
