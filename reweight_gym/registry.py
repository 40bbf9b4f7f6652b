"""Registries: weighting methods, fixed policies and trained-agent formats, found by name.

What a run can use is registered under a name, the way Gymnasium registers environments:

- a *method* (``register_method``) is a weigher class (or factory) called as
  ``factory(cfg, **method_kwargs)``: the baselines (``uniform``, ``mwnet``, ...);
- a *policy* (``register_policy``) is a fixed weighting policy with SB3's ``predict``, called as
  ``factory(observation_space, action_space, feature_names=..., seed=..., **kwargs)``:
  ``easy_first``, ``random``, ...;
- an *agent format* (``register_agent_format``) loads a trained agent from a path: a
  ``detect(path) -> bool`` and a ``load(path) -> agent`` (SB3 ``.zip``, RLlib checkpoints).

A factory is given as an object or as a ``"module:attr"`` string imported on first use, so a
registration costs no import. Providers register through the entry-point group
``reweight_gym.plugins``: each entry point names a function that registers its names, loaded on
the first lookup. The package's own baselines, policies and agent formats are entry points of
this distribution (``pyproject.toml``), exactly as a third-party package adds its own::

    [project.entry-points."reweight_gym.plugins"]
    my_methods = "my_package:register"   # def register(): register_method("mine", MyWeigher)

This module imports nothing of the package's upper layers: they come in through the entry points.
"""

from __future__ import annotations

import importlib
import inspect
import os
import threading
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from reweight_gym.validation import invalid

PLUGIN_GROUP = "reweight_gym.plugins"
KINDS = ("baseline", "policy")


@dataclass
class _Entry:
    """A registered name: its factory (an object, or ``"module:attr"`` until first use)."""

    name: str
    target: Any
    provider: str

    def load(self) -> Any:
        if isinstance(self.target, str):
            module, _, attr = self.target.partition(":")
            if not attr:
                raise ValueError(f"invalid entry point {self.target!r} for {self.name!r}: "
                                 "expected 'module:attr'")
            self.target = getattr(importlib.import_module(module), attr)
        return self.target


@dataclass
class _AgentFormat:
    name: str
    detect: _Entry
    load: _Entry


_METHODS: dict[str, _Entry] = {}
_POLICIES: dict[str, _Entry] = {}
_FORMATS: dict[str, _AgentFormat] = {}
_plugins_loaded = False
_lock = threading.RLock()
_provider = threading.local()


def _current_provider() -> str:
    return getattr(_provider, "name", "__main__")


def _add(table: dict[str, Any], what: str, name: str, value: Any, override: bool) -> None:
    if not isinstance(name, str) or not name or any(c in name for c in ",|" + os.sep):
        raise invalid(f"{what} name", name, "must be a non-empty string without ',', '|' or "
                      f"{os.sep!r}")
    with _lock:
        if name in table and not override:
            raise ValueError(f"{what} {name!r} is already registered (by "
                             f"{_provider_of(table[name])}); pass override=True to replace it")
        table[name] = value


def _provider_of(entry: Any) -> str:
    return entry.provider if isinstance(entry, _Entry) else entry.load.provider


def register_method(name: str, factory: Any, *, override: bool = False) -> None:
    """Register a weighting method: ``factory(cfg, **method_kwargs)`` returns a
    :class:`~reweight_gym.training.weigher.Weigher` (a class, a function, or ``"module:attr"``)."""
    _add(_METHODS, "method", name, _Entry(name, factory, _current_provider()), override)


def register_policy(name: str, factory: Any, *, override: bool = False) -> None:
    """Register a fixed policy: ``factory(observation_space, action_space, *,
    feature_names=None, seed=0, **kwargs)`` returns an object with SB3's ``predict``."""
    _add(_POLICIES, "policy", name, _Entry(name, factory, _current_provider()), override)


def register_agent_format(name: str, detect: Any, load: Any, *, override: bool = False) -> None:
    """Register a trained-agent format: ``detect(path) -> bool`` tells whether ``path`` holds
    such an agent (cheaply, without its library), ``load(path)`` loads it."""
    provider = _current_provider()
    _add(_FORMATS, "agent format", name,
         _AgentFormat(name, _Entry(name, detect, provider), _Entry(name, load, provider)),
         override)


def load_plugins() -> None:
    """Call the ``reweight_gym.plugins`` entry points once (the first lookup does this)."""
    global _plugins_loaded
    with _lock:
        if _plugins_loaded:
            return
        _plugins_loaded = True
        for ep in sorted(entry_points(group=PLUGIN_GROUP), key=lambda e: e.name):
            _provider.name = f"entry point {ep.name} = {ep.value}"
            try:
                ep.load()()
            finally:
                _provider.name = "__main__"


# ---------------------------------------------------------------------- methods
def method_names() -> tuple[str, ...]:
    """The registered weighting methods, in registration order."""
    load_plugins()
    return tuple(_METHODS)


def policy_names() -> tuple[str, ...]:
    """The registered fixed policies, in registration order."""
    load_plugins()
    return tuple(_POLICIES)


