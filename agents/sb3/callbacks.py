"""Callbacks of the SB3 agents: LAW's per-stage and per-episode values to TensorBoard, and a
progress line for the console."""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
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


class ProgressCallback(BaseCallback):
    """Prints one progress line through ``log``: after the first finished episode, then whenever
    ``every_s`` seconds have passed since the last line (checked at every env step, i.e. once a
    stage), and at the end of training. The line gives the episodes finished (over all parallel
    envs) out of ``total_episodes``, the mean return of the last ``window`` episodes, the agent's
    gradient updates so far and the elapsed time; it works whether or not the output is a
    terminal (no carriage returns)."""

    def __init__(self, total_episodes: int, log: Callable[[str], None], every_s: float = 30.0,
                 window: int = 10, done_episodes: int = 0) -> None:
        super().__init__()
        self.total_episodes = int(total_episodes)
        self.log = log
        self.every_s = float(every_s)
        self.episodes = int(done_episodes)
        self.recent: deque[float] = deque(maxlen=window)
        self._returns = np.zeros(1)
        self._t0 = self._last = time.monotonic()
        self._printed_first = False

    def _init_callback(self) -> None:
        self._returns = np.zeros(self.training_env.num_envs if self.training_env else 1)
        self._t0 = self._last = time.monotonic()

    def line(self) -> str:
        ret = f"{np.mean(self.recent):.3f}" if self.recent else "n/a"
        updates = int(getattr(self.model, "_n_updates", 0))
        return (f"episode {self.episodes}/{self.total_episodes}: mean return of the last "
                f"{len(self.recent)} {ret}, {updates} gradient updates, "
                f"{time.monotonic() - self._t0:.0f} s")

    def _on_step(self) -> bool:
        rewards = np.asarray(self.locals.get("rewards", []), dtype=np.float64).reshape(-1)
        dones = np.asarray(self.locals.get("dones", np.zeros(len(rewards))), dtype=bool)
        if len(rewards) != len(self._returns):
            self._returns = np.zeros(len(rewards))
        self._returns += rewards
        for i in np.flatnonzero(dones):
            self.recent.append(float(self._returns[i]))
            self._returns[i] = 0.0
            self.episodes += 1
        now = time.monotonic()
        if (self.recent and not self._printed_first) or now - self._last >= self.every_s:
            self._printed_first = bool(self.recent)
            self._last = now
            self.log(self.line())
        return True

    def _on_training_end(self) -> None:
        self.log(self.line())
