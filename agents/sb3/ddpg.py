"""``LAWDDPG``: LAW's DDPG with the Full Data Update, on Stable-Baselines3.

LAW (Li et al., AAAI 2020) searches the weighting policy with DDPG:

- eq. 12: the TD target ``y = r + gamma * (1 - done) * Q(s', mu(s'))``, with the online networks;
- eq. 11: the critic's TD loss ``L(phi) = mean (y - Q(s, a))^2``, and eq. 10 its gradient;
- eq. 13: the actor's deterministic policy gradient
  ``grad J = mean grad_a Q(s, a)|_{a = mu(s)} grad mu(s)``.

Built the way SB3 builds its own DDPG: on :class:`~stable_baselines3.TD3` with the actor updated
at every step (``policy_delay=1``). The settings are :class:`~reweight_gym.agents.settings.
DDPGSettings`; its defaults switch on two of TD3's additions (twin critics, target-policy
smoothing), ``settings=LAW_DDPG`` is LAW's DDPG (one critic, no smoothing).

A documented deviation: LAW has no target networks. Here, as in DDPG (Lillicrap et al., 2016) and
SB3, the TD target uses target networks Q', mu', soft-updated after every gradient step
(``phi' <- tau phi + (1 - tau) phi'``), which stabilises the bootstrapped target; ``tau=1.0``
recovers LAW's online target.

LAW's strategy model: actor and critic are MLPs with 4 layers (3 hidden layers and the output
layer), Adam, Gaussian exploration noise on the action, N_a parallel searchers (here: the N
environments of a ``VecEnv``, each a complete training run) feeding one shared model, and the
*Full Data Update* (FDU, Algorithm 1): after every round of episodes the networks are trained for
``fdu_epochs`` epochs over *all* transitions in the buffer instead of on one sampled minibatch.
The schedule (rounds, exploration episodes, minibatch order) is :mod:`reweight_gym.agents.fdu`,
shared with RLlib's DDPG. ``full_data_update=False`` gives SB3's plain minibatch update.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import torch as th
from stable_baselines3 import TD3
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.noise import NormalActionNoise
from stable_baselines3.common.utils import polyak_update
from stable_baselines3.common.vec_env import VecEnv
from torch.nn import functional as F

from reweight_gym.agents.fdu import FDUSchedule, episode_length, visits
from reweight_gym.agents.sb3.callbacks import LAWInfoCallback
from reweight_gym.agents.settings import DDPG_DEFAULTS, DDPGSettings
from reweight_gym.validation import check_number, invalid


class LAWDDPG(TD3):
    """DDPG with LAW's Full Data Update (eqs. 10-13, Algorithm 1).

    ``LAWDDPG("MlpPolicy", env)`` trains with the package's defaults (``DDPG_DEFAULTS``);
    ``settings=LAW_DDPG`` with LAW's; every field of
    :class:`~reweight_gym.agents.settings.DDPGSettings` can also be passed as a keyword
    (``actor_lr=...``, ``fdu_epochs=...``), on top of ``settings``, and is validated there.

    The other keywords are SB3's: ``env`` (a Gymnasium env, a ``VecEnv`` of N parallel
    searchers, LAW's N_a, or an env id), ``batch_size`` (minibatches without FDU, and with FDU
    when ``fdu_batch_size`` is ``None``), ``learning_starts`` (SB3's transitions; ``None``
    derives it from ``learning_starts_episodes`` and the episode length), ``train_freq``
    (``None``: one round of episodes, one episode per env, with FDU; every step without),
    ``gradient_steps`` (without FDU), ``action_noise`` (default: Gaussian with
    ``noise_sigma``), ``policy_kwargs``, ``tensorboard_log``, ``verbose``, ``seed``,
    ``device``.

    After every FDU update, ``last_fdu_visits`` holds, for each buffered transition (shape
    ``(n_buffered_steps, n_envs)``), how many times it entered a minibatch; ``fdu_updates`` counts
    FDU updates. ``fdu`` is the schedule (:class:`reweight_gym.agents.fdu.FDUSchedule`), its
    permutation generator seeded with ``seed`` and saved with the model.
    """

    def __init__(
        self,
        policy: str | type = "MlpPolicy",
        env: gym.Env | VecEnv | str | None = None,
        *,
        settings: DDPGSettings | None = None,
        learning_starts: int | None = None,
        batch_size: int = 64,
        train_freq: int | tuple[int, str] | None = None,
        gradient_steps: int = 1,
        action_noise: Any = None,
        policy_kwargs: dict[str, Any] | None = None,
        tensorboard_log: str | None = None,
        verbose: int = 0,
        seed: int | None = None,
        device: th.device | str = "cpu",
        _init_setup_model: bool = True,
        **kwargs: Any,
    ) -> None:
        if settings is not None and not isinstance(settings, DDPGSettings):
            raise invalid("settings", settings, "must be a DDPGSettings (agents/settings.py)")
        cfg, sb3_kwargs = (settings or DDPG_DEFAULTS).split(kwargs)
        check_number("learning_starts", learning_starts, 0, integer=True, optional=True)
        check_number("batch_size", batch_size, 1, integer=True)
        check_number("gradient_steps", gradient_steps, integer=True)
        freq = train_freq if isinstance(train_freq, (tuple, list)) else (train_freq, "step")
        if train_freq is not None and not (
                len(freq) == 2 and isinstance(freq[0], int) and not isinstance(freq[0], bool)
                and freq[0] >= 1 and freq[1] in ("step", "episode")):
            raise invalid("train_freq", train_freq, "must be an integer >= 1 (steps), a pair "
                          "[n, 'step' | 'episode'], or None (one round of episodes)")
        if isinstance(train_freq, list):  # a JSON pair: SB3 takes a tuple
            train_freq = (train_freq[0], train_freq[1])
        if policy_kwargs is not None and not isinstance(policy_kwargs, dict):
            raise invalid("policy_kwargs", policy_kwargs, "must be a dict of keyword arguments")
        space = getattr(env, "action_space", None)
        if space is not None and not isinstance(space, gym.spaces.Box):
            raise ValueError(f"incompatible spaces: LAWDDPG needs a continuous Box action "
                             f"space, got {space!r}")
        self.actor_lr = cfg.actor_lr
        self.critic_lr = cfg.critic_lr
        self.noise_sigma = cfg.noise_sigma
        self.full_data_update = cfg.full_data_update
        self.fdu_epochs = cfg.fdu_epochs
        self.fdu_batch_size = cfg.fdu_batch_size
        self.learning_starts_episodes = cfg.learning_starts_episodes
        self.action_l2 = cfg.action_l2
        self.fdu: FDUSchedule | None = None
        self.fdu_updates = 0
        self.last_fdu_visits: np.ndarray | None = None
        policy_kwargs = dict(policy_kwargs or {})
        policy_kwargs.setdefault("net_arch", list(cfg.net_arch))
        policy_kwargs.setdefault("n_critics", cfg.n_critics)
        super().__init__(
            policy=policy,
            env=env,  # type: ignore[arg-type]
            learning_rate=cfg.critic_lr,
            buffer_size=cfg.buffer_size,
            learning_starts=learning_starts,  # type: ignore[arg-type]  # None: set up below
            batch_size=batch_size,
            tau=cfg.tau,
            gamma=cfg.gamma,
            train_freq=train_freq,  # type: ignore[arg-type]
            gradient_steps=gradient_steps,
            action_noise=action_noise,
            policy_delay=1,  # DDPG: the actor learns at every step (TD3 delays it)
            target_policy_noise=cfg.target_policy_noise,
            target_noise_clip=cfg.target_noise_clip,
            policy_kwargs=policy_kwargs,
            tensorboard_log=tensorboard_log,
            verbose=verbose,
            seed=seed,
            device=device,
            _init_setup_model=False,
            **sb3_kwargs,
        )
        if _init_setup_model:
            self._setup_model()

    @property
    def settings(self) -> DDPGSettings:
        """The agent's :class:`~reweight_gym.agents.settings.DDPGSettings`."""
        return DDPGSettings(
            actor_lr=self.actor_lr, critic_lr=self.critic_lr,
            net_arch=tuple(self.policy_kwargs["net_arch"]), noise_sigma=self.noise_sigma,
            n_critics=int(self.policy_kwargs["n_critics"]),
            target_policy_noise=self.target_policy_noise,
            target_noise_clip=self.target_noise_clip, action_l2=self.action_l2,
            full_data_update=self.full_data_update, fdu_epochs=self.fdu_epochs,
            fdu_batch_size=self.fdu_batch_size,
            learning_starts_episodes=self.learning_starts_episodes,
            buffer_size=self.buffer_size, gamma=self.gamma, tau=self.tau)

    # ------------------------------------------------------------------ setup
    def _setup_model(self) -> None:
        if self.fdu is None:
            self.fdu = FDUSchedule(self.fdu_epochs, self.fdu_batch_size or self.batch_size,
                                   self.learning_starts_episodes, seed=self.seed)
        self._episode_steps()
        super()._setup_model()
        if not isinstance(self.action_space, gym.spaces.Box):
            raise ValueError(
                f"LAWDDPG needs a continuous Box action space, got {self.action_space!r}"
            )
        if self.action_noise is None and self.noise_sigma > 0:
            dim = int(np.prod(self.action_space.shape))
            half_range = (self.action_space.high - self.action_space.low).reshape(-1) / 2.0
            self.action_noise = NormalActionNoise(
                mean=np.zeros(dim), sigma=self.noise_sigma * half_range.astype(np.float64)
            )
        self._set_learning_rates()

    def _episode_steps(self) -> None:
        """``train_freq`` and ``learning_starts`` in SB3's steps from the schedule in episodes
        (:meth:`reweight_gym.agents.fdu.FDUSchedule.sb3_steps`), where they were not given."""
        if self.train_freq is not None and self.learning_starts is not None:
            return
        assert self.fdu is not None
        length = episode_length(self.env) if self.env is not None else None
        if length is None:
            raise ValueError("cannot tell the episode length of this env (not a Reweight env, "
                             "no max_episode_steps): give LAWDDPG train_freq and "
                             "learning_starts in steps")
        round_steps, starts = self.fdu.sb3_steps(length)
        if self.learning_starts is None:
            self.learning_starts = starts
        if self.train_freq is None:
            self.train_freq = round_steps if self.full_data_update else 1

    def _set_learning_rates(self) -> None:
        for group in self.actor.optimizer.param_groups:
            group["lr"] = self.actor_lr
        for group in self.critic.optimizer.param_groups:
            group["lr"] = self.critic_lr

    def _update_learning_rate(self, optimizers: Any) -> None:
        """Separate constant learning rates for actor and critic."""
        self._set_learning_rates()
        self.logger.record("train/actor_lr", self.actor_lr)
        self.logger.record("train/critic_lr", self.critic_lr)

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "last_fdu_visits"]

    # ------------------------------------------------------------------ updates
    def _ddpg_step(self, obs: th.Tensor, actions: th.Tensor, next_obs: th.Tensor,
                   dones: th.Tensor, rewards: th.Tensor) -> tuple[float, float]:
        """One DDPG update on a minibatch: TD target (eq. 12), the critic's TD loss (eq. 11) and
        its gradient step (eq. 10), the actor's deterministic policy gradient step (eq. 13),
        then the soft target updates (DDPG's, not in LAW).

        Options (off in LAW's DDPG): ``n_critics=2`` takes the minimum of two
        target critics in eq. 12 and ``target_policy_noise`` smooths the target action (TD3's
        remedies for Q over-estimation); ``action_l2`` adds ``action_l2 * ||mu(s)||^2`` to the
        actor loss, a pull towards the zero action (uniform weights)."""
        with th.no_grad():
            next_actions = self.actor_target(next_obs)
            if self.target_policy_noise > 0:
                noise = th.randn_like(next_actions) * self.target_policy_noise
                noise = noise.clamp(-self.target_noise_clip, self.target_noise_clip)
                next_actions = (next_actions + noise).clamp(-1.0, 1.0)
            next_q = th.cat(self.critic_target(next_obs, next_actions), dim=1)
            next_q = next_q.min(dim=1, keepdim=True).values
            target_q = rewards + (1.0 - dones) * self.gamma * next_q  # eq. 12
        current_qs = self.critic(obs, actions)
        critic_loss = sum(F.mse_loss(q, target_q) for q in current_qs)  # eq. 11
        assert isinstance(critic_loss, th.Tensor)
        self.critic.optimizer.zero_grad()
        critic_loss.backward()  # eq. 10
        self.critic.optimizer.step()

        pi = self.actor(obs)
        actor_loss = -self.critic.q1_forward(obs, pi).mean()  # eq. 13
        if self.action_l2 > 0:
            actor_loss = actor_loss + self.action_l2 * (pi ** 2).sum(dim=1).mean()
        self.actor.optimizer.zero_grad()
        actor_loss.backward()
        self.actor.optimizer.step()

        # soft target updates phi' <- tau phi + (1 - tau) phi' (DDPG's; LAW has no targets)
        polyak_update(self.critic.parameters(), self.critic_target.parameters(), self.tau)
        polyak_update(self.actor.parameters(), self.actor_target.parameters(), self.tau)
        polyak_update(self.critic_batch_norm_stats, self.critic_batch_norm_stats_target, 1.0)
        polyak_update(self.actor_batch_norm_stats, self.actor_batch_norm_stats_target, 1.0)
        self._n_updates += 1
        return float(actor_loss.item()), float(critic_loss.item())

    def _buffered(self) -> dict[str, np.ndarray]:
        """All transitions in the replay buffer, flattened over (step, env)."""
        rb = self.replay_buffer
        assert rb is not None
        upper = rb.buffer_size if rb.full else rb.pos
        obs = rb.observations[:upper]
        if rb.optimize_memory_usage:
            next_obs = rb.observations[(np.arange(upper) + 1) % rb.buffer_size]
        else:
            next_obs = rb.next_observations[:upper]
        n_envs = rb.n_envs
        flat = upper * n_envs
        return {
            "obs": rb._normalize_obs(obs.reshape(flat, -1), self._vec_normalize_env),
            "actions": rb.actions[:upper].reshape(flat, -1),
            "next_obs": rb._normalize_obs(next_obs.reshape(flat, -1), self._vec_normalize_env),
            "dones": (rb.dones[:upper] * (1 - rb.timeouts[:upper])).reshape(flat, 1),
            "rewards": rb._normalize_reward(rb.rewards[:upper].reshape(flat, 1),
                                            self._vec_normalize_env),
            "shape": np.array([upper, n_envs]),
        }

    def train(self, gradient_steps: int, batch_size: int = 64) -> None:
        """One update. With FDU (LAW Algorithm 1): the minibatches of
        :meth:`reweight_gym.agents.fdu.FDUSchedule.minibatches` over *all* buffered transitions,
        one DDPG step
        (:meth:`_ddpg_step`) per minibatch. Without FDU: SB3's DDPG update on sampled
        minibatches."""
        if not self.full_data_update:
            super().train(gradient_steps=gradient_steps, batch_size=batch_size)
            return
        assert self.fdu is not None
        self.policy.set_training_mode(True)
        self._update_learning_rate([self.actor.optimizer, self.critic.optimizer])
        data = self._buffered()
        upper, n_envs = (int(v) for v in data.pop("shape"))
        n = upper * n_envs
        if n == 0:
            return
        tensors = {k: th.as_tensor(v, dtype=th.float32, device=self.device)
                   for k, v in data.items()}
        actor_losses, critic_losses, used = [], [], []
        for idx in self.fdu.minibatches(n):
            used.append(idx)
            ti = th.as_tensor(idx, device=self.device)
            a_loss, c_loss = self._ddpg_step(
                tensors["obs"][ti], tensors["actions"][ti], tensors["next_obs"][ti],
                tensors["dones"][ti], tensors["rewards"][ti],
            )
            actor_losses.append(a_loss)
            critic_losses.append(c_loss)
        self.last_fdu_visits = visits(used, n).reshape(upper, n_envs)
        self.fdu_updates += 1
        self.logger.record("train/n_updates", self._n_updates, exclude="tensorboard")
        self.logger.record("train/fdu_updates", self.fdu_updates)
        self.logger.record("train/fdu_transitions", n)
        self.logger.record("train/actor_loss", float(np.mean(actor_losses)))
        self.logger.record("train/critic_loss", float(np.mean(critic_losses)))

    def learn(self, total_timesteps: int, callback: Any = None, log_interval: int = 1,
              tb_log_name: str = "LAWDDPG", reset_num_timesteps: bool = True,
              progress_bar: bool = False) -> LAWDDPG:
        """Train; the :class:`LAWInfoCallback` (per-stage TensorBoard logging) is always on."""
        callbacks: list[BaseCallback] = [LAWInfoCallback()]
        if callback is not None:
            callbacks += list(callback) if isinstance(callback, list) else [callback]
        return super().learn(total_timesteps=total_timesteps, callback=CallbackList(callbacks),
                             log_interval=log_interval, tb_log_name=tb_log_name,
                             reset_num_timesteps=reset_num_timesteps, progress_bar=progress_bar)
