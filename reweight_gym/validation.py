"""The one validator of user input: config fields, method keywords, agent options, JSON flags.

Every error is a ``ValueError`` that names the field, the value and what is allowed:
``invalid <name>=<value!r>: <what is allowed>``. ``name`` is what the user wrote, e.g. a config
field (``noise_rate``), a method keyword (``mwnet kwarg meta_lr``) or an agent option
(``actor_lr``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any


def invalid(name: str, value: Any, allowed: str) -> ValueError:
    """The one error format: ``invalid <name>=<value!r>: <allowed>``."""
    return ValueError(f"invalid {name}={value!r}: {allowed}")


def check_number(name: str, value: Any, lo: float | None = None, hi: float | None = None, *,
                 lo_open: bool = False, hi_open: bool = False, integer: bool = False,
                 optional: bool = False) -> None:
    """Raise unless ``value`` is a finite number (an integer with ``integer``) within
    [lo, hi] (open ends with ``lo_open`` / ``hi_open``); ``None`` passes with ``optional``."""
    if value is None and optional:
        return
    ok_type = isinstance(value, int) if integer else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok_type or not math.isfinite(value):
        raise invalid(name, value, "must be an integer" if integer else "must be a finite number")
    if lo is not None and (value < lo or (lo_open and value == lo)):
        raise invalid(name, value, f"must be {'>' if lo_open else '>='} {lo}")
    if hi is not None and (value > hi or (hi_open and value == hi)):
        raise invalid(name, value, f"must be {'<' if hi_open else '<='} {hi}")


def check_choice(name: str, value: Any, allowed: Sequence[Any]) -> None:
    """Raise unless ``value`` is one of ``allowed``."""
    if value not in allowed:
        raise invalid(name, value, f"allowed: {', '.join(map(str, allowed))}")


def check_bool(name: str, value: Any) -> None:
    """Raise unless ``value`` is ``True`` or ``False`` (not 0/1, not a string)."""
    if not isinstance(value, bool):
        raise invalid(name, value, "must be true or false")


def parse_json_object(text: str, flag: str) -> dict[str, Any]:
    """A command-line JSON object (``--env-kwargs '{"noise_rate": 0.4}'``); ``ValueError``
    naming the flag otherwise."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"invalid {flag} {text!r}: not valid JSON ({e.msg} at position "
                         f"{e.pos})") from None
    if not isinstance(value, dict):
        raise ValueError(f"invalid {flag} {text!r}: must be a JSON object like "
                         "'{\"preset\": \"tiny\"}'")
    return value
