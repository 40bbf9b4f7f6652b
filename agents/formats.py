"""The trained-agent formats: where an agent is recognised and how it is loaded.

- ``sb3``: a Stable-Baselines3 ``.zip``, or a ``reweight-gym train --lib sb3`` output directory
  (its newest checkpoint); the algorithm comes from the directory's ``agent.json``.
- ``rllib``: an RLlib algorithm checkpoint, or a directory of ``checkpoint_<iteration>`` ones.

Detection reads only files, so that recognising a path needs neither library; loading imports
the one it needs. :func:`register` (the ``reweight_gym.plugins`` entry point ``agent_formats``)
registers both with :mod:`reweight_gym.registry`.
"""

from __future__ import annotations

import os
from typing import Any

from reweight_gym.agents.runs import find_rllib_checkpoint, read_agent_meta
from reweight_gym.registry import register_agent_format


def _meta_lib(path: str) -> str | None:
    meta = read_agent_meta(path) if os.path.isdir(path) else None
    return (meta or {}).get("lib")


def is_sb3(path: str) -> bool:
    """An SB3 ``.zip`` file, or a training directory whose ``agent.json`` says ``sb3``."""
    return (os.path.isfile(path) and path.endswith(".zip")) or _meta_lib(path) == "sb3"


def load_sb3_agent(path: str) -> Any:
    from reweight_gym.agents.sb3 import latest_checkpoint, load_sb3

    if os.path.isdir(path):
        algo = (read_agent_meta(path) or {}).get("algo", "ddpg")
        last = latest_checkpoint(path, algo)
        if last is None:
            raise FileNotFoundError(f"checkpoint not found: no SB3 checkpoint in {path!r}")
        return load_sb3(last, algo=algo)
    meta = read_agent_meta(os.path.dirname(os.path.abspath(path))) or {}
    return load_sb3(path, algo=meta.get("algo", "ddpg"))


def is_rllib(path: str) -> bool:
    """An RLlib checkpoint, or a directory holding ``checkpoint_<iteration>`` ones."""
    return os.path.isdir(path) and _meta_lib(path) != "sb3" and \
        find_rllib_checkpoint(path) is not None


def load_rllib_agent(path: str) -> Any:
    from reweight_gym.agents.rllib.agent import RLlibAgent

    return RLlibAgent.from_checkpoint(path)


def register() -> None:
    """Register the ``sb3`` and ``rllib`` formats."""
    register_agent_format("sb3", is_sb3, load_sb3_agent)
    register_agent_format("rllib", is_rllib, load_rllib_agent)
