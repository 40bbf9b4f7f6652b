"""The settings of LAW's DDPG agent: one frozen, validated dataclass for every library.

:class:`DDPGSettings` is what SB3's :class:`~reweight_gym.agents.sb3.LAWDDPG`, RLlib's
:class:`~reweight_gym.agents.rllib.DDPGConfig` and ``reweight-gym train`` use, under the same
names (``LAWDDPG``'s keyword arguments, the ``.training()`` keys of ``DDPGConfig``); it is
validated when it is made, like :class:`~reweight_gym.config.EnvConfig`, and a bad value is one
``ValueError`` naming the field, the value and what is allowed.

Two named settings:

- :data:`DDPG_DEFAULTS`, the package's defaults, chosen by the agents' evaluation protocol on its
  validation episodes (:mod:`reweight_gym.agents.protocol`; the measurements are in the docs'
  results pages). Against LAW they change the learning rates and add TD3's two remedies for
  Q over-estimation (Fujimoto et al., 2018): twin critics with the minimum in the TD target
  (``n_critics=2``) and target-policy smoothing (``target_policy_noise``), without TD3's delayed
  actor updates. SB3 builds its DDPG the same way, as TD3 with some of these off: with
  ``n_critics=1`` and ``target_policy_noise=0`` the agent is DDPG.
- :data:`LAW_DDPG`, LAW's own DDPG (Li et al., AAAI 2020, Sec. 3.3, Algorithm 1): Adam 1e-5
  (actor) and 1e-4 (critic), one critic, no smoothing. LAW gives no FDU epoch count or minibatch
  size; those are the defaults'.

LAW's Full Data Update (``full_data_update``, Algorithm 1) is on in both: ``fdu_epochs`` epochs
over the whole buffer in minibatches of ``fdu_batch_size`` after every round of episodes,
starting after ``learning_starts_episodes`` episodes of random actions
(:mod:`reweight_gym.agents.fdu`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from reweight_gym.validation import check_bool, check_number, invalid


@dataclass(frozen=True)
class DDPGSettings:
    """LAW's DDPG (eqs. 10-13) with the Full Data Update.

    Args:
        actor_lr, critic_lr: Adam learning rates of the actor and the critic(s).
        net_arch: hidden sizes of actor and critics (LAW: 4 layers, i.e. 3 hidden).
        noise_sigma: standard deviation of the Gaussian exploration noise on the action, in
            half action ranges.
        n_critics: critics; with 2 the TD target (eq. 12) takes their minimum (TD3).
        target_policy_noise, target_noise_clip: TD3's target-policy smoothing (0: off).
        action_l2: weight of ``||mu(s)||^2`` in the actor loss, a pull towards the zero action
            (uniform weights).
        full_data_update: LAW's FDU (Algorithm 1) instead of one sampled minibatch per step.
        fdu_epochs: epochs over all buffered transitions at each FDU update.
        fdu_batch_size: minibatch size inside an FDU epoch (``None``: the library's batch size).
        learning_starts_episodes: episodes (summed over the parallel searchers) of uniform
            random actions before the first update.
        buffer_size: transitions kept in the replay buffer.
        gamma: discount factor of the TD target.
        tau: Polyak coefficient of the target networks (1.0: LAW's online TD target).
    """

    actor_lr: float = 1e-4
    critic_lr: float = 1e-3
    net_arch: tuple[int, ...] = (64, 64, 64)
    noise_sigma: float = 0.2
    n_critics: int = 2
    target_policy_noise: float = 0.1
    target_noise_clip: float = 0.5
    action_l2: float = 0.0
    full_data_update: bool = True
    fdu_epochs: int = 4
    fdu_batch_size: int | None = 64
    learning_starts_episodes: int = 20
    buffer_size: int = 20_000
    gamma: float = 0.99
    tau: float = 0.005

    def __post_init__(self) -> None:
        net_arch = self.net_arch
        if isinstance(net_arch, (str, bytes)) or not isinstance(net_arch, Sequence) or \
                not net_arch or any(isinstance(h, bool) or not isinstance(h, int) or h < 1
                                    for h in net_arch):
            raise invalid("net_arch", net_arch, "must be a non-empty list of layer sizes >= 1")
        object.__setattr__(self, "net_arch", tuple(net_arch))
        for name in ("actor_lr", "critic_lr"):
            check_number(name, getattr(self, name), 0.0, lo_open=True)
        for name in ("noise_sigma", "target_policy_noise", "target_noise_clip", "action_l2"):
            check_number(name, getattr(self, name), 0.0)
        check_number("n_critics", self.n_critics, 1, integer=True)
        check_bool("full_data_update", self.full_data_update)
        check_number("fdu_epochs", self.fdu_epochs, 1, integer=True)
        check_number("fdu_batch_size", self.fdu_batch_size, 1, integer=True, optional=True)
        check_number("learning_starts_episodes", self.learning_starts_episodes, 0, integer=True)
        check_number("buffer_size", self.buffer_size, 1, integer=True)
        check_number("gamma", self.gamma, 0.0, 1.0)
        check_number("tau", self.tau, 0.0, 1.0, lo_open=True)

    @classmethod
    def names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    def replace(self, **changes: Any) -> DDPGSettings:
        """A validated copy with some fields changed (an unknown name is a ``ValueError``)."""
        unknown = sorted(set(changes) - set(self.names()))
        if unknown:
            raise ValueError(f"unknown DDPG setting(s) {unknown}: allowed: "
                             f"{', '.join(self.names())}")
        return dataclasses.replace(self, **changes)

    def split(self, kwargs: Mapping[str, Any]) -> tuple[DDPGSettings, dict[str, Any]]:
        """``kwargs`` applied: (these settings with the known names changed, the other keys)."""
        mine = {k: v for k, v in kwargs.items() if k in self.names()}
        return self.replace(**mine), {k: v for k, v in kwargs.items() if k not in mine}

    def to_dict(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["net_arch"] = list(self.net_arch)
        return d


#: The package's defaults (module docstring).
DDPG_DEFAULTS = DDPGSettings()
#: LAW's DDPG (module docstring).
LAW_DDPG = DDPGSettings(actor_lr=1e-5, critic_lr=1e-4, n_critics=1, target_policy_noise=0.0)
#: The named settings of ``reweight-gym train --settings``.
NAMED_SETTINGS: dict[str, DDPGSettings] = {"default": DDPG_DEFAULTS, "law": LAW_DDPG}
