"""A training run's output directory, written so that a kill at any moment leaves it usable.

``reweight-gym train`` (SB3 and RLlib) writes ``agent.json`` (what was trained, on which env) and
checkpoints into ``--out`` and resumes from the newest checkpoint there. Every file and
checkpoint directory is written under a temporary name (``.tmp-...`` beside it), flushed to disk,
then renamed into place (``os.replace``, atomic on POSIX): a process killed mid-write leaves the
previous checkpoint intact and at worst a ``.tmp-`` leftover, which :func:`remove_stale_temps`
deletes when the run restarts.
"""

from __future__ import annotations

import glob
import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

#: What a training run's output directory holds about the run: library, algorithm, env, settings.
AGENT_META = "agent.json"
TMP_PREFIX = ".tmp-"
#: An RLlib run writes ``checkpoint_<iteration>`` directories; an algorithm checkpoint holds the
#: RLModule under this subdirectory ("default_policy" is RLlib's DEFAULT_MODULE_ID). Found
#: without importing Ray, so that only what is an RLlib checkpoint makes ``load_agent`` need it.
RLLIB_CKPT_PREFIX = "checkpoint_"
RLLIB_MODULE_SUBDIR = os.path.join("learner_group", "learner", "rl_module", "default_policy")


def _tmp_name(path: str) -> str:
    head, tail = os.path.split(os.path.abspath(path))
    return os.path.join(head, f"{TMP_PREFIX}{os.getpid()}-{tail}")


def _fsync(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_file(path: str) -> Iterator[str]:
    """Yield a temporary path (same directory and suffix) to write ``path``'s content to; it
    replaces ``path`` when the block ends without an exception, else it is removed."""
    tmp = _tmp_name(path)
    try:
        yield tmp
        _fsync(tmp)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


@contextmanager
def atomic_dir(path: str) -> Iterator[str]:
    """Yield a temporary directory to write a checkpoint directory into; renamed to ``path``
    when the block ends without an exception (an existing ``path`` is replaced), else removed."""
    tmp = _tmp_name(path)
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    try:
        yield tmp
        for root, _, files in os.walk(tmp):
            for name in files:
                _fsync(os.path.join(root, name))
        if os.path.exists(path):  # rename the old one away first: a directory is not replaced
            old = _tmp_name(path) + ".old"
            os.replace(path, old)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(tmp, path)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def write_json_atomic(path: str, obj: Any) -> None:
    """``json.dump`` to ``path`` through :func:`atomic_file`."""
    with atomic_file(path) as tmp:
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=1)


def write_agent_meta(out_dir: str, meta: dict[str, Any]) -> None:
    """``out_dir/agent.json``: what ``load_agent`` and ``reweight-gym evaluate`` read."""
    write_json_atomic(os.path.join(out_dir, AGENT_META), meta)


def read_agent_meta(directory: str) -> dict[str, Any] | None:
    """``directory/agent.json``, or ``None`` if there is none."""
    path = os.path.join(directory, AGENT_META)
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    return None


#: What must agree between a run and the one already in its output directory to resume it.
RESUME_FIELDS = ("lib", "algo", "env_id", "config", "n_envs", "seed", "settings")


def describe_run(lib: str, algo: str, env_id: str, env_kwargs: dict[str, Any], n_envs: int,
                 seed: int, settings: dict[str, Any] | None = None,
                 **extra: Any) -> dict[str, Any]:
    """The ``agent.json`` of a training run: what was trained (library, algorithm, agent
    settings) on which env (the id, the keywords as given, and the resolved config when the id
    is a Reweight environment), with how many searchers and which seed."""
    from reweight_gym.agents.fdu import resolved_config
    from reweight_gym.jsonable import jsonable

    cfg = resolved_config(env_id, env_kwargs)
    # as JSON stores it (tuples are lists), so that a resumed run compares equal
    return jsonable({"lib": lib, "algo": algo, "env_id": env_id, "env_kwargs": dict(env_kwargs),
                     "config": cfg, "n_envs": n_envs, "seed": seed, "settings": settings,
                     **extra})


def check_resume(out_dir: str, meta: dict[str, Any], restart: bool = False) -> list[str]:
    """Before a run writes into ``out_dir``: if the directory holds a run that differs from
    ``meta`` in a :data:`RESUME_FIELDS` field, ``ValueError`` naming the first difference (the
    run would mix another run's replay buffer and checkpoints into this one), unless
    ``restart``: then that run's checkpoints and ``agent.json`` are deleted and this run starts
    over. Returns the names it deleted."""
    old = read_agent_meta(out_dir)
    if old is None:
        return []
    diffs = [k for k in RESUME_FIELDS if k in old and k in meta and old[k] != meta[k]]
    if not diffs:
        return []
    if not restart:
        k = diffs[0]
        raise ValueError(f"--out {out_dir!r} holds another run ({k}: {_short(old[k])} there, "
                         f"{_short(meta[k])} here): resuming would mix the two; use another "
                         "--out, or --restart to delete that run and start over")
    removed = []
    for name in sorted(os.listdir(out_dir)):
        path = os.path.join(out_dir, name)
        if name == AGENT_META or name.endswith((".zip", ".pkl")) or name == "final.json" or \
                name.startswith(RLLIB_CKPT_PREFIX) or name == "tb":
            shutil.rmtree(path) if os.path.isdir(path) else os.remove(path)
            removed.append(name)
    return removed


def _short(value: Any) -> str:
    """A compact rendering of a differing value: the keys that differ for dicts."""
    text = json.dumps(value, sort_keys=True, default=str)
    return text if len(text) <= 120 else text[:117] + "..."


def remove_stale_temps(out_dir: str) -> list[str]:
    """Delete the ``.tmp-`` leftovers of a killed run in ``out_dir``; returns their names."""
    removed: list[str] = []
    if not os.path.isdir(out_dir):
        return removed
    for name in sorted(os.listdir(out_dir)):
        if name.startswith(TMP_PREFIX):
            p = os.path.join(out_dir, name)
            if os.path.isdir(p):
                shutil.rmtree(p, ignore_errors=True)
            else:
                os.remove(p)
            removed.append(name)
    return removed


def is_rllib_checkpoint(path: str) -> bool:
    return os.path.isdir(os.path.join(path, RLLIB_MODULE_SUBDIR))


def find_rllib_checkpoint(path: str) -> str | None:
    """``path`` itself if it is an RLlib algorithm checkpoint, else its newest
    ``checkpoint_<iteration>`` subdirectory, else ``None``."""
    if is_rllib_checkpoint(path):
        return path
    cands = []
    for d in glob.glob(os.path.join(path, f"{RLLIB_CKPT_PREFIX}*")):
        tail = os.path.basename(d)[len(RLLIB_CKPT_PREFIX):]
        if tail.isdigit() and is_rllib_checkpoint(d):
            cands.append((int(tail), d))
    return max(cands)[1] if cands else None
