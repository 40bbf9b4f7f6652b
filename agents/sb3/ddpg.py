"""``LAWDDPG``: LAW's DDPG with the Full Data Update, on Stable-Baselines3.

LAW (Li et al., AAAI 2020) searches the weighting policy with DDPG:

- eq. 12: the TD target ``y = r + gamma * (1 - done) * Q(s', mu(s'))``, with the online networks;
- eq. 11: the critic's TD loss ``L(phi) = mean (y - Q(s, a))^2``, and eq. 10 its gradient;
- eq. 13: the actor's deterministic policy gradient
  ``grad J = mean grad_a Q(s, a)|_{a = mu(s)} grad mu(s)``.

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
shared with RLlib's DDPG. The defaults are ``reweight_gym.agents.defaults.DDPG_DEFAULTS`` (the
evaluation protocol's choice); LAW's own values are ``LAWDDPG("MlpPolicy", env, **LAW_DDPG)``.
``full_data_update=False`` gives SB3's plain DDPG update.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch as th
from stable_baselines3 import DDPG
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.noise import NormalActionNoise
from stable_baselines3.common.utils import polyak_update
from stable_baselines3.common.vec_env import VecEnv
from torch.nn import functional as F

from reweight_gym.agents.defaults import DDPG_DEFAULTS
from reweight_gym.agents.fdu import FDUSchedule, episode_length, visits
from reweight_gym.agents.sb3.callbacks import LAWInfoCallback
from reweight_gym.validation import check_number, invalid

_D = DDPG_DEFAULTS


class LAWDDPG(DDPG):
    """DDPG with LAW's Full Data Update (eqs. 10-13, Algorithm 1), the protocol's defaults.

    The TD target (eq. 12) uses target networks updated by Polyak averaging with ``tau``, as in
    DDPG; LAW computes it with the online networks, which ``tau=1.0`` reproduces.

    Args:
        policy: SB3 policy name or class (``"MlpPolicy"``).
        env: a Gymnasium env, a ``VecEnv`` (N parallel searchers, LAW's N_a) or an env id.
        actor_lr, critic_lr: Adam learning rates of the actor and the critic.
        net_arch: hidden sizes of actor and critic (LAW: 4 layers, i.e. 3 hidden layers).
        noise_sigma: standard deviation of the Gaussian exploration noise added to the action
            (in units of half the action range); ignored when ``action_noise`` is given.
        n_critics, target_policy_noise, target_noise_clip: TD3's clipped double-Q and target
            policy smoothing (LAW's DDPG: 1 critic, no smoothing).
        action_l2: weight of an ``||mu(s)||^2`` term in the actor loss pulling towards the
            zero action (uniform weights).
        full_data_update: train with FDU (``True``, LAW) or with SB3's sampled minibatches.
        fdu_epochs: epochs over all buffered transitions at each FDU update.
        fdu_batch_size: minibatch size inside an FDU epoch (``None``: ``batch_size``).
        learning_starts_episodes: episodes (summed over the envs) of uniform random actions
            before the first update (:mod:`reweight_gym.agents.fdu`).
        learning_starts: the same in SB3's transitions; ``None`` (default) derives it from
            ``learning_starts_episodes`` and the env's episode length, a number overrides it.
        train_freq: SB3's training frequency; ``None`` (default) is one round of episodes
            (one episode per env) with FDU, every step (SB3's DDPG) without.
        buffer_size, batch_size, tau, gamma, gradient_steps, ...: as in
            :class:`stable_baselines3.DDPG`; with FDU ``gradient_steps`` is unused.

    After every FDU update, ``last_fdu_visits`` holds, for each buffered transition (shape
    ``(n_buffered_steps, n_envs)``), how many times it entered a minibatch; ``fdu_updates`` counts
    FDU updates. ``fdu`` is the schedule (:class:`reweight_gym.agents.fdu.FDUSchedule`), its
    permutation
    generator seeded with ``seed`` and saved with the model.
    """

    def __init__(
        self,
        policy: str | type = "MlpPolicy",
        env: gym.Env | VecEnv | str | None = None,
        *,
        actor_lr: float = _D["actor_lr"],
        critic_lr: float = _D["critic_lr"],
        net_arch: Sequence[int] = _D["net_arch"],
        noise_sigma: float = _D["noise_sigma"],
        n_critics: int = _D["n_critics"],
        target_policy_noise: float = _D["target_policy_noise"],
        target_noise_clip: float = _D["target_noise_clip"],
        action_l2: float = _D["action_l2"],
        full_data_update: bool = _D["full_data_update"],
        fdu_epochs: int = _D["fdu_epochs"],
        fdu_batch_size: int | None = _D["fdu_batch_size"],
        learning_starts_episodes: int = _D["learning_starts_episodes"],
        buffer_size: int = _D["buffer_size"],
        learning_starts: int | None = None,
        batch_size: int = 64,
        tau: float = _D["tau"],
        gamma: float = _D["gamma"],
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
        for name, value in (("actor_lr", actor_lr), ("critic_lr", critic_lr),
                            ("noise_sigma", noise_sigma), ("action_l2", action_l2),
                            ("target_policy_noise", target_policy_noise),
                            ("target_noise_clip", target_noise_clip)):
            check_number(name, value, 0.0)
        check_number("fdu_epochs", fdu_epochs, 1, integer=True)
        check_number("fdu_batch_size", fdu_batch_size, 1, integer=True, optional=True)
        check_number("n_critics", n_critics, 1, integer=True)
        check_number("learning_starts_episodes", learning_starts_episodes, 0, integer=True)
        check_number("learning_starts", learning_starts, 0, integer=True, optional=True)
        check_number("buffer_size", buffer_size, 1, integer=True)
        check_number("batch_size", batch_size, 1, integer=True)
        check_number("gradient_steps", gradient_steps, integer=True)
        check_number("tau", tau, 0.0, 1.0, lo_open=True)
        check_number("gamma", gamma, 0.0, 1.0)
        if (isinstance(net_arch, (str, bytes)) or not isinstance(net_arch, Sequence)
                or not net_arch or any(isinstance(h, bool) or not isinstance(h, int) or h < 1
                                       for h in net_arch)):
            raise invalid("net_arch", net_arch, "must be a non-empty list of layer sizes >= 1")
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
        self.actor_lr = float(actor_lr)
        self.critic_lr = float(critic_lr)
        self.noise_sigma = float(noise_sigma)
        self.full_data_update = bool(full_data_update)
        self.fdu_epochs = int(fdu_epochs)
        self.fdu_batch_size = fdu_batch_size
        self.learning_starts_episodes = int(learning_starts_episodes)
        self.fdu: FDUSchedule | None = None
        self.fdu_updates = 0
        self.last_fdu_visits: np.ndarray | None = None
        self.action_l2 = float(action_l2)
        policy_kwargs = dict(policy_kwargs or {})
        policy_kwargs.setdefault("net_arch", list(net_arch))
        policy_kwargs.setdefault("n_critics", n_critics)
        super().__init__(
            policy=policy,
            env=env,  # type: ignore[arg-type]
            learning_rate=self.critic_lr,
            buffer_size=buffer_size,
            learning_starts=learning_starts,  # type: ignore[arg-type]  # None: set up below
            batch_size=batch_size,
            tau=tau,
            gamma=gamma,
            train_freq=train_freq,  # type: ignore[arg-type]
            gradient_steps=gradient_steps,
            action_noise=action_noise,
            policy_kwargs=policy_kwargs,
            tensorboard_log=tensorboard_log,
            verbose=verbose,
            seed=seed,
            device=device,
            _init_setup_model=False,
            **kwargs,
        )
        # DDPG's __init__ switches TD3's target smoothing off; these options switch it back on
        self.target_policy_noise = float(target_policy_noise)
        self.target_noise_clip = float(target_noise_clip)
        if _init_setup_model:
            self._setup_model()

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
