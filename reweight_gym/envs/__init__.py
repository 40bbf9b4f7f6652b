"""Gymnasium environments and their registration (done on ``import reweight_gym``)."""

from __future__ import annotations

import gymnasium as gym

from reweight_gym.envs.reweight_env import ReweightEnv, stage_reward

ENV_IDS = {
    "Reweight-CIFAR-v0": "cifar10",
    "Reweight-CIFAR100-v0": "cifar100",
    "Reweight-Digits-v0": "digits",
    "Reweight-ImageFolder-v0": "imagefolder",
}


def register_envs() -> None:
    """Register every environment id with Gymnasium (idempotent)."""
    for env_id, dataset in ENV_IDS.items():
        if env_id not in gym.registry:
            gym.register(id=env_id, entry_point="reweight_gym.envs.reweight_env:ReweightEnv",
                         kwargs={"dataset": dataset})


__all__ = ["ENV_IDS", "ReweightEnv", "register_envs", "stage_reward"]
