"""DDPG's TorchLearner: the TD target (LAW eq. 12), the critics' TD loss (eq. 11, its gradient
eq. 10) and the actor's deterministic policy gradient (eq. 13), with DDPG's Polyak-averaged target
networks (a documented deviation: LAW has no target networks and computes the TD target with the
online networks; ``tau=1.0`` reproduces that)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import torch
from ray.rllib.core.columns import Columns
from ray.rllib.core.learner.learner import POLICY_LOSS_KEY
from ray.rllib.core.learner.torch.torch_learner import TorchLearner
from ray.rllib.core.learner.utils import update_target_network
from ray.rllib.core.rl_module.apis import TargetNetworkAPI
from ray.rllib.utils.typing import ModuleID, ParamDict, TensorType

from reweight_gym.agents.rllib.rl_module import ACTOR_ACTIONS, Q_OF_ACTOR, Q_VALUES

if TYPE_CHECKING:
    from reweight_gym.agents.rllib.ddpg import DDPGConfig

QF_LOSS_KEY = "qf_loss"


class DDPGTorchLearner(TorchLearner):
    """Two Adam optimizers (actor: ``actor_lr``; critics: ``critic_lr``).

    Per minibatch (the same step as SB3's ``LAWDDPG._ddpg_step``):

    - TD target y = r + gamma (1 - terminated) min_i Q_i'(s', mu'(s') + eps) (eq. 12, with
      target networks; the minimum over ``n_critics`` target critics and the clipped target
      smoothing noise eps ~ clip(N(0, target_policy_noise^2), +-target_noise_clip) are TD3's
      options, off in LAW's DDPG);
    - critics' TD loss sum_i mean (Q_i(s, a) - y)^2 (eq. 11; its gradient is eq. 10);
    - actor loss -mean Q_1(s, mu(s)) (eq. 13) + ``action_l2`` mean ||mu(s)||^2; the critics are
      frozen in that pass, so both losses are summed and back-propagated once. Unlike SB3, which
      steps the critic first and then computes the actor loss with the updated critic, both
      gradients here come from the critics before the step;
    - after each gradient step, Polyak averaging of the targets with ``tau``.

    The target smoothing noise comes from the learner's own generator, seeded with the config's
    ``seed``.
    """

    def build(self) -> None:
        super().build()
        self.module.foreach_module(  # Ray's type of func has a third argument it never passes
            lambda mid, mod: (mod.make_target_networks()  # type: ignore[arg-type,misc]
                              if isinstance(mod, TargetNetworkAPI) else None)
        )
        self._noise = torch.Generator()
        if self.config.seed is not None:
            self._noise.manual_seed(int(self.config.seed))

    @classmethod
    def rl_module_required_apis(cls) -> list[type]:
        return [TargetNetworkAPI]

    def configure_optimizers_for_module(self, module_id: ModuleID, config: Any = None) -> None:
        module: Any = self.module[module_id]  # a DDPGTorchRLModule (or its DDP wrapper)
        actor_params = self.get_parameters(module.actor)
        critic_params = self.get_parameters(module.critics)
        self.register_optimizer(module_id=module_id, optimizer_name="critic",
                                optimizer=torch.optim.Adam(critic_params),
                                params=critic_params, lr_or_lr_schedule=config.critic_lr)
        self.register_optimizer(module_id=module_id, optimizer_name="actor",
                                optimizer=torch.optim.Adam(actor_params),
                                params=actor_params, lr_or_lr_schedule=config.actor_lr)

    def _td_target(self, module: Any, config: Any, batch: dict[str, Any]) -> torch.Tensor:
        with torch.no_grad():
            next_obs = batch[Columns.NEXT_OBS]
            next_a = module.target_action(next_obs)
            if config.target_policy_noise > 0:
                eps = torch.randn(next_a.shape, generator=self._noise).to(next_a.device)
                eps = (eps * config.target_policy_noise).clamp(-config.target_noise_clip,
                                                               config.target_noise_clip)
                next_a = (next_a + eps).clamp(-1.0, 1.0)
            next_q = module.q(next_obs, next_a, target=True).min(dim=0).values
            not_done = 1.0 - batch[Columns.TERMINATEDS].float()
            return batch[Columns.REWARDS].float() + config.gamma * not_done * next_q  # eq. 12

    def compute_loss_for_module(self, *, module_id: ModuleID, config: Any,
                                batch: dict[str, Any], fwd_out: dict[str, TensorType]
                                ) -> TensorType:
        module = self.module[module_id].unwrapped()
        y = self._td_target(module, config, batch)
        qs = cast(torch.Tensor, fwd_out[Q_VALUES])  # (n_critics, batch)
        critic_loss = ((qs - y.unsqueeze(0)) ** 2).mean(dim=1).sum()  # eq. 11
        actor_loss = -torch.mean(cast(torch.Tensor, fwd_out[Q_OF_ACTOR]))  # eq. 13
        if config.action_l2 > 0:
            actor_loss = actor_loss + config.action_l2 * (
                cast(torch.Tensor, fwd_out[ACTOR_ACTIONS]) ** 2).sum(dim=1).mean()
        self.metrics.log_dict(
            {POLICY_LOSS_KEY: actor_loss, QF_LOSS_KEY: critic_loss,
             "q_mean": torch.mean(qs[0]), "td_error_mean": torch.mean(torch.abs(qs[0] - y))},
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
            cfg = cast("DDPGConfig", self.config.get_config_for_module(module_id))
            tau = cfg.tau
            for main_net, target_net in unwrapped.get_target_network_pairs():
                update_target_network(main_net=main_net, target_net=target_net, tau=tau)
