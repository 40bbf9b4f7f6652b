"""Controllers: what hands an episode its weigher for each weighted stage.

A *baseline*'s weigher is the same object for every stage (it learns every iteration); a fixed
*policy* or a trained *agent* picks LAW's θ, b from the observation at every stage (3SM, eq. 3);
recorded *actions* replay a policy's choices. Methods, policies and agents are found by name in
:mod:`reweight_gym.registry`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from reweight_gym import registry
from reweight_gym.config import EnvConfig
from reweight_gym.envs.observation import action_space, observation_space
from reweight_gym.training.characteristics import feature_names
from reweight_gym.training.weigher import LinearTanhWeigher, Weigher


class Controller:
    """Gives the weigher for each weighted stage."""

    def weigher_for_stage(self, observation: np.ndarray) -> Weigher:
        raise NotImplementedError  # abstract

    def rules(self) -> str | None:
        """Readable weighting rules, where the method has them (NRT)."""
        return None

    @property
    def actions(self) -> list[list[float]] | None:
        """The (θ, b) of every weighted stage so far, for policies and agents."""
        return None


class BaselineController(Controller):
    def __init__(self, weigher: Weigher) -> None:
        self.weigher = weigher

    def weigher_for_stage(self, observation: np.ndarray) -> Weigher:
        return self.weigher

    def rules(self) -> str | None:
        extract = getattr(self.weigher, "extract_rules", None)
        return extract() if callable(extract) else None


class _LinearTanhController(Controller):
    """LAW's weigher K(f, θ) = 1 + tanh(θ·f + b) (eq. 3) with the θ, b of each stage."""

    def __init__(self, cfg: EnvConfig) -> None:
        self.cfg = cfg
        self.weigher = LinearTanhWeigher(cfg.features, normalize=cfg.normalize_weights)
        self._actions: list[list[float]] = []

    @property
    def actions(self) -> list[list[float]]:
        return self._actions

    def _set(self, a: list[float]) -> Weigher:
        self._actions.append(list(a))
        self.weigher.set_params(torch.as_tensor(a[:-1], dtype=torch.float32), float(a[-1]))
        return self.weigher


class PolicyController(_LinearTanhController):
    """An agent with SB3's ``predict``: its deterministic action, clipped to [-1, 1] and scaled
    by ``action_scale``, is the stage's θ, b."""

    def __init__(self, agent: Any, cfg: EnvConfig) -> None:
        super().__init__(cfg)
        self.agent = agent

    def weigher_for_stage(self, observation: np.ndarray) -> Weigher:
        action, _ = self.agent.predict(observation, deterministic=True)
        a = np.clip(np.asarray(action, np.float64).reshape(-1), -1, 1) * self.cfg.action_scale
        return self._set(a.tolist())


class ActionsController(_LinearTanhController):
    """Replays recorded stage actions (θ and b as LAW's weigher used them) instead of asking the
    policy or agent again."""

    def __init__(self, actions: list[list[float]], cfg: EnvConfig) -> None:
        super().__init__(cfg)
        self.recorded = [list(a) for a in actions]

    def weigher_for_stage(self, observation: np.ndarray) -> Weigher:
        i = len(self._actions)
        if i >= len(self.recorded):
            raise ValueError(f"invalid stage_actions: {len(self.recorded)} recorded, but the run "
                             "has more weighted stages")
        return self._set(self.recorded[i])


def check_agent_spaces(name: str, agent: Any, cfg: EnvConfig, num_classes: int) -> None:
    """``ValueError`` naming what differs when the agent's spaces do not fit the env of ``cfg``:
    the observation holds one entry per stage (plus 2, or 6 with ``obs_mode='extended'``), the
    action one per feature plus the bias."""
    obs_space = observation_space(cfg)
    act_space = action_space(cfg, num_classes)
    a_obs = getattr(agent, "observation_space", obs_space).shape
    a_act = getattr(agent, "action_space", act_space).shape
    problems = []
    if a_obs != obs_space.shape:
        problems.append(f"observation {a_obs} vs the env's {obs_space.shape} (num_stages="
                        f"{cfg.num_stages}, obs_mode={cfg.obs_mode!r})")
    if a_act != act_space.shape:
        problems.append(f"action {a_act} vs the env's {act_space.shape} (features="
                        f"{cfg.features!r}, {num_classes} classes)")
    if problems:
        raise ValueError(f"invalid method {name!r}: the agent does not fit this setting: "
                         f"{'; '.join(problems)} (an agent transfers between settings with the "
                         "same num_stages and obs_mode; features='agnostic' between datasets)")


def make_controller(name: str, cfg: EnvConfig, num_classes: int, seed: int,
                    method_kwargs: dict[str, Any] | None = None) -> Controller:
    """The controller of a registered method or policy, or of the trained agent at path
    ``name``, for a run of ``cfg`` (``seed``: a random policy's)."""
    kind = registry.method_kind(name)
    if kind == "baseline":
        return BaselineController(registry.make_weigher(name, cfg, **(method_kwargs or {})))
    if kind == "policy":
        agent = registry.make_policy(name, observation_space(cfg), action_space(cfg, num_classes),
                                     feature_names=feature_names(cfg.features, num_classes),
                                     seed=seed, **(method_kwargs or {}))
    else:
        agent = registry.load_agent(name)
        check_agent_spaces(name, agent, cfg, num_classes)
    return PolicyController(agent, cfg)
