"""Fixed weighting policies with SB3's ``predict`` interface, usable wherever an agent is.

An action of the LAW environment is ``[theta (one entry per feature), b]`` in [-1, 1], mapped to
the weighting function K(f, theta) = 1 + tanh(theta . f + b) (LAW eq. 3). The fixed policies:

- ``uniform``: the zero action, every weight exactly 1 (plain training, reward exactly 0);
- ``easy_first``: ``-strength`` on the loss feature (weight decreasing in the loss: small-loss,
  "easy" samples count more, as self-paced / curriculum learning);
- ``hard_first``: ``+strength`` on the loss feature (weight increasing in the loss, as
  focal loss / boosting);
- ``random``: uniform samples of the action space, from a seeded generator.

All share :class:`FixedPolicy`'s ``predict(obs, state=None, episode_start=None,
deterministic=True) -> (action, state)``, so evaluation treats agents and policies alike.
``POLICIES`` names them; :func:`register` registers them with :mod:`reweight_gym.registry`, where
the benchmark's methods, ``reweight-gym episode --policy`` and ``reweight-gym evaluate`` find
them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, cast

import gymnasium as gym
import numpy as np

from reweight_gym.registry import make_policy as registry_make_policy
from reweight_gym.registry import register_policy
from reweight_gym.validation import check_number


class FixedPolicy:
    """Base class: a policy that does not learn. Subclasses implement :meth:`_action`."""

    name = "fixed"

    def __init__(self, observation_space: gym.spaces.Space, action_space: gym.spaces.Space) -> None:
        if not isinstance(action_space, gym.spaces.Box) or len(action_space.shape) != 1:
            raise ValueError(f"incompatible action space {action_space!r}: fixed weighting "
                             "policies need a 1-D Box action space [theta..., b]")
        self.observation_space = observation_space
        self.action_space = action_space

    def _action(self) -> np.ndarray:
        raise NotImplementedError  # pragma: no cover - abstract

    def predict(self, observation: np.ndarray, state: Any = None,
                episode_start: np.ndarray | None = None,
                deterministic: bool = True) -> tuple[np.ndarray, Any]:
        """Action(s) for one observation or a batch (first axis) of observations."""
        obs = np.asarray(observation)
        obs_shape = self.observation_space.shape or ()
        if obs.shape == tuple(obs_shape):
            return self._action(), state
        if obs.ndim == len(obs_shape) + 1 and obs.shape[1:] == tuple(obs_shape):
            return np.stack([self._action() for _ in range(obs.shape[0])]), state
        raise ValueError(f"incompatible observation shape {obs.shape}: the policy expects "
                         f"{tuple(obs_shape)} or a batch of them")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(action_dim={self.action_space.shape[0]})"


class UniformPolicy(FixedPolicy):
    """The zero action: theta = 0, b = 0, so K = 1 for every sample (plain training)."""

    name = "uniform"

    def __init__(self, observation_space: gym.spaces.Space, action_space: gym.spaces.Space, *,
                 feature_names: Sequence[str] | None = None, seed: int | None = None) -> None:
        super().__init__(observation_space, action_space)
        del feature_names, seed  # the zero action needs neither

    def _action(self) -> np.ndarray:
        return np.zeros(self.action_space.shape, dtype=self.action_space.dtype)


class LossSlopePolicy(FixedPolicy):
    """``slope`` on the loss feature, 0 elsewhere: K = 1 + tanh(slope * scale * z_loss). The
    loss entry of the action is found in ``feature_names`` (LAW's order puts it first)."""

    slope_sign = 0.0

    def __init__(self, observation_space: gym.spaces.Space, action_space: gym.spaces.Space, *,
                 feature_names: Sequence[str] | None = None, seed: int | None = None,
                 strength: float = 1.0) -> None:
        super().__init__(observation_space, action_space)
        del seed  # deterministic
        n = int(self.action_space.shape[0])
        loss_index = loss_feature_index(feature_names)
        if not (0 <= loss_index < n - 1):
            raise ValueError(f"invalid loss_index={loss_index}: the action has {n - 1} feature "
                             "entries and the bias last")
        check_number("strength", strength, 0.0, 1.0, lo_open=True)
        self.loss_index = loss_index
        self.strength = float(strength)

    def _action(self) -> np.ndarray:
        a = np.zeros(self.action_space.shape, dtype=self.action_space.dtype)
        a[self.loss_index] = self.slope_sign * self.strength
        return a


class EasyFirstPolicy(LossSlopePolicy):
    """Weight decreasing in the loss (negative theta on the loss feature)."""

    name = "easy_first"
    slope_sign = -1.0


class HardFirstPolicy(LossSlopePolicy):
    """Weight increasing in the loss (positive theta on the loss feature)."""

    name = "hard_first"
    slope_sign = 1.0


class RandomPolicy(FixedPolicy):
    """Uniform samples of the action space from ``numpy.random.default_rng(seed)``.
    ``deterministic`` is ignored: randomness is the policy."""

    name = "random"

    def __init__(self, observation_space: gym.spaces.Space, action_space: gym.spaces.Space, *,
                 feature_names: Sequence[str] | None = None, seed: int | None = 0) -> None:
        super().__init__(observation_space, action_space)
        del feature_names
        self.seed = seed
        self.rng = np.random.default_rng(seed)

    def _action(self) -> np.ndarray:
        low, high = self.action_space.low, self.action_space.high
        return self.rng.uniform(low, high).astype(self.action_space.dtype)


def loss_feature_index(feature_names: Sequence[str] | None) -> int:
    """Index of the ``loss`` feature in the action (LAW's order puts it first)."""
    if feature_names is None:
        return 0
    names = list(feature_names)
    if "loss" not in names:
        raise ValueError(f"incompatible features {names}: easy_first / hard_first need a "
                         "'loss' feature")
    return names.index("loss")


def _spaces_and_features(env: Any) -> tuple[gym.spaces.Space, gym.spaces.Space,
                                             Sequence[str] | None]:
    base = getattr(env, "unwrapped", env)
    names = getattr(base, "feature_names", None)
    if names is None and hasattr(env, "get_attr"):  # a VecEnv
        try:
            names = env.get_attr("feature_names", indices=[0])[0]
        except AttributeError:
            names = None
    return env.observation_space, env.action_space, names


class ConstantPolicy(FixedPolicy):
    """The same action ``[theta..., b]`` at every stage (a fixed, stage-independent schedule):
    the strongest fixed schedule an agent is compared with, once searched
    (:func:`reweight_gym.agents.protocol.constant_action_search_set`)."""

    name = "constant"

    def __init__(self, observation_space: gym.spaces.Space, action_space: gym.spaces.Space,
                 action: Sequence[float] | np.ndarray | None = None, *,
                 feature_names: Sequence[str] | None = None, seed: int | None = None) -> None:
        super().__init__(observation_space, action_space)
        del feature_names, seed
        a = np.asarray(action if action is not None else [], dtype=np.float64).reshape(-1)
        if a.shape != action_space.shape or not np.all(np.isfinite(a)) or np.abs(a).max() > 1:
            n = cast("tuple[int, ...]", action_space.shape)[0]  # a Box's shape
            raise ValueError(f"invalid action={list(a)}: need {n} finite values in [-1, 1]")
        self.action = a.astype(action_space.dtype)

    def _action(self) -> np.ndarray:
        return self.action.copy()


#: The fixed policies by name: what ``register`` registers (``reweight_gym.registry``).
POLICIES: dict[str, type[FixedPolicy]] = {
    "uniform": UniformPolicy, "easy_first": EasyFirstPolicy, "hard_first": HardFirstPolicy,
    "random": RandomPolicy, "constant": ConstantPolicy,
}
POLICY_NAMES = tuple(POLICIES)


def register() -> None:
    """Register the fixed policies (the ``reweight_gym.plugins`` entry point ``policies``)."""
    for name, cls in POLICIES.items():
        register_policy(name, cls)


def make_policy(name: str, env: Any = None, *, observation_space: gym.spaces.Space | None = None,
                action_space: gym.spaces.Space | None = None,
                feature_names: Sequence[str] | None = None, seed: int | None = 0,
                **kwargs: Any) -> Any:
    """A registered fixed policy by name for an env (or a VecEnv), or for explicit spaces (+
    ``feature_names`` to locate the loss entry): :func:`reweight_gym.registry.make_policy`."""
    if env is not None:
        observation_space, action_space, env_names = _spaces_and_features(env)
        feature_names = feature_names if feature_names is not None else env_names
    if observation_space is None or action_space is None:
        raise ValueError("make_policy needs an env or both observation_space and action_space")
    return registry_make_policy(name, observation_space, action_space,
                                feature_names=feature_names, seed=seed, **kwargs)
