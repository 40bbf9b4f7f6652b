"""Strict JSON for results and trajectories: numpy values become Python ones, NaN and infinities
become ``null``, tuples become lists. One conversion for the results store
(:mod:`reweight_gym.benchmark.store`) and the episode recorder (:mod:`reweight_gym.envs.record`),
so a value compares equal after a round trip through a file."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np


def jsonable(o: Any) -> Any:
    """``o`` as plain JSON values: dicts, lists, str, int, float (finite), bool, ``None``."""
    if isinstance(o, dict):
        return {str(k): jsonable(v) for k, v in o.items()}
    if isinstance(o, (list, tuple)):
        return [jsonable(v) for v in o]
    if isinstance(o, np.ndarray):
        return jsonable(o.tolist())
    if isinstance(o, np.generic):
        return jsonable(o.item())
    if isinstance(o, float):
        return o if math.isfinite(o) else None
    if o is None or isinstance(o, (bool, int, str)):
        return o
    if hasattr(o, "tolist"):  # torch tensors
        return jsonable(o.tolist())
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def dumps(o: Any, **kwargs: Any) -> str:
    """Strict JSON text of ``o`` (:func:`jsonable` first, then ``allow_nan=False``)."""
    return json.dumps(jsonable(o), allow_nan=False, **kwargs)
