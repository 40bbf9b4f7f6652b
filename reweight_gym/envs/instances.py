"""Instance sets: the training-run configurations an environment draws from at each reset.

An *instance* (DACBench's term) is one training-run configuration: a dataset, a preset and the
environment keywords on top of it (corruption, sizes, model, run length, augmentation, the data
seed), with the reset seeds its episodes use. An *instance set* is a named list of instances
whose episodes an agent can share one policy over: they must agree on what shapes the spaces
(``num_stages``, ``warmup_stages``, ``features``, ``obs_mode``).

Sets are data: a JSON object (a file, or the same as a dict)::

    {"name": "mine", "description": "...",
     "defaults": {"preset": "tiny", "episode_seeds": 8},          # optional, for every instance
     "instances": [
        {"name": "digits-noise40", "dataset": "digits", "noise_rate": 0.4},
        {"name": "digits-clean", "dataset": "digits", "noise_rate": 0.0,
         "episode_seeds": [100, 101]}]}

Every other key of an instance is an :class:`~reweight_gym.config.EnvConfig` keyword.
``episode_seeds`` is a list of reset seeds or a count ``n`` (the seeds ``0 .. n-1``): the run seed
of an episode is the one ``env.reset(seed=s)`` derives. The data draw (corruption and splits) is
the instance's ``seed`` keyword (default 0), or with ``"data_seed": "episode"`` the episode's
reset seed, as in a benchmark row: then an episode of seed ``s`` is exactly the benchmark run of
the same config and seed ``s``. A finite pool of seeds per instance is what lets a
cached reference network be reused (:mod:`reweight_gym.envs.reference_cache`).

The package ships the sets of :data:`BUILTIN_SETS` (``instance_sets/*.json`` beside this file):
``train`` (cheap: digits and the CIFAR-10 proxy), ``validation`` (other cheap instances, to
choose settings on) and ``heldout-cifar10`` (the ``cpu`` / ``cpu-noaug`` CIFAR-10 runs a policy
is judged on). Instances of CIFAR take their images from the environment's ``data_root``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from reweight_gym.config import DATASETS, EnvConfig
from reweight_gym.validation import invalid

SET_DIR = Path(__file__).with_name("instance_sets")
BUILTIN_SETS = ("train", "validation", "heldout-cifar10")
#: The fields every instance of a set must share: they shape the observation and action spaces.
SHARED_FIELDS = ("num_stages", "warmup_stages", "features", "obs_mode")
_NEEDS_ROOT = ("cifar10", "cifar100", "imagefolder")


@dataclass(frozen=True)
class Instance:
    """One training-run configuration and the reset seeds of its episodes."""

    name: str
    dataset: str
    preset: str
    env: Mapping[str, Any] = field(default_factory=lambda: MappingProxyType({}))
    episode_seeds: tuple[int, ...] = (0,)
    data_seed_per_episode: bool = False

    @property
    def needs_data_root(self) -> bool:
        return self.dataset in _NEEDS_ROOT

    def config(self, data_root: str | None = None, episode_seed: int | None = None,
               **overrides: Any) -> EnvConfig:
        """The resolved config (of the episode with reset seed ``episode_seed`` when the data
        seed follows it); ``data_root`` is used by the datasets that need one."""
        kw = {**self.env, **overrides}
        if self.data_seed_per_episode and episode_seed is not None:
            kw["seed"] = int(episode_seed)
        if self.dataset in _NEEDS_ROOT and data_root is not None:
            kw.setdefault("data_root", data_root)
        return EnvConfig.resolve(self.dataset, self.preset, **kw)

    def to_dict(self) -> dict[str, Any]:
        d = {"name": self.name, "dataset": self.dataset, "preset": self.preset, **self.env,
             "episode_seeds": list(self.episode_seeds)}
        if self.data_seed_per_episode:
            d["data_seed"] = "episode"
        return d


@dataclass(frozen=True)
class InstanceSet:
    """A named, validated list of instances (module docstring)."""

    name: str
    instances: tuple[Instance, ...]
    description: str = ""

    def __post_init__(self) -> None:
        if not self.instances:
            raise invalid(f"instance set {self.name!r} instances", [], "must not be empty")
        names = [i.name for i in self.instances]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise invalid(f"instance set {self.name!r} instance names", dup,
                          "must be unique")

    # ------------------------------------------------------------------ lookup
    def __len__(self) -> int:
        return len(self.instances)

    def __getitem__(self, key: int | str) -> Instance:
        if isinstance(key, str):
            for inst in self.instances:
                if inst.name == key:
                    return inst
            raise invalid("instance", key, f"allowed: {', '.join(self.names)} (set "
                          f"{self.name!r})")
        return self.instances[key]

    @property
    def names(self) -> list[str]:
        return [i.name for i in self.instances]

    def shared(self, **overrides: Any) -> dict[str, Any]:
        """The values of :data:`SHARED_FIELDS` (the same for every instance, checked at
        construction by :func:`load_instance_set`), with ``overrides`` applied."""
        cfg = _probe_config(self.instances[0], overrides)
        return {k: getattr(cfg, k) for k in SHARED_FIELDS}

    @property
    def episode_length(self) -> int:
        s = self.shared()
        return int(s["num_stages"] - s["warmup_stages"])

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "description": self.description,
                "instances": [i.to_dict() for i in self.instances]}

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_dict(cls, data: Mapping[str, Any], name: str | None = None) -> InstanceSet:
        """A set from its JSON form (module docstring), every instance validated."""
        if not isinstance(data, Mapping):
            raise invalid("instance_set", data, "must be a name, a JSON file or a dict")
        unknown = sorted(set(data) - {"name", "description", "defaults", "instances"})
        if unknown:
            raise invalid("instance_set keys", unknown,
                          "allowed: name, description, defaults, instances")
        set_name = str(name or data.get("name") or "custom")
        defaults = dict(data.get("defaults") or {})
        items = data.get("instances")
        if not isinstance(items, Sequence) or isinstance(items, (str, bytes)):
            raise invalid(f"instance set {set_name!r} instances", items, "must be a list")
        instances = tuple(_instance({**defaults, **dict(item)} if isinstance(item, Mapping)
                                    else item, i, set_name) for i, item in enumerate(items))
        out = cls(set_name, instances, str(data.get("description", "")))
        _check_shared(out)
        return out


def _instance(item: Any, index: int, set_name: str) -> Instance:
    where = f"instance set {set_name!r} instance {index}"
    if not isinstance(item, Mapping):
        raise invalid(where, item, "must be a JSON object of EnvConfig keywords")
    d = dict(item)
    name = d.pop("name", None)
    if not isinstance(name, str) or not name:
        raise invalid(f"{where} name", name, "must be a non-empty string")
    where = f"instance {name!r} of set {set_name!r}"
    dataset = d.pop("dataset", "digits")
    if dataset not in DATASETS:
        raise invalid(f"{where} dataset", dataset, f"allowed: {', '.join(DATASETS)}")
    preset = d.pop("preset", "tiny")
    data_seed = d.pop("data_seed", None)
    if data_seed not in (None, "episode"):
        raise invalid(f"{where} data_seed", data_seed,
                      "allowed: 'episode' (the data seed is the episode's reset seed); a fixed "
                      "data draw is the keyword 'seed'")
    seeds = d.pop("episode_seeds", 1)
    if isinstance(seeds, int) and not isinstance(seeds, bool):
        if seeds < 1:
            raise invalid(f"{where} episode_seeds", seeds, "must be a count >= 1 or a list")
        seeds = list(range(seeds))
    if not isinstance(seeds, Sequence) or isinstance(seeds, (str, bytes)) or not seeds or \
            any(isinstance(s, bool) or not isinstance(s, int) or s < 0 for s in seeds):
        raise invalid(f"{where} episode_seeds", seeds,
                      "must be a count >= 1 or a non-empty list of seeds >= 0")
    inst = Instance(name, dataset, preset, MappingProxyType(d), tuple(int(s) for s in seeds),
                    data_seed == "episode")
    try:
        _probe_config(inst, {})
    except ValueError as e:
        raise ValueError(f"invalid {where}: {e}") from None
    return inst


def _probe_config(inst: Instance, overrides: Mapping[str, Any]) -> EnvConfig:
    """The instance's config, validated without its data: a dataset that needs a directory and
    has none yet is checked as if it were to be downloaded."""
    kw = {**inst.env, **overrides}
    if inst.dataset in _NEEDS_ROOT and not kw.get("data_root"):
        kw["download"] = True
        kw.pop("data_root", None)
        if inst.dataset == "imagefolder":
            raise invalid(f"instance {inst.name!r} data_root", None,
                          "an imagefolder instance needs its data_root in the set")
    return EnvConfig.resolve(inst.dataset, inst.preset, **kw)


def _check_shared(s: InstanceSet) -> None:
    first = _probe_config(s.instances[0], {})
    for inst in s.instances[1:]:
        cfg = _probe_config(inst, {})
        for k in SHARED_FIELDS:
            if getattr(cfg, k) != getattr(first, k):
                raise invalid(f"instance {inst.name!r} of set {s.name!r} {k}", getattr(cfg, k),
                              f"every instance of a set must have the same {k} (instance "
                              f"{s.instances[0].name!r} has {getattr(first, k)!r}): it shapes "
                              "the spaces one policy acts in")


def load_instance_set(spec: str | os.PathLike[str] | Mapping[str, Any] | InstanceSet
                      ) -> InstanceSet:
    """An instance set from a built-in name (:data:`BUILTIN_SETS`), a JSON file, a dict, or a
    set; bad input is one ``ValueError`` naming the field."""
    if isinstance(spec, InstanceSet):
        return spec
    if isinstance(spec, Mapping):
        return InstanceSet.from_dict(spec)
    if isinstance(spec, (str, os.PathLike)):
        text = os.fspath(spec)
        if text in BUILTIN_SETS:
            path = SET_DIR / f"{text}.json"
        elif text.endswith(".json") or os.path.exists(text):
            path = Path(text)
        else:
            raise invalid("instance_set", text, f"allowed: {', '.join(BUILTIN_SETS)}, a JSON "
                                                 "file, or a dict")
        if not path.is_file():
            raise FileNotFoundError(f"invalid instance_set={text!r}: no such file")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as e:
            raise ValueError(f"invalid instance_set={text!r}: not JSON ({e})") from None
        return InstanceSet.from_dict(data, name=data.get("name") or path.stem)
    raise invalid("instance_set", spec, "must be a name, a JSON file or a dict")
