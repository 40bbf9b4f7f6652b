"""DDPG's RLModule on RLlib's new API stack: deterministic actor, critic and target networks.

- actor mu(s) in [-1, 1] (tanh output; RLlib's ``normalize_actions`` maps it to the env's box);
- critic Q(s, a);
- target copies mu', Q' (``TargetNetworkAPI``) for the TD target, updated by Polyak averaging in
  the learner (DDPG's; LAW computes the target with the online networks);
- exploration: Gaussian noise N(0, sigma^2) added to mu(s) in ``_forward_exploration`` only
  (LAW's exploration noise); ``_forward_inference`` is the noise-free deterministic policy.

LAW (Li et al., AAAI 2020) uses 4-layer MLPs for both networks (3 hidden layers + output).
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.learner.utils import make_target_network
from ray.rllib.core.rl_module.apis import InferenceOnlyAPI, TargetNetworkAPI
from ray.rllib.core.rl_module.torch.torch_rl_module import TorchRLModule
from torch import nn

Q_VALUES = "q_values"
Q_TARGET_NEXT = "q_target_next"
Q_OF_ACTOR = "q_of_actor"
DEFAULT_HIDDENS = (64, 64, 64)


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
    """Deterministic actor + critic (+ targets) for DDPG (LAW eqs. 10-13, learner.py).

    ``model_config`` keys: ``actor_hiddens``, ``critic_hiddens`` (default 3 x 64, LAW's
    4-layer MLPs) and ``exploration_noise`` (sigma of the Gaussian action noise, in normalised
    action units).
    """

    framework: str = "torch"

    def setup(self) -> None:
        obs_space, act_space = self.observation_space, self.action_space
        if not (isinstance(obs_space, gym.spaces.Box) and isinstance(act_space, gym.spaces.Box)):
            raise ValueError(
                f"incompatible spaces for DDPG: needs Box observations and Box actions, got "
                f"observation_space={obs_space!r}, action_space={act_space!r}"
            )
        cfg = self.model_config or {}
        self.obs_dim = int(np.prod(obs_space.shape))
        self.act_dim = int(np.prod(act_space.shape))
        self.exploration_noise = float(cfg.get("exploration_noise", 0.1))
        actor_h = tuple(cfg.get("actor_hiddens", DEFAULT_HIDDENS))
        critic_h = tuple(cfg.get("critic_hiddens", DEFAULT_HIDDENS))
        self.actor = nn.Sequential(mlp(self.obs_dim, actor_h, self.act_dim), nn.Tanh())
        if not self.inference_only:
            self.critic = mlp(self.obs_dim + self.act_dim, critic_h, 1)

    # ---------------------------------------------------------------- helpers
    def _obs(self, x: torch.Tensor) -> torch.Tensor:
        return x.reshape(x.shape[0], -1).float()

    def q(self, obs: torch.Tensor, actions: torch.Tensor, target: bool = False) -> torch.Tensor:
        net = self.target_critic if target else self.critic
        a = actions.reshape(actions.shape[0], -1).float()
        return net(torch.cat([self._obs(obs), a], dim=-1)).squeeze(-1)

    # ---------------------------------------------------------------- TargetNetworkAPI
    def make_target_networks(self) -> None:
        self.target_actor = make_target_network(self.actor)
        self.target_critic = make_target_network(self.critic)

    def get_target_network_pairs(self) -> list[tuple[nn.Module, nn.Module]]:
        return [(self.actor, self.target_actor), (self.critic, self.target_critic)]

    def forward_target(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        """Q'(s', mu'(s')) for the TD target (LAW eq. 12, with target networks)."""
        next_obs = batch[Columns.NEXT_OBS]
        return {Q_TARGET_NEXT: self.q(next_obs, self.target_actor(self._obs(next_obs)),
                                      target=True)}

    # ---------------------------------------------------------------- InferenceOnlyAPI
    def get_non_inference_attributes(self) -> list[str]:
        return ["critic", "target_critic", "target_actor"]

    # ---------------------------------------------------------------- forward passes
    def _forward_inference(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        with torch.no_grad():
            return {Columns.ACTIONS: self.actor(self._obs(batch[Columns.OBS]))}

    def _forward_exploration(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        with torch.no_grad():
            a = self.actor(self._obs(batch[Columns.OBS]))
            if self.exploration_noise > 0:
                a = (a + self.exploration_noise * torch.randn_like(a)).clamp(-1.0, 1.0)
            return {Columns.ACTIONS: a}

    def _forward_train(self, batch: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
        obs = self._obs(batch[Columns.OBS])
        out: dict[str, Any] = {Q_VALUES: self.q(obs, batch[Columns.ACTIONS])}
        with torch.no_grad():
            out.update(self.forward_target(batch))
        # Q(s, mu(s)) for the policy gradient (eq. 13): gradients reach the actor only, the
        # critic's parameters are frozen for this pass (not detached: the path through the
        # critic to the action must stay differentiable).
        params = list(self.critic.parameters())
        for p in params:
            p.requires_grad_(False)
        try:
            out[Q_OF_ACTOR] = self.q(obs, self.actor(obs))
        finally:
            for p in params:
                p.requires_grad_(True)
        return out