def benchmark_names() -> tuple[str, ...]:
    """What a benchmark can run by name: the methods, then the policies that are not also a
    method (``uniform`` is both: as a method, the reference baseline)."""
    methods = method_names()
    return methods + tuple(p for p in policy_names() if p not in methods)


def method_kind(name: str) -> str:
    """``baseline`` (a registered method), ``policy`` (a registered fixed policy) or ``agent``
    (a path an agent format detects); ``ValueError`` / ``FileNotFoundError`` otherwise."""
    if name in method_names():
        return "baseline"
    if name in policy_names():
        return "policy"
    if os.path.exists(name):
        _check_format(name)
        return "agent"
    if os.sep in name or name.endswith(".zip"):
        raise FileNotFoundError(f"invalid method {name!r}: checkpoint not found")
    raise ValueError(f"invalid method {name!r}: allowed: {', '.join(benchmark_names())}, or a "
                     "trained agent's checkpoint path")


def method_factory(name: str) -> Callable[..., Any]:
    """The factory registered for method ``name``."""
    load_plugins()
    if name not in _METHODS:
        raise invalid("method", name, f"allowed: {', '.join(_METHODS) or '(none registered)'}")
    return _METHODS[name].load()


def method_kwarg_names(name: str) -> tuple[str, ...]:
    """The keyword arguments method ``name`` accepts besides the config (for a class, those of
    ``__init__`` up its base classes while each passes ``**kwargs`` on)."""
    factory = method_factory(name)
    funcs = ([c.__dict__["__init__"] for c in factory.__mro__ if "__init__" in c.__dict__]
             if inspect.isclass(factory) else [factory])
    names: list[str] = []
    for func in funcs:
        params = [p for p in inspect.signature(func).parameters.values() if p.name != "self"]
        names += [p.name for p in params[1:]  # the first is the config
                  if p.name not in names and p.kind not in (p.VAR_KEYWORD, p.VAR_POSITIONAL)]
        if not any(p.kind == p.VAR_KEYWORD for p in params):
            break
    return tuple(names)


def make_weigher(name: str, cfg: Any = None, **method_kwargs: Any) -> Any:
    """The weigher of method ``name`` for the run ``cfg``; an unknown name or keyword is a
    ``ValueError`` naming it and what is allowed (the method validates the values)."""
    factory = method_factory(name)
    allowed = method_kwarg_names(name)
    for key in method_kwargs:
        if key not in allowed:
            raise ValueError(f"invalid {name} kwarg {key!r}: allowed: "
                             f"{', '.join(allowed) if allowed else '(none)'}")
    return factory(cfg, **method_kwargs)


# ---------------------------------------------------------------------- policies
def make_policy(name: str, observation_space: Any, action_space: Any, *,
                feature_names: Any = None, seed: int | None = 0, **kwargs: Any) -> Any:
    """The fixed policy ``name`` for these spaces (``feature_names`` locates features such as
    the loss in the action)."""
    load_plugins()
    if name not in _POLICIES:
        raise ValueError(f"unknown policy {name!r}: allowed: {', '.join(_POLICIES)}")
    factory = _POLICIES[name].load()
    try:
        return factory(observation_space, action_space, feature_names=feature_names, seed=seed,
                       **kwargs)
    except TypeError as e:
        raise ValueError(f"invalid {name} kwarg(s) {sorted(kwargs)}: {e}") from None


# ---------------------------------------------------------------------- agent formats
def format_names() -> tuple[str, ...]:
    load_plugins()
    return tuple(_FORMATS)


def agent_format(path: str) -> str | None:
    """The name of the first registered format that detects an agent at ``path``."""
    load_plugins()
    for fmt in _FORMATS.values():
        if fmt.detect.load()(path):
            return fmt.name
    return None


def load_agent(path: str) -> Any:
    """The trained agent at ``path`` (``FileNotFoundError`` if nothing is there, ``ValueError``
    if no registered format recognises it)."""
    if not os.path.exists(path):
        raise FileNotFoundError(f"checkpoint not found: {path!r}")
    return _FORMATS[_check_format(path)].load.load()(path)


def _check_format(path: str) -> str:
    """The format of the agent at the existing ``path``: a directory no format recognises has
    no checkpoint (``FileNotFoundError``), a file is of an unknown kind (``ValueError``)."""
    name = agent_format(path)
    if name is None:
        formats = ", ".join(format_names()) or "none registered"
        if os.path.isdir(path):
            raise FileNotFoundError(f"checkpoint not found: no agent checkpoint in {path!r} "
                                    f"(formats: {formats})")
        raise ValueError(f"cannot load an agent from {path!r}: no registered agent format "
                         f"recognises it (formats: {formats})")
    return name


__all__ = ["PLUGIN_GROUP", "agent_format", "benchmark_names", "format_names", "load_agent",
           "load_plugins", "make_policy", "make_weigher", "method_factory", "method_kind",
           "method_kwarg_names", "method_names", "policy_names", "register_agent_format",
           "register_method", "register_policy"]
