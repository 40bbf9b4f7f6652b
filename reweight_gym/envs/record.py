"""Recorded episodes: :class:`RecordEpisode` writes every episode to a small JSON trajectory.

A trajectory file holds what is needed to re-run the episode and check it
(``reweight-gym replay FILE``, :mod:`reweight_gym.benchmark.replay`): the env id and the full
resolved :class:`~reweight_gym.config.EnvConfig`, how the episode was reset (the last explicit
reset seed, the number of unseeded resets since, the options) and the episode seed the env
derived, the first observation, then per step the action, the observation, the reward,
``terminated`` / ``truncated`` and every info value; and the
:func:`~reweight_gym.provenance.provenance` of the run (package version, git commit, torch /
numpy / gymnasium versions, processor, torch threads, device). No per-sample arrays: a
20-stage episode is a few kilobytes. Values are strict JSON (:mod:`reweight_gym.jsonable`: NaN
is ``null``); floats are written exactly, so a replay on the same machine and thread count
compares bit for bit.

Two kinds share the format (:func:`new_trajectory`, the one definition of its envelope):

- ``kind: "env"`` (:class:`RecordEpisode`): ``env_id``, ``config``, ``reset``, ``episode_seed``,
  ``initial_observation``, ``reset_info``, ``steps``;
- ``kind: "run"`` (a run of :func:`reweight_gym.runner.run`, e.g. a benchmark row:
  :meth:`reweight_gym.runner.RunResult.trajectory`): ``env_id``, ``key``, ``spec``, ``config``,
  the DNR ``reference`` it was measured against, and its ``result`` values. Files written with
  the older name ``"benchmark"`` of this kind read as ``"run"``.

Both carry ``complete`` and ``provenance``.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any, SupportsFloat, cast

import gymnasium as gym
import numpy as np

from reweight_gym.jsonable import dumps, jsonable
from reweight_gym.provenance import provenance

if TYPE_CHECKING:
    from reweight_gym.envs.reweight_env import ReweightEnv

TRAJECTORY_FORMAT = "reweight-gym-trajectory"
TRAJECTORY_VERSION = 1
KINDS = ("env", "run")
_KIND_ALIASES: dict[object, str] = {"benchmark": "run"}  # looked up with any JSON value


def new_trajectory(kind: str, config: dict[str, Any], device: str | None,
                   **fields: Any) -> dict[str, Any]:
    """The envelope of a trajectory of ``kind``: format, version, kind, the resolved ``config``,
    ``complete: False``, the :func:`~reweight_gym.provenance.provenance` of this process (on
    ``device``), then ``fields``."""
    if kind not in KINDS:
        raise ValueError(f"invalid trajectory kind={kind!r}: allowed: {', '.join(KINDS)}")
    return {"format": TRAJECTORY_FORMAT, "version": TRAJECTORY_VERSION, "kind": kind,
            "config": config, **fields, "complete": False, "provenance": provenance(device)}


def write_trajectory(path: str | os.PathLike[str], trajectory: dict[str, Any]) -> Path:
    """Write ``trajectory`` as strict JSON, atomically (a temporary file renamed into place)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    text = dumps(trajectory, indent=1)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(text + "\n")
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def read_trajectory(path: str | os.PathLike[str]) -> dict[str, Any]:
    """A trajectory file written by :class:`RecordEpisode` or the benchmark; ``ValueError``
    naming the file and what is wrong otherwise (``FileNotFoundError`` if it is missing)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"trajectory not found: {str(path)!r} is not a file")
    try:
        traj = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ValueError(f"invalid trajectory {str(path)!r}: not JSON ({e})") from None
    if not isinstance(traj, dict) or traj.get("format") != TRAJECTORY_FORMAT:
        raise ValueError(f"invalid trajectory {str(path)!r}: not a {TRAJECTORY_FORMAT} file")
    if traj.get("version") != TRAJECTORY_VERSION:
        raise ValueError(f"invalid trajectory {str(path)!r}: version {traj.get('version')!r}, "
                         f"this package reads version {TRAJECTORY_VERSION}")
    traj["kind"] = _KIND_ALIASES.get(traj.get("kind"), traj.get("kind"))
    if traj.get("kind") not in KINDS:
        raise ValueError(f"invalid trajectory {str(path)!r}: kind {traj.get('kind')!r}, "
                         f"allowed: {', '.join(KINDS)}")
    if not isinstance(traj.get("config"), dict):
        raise ValueError(f"invalid trajectory {str(path)!r}: no config object")
    return traj


class RecordEpisode(gym.Wrapper, gym.utils.RecordConstructorArgs):
    """Write every episode of a Reweight environment to ``directory/<name_prefix>-NNNN.json``.

    Wrap the environment as ``gymnasium.make`` returns it (no action wrapper in between: a replay
    feeds the recorded actions to a bare environment). A file is written when the episode ends
    (terminated or truncated); an episode left unfinished by ``reset`` or ``close`` is written
    with ``"complete": false``. ``NNNN`` counts this wrapper's episodes from 0000; a file of that
    name already in ``directory`` is replaced (give each wrapper of a directory its own
    ``name_prefix``). Works for any agent: it sees only ``reset`` and ``step``. Its constructor
    arguments are recorded, so ``gymnasium.make`` can apply it from an ``EnvSpec``'s
    ``additional_wrappers`` (as ``reweight-gym evaluate --record`` does).
    """

    def __init__(self, env: gym.Env, directory: str | os.PathLike[str],
                 name_prefix: str = "episode") -> None:
        gym.utils.RecordConstructorArgs.__init__(self, directory=str(directory),
                                                 name_prefix=name_prefix)
        gym.Wrapper.__init__(self, env)
        inner = env
        while isinstance(inner, gym.Wrapper):
            if isinstance(inner, gym.ActionWrapper):
                raise ValueError(f"invalid env for RecordEpisode: the action wrapper "
                                 f"{type(inner).__name__} changes the actions a replay would "
                                 "feed the bare environment; wrap the environment inside it")
            inner = inner.env
        if not hasattr(inner, "config") or not hasattr(inner.config, "to_dict"):
            raise ValueError(f"invalid env for RecordEpisode: {type(inner).__name__} is not a "
                             "Reweight environment (it has no EnvConfig)")
        if not isinstance(name_prefix, str) or not name_prefix or os.sep in name_prefix:
            raise ValueError(f"invalid name_prefix={name_prefix!r}: a non-empty file-name prefix")
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.name_prefix = name_prefix
        self.episodes_written = 0
        self.paths: list[Path] = []
        self._last_seed: int | None = None
        self._resets_since_seed = 0
        self._trajectory: dict[str, Any] | None = None

    def reset(self, *, seed: int | None = None,
              options: dict[str, Any] | None = None) -> tuple[Any, dict[str, Any]]:
        self._flush(complete=False)
        if seed is not None:
            self._last_seed, self._resets_since_seed = int(seed), 0
        else:
            self._resets_since_seed += 1
        obs, info = self.env.reset(seed=seed, options=options)
        base = cast("ReweightEnv", self.env.unwrapped)
        episode = getattr(base, "episode", None)
        device = str(episode.trainer.device) if episode is not None else base.config.device
        spec = self.env.spec
        self._trajectory = new_trajectory(
            "env", base.config.to_dict(), device,
            env_id=spec.id if spec is not None else None,
            reset={"seed": self._last_seed, "resets_since_seed": self._resets_since_seed,
                   "options": jsonable(options)},
            episode_seed=info.get("episode_seed"),
            initial_observation=jsonable(obs),
            reset_info=jsonable(info),
            steps=[])
        return obs, info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self.env.step(action)
        if self._trajectory is not None:
            self._trajectory["steps"].append({
                "action": jsonable(np.asarray(action)),
                "observation": jsonable(obs),
                "reward": jsonable(reward),
                "terminated": bool(terminated), "truncated": bool(truncated),
                "info": jsonable(info),
            })
            if terminated or truncated:
                self._flush(complete=True)
        return obs, reward, terminated, truncated, info

    def close(self) -> None:
        self._flush(complete=False)
        super().close()

    def _flush(self, complete: bool) -> None:
        traj, self._trajectory = self._trajectory, None
        if traj is None or not traj["steps"]:
            return
        traj["complete"] = complete
        path = self.directory / f"{self.name_prefix}-{self.episodes_written:04d}.json"
        self.paths.append(write_trajectory(path, traj))
        self.episodes_written += 1
