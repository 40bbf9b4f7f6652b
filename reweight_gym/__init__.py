"""reweight-gym: training a classifier on biased data as a reinforcement-learning problem.

``import reweight_gym`` registers the Gymnasium ids ``Reweight-CIFAR-v0``,
``Reweight-CIFAR100-v0``, ``Reweight-Digits-v0`` and ``Reweight-ImageFolder-v0``. It never imports
Stable-Baselines3 or Ray.
"""

from reweight_gym.config import PRESETS, EnvConfig
from reweight_gym.envs import ENV_IDS, ReweightEnv, register_envs

__version__ = "0.1.0"

register_envs()

__all__ = ["ENV_IDS", "PRESETS", "EnvConfig", "ReweightEnv", "__version__", "register_envs"]
