"""RL agents for the LAW environment (Li et al., AAAI 2020).

- :mod:`reweight_gym.agents.sb3`: ``LAWDDPG``, DDPG on Stable-Baselines3 with LAW's Full Data
  Update, and its callbacks, vectorised env, checkpoints and training loop (one module each);
- :mod:`reweight_gym.agents.rllib`: DDPG on RLlib's new API stack (``DDPGConfig``) and ready
  SAC/PPO configs;
- :mod:`reweight_gym.agents.policies`: fixed policies (``POLICY_NAMES``: uniform, easy_first,
  hard_first, random);
- :mod:`reweight_gym.agents.evaluate`: evaluation and transfer of any agent or policy;
- :mod:`reweight_gym.agents.cli`: the ``train`` and ``evaluate`` subcommands.

``import reweight_gym.agents`` stays light: it imports neither Stable-Baselines3 nor Ray (import the
submodules for those).
"""

from reweight_gym.agents.policies import POLICY_NAMES, make_policy

__all__ = ["POLICY_NAMES", "make_policy"]
