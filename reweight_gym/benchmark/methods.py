"""Method registry of the benchmark: baselines, fixed policies and trained agents by name.

What the upper layers (``baselines``, ``agents``) provide is named here as ``"module:attr"``
strings and imported on first use (:func:`load_attr`), so the lower layers never import them and
``import reweight_gym`` stays light; the command line reaches them through the same names. A
*controller* hands the episode a weigher for each weighted stage: a baseline's weigher is the
same object for every stage (it learns every iteration); a policy or agent picks LAW's θ, b from
the observation at every stage (3SM).
"""

from __future__ import annotations

import importlib
import os
from typing import Any

import numpy as np
import torch

from reweight_gym.config import EnvConfig
from reweight_gym.envs.observation import action_space, observation_space
from reweight_gym.training.characteristics import feature_names
from reweight_gym.training.trainer import DuplicateTrainer
from reweight_gym.training.weigher import LinearTanhWeigher, Weigher

BASELINE_NAMES = "reweight_gym.baselines:METHOD_NAMES"
MAKE_WEIGHER = "reweight_gym.baselines:make_weigher"
POLICY_NAMES = "reweight_gym.agents.policies:POLICY_NAMES"
MAKE_POLICY = "reweight_gym.agents.policies:make_policy"
LOAD_AGENT = "reweight_gym.agents.evaluate:load_agent"
TRAIN_SB3 = "reweight_gym.agents.sb3:train_sb3"


def load_attr(spec: str) -> Any:
    """The object named by ``"module:attr"`` (imported on first use)."""
    module, attr = spec.split(":")
    return getattr(importlib.import_module(module), attr)


def baseline_names() -> tuple[str, ...]:
    return tuple(load_attr(BASELINE_NAMES))


def policy_names() -> tuple[str, ...]:
    """The fixed policies that are benchmark methods (``uniform`` is the baseline of the same
    name)."""
    baselines = baseline_names()
    return tuple(n for n in load_attr(POLICY_NAMES) if n not in baselines)


def method_kind(name: str) -> str:
    """``baseline``, ``policy`` or ``agent`` (a checkpoint path); ``ValueError`` otherwise."""
    if name in baseline_names():
        return "baseline"
    if name in policy_names():
        return "policy"
    if os.path.exists(name):
        return "agent"
    if os.sep in name or name.endswith(".zip"):
        raise FileNotFoundError(f"invalid method {name!r}: checkpoint not found")
    allowed = ", ".join(baseline_names() + policy_names())
    raise ValueError(f"invalid method {name!r}: allowed: {allowed}, or a trained agent's "
                     "checkpoint path")


def method_label(name: str) -> str:
    """Display name: checkpoint paths become ``agent:<name>``."""
    if method_kind(name) != "agent":
        return name
    base = os.path.basename(os.path.normpath(name))
    return f"agent:{os.path.splitext(base)[0]}"


class Controller:
    """Gives the weigher for each weighted stage."""

    def weigher_for_stage(self, observation: np.ndarray) -> Weigher:
        raise NotImplementedError  # abstract

    def rules(self) -> str | None:
        """Readable weighting rules, where the method has them (NRT)."""
        return None


class BaselineController(Controller):
    def __init__(self, weigher: Weigher) -> None:
        self.weigher = weigher

    def weigher_for_stage(self, observation: np.ndarray) -> Weigher:
        return self.weigher

    def rules(self) -> str | None:
        extract = getattr(self.weigher, "extract_rules", None)
        return extract() if callable(extract) else None


class PolicyController(Controller):
    """An agent with SB3's ``predict``: deterministic action -> LAW's weigher (eq. 3)."""

    def __init__(self, agent: Any, cfg: EnvConfig) -> None:
        self.agent = agent
        self.cfg = cfg
        self.weigher = LinearTanhWeigher(cfg.features, normalize=cfg.normalize_weights)
        self.actions: list[list[float]] = []

    def weigher_for_stage(self, observation: np.ndarray) -> Weigher:
        action, _ = self.agent.predict(observation, deterministic=True)
        a = np.clip(np.asarray(action, np.float64).reshape(-1), -1, 1) * self.cfg.action_scale
        self.actions.append(a.tolist())
        self.weigher.set_params(torch.as_tensor(a[:-1], dtype=torch.float32), float(a[-1]))
        return self.weigher


def make_controller(name: str, cfg: EnvConfig, run: DuplicateTrainer,
                    method_kwargs: dict[str, Any] | None = None) -> Controller:
    kind = method_kind(name)
    if kind == "baseline":
        make_weigher = load_attr(MAKE_WEIGHER)
        return BaselineController(make_weigher(name, cfg, **(method_kwargs or {})))
    obs_space = observation_space(cfg)
    act_space = action_space(cfg, run.splits.num_classes)
    if kind == "policy":
        make_policy = load_attr(MAKE_POLICY)
        agent = make_policy(name, observation_space=obs_space, action_space=act_space,
                            feature_names=feature_names(cfg.features, run.splits.num_classes),
                            seed=run.seed, **(method_kwargs or {}))
    else:
        load_agent = load_attr(LOAD_AGENT)
        agent = load_agent(name)
        if getattr(agent, "action_space", act_space).shape != act_space.shape or \
                getattr(agent, "observation_space", obs_space).shape != obs_space.shape:
            raise ValueError(
                f"invalid method {name!r}: the agent's spaces (obs "
                f"{agent.observation_space.shape}, action {agent.action_space.shape}) do not "
                f"match this setting's (obs {obs_space.shape}, action {act_space.shape}); "
                "use the same num_stages, features and obs_mode (features='agnostic' transfers "
                "between datasets)")
    return PolicyController(agent, cfg)
