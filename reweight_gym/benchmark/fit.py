"""Applying a weighting method to a training run: a trained agent's policy, a fixed policy or a
baseline, on any supported dataset, with one network and no reference.

``fit`` is what a user deploys after training an agent: the classifier trains once, with the
weights the policy chooses at every stage (LAW's K(f, theta) = 1 + tanh(theta . f + b), eq. 3),
and nothing else: the duplicate-network reference that gives LAW's reward during the search is
not trained (the rewards are not computed). It is :func:`reweight_gym.runner.run` without a
reference. ``fit_to_dir`` writes what it gave into a directory: ``result.json`` (the
:class:`~reweight_gym.runner.RunResult`: final and best-validation test accuracy, the actions and
the weights of noisy, clean and each class's samples per stage, the provenance), ``model.pt`` (the
trained network's ``state_dict``) and ``stages.csv`` (one line per stage).

A policy acts on the observation it was trained with (``obs_mode``), so the run's config must
have the agent's ``num_stages``, ``obs_mode`` and ``features``: ``fit`` takes them from the
agent's ``agent.json`` unless given, and checks the spaces before training. Observation modes that
read the reference (``extended``) see the target in its place.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import Any

from reweight_gym.jsonable import dumps
from reweight_gym.runner import RunResult, RunSpec, run

#: The fields a trained agent's spaces depend on, taken from its training env when not given.
AGENT_FIELDS = ("num_stages", "warmup_stages", "obs_mode", "features", "action_scale",
                "normalize_weights")


def agent_env_fields(method: str) -> dict[str, Any]:
    """The :data:`AGENT_FIELDS` of the env a trained agent at path ``method`` was trained on
    (its run's ``agent.json``; an instance set's shared values), or ``{}``."""
    from reweight_gym.registry import method_kind

    if not os.path.exists(method) or method_kind(method) != "agent":
        return {}
    here = method if os.path.isdir(method) else os.path.dirname(os.path.abspath(method))
    for d in (here, os.path.dirname(here)):
        path = os.path.join(d, "agent.json")
        if os.path.exists(path):
            with open(path) as fh:
                meta = json.load(fh)
            cfg = meta.get("config") or {}
            if "instance_set" in cfg:  # an instance set: its shared fields
                from reweight_gym.envs.instances import load_instance_set

                cfg = {**load_instance_set(cfg["instance_set"]).shared(),
                       **cfg.get("set_wide", {})}
            return {k: cfg[k] for k in AGENT_FIELDS if k in cfg}
    return {}


def fit(method: str, dataset: str = "digits", preset: str = "tiny", seed: int = 0,
        method_kwargs: dict[str, Any] | None = None, data_root: str | None = None,
        model_path: str | os.PathLike[str] | None = None, progress: bool = False,
        **env_kwargs: Any) -> RunResult:
    """Train one classifier on ``EnvConfig.resolve(dataset, preset, **env_kwargs)`` with
    ``method`` (a trained agent's path, a fixed policy or a baseline name), the episode of
    ``reset(seed=seed)``, without a reference network."""
    kwargs = {**agent_env_fields(method), **env_kwargs}
    spec = RunSpec(dataset, "fit", {}, method, seed, preset, data_root, kwargs,
                   dict(method_kwargs or {}))
    return run(spec, None, progress=progress, model_path=model_path)


def fit_to_dir(out: str | os.PathLike[str], method: str, **kwargs: Any) -> RunResult:
    """:func:`fit`, writing ``result.json``, ``model.pt`` and ``stages.csv`` into ``out``."""
    d = Path(out)
    d.mkdir(parents=True, exist_ok=True)
    result = fit(method, model_path=d / "model.pt", **kwargs)
    (d / "result.json").write_text(dumps(result.to_row(), indent=1) + "\n")
    warm = int(result.config["warmup_stages"])
    actions = result.stage_actions or []
    with open(d / "stages.csv", "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["stage", "weighted", "val_acc", "train_loss", "noisy_weight_mean",
                    "clean_weight_mean", "action"])
        for i, val in enumerate(result.stage_val_acc):
            a = actions[i - warm] if warm <= i < warm + len(actions) else None
            w.writerow([i, i >= warm, val, result.stage_train_loss[i],
                        result.stage_noisy_weight_mean[i], result.stage_clean_weight_mean[i],
                        json.dumps(a)])
    return result
