"""Evaluate any trained agent or fixed policy on any environment config (policy transfer).

LAW searches a policy on a small network / subset and transfers it to larger networks and the
full data; :func:`evaluate` runs one agent for N episodes on any env id and config, and returns
per-episode returns, final test accuracies of the weighted target and the uniform reference net,
mean weights of noisy vs clean samples and the actions taken, from which :func:`weight_vs_loss`
reads the learned weighting function K(f, theta) = 1 + tanh(theta . f + b) (LAW eq. 3) as a
function of the (batch-standardised) loss.

Episode ``i`` is reset with seed ``seed + i``: different agents evaluated with the same seed see
identically initialised networks and identical data, a paired comparison.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

import gymnasium as gym
import numpy as np

from reweight_gym import registry
from reweight_gym.agents.policies import make_policy
from reweight_gym.validation import check_number


class Agent(Protocol):
    """What evaluation needs: SB3's ``predict`` and the spaces."""

    observation_space: gym.spaces.Space
    action_space: gym.spaces.Space

    def predict(self, observation: np.ndarray, state: Any = None,
                episode_start: np.ndarray | None = None,
                deterministic: bool = True) -> tuple[np.ndarray, Any]: ...


@dataclass
class EvalResult:
    """Per-episode results of :func:`evaluate` (NaN where the env does not report a value)."""

    env_id: str
    env_kwargs: dict[str, Any]
    returns: list[float] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)
    test_acc_target: list[float] = field(default_factory=list)
    test_acc_reference: list[float] = field(default_factory=list)
    noisy_weight_mean: list[float] = field(default_factory=list)
    clean_weight_mean: list[float] = field(default_factory=list)
    actions: list[list[list[float]]] = field(default_factory=list)
    feature_names: list[str] | None = None
    action_scale: float = 1.0

    @property
    def mean_return(self) -> float:
        return float(np.mean(self.returns)) if self.returns else float("nan")

    def summary(self) -> dict[str, float]:
        def m(xs: list[float]) -> float:
            vals = [x for x in xs if x is not None and math.isfinite(x)]
            return float(np.mean(vals)) if vals else float("nan")

        return {
            "mean_return": self.mean_return,
            "std_return": float(np.std(self.returns)) if self.returns else float("nan"),
            "mean_test_acc_target": m(self.test_acc_target),
            "mean_test_acc_reference": m(self.test_acc_reference),
            "mean_noisy_weight": m(self.noisy_weight_mean),
            "mean_clean_weight": m(self.clean_weight_mean),
        }

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["summary"] = self.summary()
        return d


def _spaces_match(a: gym.spaces.Space, b: gym.spaces.Space) -> bool:
    return type(a) is type(b) and a.shape == b.shape


def check_compatible(agent: Agent, env: gym.Env) -> None:
    """Raise ``ValueError`` when the agent's spaces do not fit the env's."""
    for kind in ("observation_space", "action_space"):
        sa, se = getattr(agent, kind, None), getattr(env, kind)
        if sa is not None and not _spaces_match(sa, se):
            raise ValueError(
                f"incompatible spaces: the agent's {kind} is {sa} but the env's is {se} "
                "(a policy transfers only between configs with the same number of stages and "
                "features; use features='agnostic' to transfer between datasets)"
            )


def _mean_finite(values: list[float]) -> float:
    vals = [float(v) for v in values if v is not None and math.isfinite(float(v))]
    return float(np.mean(vals)) if vals else float("nan")


