"""The one run path: a method on a config and seed, and the one record of what it gave.

- :mod:`.result`: :class:`RunSpec` (what to run) and :class:`RunResult` (what it gave, a
  versioned schema every stored row follows);
- :mod:`.controllers`: what hands the episode its weigher at each stage (a baseline, a fixed
  policy, a trained agent, recorded actions), found by name in :mod:`reweight_gym.registry`;
- :mod:`.run`: :func:`run`, the training run itself.

The benchmark, ``reweight_gym.baselines.run``, the agents' evaluation protocol, ``reweight-gym
replay`` and the ``benchmarks/`` scripts all run through :func:`run`.
"""

from typing import TYPE_CHECKING

from reweight_gym._lazy import lazy_exports

if TYPE_CHECKING:  # what the lazy exports below resolve to, for the type checker
    from reweight_gym.runner.controllers import (
        ActionsController,
        Controller,
        PolicyController,
        make_controller,
    )
    from reweight_gym.runner.result import (
        REFERENCE_METHOD,
        RESULT_KEYS,
        REWARD_KEYS,
        SCHEMA_VERSION,
        RunResult,
        RunSpec,
        setting_id,
    )
    from reweight_gym.runner.run import run

__getattr__, __dir__ = lazy_exports(__name__, {
    "RunSpec": "reweight_gym.runner.result",
    "RunResult": "reweight_gym.runner.result",
    "REFERENCE_METHOD": "reweight_gym.runner.result",
    "RESULT_KEYS": "reweight_gym.runner.result",
    "REWARD_KEYS": "reweight_gym.runner.result",
    "SCHEMA_VERSION": "reweight_gym.runner.result",
    "setting_id": "reweight_gym.runner.result",
    "run": "reweight_gym.runner.run",
    "Controller": "reweight_gym.runner.controllers",
    "PolicyController": "reweight_gym.runner.controllers",
    "ActionsController": "reweight_gym.runner.controllers",
    "make_controller": "reweight_gym.runner.controllers",
})

__all__ = ["REFERENCE_METHOD", "RESULT_KEYS", "REWARD_KEYS", "SCHEMA_VERSION", "ActionsController",
           "Controller", "PolicyController", "RunResult", "RunSpec", "make_controller", "run",
           "setting_id"]
