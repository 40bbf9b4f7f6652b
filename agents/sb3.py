"""LAW's DDPG agent on Stable-Baselines3 (``LAWDDPG``), with vectorised envs and checkpoints.

LAW (Li et al., AAAI 2020) searches the weighting policy with DDPG:

- eq. 10: TD target ``y = r + gamma * (1 - done) * Q'(s', mu'(s'))`` with target networks;
- eq. 11: critic loss ``L(phi) = mean (y - Q(s, a))^2``;
- eq. 12: deterministic policy gradient ``grad J = mean grad_a Q(s, a)|_{a = mu(s)} grad mu(s)``;
- eq. 13: soft target updates ``phi' <- tau phi + (1 - tau) phi'`` (same for the actor).

LAW's own choices, the defaults here: actor and critic are MLPs with 4 layers (3 hidden layers
and the output layer), Adam with learning rate 1e-5 for the actor and 1e-4 for the critic,
Gaussian exploration noise on the action, N_a parallel searchers (here: the N environments of a
``VecEnv``, each a complete training run) that feed one shared strategy model, and the *Full Data
Update* (FDU, Algorithm 1): at each update the networks are trained for ``fdu_epochs`` epochs over
*all* transitions in the buffer instead of on one sampled minibatch.

Everything is configurable; ``full_data_update=False`` gives SB3's plain DDPG update.
"""

from __future__ import annotations

import glob
import json
import os
import re
from collections.abc import Callable, Sequence
from typing import Any

import gymnasium as gym
import numpy as np
import torch as th
from stable_baselines3 import DDPG
from stable_baselines3.common.callbacks import BaseCallback, CallbackList, CheckpointCallback
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.noise import NormalActionNoise
from stable_baselines3.common.utils import polyak_update
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv
from torch.nn import functional as F

#: LAW's actor/critic: 4 linear layers = 3 hidden layers + output layer.
LAW_NET_ARCH: tuple[int, ...] = (64, 64, 64)
LAW_ACTOR_LR = 1e-5
LAW_CRITIC_LR = 1e-4
CHECKPOINT_PREFIX = "law_ddpg"


