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


def check_text(name: str, value: Any, optional: bool = False) -> None:
    """Raise unless ``value`` is a non-empty string without NUL characters (a path, a name);
    ``None`` passes with ``optional``."""
    if value is None and optional:
        return
    if not isinstance(value, str) or not value or "\x00" in value:
        raise invalid(name, value, "must be a non-empty string" + (" or null" if optional else ""))


def check_device(name: str, value: Any) -> None:
    """Raise unless ``value`` names a torch device this machine has: ``cpu``, ``auto``,
    ``cuda`` / ``cuda:N`` (with CUDA and at least N + 1 GPUs) or ``mps`` (where available)."""
    allowed = "allowed: cpu, auto, cuda, cuda:N, mps"
    if not isinstance(value, str) or not (value in ("cpu", "auto", "cuda", "mps")
                                          or value.startswith("cuda:")):
        raise invalid(name, value, allowed)
    import torch  # late: validating a config must not import torch before a device is named

    if value.startswith("cuda"):
        index = value[5:] if value.startswith("cuda:") else "0"
        if not index.isdigit() or not index.isascii():
            raise invalid(name, value, f"{allowed} (N a GPU index)")
        if not torch.cuda.is_available():
            raise invalid(name, value, "CUDA is not available on this machine; use cpu or auto")
        if int(index) >= torch.cuda.device_count():
            raise invalid(name, value, f"this machine has {torch.cuda.device_count()} GPU(s)")
    if value == "mps" and not torch.backends.mps.is_available():
        raise invalid(name, value, "MPS is not available on this machine; use cpu or auto")


def set_torch_threads(value: Any, flag: str = "--threads") -> int:
    """Set torch's intra-op thread count to ``value``, an integer >= 1 (``ValueError`` naming
    ``flag`` otherwise); returns it."""
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(f"invalid {flag} {value!r}: must be an integer >= 1")
    import torch

    torch.set_num_threads(value)
    return value


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
