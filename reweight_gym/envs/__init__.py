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
ENTRY_POINT = "reweight_gym.envs.reweight_env:ReweightEnv"


def register_envs() -> None:
    """Register every environment id with Gymnasium (idempotent)."""
    for env_id, dataset in ENV_IDS.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point=ENTRY_POINT, kwargs={"dataset": dataset})


__getattr__, __dir__ = lazy_exports(__name__, {
    "ReweightEnv": "reweight_gym.envs.reweight_env",
    "RecordEpisode": "reweight_gym.envs.record",
    "Episode": "reweight_gym.envs.episode",
    "ReferenceTrace": "reweight_gym.envs.episode",
    "StageResult": "reweight_gym.envs.episode",
    "stage_reward": "reweight_gym.envs.episode",
    "StageObserver": "reweight_gym.envs.observation",
    "episode_seed": "reweight_gym.envs.observation",
    "observation_space": "reweight_gym.envs.observation",
})

__all__ = ["ENTRY_POINT", "ENV_IDS", "Episode", "RecordEpisode", "ReferenceTrace", "ReweightEnv",
           "StageObserver", "StageResult", "episode_seed", "observation_space", "register_envs",
           "stage_reward"]
