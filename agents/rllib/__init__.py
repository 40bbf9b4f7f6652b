"""RLlib (new API stack) agents: DDPG (not shipped by RLlib >= 2.9), SAC and PPO configs.

Importing this package imports Ray; ``import agents`` does not.
"""

from agents.rllib.configs import (
    RLLIB_ALGOS,
    make_config,
    ppo_config,
    register_env,
    sac_config,
)
from agents.rllib.ddpg import DDPG, DDPGConfig
from agents.rllib.learner import DDPGTorchLearner
from agents.rllib.rl_module import DDPGTorchRLModule

__all__ = [
    "DDPG",
    "RLLIB_ALGOS",
    "DDPGConfig",
    "DDPGTorchLearner",
    "DDPGTorchRLModule",
    "make_config",
    "ppo_config",
    "register_env",
    "sac_config",
]
