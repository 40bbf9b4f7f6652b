"""Logging callback of the SB3 agents: LAW's per-stage and per-episode values to TensorBoard."""

from __future__ import annotations

from typing import Any

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

INFO_KEYS = ("acc_target", "acc_reference", "noisy_weight_mean", "clean_weight_mean")
FINAL_KEYS = ("test_acc_target", "test_acc_reference")


class LAWInfoCallback(BaseCallback):
    """Logs to TensorBoard, at every env step (= one stage of every parallel training run):
    the per-stage reward, the env's accuracies and noisy/clean mean weights (``law/...``), and
    at each episode end its return and final test accuracies (``law/episode_return``, ...)."""

    def _init_callback(self) -> None:
        self._returns = np.zeros(self.training_env.num_envs if self.training_env else 1)

    def _on_step(self) -> bool:
        rewards = np.asarray(self.locals.get("rewards", []), dtype=np.float64).reshape(-1)
        infos: list[dict[str, Any]] = list(self.locals.get("infos", []))
        dones = np.asarray(self.locals.get("dones", np.zeros(len(rewards))), dtype=bool)
        if len(rewards) != len(self._returns):
            self._returns = np.zeros(len(rewards))
        self._returns += rewards
        self.logger.record("law/stage_reward", float(rewards.mean()) if len(rewards) else 0.0)
        for key in INFO_KEYS:
            vals = [float(i[key]) for i in infos if key in i and i[key] is not None]
            vals = [v for v in vals if np.isfinite(v)]
            if vals:
                self.logger.record(f"law/{key}", float(np.mean(vals)))
        for env_i, done in enumerate(dones):
            if not done:
                continue
            self.logger.record("law/episode_return", float(self._returns[env_i]))
            info = infos[env_i] if env_i < len(infos) else {}
            for key in FINAL_KEYS:
                if key in info:
                    self.logger.record(f"law/{key}", float(info[key]))
            self._returns[env_i] = 0.0
        self.logger.dump(self.num_timesteps)
        return True
