"""What one run is and what it gave: :class:`RunSpec` and :class:`RunResult`, one schema.

Every training run of the package (a benchmark row, ``reweight_gym.baselines.run``, the
``benchmarks/`` scripts, ``reweight-gym replay``) is described by a :class:`RunSpec` and returns
a :class:`RunResult`. The results store (``results.jsonl``) holds one
:meth:`RunResult.to_row` per line and reads them back with :meth:`RunResult.from_row`, which also
reads the row shapes written before this schema (``schema_version`` absent): benchmark rows, whose
fields are the same, and ``baselines.run`` rows, which carried no spec and seeded the training
run with the seed itself (their ``episode_seed`` says so).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import asdict, dataclass, field
from typing import Any

from reweight_gym.config import EnvConfig

#: The version of :class:`RunResult`'s row layout (1: before the schema was versioned).
SCHEMA_VERSION = 2
#: The method every other method of a setting and seed is compared with (the DNR reference).
REFERENCE_METHOD = "uniform"

#: The values a re-run must reproduce (everything but timing, memory, provenance and the
#: identity of the run): what ``reweight-gym replay`` / ``validate`` compare.
RESULT_KEYS = (
    "episode_seed", "final_test_acc", "best_val_epoch", "best_val_acc", "test_acc_at_best_val",
    "test_acc_curve", "val_acc_curve", "reference_final_test_acc", "stage_val_acc",
    "stage_train_loss", "stage_loss_gap", "stage_rewards", "cumulative_reward", "stage_actions",
    "stage_noisy_weight_mean", "stage_clean_weight_mean", "stage_class_weight_mean",
    "noisy_weight_mean", "clean_weight_mean", "class_weight_mean", "weight_auc",
    "weight_vs_loss", "realised_noise_rate", "diverged",
)
#: The reward values among them (compared with the reward tolerance).
REWARD_KEYS = ("stage_rewards", "cumulative_reward")


def setting_id(setting: dict[str, Any]) -> str:
    """A stable, readable id: ``imbalance_factor=100,noise_rate=0.4,...`` (sorted keys)."""
    return ",".join(f"{k}={setting[k]}" for k in sorted(setting))


@dataclass(frozen=True)
class RunSpec:
    """What to run: ``method`` (a registered method or policy, or an agent's path) on
    ``dataset`` / ``preset`` with the ``setting`` of a ``suite`` (``"custom"`` outside a
    benchmark suite), extra environment keywords ``env_overrides`` and ``method_kwargs``;
    ``seed`` is the episode's ``reset(seed=...)`` and the data seed, unless ``data_seed`` fixes
    the data draw (an instance of an instance set with its own data seed)."""

    dataset: str
    suite: str
    setting: dict[str, Any]
    method: str
    seed: int
    preset: str
    data_root: str | None = None
    env_overrides: dict[str, Any] = field(default_factory=dict)
    method_kwargs: dict[str, Any] = field(default_factory=dict)
    data_seed: int | None = None

    @property
    def setting_id(self) -> str:
        return setting_id(self.setting)

    @property
    def _seed_id(self) -> str:
        return str(self.seed) if self.data_seed is None else f"{self.seed}/data{self.data_seed}"

    @property
    def key(self) -> str:
        """Identity of a run in the results store."""
        return "|".join([self.dataset, self.preset, self.suite, self.setting_id, self.method,
                         self._seed_id])

    @property
    def reference_key(self) -> str:
        return "|".join([self.dataset, self.preset, self.suite, self.setting_id,
                         REFERENCE_METHOD, self._seed_id])

    def config(self) -> EnvConfig:
        """The resolved config of the run (preset, then overrides, setting and seed)."""
        data_seed = self.seed if self.data_seed is None else self.data_seed
        kw: dict[str, Any] = {**self.env_overrides, **self.setting, "seed": data_seed}
        if self.data_root is not None:
            kw["data_root"] = self.data_root
        return EnvConfig.resolve(self.dataset, self.preset, **kw)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_instance(cls, instance: Any, method: str, reset_seed: int,
                      set_name: str = "instances", data_root: str | None = None,
                      method_kwargs: dict[str, Any] | None = None,
                      **overrides: Any) -> RunSpec:
        """The run of an instance's episode of ``reset_seed``
        (:class:`~reweight_gym.envs.instances.Instance`): the same data draw, run seed and
        config as the environment's episode, with ``method``."""
        setting = {k: v for k, v in {**instance.env, **overrides}.items() if k != "seed"}
        data_seed = None if instance.data_seed_per_episode else int(instance.env.get("seed", 0))
        return cls(instance.dataset, set_name, setting, method, int(reset_seed), instance.preset,
                   data_root if instance.needs_data_root else None, {},
                   dict(method_kwargs or {}), data_seed)


@dataclass
class RunResult:
    """One finished training run.

    Accuracies are fractions. ``best_val_epoch`` is chosen on the clean validation split (the
    test set chooses nothing) and ``test_acc_at_best_val`` is the test accuracy there;
    ``oracle_best_test_acc`` is the best test accuracy of any epoch (an oracle, for diagnosing
    memorisation only). ``stage_*`` lists have one value per stage (warm-up included), except
    ``stage_rewards`` and ``stage_actions``: one per weighted stage, ``None`` when the run had
    no reference (rewards) or no policy (actions). Weight means are over the run's iterations
    (``stage_*``: over a stage), ``None`` where no sample of the kind was seen.
    ``time_overhead`` / ``memory_overhead`` are relative to the reference run. ``tags`` are
    labels a script adds (a variant's name); ``provenance`` is the code and machine.
    """

    spec: RunSpec
    config: dict[str, Any]
    episode_seed: int
    final_test_acc: float | None = None
    best_val_epoch: int | None = None
    best_val_acc: float | None = None
    test_acc_at_best_val: float | None = None
    oracle_best_test_acc: float | None = None
    test_acc_curve: list[float] = field(default_factory=list)
    val_acc_curve: list[float] = field(default_factory=list)
    reference_final_test_acc: float | None = None
    stage_val_acc: list[float] = field(default_factory=list)
    stage_train_loss: list[float] = field(default_factory=list)
    stage_loss_gap: list[float | None] = field(default_factory=list)
    stage_rewards: list[float] | None = None
    cumulative_reward: float | None = None
    stage_actions: list[list[float]] | None = None
    stage_noisy_weight_mean: list[float | None] = field(default_factory=list)
    stage_clean_weight_mean: list[float | None] = field(default_factory=list)
    stage_class_weight_mean: list[list[float | None]] = field(default_factory=list)
    noisy_weight_mean: float | None = None
    clean_weight_mean: float | None = None
    class_weight_mean: list[float | None] = field(default_factory=list)
    zero_weight_share: float | None = None
    class_counts: list[int] = field(default_factory=list)
    minority_classes: list[int] = field(default_factory=list)
    weight_auc: float | None = None
    weight_vs_loss: dict[str, list[float]] = field(default_factory=dict)
    realised_noise_rate: float | None = None
    diverged: bool = False
    rules: str | None = None
    iterations: int | None = None
    seconds: float | None = None
    peak_rss_mb: float | None = None
    peak_rss_start_mb: float | None = None
    torch_threads: int | None = None
    time_overhead: float | None = None
    memory_overhead: float | None = None
    isolated: bool | None = None
    provenance: dict[str, Any] | None = None
    tags: dict[str, Any] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    def __post_init__(self) -> None:
        #: fields a stored row of an older shape did not have (not compared by a replay)
        self.absent: frozenset[str] = frozenset()

    # ------------------------------------------------------------------ identity
    @property
    def key(self) -> str:
        return self.spec.key

    @property
    def method(self) -> str:
        return self.spec.method

    @property
    def seed(self) -> int:
        return self.spec.seed

    @property
    def dataset(self) -> str:
        return self.spec.dataset

    @property
    def preset(self) -> str:
        return self.spec.preset

    @property
    def suite(self) -> str:
        return self.spec.suite

    @property
    def setting_id(self) -> str:
        return self.spec.setting_id

    def value(self, name: str) -> Any:
        """A field by name (for tables whose columns are field names)."""
        return getattr(self, name)

    # ------------------------------------------------------------------ trajectory
    def trajectory(self, reference: RunResult | None) -> dict[str, Any]:
        """The trajectory file of this run (``kind: "run"``, the format of
        :mod:`reweight_gym.envs.record`), what ``reweight-gym replay`` re-runs: the spec and
        resolved config, the DNR reference it was measured against (``reference``'s per-stage
        values; ``None`` for the ``uniform`` run itself or a run without one), the values a
        re-run must reproduce (:data:`RESULT_KEYS`, recorded actions included) and the run's
        provenance."""
        from reweight_gym.envs import ENV_IDS
        from reweight_gym.envs.record import new_trajectory

        ref = None
        if self.method != REFERENCE_METHOD and self.stage_rewards is not None:
            if reference is None:
                raise ValueError(f"run {self.key} needs the uniform reference of the same seed")
            ref = {"stage_val_acc": reference.stage_val_acc,
                   "stage_train_loss": reference.stage_train_loss,
                   "final_test_acc": reference.final_test_acc}
        traj = new_trajectory(
            "run", self.config, None, env_id={d: i for i, d in ENV_IDS.items()}.get(self.dataset),
            key=self.key, spec=self.spec.to_dict(), reference=ref,
            result={k: getattr(self, k) for k in RESULT_KEYS if k not in self.absent})
        traj["complete"] = True
        traj["provenance"] = self.known_provenance()
        return traj

    def known_provenance(self) -> dict[str, Any]:
        """The provenance; every code field ``"unknown"`` for a row written before provenance
        was recorded (it still loads, reports and replays)."""
        from reweight_gym.provenance import row_provenance

        return row_provenance({"provenance": self.provenance, "torch_threads": self.torch_threads})

    # ------------------------------------------------------------------ rows
    def to_row(self) -> dict[str, Any]:
        """The stored form: every field, the spec as a dict, and the identity fields written
        out (``key``, ``method``, ``seed``, ...: what ``grep`` and other tools find in a row)."""
        row = {"key": self.key, "method": self.method, "seed": self.seed,
               "dataset": self.dataset, "preset": self.preset, "suite": self.suite,
               "setting_id": self.setting_id}
        for f in dataclasses.fields(self):
            v = getattr(self, f.name)
            row[f.name] = v.to_dict() if isinstance(v, RunSpec) else v
        return row

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> RunResult:
        """A result from a stored row of this schema or of the shapes before it."""
        version = row.get("schema_version", 1)
        if version > SCHEMA_VERSION:
            raise ValueError(f"invalid row {row.get('key')!r}: schema_version {version}; this "
                             f"package reads up to {SCHEMA_VERSION}")
        data = dict(row)
        if "spec" in data:
            spec = RunSpec(**data["spec"])
        else:  # a ``baselines.run`` row (version 1): no spec, the run seeded with ``seed``
            cfg = data.get("config")
            if not isinstance(cfg, dict):
                raise ValueError("invalid row: neither a spec nor a config (dict)")
            spec = RunSpec(cfg["dataset"], "custom", {}, data["method"], int(data["seed"]),
                           cfg["preset"], method_kwargs=dict(data.get("method_kwargs") or {}))
            data.setdefault("episode_seed", int(data["seed"]))
            data.setdefault("oracle_best_test_acc", data.get("best_test_acc"))
            tags = {k: data[k] for k in ("label", "setting", "command") if k in data}
            data["tags"] = {**tags, **data.get("tags", {})}
        names = {f.name for f in dataclasses.fields(cls)} - {"spec", "schema_version"}
        values = {k: data[k] for k in names if k in data}
        if "config" not in values:
            values["config"] = spec.config().to_dict()
        values.setdefault("episode_seed", spec.seed)
        result = cls(spec=spec, schema_version=SCHEMA_VERSION, **values)
        result.absent = frozenset(n for n in names if n not in data)
        return result


def finite(x: float | None) -> float | None:
    """``x`` as a float, or ``None`` for ``None`` / NaN / infinities (strict JSON)."""
    return None if x is None or not math.isfinite(float(x)) else float(x)
