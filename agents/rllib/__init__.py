"""RLlib (new API stack) agents: LAW's DDPG (RLlib >= 2.9 ships none), SAC and PPO configs.

``import reweight_gym.agents.rllib`` registers every ``Reweight-*`` id with Ray
(``ray.tune.register_env``, seen by every env runner on every node) and the ``"DDPG"`` trainable
with Tune, so RLlib's own idioms work unchanged::

    import reweight_gym.agents.rllib  # noqa: F401
    from reweight_gym.agents.rllib import DDPGConfig
    config = DDPGConfig().environment("Reweight-Digits-v0", env_config={"preset": "tiny"})
    algo = config.build_algo()
    algo.train()
    tune.Tuner("DDPG", param_space=config)

Importing this package imports Ray; ``import reweight_gym.agents`` does not.
"""

from ray.tune import register_trainable

from reweight_gym.agents.rllib.configs import RLLIB_ALGOS, make_config, ppo_config, sac_config
from reweight_gym.agents.rllib.ddpg import DDPG, DDPGConfig
from reweight_gym.agents.rllib.envs import register_env, register_reweight_envs
from reweight_gym.agents.rllib.learner import DDPGTorchLearner
from reweight_gym.agents.rllib.rl_module import DDPGTorchRLModule

register_reweight_envs()
register_trainable("DDPG", DDPG)

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
