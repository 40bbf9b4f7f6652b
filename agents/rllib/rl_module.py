"""DDPG's RLModule on RLlib's new API stack: deterministic actor, critics and target networks.

- actor mu(s) in [-1, 1] (tanh output; RLlib's ``normalize_actions`` maps it to the env's box);
- ``n_critics`` critics Q_i(s, a) (one in LAW's DDPG; two for TD3's clipped double-Q);
- target copies mu', Q_i' (``TargetNetworkAPI``) for the TD target, updated by Polyak averaging in
  the learner (DDPG's; LAW, eq. 12, computes the target with the online networks);
- exploration: Gaussian noise N(0, sigma^2) added to mu(s) in ``_forward_exploration`` only
  (LAW's exploration noise); ``_forward_inference`` is the noise-free deterministic policy.

LAW (Li et al., AAAI 2020) uses 4-layer MLPs for both networks (3 hidden layers + output).
"""

from __future__ import annotations

from typing import Any, cast

import gymnasium as gym
import numpy as np
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.learner.utils import make_target_network
from ray.rllib.core.rl_module.apis import InferenceOnlyAPI, TargetNetworkAPI
from ray.rllib.core.rl_module.torch.torch_rl_module import TorchRLModule
from torch import nn

from reweight_gym.agents.settings import DDPG_DEFAULTS

Q_VALUES = "q_values"
Q_OF_ACTOR = "q_of_actor"
ACTOR_ACTIONS = "actor_actions"


def mlp(in_dim: int, hiddens: tuple[int, ...] | list[int], out_dim: int,
        activation: type[nn.Module] = nn.ReLU) -> nn.Sequential:
    """``len(hiddens) + 1`` linear layers with ``activation`` in between."""
    layers: list[nn.Module] = []
    last = in_dim
    for h in hiddens:
        layers += [nn.Linear(last, int(h)), activation()]
        last = int(h)
    layers.append(nn.Linear(last, out_dim))
    return nn.Sequential(*layers)


class DDPGTorchRLModule(TorchRLModule, TargetNetworkAPI, InferenceOnlyAPI):
    """Deterministic actor + critics (+ targets) for DDPG (LAW eqs. 10-13, learner.py).

    ``model_config`` keys (set from ``DDPGConfig``): ``net_arch`` (hidden sizes of actor and
    critics), ``n_critics`` and ``noise_sigma`` (sigma of the Gaussian action noise, in
    normalised action units, i.e. half the action range).
    """

    framework: str = "torch"

    def setup(self) -> None:
        obs_space, act_space = self.observation_space, self.action_space
        if not (isinstance(obs_space, gym.spaces.Box) and isinstance(act_space, gym.spaces.Box)):
            raise ValueError(
                f"incompatible spaces for DDPG: needs Box observations and Box actions, got "
                f"observation_space={obs_space!r}, action_space={act_space!r}"
            )
        cfg = cast("dict[str, Any]", self.model_config or {})  # DDPGConfig sets a dict
        self.obs_dim = int(np.prod(obs_space.shape))
        self.act_dim = int(np.prod(act_space.shape))
        self.noise_sigma = float(cfg.get("noise_sigma", DDPG_DEFAULTS.noise_sigma))
        hiddens = tuple(cfg.get("net_arch", DDPG_DEFAULTS.net_arch))
        self.actor = nn.Sequential(mlp(self.obs_dim, hiddens, self.act_dim), nn.Tanh())
        if not self.inference_only:
            n = int(cfg.get("n_critics", DDPG_DEFAULTS.n_critics))
            self.critics = nn.ModuleList(
                [mlp(self.obs_dim + self.act_dim, hiddens, 1) for _ in range(n)])

    # ---------------------------------------------------------------- helpers
    def _obs(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], -1).float()

    def q(self, obs: torch.Tensor, actions: torch.Tensor, target: bool = False) -> torch.Tensor:
        """Q_i(s, a) of every critic (or target critic), shape ``(n_critics, batch)``."""
        nets = self.target_critics if target else self.critics
        x = torch.cat([self._obs(obs), actions.reshape(actions.shape[0], -1).float()], dim=-1)
        return torch.stack([net(x).squeeze(-1) for net in nets])

    def q1(self, obs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
        """Q_1(s, a) of the first critic, the one the actor follows (eq. 13)."""
        x = torch.cat([self._obs(obs), actions.reshape(actions.shape[0], -1).float()], dim=-1)
        return self.critics[0](x).squeeze(-1)

    def target_action(self, obs: torch.Tensor) -> torch.Tensor:
        """mu'(s) of the target actor."""
        return self.target_actor(self._obs(obs))

    # ---------------------------------------------------------------- TargetNetworkAPI
    def make_target_networks(self) -> None:
        self.target_actor = make_target_network(self.actor)
        self.target_critics = cast(nn.ModuleList, make_target_network(self.critics))  # a copy

    def get_target_network_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return [(self.actor, self.target_actor), (self.critics, self.target_critics)]

    def forward_target(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        """mu'(s') (the learner adds TD3's target smoothing and takes the minimum over the
        target critics for eq. 12)."""
        return {ACTOR_ACTIONS: self.target_action(batch[Columns.NEXT_OBS])}

    # ---------------------------------------------------------------- InferenceOnlyAPI
    def get_non_inference_attributes(self) -> list[str]:
        return ["critics", "target_critics", "target_actor"]

    # ---------------------------------------------------------------- forward passes
    def _forward_inference(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        with torch.no_grad():
            return {Columns.ACTIONS: self.actor(self._obs(batch[Columns.OBS]))}

    def _forward_exploration(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        with torch.no_grad():
            a = self.actor(self._obs(batch[Columns.OBS]))
            if self.noise_sigma > 0:
                a = (a + self.noise_sigma * torch.randn_like(a)).clamp(-1.0, 1.0)
            return {Columns.ACTIONS: a}

    def _forward_train(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        obs = self._obs(batch[Columns.OBS])
        out: dict[str, Any] = {Q_VALUES: self.q(obs, batch[Columns.ACTIONS])}
        # Q_1(s, mu(s)) for the policy gradient (eq. 13): gradients reach the actor only, the
        # critics' parameters are frozen for this pass (not detached: the path through the
        # critic to the action must stay differentiable).
        params = list(self.critics.parameters())
        for p in params:
            p.requires_grad_(False)
        try:
            mu = self.actor(obs)
            out[ACTOR_ACTIONS] = mu
            out[Q_OF_ACTOR] = self.q1(obs, mu)
        finally:
            for p in params:
                p.requires_grad_(True)
        return out
