"""Weighting baselines on the shared substrate: classic (uniform, focal, class-balanced, SPL) and
meta-gradient (MW-Net, GDW, FSR, NRT) weighers, one module per method (NRT: a subpackage); the
meta-gradient machinery that MW-Net, GDW and NRT share is :mod:`reweight_gym.baselines.meta`.

``METHODS`` maps each name to ``"module:attr"`` and is imported on first use, so importing this
package stays light. ``make_weigher(name, cfg, **method_kwargs)`` builds a weigher for a config;
``run(method, seed=..., **env_kwargs)`` trains one seeded run and returns its metrics.
"""

from __future__ import annotations

import importlib
import inspect
from typing import Any

from reweight_gym.config import EnvConfig
from reweight_gym.training.weigher import Weigher
from reweight_gym.validation import check_choice

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


def weigher_class(name: str) -> type[Weigher]:
    """The weigher class registered under ``name`` (imported on first use)."""
    check_choice("method", name, METHOD_NAMES)
    module, attr = METHODS[name].split(":")
    return getattr(importlib.import_module(module), attr)


def method_kwarg_names(name: str) -> tuple[str, ...]:
    """The keyword arguments a method accepts (besides the config); a weigher whose
    ``__init__`` passes ``**kwargs`` on also accepts those of its base class."""
    names: list[str] = []
    for cls in weigher_class(name).__mro__:
        if "__init__" not in cls.__dict__:
            continue
        params = inspect.signature(cls.__dict__["__init__"]).parameters.values()
        names += [p.name for p in params if p.name not in ("self", "cfg", *names)
                  and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            break
    return tuple(names)


def make_weigher(name: str, cfg: EnvConfig | None = None, **method_kwargs: Any) -> Weigher:
    """Build the weigher of method ``name`` for the run ``cfg``; bad names or keywords raise a
    ``ValueError`` naming the field, the value and what is allowed."""
    cls = weigher_class(name)
    allowed = method_kwarg_names(name)
    for key in method_kwargs:
        if key not in allowed:
            raise ValueError(f"invalid {name} kwarg {key!r}: allowed: "
                             f"{', '.join(allowed) if allowed else '(none)'}")
    return cls(cfg, **method_kwargs)


def run(method: str, seed: int = 0, method_kwargs: dict[str, Any] | None = None,
        progress: bool = False, **env_kwargs: Any) -> dict[str, Any]:
    """Train one method on one config; see :func:`reweight_gym.baselines.runner.run`."""
    from reweight_gym.baselines.runner import run as _run

    return _run(method, seed=seed, method_kwargs=method_kwargs, progress=progress, **env_kwargs)


__all__ = ["METHODS", "METHOD_NAMES", "make_weigher", "method_kwarg_names", "run",
           "weigher_class"]