class LAWDDPG(DDPG):
    """DDPG with LAW's Full Data Update and LAW's defaults (eqs. 10-13, Algorithm 1).

    Args:
        policy: SB3 policy name or class (``"MlpPolicy"``).
        env: a Gymnasium env, a ``VecEnv`` (N parallel searchers, LAW's N_a) or an env id.
        actor_lr: Adam learning rate of the actor (LAW: 1e-5).
        critic_lr: Adam learning rate of the critic (LAW: 1e-4).
        net_arch: hidden sizes of actor and critic (LAW: 4 layers, i.e. 3 hidden layers).
        noise_sigma: standard deviation of the Gaussian exploration noise added to the action
            (in units of half the action range); ignored when ``action_noise`` is given.
        n_critics, target_policy_noise, target_noise_clip: TD3's clipped double-Q and target
            policy smoothing, off by default (1 critic, no smoothing: LAW's DDPG).
        action_l2: weight of an ``||mu(s)||^2`` term in the actor loss pulling towards the
            zero action (uniform weights); 0 by default.
        full_data_update: train with FDU (``True``, LAW) or with SB3's sampled minibatches.
        fdu_epochs: epochs over all buffered transitions at each FDU update.
        fdu_batch_size: minibatch size inside an FDU epoch (``None``: ``batch_size``).
        train_freq, gradient_steps, batch_size, tau, gamma, learning_starts, buffer_size, ...:
            as in :class:`stable_baselines3.DDPG`; with FDU ``gradient_steps`` is unused.

    After every FDU update, ``last_fdu_visits`` holds, for each buffered transition (shape
    ``(n_buffered_steps, n_envs)``), how many times it entered a minibatch; ``fdu_updates`` counts
    FDU updates.
    """

    def __init__(
        self,
        policy: str | type = "MlpPolicy",
        env: gym.Env | VecEnv | str | None = None,
        *,
        actor_lr: float = LAW_ACTOR_LR,
        critic_lr: float = LAW_CRITIC_LR,
        net_arch: Sequence[int] = LAW_NET_ARCH,
        noise_sigma: float = 0.2,
        n_critics: int = 1,
        target_policy_noise: float = 0.0,
        target_noise_clip: float = 0.5,
        action_l2: float = 0.0,
        full_data_update: bool = True,
        fdu_epochs: int = 4,
        fdu_batch_size: int | None = None,
        buffer_size: int = 100_000,
        learning_starts: int = 0,
        batch_size: int = 64,
        tau: float = 0.005,
        gamma: float = 0.99,
        train_freq: int | tuple[int, str] = 1,
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
                            ("noise_sigma", noise_sigma)):
            if not (isinstance(value, (int, float)) and np.isfinite(value) and value >= 0):
                raise ValueError(f"invalid {name}={value!r}: must be a finite number >= 0")
        if not isinstance(fdu_epochs, int) or fdu_epochs < 1:
            raise ValueError(f"invalid fdu_epochs={fdu_epochs!r}: must be an integer >= 1")
        if fdu_batch_size is not None and (not isinstance(fdu_batch_size, int)
                                           or fdu_batch_size < 1):
            raise ValueError(f"invalid fdu_batch_size={fdu_batch_size!r}: an integer >= 1")
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
        self.fdu_updates = 0
        self.last_fdu_visits: np.ndarray | None = None
        for name, value in (("target_policy_noise", target_policy_noise),
                            ("target_noise_clip", target_noise_clip), ("action_l2", action_l2)):
            if not (isinstance(value, (int, float)) and np.isfinite(value) and value >= 0):
                raise ValueError(f"invalid {name}={value!r}: must be a finite number >= 0")
        if not isinstance(n_critics, int) or n_critics < 1:
            raise ValueError(f"invalid n_critics={n_critics!r}: must be an integer >= 1")
        self.action_l2 = float(action_l2)
        policy_kwargs = dict(policy_kwargs or {})
        policy_kwargs.setdefault("net_arch", list(net_arch))
        policy_kwargs.setdefault("n_critics", n_critics)
        super().__init__(
            policy=policy,
            env=env,  # type: ignore[arg-type]
            learning_rate=self.critic_lr,
            buffer_size=buffer_size,
            learning_starts=learning_starts,
            batch_size=batch_size,
            tau=tau,
            gamma=gamma,
            train_freq=train_freq,
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

    def _set_learning_rates(self) -> None:
        for group in self.actor.optimizer.param_groups:
            group["lr"] = self.actor_lr
        for group in self.critic.optimizer.param_groups:
            group["lr"] = self.critic_lr

    def _update_learning_rate(self, optimizers: Any) -> None:
        """Separate constant learning rates for actor and critic (LAW: 1e-5 / 1e-4)."""
        self._set_learning_rates()
        self.logger.record("train/actor_lr", self.actor_lr)
        self.logger.record("train/critic_lr", self.critic_lr)

    def _excluded_save_params(self) -> list[str]:
        return [*super()._excluded_save_params(), "last_fdu_visits"]

    # ------------------------------------------------------------------ updates
    def _ddpg_step(self, obs: th.Tensor, actions: th.Tensor, next_obs: th.Tensor,
                   dones: th.Tensor, rewards: th.Tensor) -> tuple[float, float]:
        """One DDPG update on a minibatch: eqs. 10-11 (critic), 12 (actor), 13 (targets).

        Options (off by default, i.e. LAW's DDPG): ``n_critics=2`` takes the minimum of two
        target critics in eq. 10 and ``target_policy_noise`` smooths the target action (TD3's
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
            target_q = rewards + (1.0 - dones) * self.gamma * next_q  # eq. 10
        current_qs = self.critic(obs, actions)
        critic_loss = sum(F.mse_loss(q, target_q) for q in current_qs)  # eq. 11
        assert isinstance(critic_loss, th.Tensor)
        self.critic.optimizer.zero_grad()
        critic_loss.backward()
        self.critic.optimizer.step()

        pi = self.actor(obs)
        actor_loss = -self.critic.q1_forward(obs, pi).mean()  # eq. 12
        if self.action_l2 > 0:
            actor_loss = actor_loss + self.action_l2 * (pi ** 2).sum(dim=1).mean()
        self.actor.optimizer.zero_grad()
        actor_loss.backward()
        self.actor.optimizer.step()

        polyak_update(self.critic.parameters(), self.critic_target.parameters(), self.tau)  # 13
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
        """One update. With FDU (LAW Algorithm 1): ``fdu_epochs`` epochs, each a random
        permutation of *all* buffered transitions cut into minibatches, one DDPG step
        (eqs. 10-13) per minibatch. Without FDU: SB3's DDPG update on sampled minibatches."""
        if not self.full_data_update:
            super().train(gradient_steps=gradient_steps, batch_size=batch_size)
            return
        self.policy.set_training_mode(True)
        self._update_learning_rate([self.actor.optimizer, self.critic.optimizer])
        data = self._buffered()
        upper, n_envs = (int(v) for v in data.pop("shape"))
        n = upper * n_envs
        if n == 0:
            return
        tensors = {k: th.as_tensor(v, dtype=th.float32, device=self.device)
                   for k, v in data.items()}
        mb = self.fdu_batch_size or batch_size
        visits = np.zeros(n, dtype=np.int64)
        actor_losses, critic_losses = [], []
        for _ in range(self.fdu_epochs):
            perm = np.random.permutation(n)
            for start in range(0, n, mb):
                idx = perm[start:start + mb]
                visits[idx] += 1
                ti = th.as_tensor(idx, device=self.device)
                a_loss, c_loss = self._ddpg_step(
                    tensors["obs"][ti], tensors["actions"][ti], tensors["next_obs"][ti],
                    tensors["dones"][ti], tensors["rewards"][ti],
                )
                actor_losses.append(a_loss)
                critic_losses.append(c_loss)
        self.last_fdu_visits = visits.reshape(upper, n_envs)
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


# ---------------------------------------------------------------------- logging
INFO_KEYS = ("acc_target", "acc_reference", "noisy_weight_mean", "clean_weight_mean")
FINAL_KEYS = ("test_acc_target", "test_acc_reference")


class LAWInfoCallback(BaseCallback):
    """Logs to TensorBoard, at every env step (= one stage of every parallel training run):
    the per-stage reward, the env's accuracies and noisy/clean mean weights (``law/...``), and
    at each episode end its return and final test accuracies (``law/episode_return``, ...)."""

    def _init_callback(self) -> None:
        self._returns = np.zeros(self.training_env.num_envs if self.training_env else 1)

    def _on_step(self) -> bool:
        rewards = np.asarray(self.locals.get("rewards", []), dtype=np.float64).reshape(-1)
        infos: list[dict[str, Any]] = list(self.locals.get("infos", []))
        dones = np.asarray(self.locals.get("dones", np.zeros(len(rewards))), dtype=bool)
        if len(rewards) != len(self._returns):
            self._returns = np.zeros(len(rewards))
        self._returns += rewards
        self.logger.record("law/stage_reward", float(rewards.mean()) if len(rewards) else 0.0)
        for key in INFO_KEYS:
            vals = [float(i[key]) for i in infos if key in i and i[key] is not None]
            vals = [v for v in vals if np.isfinite(v)]
            if vals:
                self.logger.record(f"law/{key}", float(np.mean(vals)))
        for env_i, done in enumerate(dones):
            if not done:
                continue
            self.logger.record("law/episode_return", float(self._returns[env_i]))
            info = infos[env_i] if env_i < len(infos) else {}
            for key in FINAL_KEYS:
                if key in info:
                    self.logger.record(f"law/{key}", float(info[key]))
            self._returns[env_i] = 0.0
        self.logger.dump(self.num_timesteps)
        return True


# ---------------------------------------------------------------------- envs
def _make_env_thunk(env_id: str, env_kwargs: dict[str, Any], monitor: bool = True,
                    torch_threads: int | None = 1) -> Callable[[], gym.Env]:
    def thunk() -> gym.Env:
        import reweight_gym  # noqa: F401  (registers the Reweight-* ids in subprocesses)

        if torch_threads:
            th.set_num_threads(torch_threads)
        env = gym.make(env_id, **env_kwargs)
        return Monitor(env) if monitor else env

    return thunk


def make_vec_env(env_id: str, env_kwargs: dict[str, Any] | None = None, n_envs: int = 1,
                 seed: int | None = 0, subprocess: bool | None = None) -> VecEnv:
    """N parallel searchers (LAW's N_a): a ``SubprocVecEnv`` of ``n_envs`` environments (each
    a complete training run, in its own process) or a ``DummyVecEnv`` when ``n_envs == 1`` or
    ``subprocess=False``. Env ``i`` is seeded with ``seed + i``."""
    if not isinstance(n_envs, int) or n_envs < 1:
        raise ValueError(f"invalid n_envs={n_envs!r}: must be an integer >= 1")
    kwargs = dict(env_kwargs or {})
    use_proc = (n_envs > 1) if subprocess is None else subprocess
    thunks = [_make_env_thunk(env_id, kwargs, torch_threads=1 if use_proc else None)
              for _ in range(n_envs)]
    venv: VecEnv = (SubprocVecEnv(thunks, start_method="forkserver") if use_proc
                    else DummyVecEnv(thunks))
    if seed is not None:
        venv.seed(seed)
    return venv


# ---------------------------------------------------------------------- checkpoints
SB3_ALGOS = ("ddpg", "sac", "ppo")


def _algo_class(algo: str) -> type:
    key = algo.lower()
    if key == "ddpg":
        return LAWDDPG
    if key == "sac":
        from stable_baselines3 import SAC

        return SAC
    if key == "ppo":
        from stable_baselines3 import PPO

        return PPO
    raise ValueError(f"unknown algorithm {algo!r} for --lib sb3: allowed: {', '.join(SB3_ALGOS)}")


def _prefix(algo: str) -> str:
    return CHECKPOINT_PREFIX if algo.lower() == "ddpg" else f"sb3_{algo.lower()}"


def checkpoint_callback(out_dir: str, save_freq_steps: int, n_envs: int = 1,
                        algo: str = "ddpg") -> CheckpointCallback:
    """Save model *and* replay buffer every ``save_freq_steps`` environment steps (summed over
    the ``n_envs`` parallel envs) to ``out_dir`` (``law_ddpg_<steps>_steps.zip``)."""
    return CheckpointCallback(save_freq=max(1, save_freq_steps // max(1, n_envs)),
                              save_path=out_dir, name_prefix=_prefix(algo),
                              save_replay_buffer=algo.lower() != "ppo", verbose=0)


def latest_checkpoint(out_dir: str, algo: str = "ddpg") -> str | None:
    """Path of the checkpoint with the most steps in ``out_dir`` (``final.zip`` if it is the
    newest), ``None`` if there is none."""
    best: tuple[int, str] | None = None
    for path in glob.glob(os.path.join(out_dir, f"{_prefix(algo)}_*_steps.zip")):
        m = re.search(r"_(\d+)_steps\.zip$", path)
        if m and (best is None or int(m.group(1)) > best[0]):
            best = (int(m.group(1)), path)
    final = os.path.join(out_dir, "final.zip")
    meta = os.path.join(out_dir, "final.json")
    if os.path.exists(final) and os.path.exists(meta):
        with open(meta) as f:
            steps = int(json.load(f).get("num_timesteps", 0))
        if best is None or steps >= best[0]:
            best = (steps, final)
    return None if best is None else best[1]


def _replay_path(model_path: str) -> str | None:
    if model_path.endswith("final.zip"):
        cand = model_path[: -len("final.zip")] + "final_replay_buffer.pkl"
    else:
        cand = re.sub(r"_(\d+)_steps\.zip$", r"_replay_buffer_\1_steps.pkl", model_path)
    return cand if os.path.exists(cand) else None


def load_sb3(path: str, algo: str = "ddpg", env: gym.Env | VecEnv | None = None,
             device: str = "cpu") -> Any:
    """Load a saved SB3 agent (:class:`LAWDDPG` for ``ddpg``) and, with an env, its replay
    buffer if saved beside it. Raises ``FileNotFoundError`` naming a missing path."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"checkpoint not found: {path}")
    model = _algo_class(algo).load(path, env=env, device=device)
    rb = _replay_path(path)
    if rb is not None and env is not None and hasattr(model, "load_replay_buffer"):
        model.load_replay_buffer(rb)
    if isinstance(model, LAWDDPG):
        model._set_learning_rates()
    return model


def load_law_ddpg(path: str, env: gym.Env | VecEnv | None = None,
                  device: str = "cpu") -> LAWDDPG:
    """Load a saved :class:`LAWDDPG` (see :func:`load_sb3`)."""
    return load_sb3(path, "ddpg", env=env, device=device)


def _new_model(algo: str, venv: VecEnv, seed: int, verbose: int, tb: str,
               agent_kwargs: dict[str, Any]) -> Any:
    cls = _algo_class(algo)
    kwargs = dict(agent_kwargs)
    if algo == "ppo":
        # short episodes (one step per stage): small rollouts per update
        kwargs.setdefault("n_steps", 16)
        kwargs.setdefault("batch_size", 16)
    if algo == "sac":
        kwargs.setdefault("learning_starts", 0)
    return cls("MlpPolicy", venv, seed=seed, verbose=verbose, tensorboard_log=tb, **kwargs)


def train_sb3(env_id: str, env_kwargs: dict[str, Any] | None, out_dir: str, total_steps: int,
              algo: str = "ddpg", n_envs: int = 1, seed: int = 0,
              checkpoint_every: int | None = None, agent_kwargs: dict[str, Any] | None = None,
              subprocess: bool | None = None, verbose: int = 0) -> Any:
    """Train (or resume from the newest checkpoint in ``out_dir``) until ``total_steps``
    environment steps; checkpoints every ``checkpoint_every`` steps, TensorBoard logs in
    ``out_dir/tb``, the final model in ``out_dir/final.zip`` (+ replay buffer) and
    ``out_dir/agent.json`` describing the run."""
    algo = algo.lower()
    _algo_class(algo)
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "agent.json"), "w") as f:
        json.dump({"lib": "sb3", "algo": algo, "env_id": env_id,
                   "env_kwargs": env_kwargs or {}, "n_envs": n_envs, "seed": seed}, f)
    venv = make_vec_env(env_id, env_kwargs, n_envs=n_envs, seed=seed, subprocess=subprocess)
    tb = os.path.join(out_dir, "tb")
    try:
        last = latest_checkpoint(out_dir, algo)
        if last is not None:
            model = load_sb3(last, algo, env=venv)
            model.tensorboard_log = tb
            reset = False
        else:
            model = _new_model(algo, venv, seed, verbose, tb, agent_kwargs or {})
            reset = True
        remaining = total_steps - int(model.num_timesteps)
        if remaining > 0:
            every = checkpoint_every or max(n_envs, total_steps // 10)
            callbacks: list[BaseCallback] = [checkpoint_callback(out_dir, every, n_envs, algo)]
            if not isinstance(model, LAWDDPG):
                callbacks.append(LAWInfoCallback())
            model.learn(total_timesteps=remaining, callback=callbacks,
                        reset_num_timesteps=reset, tb_log_name=algo.upper())
            model.save(os.path.join(out_dir, "final.zip"))
            if hasattr(model, "save_replay_buffer"):
                model.save_replay_buffer(os.path.join(out_dir, "final_replay_buffer.pkl"))
            with open(os.path.join(out_dir, "final.json"), "w") as f:
                json.dump({"num_timesteps": int(model.num_timesteps)}, f)
        return model
    finally:
        venv.close()


def train_law_ddpg(env_id: str, env_kwargs: dict[str, Any] | None, out_dir: str,
                   total_steps: int, **kwargs: Any) -> LAWDDPG:
    """:func:`train_sb3` with LAW's DDPG."""
    return train_sb3(env_id, env_kwargs, out_dir, total_steps, algo="ddpg", **kwargs)
