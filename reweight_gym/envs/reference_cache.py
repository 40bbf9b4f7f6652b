"""A cache of reference networks' trajectories on disk.

LAW's reference network (DNR, eq. 8) trains with uniform weights on the episode's batches; its
trajectory depends only on the resolved config and the episode's run seed, never on the agent's
actions. So its per-stage validation accuracies and mean training losses, and its final test
accuracy, are a pure function of (config, run seed, code, platform), and an episode whose
reference is in the cache trains only the target network. The rewards are bit-identical to a
live reference's (a reference network is bit-identical to the unweighted run of the same config
and seed: the benchmark relies on the same identity).

The key is a hash of everything the trajectory depends on:

- the resolved config, without the fields that only shape rewards, observations or actions
  (:data:`NOT_IN_KEY`);
- the run seed;
- the code: a hash of the source of the modules that train and evaluate a network (data,
  models, training, the episode) and the package version;
- the platform: torch and numpy versions, the processor, the device and torch's thread count
  (results are bit-exact for the same processor type and thread count only).

Entries are one small JSON file each, written under a temporary name and renamed into place: any
number of runners (SB3 subprocesses, RLlib env runners) can share a directory, and a reader sees
a whole entry or none. The cache is an option of the environment (``reference_cache=DIR``), off
by default.
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from reweight_gym.config import EnvConfig

#: Config fields that do not change the reference network's trajectory.
NOT_IN_KEY = ("features", "obs_mode", "action_scale", "normalize_weights", "reward_k",
              "reward_scale", "divergence_penalty", "loss_smoothing", "acc_smoothing",
              "cache_dir", "download", "data_root")
#: The package's modules a reference trajectory depends on (relative to the package).
CODE_PATHS = ("config.py", "data", "models", "training", "envs/episode.py")


@dataclass(frozen=True)
class CachedReference:
    """A reference network's trajectory: per stage (warm-up included) its validation accuracy
    and mean training loss, and its final test accuracy."""

    val_acc: list[float]
    train_loss: list[float]
    test_acc: float


@functools.lru_cache(maxsize=1)
def code_version() -> str:
    """A hash of the package version and of the source of :data:`CODE_PATHS`."""
    from reweight_gym import __version__

    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256(__version__.encode())
    for rel in CODE_PATHS:
        p = root / rel
        files = sorted(p.rglob("*.py")) if p.is_dir() else [p]
        for f in files:
            h.update(str(f.relative_to(root)).encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:16]


def platform_id(device: str) -> dict[str, Any]:
    import torch

    from reweight_gym.provenance import provenance

    p = provenance(device)
    return {"torch": p["torch"], "numpy": p["numpy"], "cpu": p["cpu"], "device": str(device),
            "threads": torch.get_num_threads()}


def reference_key(cfg: EnvConfig, run_seed: int, device: str) -> str:
    """The cache key of the reference of ``cfg`` and ``run_seed`` (module docstring)."""
    fields = {k: v for k, v in cfg.to_dict().items() if k not in NOT_IN_KEY}
    if cfg.data_root:  # the data itself: its directory, resolved
        fields["data_root"] = os.path.realpath(cfg.data_root)
    payload = {"config": fields, "run_seed": int(run_seed), "code": code_version(),
               "platform": platform_id(device)}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:32]


class ReferenceCache:
    """Reference trajectories in ``directory`` (created if needed), one JSON file per key."""

    def __init__(self, directory: str | os.PathLike[str]) -> None:
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.hits = 0
        self.misses = 0

    def _path(self, key: str) -> Path:
        return self.directory / f"{key}.json"

    def get(self, key: str) -> CachedReference | None:
        path = self._path(key)
        try:
            data = json.loads(path.read_text())
        except (FileNotFoundError, json.JSONDecodeError):
            self.misses += 1
            return None
        self.hits += 1
        return CachedReference(list(data["val_acc"]), list(data["train_loss"]),
                               float(data["test_acc"]))

    def put(self, key: str, ref: CachedReference, about: dict[str, Any] | None = None) -> None:
        """Store ``ref`` atomically (a concurrent writer of the same key writes the same
        values; the last rename wins)."""
        text = json.dumps({"val_acc": ref.val_acc, "train_loss": ref.train_loss,
                           "test_acc": ref.test_acc, "about": about or {}})
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=f".{key}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as fh:
                fh.write(text)
            os.replace(tmp, self._path(key))
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    def __len__(self) -> int:
        return sum(1 for _ in self.directory.glob("*.json"))
