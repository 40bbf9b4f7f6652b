"""DDPG's TorchLearner: the TD target (LAW eq. 12), the critic's TD loss (eq. 11, its gradient
eq. 10) and the actor's deterministic policy gradient (eq. 13), with DDPG's Polyak-averaged target
networks (not in LAW, which computes the TD target with the online networks; ``tau=1.0``
reproduces that)."""

from __future__ import annotations

from typing import Any

import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.learner.learner import POLICY_LOSS_KEY
from ray.rllib.core.learner.torch.torch_learner import TorchLearner
from ray.rllib.core.learner.utils import update_target_network
from ray.rllib.core.rl_module.apis import TargetNetworkAPI
from ray.rllib.utils.typing import ModuleID, ParamDict, TensorType

from agents.rllib.rl_module import Q_OF_ACTOR, Q_TARGET_NEXT, Q_VALUES

QF_LOSS_KEY = "qf_loss"


class DDPGTorchLearner(TorchLearner):
    """Two Adam optimizers (actor: ``actor_lr``, LAW 1e-5; critic: ``critic_lr``, LAW 1e-4).

    Per minibatch:
    - TD target y = r + gamma (1 - terminated) Q'(s', mu'(s'))  (eq. 12, with target networks);
    - critic TD loss mean (Q(s, a) - y)^2  (eq. 11; its gradient is eq. 10);
    - actor loss -mean Q(s, mu(s)), the deterministic policy gradient (eq. 13); the critic is
      frozen in that pass, so both losses can be summed and back-propagated once;
    - after each gradient step, Polyak averaging of the targets with ``tau`` (DDPG's, not LAW's).
    """

    def build(self) -> None:
        super().build()
        self.module.foreach_module(
            lambda mid, mod: (mod.make_target_networks()
                              if isinstance(mod, TargetNetworkAPI) else None)
        )

    @classmethod
    def rl_module_required_apis(cls) -> list[type]:
        return [TargetNetworkAPI]

    def configure_optimizers_for_module(self, module_id: ModuleID, config: Any = None) -> None:
        module = self._module[module_id]
        actor_params = self.get_parameters(module.actor)
        critic_params = self.get_parameters(module.critic)
        self.register_optimizer(module_id=module_id, optimizer_name="critic",
                                optimizer=torch.optim.Adam(critic_params),
                                params=critic_params, lr_or_lr_schedule=config.critic_lr)
        self.register_optimizer(module_id=module_id, optimizer_name="actor",
                                optimizer=torch.optim.Adam(actor_params),
                                params=actor_params, lr_or_lr_schedule=config.actor_lr)

    def compute_loss_for_module(self, *, module_id: ModuleID, config: Any,
                                batch: dict[str, Any], fwd_out: dict[str, TensorType]
                                ) -> TensorType:
        q = fwd_out[Q_VALUES]
        not_done = 1.0 - batch[Columns.TERMINATEDS].float()
        y = (batch[Columns.REWARDS].float() + config.gamma * not_done * fwd_out[Q_TARGET_NEXT]
             ).detach()  # eq. 12
        critic_loss = torch.mean((q - y) ** 2)  # eq. 11
        actor_loss = -torch.mean(fwd_out[Q_OF_ACTOR])  # eq. 13
        self.metrics.log_dict(
            {POLICY_LOSS_KEY: actor_loss, QF_LOSS_KEY: critic_loss,
             "q_mean": torch.mean(q), "td_error_mean": torch.mean(torch.abs(q - y))},
            key=module_id, window=1,
        )
        return actor_loss + critic_loss

    def apply_gradients(self, gradients_dict: ParamDict) -> None:
        """Optimizer steps (eqs. 10, 13), then the Polyak target updates after every gradient
        step."""
        super().apply_gradients(gradients_dict)
        for module_id, module in self.module._rl_modules.items():
            unwrapped = module.unwrapped()
            if not isinstance(unwrapped, TargetNetworkAPI):
                continue
            tau = self.config.get_config_for_module(module_id).tau
            for main_net, target_net in unwrapped.get_target_network_pairs():
                update_target_network(main_net=main_net, target_net=target_net, tau=tau)
