"""reweight-gym: training a classifier on biased data as a reinforcement-learning problem.

``import reweight_gym`` registers the Gymnasium ids ``Reweight-CIFAR-v0``,
``Reweight-CIFAR100-v0``, ``Reweight-Digits-v0`` and ``Reweight-ImageFolder-v0`` by entry-point
string; the environment, the trainer and torch are imported when an environment is made or one
of the names below is first used. It never imports Stable-Baselines3 or Ray.

``tune_cpu_allocator()`` opts the calling process in to the CPU allocator tuning that the
``reweight-gym`` command applies (``reweight_gym/allocator.py``).
"""

from reweight_gym._lazy import lazy_exports
from reweight_gym.envs import ENV_IDS, register_envs

__version__ = "0.1.0"

register_envs()

__getattr__, __dir__ = lazy_exports(__name__, {
    "EnvConfig": "reweight_gym.config",
    "PRESETS": "reweight_gym.config",
    "ReweightEnv": "reweight_gym.envs.reweight_env",
    "RecordEpisode": "reweight_gym.envs.record",
    "tune_cpu_allocator": "reweight_gym.allocator",
})

__all__ = ["ENV_IDS", "PRESETS", "EnvConfig", "RecordEpisode", "ReweightEnv", "__version__",
           "register_envs", "tune_cpu_allocator"]
