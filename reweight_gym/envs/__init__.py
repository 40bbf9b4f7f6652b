"""Gymnasium environments and their registration (done on ``import reweight_gym``).

Registration names the environment by its entry-point string, so it imports neither the
environment nor the trainer; the names below are imported on first use.
"""

from __future__ import annotations

import gymnasium as gym

from reweight_gym._lazy import lazy_exports

ENV_IDS = {
    "Reweight-CIFAR-v0": "cifar10",
    "Reweight-CIFAR100-v0": "cifar100",
    "Reweight-Digits-v0": "digits",
    "Reweight-ImageFolder-v0": "imagefolder",
}
#: The environment that draws a training run from an instance set at every reset
#: (:mod:`reweight_gym.envs.instances`; ``instance_set=`` a built-in name, a JSON file or a dict).
INSTANCES_ENV_ID = "Reweight-Instances-v0"
ENTRY_POINT = "reweight_gym.envs.reweight_env:ReweightEnv"


def register_envs() -> None:
    """Register every environment id with Gymnasium (idempotent)."""
    for env_id, dataset in ENV_IDS.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=ENTRY_POINT, kwargs={"dataset": dataset})
    if INSTANCES_ENV_ID not in gym.registry:
        gym.register(id=INSTANCES_ENV_ID, entry_point=ENTRY_POINT,
                     kwargs={"instance_set": "train"})


__getattr__, __dir__ = lazy_exports(__name__, {
    "ReweightEnv": "reweight_gym.envs.reweight_env",
    "RecordEpisode": "reweight_gym.envs.record",
    "Episode": "reweight_gym.envs.episode",
    "Instance": "reweight_gym.envs.instances",
    "InstanceSet": "reweight_gym.envs.instances",
    "load_instance_set": "reweight_gym.envs.instances",
    "ReferenceCache": "reweight_gym.envs.reference_cache",
    "ReferenceTrace": "reweight_gym.envs.episode",
    "StageResult": "reweight_gym.envs.episode",
    "stage_reward": "reweight_gym.envs.episode",
    "StageObserver": "reweight_gym.envs.observation",
    "episode_seed": "reweight_gym.envs.observation",
    "observation_space": "reweight_gym.envs.observation",
})

__all__ = ["ENTRY_POINT", "ENV_IDS", "INSTANCES_ENV_ID", "Episode", "Instance", "InstanceSet",
           "RecordEpisode", "ReferenceCache", "ReferenceTrace", "ReweightEnv", "StageObserver",
           "StageResult", "episode_seed", "load_instance_set", "observation_space",
           "register_envs", "stage_reward"]
