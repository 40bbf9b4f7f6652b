"""``train_sb3``: train an SB3 agent on a Reweight environment, checkpointing and resuming."""

from __future__ import annotations

import json
import os
from typing import Any

from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecEnv

from agents.sb3.callbacks import LAWInfoCallback
from agents.sb3.checkpoints import algo_class, checkpoint_callback, latest_checkpoint, load_sb3
from agents.sb3.ddpg import LAWDDPG
from agents.sb3.envs import make_reweight_vec_env


def _new_model(algo: str, venv: VecEnv, seed: int, verbose: int, tb: str,
               agent_kwargs: dict[str, Any]) -> Any:
    cls = algo_class(algo)
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
    algo_class(algo)
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "agent.json"), "w") as f:
        json.dump({"lib": "sb3", "algo": algo, "env_id": env_id,
                   "env_kwargs": env_kwargs or {}, "n_envs": n_envs, "seed": seed}, f)
    venv = make_reweight_vec_env(env_id, env_kwargs, n_envs=n_envs, seed=seed,
                                 subprocess=subprocess)
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
