"""The Stable-Baselines3 agents, one module per concern:

- :mod:`reweight_gym.agents.sb3.ddpg`: ``LAWDDPG``, LAW's DDPG with the Full Data Update (the
  algorithm);
- :mod:`reweight_gym.agents.sb3.callbacks`: ``LAWInfoCallback``, per-stage and per-episode
  TensorBoard logs;
- :mod:`reweight_gym.agents.sb3.envs`: ``make_reweight_vec_env``, LAW's N_a parallel searchers as a
  VecEnv;
- :mod:`reweight_gym.agents.sb3.checkpoints`: periodic atomic checkpoints, the newest one, loading;
- :mod:`reweight_gym.agents.sb3.train`: ``train_sb3``, the training loop with resume.

Importing this package imports Stable-Baselines3; ``import reweight_gym.agents`` does not.
"""

from reweight_gym.agents.sb3.callbacks import LAWInfoCallback
from reweight_gym.agents.sb3.checkpoints import (
    SB3_ALGOS,
    AtomicCheckpointCallback,
    algo_class,
    latest_checkpoint,
    load_law_ddpg,
    load_sb3,
)
from reweight_gym.agents.sb3.ddpg import LAWDDPG
from reweight_gym.agents.sb3.envs import make_reweight_vec_env
from reweight_gym.agents.sb3.train import train_law_ddpg, train_sb3

__all__ = ["LAWDDPG", "SB3_ALGOS", "AtomicCheckpointCallback", "LAWInfoCallback", "algo_class",
           "latest_checkpoint", "load_law_ddpg", "load_sb3", "make_reweight_vec_env",
           "train_law_ddpg", "train_sb3"]
