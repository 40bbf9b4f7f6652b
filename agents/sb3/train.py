"""``train_sb3``: train an SB3 agent on a Reweight environment, checkpointing and resuming."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.vec_env import VecEnv

from reweight_gym.agents.fdu import episode_length
from reweight_gym.agents.runs import (
    check_resume,
    describe_run,
    remove_stale_temps,
    write_agent_meta,
    write_json_atomic,
)
from reweight_gym.agents.sb3.callbacks import LAWInfoCallback, ProgressCallback
from reweight_gym.agents.sb3.checkpoints import (
    AtomicCheckpointCallback,
    algo_class,
    latest_checkpoint,
    load_sb3,
    save_atomic,
)
from reweight_gym.agents.sb3.ddpg import LAWDDPG
from reweight_gym.agents.sb3.envs import make_reweight_vec_env
from reweight_gym.agents.settings import DDPG_DEFAULTS, DDPGSettings


def _new_model(algo: str, venv: VecEnv, seed: int, verbose: int, tb: str,
               agent_kwargs: dict[str, Any], settings: DDPGSettings | None) -> Any:
    cls = algo_class(algo)
    kwargs = dict(agent_kwargs)
    if algo == "ddpg":
        kwargs["settings"] = settings
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
              subprocess: bool | None = None, verbose: int = 0,
              log: Callable[[str], None] | None = None, settings: DDPGSettings | None = None,
              restart: bool = False) -> Any:
    """Train (or resume from the newest checkpoint in ``out_dir``) until ``total_steps``
    environment steps (summed over the ``n_envs`` parallel envs).

    ``agent_kwargs`` are the algorithm's keyword arguments; for ``ddpg`` the agent is
    :class:`LAWDDPG` with ``settings`` (default ``DDPG_DEFAULTS``; fields of
    :class:`~reweight_gym.agents.settings.DDPGSettings` in ``agent_kwargs`` go on top). A run
    resumes only a run of the same library, algorithm, env config, searchers, seed and settings
    (``agent.json``; another is a ``ValueError``, or deleted first with ``restart``).
    Checkpoints (model and replay buffer,
    written atomically) every ``checkpoint_every`` env steps (default: a tenth of the run), and
    at the end, also as ``out_dir/final.zip``; TensorBoard logs in ``out_dir/tb``;
    ``out_dir/agent.json`` describes the run. A run killed at any moment resumes from its newest
    checkpoint, losing the steps since (``log`` is told which checkpoint it resumed from).

    With ``log``, progress lines (:class:`ProgressCallback`: episode, recent return, updates)
    go through it at least every 30 s while the agent trains."""
    algo = algo.lower()
    algo_class(algo)
    agent_kwargs = dict(agent_kwargs or {})
    if algo == "ddpg":
        settings, agent_kwargs = (settings or DDPG_DEFAULTS).split(agent_kwargs)
    elif settings is not None:
        raise ValueError(f"settings are LAW-DDPG's: not for algo={algo!r}")
    meta = describe_run("sb3", algo, env_id, env_kwargs or {}, n_envs, seed,
                        settings.to_dict() if settings is not None else None,
                        agent_kwargs=agent_kwargs,
                        episode_steps=episode_length(env_id=env_id, env_kwargs=env_kwargs))
    os.makedirs(out_dir, exist_ok=True)
    removed = check_resume(out_dir, meta, restart)
    if removed and log is not None:
        log(f"--restart: deleted the earlier run in {out_dir} ({', '.join(removed)})")
    remove_stale_temps(out_dir)
    venv = make_reweight_vec_env(env_id, env_kwargs, n_envs=n_envs, seed=seed,
                                 subprocess=subprocess)
    tb = os.path.join(out_dir, "tb")
    try:
        write_agent_meta(out_dir, meta)
        last = latest_checkpoint(out_dir, algo)
        if last is not None:
            model = load_sb3(last, algo, env=venv)
            model.tensorboard_log = tb
            reset = False
            if log is not None:
                log(f"resumed from {last} ({int(model.num_timesteps)} env steps)")
        else:
            model = _new_model(algo, venv, seed, verbose, tb, agent_kwargs, settings)
            reset = True
        remaining = total_steps - int(model.num_timesteps)
        if remaining > 0:
            every = checkpoint_every or max(n_envs, total_steps // 10)
            ckpt = AtomicCheckpointCallback(out_dir, every, algo)
            callbacks: list[BaseCallback] = [ckpt]
            if not isinstance(model, LAWDDPG):
                callbacks.append(LAWInfoCallback())
            if log is not None:
                steps = episode_length(venv) or 1
                callbacks.append(ProgressCallback(
                    total_steps // steps, log,
                    done_episodes=int(model.num_timesteps) // steps))
            model.learn(total_timesteps=remaining, callback=callbacks,
                        reset_num_timesteps=reset, tb_log_name=algo.upper())
            if ckpt.saved_steps != int(model.num_timesteps):  # the end is a checkpoint too
                ckpt.save()
            save_atomic(model, os.path.join(out_dir, "final.zip"),
                        os.path.join(out_dir, "final_replay_buffer.pkl")
                        if algo != "ppo" else None)
            write_json_atomic(os.path.join(out_dir, "final.json"),
                              {"num_timesteps": int(model.num_timesteps)})
        return model
    finally:
        venv.close()


def train_law_ddpg(env_id: str, env_kwargs: dict[str, Any] | None, out_dir: str,
                   total_steps: int, **kwargs: Any) -> LAWDDPG:
    """:func:`train_sb3` with LAW's DDPG."""
    return train_sb3(env_id, env_kwargs, out_dir, total_steps, algo="ddpg", **kwargs)