def evaluate(agent: Agent, env_id: str, env_kwargs: dict[str, Any] | None = None,
             episodes: int = 5, seed: int = 0, deterministic: bool = True,
             on_episode: Callable[[int, float, float, float], None] | None = None
             ) -> EvalResult:
    """Run ``agent`` for ``episodes`` episodes of ``gymnasium.make(env_id, **env_kwargs)``
    (episode ``i`` reset with ``seed + i``) with exploration off (``deterministic=True``);
    ``on_episode(i, return, test_acc_target, test_acc_reference)`` is called as each ends."""
    import reweight_gym  # noqa: F401  (registers the ids)

    check_number("episodes", episodes, 1, integer=True)
    kwargs = dict(env_kwargs or {})
    env = gym.make(env_id, **kwargs)
    try:
        check_compatible(agent, env)
        base = env.unwrapped
        cfg = getattr(base, "config", None)
        res = EvalResult(env_id=env_id, env_kwargs=kwargs,
                         feature_names=list(getattr(base, "feature_names", []) or []) or None,
                         action_scale=float(getattr(cfg, "action_scale", 1.0)))
        for ep in range(episodes):
            obs, _ = env.reset(seed=seed + ep)
            done, total, steps = False, 0.0, 0
            noisy, clean, acts = [], [], []
            info: dict[str, Any] = {}
            while not done:
                action, _ = agent.predict(obs, deterministic=deterministic)
                action = np.asarray(action, dtype=np.float32).reshape(env.action_space.shape)
                acts.append(action.astype(float).tolist())
                obs, reward, terminated, truncated, info = env.step(action)
                total += float(reward)
                steps += 1
                noisy.append(info.get("noisy_weight_mean", float("nan")))
                clean.append(info.get("clean_weight_mean", float("nan")))
                done = terminated or truncated
            res.returns.append(total)
            res.lengths.append(steps)
            res.test_acc_target.append(float(info.get("test_acc_target", float("nan"))))
            res.test_acc_reference.append(float(info.get("test_acc_reference", float("nan"))))
            res.noisy_weight_mean.append(_mean_finite(noisy))
            res.clean_weight_mean.append(_mean_finite(clean))
            res.actions.append(acts)
            if on_episode is not None:
                on_episode(ep, total, res.test_acc_target[-1], res.test_acc_reference[-1])
        return res
    finally:
        env.close()


def weight_vs_loss(action: np.ndarray | list[float], feature_names: list[str] | None,
                   action_scale: float = 1.0,
                   losses: tuple[float, ...] = (-2.0, -1.0, 0.0, 1.0, 2.0)) -> list[float]:
    """The weight K = 1 + tanh(theta . f + b) (LAW eq. 3) of an action as a function of the
    batch-standardised loss z, the other continuous features at their batch mean (0) and the
    label one-hot averaged over classes."""
    a = np.asarray(action, dtype=np.float64).reshape(-1) * action_scale
    theta, b = a[:-1], a[-1]
    names = feature_names or ["loss"] + [f"f{i}" for i in range(1, len(theta))]
    li = names.index("loss") if "loss" in names else 0
    label_idx = [i for i, n in enumerate(names) if n.startswith("label_")]
    label_terms = theta[label_idx] if label_idx else np.zeros(1)
    return [float(np.mean(1.0 + np.tanh(theta[li] * z + label_terms + b))) for z in losses]


# ---------------------------------------------------------------------- loading
def load_agent(spec: str, env: gym.Env | None = None, seed: int = 0) -> Agent:
    """An agent from a fixed policy name (a registered policy, which needs ``env`` for its
    spaces) or a path a registered agent format recognises (an SB3 ``.zip``, an RLlib
    checkpoint, a ``reweight-gym train`` output directory: its newest checkpoint). Raises
    ``FileNotFoundError`` for a missing checkpoint and ``ValueError`` for a bad spec."""
    if spec in registry.policy_names():
        if env is None:
            raise ValueError(f"the fixed policy {spec!r} needs an env to know its spaces")
        return make_policy(spec, env, seed=seed)
    if not os.path.exists(spec):
        if os.sep not in spec and not spec.endswith(".zip"):
            raise ValueError(f"unknown policy {spec!r}: allowed: "
                             f"{', '.join(registry.policy_names())}, or a checkpoint path")
        raise FileNotFoundError(
            f"checkpoint not found: {spec!r} (give an SB3 .zip, an RLlib checkpoint directory, "
            "a training output directory, or a fixed policy: "
            f"{', '.join(registry.policy_names())})")
    return registry.load_agent(spec)
