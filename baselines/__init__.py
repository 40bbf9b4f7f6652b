"""Weighting baselines on the shared substrate: classic (uniform, focal, class-balanced, SPL) and
meta-gradient (MW-Net, GDW, FSR, NRT) weighers, one module per method (NRT: a subpackage); the
meta-gradient machinery that MW-Net, GDW and NRT share is :mod:`reweight_gym.baselines.meta`.

The methods reach the rest of the package by registration (:mod:`reweight_gym.registry`):
:func:`register`, an entry point of the group ``reweight_gym.plugins``, registers each name with
its weigher class as ``"module:attr"``, imported on first use. ``make_weigher(name, cfg,
**method_kwargs)`` builds a weigher for a config; ``run(method, seed=..., **env_kwargs)`` trains
one seeded run (:func:`reweight_gym.runner.run`) and returns its
:class:`~reweight_gym.runner.RunResult`.
"""

from __future__ import annotations

from typing import Any

from reweight_gym.registry import make_weigher, method_kwarg_names, register_method

#: Each method's weigher class.
METHODS: dict[str, str] = {
    "uniform": "reweight_gym.baselines.uniform:UniformBaseline",
    "focal": "reweight_gym.baselines.focal:FocalWeigher",
    "class_balanced": "reweight_gym.baselines.class_balanced:ClassBalancedWeigher",
    "spl": "reweight_gym.baselines.spl:SelfPacedWeigher",
    "mwnet": "reweight_gym.baselines.mwnet:MWNetWeigher",
    "gdw": "reweight_gym.baselines.gdw:GDWWeigher",
    "fsr": "reweight_gym.baselines.fsr:FSRWeigher",
    "fsr_relabel_mixup": "reweight_gym.baselines.fsr:FSRRelabelMixupWeigher",
    "nrt": "reweight_gym.baselines.nrt:NRTWeigher",
}
METHOD_NAMES = tuple(METHODS)


def register() -> None:
    """Register every baseline (the ``reweight_gym.plugins`` entry point ``baselines``)."""
    for name, target in METHODS.items():
        register_method(name, target)


def run(method: str, seed: int = 0, method_kwargs: dict[str, Any] | None = None,
        dataset: str = "digits", preset: str = "tiny", **env_kwargs: Any) -> Any:
    """Train ``method`` once on ``EnvConfig.resolve(dataset, preset, **env_kwargs)`` with the
    episode seed of ``reset(seed=seed)``: :func:`reweight_gym.runner.run` without a reference
    (no rewards)."""
    from reweight_gym.runner import RunSpec
    from reweight_gym.runner import run as run_spec

    spec = RunSpec(dataset, "custom", {}, method, seed, preset,
                   env_overrides=env_kwargs, method_kwargs=dict(method_kwargs or {}))
    return run_spec(spec)


__all__ = ["METHODS", "METHOD_NAMES", "make_weigher", "method_kwarg_names", "register", "run"]
